#!/usr/bin/env bash
# The cost of `corecatch run --capture ptrace` (tracing every fork, exec and signal) against the
# bare command and `--capture kernel`, with hyperfine; prints ratios to the bare wall time.
# Not a test: the machines are noisy. Target (issue 5): ptrace <= 1.3x bare on the fork-heavy one.
#
#   bench/capture.sh            RUNS=10 by default; BIN= another corecatch
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${BIN:-$ROOT/target/release/corecatch}
RUNS=${RUNS:-10}
OUT=$(mktemp -d /tmp/corecatch-bench-capture.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
command -v hyperfine >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null
}

# 1000 short processes (fork + exec + exit + SIGCHLD each); 20000 signals sent to and handled by
# one process (each is a signal-delivery-stop under the tracer).
FORK='for i in $(seq 1000); do /bin/true; done'
SIGNALS='trap ":" USR1; i=0; while [ $i -lt 20000 ]; do kill -USR1 $$; i=$((i+1)); done'

bench() { # name command
  local name=$1 cmd=$2
  hyperfine -N --style basic --runs "$RUNS" --warmup 1 --export-json "$OUT/$name.json" \
    -n bare "bash -c '$cmd'" \
    -n kernel "$BIN run --capture kernel --out $OUT/a -- bash -c '$cmd'" \
    -n ptrace "$BIN run --capture ptrace --out $OUT/a -- bash -c '$cmd'" >/dev/null
  python3 - "$OUT/$name.json" "$name" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
bare = r["bare"]["median"]
for k in ("bare", "kernel", "ptrace"):
    print(f"{sys.argv[2]:8} {k:7} median {r[k]['median']*1000:8.1f} ms  ({r[k]['median']/bare:4.2f}x bare)")
PY
}
bench fork "$FORK"
bench signals "$SIGNALS"
