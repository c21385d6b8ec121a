#!/usr/bin/env bash
# corecatch bt beside gdb and eu-stack on the same cores: wall time (hyperfine median), peak RSS
# (/usr/bin/time -v median) and frame counts, with ratios. Not a test: the machines are noisy.
#
#   bench/bt.sh [WORKLOAD...]      default: small many (BENCH_WORKLOADS=all adds the Rust and
#                                  CPython workloads, which take many minutes to build once)
#
# Rows per workload: `corecatch bt` (arguments on, the default), `bt` of a baseline corecatch
# from before frame arguments (see below), `bt --full` (every thread's locals), gdb's
# `thread apply all bt` and `thread apply all bt full`, and `eu-stack -n 0 -i -s`. Ratios are
# against this `bt`; then one `targets` line per workload checks issue 14's targets: `bt` at
# most 1.3x the baseline's time, `bt --full` at least 10x faster than gdb's `bt full`, peak RSS
# (of `bt` and of `bt --full`) no higher than eu-stack's.
#
# The baseline: BASELINE=/path/to/corecatch, else the commit BASELINE_REV (default d3d948e, the
# last one before frames had arguments) built once with `git archive` + `cargo build --release`
# into $W/corecatch-baseline/<rev>/ (its target dir seeded from ./target/release, so only the
# crate itself compiles). BASELINE=none leaves the baseline row out.
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
BASELINE=${BASELINE:-}
BASELINE_REV=${BASELINE_REV:-d3d948e}
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

# The baseline binary: $BASELINE, or $BASELINE_REV built once into the cache.
if [ -z "$BASELINE" ]; then
  rev=$(git -C "$ROOT" rev-parse --verify "$BASELINE_REV^{commit}")
  cache=$W/corecatch-baseline
  BASELINE=$cache/$rev/corecatch
  if [ ! -x "$BASELINE" ]; then
    echo "bench: building the baseline corecatch at $BASELINE_REV ($rev) into $cache" >&2
    rm -rf "$cache/$rev"; mkdir -p "$cache/$rev/src"
    git -C "$ROOT" archive "$rev" | tar -x -C "$cache/$rev/src"
    if [ ! -d "$cache/target/release" ] && [ -d "$ROOT/target/release" ]; then
      mkdir -p "$cache/target"; cp -a --reflink=auto "$ROOT/target/release" "$cache/target/"
    fi
    (cd "$cache/$rev/src" && CARGO_TARGET_DIR=$cache/target cargo build --release --locked -q)
    cp "$cache/target/release/corecatch" "$BASELINE"
  fi
elif [ "$BASELINE" = none ]; then BASELINE=
fi

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

cmd_for() {
  local p=$1 d=$2 gdb="gdb -batch -iex 'set debuginfod enabled off' -iex 'set auto-load off'"
  case $p in
    corecatch)      echo "$BIN bt --exe $d/exe $d/core" ;;
    corecatch-base) echo "$BASELINE bt --exe $d/exe $d/core" ;;
    corecatch-full) echo "$BIN bt --full --exe $d/exe $d/core" ;;
    gdb)            echo "$gdb -ex 'thread apply all bt' $d/exe $d/core" ;;
    gdb-full)       echo "$gdb -ex 'thread apply all bt full' $d/exe $d/core" ;;
    eu-stack)       echo "eu-stack -n 0 -i -s --core=$d/core -e $d/exe" ;;
  esac
}

frames() { # peer dir -> total frames printed
  local p=$1 d=$2 f=$OUT/$(basename "$d").$1.txt
  eval "$(cmd_for "$p" "$d")" > "$f" 2>&1 || true
  case $p in
    corecatch*) grep -cE '^#[0-9]+ ' "$f" || true ;;
    gdb*)       python3 "$SHARED/frames.py" gdb "$f" | sed -E 's/.*frames_total=([0-9]+).*/\1/' ;;
    eu-stack)   python3 "$SHARED/frames.py" eustack "$f" | sed -E 's/.*frames_total=([0-9]+).*/\1/' ;;
  esac
}

vars() { # peer dir -> locals lines printed (`        name = value` and `No locals.`), after frames
  local f=$OUT/$(basename "$2").$1.txt
  grep -cE '^        [^ ].* = |^No locals\.$' "$f" || true
}

measure() { # peer dir -> "wall_s rss_mib cpu_s" (cpu: hyperfine's mean user + system)
  local p=$1 d=$2 c hf tv
  c=$(cmd_for "$p" "$d")
  hf=$OUT/$(basename "$d").$p.hf.json
  hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$hf" --output=null "$c" >/dev/null 2>&1 \
    || hyperfine --warmup 1 --runs "$RUNS" --export-json "$hf" --output=null "$c" >/dev/null 2>&1
  tv=$OUT/$(basename "$d").$p.timev; : > "$tv"
  for _ in $(seq 1 "$RUNS"); do eval "/usr/bin/time -v -a -o '$tv' $c" >/dev/null 2>&1 || true; done
  printf '%s %s %s\n' \
    "$(python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$hf")" \
    "$(awk -F': ' '/Maximum resident set size/ {print $2/1024}' "$tv" | median)" \
    "$(python3 -c 'import json,sys; r = json.load(open(sys.argv[1]))["results"][0]; print("%.3f" % (r["user"] + r["system"]))' "$hf")"
}

ratio() { python3 -c "print('%.2f' % ($1 / max($2, 1e-9)))"; }
verdict() { python3 -c "print('ok' if $1 else 'MISSED')"; }

peers=(corecatch)
[ -n "$BASELINE" ] && peers+=(corecatch-base)
peers+=(corecatch-full gdb gdb-full eu-stack)
printf '%-11s %-15s %9s %9s %9s %8s %6s %9s %9s\n' workload peer wall_s cpu_s rss_MiB frames vars wall/bt rss/bt
targets=()
for wl in "${wls[@]}"; do
  d=$W/$(dir_of "$wl")
  declare -A W_ R_ C_
  read -r ow orss oc < <(measure corecatch "$d")
  for p in "${peers[@]}"; do
    if [ "$p" = corecatch ]; then w=$ow; r=$orss; c=$oc
    else read -r w r c < <(measure "$p" "$d"); fi
    fr=$(frames "$p" "$d"); nv=$(vars "$p" "$d")
    W_[$p]=$w; R_[$p]=$r; C_[$p]=$c
    printf '%-11s %-15s %9s %9s %9.1f %8s %6s %9s %9s\n' "$wl" "$p" "$w" "$c" "$r" "$fr" "$nv" \
      "$(ratio "$w" "$ow")" "$(ratio "$r" "$orss")"
  done
  t="$wl:"
  if [ -n "$BASELINE" ]; then
    b=$(ratio "$ow" "${W_[corecatch-base]}") bc=$(ratio "$oc" "${C_[corecatch-base]}")
    t+=" bt ${b}x the baseline's time, ${bc}x its CPU (at most 1.3x: $(verdict "$b <= 1.3"));"
  fi
  g=$(ratio "${W_[gdb-full]}" "${W_[corecatch-full]}")
  t+=" gdb bt full ${g}x bt --full's time (at least 10x: $(verdict "$g >= 10"));"
  e=${R_[eu-stack]} f=${R_[corecatch-full]}
  t+=" peak RSS bt $(printf %.1f "$orss"), bt --full $(printf %.1f "$f"), eu-stack"
  t+=" $(printf %.1f "$e") MiB (no higher: $(verdict "$orss <= $e and $f <= $e"))"
  targets+=("$t")
  unset W_ R_ C_
done
echo "(medians of $RUNS runs after a warm-up; cpu_s: mean user + system, steadier than wall time"
echo " on a loaded machine; vars: locals lines printed; outputs in $OUT)"
[ -n "$BASELINE" ] && echo "(baseline: $BASELINE)"
echo "targets:"
for t in "${targets[@]}"; do echo "  $t"; done
