# The two commands of the setup contract, plus bench. Each installs what it needs first.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build test demo bench sanitize clean format

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash scripts/install-deps.sh --bench
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DBW_BUILD_BENCH=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target nn_embedding_bench nn_gemm_bench prep_core_probe
	@bash bench/prep/run.sh
	@bash bench/dlrm/run.sh
	@BENCH_RECALL_SETS=sift5k bash bench/recall/run.sh
	@bash bench/tune/run.sh
	@$(BUILD)/nn_gemm_bench
	@$(BUILD)/nn_embedding_bench --benchmark_min_time=0.3

# The core kernels and parsers under AddressSanitizer + UndefinedBehaviorSanitizer.
sanitize: deps
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DBW_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	@cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS)

format:
	@clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD)-asan
