# bhsync — one command runs every test: `make test` (what .ci/run calls).
#
#   make test     install what is missing, then Rust tests (unit, property, header
#                 check, the bhsync command end to end), the C tests under valgrind,
#                 and the admin endpoint read by Python's Prometheus parser
#   make demo     run the demo
#   make header   regenerate include/bhsync.h after changing src/ffi
#   make bench    run the comparison benchmarks (long; not part of `make test`)
#   make fuzz     run every fuzz target for FUZZ_SECONDS each (needs nightly Rust)

CARGO   ?= cargo
CC      ?= gcc
BUILD   := build
CFLAGS  := -std=c11 -Wall -Wextra -Werror -g -Iinclude
CLIBS   := -lpthread -ldl -lm
VALGRIND := valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
            --show-leak-kinds=definite,indirect,possible --error-exitcode=1

FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_TARGETS := proof_decode reconcile_message_decode crdt_decode clock_decode gossip_decode membership_decode \
                wire_decode node_message_decode storage_record_decode chain_decode
CARGO_FUZZ_VERSION := 0.13.2

.PHONY: test deps rust-test c-test python-test fuzz-smoke fuzz fuzz-tools demo header bench clean

test: deps rust-test c-test python-test fuzz-smoke
	@echo "make test: all suites passed"

# Installs what a fresh machine lacks. Rust, gcc and make come with the machine; valgrind
# is installed from Debian's packages when absent.
deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
	@command -v $(CC) >/dev/null || { echo "$(CC) not found: apt-get install build-essential"; exit 1; }
	@command -v valgrind >/dev/null || { echo "installing valgrind"; \
	  (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null || { echo "could not install valgrind: apt-get install valgrind"; exit 1; }; }

rust-test:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

$(BUILD)/test_replica: tests/c/test_replica.c include/bhsync.h rust-test
	@mkdir -p $(BUILD)
	$(CARGO) build --lib
	$(CC) $(CFLAGS) $< target/debug/libbhsync.a $(CLIBS) -o $@

c-test: $(BUILD)/test_replica
	$(VALGRIND) $(BUILD)/test_replica

# /metrics parsed by prometheus_client's text parser and /health by json, in a venv
# under build/ (python3 comes with the machine; python3-venv is installed when absent).
VENV := $(BUILD)/venv
PROMETHEUS_CLIENT_VERSION := 0.26.0

$(VENV)/.installed:
	@command -v python3 >/dev/null || { echo "python3 not found: apt-get install python3 python3-venv"; exit 1; }
	@python3 -m venv $(VENV) 2>/dev/null || { echo "installing python3-venv"; rm -rf $(VENV); \
	  (apt-get update -qq && apt-get install -y -qq python3-venv) >/dev/null && python3 -m venv $(VENV); } \
	  || { echo "could not create a venv: apt-get install python3-venv"; exit 1; }
	$(VENV)/bin/pip install -q --disable-pip-version-check prometheus_client==$(PROMETHEUS_CLIENT_VERSION)
	@touch $@

python-test: $(VENV)/.installed
	$(CARGO) build --bin bhsync
	$(VENV)/bin/python tests/python/test_admin.py target/debug/bhsync

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

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
