# Makefile -- memtally's commands: demo, check, bench (CMake and ctest underneath)
BUILD ?= build
JOBS ?= 2
CHECK_PKGS := cmake make gcc g++ clang python3 sqlite3 git perl golang-go valgrind
BENCH_PKGS := libmimalloc2.0 libjemalloc2 libgoogle-perftools-dev heaptrack valgrind
ROUNDS ?= 5
SOAK_MINUTES ?= 10

.PHONY: all build check bench soak demo clean deps-check deps-bench

all: build

deps-check:
	@sh scripts/ensure-packages.sh $(CHECK_PKGS)

deps-bench:
	@sh scripts/ensure-packages.sh $(CHECK_PKGS) $(BENCH_PKGS)

build: deps-check
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

# Build everything and run every test (ctest prints the summary).
check: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# Run the benchmark suite under memtally, glibc, mimalloc, jemalloc, tcmalloc.
bench: deps-bench build
	@python3 bench/run.py --build $(BUILD) --rounds $(ROUNDS) --markdown $(BUILD)/bench.md
	@echo "== profiling every allocation: memtally (rate 1) against heaptrack and jemalloc's profiler"
	@python3 bench/run.py --build $(BUILD) --rounds 3 --scale 0.1 --only cfrac,espresso,mixed,rptest-2t \
	  --allocs mt-noprof,mt-rate1,jemalloc-prof,heaptrack --base mt-rate1 --markdown $(BUILD)/bench-prof.md
	@sh bench/fastpath.sh $(BUILD)

# A long mixed multithreaded run: RSS drift, throughput variation, syscalls;
# writes $(BUILD)/soak.csv and $(BUILD)/soak.svg.
soak: build
	@$(BUILD)/bench/soak --seconds $$(( $(SOAK_MINUTES) * 60 )) --threads 2 --csv $(BUILD)/soak.csv --svg $(BUILD)/soak.svg

# Build, profile the example workload on memtally and print its report.
DEMO_OUT := $(BUILD)/demo
demo: build
	@rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	@echo "== examples/index_demo under memtally (MEMTALLY_STATS=1, MEMTALLY_PROF_OUT=$(DEMO_OUT)/prof)"
	@MEMTALLY_STATS=1 MEMTALLY_PROF_OUT=$(CURDIR)/$(DEMO_OUT)/prof \
	  LD_PRELOAD=$(CURDIR)/$(BUILD)/libmemtally.so $(BUILD)/examples/index_demo
	@echo "== where the bytes were allocated (go tool pprof -top -sample_index=alloc_space)"
	@go tool pprof -symbolize=none -top -nodecount=10 -sample_index=alloc_space $(DEMO_OUT)/prof.*.exit.pb.gz 2>/dev/null
	@echo "== what is still held at exit (-sample_index=inuse_space)"
	@go tool pprof -symbolize=none -top -nodecount=10 -sample_index=inuse_space $(DEMO_OUT)/prof.*.exit.pb.gz 2>/dev/null
	@echo "profile: $$(ls $(DEMO_OUT)/prof.*.exit.pb.gz)"

clean:
	rm -rf $(BUILD)
