#!/usr/bin/env python3
"""Reference dumps of the trained toy model (golden/models/phi4-toy-induction, made by
`npm run train-toy`) from Hugging Face transformers' Phi3ForCausalLM.

Usage (torch + transformers installed; CPU is enough):
    python3 gen_toy_golden.py CHECKPOINT_DIR OUT_DIR

Loads the checkpoint as published (config.json + bf16 model.safetensors, tied head) with
transformers' own from_pretrained, eager attention, and writes to OUT_DIR:
    phi4-toy-induction.short.safetensors       every tap, float32, on the walkthrough's 25-token prompt
    phi4-toy-induction.long.safetensors        the same on its 41-token prompt (past the original 32)
    phi4-toy-induction.{short,long}.f64.safetensors   the same inputs in float64 from the same bf16 weights
    phi4-toy-induction.manifest.json           the config as written and as transformers reads it, its
                                               rotary inv_freq and attention scaling, the cases
The tap names, dtypes and metadata ("case", "json") follow gen_hf_golden.py / gen_variants.py.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Phi3ForCausalLM

from tap_hooks import Taps  # this folder: the hooks that name every tap

CKPT, OUT = sys.argv[1], sys.argv[2]
NAME = "phi4-toy-induction"
ALPHABET = "abcdefghijklmnopqrstuvwxyz"  # "<s>" is id 0, letter i is id i + 1 (tokenizer.json)
# The walkthrough's two prompts (src/teach/figures/figures.ts TOY_PROMPTS): n letters, then the same n again.
PROMPTS = {"short": "quickbrownfx", "long": "quickbrownfxjmpsvlaz"}


def prompt_ids(letters):
    x = [ALPHABET.index(c) + 1 for c in letters]
    return torch.tensor([[0] + x + x], dtype=torch.long)


def run(model, ids, out_dtype):
    taps = Taps(model)
    try:
        with torch.no_grad():
            out = model(input_ids=ids, output_attentions=True, use_cache=False)
        rec = dict(taps.rec)
        for i, a in enumerate(out.attentions):
            rec[f"layers.{i}.attn_probs"] = a
    finally:
        taps.close()
    res = {k: v.detach().to(out_dtype).contiguous() for k, v in rec.items()}
    res["input_ids"] = ids.int()
    return res


def load(dtype):
    return Phi3ForCausalLM.from_pretrained(CKPT, dtype=dtype, attn_implementation="eager").eval()


def induction_hits(logits, ids, n):
    """Arg-max predictions right on the second copy's x2 .. xn (positions n + 1 .. 2n - 1)."""
    pred = logits[0].argmax(-1)
    return int(sum(int(pred[q]) == int(ids[0, q + 1]) for q in range(n + 1, 2 * n)))


def main():
    print("transformers", transformers.__version__, "torch", torch.__version__, flush=True)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(CKPT, "config.json")) as f:
        written = json.load(f)
    om = written["original_max_position_embeddings"]

    m32 = load(torch.float32)
    # the loaded weights are the bf16 values of the file, and the head is tied to the embedding
    sd = load_file(os.path.join(CKPT, "model.safetensors"))
    msd = m32.state_dict()
    for k, v in sd.items():
        assert v.dtype == torch.bfloat16, k
        assert torch.equal(msd[k], v.float()), k
    assert "lm_head.weight" not in sd and torch.equal(msd["lm_head.weight"], msd["model.embed_tokens.weight"])
    m64 = load(torch.float64)

    re = m32.model.rotary_emb
    manifest = {"generator": "golden/generator/gen_toy_golden.py: transformers Phi3ForCausalLM (eager attention)",
                "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
                "models": {NAME: {"dir": f"models/{NAME}", "config_written": written,
                                  "config_as_transformers_reads_it": json.loads(m32.config.to_json_string()),
                                  "rotary": {"attention_scaling": float(getattr(re, "attention_scaling", 1.0)),
                                             "inv_freq_default": [float(x) for x in re.inv_freq],
                                             "rope_type": getattr(re, "rope_type", None)},
                                  "params": sum(v.numel() for v in sd.values())}},
                "cases": []}
    for case, letters in PROMPTS.items():
        ids = prompt_ids(letters)
        n, T = len(letters), ids.shape[1]
        rope = "longrope-" + ("long" if T > om else "short")
        for suffix, model, dt in (("", m32, torch.float32), (".f64", m64, torch.float64)):
            t = run(model, ids, dt)
            hits = induction_hits(t["logits"], ids, n)
            desc = (f"the walkthrough's prompt '<s> {letters} {letters}' (letters spaced), {T} tokens, every tap"
                    + (" (past original_max_position_embeddings=%d)" % om if T > om else "")
                    + (", float32" if not suffix else
                       ", computed in float64 from the same bf16 weights (transformers keeps RMSNorm statistics and "
                       "the rotary cos/sin tables in float32 even then): a near-exact answer to measure float32 error against"))
            info = {"model": NAME, "kind": "forward", "rope": rope, "description": desc,
                    "induction_argmax_correct": f"{hits} of {n - 1}",
                    "transformers": transformers.__version__, "torch": torch.__version__}
            name = f"{NAME}.{case}{suffix}"
            save_file(t, os.path.join(OUT, f"{name}.safetensors"), metadata={"case": name, "json": json.dumps(info)})
            entry = dict(info, file=f"dumps/{name}.safetensors",
                         tensors={k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                                  for k, v in sorted(t.items())})
            manifest["cases"].append(entry)
            print("saved", name, len(t), "tensors;", rope, "; induction arg-max right on", hits, "of", n - 1, flush=True)
    with open(os.path.join(OUT, f"{NAME}.manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print("done:", OUT, flush=True)


if __name__ == "__main__":
    main()
