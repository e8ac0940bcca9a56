#!/usr/bin/env bash
# The Unstract ticket end to end: API keys belong to tiers, only the top tier may delete,
# and a key whose tier arbiter does not know never gets through. arbiter holds the tier
# rules (tiers.yaml, loaded with --bootstrap) behind a scoped key of its own; the product's
# middleware (middleware.rs) asks it on every request.
#
#   examples/api-key-tiers/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
here=examples/api-key-tiers

cargo build --quiet --bin arbiter --example api-key-tiers
arbiter=target/debug/arbiter
product=target/debug/examples/api-key-tiers

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_for_url() {
    for _ in $(seq 1 100); do
        grep -q '^listening on ' "$1" 2>/dev/null && break
        sleep 0.1
    done
    sed -n 's/^listening on //p' "$1"
}

# arbiter's own API: the middleware gets a key that may only check.
secret=middleware-secret-$RANDOM$RANDOM
sha=$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1)
printf 'keys:\n  - name: product-middleware\n    sha256: %s\n    scopes: [check]\n' "$sha" > "$work/keys.yaml"

"$arbiter" serve --memory --addr 127.0.0.1:0 --keys "$work/keys.yaml" \
    --bootstrap "$here/tiers.yaml" > "$work/arbiter.out" 2> "$work/arbiter.err" &
pids+=($!)
arbiter_url=$(wait_for_url "$work/arbiter.out")
"$product" --arbiter "$arbiter_url" --token "$secret" > "$work/product.out" 2>&1 &
pids+=($!)
product_url=$(wait_for_url "$work/product.out")
echo "arbiter at $arbiter_url, the product's API at $product_url"

call() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X "$1" -H "X-Api-Key: $2" "$product_url/documents/7")
    printf '  %-6s with %-16s -> %s\n' "$1" "$2" "$code"
}
for key in sk-free-1 sk-pro-1 sk-enterprise-1 sk-legacy-1 sk-unknown; do
    call GET "$key"; call PUT "$key"; call DELETE "$key"
done

echo "the middleware's key may check but not change the rules:"
("$arbiter" write "operation:delete#granted@tier:free" --server "$arbiter_url" --token "$secret" || true) 2>&1 | sed "s/^/  /"
