#!/bin/bash
# build_clang.sh -- configure and build memtally with clang (-Werror), then run its API test
set -eu
src=$1
out=$2
cmake -S "$src" -B "$out" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DMEMTALLY_SANITIZERS=OFF >/dev/null
cmake --build "$out" -j2 --target memtally memtally_static test_api test_stress
"$out/test/test_api"
"$out/test/test_stress" 4 1 500
echo "clang build ok"
