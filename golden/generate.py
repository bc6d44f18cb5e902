#!/usr/bin/env python3
"""Write a phi4-ts dump from Hugging Face transformers' Phi3ForCausalLM.

One forward pass of any Phi3ForCausalLM checkpoint directory (the real Phi-4-mini included) with
every tap of phi4-ts (layers/taps.ts) captured by forward hooks, written as a safetensors file in
phi4-ts's dump format (docs/dump-format.md): float32 taps under the same names and layouts,
int32 inputs, and __metadata__ saying what made it. `npx phi4 compare` reads it like any dump.

    python3 golden/generate.py CHECKPOINT_DIR (--ids 5,17,42 | --inputs FILE.safetensors) --out FILE.safetensors
        [--dtype float32|float64|bfloat16|float16] [--device cpu|cuda] [--attn eager|sdpa] [--taps PATTERNS]

Needs torch, transformers and safetensors. Memory: the weights at --dtype (Phi-4-mini: 15.4 GB
in float32, 7.7 GB in bfloat16) plus every captured tap in float32 on the host: per token
4 * L * (6 H + 3 nh d + 3 nkv d + 3 I) bytes, plus 4 * L * nh * T for attn_probs and 4 * V for
the logits (Phi-4-mini: 7.1 MB + 3 KB * T + 0.8 MB); --taps keeps only some. bfloat16 / float16
on a GPU (--device cuda) is what a low-precision runtime produces; float32 on the CPU is the
reference. Format: docs/dump-format.md.

Status: not yet run. The machines this project was built on had no PyTorch; its argument parsing,
tap table and metadata were checked with plain python3 (docs/dump-format.md says what a first run
should reproduce).
"""
import argparse
import fnmatch
import hashlib
import json
import os
import sys

# The tap table of layers/taps.ts: names in forward order and layouts (test/generate-py.test.ts
# checks that the two agree).
MODEL_TAPS = {"embed": "B,T,H", "rope.cos": "B,T,r", "rope.sin": "B,T,r"}
LAYER_TAPS = {
    "input_norm": "B,T,H",
    "qkv": "B,T,(nh+2nkv)d",
    "q_rot": "B,nh,T,d",
    "k_rot": "B,nkv,T,d",
    "attn_probs": "B,nh,T,S",
    "attn_out": "B,T,nh*d",
    "o_proj": "B,T,H",
    "post_attn_residual": "B,T,H",
    "post_attn_norm": "B,T,H",
    "gate_up": "B,T,2I",
    "mlp_act": "B,T,I",
    "mlp_out": "B,T,H",
    "out": "B,T,H",
}
HEAD_TAPS = {"final_norm": "B,T,H", "logits": "B,T,V"}
INPUT_NAMES = ("input_ids", "attention_mask", "position_ids")


def tap_layouts(num_layers):
    """Every tap name of a num_layers-layer model, in forward order, with its layout."""
    out = dict(MODEL_TAPS)
    for i in range(num_layers):
        for k, v in LAYER_TAPS.items():
            out[f"layers.{i}.{k}"] = v
    out.update(HEAD_TAPS)
    return out


def parse_ids(text):
    """'5,17,42' -> [[5, 17, 42]] (one row)."""
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) > 0x7FFFFFFF:
            raise ValueError(f'--ids: "{part}" is not a token id (a non-negative 32-bit integer)')
        ids.append(int(part))
    return [ids]


def select_taps(names, patterns):
    """The names matching any of the comma-separated glob patterns (all when patterns is None)."""
    if not patterns:
        return list(names)
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in pats)]


def project_version():
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def metadata(checkpoint, config_bytes, backend, versions, inputs, layouts):
    """__metadata__ of a dump (all values strings), as src/oracle/dump.ts writes it plus what made it."""
    return {
        "format": "phi4-ts.dump",
        "project_version": project_version(),
        "producer": "golden/generate.py",
        "backend": backend,
        **versions,
        "checkpoint": os.path.abspath(checkpoint),
        "config_sha256": hashlib.sha256(config_bytes).hexdigest()[:16],
        "inputs": json.dumps({k: list(v["shape"]) for k, v in inputs.items()}),
        "input_ids": json.dumps(inputs["input_ids"]["rows"]),
        "layouts": json.dumps(layouts),
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a Phi3ForCausalLM checkpoint directory (config.json + safetensors)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ids", help="comma-separated token ids, one row")
    src.add_argument("--inputs", help="safetensors file with input_ids [B,T] and optional attention_mask, position_ids")
    p.add_argument("--out", required=True, help="the dump to write (atomically)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16", "float16"])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--attn", default="eager", choices=["eager", "sdpa"],
                   help="attention implementation; attn_probs only exist with eager")
    p.add_argument("--taps", help="comma-separated glob patterns of taps to keep, e.g. 'embed,layers.*.out,logits'")
    a = p.parse_args(argv)
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        p.error(f"--out: directory {out_dir} does not exist")
    if a.ids is not None:
        try:
            parse_ids(a.ids)
        except ValueError as e:
            p.error(str(e))
    return a


class Recorder:
    """Forward hooks (and a wrapper around apply_rotary_pos_emb for q_rot / k_rot) that copy every
    wanted tap to the host in float32 as soon as it is computed."""

    def __init__(self, model, want):
        import transformers.models.phi3.modeling_phi3 as phi3

        self.rec, self.handles, self.layer, self.want = {}, [], None, set(want)
        self.phi3, self.orig_rotary = phi3, phi3.apply_rotary_pos_emb
        mm = model.model

        def hook(name, use_input=False):
            def h(_mod, args, out):
                t = args[0] if use_input else (out[0] if isinstance(out, (tuple, list)) else out)
                self.put(name, t)
            return h

        def on(mod, name, use_input=False):
            if name in self.want:
                self.handles.append(mod.register_forward_hook(hook(name, use_input)))

        on(mm.embed_tokens, "embed")
        on(mm.norm, "final_norm")
        on(model.lm_head, "logits")
        def rope(_mod, _args, out):  # returns None: a forward hook's return value would replace the output
            self.put("rope.cos", out[0])
            self.put("rope.sin", out[1])

        self.handles.append(mm.rotary_emb.register_forward_hook(rope))
        for i, layer in enumerate(mm.layers):
            p = f"layers.{i}."
            on(layer.input_layernorm, p + "input_norm")
            on(layer.self_attn.qkv_proj, p + "qkv")
            on(layer.self_attn.o_proj, p + "attn_out", use_input=True)
            on(layer.self_attn.o_proj, p + "o_proj")
            on(layer.post_attention_layernorm, p + "post_attn_residual", use_input=True)
            on(layer.post_attention_layernorm, p + "post_attn_norm")
            on(layer.mlp.gate_up_proj, p + "gate_up")
            on(layer.mlp.down_proj, p + "mlp_act", use_input=True)
            on(layer.mlp.down_proj, p + "mlp_out")
            on(layer, p + "out")
            self.handles.append(layer.self_attn.register_forward_pre_hook(
                lambda _m, _a, i=i: setattr(self, "layer", i)))

        def rotary(q, k, cos, sin, *a, **kw):
            qo, ko = self.orig_rotary(q, k, cos, sin, *a, **kw)
            if self.layer is not None:
                self.put(f"layers.{self.layer}.q_rot", qo)
                self.put(f"layers.{self.layer}.k_rot", ko)
            return qo, ko

        phi3.apply_rotary_pos_emb = rotary

    def put(self, name, t):
        import torch

        if name in self.want:
            self.rec[name] = t.detach().to("cpu", torch.float32).contiguous()

    def close(self):
        for h in self.handles:
            h.remove()
        self.phi3.apply_rotary_pos_emb = self.orig_rotary


def read_inputs(args, torch):
    """input_ids [B,T] and the optional attention_mask / position_ids, as int64 tensors."""
    if args.ids is not None:
        return {"input_ids": torch.tensor(parse_ids(args.ids), dtype=torch.int64)}
    from safetensors.torch import load_file

    f = load_file(args.inputs)
    if "input_ids" not in f:
        sys.exit(f"{args.inputs}: no \"input_ids\" tensor")
    ids = f["input_ids"]
    if ids.dim() != 2:
        sys.exit(f"{args.inputs}: \"input_ids\" must be [batch, seq], got {list(ids.shape)}")
    out = {"input_ids": ids.to(torch.int64)}
    for name in ("attention_mask", "position_ids"):
        if name in f:
            if list(f[name].shape) != list(ids.shape):
                sys.exit(f"{args.inputs}: \"{name}\" has shape {list(f[name].shape)}, input_ids has {list(ids.shape)}")
            out[name] = f[name].to(torch.int64)
    return out


def main(argv):
    args = parse_args(argv)
    try:
        import torch
        import transformers
        from safetensors.torch import save_file
        from transformers import Phi3ForCausalLM
    except ImportError as e:
        sys.exit(f"generate.py needs torch, transformers and safetensors ({e})")

    dtype = getattr(torch, args.dtype)
    try:
        model = Phi3ForCausalLM.from_pretrained(args.checkpoint, dtype=dtype, attn_implementation=args.attn)
    except TypeError:  # transformers 4.x spells it torch_dtype
        model = Phi3ForCausalLM.from_pretrained(args.checkpoint, torch_dtype=dtype, attn_implementation=args.attn)
    model = model.to(args.device).eval()
    if args.device.startswith("cuda"):  # no TF32: bf16 / fp16 / fp32 as named
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    inputs = read_inputs(args, torch)
    layouts = tap_layouts(model.config.num_hidden_layers)
    want = select_taps(layouts, args.taps)
    if args.attn != "eager":
        want = [n for n in want if not n.endswith(".attn_probs")]

    rec = Recorder(model, want)
    try:
        with torch.no_grad():
            out = model(**{k: v.to(args.device) for k, v in inputs.items()},
                        output_attentions=any(n.endswith(".attn_probs") for n in want), use_cache=False)
    finally:
        rec.close()
    taps = dict(rec.rec)
    for i, a in enumerate(out.attentions or ()):
        if f"layers.{i}.attn_probs" in want:
            taps[f"layers.{i}.attn_probs"] = a.detach().to("cpu", torch.float32).contiguous()

    tensors = {k: v.to(torch.int32).contiguous() for k, v in inputs.items()}
    kept = {}
    for name in layouts:  # forward order
        if name in taps:
            tensors[name] = taps[name]
            kept[name] = layouts[name]
    with open(os.path.join(args.checkpoint, "config.json"), "rb") as f:
        config_bytes = f.read()
    backend = f"transformers {transformers.__version__}, torch {torch.__version__}, {args.device}, {args.dtype}, {args.attn}"
    versions = {"transformers_version": transformers.__version__, "torch_version": torch.__version__,
                "device": args.device, "dtype": args.dtype, "attn_implementation": args.attn}
    shapes = {k: {"shape": list(v.shape), "rows": v.tolist() if k == "input_ids" else None} for k, v in inputs.items()}
    meta = metadata(args.checkpoint, config_bytes, backend, versions, shapes, kept)

    tmp = f"{args.out}.{os.getpid()}.tmp"
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    missing = [n for n in want if n not in kept]
    print(f"wrote {args.out}: {len(tensors)} tensors ({backend})", file=sys.stderr)
    if missing:
        print(f"not captured: {', '.join(missing)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
