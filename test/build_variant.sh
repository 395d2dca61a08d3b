#!/bin/bash
# build_variant.sh -- configure and build memtally with another compiler or build type (-Werror
# holds in every one), then run its API and stress tests from that build
# usage: build_variant.sh SRC OUT CC CXX BUILD_TYPE
set -eu
src=$1
out=$2
cmake -S "$src" -B "$out" -DCMAKE_C_COMPILER="$3" -DCMAKE_CXX_COMPILER="$4" -DCMAKE_BUILD_TYPE="$5" \
  -DMEMTALLY_SANITIZERS=OFF >/dev/null
cmake --build "$out" -j2 --target memtally memtally_static memtally_tool test_api test_stress
"$out/test/test_api"
"$out/test/test_stress" 4 1 500
echo "$3 $5 build ok"
