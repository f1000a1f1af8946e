#!/usr/bin/env bash
# benches/hostile.sh: a producer's throughput with and without attackers beside it
# (issue 7: "a producer running beside the attacker keeps its throughput within 20%").
#
#   bash benches/hostile.sh                       # 3 pairs of 10 s runs, 1 KiB records
#   bash benches/hostile.sh --repeat 5 --duration 20s
#   bash benches/hostile.sh --strom PATH --perf PATH   # these binaries, no build
#
# Builds strom and strom-perf (release), starts a broker on a free 127.0.0.1 port with
# a fresh data directory (stopped and deleted on any exit), then, --repeat times, runs
# `strom-perf produce` for --duration alone and again while benches/hostile_attack.py
# attacks the broker from 127.0.0.2 and 127.0.0.4 (slowloris up to
# max.connections.per.ip, garbage, 2 GiB claims). The order alternates between pairs.
# Prints each run's MB/s and the ratio of the medians; nothing is asserted.
set -euo pipefail

DURATION=10s
REPEAT=3
RECORD_SIZE=1024
PER_IP=100
STROM=""
PERF=""
while (($#)); do
    case $1 in
        --duration) DURATION=${2:?}; shift ;;
        --repeat) REPEAT=${2:?}; shift ;;
        --record-size) RECORD_SIZE=${2:?}; shift ;;
        --per-ip) PER_IP=${2:?}; shift ;;
        --strom) STROM=${2:?}; shift ;;
        --perf) PERF=${2:?}; shift ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "hostile.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "hostile.sh: --repeat wants a positive integer" >&2; exit 2; }
SECS=$(python3 -c 'import re, sys; m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", sys.argv[1]); \
v = float(m.group(1)); u = m.group(2) or "s"; print(v / 1000 if u == "ms" else v * 60 if u == "m" else v)' "$DURATION")

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf 'hostile.sh: %s\n' "$*" >&2; }

if [[ -z $STROM || -z $PERF ]]; then
    log "building: cargo build --release -p strom-cli -p strom-perf"
    cargo build --release -p strom-cli -p strom-perf
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') ||
        TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    STROM=${STROM:-$TARGET_DIR/release/strom}
    PERF=${PERF:-$TARGET_DIR/release/strom-perf}
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/strom-hostile.XXXXXX")
BROKER_PID=""
ATTACK_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -z $ATTACK_PID ]] || { kill -TERM "$ATTACK_PID" 2>/dev/null || true; wait "$ATTACK_PID" 2>/dev/null || true; }
    if [[ -n $BROKER_PID ]]; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
"$STROM" serve --data-dir "$WORK/data" --listen "$ADDR" --advertise "$ADDR" \
    -o "max.connections.per.ip=$PER_IP" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for ((i = 0; i < 100; i++)); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
        "$PORT" 2>/dev/null && break
    sleep 0.1
done
log "broker pid $BROKER_PID on $ADDR (max.connections.per.ip=$PER_IP)"

# produce TOPIC: one strom-perf run; prints its MB/s.
produce() {
    sync
    if ! "$PERF" produce --brokers "$ADDR" --broker-port "$PORT" --topic "$1" \
        --record-size "$RECORD_SIZE" --duration "$DURATION" --acks 1 --json \
        >"$WORK/perf.out" 2>"$WORK/perf.err"; then
        log "strom-perf failed: $(tail -n 3 "$WORK/perf.err")"
        echo nan
        return
    fi
    tail -n 1 "$WORK/perf.out" |
        python3 -c 'import json, sys; d = json.load(sys.stdin); print("%.1f" % d["produce"]["mb_per_s"])'
    # Each run leaves its topic behind: delete it so the disk does not fill.
    "$STROM" topic delete --if-exists "$1" -b "$ADDR" >/dev/null 2>&1 || true
}

attacked() {
    # The attack starts 3 s early so the slowloris holds its slots when the run starts.
    python3 "$ROOT/benches/hostile_attack.py" --broker "$ADDR" --duration "$(python3 -c "print($SECS + 8)")" \
        2>"$WORK/attack.err" &
    ATTACK_PID=$!
    sleep 3
    produce "$1"
    wait "$ATTACK_PID" || true
    ATTACK_PID=""
    log "$(tail -n 1 "$WORK/attack.err")"
}

ALONE=()
UNDER=()
for ((rep = 1; rep <= REPEAT; rep++)); do
    if ((rep % 2)); then
        a=$(produce "alone-$rep"); u=$(attacked "attacked-$rep")
    else
        u=$(attacked "attacked-$rep"); a=$(produce "alone-$rep")
    fi
    ALONE+=("$a")
    UNDER+=("$u")
    log "pair $rep: alone $a MB/s, beside attackers $u MB/s"
done
HWM=$(awk '/VmHWM/ { print $2 }' "/proc/$BROKER_PID/status")
WARNINGS=$(grep -c WARN "$WORK/broker.log" || true)
python3 - "$RECORD_SIZE" "$DURATION" "$HWM" "$WARNINGS" "${ALONE[*]}" "${UNDER[*]}" <<'PY'
import statistics, sys
size, duration, hwm, warnings = sys.argv[1:5]
alone = [float(x) for x in sys.argv[5].split() if x != "nan"]
under = [float(x) for x in sys.argv[6].split() if x != "nan"]
if not alone or not under:
    sys.exit("hostile.sh: no successful run to compare")
ma, mu = statistics.median(alone), statistics.median(under)
print(f"strom-perf produce, {size}-byte records, acks 1, {duration} per run, {len(alone)} pairs")
print(f"  alone:            {' '.join(f'{x:7.1f}' for x in alone)}  MB/s (median {ma:.1f})")
print(f"  beside attackers: {' '.join(f'{x:7.1f}' for x in under)}  MB/s (median {mu:.1f})")
print(f"  ratio of medians: {mu / ma:.2f} ({(mu / ma - 1) * 100:+.0f}%)")
print(f"  broker peak RSS (VmHWM): {int(hwm) / 1024:.0f} MiB; WARN lines in its log: {warnings}")
PY
