#!/usr/bin/env bash
# The Cambridge ticket end to end: the reader and writer applications Terraform lists are
# rendered into a permissions file per environment, arbiter loads it at start-up with
# --bootstrap, a bad file stops the start, anything not listed is denied, and a change in
# Terraform reaches the running server with a SIGHUP.
#
#   examples/permissions-as-code/run.sh [ENVIRONMENT]     (default: staging)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=examples/permissions-as-code
environment=${1:-staging}

cargo build --quiet --bin arbiter --example permissions-as-code
arbiter=target/debug/arbiter
generate=target/debug/examples/permissions-as-code

work=$(mktemp -d)
pid=
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

echo "== 1. render the permissions file of '$environment' from $here/apps.json"
"$generate" "$here/apps.json" "$environment" > "$work/permissions.yaml"
sed -n '/^relationships:/,/^assertions:/p' "$work/permissions.yaml" | sed '1d;$d'

echo "== 2. a bad file stops the start (exit code and FILE:LINE: message)"
if "$arbiter" serve --memory --addr 127.0.0.1:0 --bootstrap "$here/permissions.broken.yaml"; then
    echo "unexpected: the broken file was accepted" >&2
    exit 1
else
    echo "   exit code $?"
fi

echo "== 3. start with the generated file"
"$arbiter" serve --memory --addr 127.0.0.1:0 --bootstrap "$work/permissions.yaml" \
    > "$work/stdout" 2> "$work/stderr" &
pid=$!
for _ in $(seq 1 100); do
    grep -q '^listening on ' "$work/stdout" 2>/dev/null && break
    sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$work/stdout")
echo "   $url"

ask() {
    local answer
    answer=$("$arbiter" check "environment:$environment" "$1" "app:$2" --server "$url" || true)
    printf '   %-6s %-18s -> %s\n' "$1" "$2" "$answer"
}
echo "== 4. writers write, readers read, nothing else (default deny)"
ask write ingest
ask read reporting
ask write reporting
ask read not-in-terraform

echo "== 5. Terraform adds a reader: re-render, dry run, then SIGHUP applies it"
sed 's/"qa-dashboard"/"qa-dashboard", "billing"/' "$here/apps.json" > "$work/apps.json"
"$generate" "$work/apps.json" "$environment" > "$work/permissions.yaml"
"$arbiter" import --sync --dry-run "$work/permissions.yaml" --server "$url" | sed 's/^/   /'
ask read billing
kill -HUP "$pid"
for _ in $(seq 1 100); do
    [ "$(grep -c 'permissions file synced' "$work/stderr")" -ge 2 ] && break
    sleep 0.1
done
ask read billing
