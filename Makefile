# Makefile -- memtally's commands: demo, check, bench (CMake and ctest underneath)
BUILD ?= build
JOBS ?= 2
CHECK_PKGS := cmake make gcc g++ clang python3 sqlite3 git perl golang-go valgrind
BENCH_PKGS := libmimalloc2.0 libjemalloc2 libgoogle-perftools-dev
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
	@cmake --build $(BUILD) -j$(JOBS)

# Build everything and run every test (ctest prints the summary).
check: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# Run the benchmark suite under memtally, glibc, mimalloc, jemalloc, tcmalloc.
bench: deps-bench build
	@python3 bench/run.py --build $(BUILD) --rounds $(ROUNDS) --markdown $(BUILD)/bench.md
	@sh scripts/ensure-packages.sh valgrind
	@sh bench/fastpath.sh $(BUILD)

# A long mixed multithreaded run: RSS drift, throughput variation, syscalls;
# writes $(BUILD)/soak.csv and $(BUILD)/soak.svg.
soak: build
	@$(BUILD)/bench/soak --seconds $$(( $(SOAK_MINUTES) * 60 )) --threads 2 --csv $(BUILD)/soak.csv --svg $(BUILD)/soak.svg

# Build, run the example workload on memtally and print what it allocated.
demo: build
	@echo "== examples/index_demo under memtally (MEMTALLY_STATS=1)"
	@MEMTALLY_STATS=1 LD_PRELOAD=$(CURDIR)/$(BUILD)/libmemtally.so $(BUILD)/examples/index_demo

clean:
	rm -rf $(BUILD)
