"""A Phi3ForCausalLM safetensors checkpoint as a GGUF of arch "phi3", with llama.cpp's gguf-py.

    PYTHONPATH=<llama.cpp>/gguf-py python3 golden/gguf/to_gguf.py CKPT_DIR OUT.gguf --type bf16|f32|q8_0|q4_0

Names and metadata keys follow llama.cpp's own phi3 conversion (token_embd, blk.N.attn_qkv, ...,
rope_factors_long/short as F32 tensors, phi3.rope.dimension_count = rotary dims, ...). Ids only:
no tokenizer (tokenizer.ggml.model "none"). Norms and rope factors stay F32, as llama.cpp keeps
1-D tensors; 2-D weights are stored as --type. Used to make golden/gguf/*.gguf (docs/gguf.md).
"""

import argparse
import json
import struct
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFWriter, quants

ap = argparse.ArgumentParser()
ap.add_argument('ckpt')
ap.add_argument('out')
ap.add_argument('--type', default='bf16', choices=['f32', 'bf16', 'q8_0', 'q4_0'])
args = ap.parse_args()
ckpt = Path(args.ckpt)
cfg = json.loads((ckpt / 'config.json').read_text())


def tensors():
    """name -> float32 array, from every .safetensors file of the checkpoint."""
    out = {}
    for f in sorted(ckpt.glob('*.safetensors')):
        raw = f.read_bytes()
        n = struct.unpack('<Q', raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        for name, t in header.items():
            if name == '__metadata__':
                continue
            a, b = t['data_offsets']
            data = raw[8 + n + a:8 + n + b]
            if t['dtype'] == 'BF16':
                v = (np.frombuffer(data, '<u2').astype(np.uint32) << 16).view(np.float32)
            elif t['dtype'] == 'F32':
                v = np.frombuffer(data, '<f4')
            else:
                raise SystemExit(f'{name}: dtype {t["dtype"]} not handled')
            out[name] = v.reshape(t['shape'])
    return out


H = cfg['hidden_size']
nh = cfg['num_attention_heads']
rs = cfg.get('rope_scaling') or {}
rot = int(cfg.get('partial_rotary_factor', 1.0) * (H // nh))
w = GGUFWriter(args.out, 'phi3')
w.add_name(ckpt.name)
w.add_context_length(cfg['max_position_embeddings'])
w.add_rope_scaling_orig_ctx_len(cfg.get('original_max_position_embeddings', cfg['max_position_embeddings']))
w.add_embedding_length(H)
w.add_feed_forward_length(cfg['intermediate_size'])
w.add_block_count(cfg['num_hidden_layers'])
w.add_head_count(nh)
w.add_head_count_kv(cfg.get('num_key_value_heads', nh))
w.add_layer_norm_rms_eps(cfg['rms_norm_eps'])
w.add_rope_dimension_count(rot)
w.add_rope_freq_base(cfg.get('rope_theta', 10000.0))
w.add_sliding_window(cfg.get('sliding_window') or 0)
w.add_tokenizer_model('none')
w.add_vocab_size(cfg['vocab_size'])
w.add_bos_token_id(cfg['bos_token_id'])
w.add_eos_token_id(cfg['eos_token_id'])
if cfg.get('pad_token_id') is not None:
    w.add_pad_token_id(cfg['pad_token_id'])
if rs.get('type', rs.get('rope_type')) in ('longrope', 'su'):
    orig = cfg['original_max_position_embeddings']
    scale = cfg['max_position_embeddings'] / orig
    w.add_rope_scaling_attn_factors(1.0 if scale <= 1 else float(np.sqrt(1 + np.log(scale) / np.log(orig))))
    w.add_tensor('rope_factors_long.weight', np.array(rs['long_factor'], dtype=np.float32))
    w.add_tensor('rope_factors_short.weight', np.array(rs['short_factor'], dtype=np.float32))

NAMES = {'input_layernorm': 'attn_norm', 'self_attn.qkv_proj': 'attn_qkv', 'self_attn.o_proj': 'attn_output',
         'post_attention_layernorm': 'ffn_norm', 'mlp.gate_up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down'}
QTYPE = {'f32': None, 'bf16': T.BF16, 'q8_0': T.Q8_0, 'q4_0': T.Q4_0}[args.type]
for name, v in tensors().items():
    if name == 'model.embed_tokens.weight':
        g = 'token_embd.weight'
    elif name == 'model.norm.weight':
        g = 'output_norm.weight'
    elif name == 'lm_head.weight':
        g = 'output.weight'
    else:
        parts = name.split('.')  # model.layers.N.<module>.weight
        g = f'blk.{parts[2]}.{NAMES[".".join(parts[3:-1])]}.weight'
    v = np.ascontiguousarray(v, dtype=np.float32)
    if v.ndim == 1 or QTYPE is None:
        w.add_tensor(g, v)
    else:
        w.add_tensor(g, quants.quantize(v, QTYPE), raw_dtype=QTYPE)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
