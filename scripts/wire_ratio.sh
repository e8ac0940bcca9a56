#!/bin/bash
# The JSON check's throughput as a fraction of the no-op's (issue 14 item 5) on one
# fresh `serve --db`, measured in short alternating rounds: this VM's speed moves by ±20%
# within seconds, so two 5-second runs one after the other compare the moments more than
# the two paths. Each round is ROUND_SECONDS of no-op then the same of JSON checks (64
# connections, 0.5 s warm-up each); a round's ratio is JSON/no-op, and the median round
# is the figure (docs/BENCHMARKS.md, "HTTP overhead, fifth pass").
#
# usage: scripts/wire_ratio.sh ARBITER LOADGEN PORT [ROUNDS]
# env: WORKLOAD (default /tmp/grpc-peer-10k.json), CONC (default 64), ROUND_SECONDS (1.5),
#   BASE and TEST (the two protocols of a round, default noop and json: issue 13 compares
#   BASE=json TEST=grpc-raw, with CONC=1 for one connection's p50).
set -u
BIN=$1; LG=$2; PORT=$3; ROUNDS=${4:-10}
WORKLOAD=${WORKLOAD:-/tmp/grpc-peer-10k.json}
DB=$(mktemp -d /tmp/wire-ratio-db.XXXX)
$BIN serve --db "$DB/db" --addr 127.0.0.1:$PORT >/tmp/wire-ratio-server-$PORT.log 2>&1 &
SERVER=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.2; done
# Loads the schema and relationships.
$LG --server http://127.0.0.1:$PORT --workload "$WORKLOAD" --concurrency 1 --duration 1 --warmup 0 >/dev/null 2>&1
BASE=${BASE:-noop}; TEST=${TEST:-json}
# "RATE P50" of one run of protocol $1.
rate() {
  $LG --server http://127.0.0.1:$PORT --workload "$WORKLOAD" --concurrency "${CONC:-64}" \
      --duration "${ROUND_SECONDS:-1.5}" --warmup 0.5 --protocol "$1" --no-setup 2>&1 |
    sed -n 's/.*checks\/s=\([0-9.]*\).*p50=\([0-9]*\).*/\1 \2/p'
}
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%H:%M:%S)"
ratios=(); base_p50s=(); test_p50s=()
for r in $(seq "$ROUNDS"); do
  read -r base base_p50 < <(rate "$BASE"); read -r test test_p50 < <(rate "$TEST")
  ratio=$(awk -v a="$test" -v b="$base" 'BEGIN{printf "%.3f", a/b}')
  ratios+=("$ratio"); base_p50s+=("$base_p50"); test_p50s+=("$test_p50")
  echo "round $r: $BASE=$base (p50 ${base_p50}us) $TEST=$test (p50 ${test_p50}us) ratio=$ratio"
done
echo "median ratio: $(printf '%s\n' "${ratios[@]}" | median)"
echo "median p50: $BASE $(printf '%s\n' "${base_p50s[@]}" | median)us $TEST $(printf '%s\n' "${test_p50s[@]}" | median)us"
kill $SERVER; wait $SERVER 2>/dev/null; rm -rf "$DB"
