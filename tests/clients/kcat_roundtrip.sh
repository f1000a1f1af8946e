#!/usr/bin/env bash
# Round trip through kcat (librdkafka's command-line client).
#
# Usage: kcat_roundtrip.sh BOOTSTRAP [--codecs none,gzip,...] [--records N]
#                          [--step-timeout SECS] [--no-create --partitions N]
#
# Per codec, on a fresh topic:
#   1. create it with 3 partitions. kcat has no admin API and cannot choose a
#      partition count, so this uses confluent-kafka's AdminClient (python3),
#      which .ci/run installs anyway;
#   2. produce N keyed records with `kcat -P -K '\t' -H ... -z CODEC`, one
#      kcat per partition (-p P) so the partition of every record is known,
#      with -v -v so kcat prints a delivery report (partition, offset) per
#      record, in produce order;
#   3. read everything back with `kcat -C -o beginning -e -J`;
#   4. check with roundtrip_common.verify: key, value, headers, partition and
#      offset identical, per-partition order kept.
# Limits of kcat itself, checked as well as kcat allows: headers are fixed
# per kcat invocation (-H), so they vary per partition, not per record; kcat
# cannot set a record timestamp, so the check is that every record carries a
# CreateTime taken while its kcat ran, not an explicit value.
#
# Every kcat/python3 call runs under `timeout`, so the script never hangs.
# Exit codes as in roundtrip_common.py: 0 ok, 1 failed, 2 usage, 3 timeout,
# 4 missing tool (a skip, exit 0, with STROM_ALLOW_MISSING_CLIENTS=1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

usage() {
    sed -n '2,5p' "$0" >&2
    exit 2
}

(($# >= 1)) || usage
case $1 in -*) usage ;; esac
bootstrap=$1
shift
codecs="none,gzip,snappy,lz4,zstd"
records=10000
step_timeout=60
no_create=0
partitions=3
while (($#)); do
    case $1 in
        --codecs) codecs=$2; shift 2 ;;
        --records) records=$2; shift 2 ;;
        --step-timeout) step_timeout=${2%.*}; shift 2 ;;
        --timeout) shift 2 ;; # accepted for symmetry; each step is bounded instead
        --no-create) no_create=1; shift ;;
        --partitions) partitions=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done

missing() {
    if [[ ${STROM_ALLOW_MISSING_CLIENTS:-} == 1 ]]; then
        echo "SKIP kcat: $1 (STROM_ALLOW_MISSING_CLIENTS=1)"
        exit 0
    fi
    echo "MISSING kcat: $1; install it with .ci/run's setup, or set STROM_ALLOW_MISSING_CLIENTS=1 to skip" >&2
    exit 4
}

command -v kcat >/dev/null 2>&1 || missing "kcat is not on PATH (Debian package kcat)"
command -v python3 >/dev/null 2>&1 || missing "python3 is not on PATH"
if ((!no_create)); then
    python3 -c 'import confluent_kafka' 2>/dev/null \
        || missing "python module confluent_kafka (used to create the 3-partition topics) is not importable"
fi

kcat_version=$(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\).*librdkafka \([^ ]*\).*/\1 (librdkafka \2)/p')
kcat_version=${kcat_version:-unknown}
work=$(mktemp -d "${TMPDIR:-/tmp}/kcat-roundtrip.XXXXXX")
trap 'rm -rf "$work"' EXIT

now_ms() { date +%s%3N; }

step() { echo "... $*" >&2; }

# bounded SECS CMD...: run CMD with a hard deadline; exit 3 with a message
# naming the step if it passes.
bounded() {
    local secs=$1
    shift
    local rc=0
    timeout --kill-after=5 "$secs" "$@" || rc=$?
    if ((rc == 124 || rc == 137)); then
        echo "TIMEOUT: kcat round trip: step did not finish within ${secs}s: $*" >&2
        exit 3
    fi
    return "$rc"
}

create_topic() {
    local topic=$1
    step "creating topic $topic ($partitions partitions, confluent-kafka AdminClient) at $bootstrap"
    bounded $((step_timeout + 10)) python3 - "$bootstrap" "$topic" "$partitions" "$step_timeout" <<'PY'
import sys
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, topic, parts, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
fs = admin.create_topics([NewTopic(topic, num_partitions=parts, replication_factor=1)],
                         request_timeout=secs, operation_timeout=10)
try:
    fs[topic].result(timeout=secs)
except KafkaException as e:
    sys.exit(f"CreateTopics({topic}) failed: {e}")
except Exception as e:
    sys.exit(f"CreateTopics({topic}) got no answer from {bootstrap} within {secs:.0f}s: {e!r}")
PY
}

wait_metadata() {
    local topic=$1 deadline=$((SECONDS + step_timeout)) out
    step "waiting for metadata of $topic to show $partitions partitions"
    while :; do
        out=$(bounded 20 kcat -L -b "$bootstrap" -t "$topic" -J -m 5 -q 2>&1) || true
        if python3 - "$topic" "$partitions" "$out" <<'PY'
import json, sys
topic, parts, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    md = json.loads(out)
except ValueError:
    sys.exit(1)
for t in md.get("topics", []):
    if t.get("topic") == topic and "error" not in t:
        ps = t.get("partitions", [])
        ok = len(ps) == parts and all(p.get("leader", -1) >= 0 and "error" not in p for p in ps)
        sys.exit(0 if ok else 1)
sys.exit(1)
PY
        then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            echo "FAIL kcat: metadata of $topic not ready within ${step_timeout}s; last kcat -L output: $out" >&2
            return 1
        fi
        sleep 0.2
    done
}

# gen_and_check gen|check DIR CODEC N PARTITIONS
#   gen:   writes DIR/input-P.tsv (key<TAB>value lines) for each partition P;
#   check: regenerates the same records (same seed), pairs them with kcat's
#          delivery reports (DIR/produce-P.err) and checks DIR/consumed.jsonl.
gen_and_check() {
    python3 - "$@" <<'PY'
import json, os, random, re, sys, zlib
sys.dont_write_bytecode = True
sys.path.insert(0, os.environ["ROUNDTRIP_DIR"])
import roundtrip_common as rt

mode, work, codec, n, parts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rt.PARTITIONS = parts
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

def records():
    # Like rt.make_records, but line-safe: kcat reads one record per line
    # and splits key from value at the first tab.
    rng = random.Random(zlib.crc32(codec.encode()))
    out = []
    for i in range(n):
        key = b"key-%04d" % (i % 1000)
        text = ("record %d codec %s " % (i, codec)) * (1 + i % 5)
        noise = "".join(rng.choice(ALNUM) for _ in range(rng.randrange(0, 64)))
        p = (i % 1000) % parts  # one partition per key
        headers = [("client", b"kcat"), ("partition", str(p).encode())]
        out.append((p, rt.Record(i, key, (text + noise).encode(), headers, None)))
    return out

recs = records()
if mode == "gen":
    files = [open(os.path.join(work, f"input-{p}.tsv"), "wb") for p in range(parts)]
    for p, r in recs:
        files[p].write(r.key + b"\t" + r.value + b"\n")
    for f in files:
        f.close()
    sys.exit(0)

# mode == "check"
acks = [(None, None)] * n
delivered = re.compile(r"Message delivered to partition (-?\d+) \(offset (-?\d+)\)")
windows = {}
for p in range(parts):
    reports = []
    with open(os.path.join(work, f"produce-{p}.err"), errors="replace") as f:
        for line in f:
            m = delivered.search(line)
            if m:
                reports.append((int(m.group(1)), int(m.group(2))))
    mine = [r.index for q, r in recs if q == p]
    if len(reports) != len(mine):
        print(f"FAIL kcat codec={codec}: partition {p}: {len(mine)} records produced but "
              f"{len(reports)} delivery reports", file=sys.stderr)
        sys.exit(1)
    for i, rep in zip(mine, reports):
        acks[i] = rep
    with open(os.path.join(work, f"window-{p}")) as f:
        start, end = (int(x) for x in f.read().split())
    windows[p] = (start, end)

consumed = []
with open(os.path.join(work, "consumed.jsonl"), "rb") as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        m = json.loads(line)
        h = m.get("headers") or []
        headers = [(h[j], None if h[j + 1] is None else h[j + 1].encode()) for j in range(0, len(h), 2)]
        consumed.append(rt.Consumed(
            m["partition"], m["offset"],
            None if m.get("key") is None else m["key"].encode(),
            None if m.get("payload") is None else m["payload"].encode(),
            headers, m.get("ts"), m.get("tstype") == "create"))

# kcat cannot set timestamps: accept a CreateTime taken while the kcat that
# produced the record ran (1 s slack for clock granularity).
by_pos = {(c.partition, c.offset): c for c in consumed}
records_only = []
for (p, r), a in zip(recs, acks):
    start, end = windows[p]
    c = by_pos.get(a)
    if c is not None and isinstance(c.timestamp, int) and start - 1000 <= c.timestamp <= end + 1000:
        r.timestamp = c.timestamp
    else:
        r.timestamp = f"a CreateTime in [{start}, {end}]"
    records_only.append(r)

topic = open(os.path.join(work, "topic")).read().strip()
secs = int(open(os.path.join(work, "elapsed_ms")).read()) / 1000
ok = rt.report("kcat", os.environ["KCAT_VERSION"], codec, topic, records_only, acks, consumed, secs)
sys.exit(0 if ok else 1)
PY
}

one_codec() {
    local codec=$1 topic dir p start end t0
    topic="roundtrip-kcat-${codec}-$(printf '%06x' $((RANDOM * 32768 + RANDOM)))"
    dir="$work/$codec"
    mkdir -p "$dir"
    echo "$topic" >"$dir/topic"
    t0=$(now_ms)
    if ((!no_create)); then
        create_topic "$topic" || return 1
    fi
    wait_metadata "$topic" || return 1
    ROUNDTRIP_DIR=$here KCAT_VERSION=$kcat_version gen_and_check gen "$dir" "$codec" "$records" "$partitions" \
        || return 1
    local zopt=()
    [[ $codec == none ]] || zopt=(-z "$codec")
    for ((p = 0; p < partitions; p++)); do
        step "producing $(wc -l <"$dir/input-$p.tsv") records to $topic [$p] with $codec"
        start=$(now_ms)
        if ! bounded "$step_timeout" kcat -P -b "$bootstrap" -t "$topic" -p "$p" -K '\t' \
            "${zopt[@]}" -H client=kcat -H "partition=$p" \
            -X acks=all -X linger.ms=10 -X "message.timeout.ms=$((step_timeout * 1000 - 5000))" \
            -m "$step_timeout" -v -v \
            <"$dir/input-$p.tsv" 2>"$dir/produce-$p.err"; then
            echo "FAIL kcat $kcat_version codec=$codec topic=$topic: kcat -P to partition $p failed:" >&2
            grep -v 'Message delivered' "$dir/produce-$p.err" | tail -20 >&2
            return 1
        fi
        end=$(now_ms)
        echo "$start $end" >"$dir/window-$p"
    done
    step "consuming $topic from the beginning of $partitions partitions"
    if ! bounded "$step_timeout" kcat -C -b "$bootstrap" -t "$topic" -o beginning -e -J -q \
        -m "$step_timeout" >"$dir/consumed.jsonl" 2>"$dir/consume.err"; then
        echo "FAIL kcat $kcat_version codec=$codec topic=$topic: kcat -C failed:" >&2
        tail -20 "$dir/consume.err" >&2
        return 1
    fi
    echo "$(($(now_ms) - t0))" >"$dir/elapsed_ms"
    ROUNDTRIP_DIR=$here KCAT_VERSION=$kcat_version gen_and_check check "$dir" "$codec" "$records" "$partitions"
}

# Is the broker there at all? One bounded metadata request before any codec.
step "fetching cluster metadata from $bootstrap"
if ! probe=$(bounded "$step_timeout" kcat -L -b "$bootstrap" -m "$step_timeout" -q 2>&1); then
    echo "FAILED kcat $kcat_version: broker at $bootstrap not usable: $probe" >&2
    exit 1
fi

failed=()
passed=()
IFS=, read -r -a codec_list <<<"$codecs"
for codec in "${codec_list[@]}"; do
    case $codec in
        none | gzip | snappy | lz4 | zstd) ;;
        *) echo "unknown codec: $codec" >&2; exit 2 ;;
    esac
    if one_codec "$codec"; then
        passed+=("$codec")
    else
        failed+=("$codec")
    fi
done

if ((${#failed[@]})); then
    echo "FAILED kcat $kcat_version: codecs failed: $(IFS=,; echo "${failed[*]}"); passed: $(IFS=,; echo "${passed[*]:-}")" >&2
    exit 1
fi
echo "ALL OK kcat $kcat_version codecs=$(IFS=,; echo "${passed[*]}") records_per_codec=$records"
