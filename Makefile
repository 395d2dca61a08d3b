# Makefile -- memtally's commands: demo, check, bench (CMake and ctest underneath)
BUILD ?= build
JOBS ?= 2
CHECK_PKGS := cmake make gcc g++ pkgconf clang libclang-rt-14-dev zlib1g-dev libdw-dev elfutils python3 sqlite3 git perl golang-go valgrind \
  redis-server redis-tools prometheus \
  chromium libgoogle-perftools-dev
BENCH_PKGS := libmimalloc2.0 libjemalloc2 libgoogle-perftools-dev heaptrack valgrind libtalloc-dev
ROUNDS ?= 5
PAIRS ?= 15
SOAK_MINUTES ?= 10

.PHONY: all build check bench soak demo fuzz clean deps-check deps-bench install layers

all: build

deps-check:
	@sh scripts/ensure-packages.sh $(CHECK_PKGS)
	@command -v npm >/dev/null 2>&1 || sh scripts/ensure-packages.sh nodejs npm

deps-bench:
	@sh scripts/ensure-packages.sh $(CHECK_PKGS) $(BENCH_PKGS)
	@command -v npm >/dev/null 2>&1 || sh scripts/ensure-packages.sh nodejs npm

# Configure and build; never installs packages (check, demo and bench do).
build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

# Install the library, header, pkg-config and CMake files, the command, its man
# page and bash completion under PREFIX; builds first, never installs packages.
PREFIX ?= /usr/local
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

# The include graph of src/ by layer (scripts/layers.py; make check runs the rule).
layers:
	@python3 scripts/layers.py --graph
	@python3 scripts/layers.py

# Build everything and run every test (ctest prints the summary).
check: deps-check
	@$(MAKE) --no-print-directory build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# Run the benchmark suite under memtally, glibc, mimalloc, jemalloc, tcmalloc.
bench: deps-bench
	@$(MAKE) --no-print-directory build
	@python3 bench/run.py --build $(BUILD) --rounds $(ROUNDS) --markdown $(BUILD)/bench.md
	@echo "== the profiler at its default rate: memtally, then jemalloc's and tcmalloc's own samplers at 512 KiB"
	@rm -f $(BUILD)/prof-overhead.md
	@python3 bench/prof_overhead.py --build $(BUILD) --pairs $(PAIRS) --markdown $(BUILD)/prof-overhead.md
	@python3 bench/prof_overhead.py --build $(BUILD) --pairs $(PAIRS) --alloc jemalloc --markdown $(BUILD)/prof-overhead.md
	@python3 bench/prof_overhead.py --build $(BUILD) --pairs $(PAIRS) --alloc tcmalloc --markdown $(BUILD)/prof-overhead.md
	@python3 bench/prof_overhead.py --build $(BUILD) --instructions --scale 0.1 --markdown $(BUILD)/prof-overhead.md
	@echo "== profiling every allocation: memtally (rate 1) against heaptrack and jemalloc's profiler"
	@python3 bench/run.py --build $(BUILD) --rounds 3 --scale 0.1 --only cfrac,espresso,mixed,rptest-2t \
	  --allocs mt-noprof,mt-rate1,jemalloc-prof,heaptrack --base mt-rate1 --markdown $(BUILD)/bench-prof.md
	@echo "== the hardening's cost: memtally against the same build with it compiled out (-DMEMTALLY_HARDEN=OFF)"
	@cmake -S . -B $(BUILD)/nocheck -DMEMTALLY_HARDEN=OFF -DMEMTALLY_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD)/nocheck -j$(JOBS) --target memtally -- --no-print-directory
	@python3 bench/run.py --build $(BUILD) --rounds $(ROUNDS) --allocs memtally,mt-nocheck --base mt-nocheck \
	  --markdown $(BUILD)/bench-harden.md
	@sh bench/fastpath.sh $(BUILD)
	@sh bench/fastpath.sh $(BUILD) remote
	@sh bench/instructions.sh $(BUILD) b_mstress 0.25 1
	@echo "== allocs/op: malloc, a region, obstack, talloc"
	@$(BUILD)/bench/b_region 1000

# A long mixed multithreaded run: RSS drift, throughput variation, syscalls;
# writes $(BUILD)/soak.csv and $(BUILD)/soak.svg. Then the long variants of the
# reliability tests.
soak: deps-check
	@$(MAKE) --no-print-directory build
	@$(BUILD)/bench/soak --seconds $$(( $(SOAK_MINUTES) * 60 )) --threads 2 --csv $(BUILD)/soak.csv --svg $(BUILD)/soak.svg
	@echo "== the long reliability runs: 200 rounds of 32 threads, 10,000 forks under signals, a minute of fork against stdio"
	@$(BUILD)/test/test_rounds 32 50 200
	@$(BUILD)/test/test_fork signal 10000
	@$(BUILD)/test/test_fork deadlock 60
	@$(BUILD)/test/test_churn 10000 small

# Build, profile the example workload with memtally run, print the report
# with its recommendations and write a flame graph.
DEMO_OUT := $(BUILD)/demo
demo: deps-check
	@$(MAKE) --no-print-directory build
	@rm -rf $(DEMO_OUT)
	@echo "== memtally run --out $(DEMO_OUT) -- $(BUILD)/examples/index_demo"
	@$(BUILD)/memtally run --out $(DEMO_OUT) -- $(BUILD)/examples/index_demo
	@echo "\n== memtally report --by line (where the bytes are allocated)"
	@$(BUILD)/memtally report $(DEMO_OUT)/prof.*.exit.pb.gz --sample alloc_space --by line --top 5
	@echo "\n== memtally report --lifetimes (how long the blocks live, who frees them)"
	@$(BUILD)/memtally report $(DEMO_OUT)/prof.*.exit.pb.gz --lifetimes --top 3
	@$(BUILD)/memtally flame $(DEMO_OUT)/prof.*.exit.pb.gz --sample alloc_space -o $(DEMO_OUT)/flame.html

# The profile decoder's fuzz target, for longer than make check runs it.
FUZZ_SECONDS ?= 600
fuzz: deps-check
	@$(MAKE) --no-print-directory build
	@sh test/fuzz.sh $(BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
