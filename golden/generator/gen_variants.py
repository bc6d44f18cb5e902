#!/usr/bin/env python3
"""More Phi3ForCausalLM variants for the golden tests: random-weight checkpoints in the published
layout, and every tap of transformers' forward (eager, float32) on them.

Usage (torch + transformers installed): python3 gen_variants.py GOLDEN_DIR OUT_DIR
GOLDEN_DIR is this project's golden/ (its phi4-mini-tiny and phi3-mini-tiny are reused for the
batch cases); OUT_DIR receives models/<name>/ and dumps/<case>.safetensors.
"""
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import Phi3Config, Phi3ForCausalLM

from tap_hooks import Taps  # this folder: the hooks that name every tap

GOLDEN, OUT = sys.argv[1], sys.argv[2]
BASE = {"architectures": ["Phi3ForCausalLM"], "attention_bias": False, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "model_type": "phi3", "pad_token_id": 0, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "torch_dtype": "bfloat16"}
VARIANTS = {
    # Phi-3.5-mini / Phi-3-mini-128k: LongRoPE on the full head (no partial rotary), MHA, untied.
    "phi35-mini-tiny": dict(seed=21, config=dict(
        BASE, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, vocab_size=384, max_position_embeddings=256, original_max_position_embeddings=16,
        rope_scaling={"type": "longrope", "short_factor": [1.0, 1.05, 1.1, 1.2, 1.4, 1.7, 2.1, 2.6],
                      "long_factor": [1.0, 1.5, 2.5, 4.0, 7.0, 12.0, 20.0, 33.0]},
        sliding_window=262144, tie_word_embeddings=False)),
    # Phi-3-medium: GQA 4:1 (40/10 there), full rotary without scaling, sliding window, untied.
    "phi3-medium-tiny": dict(seed=22, config=dict(
        BASE, hidden_size=96, intermediate_size=224, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=2, vocab_size=320, max_position_embeddings=128, original_max_position_embeddings=128,
        rope_scaling=None, sliding_window=6, tie_word_embeddings=False)),
}


def run(model, ids, mask=None, pos=None):
    taps = Taps(model)
    try:
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_attentions=True, use_cache=False)
        rec = dict(taps.rec)
        for i, a in enumerate(out.attentions):
            rec[f"layers.{i}.attn_probs"] = a
    finally:
        taps.close()
    res = {k: v.detach().float().contiguous() for k, v in rec.items()}
    res["input_ids"] = ids.int()
    if mask is not None:
        res["attention_mask"], res["position_ids"] = mask.int(), pos.int()
    return res


def load(d):
    return Phi3ForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()


def build(name, spec):
    d = os.path.join(OUT, "models", name)
    os.makedirs(d, exist_ok=True)
    json.dump(spec["config"], open(os.path.join(d, "config.json"), "w"), indent=2)
    skeleton = Phi3ForCausalLM(Phi3Config.from_pretrained(d))
    g = torch.Generator().manual_seed(spec["seed"])
    sd = {}
    for k, p in skeleton.state_dict().items():
        if p.ndim == 1:
            w = 0.5 + torch.rand(p.shape, generator=g)
        elif "embed_tokens" in k:
            w = torch.randn(p.shape, generator=g)
        else:
            w = torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1])
        sd[k] = w.to(torch.bfloat16).contiguous()
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    return load(d)


def ids(seed, shape, vocab):
    return torch.randint(3, vocab, shape, generator=torch.Generator().manual_seed(seed))


def left_padded(rows, V, seed):
    T = max(rows)
    x = torch.zeros((len(rows), T), dtype=torch.long)
    mask = torch.zeros_like(x)
    for r, n in enumerate(rows):
        x[r, T - n:] = ids(seed + r, (n,), V)
        mask[r, T - n:] = 1
    return x, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def save(case, t, description):
    os.makedirs(os.path.join(OUT, "dumps"), exist_ok=True)
    save_file(t, os.path.join(OUT, "dumps", f"{case}.safetensors"),
              metadata={"case": case, "json": json.dumps({"description": description,
                                                          "transformers": transformers.__version__,
                                                          "torch": torch.__version__})})
    print("saved", case, len(t), "tensors", flush=True)


torch.set_num_threads(8)
for name, spec in VARIANTS.items():
    m = build(name, spec)
    V = spec["config"]["vocab_size"]
    save(f"{name}.short", run(m, ids(spec["seed"] * 100 + 1, (1, 10), V)), "10 random tokens, every tap")
    save(f"{name}.long", run(m, ids(spec["seed"] * 100 + 2, (1, 24), V)),
         "24 random tokens: past original_max_position_embeddings (LongRoPE) or the sliding window")
# Batch cases on the existing golden checkpoints.
m = load(os.path.join(GOLDEN, "models", "phi3-mini-tiny"))
x, mask, pos = left_padded([14, 9], 512, 6001)
save("phi3-mini-tiny.batch", run(m, x, mask, pos), "rows of 14 and 9 tokens, the second left-padded; sliding window 8")
m = load(os.path.join(GOLDEN, "models", "phi4-mini-tiny"))
x, mask, pos = left_padded([40, 20], 1024, 6101)
save("phi4-mini-tiny.batch-long", run(m, x, mask, pos),
     "rows of 40 and 20 tokens, the second left-padded: only the first row passes original_max_position_embeddings=32, "
     "and transformers switches the whole batch to the long factors (max over position_ids)")
