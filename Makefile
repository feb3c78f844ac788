# bhsync — one command runs every test: `make test` (what .ci/run calls).
#
#   make test     install what is missing, then Rust tests (unit, property, header
#                 check), and the C tests under valgrind
#   make demo     run the demo
#   make header   regenerate include/bhsync.h after changing src/ffi
#   make bench    run the comparison benchmarks (long; not part of `make test`)

CARGO   ?= cargo
CC      ?= gcc
BUILD   := build
CFLAGS  := -std=c11 -Wall -Wextra -Werror -g -Iinclude
CLIBS   := -lpthread -ldl -lm
VALGRIND := valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
            --show-leak-kinds=definite,indirect,possible --error-exitcode=1

.PHONY: test deps rust-test c-test demo header bench clean

test: deps rust-test c-test
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

demo:
	$(CARGO) run --release -- demo

header:
	BHSYNC_WRITE_HEADER=1 $(CARGO) build --lib
	@echo "include/bhsync.h regenerated"

bench:
	$(CARGO) bench --bench state -- --json

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
