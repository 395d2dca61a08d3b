#!/bin/bash
# preload.sh -- run a real program with libmemtally.so preloaded and check its output
# usage: preload.sh CASE LIBMEMTALLY BINDIR
# Every case checks the program's own output against a known answer, and that
# memtally served the process (its exit statistics on stderr count blocks).
set -u
case_name=$1
lib=$2
bindir=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MEMTALLY_STATS=1
err=$work/stderr

run() { # run CMD... with memtally preloaded; stdout to $work/out
  LD_PRELOAD=$lib "$@" >"$work/out" 2>"$err"
}

fail() {
  echo "FAIL ($case_name): $*"
  echo "--- stdout"; head -c 3000 "$work/out" 2>/dev/null
  echo "--- stderr"; head -c 3000 "$err" 2>/dev/null
  exit 1
}

expect_out() { # expected text of stdout
  local got
  got=$(cat "$work/out")
  [ "$got" = "$1" ] || fail "expected '$1', got '$got'"
}

check_served() { # memtally printed its statistics with a real allocation count
  grep -q "memtally statistics" "$err" || fail "no memtally statistics on stderr: not preloaded?"
  local n
  n=$(sed -n 's/^allocated .* in \([0-9]*\) blocks.*/\1/p' "$err" | sort -n | tail -1)
  [ -n "$n" ] && [ "$n" -ge "${1:-100}" ] || fail "memtally counted only '${n:-0}' allocations"
  if grep -q "memtally: error" "$err"; then fail "memtally reported an error"; fi
}

py=/usr/bin/python3
[ -x $py ] || py=$(command -v python3)

case $case_name in
python)
  run $py "$here/programs/churn.py" || fail "exit status $?"
  expect_out "60000 20000 60000 2997000.0 5442890 13255807fad145d1"
  check_served 2000 # pymalloc serves small objects from its own arenas
  ;;
sqlite)
  run sqlite3 :memory: -init /dev/null <"$here/programs/workload.sql" || fail "exit status $?"
  expect_out "$(printf '%s\n' '100000|49950000|9950500' '35|2700|1357650' '36|2700|1354950' '7|2705|1354820' \
    'user10000,user15000,user20000,user5000' '50000|199')"
  check_served 10000
  ;;
git)
  cd "$work" || exit 1
  export GIT_CONFIG_NOSYSTEM=1 HOME=$work GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
  LD_PRELOAD=$lib git init -q repo 2>"$err" || fail "git init"
  cd repo || exit 1
  git config user.name t && git config user.email t@example.invalid
  for c in 1 2 3 4 5; do
    for f in $(seq 1 40); do seq $((f * c)) $((f * c + 500)) >"file$f.txt"; done
    LD_PRELOAD=$lib git add -A 2>>"$err" && LD_PRELOAD=$lib git commit -qm "commit $c" 2>>"$err" || fail "git commit $c"
  done
  LD_PRELOAD=$lib git gc -q 2>>"$err" || fail "git gc"
  LD_PRELOAD=$lib git fsck --full 2>>"$err" >/dev/null || fail "git fsck"
  run git log --format=%s
  expect_out "$(printf 'commit %s\n' 5 4 3 2 1)"
  LD_PRELOAD=$lib git show HEAD~2:file7.txt 2>>"$err" | head -1 >"$work/out"
  expect_out "21"
  check_served 100
  ;;
gcc)
  run gcc -O2 -o "$work/hello" "$here/programs/hello_gcc.c" || fail "gcc exit status"
  check_served 1000
  run "$work/hello" || fail "compiled program failed"
  expect_out "compiled 500500"
  ;;
redis)
  # a service that rewrites its argv and environment (setproctitle), under memtally run,
  # driven by redis-cli and redis-benchmark, shut down cleanly: its files are in --out
  command -v redis-server >/dev/null || fail "redis-server is not installed (make check installs it)"
  tool=$bindir/../memtally
  port=$((20000 + $$ % 20000))
  cd "$work" || exit 1
  "$tool" run --out "$work/prof" -- redis-server --port $port --save "" --appendonly no \
    --bind 127.0.0.1 >"$work/out" 2>"$err" &
  runpid=$!
  for _ in $(seq 100); do redis-cli -p $port ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  redis-cli -p $port ping 2>/dev/null | grep -q PONG || fail "redis-server did not answer on $port"
  for i in $(seq 300); do echo "SET key$i value$i"; done | redis-cli -p $port >/dev/null
  [ "$(redis-cli -p $port get key77)" = value77 ] || fail "GET key77"
  redis-benchmark -p $port -n 5000 -q -t set,get,lpush >/dev/null 2>&1 || fail "redis-benchmark"
  redis-cli -p $port shutdown nosave >/dev/null 2>&1
  wait $runpid || fail "memtally run exited $? after a clean shutdown"
  ls "$work"/prof/prof.redis-server.*.exit.pb.gz >/dev/null 2>&1 || fail "no redis-server exit profile in --out"
  ! ls -a "$work" | grep -q 'pb\.gz$' || fail "a profile was written in the working directory"
  grep -q "the process that allocated most: redis-server" "$work/out" || fail "run did not summarize redis-server"
  grep -q "did not reach\|no profile from" "$work/out" && fail "run says the server ended without a profile"
  ;;
gcc_processes)
  # one command, many processes (the driver, cc1, as, collect2, ld): each its own files,
  # named by program; the summary is cc1's, the one that allocated most
  tool=$bindir/../memtally
  printf 'int f%d(int x) { return x * %d; }\n' $(seq 1 400 | awk '{print $1, $1}') >"$work/big.c"
  "$tool" run --out "$work/prof" -- gcc -O2 -c "$work/big.c" -o "$work/big.o" >"$work/out" 2>"$err" ||
    fail "memtally run gcc"
  ls "$work"/prof/prof.cc1.*.exit.pb.gz >/dev/null 2>&1 || fail "no cc1 profile"
  ls "$work"/prof/prof.gcc.*.exit.pb.gz >/dev/null 2>&1 || fail "no gcc driver profile"
  grep -q "the process that allocated most: cc1 " "$work/out" || fail "the summary is not cc1's"
  grep -q "other process" "$work/out" || fail "the other processes are not counted"
  ;;
python_profile)
  # python3 under memtally run: its profile is named python3, deflated, and a report of it
  # (python frees most of its memory at exit) falls back to what was allocated, with a note
  tool=$bindir/../memtally
  "$tool" run --rate 4096 --out "$work/prof" -- $py "$here/programs/churn.py" >"$work/out" 2>"$err" ||
    fail "memtally run python3"
  prof=$(ls "$work"/prof/prof.python3*.exit.pb.gz 2>/dev/null | head -1)
  [ -n "$prof" ] || fail "no python3 exit profile"
  grep -q "60000 20000 60000" "$work/out" || fail "python's own output is missing"
  "$tool" report "$prof" --top 5 >"$work/report" 2>"$work/report.err" || fail "report of the python profile"
  grep -q "by function, total" "$work/report" || fail "no table"
  raw=$(python3 -c "import gzip,sys; print(len(gzip.decompress(open(sys.argv[1],'rb').read())))" "$prof")
  [ "$raw" -gt "$(stat -c %s "$prof")" ] || fail "the profile is not compressed"
  ;;
perl)
  run perl "$here/programs/churn.pl" || fail "exit status $?"
  expect_out "100000 99997 1348455 200 key001156 key099214"
  check_served 100000
  ;;
cxx)
  run "$bindir/mt_cxx" || fail "exit status $?"
  expect_out "consumed 80000 checksum 3692940654940"
  check_served 80000
  ;;
fork)
  MEMTALLY_STATS=0 LD_PRELOAD=$lib timeout 120 "$bindir/fork_threads" >"$work/out" 2>"$err" || fail "exit status $?"
  expect_out "forks 200 failed 0"
  ;;
thread_exits)
  # pthread_exit, cancellation and main's pthread_exit unwind through memtally's root frames
  MEMTALLY_PROF_RATE=1 run timeout 120 "$bindir/thread_exits" || fail "exit status $?"
  expect_out "joined 40 cleaned 40"
  check_served 40
  ;;
*)
  echo "unknown case $case_name"; exit 2 ;;
esac
echo "ok ($case_name)"
