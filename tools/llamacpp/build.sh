#!/bin/sh
# Builds tools/llamacpp/phi4-tapdump against a llama.cpp source tree with its libraries built
# (docs/llamacpp.md: the source comes offline from node-llama-cpp's npm package).
#
#   sh tools/llamacpp/build.sh LLAMA_CPP_DIR [OUT_BINARY]
#
# LLAMA_CPP_DIR is the llama.cpp checkout, with libllama and libggml* in LLAMA_CPP_DIR/build/bin
# (cmake -B build && cmake --build build --target llama). The binary records the llama.cpp
# version it was built against (git describe of the checkout) in every dump's metadata.
set -eu
src=${1:?usage: sh tools/llamacpp/build.sh LLAMA_CPP_DIR [OUT_BINARY]}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here/phi4-tapdump}
lib=$src/build/bin
[ -f "$src/include/llama.h" ] || { echo "build.sh: $src/include/llama.h not found: not a llama.cpp checkout" >&2; exit 2; }
[ -e "$lib/libllama.so" ] || { echo "build.sh: $lib/libllama.so not found: build llama.cpp's libraries first" >&2; exit 2; }
commit=$(git -C "$src" describe --tags --always 2>/dev/null || echo unknown)
ggml=$(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)).*/\2/p' "$src/ggml/CMakeLists.txt" | paste -sd. -)
version="$commit, ggml ${ggml:-unknown}"
${CXX:-g++} -O2 -std=c++17 -Wall -Wextra -I "$src/include" -I "$src/ggml/include" \
  -DPHI4_LLAMA_VERSION="\"$version\"" "$here/phi4-tapdump.cpp" -o "$out" \
  -L "$lib" -lllama -lggml -lggml-base -Wl,-rpath,"$lib"
echo "built $out against llama.cpp $version"
