#!/usr/bin/env python3
"""Idempotent producer across broker crashes, with confluent-kafka (librdkafka).

Driven by tests/broker_idempotence.rs, which SIGKILLs and restarts the broker
(same port, same data directory) while `produce` runs:

  idempotent_restart.py produce BOOTSTRAP --topic T --records 30000 \\
      --rate 2000 [--debug eos,msg]
    An enable.idempotence=true, acks=all producer with a long
    message.timeout.ms sends the values 0..N-1 (ASCII decimal, no key) to
    partition 0, paced at --rate records/s so production spans the restarts.
    It prints `PROGRESS acked=A sent=S ...` lines (for the driver to time its
    kills) and, with --debug including `msg`, one `RETRY values=A..B ...`
    line per batch that failed in flight (librdkafka then retries it with
    the same producer id and sequence numbers). Once flush() leaves nothing
    outstanding it checks that every value was delivered without error and
    acknowledged at offset == value. A fatal error (librdkafka giving up its
    idempotence guarantees) fails at once. Ends with `PRODUCE OK ...`.

  idempotent_restart.py verify BOOTSTRAP --topic T --records 30000
    Reads the whole of partition 0 (assign(), no group) and checks that it
    holds exactly the values 0..N-1, in order, at offsets 0..N-1: no
    duplicate, no gap. Prints `VERIFY OK ...`.

Exit codes as in restart_common.py.
"""

import argparse
import json
import logging
import os
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import restart_common as rc  # noqa: E402

PROGRAM = "idempotent_restart"


def parse_args():
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__)
    p.add_argument("mode", choices=["produce", "verify"])
    p.add_argument("bootstrap")
    p.add_argument("--topic", required=True)
    p.add_argument("--records", type=int, default=30_000)
    p.add_argument("--rate", type=float, default=2_000.0, help="produce: records per second")
    p.add_argument(
        "--flush-timeout", type=float, default=60.0, help="produce: seconds to wait in flush()"
    )
    p.add_argument(
        "--debug", default="", help="produce: librdkafka debug contexts, e.g. eos,msg,protocol"
    )
    p.add_argument("--timeout", type=float, default=85.0, help="overall deadline, seconds")
    args = p.parse_args()
    if args.records < 1 or args.rate <= 0:
        p.error("--records and --rate must be positive")
    return args


# librdkafka (debug=msg) logs every batch that fails in flight, e.g. when the
# connection drops, before it retries it:
#   MessageSet with 13 message(s) (MsgId 2398, BaseSeq 2397) encountered error:
#   Local: Broker transport failure (actions Refresh,MsgPossiblyPersisted)
# MsgIds count from 1 in produce order, so the batch holds the values
# MsgId-1 .. MsgId-1+count-1.
RETRY_RE = re.compile(
    r"MessageSet with (\d+) message\(s\) \(MsgId (\d+), BaseSeq (-?\d+)\) "
    r"encountered error: (.*) \(actions ([^)]*)\)"
)
# Per-batch lines, too many to print.
QUIET_RE = re.compile(r"Produce MessageSet with|MessageSet with .* delivered$")


def librdkafka_logger(retried):
    """A logging.Logger for librdkafka's log lines: prints `RETRY` lines to
    stdout for batches that failed in flight (for the driving test), and the
    other lines, but the per-batch ones, to stderr."""

    class Hook(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            m = RETRY_RE.search(msg)
            if m:
                count, msg_id, base_seq = int(m[1]), int(m[2]), int(m[3])
                first = msg_id - 1
                retried.append((first, first + count - 1))
                print(
                    f"RETRY values={first}..{first + count - 1} base_seq={base_seq} "
                    f"error={m[4]!r} actions={m[5]}",
                    flush=True,
                )
            if not QUIET_RE.search(msg):
                print(f"librdkafka: {msg}", file=sys.stderr, flush=True)

    logger = logging.getLogger("librdkafka")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(Hook())
    return logger


def produce(ck, args):
    lock = threading.Lock()
    fatal = []
    errors = []  # every error_cb error, fatal or not, for the report
    stats = {}

    def on_error(err):
        with lock:
            errors.append(str(err))
            if err.fatal():
                fatal.append(err)
        print(f"librdkafka error: {err}", file=sys.stderr, flush=True)

    def on_stats(text):
        s = json.loads(text)
        with lock:
            stats["last"] = s

    conf = {
        "bootstrap.servers": args.bootstrap,
        "client.id": "strom-idempotent-producer",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 120_000,
        "request.timeout.ms": 10_000,
        # Reconnect quickly once the broker is back.
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "statistics.interval.ms": 500,
        "error_cb": on_error,
        "stats_cb": on_stats,
    }
    retried = []  # (first value, last value) of every batch that failed in flight
    if args.debug:
        conf["debug"] = args.debug
        conf["logger"] = librdkafka_logger(retried)
    producer = ck.Producer(conf)
    rc.wait_for_topic(ck, producer, args.topic, 1, 20.0)

    n = args.records
    acked_offset = [None] * n
    acked_count = [0]
    delivery_errors = []
    mismatches = []

    def on_delivery(err, msg):
        v = int(msg.value())
        if err is not None:
            delivery_errors.append(f"value {v}: {err}")
        else:
            if acked_offset[v] is not None:
                delivery_errors.append(f"value {v} reported delivered twice")
            else:
                acked_count[0] += 1
            acked_offset[v] = msg.offset()
            if msg.offset() != v:
                mismatches.append((v, msg.offset()))

    def check_fatal():
        with lock:
            if not fatal:
                return
            err = fatal[0]
        rc.fail(
            f"librdkafka raised a fatal error (idempotence guarantee given up): {err} "
            f"(code {err.name()}); all errors so far: {errors[:10]}"
        )

    def acked():
        return acked_count[0]

    t0 = time.monotonic()
    last_progress = 0.0
    rc.step(f"producing {n} values to {args.topic}[0] at {args.rate:.0f}/s")
    sent = 0
    while sent < n:
        # Pacing: what should have been sent by now.
        due = min(n, int((time.monotonic() - t0) * args.rate) + 1)
        while sent < due:
            try:
                producer.produce(
                    args.topic, value=str(sent).encode(), partition=0, on_delivery=on_delivery
                )
                sent += 1
            except BufferError:
                producer.poll(0.05)
        producer.poll(0.01)
        check_fatal()
        now = time.monotonic()
        if now - last_progress >= 0.1:
            last_progress = now
            print(
                f"PROGRESS acked={acked()} sent={sent} retried_batches={len(retried)}",
                flush=True,
            )
    rc.step(f"all {n} sent after {time.monotonic() - t0:.1f}s; flushing")
    deadline = time.monotonic() + args.flush_timeout
    remaining = len(producer)
    while remaining and time.monotonic() < deadline:
        remaining = producer.flush(0.2)
        check_fatal()
        print(f"PROGRESS acked={acked()} sent={sent} outstanding={remaining}", flush=True)
    seconds = time.monotonic() - t0
    check_fatal()
    if remaining:
        rc.fail(
            f"{remaining} records still outstanding after {args.flush_timeout:.0f}s of flush()"
        )
    if delivery_errors:
        rc.fail(
            f"{len(delivery_errors)} delivery errors, first: " + "; ".join(delivery_errors[:5])
        )
    missing = [v for v, o in enumerate(acked_offset) if o is None]
    if missing:
        rc.fail(f"{len(missing)} values never reported delivered, first {missing[:5]}")
    if mismatches:
        rc.fail(
            f"{len(mismatches)} values acknowledged at an offset other than their value "
            f"(value, offset), first: {mismatches[:10]}"
        )
    # librdkafka's idempotence state: epoch_cnt > 1 would mean it gave up on its
    # producer id at some point (a new id/epoch), rather than retrying with it.
    producer.poll(0.6)  # one more statistics callback
    with lock:
        eos = stats.get("last", {}).get("eos", {})
    print(
        f"PRODUCE OK {rc.client_version(ck)} topic={args.topic} values={n} "
        f"seconds={seconds:.1f} retried_batches={len(retried)} "
        f"producer_id={eos.get('producer_id')} producer_epoch={eos.get('producer_epoch')} "
        f"epoch_cnt={eos.get('epoch_cnt')} nonfatal_errors={len(errors)}",
        flush=True,
    )
    for e in errors[:10]:
        print(f"  non-fatal client error: {e}", flush=True)


def verify(ck, args):
    t0 = time.monotonic()
    records, watermarks = rc.read_partitions(ck, args.bootstrap, args.topic, 1, 60.0)
    seconds = time.monotonic() - t0
    n = args.records
    problems = []
    low, high = watermarks[0]
    if (low, high) != (0, n):
        problems.append(f"watermarks (low, high) = ({low}, {high}), expected (0, {n})")
    values = []
    for p, o, _, v in records:
        try:
            values.append(int(v))
        except (TypeError, ValueError):
            problems.append(f"offset {o}: value {v!r} is not an integer")
            values.append(None)
        if o != len(values) - 1:
            problems.append(f"offset {o} read at position {len(values) - 1} (gap)")
    if values != list(range(n)):
        seen = {}
        for o, v in enumerate(values):
            seen.setdefault(v, []).append(o)
        dups = {v: os_ for v, os_ in seen.items() if len(os_) > 1}
        gaps = [v for v in range(n) if v not in seen]
        first_bad = next(
            (i for i, v in enumerate(values) if i >= n or v != i), min(len(values), n)
        )
        problems.append(
            f"values are not exactly 0..{n - 1}: read {len(values)}, {len(dups)} duplicated "
            f"(value: offsets, first {dict(list(dups.items())[:5])}), {len(gaps)} missing "
            f"(first {gaps[:5]}); first divergence at offset {first_bad}: "
            f"{values[max(0, first_bad - 3):first_bad + 5]}"
        )
    if problems:
        for msg in problems[:20]:
            print(f"FAIL {msg}", file=sys.stderr, flush=True)
        rc.fail(f"verify {args.topic}: {len(problems)} problem(s)")
    print(
        f"VERIFY OK {rc.client_version(ck)} topic={args.topic} values=0..{n - 1} "
        f"read={len(values)} in {seconds:.1f}s",
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
