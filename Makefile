# Top-level wrapper around CMake.  The two commands a newcomer needs:
#   make demo    run the main job
#   make test    build everything and pass every test (sanitizer builds too)

PREFIX ?= /usr/local
JOBS   ?= $(shell nproc)
CMAKE  ?= cmake
CTEST  ?= ctest --output-on-failure -j $(JOBS)
# ON: the MPI part (libcrew_mpi, crew-mpi) must be built and tested, so a
# missing Open MPI fails the build instead of skipping its tests (deps
# installs it); AUTO: built when found; OFF: never.
MPI    ?= ON

.PHONY: all deps build test test-release test-asan test-tsan install-check fuzz demo bench install clean

all: build

deps:
	@scripts/deps.sh build

# Release build with gcc: what users install.
build: deps
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc \
	    -DCREW_MPI=$(MPI) >/dev/null
	$(CMAKE) --build build -j $(JOBS)

test-release: build
	cd build && $(CTEST)

# ASan + UBSan with clang (which also builds the fuzz targets and replays
# their seed corpus as ordinary tests).
test-asan: deps
	$(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DCREW_MPI=$(MPI) \
	    -DCREW_SANITIZE=address -DCREW_BUILD_FUZZ=ON >/dev/null
	$(CMAKE) --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST)

# ThreadSanitizer with clang.
test-tsan: deps
	$(CMAKE) -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DCREW_MPI=$(MPI) \
	    -DCREW_SANITIZE=thread >/dev/null
	$(CMAKE) --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(CTEST)

test: test-release test-asan test-tsan install-check

# The installed package must be usable with pkg-config and find_package.
install-check: build
	rm -rf build/stage
	$(CMAKE) --install build --prefix $(CURDIR)/build/stage >/dev/null
	scripts/install_check.sh $(CURDIR)/build/stage

# Run the fuzz targets for a minute in total (clang + libFuzzer).
fuzz: deps
	$(CMAKE) -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
	    -DCREW_SANITIZE=address -DCREW_BUILD_FUZZ=ON -DCREW_BUILD_TESTS=OFF >/dev/null
	$(CMAKE) --build build-fuzz -j $(JOBS)
	tests/fuzz/run.sh build-fuzz 60

demo: build
	scripts/demo.sh build

bench:
	@scripts/deps.sh bench
	$(CMAKE) -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc \
	    -DCREW_BUILD_BENCH=ON -DCREW_BUILD_TESTS=OFF >/dev/null
	$(CMAKE) --build build-bench -j $(JOBS)
	bench/run.sh build-bench

install: build
	$(CMAKE) --install build --prefix $(PREFIX)

clean:
	rm -rf build build-asan build-tsan build-fuzz build-bench
