# Thin wrapper over CMake presets (CMakePresets.json). Every target installs missing Debian
# packages first through scripts/install-deps, so a fresh machine needs nothing else.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
DEMO_ARGS ?=

.PHONY: all deps build test demo bench fuzz format lint clean help

all: build

help:
	@echo "make            build the release binaries (build/release)"
	@echo "make test       sanitizer build + every test through CTest (build/dev)"
	@echo "make demo       run the seed scenario end to end"
	@echo "make bench      run the benchmarks (docs/benchmarks.md)"
	@echo "make fuzz       build libFuzzer targets, run each FUZZ_SECONDS (default 60)"
	@echo "make format     clang-format every C source"
	@echo "make lint       check formatting and banned functions"
	@echo "make clean      remove build/"

deps:
	@scripts/install-deps --check || scripts/install-deps

build: deps
	cmake --preset release >/dev/null
	cmake --build build/release -j $(JOBS)

test: deps
	cmake --preset dev >/dev/null
	cmake --build build/dev -j $(JOBS)
	scripts/run-tests build/dev

demo: build
	scripts/demo $(DEMO_ARGS)

bench: build
	bench/run-all

fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build build/fuzz -j $(JOBS)
	fuzz/run-all build/fuzz $(FUZZ_SECONDS)

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

lint:
	scripts/check-format
	scripts/check-banned

clean:
	rm -rf build
