#!/bin/sh
# instructions.sh -- total instructions of one benchmark under memtally and mimalloc (callgrind)
# usage: instructions.sh BUILD_DIR PROGRAM ARGS...   e.g. instructions.sh build b_mstress 0.25 1
#   LIB=path/to/libmemtally.so counts another build of memtally (an earlier commit's) instead
set -e
build=$1
shift
prog=$build/bench/$1
shift
total() { # LD_PRELOAD value, then the program's arguments -> instructions of the whole run
  pre=$1
  shift
  out=$(mktemp)
  LD_PRELOAD=$pre valgrind --tool=callgrind --callgrind-out-file="$out" "$prog" "$@" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
  rm -f "$out"
}
lib=${LIB:-$PWD/$build/libmemtally.so}
mi=$(ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2* | head -1)
echo "instructions of $(basename "$prog") $* (callgrind): memtally $(total "$lib" "$@"), mimalloc $(total "$mi" "$@")"
