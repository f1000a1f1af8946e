#!/usr/bin/env python3
"""Durability across broker restarts, with confluent-kafka (librdkafka).

Driven by tests/broker_durability.rs, which stops (SIGTERM), SIGKILLs and
restarts the broker between the steps:

  restart_durability.py produce BOOTSTRAP --topic T --partitions 3 \\
      --records 20000 [--first-index 0] --acks-file acks.json
    Produce keyed records (acks=all) and write every acknowledged record to
    the JSON file: {"topic", "partitions", "records": [[index, partition,
    offset, key, value], ...]}. Any delivery error fails the step.

  restart_durability.py verify BOOTSTRAP --acks-file a.json [--acks-file b.json]
    Read every partition of the topic from the beginning (assign(), no
    group) up to its high watermark and check: every acknowledged record is
    there exactly once, at its acknowledged partition and offset, with its
    key and value; the log holds nothing else; offsets are dense from 0.

Prints `PRODUCE OK ...` / `VERIFY OK ...`, or `FAIL ...` lines. Exit codes
as in restart_common.py.
"""

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import restart_common as rc  # noqa: E402

PROGRAM = "restart_durability"


def parse_args():
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__)
    p.add_argument("mode", choices=["produce", "verify"])
    p.add_argument("bootstrap")
    p.add_argument("--topic", help="produce: the topic")
    p.add_argument("--partitions", type=int, default=3, help="produce: partitions")
    p.add_argument("--records", type=int, default=20_000, help="produce: records")
    p.add_argument(
        "--first-index", type=int, default=0, help="produce: index of the first record"
    )
    p.add_argument(
        "--acks-file",
        action="append",
        required=True,
        help="produce: where to write the acks; verify: acks to check (repeatable)",
    )
    p.add_argument("--timeout", type=float, default=80.0, help="overall deadline, seconds")
    args = p.parse_args()
    if args.mode == "produce" and (not args.topic or len(args.acks_file) != 1):
        p.error("produce needs --topic and exactly one --acks-file")
    return args


def key_of(i):
    # Distinct keys, so the default partitioner spreads them over every partition.
    return b"key-%06d" % i


def value_of(i):
    return b"value-%06d-" % i + b"x" * (i % 97)


def produce(ck, args):
    producer = ck.Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "strom-durability-producer",
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60_000,
        }
    )
    rc.wait_for_topic(ck, producer, args.topic, args.partitions, 20.0)
    acked = {}
    errors = []

    def on_delivery(err, msg):
        i = int(msg.key()[4:])
        if err is not None:
            errors.append(f"record #{i}: {err}")
        else:
            acked[i] = (msg.partition(), msg.offset())

    t0 = time.monotonic()
    indexes = range(args.first_index, args.first_index + args.records)
    rc.step(f"producing {args.records} records to {args.topic}")
    for i in indexes:
        while True:
            try:
                producer.produce(
                    args.topic, key=key_of(i), value=value_of(i), on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60.0)
    seconds = time.monotonic() - t0
    if remaining:
        rc.fail(f"{remaining} records still unacknowledged after flush")
    if errors:
        rc.fail(f"{len(errors)} delivery errors, first: " + "; ".join(errors[:5]))
    missing = [i for i in indexes if i not in acked]
    if missing:
        rc.fail(f"{len(missing)} records have no acknowledgement, first {missing[:5]}")
    positions = {}
    for i, pos in acked.items():
        if pos in positions:
            rc.fail(f"records #{positions[pos]} and #{i} both acked at {pos}")
        positions[pos] = i
    records = [
        [i, acked[i][0], acked[i][1], key_of(i).decode(), value_of(i).decode()] for i in indexes
    ]
    with open(args.acks_file[0], "w") as f:
        json.dump({"topic": args.topic, "partitions": args.partitions, "records": records}, f)
    per_partition = [0] * args.partitions
    for _, p, _, _, _ in records:
        per_partition[p] += 1
    print(
        f"PRODUCE OK {rc.client_version(ck)} topic={args.topic} records={len(records)} "
        f"per_partition={per_partition} in {seconds:.1f}s",
        flush=True,
    )


def verify(ck, args):
    topic = None
    partitions = None
    acked = {}  # (partition, offset) -> (index, key, value)
    for path in args.acks_file:
        with open(path) as f:
            data = json.load(f)
        if topic is not None and (data["topic"], data["partitions"]) != (topic, partitions):
            rc.fail(f"{path} is for another topic")
        topic, partitions = data["topic"], data["partitions"]
        for i, p, o, k, v in data["records"]:
            if (p, o) in acked:
                rc.fail(f"{path}: #{i} and #{acked[(p, o)][0]} both acked at {p}/{o}")
            acked[(p, o)] = (i, k.encode(), v.encode())

    t0 = time.monotonic()
    records, watermarks = rc.read_partitions(ck, args.bootstrap, topic, partitions, 60.0)
    seconds = time.monotonic() - t0

    problems = []

    def problem(msg):
        if len(problems) < 20:
            problems.append(msg)
        elif len(problems) == 20:
            problems.append("... (more problems not shown)")

    expected_high = {p: 0 for p in range(partitions)}
    for p, o in acked:
        expected_high[p] = max(expected_high[p], o + 1)
    for p in range(partitions):
        low, high = watermarks[p]
        if (low, high) != (0, expected_high[p]):
            problem(
                f"partition {p}: watermarks (low, high) = ({low}, {high}), expected "
                f"(0, {expected_high[p]}) from the acknowledgements"
            )
    seen = {}
    last = {}
    for p, o, k, v in records:
        if (p, o) in seen:
            problem(f"{p}/{o} consumed twice")
        if o != last.get(p, -1) + 1:
            problem(f"partition {p}: offset {o} follows {last.get(p, -1)} (gap or reorder)")
        last[p] = o
        seen[(p, o)] = (k, v)
        want = acked.get((p, o))
        if want is None:
            problem(f"unacknowledged record at {p}/{o}: key={k!r} value[:30]={(v or b'')[:30]!r}")
            continue
        i, wk, wv = want
        if (k, v) != (wk, wv):
            problem(
                f"record #{i} acked at {p}/{o} reads back as key={k!r} "
                f"value[:30]={(v or b'')[:30]!r} (want key={wk!r} value[:30]={wv[:30]!r})"
            )
    lost = [(p, o) for (p, o) in acked if (p, o) not in seen]
    if lost:
        lost.sort()
        problem(f"{len(lost)} acknowledged records missing, first at {lost[:5]}")
    values = {}
    for p, o, _, v in records:
        values[v] = values.get(v, 0) + 1
    dups = [v for v, n in values.items() if n > 1]
    if dups:
        problem(f"{len(dups)} values stored more than once, e.g. {dups[0][:30]!r}")

    per_partition = [0] * partitions
    for p, _, _, _ in records:
        per_partition[p] += 1
    if problems:
        for msg in problems:
            print(f"FAIL {msg}", file=sys.stderr, flush=True)
        rc.fail(
            f"verify {topic}: {len(problems)} problem(s); acked={len(acked)} "
            f"read={len(records)} per_partition={per_partition}"
        )
    print(
        f"VERIFY OK {rc.client_version(ck)} topic={topic} acked={len(acked)} "
        f"read={len(records)} per_partition={per_partition} in {seconds:.1f}s",
        flush=True,
    )


def main():
    args = parse_args()
    ck = rc.import_confluent(PROGRAM)
    rc.start_watchdog(f"{PROGRAM} {args.mode}", args.timeout)
    if args.mode == "produce":
        produce(ck, args)
    else:
        verify(ck, args)


if __name__ == "__main__":
    main()
