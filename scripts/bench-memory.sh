#!/usr/bin/env bash
# Builds the release ferryd and ferry and runs scripts/bench-memory.py with the given arguments
# (--smoke for CI: 3 s, fails only if ferryd does not start, answer or stop).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
# FERRY_BENCH_PROFILE=debug reuses the test build (CI's smoke run); figures need release.
profile="${FERRY_BENCH_PROFILE:-release}"
if [ "$profile" = release ]; then flags=(--release); else flags=(); fi
cargo build "${flags[@]}" --bin ferryd --bin ferry >&2
exec python3 scripts/bench-memory.py --ferryd "$target/$profile/ferryd" --ferry "$target/$profile/ferry" "$@"
