# corecatch: `make demo` runs the seed's abort demo under corecatch; `make test` installs what the
# tests need and runs every test. Both build the release binary once and reuse it.

CARGO ?= cargo
BIN := $(CURDIR)/target/release/corecatch
DEMO_OUT := $(CURDIR)/corecatch-artifacts

.PHONY: all build demo test deps venv lint check-boundaries check-no-s3 bench bench-capture bench-s3 clean

all: build

build:
	$(CARGO) build --release --locked

# System packages the tests use: gcc and g++ build the crash programs, gdb (with libc6-dbg) is
# the correctness oracle, gzip's gunzip checks our archives, time(1) measures peak memory,
# strace is a tracer to be refused by, chromium renders the HTML report, systemd-coredump is the
# real pipe handler of tests/it/systemd.rs (zstd checks its decoded cores byte for byte).
# Installing systemd-coredump rewrites kernel.core_pattern, kernel.core_pipe_limit and
# fs.suid_dumpable for the whole machine (its postinst applies 50-coredump.conf): they are put
# back as they were, so the other tests keep the machine's settings.
deps:
	@missing=""; \
	for c in gcc g++ gdb gunzip strace chromium zstd; do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	[ -d /usr/lib/debug/.build-id ] || missing="$$missing libc6-dbg"; \
	[ -x /usr/bin/time ] || missing="$$missing time"; \
	[ -x /lib/systemd/systemd-coredump ] || missing="$$missing systemd-coredump"; \
	python3 -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		pattern=$$(cat /proc/sys/kernel/core_pattern); limit=$$(cat /proc/sys/kernel/core_pipe_limit); \
		suid=$$(cat /proc/sys/fs/suid_dumpable); \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc g++ gdb libc6-dbg gzip time strace chromium python3-venv systemd-coredump zstd; \
		status=$$?; \
		echo "$$pattern" > /proc/sys/kernel/core_pattern 2>/dev/null || true; \
		echo "$$limit" > /proc/sys/kernel/core_pipe_limit 2>/dev/null || true; \
		echo "$$suid" > /proc/sys/fs/suid_dumpable 2>/dev/null || true; \
		exit $$status; \
	fi

# Python tools the tests use, in a venv of the project's own: junitparser (a real JUnit consumer),
# PyYAML (the examples), moto's server mode (the S3-compatible store tests/it/s3.rs starts on loopback).
VENV := $(CURDIR)/target/venv
venv:
	@$(VENV)/bin/python -c 'import junitparser, yaml, moto' 2>/dev/null && [ -x $(VENV)/bin/moto_server ] || { \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install -q 'junitparser==5.0.3' 'pyyaml==6.0.3' 'moto[server]==5.2.5'; }

demo: build
	$(MAKE) -C fixtures/abort dump
	@echo "+ corecatch run --out $(DEMO_OUT) -- ./dump"
	@cd fixtures/abort && { $(BIN) run --out $(DEMO_OUT) -- ./dump; status=$$?; \
		echo "(./dump exited with status $$status, passed through by corecatch)"; }
	@echo; echo "artifacts in $(DEMO_OUT):"; ls -l $(DEMO_OUT)

test: deps venv build check-boundaries check-no-s3
	$(CARGO) test --release --locked

# Peers on the same cores (gdb, eu-stack), with ratios. Not part of `make test`.
bench: build
	bash bench/bt.sh
	bash bench/compress.sh

# The overhead of --capture ptrace on fork-heavy and signal-heavy commands, vs bare and kernel.
bench-capture: build
	bash bench/capture.sh

# Upload and download throughput of a 1 GiB artifact vs `aws s3 cp`, on moto on loopback.
bench-s3: build venv
	bash bench/s3.sh

# A build without the `s3` feature (no tokio, no AWS SDK) must still work for local artifacts.
check-no-s3:
	$(CARGO) check --no-default-features --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

# Layering: clap only in cli.rs, nix/procfs only under sys/, tokio and the AWS SDK only in
# sink/s3.rs, ureq only in fetch/circleci.rs (tests excepted).
check-boundaries:
	@! grep -rnE '\bclap::' src --include=*.rs | grep -v '^src/cli.rs' || { echo "clap outside src/cli.rs"; exit 1; }
	@! grep -rnE '\b(nix|procfs)::' src --include=*.rs | grep -v '^src/sys/' || { echo "nix/procfs outside src/sys/"; exit 1; }
	@! grep -rnE '\b(tokio|aws_[a-z_]+)::' src --include=*.rs | grep -v '^src/sink/s3.rs' || { echo "tokio/aws outside src/sink/s3.rs"; exit 1; }
	@! grep -rnE '\bureq::' src --include=*.rs | grep -v '^src/fetch/circleci.rs' || { echo "ureq outside src/fetch/circleci.rs"; exit 1; }

clean:
	$(CARGO) clean
	$(MAKE) -C fixtures/abort clean
	rm -rf $(DEMO_OUT)
