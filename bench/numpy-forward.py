#!/usr/bin/env python3
"""An independent float64 forward pass of Phi3ForCausalLM in numpy: the anchor the float64
reference (src/oracle/reference/) is timed against (issue 22: "a 100-line numpy script is what a
runtime author would write instead"). It shares no code with phi4-ts: it reads config.json and the
safetensors files itself, widens bf16 weights to float64 through np.memmap (one layer's matrices at
a time, so the weights stream from the page cache), and does every product in float64 (numpy's
BLAS, as many threads as it takes). As in transformers, the rotary cos/sin tables are built in
float32 and a masked score gets float32's lowest value added.

  python3 bench/numpy-forward.py MODEL_DIR (--ids 1,2,3 | --tokens N) [--out logits.f64] [--json]

--tokens N feeds the ids (i * 7919 + 11) % vocab, i < N. --out writes the logits [T, V] as raw
little-endian float64. Prints one JSON line: tokens, seconds (the forward, from opening the
checkpoint to the logits), tokens per second, threads.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

F32_LOWEST = float(np.finfo(np.float32).min)


class Weights:
    """The tensors of a (possibly sharded) safetensors checkpoint, memory-mapped, widened on read."""

    def __init__(self, d):
        self.where = {}
        files = sorted(f for f in os.listdir(d) if f.endswith('.safetensors'))
        if not files:
            sys.exit(f'{d}: no .safetensors files')
        for f in files:
            path = os.path.join(d, f)
            with open(path, 'rb') as fh:
                n = int.from_bytes(fh.read(8), 'little')
                header = json.loads(fh.read(n))
            for name, t in header.items():
                if name != '__metadata__':
                    self.where[name] = (path, 8 + n + t['data_offsets'][0], t['dtype'], t['shape'])

    def __contains__(self, name):
        return name in self.where

    def get(self, name, rows=None):
        """The tensor (or rows [a, b) of its first axis) as float64."""
        path, off, dtype, shape = self.where[name]
        np_dtype = {'BF16': np.uint16, 'F16': np.float16, 'F32': np.float32, 'F64': np.float64}[dtype]
        m = np.memmap(path, dtype=np_dtype, mode='r', offset=off, shape=tuple(shape))
        if rows is not None:
            m = m[rows[0]:rows[1]]
        if dtype == 'BF16':  # bf16 is the top half of a float32: widening is exact
            return (m.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return np.asarray(m, dtype=np.float64)


def rope_tables(cfg, T):
    """cos, sin [T, rot] in float32 as transformers builds them (LongRoPE's factors and scaling)."""
    H, nh = cfg['hidden_size'], cfg['num_attention_heads']
    d = cfg.get('head_dim') or H // nh
    rot = int(d * cfg.get('partial_rotary_factor', 1.0))
    theta = cfg.get('rope_theta', 10000.0)
    scaling = cfg.get('rope_scaling') or {}
    orig = cfg.get('original_max_position_embeddings', cfg['max_position_embeddings'])
    expo = (np.arange(0, rot, 2, dtype=np.int64).astype(np.float32) / np.float32(rot)).astype(np.float32)
    base = np.power(np.float32(theta), expo, dtype=np.float32)
    mscale = 1.0
    if scaling.get('type', scaling.get('rope_type')) == 'longrope':
        factors = scaling['long_factor'] if T > orig else scaling['short_factor']
        base = (np.asarray(factors, dtype=np.float32) * base).astype(np.float32)
        ratio = cfg['max_position_embeddings'] / orig
        mscale = math.sqrt(1 + math.log(ratio) / math.log(orig)) if ratio > 1 else 1.0
    inv = (np.float32(1) / base).astype(np.float32)
    ang = (np.arange(T, dtype=np.float32)[:, None] * inv[None, :]).astype(np.float32)
    emb = np.concatenate([ang, ang], axis=1)
    # cos/sin of the float32 angle, correctly rounded to float32 (float32 libm cos may be an ulp off)
    c, s = np.cos(emb.astype(np.float64)).astype(np.float32), np.sin(emb.astype(np.float64)).astype(np.float32)
    return (c * np.float32(mscale)).astype(np.float32), (s * np.float32(mscale)).astype(np.float32), rot


def rms_norm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rotate(v, cos, sin, rot):
    """v [heads, T, d]: the first rot dims rotate (x cos + rotate_half(x) sin), the rest pass."""
    r, rest = v[..., :rot], v[..., rot:]
    half = rot // 2
    rh = np.concatenate([-r[..., half:], r[..., :half]], axis=-1)
    return np.concatenate([r * cos + rh * sin, rest], axis=-1)


def forward(d, ids):
    cfg = json.load(open(os.path.join(d, 'config.json')))
    W = Weights(d)
    H, nh, nkv = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = cfg.get('head_dim') or H // nh
    I, V, L, eps = cfg['intermediate_size'], cfg['vocab_size'], cfg['num_hidden_layers'], cfg['rms_norm_eps']
    T = len(ids)
    window = cfg.get('sliding_window')
    cos, sin, rot = rope_tables(cfg, T)
    cos, sin = cos.astype(np.float64), sin.astype(np.float64)
    q_pos, k_pos = np.arange(T)[:, None], np.arange(T)[None, :]
    allowed = (k_pos <= q_pos) & ((q_pos - k_pos < window) if window else True)
    mask = np.where(allowed, 0.0, F32_LOWEST)  # [T, T]

    emb = 'model.embed_tokens.weight'
    x = np.stack([W.get(emb, (i, i + 1))[0] for i in ids])  # [T, H]
    g = nh // nkv
    for l in range(L):
        p = f'model.layers.{l}.'
        n1 = rms_norm(x, W.get(p + 'input_layernorm.weight'), eps)
        qkv = n1 @ W.get(p + 'self_attn.qkv_proj.weight').T  # [T, (nh + 2 nkv) hd]
        q = qkv[:, :nh * hd].reshape(T, nh, hd).transpose(1, 0, 2)
        k = qkv[:, nh * hd:(nh + nkv) * hd].reshape(T, nkv, hd).transpose(1, 0, 2)
        v = qkv[:, (nh + nkv) * hd:].reshape(T, nkv, hd).transpose(1, 0, 2)
        q, k = rotate(q, cos, sin, rot), rotate(k, cos, sin, rot)
        out = np.empty((T, nh, hd))
        for h in range(nh):
            s = (q[h] @ k[h // g].T) / math.sqrt(hd) + mask  # [T, T]
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            out[:, h] = (s / s.sum(axis=-1, keepdims=True)) @ v[h // g]
        h1 = x + out.reshape(T, nh * hd) @ W.get(p + 'self_attn.o_proj.weight').T
        n2 = rms_norm(h1, W.get(p + 'post_attention_layernorm.weight'), eps)
        gu = n2 @ W.get(p + 'mlp.gate_up_proj.weight').T  # [T, 2 I]
        gate, up = gu[:, :I], gu[:, I:]
        x = h1 + ((gate / (1 + np.exp(-gate))) * up) @ W.get(p + 'mlp.down_proj.weight').T
    fn = rms_norm(x, W.get('model.norm.weight'), eps)
    head = emb if cfg.get('tie_word_embeddings') or 'lm_head.weight' not in W else 'lm_head.weight'
    logits = np.empty((T, V))
    block = 16384
    for v0 in range(0, V, block):
        logits[:, v0:v0 + block] = fn @ W.get(head, (v0, min(V, v0 + block))).T
    return logits


def main():
    ap = argparse.ArgumentParser(description='float64 numpy forward of a Phi-3 checkpoint (the reference\'s timing anchor)')
    ap.add_argument('model')
    ap.add_argument('--ids', help='comma-separated token ids')
    ap.add_argument('--tokens', type=int, help='feed N deterministic ids')
    ap.add_argument('--out', help='write the logits [T, V] as raw little-endian float64')
    a = ap.parse_args()
    cfg_path = os.path.join(a.model, 'config.json')
    if not os.path.isfile(cfg_path):
        sys.exit(f'{cfg_path}: no such file (MODEL_DIR must hold config.json and the .safetensors files)')
    with open(cfg_path) as fh:
        cfg = json.load(fh)
    if (a.ids is None) == (a.tokens is None):
        ap.error('give exactly one of --ids and --tokens')
    ids = [int(s) for s in a.ids.split(',')] if a.ids else [(i * 7919 + 11) % cfg['vocab_size'] for i in range(a.tokens)]
    t0 = time.perf_counter()
    logits = forward(a.model, ids)
    sec = time.perf_counter() - t0
    if a.out:
        logits.astype('<f8').tofile(a.out)
    threads = os.environ.get('OPENBLAS_NUM_THREADS') or str(os.cpu_count())
    print(json.dumps({'tokens': len(ids), 'seconds': round(sec, 3), 'tokens_per_s': round(len(ids) / sec, 3), 'threads': threads}))


if __name__ == '__main__':
    main()
