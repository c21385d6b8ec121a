# corecatch: `make demo` runs the seed's abort demo under corecatch; `make test` installs what the
# tests need and runs every test. Both build the release binary once and reuse it.

CARGO ?= cargo
BIN := $(CURDIR)/target/release/corecatch
DEMO_OUT := $(CURDIR)/corecatch-artifacts

.PHONY: all build demo test deps venv lint check-boundaries bench bench-capture clean

all: build

build:
	$(CARGO) build --release --locked

# System packages the tests use: gcc and g++ build the crash programs, gdb (with libc6-dbg) is
# the correctness oracle, gzip's gunzip checks our archives, time(1) measures peak memory,
# strace is a tracer to be refused by, chromium renders the HTML report.
deps:
	@missing=""; \
	for c in gcc g++ gdb gunzip strace chromium; do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	[ -d /usr/lib/debug/.build-id ] || missing="$$missing libc6-dbg"; \
	[ -x /usr/bin/time ] || missing="$$missing time"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc g++ gdb libc6-dbg gzip time strace chromium; \
	fi

# Python tools the tests use, in a venv of the project's own: junitparser (a real JUnit consumer).
VENV := $(CURDIR)/target/venv
venv:
	@$(VENV)/bin/python -c 'import junitparser, yaml' 2>/dev/null || { \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q 'junitparser==5.0.3' 'pyyaml==6.0.3'; }

demo: build
	$(MAKE) -C fixtures/abort dump
	@echo "+ corecatch run --out $(DEMO_OUT) -- ./dump"
	@cd fixtures/abort && { $(BIN) run --out $(DEMO_OUT) -- ./dump; status=$$?; \
		echo "(./dump exited with status $$status, passed through by corecatch)"; }
	@echo; echo "artifacts in $(DEMO_OUT):"; ls -l $(DEMO_OUT)

test: deps venv build check-boundaries
	$(CARGO) test --release --locked

# Peers on the same cores (gdb, eu-stack), with ratios. Not part of `make test`.
bench: build
	bash bench/bt.sh
	bash bench/compress.sh

# The overhead of --capture ptrace on fork-heavy and signal-heavy commands, vs bare and kernel.
bench-capture: build
	bash bench/capture.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

# Layering: clap only in cli.rs, nix/procfs only under sys/ (tests excepted).
check-boundaries:
	@! grep -rnE '\bclap::' src --include=*.rs | grep -v '^src/cli.rs' || { echo "clap outside src/cli.rs"; exit 1; }
	@! grep -rnE '\b(nix|procfs)::' src --include=*.rs | grep -v '^src/sys/' || { echo "nix/procfs outside src/sys/"; exit 1; }

clean:
	$(CARGO) clean
	$(MAKE) -C fixtures/abort clean
	rm -rf $(DEMO_OUT)
