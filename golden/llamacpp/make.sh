#!/bin/sh
# Remakes the llama.cpp dumps and GGUFs in golden/llamacpp/ (README.md there says what each is).
#
#   sh golden/llamacpp/make.sh LLAMA_CPP_DIR
#
# LLAMA_CPP_DIR: a llama.cpp checkout with its libraries and llama-quantize built in build/bin
# (docs/llamacpp.md: from node-llama-cpp's npm package, offline). Needs python3 with numpy (for
# llama.cpp's gguf-py) and this repository built (npm ci). Builds tools/llamacpp/phi4-tapdump.
set -eu
llama=${1:?usage: sh golden/llamacpp/make.sh LLAMA_CPP_DIR}
llama=$(cd "$llama" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/golden/llamacpp
tool=$repo/tools/llamacpp/phi4-tapdump
sh "$repo/tools/llamacpp/build.sh" "$llama" "$tool"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PYTHONPATH=$llama/gguf-py

# the token ids of a golden dump, as 1,2,3
ids() {
  python3 - "$1" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n])
a, b = h['input_ids']['data_offsets']
print(','.join(str(v) for v in struct.unpack(f'<{(b - a) // 4}i', raw[8 + n + a:8 + n + b])))
PY
}

# Only the nodes the built-in map uses, plus a few it does not (they are summarised): layer 0 in
# full (with the attention weights over the KV cache padded to 256 cells), the other layers'
# attention output and layer output, and the head. Keeps the committed files small.
tiny='^(embd|attn_norm-0|wqkv-0|[QK]cur-0\.(rope|scale)|Vcur-0|kq_soft_max-0|kqv_out-[0-9]+|blk\.0\.attn_output\.weight>.*|norm-0\..*|ffn_(norm|up|swiglu|out)-0|l_out-[0-9]+|result_norm|result_output)$'
no_probs='^(embd|attn_norm-0|wqkv-0|[QK]cur-0\.(rope|scale)|Vcur-0|kqv_out-[0-9]+|blk\.0\.attn_output\.weight>.*|norm-0\..*|ffn_(norm|up|swiglu|out)-0|l_out-[0-9]+|result_norm|result_output)$'
# every mapped node but the attention weights (quantization is judged on the rest)
quant='^(embd|attn_norm-[0-9]+|wqkv-[0-9]+|[QK]cur-[0-9]+\.rope|kqv_out-[0-9]+|blk\.[0-9]+\.attn_output\.weight>.*|ffn_(norm|up|swiglu|out)-[0-9]+|l_out-[0-9]+|result_norm|result_output)$'

# float32 GGUFs of the golden checkpoints (not committed: the checkpoints are)
python3 "$repo/golden/gguf/to_gguf.py" "$repo/golden/models/phi4-mini-tiny" "$tmp/phi4-mini-tiny.f32.gguf" --type f32 >/dev/null
python3 "$repo/golden/gguf/to_gguf.py" "$repo/golden/models/phi3-mini-tiny" "$tmp/phi3-mini-tiny.f32.gguf" --type f32 >/dev/null
cd "$tmp"   # the dumps record the GGUF's name as given
"$tool" -m phi4-mini-tiny.f32.gguf --ids "$(ids "$repo/golden/dumps/phi4-mini-tiny.long.safetensors")" -c 48 \
  --keep "$no_probs" -o "$here/phi4-mini-tiny.long.f32.safetensors"
"$tool" -m phi4-mini-tiny.f32.gguf --ids "$(ids "$repo/golden/dumps/phi4-mini-tiny.short.safetensors")" -c 1024 \
  --keep "$tiny" -o "$here/phi4-mini-tiny.short.n_ctx1024.safetensors"
"$tool" -m phi3-mini-tiny.f32.gguf --ids "$(ids "$repo/golden/dumps/phi3-mini-tiny.long.safetensors")" -c 20 \
  --keep "$tiny" -o "$here/phi3-mini-tiny.long.f32.safetensors"
# --rows: the last 8 of the 48 positions only (outputs too), as a long run's selection would
"$tool" -m phi4-mini-tiny.f32.gguf --ids "$(ids "$repo/golden/dumps/phi4-mini-tiny.long.safetensors")" -c 48 \
  --keep "$tiny" --rows 40-47 -o "$here/phi4-mini-tiny.long.rows40-47.f32.safetensors"

# phi4-mini-q256: K-quants need rows of 256, so a random checkpoint of hidden 256 (phi4 synth, seed 0)
(cd "$repo" && node bin/phi4.js synth --config golden/llamacpp/phi4-mini-q256.config.json --out "$tmp/phi4-mini-q256" --seed 0 --layers 2)
python3 "$repo/golden/gguf/to_gguf.py" "$tmp/phi4-mini-q256" "$tmp/phi4-mini-q256.bf16.gguf" --type bf16 >/dev/null
cd "$here"
for q in Q8_0 Q4_K_M; do
  "$llama/build/bin/llama-quantize" "$tmp/phi4-mini-q256.bf16.gguf" "phi4-mini-q256.$q.gguf" $q 1 >/dev/null 2>&1
  "$tool" -m "phi4-mini-q256.$q.gguf" --ids 250,158,221,187,192,20,234,221 -c 8 --keep "$quant" -o "phi4-mini-q256.$q.safetensors"
done
