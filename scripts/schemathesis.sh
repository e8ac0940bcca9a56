#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis (issue 10): starts
# `arbiter serve --memory` with an example schema on a free port, runs a bounded
# schemathesis run against /openapi.json with every check, and exits non-zero on any
# failure. See docs/FUZZING.md.
#
# Usage: scripts/schemathesis.sh [extra schemathesis arguments]
# Environment: MAX_EXAMPLES (default 25), SCHEMATHESIS_VENV (default
# target/schemathesis-venv), ARBITER_BIN (default: built with cargo).
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.1.4
venv=${SCHEMATHESIS_VENV:-target/schemathesis-venv}
max_examples=${MAX_EXAMPLES:-25}

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    python3 -m venv "$venv"
    # hypothesis is pinned too: newer ones break hypothesis-jsonschema under this version.
    "$venv/bin/pip" install --quiet "schemathesis==$version" "hypothesis==6.138.0"
fi

if [ -z "${ARBITER_BIN:-}" ]; then
    cargo build --quiet --bin arbiter
    ARBITER_BIN=target/debug/arbiter
fi

log=$(mktemp)
"$ARBITER_BIN" serve --memory --addr 127.0.0.1:0 --schema schema/models.zed >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT

url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$log")
    [ -n "$url" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 2; }
    sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start" >&2; cat "$log" >&2; exit 2; }

"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run "$url/openapi.json" \
    --checks all \
    --max-examples "$max_examples" \
    --workers 1 \
    --exclude-path /v1/watch \
    --exclude-path /v1/relationships/import \
    --seed 1 \
    "$@"
