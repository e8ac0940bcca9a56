#!/bin/bash
# Server CPU per call and throughput of each protocol on one fresh `serve --db`
# (docs/BENCHMARKS.md, "HTTP and gRPC overhead").
#
# usage: scripts/wire_bench.sh ARBITER LOADGEN PORT [PROTOCOL...]
#   PROTOCOL: noop | json | grpc | grpc-raw, with "+N" for N streams per HTTP/2
#   connection (grpc-raw+64: 64 calls in flight on one connection). Default: noop json
#   grpc-raw.
# env: WORKLOAD (default /tmp/grpc-peer-10k.json, from the SpiceDB peer's
#   `bench.py --tuples 10000 --checks 5000 --generate-only`), CONC (calls in flight,
#   default 64), DURATION (seconds, default 5).
set -u
BIN=$1; LG=$2; PORT=$3; shift 3
PROTOS=${*:-noop json grpc-raw}
WORKLOAD=${WORKLOAD:-/tmp/grpc-peer-10k.json}
DB=$(mktemp -d /tmp/wire-db.XXXX)
$BIN serve --db "$DB/db" --addr 127.0.0.1:$PORT >/tmp/wire-server-$PORT.log 2>&1 &
SERVER=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.2; done
# Loads the schema and relationships.
$LG --server http://127.0.0.1:$PORT --workload "$WORKLOAD" --concurrency 1 --duration 1 --warmup 0 >/dev/null 2>&1
TCK=$(getconf CLK_TCK)
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%H:%M:%S)"
for p in $PROTOS; do
  proto=${p%%+*}
  streams=()
  [ "$p" != "$proto" ] && streams=(--streams "${p#*+}")
  read -r u0 k0 < <(awk '{print $14, $15}' /proc/$SERVER/stat)
  s0=$((u0 + k0))
  out=$($LG --server http://127.0.0.1:$PORT --workload "$WORKLOAD" --concurrency "${CONC:-64}" \
      --duration "${DURATION:-5}" --protocol "$proto" "${streams[@]}" --no-setup 2>&1 | grep "connections=")
  read -r u1 k1 < <(awk '{print $14, $15}' /proc/$SERVER/stat)
  s1=$((u1 + k1))
  calls=$(echo "$out" | sed -n 's/.*calls_with_warmup=\([0-9]*\).*/\1/p')
  rate=$(echo "$out" | sed -n 's/.*checks\/s=\([0-9.]*\).*/\1/p')
  p50=$(echo "$out" | sed -n 's/.*p50=\([0-9]*\).*/\1/p')
  cpu=$(awk -v a="$s0" -v b="$s1" -v t="$TCK" -v n="$calls" 'BEGIN{printf "%.1f", (b-a)/t/n*1e6}')
  user=$(awk -v a="$u0" -v b="$u1" -v t="$TCK" -v n="$calls" 'BEGIN{printf "%.1f", (b-a)/t/n*1e6}')
  sys=$(awk -v a="$k0" -v b="$k1" -v t="$TCK" -v n="$calls" 'BEGIN{printf "%.1f", (b-a)/t/n*1e6}')
  echo "$p rate=$rate p50=${p50}us cpu_per_call=${cpu}us (user=${user}us sys=${sys}us) calls=$calls"
done
echo "rss=$(grep VmRSS /proc/$SERVER/status)"
kill $SERVER; wait $SERVER 2>/dev/null; rm -rf "$DB"
