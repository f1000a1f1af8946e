#!/usr/bin/env bash
# benches/ab.sh OLD_STROM NEW_STROM [ROUNDS]: the same 1 KiB produce and consume load
# against two strom binaries, alternating, for before/after figures measured in one
# session (BENCHMARKS.md, "Before and after"). Prints broker CPU-s/GB and MB/s per run.
#
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release -p strom-cli)
#   cargo build --release -p strom-cli -p strom-perf
#   bash benches/ab.sh /tmp/base/target/release/strom target/release/strom 2
set -euo pipefail
OLD=${1:?old strom binary}
NEW=${2:?new strom binary}
ROUNDS=${3:-2}
cd "$(dirname "$0")/.."
PERF=${STROM_PERF:-target/release/strom-perf}
PORT=${AB_PORT:-29394}
B=(--brokers "127.0.0.1:$PORT" --broker-port "$PORT")
DATA=$(mktemp -d "${TMPDIR:-/tmp}/strom-ab.XXXXXX")
BP=""
stop() { [[ -z $BP ]] || { kill "$BP" 2>/dev/null || true; wait "$BP" 2>/dev/null || true; BP=""; }; }
trap 'stop; rm -rf "$DATA"' EXIT
start() {
    "$1" serve --data-dir "$DATA/d" --listen "127.0.0.1:$PORT" --advertise "127.0.0.1:$PORT" \
        >"$DATA/broker.log" 2>&1 &
    BP=$!
    sleep 1.5
}
report() {
    python3 -c '
import json, sys
o = json.loads(sys.stdin.read().strip().splitlines()[-1])
m = o["produce"] or o["consume"]
mbps, cost = m["mb_per_s"], o["cost"]["broker"]["cpu_s_per_gb"]
# No backslashes inside f-string braces: Python 3.11 rejects them.
print(f"{sys.argv[1]:4} {sys.argv[2]:8} {mbps:8.1f} MB/s {cost:.3f} broker CPU-s/GB")' "$@"
}
# The topics are written once (by the new broker) and read by both.
start "$NEW"
for parts in 1 12; do
    "$PERF" produce "${B[@]}" --topic "q$parts" --partitions "$parts" --record-size 1024 \
        --count 2000000 --acks 1 >/dev/null 2>&1
done
stop
sync
for ((r = 1; r <= ROUNDS; r++)); do
    for which in old new; do
        if [[ $which == old ]]; then start "$OLD"; else start "$NEW"; fi
        sync
        "$PERF" produce "${B[@]}" --topic "w$r$which" --partitions 1 --record-size 1024 \
            --count 1000000 --acks 1 --json 2>/dev/null | report "$which" produce
        for t in q1 q12 q1 q12; do
            "$PERF" consume "${B[@]}" --topic "$t" --json 2>/dev/null | report "$which" "read-$t"
        done
        stop
    done
done
