#!/bin/bash
# Server instructions per call of each protocol, counted by callgrind (docs/BENCHMARKS.md,
# "HTTP overhead, third pass" and "fourth pass"): steadier than wall-clock CPU on a noisy
# machine. Kernel time is not counted.
#
# usage: scripts/wire_callgrind.sh ARBITER LOADGEN PORT OUTPREFIX [PROTOCOL...]
#   PROTOCOL as in scripts/wire_bench.sh (noop | json | grpc | grpc-raw, "+N" for N
#   streams per connection); default: noop json.
# env: WORKLOAD (default /tmp/grpc-peer-10k.json), CONC (default 64), DURATION (default 8).
# Prints "PROTOCOL calls=N" per protocol; OUTPREFIX.PID.K is the K-th protocol's dump:
#   instructions per call = the dump's `totals:` / N.
# `--huge-pages off`: serve would otherwise re-execute itself, and valgrind does not
# follow an exec.
set -u
BIN=$1; LG=$2; PORT=$3; OUT=$4; shift 4
PROTOS=${*:-noop json}
WORKLOAD=${WORKLOAD:-/tmp/grpc-peer-10k.json}
DB=$(mktemp -d /tmp/wire-cg-db.XXXX)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT.%p" \
    "$BIN" serve --huge-pages off --db "$DB/db" --addr 127.0.0.1:$PORT \
    >/tmp/wire-cg-server-$PORT.log 2>&1 &
SERVER=$!
for _ in $(seq 300); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.5; done
# Loads the schema and relationships.
$LG --server http://127.0.0.1:$PORT --workload "$WORKLOAD" --concurrency 1 --duration 1 --warmup 0 >/dev/null 2>&1
for p in $PROTOS; do
  proto=${p%%+*}
  streams=()
  [ "$p" != "$proto" ] && streams=(--streams "${p#*+}")
  callgrind_control -i on $SERVER >/dev/null
  out=$($LG --server http://127.0.0.1:$PORT --workload "$WORKLOAD" --concurrency "${CONC:-64}" \
      --duration "${DURATION:-8}" --warmup 0 --protocol "$proto" "${streams[@]}" --no-setup 2>&1 | grep "connections=")
  callgrind_control -i off $SERVER >/dev/null
  callgrind_control -d "$p" $SERVER >/dev/null
  echo "$p calls=$(echo "$out" | sed -n 's/.*calls_with_warmup=\([0-9]*\).*/\1/p')"
done
kill $SERVER; wait $SERVER 2>/dev/null; rm -rf "$DB"
