#!/usr/bin/env bash
# Builds the release ferryd and ferry and runs scripts/bench-memory.py with the given arguments
# (--smoke for CI: 3 s, fails only if ferryd does not start, answer or stop).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin ferryd --bin ferry >&2
exec python3 scripts/bench-memory.py --ferryd "$target/release/ferryd" --ferry "$target/release/ferry" "$@"
