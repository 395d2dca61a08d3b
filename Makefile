# Makefile -- memtally's commands: demo, check, bench (CMake and ctest underneath)
BUILD ?= build
JOBS ?= 2
CHECK_PKGS := cmake make gcc g++ clang python3 sqlite3 git perl
BENCH_PKGS := libmimalloc2.0 libjemalloc2 libgoogle-perftools-dev
ROUNDS ?= 5

.PHONY: all build check bench demo clean deps-check deps-bench

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

# Build, run the example workload on memtally and print what it allocated.
demo: build
	@echo "== examples/index_demo under memtally (MEMTALLY_STATS=1)"
	@MEMTALLY_STATS=1 LD_PRELOAD=$(CURDIR)/$(BUILD)/libmemtally.so $(BUILD)/examples/index_demo

clean:
	rm -rf $(BUILD)
