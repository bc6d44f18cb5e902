#!/usr/bin/env bash
# llama.cpp at full size and long context (docs/long-context-llamacpp.md, issue 19): phi4-tapdump
# on a bf16 GGUF of big/phi4-mini-synth at n_ctx 8,192, each run through /usr/bin/time -v (wall
# time and peak RSS in its .log) and under $LOCK (flock: one heavy run at a time), then
# `phi4 compare` on the phi4-ts dump of the same ids. From the repository root, after
# `npx tsc -p tsconfig.json`, `sh tools/llamacpp/build.sh LLAMA_CPP_DIR` and the GGUF (docs).
#
#   bash bench/llamacpp-long.sh a   4,200 ids: q_rot, k_rot and out of every layer and the logits,
#                                   rows 4080-4111; compared under the bf16 preset with $REF (default
#                                   big/long4200.safetensors, bench/long-context.sh dump4200) on the
#                                   taps both hold
#   bash bench/llamacpp-long.sh b   the first 1,000 of those ids: layer 0's qkv and q_rot, all rows;
#                                   phi4-ts dumps the same (layer 0 only) and compare names the
#                                   factor set llama.cpp used (ggml-org/llama.cpp#24823)
#
# Too few node names for compare's detection of llama.cpp, so --map llama.cpp; --preset bf16
# because bf16 matmuls round their activations as well (docs/long-context-llamacpp.md).
# IDS: the 4,200 ids, comma-separated (node dist/tools/long-ids.js 4200 > big/ids4200.txt).
set -uo pipefail
TAPDUMP=${TAPDUMP:-tools/llamacpp/phi4-tapdump}
GGUF=${GGUF:-big/phi4-mini-synth.bf16.gguf}
CKPT=${CKPT:-big/phi4-mini-synth}
IDS=${IDS:-big/ids4200.txt}
OUTDIR=${OUTDIR:-big}
REF=${REF:-$OUTDIR/long4200.safetensors}
LOCK=${LOCK:-/dev/null}
PHI4=${PHI4:-bin/phi4.js}   # a build whose dump has --taps/--layers/--positions
first() { tr -d '\n' < "$IDS" | cut -d, -f"1-$1"; }
timed() { # log file, command...: runs it under the lock and /usr/bin/time -v, prints time and peak RSS
  local log=$1; shift
  flock "$LOCK" /usr/bin/time -v "$@" 2> "$log"
  local rc=$?
  echo "exit $rc; $(grep -E 'Elapsed \(wall' "$log" | sed 's/^\s*//'); $(grep 'Maximum resident' "$log" | sed 's/^\s*//')"
}
case "${1:-}" in
  a) timed "$OUTDIR/llama4200.log" "$TAPDUMP" -m "$GGUF" --ids "$(first 4200)" -c 8192 -t 2 \
       --keep '^([QK]cur-[0-9]+\.rope|l_out-[0-9]+|result_output)$' --rows 4080-4111 -o "$OUTDIR/llama4200.safetensors"
     node "$PHI4" compare "$REF" "$OUTDIR/llama4200.safetensors" --preset bf16 --map llama.cpp
     echo "compare exit $?" ;;
  b) timed "$OUTDIR/llama1000.log" "$TAPDUMP" -m "$GGUF" --ids "$(first 1000)" -c 8192 -t 2 \
       --keep '^(wqkv-0|Qcur-0\.rope)$' -o "$OUTDIR/llama1000.safetensors"
     timed "$OUTDIR/p1000.log" env PHI4_WEIGHTS=stream node "$PHI4" dump "$CKPT" --ids "$(first 1000)" \
       --layers 0 --taps layers.0.qkv,layers.0.q_rot --out "$OUTDIR/p1000.safetensors" --force
     node "$PHI4" compare "$OUTDIR/p1000.safetensors" "$OUTDIR/llama1000.safetensors" --map llama.cpp --preset bf16
     echo "compare exit $?" ;;
  *) echo "usage: bash bench/llamacpp-long.sh a|b" >&2; exit 2 ;;
esac
