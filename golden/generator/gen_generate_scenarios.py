#!/usr/bin/env python3
"""Greedy generation on phi4-mini-tiny in the scenarios where runtimes got LongRoPE wrong, as
transformers' model forward computes them (eager attention, float32 from the bf16 checkpoint).

Usage (torch + transformers installed; CPU is enough), from the repository root:
    python3 golden/generator/gen_generate_scenarios.py golden/models/phi4-mini-tiny golden/dumps

It reads the checkpoint and the input_ids of golden/dumps/phi4-mini-tiny.{short,long}.safetensors
(the DUMPS directory given) and writes, in the format of dumps/phi4-mini-tiny.generate:

  phi4-mini-tiny.generate-short.safetensors
      the 11-token prompt of phi4-mini-tiny.short (original context 32, a max of 1024 positions),
      8 greedy steps, never crossing the original context: the truth for "a short prompt in a long
      allocated context" (llama.cpp chose the factor set from n_ctx, ggml-org/llama.cpp#24823).
      step_logits / generated_ids: cached, one token at a time; _nocache: the whole sequence at
      every step; _static: cached in a StaticCache of 1024 positions (an allocated context of
      1024; absent if this transformers has no StaticCache that can be built so).
  phi4-mini-tiny.generate-chunked.safetensors
      the 48-token prompt of phi4-mini-tiny.long (past the original 32), 8 greedy steps.
      _nocache: the truth. step_logits / generated_ids: the prompt prefilled 16 tokens per forward
      call with the cache, then one token at a time; transformers chooses the factor set per call
      from max(position_ids) + 1, so the chunks ending at 16 and 32 use the short factors and the
      one ending at 48 the long ones (per-chunk selection, trymirai/uzu#604). _chunk20: the same
      with 20 tokens per call (chunks end at 20, 40, 48: short, long, long).

Tensors: prompt_ids int32 [1, T]; generated_ids* int32 [N]; step_logits* float32 [N, V], row i the
logits that chose generated_ids[i]. Metadata: case, and json (the description and settings).
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Phi3ForCausalLM

CKPT, DUMPS = sys.argv[1], sys.argv[2]
STEPS = 8
torch.manual_seed(0)


def load():
    try:
        m = Phi3ForCausalLM.from_pretrained(CKPT, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        m = Phi3ForCausalLM.from_pretrained(CKPT, torch_dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def prompt_of(case):
    return load_file(os.path.join(DUMPS, f"{case}.safetensors"))["input_ids"].long()


def greedy(model, prompt, n, mode, chunk=None, cache=None):
    """mode: 'nocache' (whole sequence each step) or 'cached' (prefill in chunks of `chunk`
    tokens, all at once when None, then one token at a time with the cache)."""
    seq = prompt.clone()
    rows, toks = [], []
    past = cache
    with torch.no_grad():
        for step in range(n):
            if mode == "nocache":
                out = model(input_ids=seq, use_cache=False)
            elif step == 0:
                P = seq.shape[1]
                c = P if chunk is None else chunk
                for s in range(0, P, c):
                    e = min(P, s + c)
                    out = model(input_ids=seq[:, s:e], past_key_values=past, use_cache=True,
                                cache_position=torch.arange(s, e), position_ids=torch.arange(s, e)[None])
                    past = out.past_key_values
            else:
                L = seq.shape[1]
                out = model(input_ids=seq[:, -1:], past_key_values=past, use_cache=True,
                            cache_position=torch.arange(L - 1, L), position_ids=torch.tensor([[L - 1]]))
                past = out.past_key_values
            lg = out.logits[0, -1].float()
            nxt = int(torch.argmax(lg))
            rows.append(lg)
            toks.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    return torch.tensor(toks, dtype=torch.int32), torch.stack(rows).contiguous()


def static_cache(model, max_len):
    from transformers import StaticCache
    for kw in (dict(config=model.config, max_cache_len=max_len),
               dict(config=model.config, max_batch_size=1, max_cache_len=max_len, dtype=torch.float32)):
        try:
            return StaticCache(**kw)
        except TypeError:
            continue
    raise RuntimeError("no StaticCache signature fits")


def save(name, tensors, info):
    info = dict(info, transformers=transformers.__version__, torch=torch.__version__, steps=STEPS,
                original_max_position_embeddings=m.config.original_max_position_embeddings)
    path = os.path.join(DUMPS, f"{name}.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"case": name, "json": json.dumps(info)})
    print("wrote", path, {k: list(v.shape) for k, v in tensors.items()}, flush=True)


m = load()

# 1. a short prompt (never crossing the original context), with an allocated context of 1024
p = prompt_of("phi4-mini-tiny.short")
t = {"prompt_ids": p.int()}
t["generated_ids"], t["step_logits"] = greedy(m, p, STEPS, "cached")
t["generated_ids_nocache"], t["step_logits_nocache"] = greedy(m, p, STEPS, "nocache")
notes = []
try:
    t["generated_ids_static"], t["step_logits_static"] = greedy(m, p, STEPS, "cached", cache=static_cache(m, 1024))
except Exception as e:  # recorded, not fatal: the nocache rows are the truth
    notes.append(f"StaticCache(1024) failed: {type(e).__name__}: {e}")
save("phi4-mini-tiny.generate-short", t, dict(
    model="phi4-mini-tiny", kind="greedy", prompt_len=p.shape[1], new_tokens=STEPS, notes=notes,
    description="greedy decoding from the 11-token prompt of phi4-mini-tiny.short; the sequence never passes "
                "original_max_position_embeddings. Cached: one token at a time with a DynamicCache; nocache: the "
                "whole sequence at every step; static: cached in a StaticCache of 1024 positions."))

# 2. a chunked prefill that crosses the original context
p = prompt_of("phi4-mini-tiny.long")
t = {"prompt_ids": p.int()}
t["generated_ids"], t["step_logits"] = greedy(m, p, STEPS, "cached", chunk=16)
t["generated_ids_chunk20"], t["step_logits_chunk20"] = greedy(m, p, STEPS, "cached", chunk=20)
t["generated_ids_nocache"], t["step_logits_nocache"] = greedy(m, p, STEPS, "nocache")
save("phi4-mini-tiny.generate-chunked", t, dict(
    model="phi4-mini-tiny", kind="greedy", prompt_len=p.shape[1], new_tokens=STEPS, prefill_chunk=16,
    description="greedy decoding from the 48-token prompt of phi4-mini-tiny.long (past the original 32 positions). "
                "Cached ('step_logits'): the prompt prefilled 16 tokens per forward call with the cache, then one "
                "token at a time; each call's factor set comes from its own max(position_ids) + 1. chunk20: the same "
                "with 20 tokens per call. Nocache: the whole sequence at every step (the model's definition)."))
