#!/usr/bin/env bash
# Upload and download throughput of a 1 GiB artifact to an S3-compatible server on loopback
# (moto's server mode, from the venv `make venv` builds): `corecatch upload` / `corecatch fetch`
# beside `aws s3 cp` (awscli from PyPI, in a venv of its own) on the same server and the same
# file. Each command runs RUNS times (default 3) under /usr/bin/time -v: median wall, MiB/s,
# largest peak RSS, and wall ratios to corecatch. No warm-up run: a download by `aws s3 cp`
# from moto takes minutes (its ranged GETs are slow on moto), and upload has no cache to warm.
#
#   bench/s3.sh [SIZE_MIB]     default 1024
# Both tools use their defaults (corecatch: 16 MiB parts, 4 in flight; aws: 8 MiB, 10).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
W=${W:-/tmp/bench-work}/s3
RUNS=${RUNS:-3}
BIN=${BIN:-$ROOT/target/release/corecatch}
MIB=${1:-1024}
MOTO=$ROOT/target/venv/bin/moto_server
AWSVENV=$ROOT/target/bench-venv
mkdir -p "$W"

need=()
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -x "$MOTO" ] || make -C "$ROOT" venv >&2
if [ ! -x "$AWSVENV/bin/aws" ]; then
  python3 -m venv "$AWSVENV" && "$AWSVENV/bin/pip" install -q 'awscli==1.46.2'
fi
AWS=$AWSVENV/bin/aws

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MOTO" -H 127.0.0.1 -p "$PORT" >"$W/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -fs "$URL" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs -X PUT "$URL/bench-bkt" >/dev/null

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
  AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL=$URL AWS_EC2_METADATA_DISABLED=true

# Incompressible, like a gzipped core.
mkdir -p "$W/art"
F=$W/art/core.1.bench.core.gz
if [ "$(stat -c %s "$F" 2>/dev/null || echo 0)" != $((MIB << 20)) ]; then
  head -c $((MIB << 20)) /dev/urandom > "$F"
fi
cat "$F" > /dev/null

cmd_for() {
  case $1 in
    up-corecatch)   echo "$BIN upload -q $W/art --to s3://bench-bkt/cc" ;;
    up-aws)         echo "$AWS s3 cp --only-show-errors $F s3://bench-bkt/aws/core.1.bench.core.gz" ;;
    down-corecatch) echo "rm -rf $W/back-cc && $BIN fetch s3://bench-bkt/cc $W/back-cc 2>/dev/null" ;;
    down-aws)       echo "rm -rf $W/back-aws && $AWS s3 cp --only-show-errors s3://bench-bkt/aws/core.1.bench.core.gz $W/back-aws/f" ;;
  esac
}

printf '%-15s %8s %8s %9s %10s\n' tool wall_s MiB/s rss_MiB wall/ours
for dir in up down; do
  ours=
  for tool in corecatch aws; do
    t=$dir-$tool
    c=$(cmd_for "$t")
    : > "$W/$t.walls"
    rss=0
    for _ in $(seq "$RUNS"); do
      /usr/bin/time -v -o "$W/$t.timev" sh -c "$c" >/dev/null 2>&1
      awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$W/$t.timev" >> "$W/$t.walls"
      r=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$W/$t.timev")
      rss=$(python3 -c "print(max($rss, $r))")
    done
    wall=$(sort -n "$W/$t.walls" | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}')
    mibs=$(python3 -c "print('%.0f' % ($MIB / $wall))")
    [ -n "$ours" ] || ours=$wall
    ratio=$(python3 -c "print('%.2f' % ($wall / $ours))")
    printf '%-15s %8s %8s %9s %10s\n' "$t" "$wall" "$mibs" "$rss" "$ratio"
  done
done
# What came back is what went up.
cmp "$F" "$W/back-cc/core.1.bench.core.gz"
cmp "$F" "$W/back-aws/f"
echo "(${MIB} MiB on moto at $URL; both downloads byte-identical to the file)"
