#!/usr/bin/env bash
# corecatch bt beside gdb and eu-stack on the same cores: wall time (hyperfine median), peak RSS
# (/usr/bin/time -v median) and frame counts, with ratios. Not a test: the machines are noisy.
#
#   bench/bt.sh [WORKLOAD...]      default: small many (BENCH_WORKLOADS=all adds the Rust and
#                                  CPython workloads, which take many minutes to build once)
#
# Workloads come from ../shared/bench/make-workloads.sh (built once into $W).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
W=${W:-/tmp/bench-work}
OUT=${OUT:-$W/corecatch-bt}
RUNS=${RUNS:-5}
BIN=${BIN:-$ROOT/target/release/corecatch}
export W
mkdir -p "$OUT"
unset DEBUGINFOD_URLS

[ -d "$SHARED" ] || { echo "bench: $SHARED not found (the shared bench scripts)" >&2; exit 2; }
need=()
command -v eu-stack >/dev/null || need+=(elfutils)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ $# -gt 0 ]; then wls=("$@")
elif [ "${BENCH_WORKLOADS:-}" = all ]; then wls=(small many rg rgrel mdbook pync)
else wls=(small many); fi
dir_of() { case $1 in rg) echo rgcore ;; rgrel) echo rgrelcore ;; mdbook) echo mdbookcore ;; *) echo "$1" ;; esac; }

for wl in "${wls[@]}"; do
  d=$W/$(dir_of "$wl")
  [ -f "$d/core" ] || bash "$SHARED/make-workloads.sh" "$wl" >&2
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

cmd_for() {
  local p=$1 d=$2
  case $p in
    corecatch) echo "$BIN bt --exe $d/exe $d/core" ;;
    gdb)       echo "gdb -batch -iex 'set debuginfod enabled off' -iex 'set auto-load off' -ex 'thread apply all bt' $d/exe $d/core" ;;
    eu-stack)  echo "eu-stack -n 0 -i -s --core=$d/core -e $d/exe" ;;
  esac
}

frames() { # peer dir -> total frames printed
  local p=$1 d=$2 f=$OUT/$(basename "$d").$1.txt
  eval "$(cmd_for "$p" "$d")" > "$f" 2>&1 || true
  case $p in
    corecatch) grep -cE '^#[0-9]+ ' "$f" || true ;;
    gdb)       python3 "$SHARED/frames.py" gdb "$f" | sed -E 's/.*frames_total=([0-9]+).*/\1/' ;;
    eu-stack)  python3 "$SHARED/frames.py" eustack "$f" | sed -E 's/.*frames_total=([0-9]+).*/\1/' ;;
  esac
}

measure() { # peer dir -> "wall_s rss_mib"
  local p=$1 d=$2 c hf tv
  c=$(cmd_for "$p" "$d")
  hf=$OUT/$(basename "$d").$p.hf.json
  hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$hf" --output=null "$c" >/dev/null 2>&1 \
    || hyperfine --warmup 1 --runs "$RUNS" --export-json "$hf" --output=null "$c" >/dev/null 2>&1
  tv=$OUT/$(basename "$d").$p.timev; : > "$tv"
  for _ in $(seq 1 "$RUNS"); do eval "/usr/bin/time -v -a -o '$tv' $c" >/dev/null 2>&1 || true; done
  printf '%s %s\n' \
    "$(python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$hf")" \
    "$(awk -F': ' '/Maximum resident set size/ {print $2/1024}' "$tv" | median)"
}

printf '%-11s %-10s %9s %9s %8s %10s %10s\n' workload peer wall_s rss_MiB frames wall/ours rss/ours
for wl in "${wls[@]}"; do
  d=$W/$(dir_of "$wl")
  read -r ow orss < <(measure corecatch "$d")
  ofr=$(frames corecatch "$d")
  for p in corecatch gdb eu-stack; do
    if [ "$p" = corecatch ]; then w=$ow; r=$orss; fr=$ofr
    else read -r w r < <(measure "$p" "$d"); fr=$(frames "$p" "$d"); fi
    printf '%-11s %-10s %9s %9.1f %8s %10.2f %10.2f\n' "$wl" "$p" "$w" "$r" "$fr" \
      "$(python3 -c "print($w/max($ow,1e-9))")" "$(python3 -c "print($r/max($orss,1e-9))")"
  done
done
echo "(medians of $RUNS runs after a warm-up; outputs in $OUT)"
