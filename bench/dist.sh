#!/usr/bin/env bash
# The release binary (issue 17): its size beside the dynamic build's (stripped), start-up time
# (`--version`, `bt` of the abort demo's core; hyperfine, warm cache) of each, and the time from
# an image without corecatch to a working one: install.sh against a loopback HTTP server
# serving dist/ into an empty directory, then `corecatch --version`. Target: under 2 s.
# Needs `make dist` (the Makefile's bench target builds it). Not a test: the machines are noisy.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
W=${W:-/tmp/bench-work}/dist
RUNS=${RUNS:-30}
DYN=${DYN:-$ROOT/target/release/corecatch}
VERSION=$(cat "$ROOT/dist/VERSION")
STATIC=$ROOT/dist/corecatch-$VERSION-x86_64-linux
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing (apt-get install hyperfine)" >&2; exit 2; }
[ -x "$STATIC" ] || { echo "bench: $STATIC is missing: make dist" >&2; exit 2; }
rm -rf "$W" && mkdir -p "$W/core"
strip -o "$W/dynamic-stripped" "$DYN"

# A core of the abort demo, next to its executable.
gcc -g -O0 -o "$W/core/dump" "$ROOT/fixtures/abort/main.c"
(cd "$W/core" && ulimit -c unlimited && "$ROOT/target/release/corecatch" run --keep-cores \
  --bundle never -q --out "$W/core/out" -- ./dump >/dev/null 2>&1) || true
CORE=$(ls "$W"/core/out/*.core.gz | head -n 1)

median() { # command -> median seconds
  hyperfine -N -w 3 -r "$RUNS" --export-json "$W/h.json" "$1" >/dev/null 2>&1
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$W/h.json"
}
ms() { python3 -c "print(f'{float(\"$1\")*1000:.1f} ms')"; }

printf '%-28s %14s %14s\n' "" "static (dist)" "dynamic"
printf '%-28s %14s %14s\n' "size, stripped" "$(stat -c %s "$STATIC") B" "$(stat -c %s "$W/dynamic-stripped") B"
for what in "--version" "bt $CORE"; do
  s=$(median "$STATIC $what"); d=$(median "$DYN $what")
  printf '%-28s %14s %14s\n' "corecatch ${what%% *}" "$(ms "$s")" "$(ms "$d")"
done

# From nothing to a working corecatch: the script fetched from the server, piped to sh.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 "$port" --directory "$ROOT/dist" >/dev/null 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null' EXIT

until curl -fsS "http://127.0.0.1:$port/VERSION" >/dev/null 2>&1; do sleep 0.1; done
install_once="rm -rf $W/bin && curl -fsSL http://127.0.0.1:$port/install.sh | \
  CORECATCH_BASE_URL=http://127.0.0.1:$port CORECATCH_INSTALL_DIR=$W/bin sh >/dev/null 2>&1 && $W/bin/corecatch --version >/dev/null"
hyperfine -w 1 -r 10 --export-json "$W/h.json" "$install_once" >/dev/null 2>&1

t=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$W/h.json")
printf '%-28s %14s %14s\n' "empty image -> corecatch" "$(ms "$t")" "(target < 2 s)"
