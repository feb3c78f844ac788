# bhsync — one command runs every test: `make test` (what .ci/run calls).
#
#   make test     install what is missing, then Rust tests (unit, property, header
#                 check, the bhsync command end to end), the C tests under valgrind,
#                 the C++ tests (ctest), the examples, the Go and Python bindings'
#                 tests (go test; pytest and mypy --strict in a venv under build/), the
#                 admin endpoint read by Python's Prometheus parser and the Grafana
#                 dashboard's queries checked against it, the install test, and a fuzz pass
#   make go-test / python-test   only one binding's tests and example (Go and C++ build
#                 against the library installed into build/prefix)
#   make bench-ffi-go-python     per-call cost of bhs_get from Go and Python (ns/call)
#   make demo     run the demo
#   make header   regenerate include/bhsync.h after changing src/ffi
#   make bench    run the comparison benchmarks (long; not part of `make test`)
#   make bench-ffi  per-call cost of bhs_get from C and C++ against Node::get in Rust
#   make cpp-test the C++ binding's GoogleTest suite through ctest, built against the
#                 installed package with find_package (part of `make test`)
#   make examples build and run the C and C++ examples (part of `make test`)
#   make fuzz     run every fuzz target for FUZZ_SECONDS each (needs nightly Rust)
#   make install PREFIX=/usr/local [DESTDIR=…] [INSTALL_PROFILE=release|dev]
#                 the library (libbhsync.so.N, libbhsync.a, stripped, debug info apart),
#                 bhsync.h, pkg-config and CMake files and the bhsync command
#   make uninstall PREFIX=… [DESTDIR=…]   removes exactly what install wrote
#   make install-test  install into build/prefix, then build and run C (pkg-config,
#                 shared and static), CMake, Go and Python (wheel, asyncio) programs
#                 from directories outside the repository (part of `make test`)

CARGO   ?= cargo
CC      ?= gcc
BUILD   := build
CFLAGS  := -std=c11 -Wall -Wextra -Werror -g -Iinclude
CLIBS   := -lpthread -ldl -lm
# --fair-sched=yes: valgrind runs one thread at a time, and its default hand-off starves
# the node's engine threads (a three-node test took minutes instead of seconds).
VALGRIND := valgrind -q --fair-sched=yes --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
            --show-leak-kinds=definite,indirect,possible --error-exitcode=1

FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_TARGETS := addresses_decode proof_decode reconcile_message_decode crdt_decode clock_decode gossip_decode membership_decode \
                wire_decode node_message_decode storage_record_decode chain_decode ffi_calls
CARGO_FUZZ_VERSION := 0.13.2

.PHONY: test deps rust-test c-test cpp-test examples fuzz-smoke fuzz fuzz-tools demo header bench bench-ffi clean \
        lib go-test python-test python-venv admin-test bench-ffi-go-python install uninstall test-prefix install-test

test: deps rust-test c-test cpp-test examples go-test python-test admin-test install-test fuzz-smoke
	@echo "make test: all suites passed"

# Installs what a fresh machine lacks. Rust, gcc and make come with the machine; valgrind
# is installed from Debian's packages when absent.
deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
	@command -v $(CC) >/dev/null || { echo "$(CC) not found: apt-get install build-essential"; exit 1; }
	@command -v valgrind >/dev/null || { echo "installing valgrind"; \
	  (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null || { echo "could not install valgrind: apt-get install valgrind"; exit 1; }; }
	@missing=""; for tool in pkg-config:pkgconf cmake:cmake readelf:binutils objcopy:binutils strip:binutils; do \
	  command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool#*:}"; done; \
	  if [ -n "$$missing" ]; then echo "installing$$missing"; \
	  (apt-get update -qq && apt-get install -y -qq $$missing) >/dev/null || { echo "could not install$$missing: apt-get install$$missing"; exit 1; }; fi

rust-test:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

$(BUILD)/test_replica: tests/c/test_replica.c include/bhsync.h rust-test
	@mkdir -p $(BUILD)
	$(CARGO) build --lib
	$(CC) $(CFLAGS) $< target/debug/libbhsync.a $(CLIBS) -o $@

$(BUILD)/test_node: tests/c/test_node.c include/bhsync.h rust-test
	@mkdir -p $(BUILD)
	$(CARGO) build --lib
	$(CC) $(CFLAGS) $< target/debug/libbhsync.a $(CLIBS) -o $@

c-test: $(BUILD)/test_replica $(BUILD)/test_node
	$(VALGRIND) $(BUILD)/test_replica
	$(VALGRIND) $(BUILD)/test_node

# The C++ binding (bindings/cpp): its GoogleTest suite built against the installed
# package (find_package over build/prefix, made by test-prefix) and run through ctest.
CMAKE ?= cmake
CPP_BUILD := $(BUILD)/cpp-installed
cpp-test: test-prefix
	$(CMAKE) -S bindings/cpp/tests -B $(CPP_BUILD) -DCMAKE_PREFIX_PATH=$(TEST_PREFIX) >/dev/null
	$(CMAKE) --build $(CPP_BUILD) -j 1
	cd $(CPP_BUILD) && ctest --output-on-failure

# Two nodes, a write on one, read on the other: in C and in C++.
examples:
	$(CARGO) build --lib
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) examples/c/two_nodes.c target/debug/libbhsync.a $(CLIBS) -o $(BUILD)/example_c
	$(CXX) -std=c++17 -Wall -Wextra -Werror -g -Iinclude -Ibindings/cpp/include examples/cpp/two_nodes.cpp \
	  target/debug/libbhsync.a $(CLIBS) -o $(BUILD)/example_cpp
	$(BUILD)/example_c
	$(BUILD)/example_cpp

# ---- Go and Python bindings (docs/adr/051-go-python-bindings.md) ----
GO       ?= go
PYTHON   ?= python3
VENV     := $(BUILD)/venv
VENV_PY  := $(VENV)/bin/python
PROMETHEUS_CLIENT_VERSION := 0.26.0
LIBSO    := $(CURDIR)/target/debug/libbhsync.so
# cgo on; no VCS stamping (a CI checkout may not let go run git); no module downloads.
GOENV_RUN := CGO_ENABLED=1 GOFLAGS=-buildvcs=false GOPROXY=off

# The static and shared libraries the bindings link or load (debug profile).
lib:
	$(CARGO) build --lib

# The Go package links the library installed into build/prefix through pkg-config, as a
# user's program does (LD_LIBRARY_PATH finds libbhsync.so.N at run time); the in-tree
# build tag is vetted too. The example must build and show its write.
GO_PREFIX_ENV = PKG_CONFIG_PATH=$(TEST_PREFIX)/lib/pkgconfig LD_LIBRARY_PATH=$(TEST_PREFIX)/lib
go-test: test-prefix
	@command -v $(GO) >/dev/null || { echo "go not found: install Go 1.22+ (https://go.dev/dl)"; exit 1; }
	cd bindings/go && $(GOENV_RUN) $(GO_PREFIX_ENV) $(GO) vet ./... && $(GOENV_RUN) $(GO) vet -tags bhsync_intree ./... \
	  && $(GOENV_RUN) $(GO_PREFIX_ENV) $(GO) test -count=1 ./...
	cd examples/go && $(GOENV_RUN) $(GO_PREFIX_ENV) $(GO) run .

# A venv under build/ with pytest, mypy and the package, installed as a user does
# (`pip install ./bindings/python`: cargo builds libbhsync, the package carries it; the dev
# profile here, which the Rust tests built already), so a fresh machine needs only python3;
# reinstalled when the package's files change.
# The venv's checking tools; a new version reinstalls them (the stamp names the versions).
MYPY_VERSION := 2.4.1
PROMQL_PARSER_VERSION := 0.11.0
VENV_TOOLS := $(VENV)/.tools-mypy-$(MYPY_VERSION)-promql-parser-$(PROMQL_PARSER_VERSION)
$(VENV)/.installed: bindings/python/pyproject.toml bindings/python/setup.py $(wildcard bindings/python/bhsync/*.py)
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: apt-get install python3 python3-venv"; exit 1; }
	@test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV) 2>/dev/null || { echo "installing python3-venv"; rm -rf $(VENV); \
	  (apt-get update -qq && apt-get install -y -qq python3-venv) >/dev/null && $(PYTHON) -m venv $(VENV); } \
	  || { echo "could not create a venv: apt-get install python3-venv (Python 3.9+)"; exit 1; }
	$(VENV_PY) -m pip install -q --disable-pip-version-check 'pytest>=7,<10' prometheus_client==$(PROMETHEUS_CLIENT_VERSION)
	BHSYNC_CARGO_PROFILE=dev $(VENV_PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./bindings/python
	@touch $@

$(VENV_TOOLS): $(VENV)/.installed
	$(VENV_PY) -m pip install -q --disable-pip-version-check mypy==$(MYPY_VERSION) promql-parser==$(PROMQL_PARSER_VERSION)
	@rm -f $(VENV)/.tools-* && touch $@

python-venv: $(VENV)/.installed $(VENV_TOOLS)

# BHSYNC_LIB points at this tree's current debug library (the venv's packaged copy may be
# older than the Rust source); install-test runs the packaged library from a wheel.
python-test: lib python-venv
	BHSYNC_LIB=$(LIBSO) $(VENV_PY) -m pytest -q -p no:cacheprovider bindings/python/tests
	BHSYNC_LIB=$(LIBSO) $(VENV_PY) examples/python/two_nodes.py
	BHSYNC_LIB=$(LIBSO) $(VENV_PY) examples/python/two_nodes_async.py
	$(VENV_PY) -m mypy --strict --cache-dir $(BUILD)/mypy-cache bindings/python/bhsync examples/python/two_nodes_async.py

# Per-call cost of bhs_get (a present key) from Go and Python, on the release library.
BENCH_GO_CALLS ?= 200000
BENCH_PY_CALLS ?= 100000
bench-ffi-go-python: python-venv
	$(CARGO) build --lib --release
	cd bindings/go && $(GOENV_RUN) $(GO) test -tags bhsync_release -run '^$$' -bench . -benchtime $(BENCH_GO_CALLS)x .
	BHSYNC_LIB=$(CURDIR)/target/release/libbhsync.so $(VENV_PY) bindings/python/benchmarks/bench_get.py $(BENCH_PY_CALLS)
	@if [ -f $(BUILD)/ffi_get_rust_ns ]; then \
	  echo "for comparison, Node::get from Rust (make bench-ffi): $$(cat $(BUILD)/ffi_get_rust_ns) ns/call"; fi

# /metrics parsed by prometheus_client's text parser and /health by json (same venv);
# every metric docs/dashboard.json queries (parsed by promql-parser) is exported.
admin-test: python-venv
	$(CARGO) build --bin bhsync
	$(VENV_PY) tests/python/test_admin.py target/debug/bhsync
	$(VENV_PY) tests/python/test_dashboard.py target/debug/bhsync

# cargo-fuzz needs a nightly toolchain; it is installed from crates.io when missing.
# Without nightly (it cannot be fetched here), the fuzz pass is skipped with a message;
# the decoders' property tests still feed them arbitrary bytes on stable.
fuzz-tools:
	@if ! $(CARGO) +nightly --version >/dev/null 2>&1; then \
	  echo "fuzz: no nightly toolchain (rustup toolchain install nightly); skipping the fuzz pass"; \
	elif ! $(CARGO) fuzz --version >/dev/null 2>&1; then \
	  echo "installing cargo-fuzz $(CARGO_FUZZ_VERSION)"; \
	  $(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) -q; \
	fi

# A bounded fuzz pass over every decoder: part of `make test`.
fuzz-smoke: fuzz-tools
	@if $(CARGO) +nightly --version >/dev/null 2>&1; then \
	  mkdir -p $(BUILD) && cd fuzz && for target in $(FUZZ_TARGETS); do \
	    echo "fuzz $$target for $(FUZZ_SMOKE_SECONDS) s"; \
	    log=../$(BUILD)/fuzz-$$target.log; \
	    if $(CARGO) +nightly fuzz run -O $$target -- -max_total_time=$(FUZZ_SMOKE_SECONDS) >$$log 2>&1; then \
	      tail -n 1 $$log; \
	    else \
	      tail -n 40 $$log; echo "fuzz $$target failed: see $(BUILD)/fuzz-$$target.log and fuzz/artifacts/$$target"; exit 1; \
	    fi; \
	  done; \
	fi

fuzz: fuzz-tools
	cd fuzz && for target in $(FUZZ_TARGETS); do \
	  $(CARGO) +nightly fuzz run -O $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

demo:
	$(CARGO) run --release -- demo

header:
	BHSYNC_WRITE_HEADER=1 $(CARGO) build --lib
	@echo "include/bhsync.h regenerated"

bench:
	$(CARGO) bench --bench state -- --json
	$(CARGO) bench --bench reconcile -- --json
	$(CARGO) bench --bench time -- --json
	$(CARGO) bench --bench net -- --json
	$(CARGO) bench --bench storage -- --json
	$(CARGO) build --release --bin bhsync
	$(CARGO) bench --bench cluster -- --json

# Per-call cost of a read: Rust's Node::get, bhs_get called from Rust, from C and from
# C++, in nanoseconds per call with the ratio to Rust (release builds; about a minute).
BENCH_FFI_CALLS ?= 200000
bench-ffi:
	$(CARGO) build --release --lib
	@mkdir -p $(BUILD)
	$(CC) -std=c11 -O2 -Iinclude benches/ffi/get_c.c target/release/libbhsync.a $(CLIBS) -o $(BUILD)/bench_get_c
	$(CXX) -std=c++17 -O2 -Iinclude -Ibindings/cpp/include benches/ffi/get_cpp.cpp target/release/libbhsync.a \
	  $(CLIBS) -o $(BUILD)/bench_get_cpp
	$(CARGO) bench --bench ffi_get -- --calls $(BENCH_FFI_CALLS)
	$(BUILD)/bench_get_c $(BENCH_FFI_CALLS)
	$(BUILD)/bench_get_cpp $(BENCH_FFI_CALLS)

# ---- Installed like a system library (docs/adr/052-installed-library.md) ----
PREFIX ?= /usr/local
DESTDIR ?=
# release for a real install; dev (target/debug) for the tests, which reuse the test build.
INSTALL_PROFILE ?= release
INSTALL_TARGET_DIR := target/$(if $(filter dev,$(INSTALL_PROFILE)),debug,$(INSTALL_PROFILE))
INSTALL_ENV = PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" $(if $(LIBDIR),LIBDIR="$(LIBDIR)") $(if $(BINDIR),BINDIR="$(BINDIR)") \
              $(if $(INCLUDEDIR),INCLUDEDIR="$(INCLUDEDIR)") $(if $(DATADIR),DATADIR="$(DATADIR)")

install:
	$(CARGO) build --lib --bin bhsync --profile $(INSTALL_PROFILE)
	$(INSTALL_ENV) TARGET_DIR=$(INSTALL_TARGET_DIR) STAGE=$(BUILD)/install-stage sh packaging/install.sh install

uninstall:
	$(INSTALL_ENV) sh packaging/install.sh uninstall

# The tests' install: the debug build into build/prefix, redone only when one of its inputs
# is newer than the last install.
TEST_PREFIX := $(CURDIR)/$(BUILD)/prefix
TEST_PREFIX_INPUTS := target/debug/libbhsync.so target/debug/libbhsync.a target/debug/bhsync include/bhsync.h \
                      packaging bindings/cpp/include docs/dashboard.json
test-prefix:
	$(CARGO) build --lib --bin bhsync
	@if [ -f $(TEST_PREFIX)/.installed ] && [ -z "$$(find $(TEST_PREFIX_INPUTS) -newer $(TEST_PREFIX)/.installed)" ]; then \
	  echo "$(TEST_PREFIX) is up to date"; \
	else \
	  rm -rf $(TEST_PREFIX) && PREFIX=$(TEST_PREFIX) TARGET_DIR=target/debug STAGE=$(BUILD)/install-stage \
	    sh packaging/install.sh install && touch $(TEST_PREFIX)/.installed; \
	fi

install-test: test-prefix
	BHSYNC_CARGO_PROFILE=dev PYTHON=$(PYTHON) sh tests/install/run.sh $(TEST_PREFIX)

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
