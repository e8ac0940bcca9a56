#!/usr/bin/env bash
# arbiter vs SpiceDB on the same workload, in one run, one table.
#
# usage: benches/compare.sh SIZE [SEED]
#   SIZE  approximate relationship count of the generated workload (10000, 100000, 1000000)
#   SEED  generator seed (default 42)
#
# Steps: (1) generate the workload with the peer harness (../shared/peers/spicedb/bench.py,
# cached under $OUT_DIR); (2) time SpiceDB on it (bench.py --workload; skipped above
# SPICEDB_MAX, default 100000, because SpiceDB's memory datastore needs ~8 min and ~6 GB at
# 1M); (3) build and run examples/replay: arbiter in-process and over HTTP (`arbiter serve
# --memory`) at 1 and 64 connections, comparing every answer with SpiceDB's (or, without a
# SpiceDB run, with the harness's independent naive evaluator); (4) print the table.
#
# Environment: OUT_DIR (default /tmp/arbiter-compare), PEER_DIR (default
# ../shared/peers/spicedb), CHECKS (5000), LOOKUPS (20), REPEAT (3), DURATION (10 s per
# concurrent run), SPICEDB_MAX (100000). Needs the peer harness set up once (its setup.sh).
set -euo pipefail

size=${1:?usage: benches/compare.sh SIZE [SEED]}
seed=${2:-42}
root=$(cd "$(dirname "$0")/.." && pwd)
peer=${PEER_DIR:-$root/../shared/peers/spicedb}
out=${OUT_DIR:-/tmp/arbiter-compare}
checks=${CHECKS:-5000}
lookups=${LOOKUPS:-20}
repeat=${REPEAT:-3}
duration=${DURATION:-10}
spicedb_max=${SPICEDB_MAX:-100000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$out"

workload=$out/workload-$size-s$seed.json
spicedb=$out/spicedb-$size-s$seed.json
arbiter=$out/arbiter-$size-s$seed.json
answers=$out/arbiter-answers-$size-s$seed.json

echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ ! -s "$workload" ]; then
    echo "== generating $workload" >&2
    python3 "$peer/bench.py" --tuples "$size" --seed "$seed" --checks "$checks" \
        --lookups "$lookups" --generate-only --out "$workload" >/dev/null
fi

expect=()
if [ "$size" -le "$spicedb_max" ]; then
    echo "== SpiceDB (bench.py --workload, repeat $repeat)" >&2
    python3 "$peer/bench.py" --workload "$workload" --results "$spicedb" --repeat "$repeat" \
        >"$out/spicedb-$size-s$seed.log"
    expect=(--expect "$spicedb")
else
    echo "== SpiceDB skipped at $size relationships (SPICEDB_MAX=$spicedb_max)" >&2
    rm -f "$spicedb"
fi

echo "== building arbiter (release)" >&2
(cd "$root" && cargo build --release --quiet --bin arbiter --example replay)

echo "== arbiter (examples/replay)" >&2
status=0
"$CARGO_TARGET_DIR/release/examples/replay" --workload "$workload" "${expect[@]}" \
    --server-bin "$CARGO_TARGET_DIR/release/arbiter" --repeat "$repeat" \
    --duration "$duration" --out "$arbiter" --answers "$answers" >/dev/null || status=$?
if [ "$status" -eq 1 ]; then
    echo "!! arbiter's answers disagree with SpiceDB's: the timings below do not count" >&2
elif [ "$status" -ne 0 ]; then
    exit "$status"
fi
if [ ${#expect[@]} -eq 0 ]; then
    echo "== no SpiceDB answers at this size: cross-checking arbiter with the naive evaluator" >&2
    python3 "$peer/naive_crosscheck.py" "$workload" "$answers" >&2
fi

echo
echo "### arbiter vs SpiceDB — $size relationships, seed $seed ($(date -u +%FT%TZ), $(nproc) cores)"
echo
if [ -s "$spicedb" ]; then
    python3 "$root/scripts/compare_table.py" --arbiter "$arbiter" --spicedb "$spicedb"
else
    python3 "$root/scripts/compare_table.py" --arbiter "$arbiter"
fi
exit "$status"
