"""Writes the GGUF block-decoder fixtures (golden/gguf/quants.gguf, quants.expected.safetensors).

An independent implementation decides the expected values: llama.cpp's gguf-py (its GGUFWriter
writes the container, its `quants` module dequantizes every block). Run once, results committed:

    PYTHONPATH=<llama.cpp>/gguf-py python3 golden/gguf/make_quants.py

with llama.cpp from node-llama-cpp's npm tarball (docs/gguf.md) and numpy. The quantized
tensors hold random bytes (every bit pattern of qs/qh/scales is a valid block) with the f16
super-block scales set to moderate random values, so each decoder sees every code path; Q8_0 and
Q4_0 also hold one tensor quantized from real values by gguf-py's quantizer.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFWriter, quants

OUT = Path(__file__).resolve().parent
rng = np.random.default_rng(20261126)

# bytes per block and elements per block, ggml's table
LAYOUT = {T.Q8_0: (34, 32), T.Q4_0: (18, 32), T.Q4_K: (144, 256), T.Q5_K: (176, 256), T.Q6_K: (210, 256)}
# byte offsets of the f16 scales inside a block: Q8_0/Q4_0 d at 0; Q4_K/Q5_K d at 0, dmin at 2; Q6_K d at 208
F16_AT = {T.Q8_0: [0], T.Q4_0: [0], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def random_blocks(qtype, rows, cols):
    size, per = LAYOUT[qtype]
    n = rows * cols // per
    b = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    for at in F16_AT[qtype]:
        scale = (rng.uniform(0.001, 0.1, size=n) * rng.choice([-1, 1], size=n)).astype(np.float16)
        b[:, at:at + 2] = scale.view(np.uint8).reshape(n, 2)
    return b.reshape(rows, cols // per * size)


w = GGUFWriter(str(OUT / 'quants.gguf'), 'fixture')
# metadata of every value type the reader knows
w.add_uint8('fixture.u8', 200)
w.add_int8('fixture.i8', -100)
w.add_uint16('fixture.u16', 60000)
w.add_int16('fixture.i16', -30000)
w.add_uint32('fixture.u32', 4000000000)
w.add_int32('fixture.i32', -2000000000)
w.add_float32('fixture.f32', 0.1)
w.add_uint64('fixture.u64', 2**53 - 1)
w.add_int64('fixture.i64', -(2**40))
w.add_float64('fixture.f64', 0.1)
w.add_bool('fixture.bool', True)
w.add_string('fixture.str', 'phi3 \u00e9')
w.add_array('fixture.arr_f32', [0.5, -1.25, 3.0])
w.add_array('fixture.arr_str', ['a', 'bc'])

expected = {}
x = rng.standard_normal((2, 32)).astype(np.float32)
w.add_tensor('f32', x)
expected['f32'] = x
h = rng.standard_normal((2, 32)).astype(np.float16)
w.add_tensor('f16', h)
expected['f16'] = h.astype(np.float32)
for name, qtype, rows, cols in [('bf16', T.BF16, 2, 32), ('q8_0', T.Q8_0, 2, 64), ('q4_0', T.Q4_0, 2, 64)]:
    v = (rng.standard_normal((rows, cols)) * 3).astype(np.float32)
    q = quants.quantize(v, qtype)
    w.add_tensor(name, q, raw_dtype=qtype)
    expected[name] = quants.dequantize(q, qtype)
for name, qtype, rows, cols in [('q8_0_random', T.Q8_0, 2, 64), ('q4_0_random', T.Q4_0, 2, 64),
                                ('q4_k', T.Q4_K, 2, 512), ('q5_k', T.Q5_K, 2, 512), ('q6_k', T.Q6_K, 3, 256)]:
    q = random_blocks(qtype, rows, cols)
    w.add_tensor(name, q, raw_dtype=qtype)
    expected[name] = quants.dequantize(q, qtype)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

# the expected values as float32 safetensors, written by hand (header JSON, then the bytes)
header = {}
blob = b''
for name, v in expected.items():
    a = np.ascontiguousarray(v, dtype='<f4')
    header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [len(blob), len(blob) + a.nbytes]}
    blob += a.tobytes()
text = json.dumps(header, separators=(',', ':')).encode()
text += b' ' * (-len(text) % 8)
(OUT / 'quants.expected.safetensors').write_bytes(struct.pack('<Q', len(text)) + text + blob)
print('wrote', OUT / 'quants.gguf', OUT / 'quants.expected.safetensors', file=sys.stderr)
