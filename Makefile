# corecatch: `make demo` runs the seed's abort demo under corecatch; `make test` installs what the
# tests need and runs every test. Both build the release binary once and reuse it.

CARGO ?= cargo
BIN := $(CURDIR)/target/release/corecatch
DEMO_OUT := $(CURDIR)/corecatch-artifacts

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

.PHONY: all build dist deb demo test deps venv lint check-boundaries check-no-s3 bench bench-capture bench-s3 clean

all: build

build:
	$(CARGO) build --release --locked

# System packages the tests use: gcc and g++ build the crash programs, gdb (with libc6-dbg) is
# the correctness oracle, gzip's gunzip checks our archives, time(1) measures peak memory,
# strace is a tracer to be refused by, chromium renders the HTML report, systemd-coredump is the
# real pipe handler of tests/it/systemd.rs (zstd checks its decoded cores byte for byte);
# busybox-static is the only shell in tests/it/dist.rs's empty root, openssl makes its TLS
# server's CA; man-db's man renders the package's pages (tests/it/deb.rs); age, age-keygen and
# ssh-keygen make keys and decrypt what --encrypt-to stored (tests/it/encrypt.rs).
# Installing systemd-coredump rewrites kernel.core_pattern, kernel.core_pipe_limit and
# fs.suid_dumpable for the whole machine (its postinst applies 50-coredump.conf): they are put
# back as they were, so the other tests keep the machine's settings. Other architectures
# (tests/it/cross.rs, tests/it/arm.rs): Debian's cross compilers with their C libraries,
# qemu-user to run their programs (it writes the guest's core), gdb-multiarch as the oracle,
# and the 32-bit x86 libc for gcc -m32 (not gcc-multilib: it removes the cross compilers).
# debuginfod is elfutils' real server of tests/it/debuginfod.rs, installed without recommends.
CROSS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross \
	gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross gcc-s390x-linux-gnu libc6-dev-s390x-cross \
	qemu-user gdb-multiarch libc6-dev-i386 lib32gcc-12-dev
CROSS_TOOLS := aarch64-linux-gnu-gcc arm-linux-gnueabihf-gcc powerpc64le-linux-gnu-gcc \
	s390x-linux-gnu-gcc qemu-aarch64 qemu-arm qemu-ppc64le qemu-s390x gdb-multiarch
deps:
	@if ! ( for c in $(CROSS_TOOLS); do command -v $$c >/dev/null || exit 1; done; \
		[ -f /usr/lib32/libc.so ] && [ -d /usr/lib/gcc/x86_64-linux-gnu/12/32 ] && \
		[ -f /usr/arm-linux-gnueabihf/lib/libc.so.6 ] ); then \
		echo "installing: $(CROSS)"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CROSS) || exit 1; \
	fi
	@command -v debuginfod >/dev/null || { echo "installing: debuginfod"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debuginfod; }
	@missing=""; \
	for c in gcc g++ gdb gunzip strace chromium zstd bzip2; do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	[ -d /usr/lib/debug/.build-id ] || missing="$$missing libc6-dbg"; \
	[ -x /usr/bin/time ] || missing="$$missing time"; \
	[ -x /lib/systemd/systemd-coredump ] || missing="$$missing systemd-coredump"; \
	dpkg -s busybox-static >/dev/null 2>&1 || missing="$$missing busybox-static"; \
	command -v man >/dev/null || missing="$$missing man-db"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v age >/dev/null || missing="$$missing age"; \
	command -v ssh-keygen >/dev/null || missing="$$missing openssh-client"; \
	python3 -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		pattern=$$(cat /proc/sys/kernel/core_pattern); limit=$$(cat /proc/sys/kernel/core_pipe_limit); \
		suid=$$(cat /proc/sys/fs/suid_dumpable); \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc g++ gdb libc6-dbg gzip time strace chromium python3-venv systemd-coredump zstd bzip2 busybox-static man-db openssl age openssh-client; \
		status=$$?; \
		echo "$$pattern" > /proc/sys/kernel/core_pattern 2>/dev/null || true; \
		echo "$$limit" > /proc/sys/kernel/core_pipe_limit 2>/dev/null || true; \
		echo "$$suid" > /proc/sys/fs/suid_dumpable 2>/dev/null || true; \
		exit $$status; \
	fi

# Python tools the tests use, in a venv of the project's own: junitparser (a real JUnit consumer),
# PyYAML (the examples), moto's server mode (the S3-compatible store tests/it/s3.rs starts on loopback).
# The release assets in dist/ (what a GitHub Release of tag v$(VERSION) holds; install.sh and
# the action download them): the static binary, stripped, with its DWARF in corecatch.debug
# (found through .gnu_debuglink), a tarball with README and licences, sha256sum files, VERSION
# and install.sh (so releases/latest/download/install.sh is the script).
# Static: glibc's crt-static with an explicit --target (so build scripts and proc macros stay
# dynamic) and a non-PIE executable (no loader, no run-time relocations). The dist profile
# (Cargo.toml) is what keeps it under 12 MB.
DIST_TARGET := x86_64-unknown-linux-gnu
DIST_NAME := corecatch-$(VERSION)-x86_64-linux
DIST_BUILD := target/$(DIST_TARGET)/dist/corecatch
DIST_STAGE := target/dist-stage
dist:
	RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' \
		$(CARGO) build --profile dist --locked --target $(DIST_TARGET) --bin corecatch
	rm -rf dist $(DIST_STAGE) && mkdir -p dist $(DIST_STAGE)/$(DIST_NAME)
	objcopy --only-keep-debug --compress-debug-sections=zlib $(DIST_BUILD) dist/corecatch.debug
	objcopy --strip-all --add-gnu-debuglink=dist/corecatch.debug $(DIST_BUILD) dist/$(DIST_NAME)
	cp dist/$(DIST_NAME) $(DIST_STAGE)/$(DIST_NAME)/corecatch
	cp README.md LICENSE-MIT LICENSE-APACHE $(DIST_STAGE)/$(DIST_NAME)/
	tar -C $(DIST_STAGE) --owner=0 --group=0 --sort=name -czf dist/$(DIST_NAME).tar.gz $(DIST_NAME)
	cd dist && sha256sum $(DIST_NAME) > $(DIST_NAME).sha256 && \
		sha256sum $(DIST_NAME).tar.gz > $(DIST_NAME).tar.gz.sha256
	cp install.sh dist/install.sh
	echo $(VERSION) > dist/VERSION
	@echo "dist/$(DIST_NAME): $$(stat -c %s dist/$(DIST_NAME)) bytes"

# A Debian package of the release binary: /usr/bin/corecatch, man pages and bash, zsh and fish
# completions generated from the clap definitions (src/bin/gen.rs), the licences.
DEB := dist/corecatch_$(VERSION)_amd64.deb
DEB_ROOT := target/deb-root
deb: dist build
	rm -rf $(DEB_ROOT) && mkdir -p $(DEB_ROOT)/DEBIAN $(DEB_ROOT)/usr/bin $(DEB_ROOT)/usr/share/man/man1 \
		$(DEB_ROOT)/usr/share/bash-completion/completions $(DEB_ROOT)/usr/share/zsh/vendor-completions \
		$(DEB_ROOT)/usr/share/fish/vendor_completions.d $(DEB_ROOT)/usr/share/doc/corecatch
	install -m 755 dist/$(DIST_NAME) $(DEB_ROOT)/usr/bin/corecatch
	target/release/corecatch-gen man $(DEB_ROOT)/usr/share/man/man1
	gzip -9n $(DEB_ROOT)/usr/share/man/man1/*.1
	target/release/corecatch-gen completions target/deb-completions
	install -m 644 target/deb-completions/corecatch.bash $(DEB_ROOT)/usr/share/bash-completion/completions/corecatch
	install -m 644 target/deb-completions/_corecatch $(DEB_ROOT)/usr/share/zsh/vendor-completions/_corecatch
	install -m 644 target/deb-completions/corecatch.fish $(DEB_ROOT)/usr/share/fish/vendor_completions.d/corecatch.fish
	cat LICENSE-MIT LICENSE-APACHE > $(DEB_ROOT)/usr/share/doc/corecatch/copyright
	gzip -9nc README.md > $(DEB_ROOT)/usr/share/doc/corecatch/README.md.gz
	printf '%s\n' "Package: corecatch" "Version: $(VERSION)" "Architecture: amd64" \
		"Maintainer: corecatch developers <corecatch@users.noreply.github.com>" \
		"Installed-Size: $$(du -sk $(DEB_ROOT)/usr | cut -f1)" "Section: devel" "Priority: optional" \
		"Homepage: https://github.com/corecatch/corecatch" \
		"Description: catch core dumps in CI and print their backtraces" \
		" Wraps a command, catches the core dumps of everything it starts, prints a" \
		" symbolized backtrace of every thread and stores the compressed cores as" \
		" build artifacts. Statically linked." > $(DEB_ROOT)/DEBIAN/control
	dpkg-deb --root-owner-group --build $(DEB_ROOT) $(DEB)

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

test: deps venv build dist deb check-boundaries check-no-s3
	CORECATCH_DIST=$(CURDIR)/dist $(CARGO) test --release --locked

# Peers on the same cores (gdb bt and bt full, eu-stack; an aarch64 core from QEMU against
# eu-stack and gdb-multiarch), with ratios; bt against a baseline
# corecatch (BASELINE=path, else commit d3d948e built once, see bench/bt.sh). Not part of `make test`.
bench: build dist
	bash bench/dist.sh
	bash bench/bt.sh
	bash bench/bt-aarch64.sh
	bash bench/compress.sh
	bash bench/bundle.sh

# The overhead of --capture ptrace on fork-heavy and signal-heavy commands, vs bare and kernel.
bench-capture: build
	bash bench/capture.sh

# Upload and download throughput of a 1 GiB artifact vs `aws s3 cp`, on moto on loopback.
bench-s3: build venv
	bash bench/s3.sh

# A build without the `s3` feature (no tokio, no AWS SDK) must still work for local artifacts;
# without `debuginfod` (and `circleci`, no ureq) the backtrace asks no server.
check-no-s3:
	$(CARGO) check --no-default-features --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

# Layering. Each top-level module has a rank; a file may name `crate::X` only for X of a lower
# rank or its own module, so the layers point one way and no import cycle can form between them:
#   0 escape exit_code progress  1 error sys  2 core_pattern elf_core  3 modules link_map
#   4 unwind symbolize  5 backtrace  6 report artifacts  7 source remote  8 config  9 cli app
# The pure modules (parsers, the unwinder, renderers, the capture choice) touch neither the
# file system nor processes nor sys. clap stays in cli.rs (and bin/gen.rs, which renders it),
# nix in sys/, tokio and the AWS SDK in remote/s3.rs, ureq in remote/fetch/circleci.rs,
# remote/debuginfod.rs and remote/http.rs.
LAYERS := error:1 escape:0 exit_code:0 progress:0 sys:1 core_pattern:2 elf_core:2 modules:3 link_map:3 \
	unwind:4 symbolize:4 backtrace:5 report:6 artifacts:6 source:7 remote:7 config:8 cli:9 app:9
PURE := src/core_pattern.rs src/elf_core src/modules.rs src/link_map.rs src/unwind src/report \
	src/source/capture.rs src/source/apport/format.rs src/source/systemd/format.rs
check-boundaries:
	@grep -rnE 'crate::[a-z_0-9]+' src --include=*.rs | grep -vE '^src/(main|lib)\.rs:' | \
		awk -v layers="$(LAYERS)" 'BEGIN { n = split(layers, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, ":"); rank[kv[1]] = kv[2] } } \
		{ file = $$0; sub(/:.*/, "", file); line = $$0; sub(/^[^:]*:[^:]*:/, "", line); if (line ~ /^[ \t]*\/\//) next; \
		  m = file; sub(/^src\//, "", m); sub(/[\/.].*/, "", m); \
		  if (!(m in rank)) { print file ": module " m " has no rank in LAYERS"; bad = 1; next } \
		  while (match(line, /crate::[a-z_0-9]+/)) { pre = RSTART > 1 ? substr(line, RSTART - 1, 1) : ""; \
		    t = substr(line, RSTART + 7, RLENGTH - 7); line = substr(line, RSTART + RLENGTH); \
		    if (pre ~ /[A-Za-z_0-9]/ || t == m || t == "self" || t == "super") continue; \
		    if (!(t in rank)) { print file ": crate::" t " has no rank in LAYERS"; bad = 1 } \
		    else if (rank[t] >= rank[m]) { print file ": " m " (layer " rank[m] ") must not use crate::" t " (layer " rank[t] ")"; bad = 1 } } } \
		END { exit bad }'
	@! grep -rnE '^[^"/]*\b(std::(fs|process)\b|crate::sys\b)|use std::\{[^}]*\b(fs|process)\b' $(PURE) --include=*.rs | grep -v '/tests\.rs:' \
		|| { echo "a pure module above does I/O"; exit 1; }
	@! grep -rnE '\bclap::' src --include=*.rs | grep -vE '^src/(cli|bin/gen)\.rs' || { echo "clap outside src/cli.rs and src/bin/gen.rs"; exit 1; }
	@! grep -rnE '\bnix::' src --include=*.rs | grep -v '^src/sys/' || { echo "nix outside src/sys/"; exit 1; }
	@! grep -rnE '\b(tokio|aws_[a-z_]+)::' src --include=*.rs | grep -v '^src/remote/s3.rs' || { echo "tokio/aws outside src/remote/s3.rs"; exit 1; }
	@! grep -rnE '\bureq::' src --include=*.rs | grep -vE '^src/remote/(fetch/circleci|debuginfod|http)\.rs' || { echo "ureq outside src/remote/fetch/circleci.rs, src/remote/debuginfod.rs and src/remote/http.rs"; exit 1; }

clean:
	$(CARGO) clean
	$(MAKE) -C fixtures/abort clean
	rm -rf $(DEMO_OUT) dist
