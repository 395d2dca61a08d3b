#!/bin/sh
# setuid.sh -- a setuid program ignores MEMTALLY_*: run as nobody, it writes no file where the caller says
# usage: setuid.sh STATIC_TARGET   (needs root to make the setuid copy; exit 77 = skipped otherwise)
set -u
target=$1
[ "$(id -u)" = 0 ] || { echo "setuid.sh: needs root to make a setuid copy"; exit 77; }
command -v setpriv >/dev/null || { echo "setuid.sh: setpriv (util-linux) missing"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir "$work/out" && chmod 777 "$work/out"
cp "$target" "$work/plain" && cp "$target" "$work/suid"
chown root:root "$work/suid" && chmod 4755 "$work/suid"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups env MEMTALLY_PROF_OUT="$work/out/$1" MEMTALLY_STATS=1 "$work/$1"; }
fail=0
# the same program without the setuid bit honours the variables: the test can see a write
as_nobody plain >"$work/plain.out" 2>"$work/plain.err"
ls "$work/out" | grep -q '^plain\.' || { echo "FAIL: the plain copy wrote no profile (the test cannot see writes)"; fail=1; }
grep -q "memtally statistics" "$work/plain.err" || { echo "FAIL: the plain copy printed no statistics"; fail=1; }
as_nobody suid >"$work/suid.out" 2>"$work/suid.err"
grep -q "static done" "$work/suid.out" || { echo "FAIL: the setuid copy did not run"; fail=1; }
if ls "$work/out" | grep -q '^suid\.'; then echo "FAIL: the setuid copy wrote files: $(ls "$work/out")"; fail=1; fi
if grep -q "memtally" "$work/suid.err"; then echo "FAIL: the setuid copy read MEMTALLY_STATS: $(cat "$work/suid.err")"; fail=1; fi
[ $fail = 0 ] && echo "setuid: MEMTALLY_* ignored by the setuid copy, honoured by the plain one"
exit $fail
