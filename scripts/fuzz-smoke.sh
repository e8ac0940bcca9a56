#!/usr/bin/env bash
# A short fuzz run of every target in fuzz/ (docs/FUZZING.md): each target runs for
# FUZZ_SECONDS (default 30) from its committed corpus; any crash fails the script and
# leaves the input in fuzz/artifacts/TARGET/.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the sanitizer flags
# need RUSTC_BOOTSTRAP=1; the targets are safe Rust, so no sanitizer is used.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-30}"
targets=(schema relationship validation_file json_bodies)

export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none -O
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    rm -rf "artifacts/$target"
    echo "fuzz-smoke: $target for ${seconds}s"
    cargo fuzz run --sanitizer none -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | grep -E '^(stat::number_of_executed_units|stat::peak_rss|#[0-9]+ +DONE)|SUMMARY|panicked|ERROR' || true
    if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
        echo "fuzz-smoke: $target found a failure: fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz-smoke: no failures"
