#!/usr/bin/env bash
# Instruction counts of manifest verification, immune to a loaded machine: runs the
# `suit_verify` bench binary under callgrind once per path (FERRY_BENCH_LOOP=path:N), subtracts
# a run with N=0 (fixture setup, process start), and prints instructions per envelope and the
# throughput ratio each path would have against raw verify_strict if time followed
# instructions. Then the top functions of the full `evaluate` path.
#
#   scripts/bench-suit-callgrind.sh [N]      # N calls per path, default 200
#
# Needs valgrind. Output files go to a temp folder, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-200}"
out="$(mktemp -d -t ferry-callgrind-XXXXXX)"
trap 'rm -rf "$out"' EXIT

bin="$(cargo bench --bench suit_verify --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "suit_verify" and m.get("executable"):
        print(m["executable"])')"
[ -x "$bin" ] || { echo "bench-suit-callgrind: could not build the suit_verify bench" >&2; exit 1; }

irs() { # path count -> total instructions
  FERRY_BENCH_LOOP="$1:$2" valgrind --tool=callgrind --callgrind-out-file="$out/$1-$2.out" "$bin" \
    >/dev/null 2>"$out/$1-$2.log"
  awk '/^summary:/ {print $2}' "$out/$1-$2.out"
}

base="$(irs raw 0)"
raw="$(irs raw "$n")"
auth="$(irs authenticate "$n")"
eval="$(irs evaluate "$n")"
python3 - "$n" "$base" "$raw" "$auth" "$eval" <<'EOF'
import sys
n, base, raw, auth, ev = (int(x) for x in sys.argv[1:])
per = {k: (v - base) / n for k, v in (("raw_verify_strict", raw), ("parse_authenticate", auth), ("parse_evaluate", ev))}
print(f"callgrind, {n} calls per path, setup ({base} Ir) subtracted")
print(f"{'path':<20} {'Ir/envelope':>12} {'raw/path':>9}")
for k, v in per.items():
    print(f"{k:<20} {v:>12.0f} {per['raw_verify_strict'] / v:>9.3f}")
EOF
echo
echo "top functions, parse_evaluate x $n (inclusive of nothing: self cost):"
callgrind_annotate --threshold=99 "$out/evaluate-$n.out" 2>/dev/null | sed -n '/^Ir/,$p' | head -25
