#!/usr/bin/env bash
# Packing a big core: `corecatch collect --keep-cores` (compress + verify + report + manifest)
# with gzip beside gzip -6 and pigz -p2 -6, and with --compress zstd beside zstd -T0 -3
# (compress only), on the same core, warm cache. Wall (hyperfine median), CPU and peak RSS
# (/usr/bin/time -v), output size, with wall ratios to our own run of the same codec.
#
#   bench/compress.sh [CORE]     default: the shared 2 GiB bigcore (built once)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
W=${W:-/tmp/bench-work}
OUT=${OUT:-$W/corecatch-compress}
RUNS=${RUNS:-3}
BIN=${BIN:-$ROOT/target/release/corecatch}
export W
mkdir -p "$OUT"
need=()
command -v pigz >/dev/null || need+=(pigz)
command -v zstd >/dev/null || need+=(zstd)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
CORE=${1:-$W/bigcore/core}
[ -f "$CORE" ] || bash "$SHARED/make-workloads.sh" bigcore >&2
cat "$CORE" > /dev/null

cmd_for() {
  case $1 in
    corecatch) echo "rm -rf $OUT/cc && $BIN collect -q --keep-cores --bundle never --out $OUT/cc $CORE" ;;
    gzip-6)    echo "gzip -6 -c $CORE > $OUT/gzip.gz" ;;
    pigz-6)    echo "pigz -p2 -6 -c $CORE > $OUT/pigz.gz" ;;
    cc-zstd)   echo "rm -rf $OUT/cz && $BIN collect -q --keep-cores --bundle never --compress zstd --out $OUT/cz $CORE" ;;
    zstd-3)    echo "zstd -T0 -3 -q -f -c $CORE > $OUT/zstd.zst" ;;
  esac
}
size_of() {
  case $1 in
    corecatch) stat -c %s "$OUT"/cc/*.core.gz ;;
    gzip-6) stat -c %s "$OUT/gzip.gz" ;;
    pigz-6) stat -c %s "$OUT/pigz.gz" ;;
    cc-zstd) stat -c %s "$OUT"/cz/*.core.zst ;;
    zstd-3) stat -c %s "$OUT/zstd.zst" ;;
  esac
}
printf '%-10s %8s %8s %9s %12s %8s %9s\n' tool wall_s cpu_s rss_MiB out_bytes ratio wall/ours
ours=
for t in corecatch pigz-6 gzip-6 cc-zstd zstd-3; do
  # Ratios to our own run of the same codec: gzip rows to corecatch, zstd rows to cc-zstd.
  [ "$t" = cc-zstd ] && ours=
  c=$(cmd_for "$t")
  hyperfine --warmup 1 --runs "$RUNS" --export-json "$OUT/$t.json" --output=null "$c" >/dev/null 2>&1
  wall=$(python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$OUT/$t.json")
  /usr/bin/time -v -o "$OUT/$t.timev" sh -c "$c" >/dev/null 2>&1
  cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {print u+$2}' "$OUT/$t.timev")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$OUT/$t.timev")
  sz=$(size_of "$t")
  [ -z "$ours" ] && ours=$wall
  printf '%-10s %8s %8s %9s %12s %8.2f %9.2f\n' "$t" "$wall" "$cpu" "$rss" "$sz" \
    "$(python3 -c "print($(stat -c %s "$CORE")/$sz)")" "$(python3 -c "print($wall/$ours)")"
done
gunzip -c "$OUT"/cc/*.core.gz | cmp - "$CORE" && echo "corecatch's .core.gz restores the core byte for byte"
zstd -d -q -c "$OUT"/cz/*.core.zst | cmp - "$CORE" && echo "corecatch's .core.zst restores the core byte for byte"
