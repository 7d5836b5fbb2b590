# The two Quick start commands: `make run` and `make test`. Both install what is missing first.
BUILD_DIR ?= build
JOBS ?= 2
CONFIG ?= examples/quickstart.yaml
CMAKE_FLAGS ?=

.PHONY: all setup configure build run test test-unit bench clean

all: build

setup:
	@scripts/bootstrap

$(BUILD_DIR)/Makefile: CMakeLists.txt | setup
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

configure: setup
	@test -f $(BUILD_DIR)/Makefile || cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

# Only what a node needs, so the first `make run` does not wait for every test and benchmark.
run: configure
	cmake --build $(BUILD_DIR) -j$(JOBS) --target manifold
	$(BUILD_DIR)/cli/manifold node run --config $(CONFIG)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600 -j1

test-unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit

bench: build
	$(BUILD_DIR)/bench/bus_throughput

clean:
	rm -rf $(BUILD_DIR)
