#!/usr/bin/env bash
# corecatch bt beside eu-stack and gdb-multiarch on an aarch64 core (issue 15's speed target:
# at most half of eu-stack's time). The workload, fixtures/cross/deep_threads.c (eight threads,
# each 200 calls deep), is built static with aarch64-linux-gnu-gcc and crashed under
# qemu-aarch64, which writes the guest's core (no NT_FILE: every tool is given the executable).
# Wall time is hyperfine's median; frame counts show that the tools did the same work. Not a
# test: the machines are noisy.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
W=${W:-/tmp/bench-work}/aarch64
RUNS=${RUNS:-10}
BIN=${BIN:-$ROOT/target/release/corecatch}
mkdir -p "$W"
for t in aarch64-linux-gnu-gcc qemu-aarch64 gdb-multiarch eu-stack hyperfine; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing (make deps installs it; hyperfine: apt-get install hyperfine)" >&2; exit 2; }
done

exe=$W/deep_threads
if [ ! -x "$exe" ] || [ "$ROOT/fixtures/cross/deep_threads.c" -nt "$exe" ]; then
  aarch64-linux-gnu-gcc -g -O1 -static -pthread -o "$exe" "$ROOT/fixtures/cross/deep_threads.c"
  rm -f "$W"/qemu_*.core
fi
core=$(ls "$W"/qemu_deep_threads_*.core 2>/dev/null | head -1 || true)
if [ -z "$core" ]; then
  (cd "$W" && ulimit -c unlimited && { qemu-aarch64 "$exe" || true; })
  rm -f "$W/core" "$W"/core.[0-9]*
  core=$(ls "$W"/qemu_deep_threads_*.core | head -1)
fi

ours=("$BIN" bt --exe "$exe" "$core")
eu=(eu-stack -n 0 -e "$exe" --core "$core")
gdb=(gdb-multiarch -batch -nx -ex "set debuginfod enabled off" -ex "thread apply all bt" "$exe" "$core")
frames() { "$@" 2>/dev/null | grep -c '^ *#[0-9]' || true; }
echo "aarch64 core: $(du -h "$core" | cut -f1), frames: corecatch $(frames "${ours[@]}"), eu-stack $(frames "${eu[@]}"), gdb-multiarch $(frames "${gdb[@]}")"

json=$W/hyperfine.json
# The static release binary (`make dist`, what install.sh installs) too, when it was built.
static=$(ls "$ROOT"/dist/corecatch-*-x86_64-linux 2>/dev/null | head -1 || true)
extra=()
[ -n "$static" ] && extra=(-n corecatch-static "$static bt --exe $exe $core")
hyperfine -N -i -w 2 -r "$RUNS" --export-json "$json" -n corecatch "${ours[*]}" "${extra[@]}" \
  -n eu-stack "${eu[*]}" -n gdb-multiarch "${gdb[*]}" >/dev/null 2>&1 || \
  hyperfine -i -w 2 -r "$RUNS" --export-json "$json" -n corecatch "${ours[*]}" "${extra[@]}" \
  -n eu-stack "${eu[*]}" -n gdb-multiarch "${gdb[*]}" >/dev/null
python3 - "$json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
ours = r["corecatch"]
for name, t in r.items():
    print(f"{name:17} {t * 1000:8.1f} ms  {t / ours:5.2f}x corecatch")
for name in ("corecatch", "corecatch-static"):
    if name in r:
        ratio = r[name] / r["eu-stack"]
        print(f"target: {name} at most 0.5x eu-stack's time: {ratio:.2f}x -> {'met' if ratio <= 0.5 else 'NOT met'}")
PY
