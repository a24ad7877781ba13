#!/usr/bin/env bash
# Builds the release `ferry` binary and runs scripts/bench-coap.py with the given arguments
# (--smoke for CI: 64 KiB, one repetition, fails only if a transfer fails or differs).
# The Python script starts and kills the servers itself; this wrapper starts nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
# FERRY_BENCH_PROFILE=debug reuses the test build (CI's smoke run); figures need release.
profile="${FERRY_BENCH_PROFILE:-release}"
if [ "$profile" = release ]; then flags=(--release); else flags=(); fi
cargo build "${flags[@]}" --bin ferry >&2
exec python3 scripts/bench-coap.py --ferry "$target/$profile/ferry" "$@"
