"""Checks a selective phi4-tapdump dump against a full one of the same run (docs/llamacpp.md):
every node of SELECTED must equal, bit for bit, the rows A..B of the same node in FULL, cut along
its token axis (the first numpy axis of length T, T from input_ids; a node without one whole).

    python3 tools/llamacpp/rows-check.py FULL.safetensors SELECTED.safetensors A-B

Exit 0 when all agree, 1 when one differs or is missing from FULL. Needs numpy.
"""
import json
import struct
import sys

import numpy as np


def load(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == '__metadata__':
            continue
        a, b = t['data_offsets']
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], '<f4' if t['dtype'] == 'F32' else '<i4').reshape(t['shape'])
    return header.get('__metadata__', {}), out


_, full = load(sys.argv[1])
meta, sel = load(sys.argv[2])
a, b = (int(x) for x in sys.argv[3].split('-'))
T = full['input_ids'].shape[-1]
cut = whole = 0
bad = []
for name, v in sel.items():
    if name == 'input_ids':
        continue
    f = full.get(name)
    if f is None:
        bad.append(f'{name}: not in the full dump')
        continue
    axis = next((i for i, s in enumerate(f.shape) if s == T), None)
    ref = f if axis is None else np.take(f, range(a, b + 1), axis=axis)
    cut, whole = (cut + 1, whole) if axis is not None else (cut, whole + 1)
    if ref.shape != v.shape or not np.array_equal(ref, v):
        bad.append(f'{name}: {list(v.shape)} differs from the full dump\'s rows {list(ref.shape)}')
print(f'selection {meta.get("selection")}')
print(f'{len(sel) - 1} nodes: {cut} cut to rows {a}-{b}, {whole} whole; {len(bad)} differ')
for line in bad:
    print('  ' + line)
sys.exit(1 if bad else 0)
