#!/usr/bin/env bash
# The full-size long-context runs of docs/long-context.md, from the repository root, after
# `npx tsc -p tsconfig.json` and `phi4 synth --config golden/configs/phi-4-mini-instruct.json --out big/phi4-mini-synth`:
#   bash bench/long-context.sh dump4200     4,200 tokens, q_rot/k_rot/out of every layer + logits at rows 4080-4111
#   bash bench/long-context.sh layers01     4,200 tokens, the same taps of layers 0-1 only (time per layer, peak RSS)
#   bash bench/long-context.sh boundary     4,096 and 4,097 tokens, layer 0's qkv and q_rot, last 16 rows: the LongRoPE fingerprint
# Each run goes through /usr/bin/time -v (wall time, peak RSS in the log); weights are streamed
# from the page cache (PHI4_WEIGHTS=stream), so the resident set is the activations, not 7.67 GB of bf16.
set -euo pipefail
CKPT=${CKPT:-big/phi4-mini-synth}
OUTDIR=${OUTDIR:-big}
LOCK=${LOCK:-/dev/null}
ids() { node dist/tools/long-ids.js "$1"; }
run() { # name, ids count, dump flags...
  local name=$1 n=$2; shift 2
  PHI4_WEIGHTS=stream flock "$LOCK" /usr/bin/time -v node dist/src/cli/cli.js dump "$CKPT" --ids "$(ids "$n")" "$@" \
    --out "$OUTDIR/$name.safetensors" --force 2> "$OUTDIR/$name.log"
  grep -E 'Elapsed \(wall|Maximum resident' "$OUTDIR/$name.log"
}
case "${1:-}" in
  dump4200) run long4200 4200 --taps 'layers.*.q_rot,layers.*.k_rot,layers.*.out,logits' --positions 4080-4111 ;;
  layers01) # the same selection for layers 0-1 only: time per layer and peak RSS at T = 4,200
            run long4200-l01 4200 --layers 0-1 --taps 'layers.*.q_rot,layers.*.k_rot,layers.*.out' --positions 4080-4111 ;;
  boundary) # layer 0 only (the pass stops there); qkv is the fingerprint's input, q_rot its output
            for n in 4096 4097; do
              run long$n $n --layers 0 --taps layers.0.qkv,layers.0.q_rot --positions last:16
              node dist/bench/fingerprint.js "$OUTDIR/long$n.safetensors" "$CKPT"
            done ;;
  *) echo "usage: bench/long-context.sh dump4200|layers01|boundary" >&2; exit 2 ;;
esac
