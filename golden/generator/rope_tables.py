#!/usr/bin/env python3
"""Rotary tables from transformers' own Phi3RotaryEmbedding, at positions spread over the whole
context of a config (default: the real Phi-4-mini config), for both LongRoPE factor sets.

Usage (torch + transformers installed): python3 rope_tables.py CONFIG.json OUT.safetensors
Only the first rotary_dims/2 columns are kept: the second half of cos/sin repeats the first.
"""
import json
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import Phi3Config
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding

cfg_path, out = sys.argv[1], sys.argv[2]
cfg = Phi3Config.from_dict(json.load(open(cfg_path)))
orig = cfg.original_max_position_embeddings
top = cfg.max_position_embeddings
rope = Phi3RotaryEmbedding(cfg)
half = rope.inv_freq.shape[0]

short_pos = sorted(set(range(0, 128)) | set(range(0, orig, 7)) | set(range(orig - 8, orig)))
long_pos = sorted(set(range(0, 128)) | set(range(orig - 8, orig + 8)) | set(range(0, top, 61)) | {top - 1})


def table(pos):
    p = torch.tensor([pos], dtype=torch.long)
    x = torch.zeros(1, len(pos), 8, dtype=torch.float32)
    with torch.no_grad():
        cos, sin = rope(x, p)
    return cos[0, :, :half].contiguous(), sin[0, :, :half].contiguous(), rope.inv_freq.clone()


cs, ss, inv_s = table(short_pos)
cl, sl, inv_l = table(long_pos)
exps = torch.arange(0, 2 * half, 2, dtype=torch.int64).float() / (2 * half)
theta = cfg.rope_parameters["rope_theta"]
vec_pow = theta ** exps  # what the rope init computes (vectorised path)
one_pow = torch.stack([theta ** exps[i:i + 1] for i in range(half)]).reshape(-1)  # scalar path
save_file({
    "short.positions": torch.tensor(short_pos, dtype=torch.int32), "short.cos": cs, "short.sin": ss,
    "long.positions": torch.tensor(long_pos, dtype=torch.int32), "long.cos": cl, "long.sin": sl,
    "inv_freq.short": inv_s, "inv_freq.long": inv_l, "pow.vectorised": vec_pow, "pow.scalar": one_pow,
}, out, metadata={"config": cfg_path.split("/")[-1], "transformers": transformers.__version__, "torch": torch.__version__,
                  "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                  "attention_scaling": repr(float(rope.attention_scaling))})
print("cpu", torch.backends.cpu.get_cpu_capability(), "short", len(short_pos), "long", len(long_pos),
      "pow differs at", (vec_pow != one_pow).nonzero().flatten().tolist())
