#!/usr/bin/env python3
"""confluent-kafka side of tests/broker_disk_full.rs: produce onto a broker
whose data directory fills up, and read back what was acknowledged.

  disk_full.py produce BOOTSTRAP --topic T --first-index I --records N
               --acks-file F [--stop-after-errors K] [--value-size B] [--one-by-one]
               [--timeout S]
  disk_full.py verify BOOTSTRAP --topic T --acks-file F [--acks-file F2 ...]
               [--timeout S]

`produce` sends records I, I+1, ... (key the index as 8 digits, value "<index>:"
padded to --value-size bytes, so every record has the same size) to partition 0
with acks=all, no idempotence and no retries (with --one-by-one each in its own
batch, waiting for its report before the next),
so every record's delivery report is the broker's own answer to its one Produce
request. It stops producing new records once K delivery reports have failed
(the disk is full), waits for every report, and writes F: JSON
{"acked": {index: offset}, "failed": {index: error name}}. Prints
`PRODUCE OK acked=A failed=E storage_errors=S other_errors=O first_offset=X
last_offset=Y` (offsets -1 when nothing was acknowledged).

`verify` reads partition 0 from the log start to the high watermark with
assign() (no group) and checks, against the union of the acks files: every
acknowledged record is there once, at its acknowledged offset, key and value
intact; no record refused with KAFKA_STORAGE_ERROR is there (a refused batch
must leave nothing in the log); acknowledged offsets grow with the record
index (order kept); nothing else is in the partition but records whose outcome
the producer does not know. Prints `VERIFY OK acked=A read=R`.

Exit codes as restart_common.py: 0 ok, 1 a check failed, 2 usage, 3 deadline.
"""

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import restart_common as rc  # noqa: E402


def value_of(index, size):
    head = f"{index}:".encode()
    return head + b"x" * max(0, size - len(head))


def produce(ck, args):
    producer = ck.Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "strom-disk-full",
            "acks": "all",
            "enable.idempotence": False,
            # One attempt per batch: the report carries the broker's answer.
            "retries": 0,
            "linger.ms": 5,
            "batch.size": 64 * 1024,
            # A short queue: producing stops soon after the first failed reports.
            "queue.buffering.max.messages": 2000,
            "message.timeout.ms": 30000,
            "request.timeout.ms": 15000,
        }
    )
    acked, failed = {}, {}

    def report(err, msg):
        index = int(msg.key().decode())
        if err is None:
            acked[index] = msg.offset()
        else:
            failed[index] = err.name()

    deadline = time.monotonic() + args.timeout
    rc.step(f"producing up to {args.records} records from #{args.first_index}")
    sent = 0
    while sent < args.records and len(failed) < args.stop_after_errors:
        if time.monotonic() >= deadline:
            rc.fail(f"produce deadline passed after {sent} records")
        index = args.first_index + sent
        try:
            producer.produce(
                args.topic,
                key=f"{index:08d}".encode(),
                value=value_of(index, args.value_size),
                partition=0,
                on_delivery=report,
            )
            sent += 1
            if args.one_by_one:
                producer.flush(max(1.0, deadline - time.monotonic()))
        except BufferError:
            producer.poll(0.05)
            continue
        producer.poll(0)
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    if left:
        rc.fail(f"{left} delivery reports missing at the deadline")
    storage = sum(1 for e in failed.values() if e == "KAFKA_STORAGE_ERROR")
    with open(args.acks_file, "w") as f:
        json.dump({"acked": acked, "failed": failed}, f)
    offsets = sorted(acked.values())
    print(
        f"PRODUCE OK acked={len(acked)} failed={len(failed)} storage_errors={storage} "
        f"other_errors={len(failed) - storage} "
        f"first_offset={offsets[0] if offsets else -1} "
        f"last_offset={offsets[-1] if offsets else -1}",
        flush=True,
    )


def verify(ck, args):
    acked, failed = {}, {}
    for path in args.acks_file:
        with open(path) as f:
            data = json.load(f)
        acked.update({int(k): v for k, v in data["acked"].items()})
        failed.update({int(k): v for k, v in data["failed"].items()})
    by_offset = {}
    for index, offset in sorted(acked.items()):
        if offset in by_offset:
            rc.fail(f"records #{by_offset[offset]} and #{index} both acknowledged at {offset}")
        by_offset[offset] = index
    previous = -1
    for index in sorted(acked):
        if acked[index] <= previous:
            rc.fail(f"record #{index} acknowledged at {acked[index]}, not after {previous}")
        previous = acked[index]

    records, watermarks = rc.read_partitions(ck, args.bootstrap, args.topic, 1, args.timeout)
    seen = set()
    for _, offset, key, value in records:
        index = int(key.decode())
        if value != value_of(index, len(value)):
            rc.fail(f"record #{index} at {offset}: value damaged")
        if index in acked:
            if acked[index] != offset:
                rc.fail(f"record #{index} at offset {offset}, acknowledged at {acked[index]}")
            if index in seen:
                rc.fail(f"record #{index} read twice")
            seen.add(index)
        elif failed.get(index) == "KAFKA_STORAGE_ERROR":
            rc.fail(f"record #{index} was refused with KAFKA_STORAGE_ERROR but is at {offset}")
        elif index not in failed:
            rc.fail(f"record #{index} at {offset} was never produced")
    missing = sorted(set(acked) - seen)
    if missing:
        rc.fail(
            f"{len(missing)} acknowledged records not read, first #{missing[0]} "
            f"(acknowledged at {acked[missing[0]]}); watermarks {watermarks}"
        )
    print(f"VERIFY OK acked={len(acked)} read={len(records)}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["produce", "verify"])
    parser.add_argument("bootstrap")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--acks-file", action="append", required=True)
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--records", type=int, default=0)
    parser.add_argument("--stop-after-errors", type=int, default=1)
    parser.add_argument("--value-size", type=int, default=1000)
    parser.add_argument("--one-by-one", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    ck = rc.import_confluent("disk_full.py")
    rc.start_watchdog("disk_full.py", args.timeout + 10)
    if args.mode == "produce":
        if len(args.acks_file) != 1:
            parser.error("produce writes exactly one --acks-file")
        args.acks_file = args.acks_file[0]
        produce(ck, args)
    else:
        verify(ck, args)


if __name__ == "__main__":
    main()
