#!/usr/bin/env python3
"""Copies a GGUF keeping only its first N blocks (blk.0 .. blk.N-1), with <arch>.block_count = N.

Why: llama.cpp computes every layer of a decode; to compare layers 0..N-1 of a long run (4,200
tokens at full size) with a phi4-ts dump that stops after those layers, a GGUF cut to N blocks
gives the same nodes for those layers (a layer reads only the layers before it) in a fraction of
the time. Everything else (metadata, rope factors, embeddings, final norm) is copied unchanged;
the cut model's logits are not the full model's and must not be compared.

    PYTHONPATH=LLAMA_CPP_DIR/gguf-py python3 tools/llamacpp/gguf-first-layers.py IN.gguf N OUT.gguf
"""
import os
import re
import sys

import gguf


def main() -> None:
    if len(sys.argv) != 4 or not sys.argv[2].isdigit() or int(sys.argv[2]) < 1:
        print("usage: gguf-first-layers.py IN.gguf N OUT.gguf (N >= 1 blocks kept)", file=sys.stderr)
        sys.exit(2)
    src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    try:
        reader = gguf.GGUFReader(src, "r")
    except (OSError, ValueError) as e:
        print(f"gguf-first-layers.py: {src}: not a readable GGUF ({e})", file=sys.stderr)
        sys.exit(2)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    key = gguf.Keys.LLM.BLOCK_COUNT.format(arch=arch)
    total = reader.fields[key].contents()
    if n > total:
        print(f"gguf-first-layers.py: {src} has {total} blocks, fewer than N = {n}", file=sys.stderr)
        sys.exit(2)
    # The reader's tensor list is what copy_with_new_metadata writes: drop blk.N and later.
    block = re.compile(r"^blk\.(\d+)\.")
    tensors = [t for t in reader.tensors if not (m := block.match(t.name)) or int(m.group(1)) < n]
    writer = gguf.GGUFWriter(out + ".tmp", arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():  # as gguf-py's gguf_new_metadata.py copies them
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        value = n if field.name == key else field.contents()
        writer.add_key_value(field.name, value, kind, sub_type=sub)
    for t in tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in tensors:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()
    os.replace(out + ".tmp", out)  # no half-written OUT
    print(f"{out}: {n} of {total} blocks, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
