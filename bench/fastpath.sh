#!/bin/sh
# fastpath.sh -- instructions per malloc(32)+free pair, counted by callgrind, memtally vs mimalloc
# usage: fastpath.sh BUILD_DIR [remote]
#   remote: the block is freed by another thread (fastpath.c, produce/consume)
#   LIB=path/to/libmemtally.so counts another build of memtally (an earlier commit's) instead
set -e
build=${1:-build}
mode=${2:-}
prog=$build/bench/fastpath
toggles="--toggle-collect=churn"
[ "$mode" = remote ] && toggles="--toggle-collect=produce --toggle-collect=consume"
count() { # LD_PRELOAD value -> instructions per pair inside churn, or produce and consume (inclusive)
  out=$(mktemp)
  LD_PRELOAD=$1 valgrind --tool=callgrind --callgrind-out-file="$out" $toggles "$prog" $mode >/dev/null 2>&1
  total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  rm -f "$out"
  # churn: 1000 warm-up pairs and 1000000 measured ones; remote: 1001 rounds of 1000 blocks
  echo "$total" | awk '{printf "%.1f", $1 / 1001000}'
}
mt=$(count "${LIB:-$PWD/$build/libmemtally.so}")
nc=""
[ -f "$build/nocheck/libmemtally.so" ] && nc=", memtally without its hardening $(count "$PWD/$build/nocheck/libmemtally.so")"
mi=$(count "$(ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2* | head -1)")
gl=$(count "")
echo "instructions per malloc(32)+free pair${mode:+ ($mode free)} (callgrind): memtally $mt$nc, mimalloc $mi, glibc $gl"
