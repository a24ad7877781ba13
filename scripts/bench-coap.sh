#!/usr/bin/env bash
# Builds the release `ferry` binary and runs scripts/bench-coap.py with the given arguments
# (--smoke for CI: 64 KiB, one repetition, fails only if a transfer fails or differs).
# The Python script starts and kills the servers itself; this wrapper starts nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin ferry >&2
exec python3 scripts/bench-coap.py --ferry "$target/release/ferry" "$@"
