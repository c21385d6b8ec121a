#!/usr/bin/env bash
# What the debug bundle costs (issue 16): on the abort demo and on a program linking ten shared
# libraries of its own (each built with -g), `corecatch collect --keep-cores` on the same core
# with --bundle never and --bundle auto (hyperfine medians, warm cache), the bundle's size, and
# the core's own compression time, estimated as collect --bundle never minus bt on the raw core
# (collect = report + compression + manifest). Target: the bundle adds less than that. The
# third row is the shared 2 GiB bench core, whose program links libc like the demo.
# Not a test: the machines are noisy.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
W=${W:-/tmp/bench-work}/bundle
RUNS=${RUNS:-10}
BIN=${BIN:-$ROOT/target/release/corecatch}
mkdir -p "$W"
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing (apt-get install hyperfine)" >&2; exit 2; }

# The ten-library program: lib0..lib9, each a few functions deep, main calls through all.
ten=$W/ten
if [ ! -x "$ten/prog" ]; then
  rm -rf "$ten" && mkdir -p "$ten"
  main="$ten/main.c"
  : > "$main"
  for i in $(seq 0 9); do
    next=$((i + 1))
    {
      echo "#include <stdlib.h>"
      if [ "$i" -lt 9 ]; then echo "void step$next(int);"; fi
      echo "static volatile int sink$i;"
      for k in $(seq 0 40); do echo "void pad${i}_$k(int x) { sink$i += x * $k; }"; done
      if [ "$i" -lt 9 ]; then echo "void step$i(int n) { pad${i}_0(n); step$next(n + 1); }"
      else echo "void step$i(int n) { pad${i}_0(n); abort(); }"; fi
    } > "$ten/lib$i.c"
  done
  # Link order: each library needs the next, so build them last to first.
  for i in $(seq 9 -1 0); do
    next=$((i + 1))
    gcc -g -O1 -shared -fPIC -o "$ten/lib$i.so" "$ten/lib$i.c" -L"$ten" \
      $([ "$i" -lt 9 ] && echo "-l$next") -Wl,-rpath,"$ten"
  done
  echo "void step0(int); int main(void) { step0(0); return 0; }" > "$main"
  gcc -g -O1 -o "$ten/prog" "$main" -L"$ten" -l0 -Wl,-rpath,"$ten"
fi
make -s -C "$ROOT/fixtures/abort" dump >/dev/null

core_of() { # dir exe -> the core it leaves (kernel core_pattern `core` in its directory)
  local d=$1 exe=$2
  rm -f "$d"/core "$d"/core.[0-9]*
  (cd "$d" && ulimit -c unlimited && { "$exe" || true; }) 2>/dev/null
  ls "$d"/core "$d"/core.[0-9]* 2>/dev/null | head -1 || true
}
echo "workload   core      bundle(files / stored)   collect never   collect auto   added   bt   core compression   added/compression"
# A third row on a realistic core: the shared bench's 2 GiB bigcore (built once), fewer runs.
BIG=${BIG:-$(dirname "$W")/bigcore/core}
for wl in demo ten big; do
  runs=$RUNS
  case $wl in
    demo) d=$W/demo; mkdir -p "$d"; cp "$ROOT/fixtures/abort/dump" "$d/dump"; exe=$d/dump ;;
    ten) d=$ten; exe=$ten/prog ;;
    big) runs=3 ;;
  esac
  if [ "$wl" = big ]; then
    [ -f "$BIG" ] || W=$(dirname "$W") bash "$ROOT/../shared/bench/make-workloads.sh" bigcore >&2
    core=$BIG
  else
    core=$(core_of "$d" "$exe")
  fi
  [ -n "$core" ] || { echo "bench: $exe left no core in $d (core_pattern: $(cat /proc/sys/kernel/core_pattern))" >&2; exit 2; }
  out=$W/out-$wl
  json=$W/$wl.json
  hyperfine -N -w 1 -r "$runs" --export-json "$json" \
    -n never "bash -c 'rm -rf $out && $BIN collect -q --keep-cores --bundle never --out $out $core'" \
    -n auto "bash -c 'rm -rf $out && $BIN collect -q --keep-cores --bundle auto --out $out $core'" \
    -n bt "$BIN bt $core" >/dev/null 2>&1
  rm -rf "$out" && "$BIN" collect -q --keep-cores --out "$out" "$core" 2>/dev/null
  files=$(tar -xzOf "$out/bundle.tar.gz" bundle.json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["files"]))')
  raw=$(tar -tvzf "$out/bundle.tar.gz" | awk '{s += $3} END {print s}')
  stored=$(stat -c %s "$out/bundle.tar.gz")
  python3 - "$json" "$wl" "$(stat -c %s "$core")" "$files" "$raw" "$stored" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
wl, core, files, raw, stored = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
added = r["auto"] - r["never"]
comp = r["never"] - r["bt"]
mib = lambda n: f"{n / 1048576:.1f} MiB"
print(f"{wl:8} {mib(core):>9}   {files:>3} files, {mib(raw)} / {mib(stored)}   "
      f"{r['never'] * 1000:8.1f} ms   {r['auto'] * 1000:8.1f} ms   {added * 1000:6.1f} ms   "
      f"{r['bt'] * 1000:5.1f} ms   {comp * 1000:8.1f} ms   {added / comp if comp > 0 else float('inf'):5.2f}x "
      f"-> {'met' if added < comp else 'NOT met'}")
PY
done
