#!/bin/sh
# fuzz.sh -- run the profile decoder's fuzz target for SECONDS on a seed corpus of real profiles
# usage: fuzz.sh BUILDDIR SECONDS
set -e
build=$1
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
corpus=$build/fuzz-corpus
mkdir -p "$corpus"
python3 "$here/make_profile.py" base "$corpus/base.pb.gz"
python3 "$here/make_profile.py" new "$corpus/new.pb.gz"
# hostile shapes at full size, a few KB each once gzipped (the target inflates them)
python3 "$here/make_profile.py" deep "$corpus/deep.pb.gz"
python3 "$here/make_profile.py" empties "$corpus/empties.pb.gz"
python3 "$here/make_profile.py" types "$corpus/types.pb.gz"
python3 "$here/make_profile.py" records "$corpus/records.pb.gz"
# a profile memtally itself wrote
MEMTALLY_PROF_RATE=4096 MEMTALLY_PROF_OUT="$corpus/real" "$build/test/prof_target" lib >/dev/null
log=$build/fuzz.log
status=0
"$build/fuzz_profile" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$build/fuzz-" "$corpus" >"$log" 2>&1 || status=$?
tail -12 "$log"
exit $status
