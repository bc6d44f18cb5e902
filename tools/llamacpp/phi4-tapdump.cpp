// phi4-tapdump: one llama.cpp forward pass over given token ids, every graph node the ggml
// scheduler computes captured through the eval callback, written as a phi4-ts dump
// (docs/dump-format.md): a safetensors file with `input_ids` [1, T] (I32), each node as F32 under
// its ggml name, and the dump's `__metadata__` (format, backend, checkpoint, inputs, input_ids).
// `phi4 compare --map llama.cpp` lines the ggml names and layouts up with phi4-ts's taps
// (src/maps/llamacpp.ts); docs/llamacpp.md is the route from source to comparison.
//
//   phi4-tapdump -m MODEL.gguf --ids 5,17,42 -o OUT.safetensors [-c N_CTX] [--kv f32|f16]
//                [--fa off|on] [-t THREADS] [--keep REGEX] [--rows A-B] [--verbose]
//
// Selection, so that a long run writes a small file. --keep REGEX writes only the nodes whose
// final name matches (Qcur-N.rope, Kcur-N.rope, l_out-N, result_output are the map's q_rot, k_rot,
// out, logits). --rows A-B (0-based, inclusive) keeps positions A..B of the token axis and makes
// them the batch's only outputs: llama.cpp then runs the last layer's feed-forward and the head on
// those rows alone (its get_rows on the output ids), so those nodes hold B-A+1 rows already. A
// node's token axis is its outermost dimension of length T (the number of ids); a node without one
// (the KV cache views when n_ctx > T, the output rows) is written whole. The dump's metadata records
// the selection ("selection": nodes, positions, rows [A, B+1)).
// It records the op that made each written node too ("ops": {"Qcur-0.rope": "rope", ...}).
//
// Names. A node keeps the name llama.cpp's graph gave it (attn_norm-0, Qcur-0, kq_soft_max-0,
// l_out-0, result_output). A name given to several nodes (Qcur-0 names the view of the fused
// qkv, the rotated query and the scaled query) is written once per node as NAME.OP, op in lower
// case (Qcur-0.rope, Qcur-0.scale). A node the graph left unnamed (ggml calls it node_<i>) is
// named by following its first source back to a named node or weight: the o_proj matmul is
// blk.0.attn_output.weight>mul_mat, the residual add after it blk.0.attn_output.weight>mul_mat>add.
//
// Layout. Each node is written as numpy sees the logical tensor: ggml's ne reversed and cut to
// ggml_n_dims (Qcur-0.rope: ne {d, nh, T} -> [T, nh, d]), strided views gathered, F16/BF16 widened.
//
// Exit status: 0 written, 2 bad arguments or a model that does not load, 1 evaluation failed.

#include "ggml.h"
#include "ggml-backend.h"
#include "llama.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <regex>
#include <string>
#include <vector>

#ifndef PHI4_LLAMA_VERSION
#define PHI4_LLAMA_VERSION "unknown"
#endif

namespace {

struct Node {
    std::string name;  // the graph name (or the derived one), made unique after the pass
    std::string op;    // lower case, e.g. "rope"
    int occurrence = 1;  // among the nodes with the same name and op, in graph order
    std::vector<int64_t> shape;  // numpy order
    std::vector<float> data;
};

struct Capture {
    std::vector<Node> nodes;
    std::map<const ggml_tensor *, std::string> named;  // unnamed nodes' derived names
    std::map<std::string, int> count;  // how many nodes carry each name, kept or not
    std::map<std::string, int> count_op;  // the same per NAME.OP
    const std::regex * keep = nullptr;
    int64_t T = 0;                  // the number of ids: the length of the token axis
    int64_t row0 = 0, row_end = 0;  // rows [row0, row_end) of the token axis are written
};

bool auto_named(const ggml_tensor * t) {
    return t->name[0] == '\0' || (strncmp(t->name, "node_", 5) == 0 && t->name[5] >= '0' && t->name[5] <= '9');
}

std::string lower(const char * s) {
    std::string o(s);
    for (char & c : o) c = (char) tolower((unsigned char) c);
    return o;
}

// A node's own name, or its first source's name followed by ">op" for each unnamed step.
std::string derived_name(const ggml_tensor * t, Capture & cap, int depth = 0) {
    if (!auto_named(t)) return t->name;
    auto it = cap.named.find(t);
    if (it != cap.named.end()) return it->second;
    std::string base = (t->src[0] && depth < 16) ? derived_name(t->src[0], cap, depth + 1) : std::string("?");
    std::string name = base + ">" + lower(ggml_op_desc(t));
    cap.named[t] = name;
    return name;
}

float element(const uint8_t * p, ggml_type type) {
    switch (type) {
        case GGML_TYPE_F32: return *(const float *) p;
        case GGML_TYPE_F16: return ggml_fp16_to_fp32(*(const ggml_fp16_t *) p);
        case GGML_TYPE_BF16: return ggml_bf16_to_fp32(*(const ggml_bf16_t *) p);
        default: return 0.0f;  // not reached: other types are skipped
    }
}

bool on_node(ggml_tensor * t, bool ask, void * user) {
    auto * cap = (Capture *) user;
    if (ask) return true;  // observe every node
    if (t->op == GGML_OP_NONE) return true;  // leaves: weights and inputs
    if (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16 && t->type != GGML_TYPE_BF16) return true;

    const std::string name = derived_name(t, *cap);
    const std::string op = lower(ggml_op_desc(t));
    cap->count[name]++;
    const int occurrence = ++cap->count_op[name + "." + op];
    // a cheap first filter; the final names (NAME.OP for shared names) are filtered again at the end
    if (cap->keep && !std::regex_search(name, *cap->keep) && !std::regex_search(name + "." + op, *cap->keep)) return true;

    std::vector<uint8_t> host;
    const uint8_t * base = (const uint8_t *) t->data;
    if (!ggml_backend_buffer_is_host(t->buffer)) {
        host.resize(ggml_nbytes(t));
        ggml_backend_tensor_get(t, host.data(), 0, host.size());
        base = host.data();
    }
    // the index range [lo[k], hi[k]) written along each ggml dimension k: all of it, but for the
    // token axis (the outermost dimension of length T) when --rows cuts it
    int64_t lo[4] = {0, 0, 0, 0}, hi[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
    if (cap->row_end - cap->row0 < cap->T) {
        for (int k = 3; k >= 0; k--) {
            if (t->ne[k] == cap->T) { lo[k] = cap->row0; hi[k] = cap->row_end; break; }
        }
    }
    Node n;
    n.name = name;
    n.op = op;
    n.occurrence = occurrence;
    int nd = 4;  // as ggml_n_dims: trailing dimensions of size 1 dropped, at least one kept
    while (nd > 1 && hi[nd - 1] - lo[nd - 1] == 1) nd--;
    for (int i = nd - 1; i >= 0; i--) n.shape.push_back(hi[i] - lo[i]);
    n.data.reserve((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]) * (hi[3] - lo[3]));
    for (int64_t i3 = lo[3]; i3 < hi[3]; i3++)
        for (int64_t i2 = lo[2]; i2 < hi[2]; i2++)
            for (int64_t i1 = lo[1]; i1 < hi[1]; i1++)
                for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
                    n.data.push_back(element(base + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3], t->type));
    cap->nodes.push_back(std::move(n));
    return true;
}

// A graph name carried by several nodes becomes NAME.OP on each of them (Qcur-0.view,
// Qcur-0.rope, Qcur-0.scale); should two share the op as well, the later ones get #2, #3.
void unique_names(std::vector<Node> & nodes, std::map<std::string, int> & count) {
    for (auto & n : nodes) {
        if (count[n.name] < 2) continue;
        std::string name = n.name + "." + n.op;
        n.name = n.occurrence == 1 ? name : name + "#" + std::to_string(n.occurrence);
    }
}

std::string json_str(const std::string & s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') { o += '\\'; o += c; }
        else if ((unsigned char) c < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", c); o += b; }
        else o += c;
    }
    return o + "\"";
}

[[noreturn]] void usage_error(const std::string & msg) {
    fprintf(stderr, "phi4-tapdump: %s\n", msg.c_str());
    exit(2);
}

std::vector<llama_token> parse_ids(const std::string & s) {
    std::vector<llama_token> ids;
    size_t i = 0;
    while (i <= s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        std::string part = s.substr(i, j - i);
        char * end = nullptr;
        long v = strtol(part.c_str(), &end, 10);
        if (part.empty() || *end != '\0' || v < 0 || v > INT32_MAX) usage_error("--ids: \"" + part + "\" is not a token id");
        ids.push_back((llama_token) v);
        i = j + 1;
    }
    return ids;
}

// Writes the safetensors file at `out` through a temporary name and a rename.
bool write_dump(const std::string & out, const std::vector<llama_token> & ids, const std::vector<Node> & nodes,
                const std::map<std::string, std::string> & meta) {
    const size_t T = ids.size();
    std::string h = "{\"__metadata__\":{";
    bool first = true;
    for (auto & [k, v] : meta) { h += (first ? "" : ",") + json_str(k) + ":" + json_str(v); first = false; }
    h += "},\"input_ids\":{\"dtype\":\"I32\",\"shape\":[1," + std::to_string(T) + "],\"data_offsets\":[0," + std::to_string(4 * T) + "]}";
    size_t off = 4 * T;
    for (auto & n : nodes) {
        std::string shape;
        for (size_t i = 0; i < n.shape.size(); i++) shape += (i ? "," : "") + std::to_string(n.shape[i]);
        size_t bytes = 4 * n.data.size();
        h += "," + json_str(n.name) + ":{\"dtype\":\"F32\",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + bytes) + "]}";
        off += bytes;
    }
    h += "}";
    while (h.size() % 8) h += ' ';  // data starts 8-byte aligned
    const std::string tmp = out + ".tmp-phi4-tapdump";
    FILE * f = fopen(tmp.c_str(), "wb");
    if (!f) return false;
    uint64_t n = h.size();  // little-endian hosts only (x86-64, arm64)
    bool ok = fwrite(&n, 8, 1, f) == 1 && fwrite(h.data(), 1, h.size(), f) == h.size();
    std::vector<int32_t> id32(ids.begin(), ids.end());
    ok = ok && fwrite(id32.data(), 4, T, f) == T;
    for (auto & nd : nodes) ok = ok && fwrite(nd.data.data(), 4, nd.data.size(), f) == nd.data.size();
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp.c_str(), out.c_str()) != 0) { remove(tmp.c_str()); return false; }
    return true;
}

// Without --verbose, llama.cpp's log is silent but for the warning that it disables a sliding
// window (a difference compare will show); failures are reported in one line of our own.
void quiet_log(ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_WARN && strstr(text, "SWA")) fputs(text, stderr);
}

int positive(const std::string & flag, const std::string & v) {
    char * end = nullptr;
    long x = strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || x < 1 || x > INT32_MAX) usage_error(flag + ": \"" + v + "\" is not a positive integer");
    return (int) x;
}

// --rows A-B (or A): rows [A, B+1) of a T-token sequence.
void parse_rows(const std::string & v, int64_t T, int64_t & row0, int64_t & row_end) {
    long a = -1, b = -1;
    char tail = 0;
    int got = sscanf(v.c_str(), "%ld-%ld%c", &a, &b, &tail);
    if (got == 1 && v.find('-') == std::string::npos) b = a;
    else if (got != 2) usage_error("--rows: expected A-B or A (0-based positions), got \"" + v + "\"");
    if (a < 0 || b < a) usage_error("--rows: " + v + " is not a range A-B with 0 <= A <= B");
    if (b >= T) usage_error("--rows: " + v + " is outside the " + std::to_string(T) + " ids' positions [0, " + std::to_string(T - 1) + "]");
    row0 = a;
    row_end = b + 1;
}

}  // namespace

int main(int argc, char ** argv) {
    std::string model_path, out, ids_arg, kv = "f32", fa = "off", keep_arg, rows_arg;
    int n_ctx = 0, threads = 1;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "-m") model_path = value();
        else if (a == "-o") out = value();
        else if (a == "--ids") ids_arg = value();
        else if (a == "-c") n_ctx = positive(a, value());
        else if (a == "-t") threads = positive(a, value());
        else if (a == "--kv") kv = value();
        else if (a == "--fa") fa = value();
        else if (a == "--keep") keep_arg = value();
        else if (a == "--rows") rows_arg = value();
        else if (a == "--verbose") verbose = true;
        else usage_error("unknown argument \"" + a + "\" (-m, -o, --ids, -c, -t, --kv, --fa, --keep, --rows, --verbose)");
    }
    if (model_path.empty() || out.empty() || ids_arg.empty()) usage_error("needs -m MODEL.gguf, --ids 1,2,3 and -o OUT.safetensors");
    if (FILE * probe = fopen(model_path.c_str(), "rb")) fclose(probe);
    else usage_error(model_path + ": cannot open");
    if (kv != "f32" && kv != "f16") usage_error("--kv must be f32 or f16, got \"" + kv + "\"");
    if (fa != "off" && fa != "on") usage_error("--fa must be off or on, got \"" + fa + "\"");
    const std::vector<llama_token> ids = parse_ids(ids_arg);
    if (n_ctx == 0) n_ctx = (int) ids.size();
    if (n_ctx < (int) ids.size()) usage_error("-c " + std::to_string(n_ctx) + " is smaller than the " + std::to_string(ids.size()) + " ids");
    std::regex keep;
    Capture cap;
    if (!keep_arg.empty()) {
        try { keep = std::regex(keep_arg); } catch (const std::regex_error &) { usage_error("--keep: \"" + keep_arg + "\" is not a regular expression"); }
        cap.keep = &keep;
    }
    cap.T = (int64_t) ids.size();
    cap.row_end = cap.T;
    if (!rows_arg.empty()) parse_rows(rows_arg, cap.T, cap.row0, cap.row_end);

    if (!verbose) llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(model_path.c_str(), mp);
    if (!model) usage_error(model_path + ": llama.cpp could not load it");
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (llama_token id : ids) {
        if (id >= n_vocab) usage_error("--ids: " + std::to_string(id) + " is past the vocabulary (" + std::to_string(n_vocab) + ")");
    }

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) n_ctx;
    cp.n_batch = cp.n_ubatch = (uint32_t) ids.size();  // one ubatch: every node holds all positions
    cp.n_threads = cp.n_threads_batch = threads;
    cp.type_k = cp.type_v = kv == "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;
    cp.flash_attn_type = fa == "on" ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.cb_eval = on_node;
    cp.cb_eval_user_data = &cap;
    cp.no_perf = true;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) usage_error(model_path + ": llama.cpp could not make a context with n_ctx " + std::to_string(n_ctx));

    llama_batch batch = llama_batch_init((int32_t) ids.size(), 0, 1);
    for (size_t i = 0; i < ids.size(); i++) {
        batch.token[i] = ids[i];
        batch.pos[i] = (llama_pos) i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        // the selected rows (by default all) are the outputs: the head runs on them alone
        batch.logits[i] = (int64_t) i >= cap.row0 && (int64_t) i < cap.row_end;
    }
    batch.n_tokens = (int32_t) ids.size();
    if (llama_decode(ctx, batch) != 0) {
        fprintf(stderr, "phi4-tapdump: llama_decode failed\n");
        return 1;
    }

    unique_names(cap.nodes, cap.count);
    if (cap.keep) {
        std::vector<Node> kept;
        for (auto & n : cap.nodes) if (std::regex_search(n.name, keep)) kept.push_back(std::move(n));
        cap.nodes = std::move(kept);
    }

    // the op that made each written node ("ops" metadata: compare's map picks Qcur-0's rope node by it)
    std::string ops = "{";
    for (size_t i = 0; i < cap.nodes.size(); i++) ops += (i ? "," : "") + json_str(cap.nodes[i].name) + ":" + json_str(cap.nodes[i].op);
    ops += "}";
    std::string inputs = "{\"input_ids\":[1," + std::to_string(ids.size()) + "]}";
    std::string id_list = "[[";
    for (size_t i = 0; i < ids.size(); i++) id_list += (i ? "," : "") + std::to_string(ids[i]);
    id_list += "]]";
    const uint32_t n_ctx_used = llama_n_ctx(ctx);
    std::map<std::string, std::string> meta = {
        {"format", "phi4-ts.dump"},
        {"producer", "tools/llamacpp/phi4-tapdump.cpp"},
        {"backend", std::string("llama.cpp ") + PHI4_LLAMA_VERSION + ", cpu, n_ctx " + std::to_string(n_ctx_used) +
                    ", kv cache " + kv + ", flash attention " + fa},
        {"llama_cpp_version", PHI4_LLAMA_VERSION},
        {"n_ctx", std::to_string(n_ctx_used)},
        {"n_ctx_requested", std::to_string(n_ctx)},
        {"checkpoint", model_path},
        {"inputs", inputs},
        {"input_ids", id_list},
        {"selection", "{\"nodes\":" + json_str(keep_arg.empty() ? "all" : keep_arg) + ",\"positions\":" +
                      json_str(rows_arg.empty() ? "all" : rows_arg) + ",\"rows\":[" + std::to_string(cap.row0) + "," +
                      std::to_string(cap.row_end) + "]}"},
        {"layouts", "{}"},
        {"ops", ops},
    };
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    if (!write_dump(out, ids, cap.nodes, meta)) {
        fprintf(stderr, "phi4-tapdump: %s: cannot write\n", out.c_str());
        return 2;
    }
    fprintf(stderr, "phi4-tapdump: wrote %s: %zu nodes, %zu ids, n_ctx %u\n", out.c_str(), cap.nodes.size(), ids.size(), n_ctx_used);
    return 0;
}
