#!/usr/bin/env python3
"""Idempotent producers writing continuously while the broker crashes.

Driven by tests/broker_crash_recovery.rs, which SIGKILLs and restarts the
broker (same port, same data directory) at random moments while `produce`
runs. This program only produces, reads back and writes down what happened;
every check is made by the Rust test, from the files written here.

  crash_producer.py produce BOOTSTRAP --topic T --partitions 12 \\
      --producers 2 --rate 1500 --acks-file ACKS --stop-file STOP \\
      [--config flush.messages=1]
    Creates the topic (AdminClient, with the --config settings), then runs
    --producers confluent-kafka producers with enable.idempotence=true,
    acks=all and a 120 s message.timeout.ms (retries span the restarts).
    Records go round-robin over producers and partitions, each to an
    explicit partition, paced at --rate records/s in total; the value is
    `PRODUCER:PARTITION:SEQ` with SEQ counting from 0 per (producer,
    partition). Every successful delivery report is appended to ACKS as
    `PRODUCER PARTITION SEQ OFFSET`, every failed one as
    `ERR PRODUCER PARTITION SEQ error`. Production stops once the file STOP
    exists; then flush() until nothing is outstanding. A fatal error
    (librdkafka giving up its idempotence guarantees) fails at once.
    Ends with `PRODUCE OK sent=N acked=A errors=E ...`.

  crash_producer.py read BOOTSTRAP --topic T --partitions 12 --out OUT
    Reads every partition from the beginning to the high watermark taken
    first (assign(), no group, check.crcs=true) and writes
    `W PARTITION LOW HIGH` per partition, then `R PARTITION OFFSET VALUE`
    per record in consumption order. Any consumer error (a CRC mismatch, a
    corrupt batch, an offset out of range) fails the program. Ends with
    `READ OK records=N`.

Exit codes as in restart_common.py.
"""

import argparse
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import restart_common as rc  # noqa: E402

PROGRAM = "crash_producer"


def parse_args():
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__)
    p.add_argument("mode", choices=["produce", "read"])
    p.add_argument("bootstrap")
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, default=12)
    p.add_argument("--producers", type=int, default=2)
    p.add_argument("--rate", type=float, default=1500.0, help="records per second, in total")
    p.add_argument("--config", action="append", default=[], help="topic config k=v")
    p.add_argument("--acks-file")
    p.add_argument("--stop-file")
    p.add_argument("--out")
    p.add_argument("--flush-timeout", type=float, default=90.0)
    p.add_argument("--timeout", type=float, default=170.0, help="overall deadline, seconds")
    args = p.parse_args()
    if args.mode == "produce" and not (args.acks_file and args.stop_file):
        p.error("produce needs --acks-file and --stop-file")
    if args.mode == "read" and not args.out:
        p.error("read needs --out")
    return args


def create_topic(ck, args):
    from confluent_kafka.admin import AdminClient, NewTopic

    config = dict(kv.split("=", 1) for kv in args.config)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    rc.step(f"creating {args.topic} with {args.partitions} partitions, config {config}")
    futures = admin.create_topics(
        [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1, config=config)]
    )
    futures[args.topic].result(timeout=20)


def produce(ck, args):
    create_topic(ck, args)
    lock = threading.Lock()
    fatal = []
    client_errors = []
    acks = open(args.acks_file, "w", buffering=1)
    counts = {"acked": 0, "failed": 0}

    def on_error(err):
        with lock:
            client_errors.append(str(err))
            if err.fatal():
                fatal.append(err)
        print(f"librdkafka error: {err}", file=sys.stderr, flush=True)

    def on_delivery(err, msg):
        # The value names the producer, partition and sequence number.
        pi, p, seq = msg.value().decode().split(":")
        with lock:
            if err is None:
                counts["acked"] += 1
                acks.write(f"{pi} {p} {seq} {msg.offset()}\n")
            else:
                counts["failed"] += 1
                acks.write(f"ERR {pi} {p} {seq} {err}\n")

    producers = []
    for i in range(args.producers):
        producers.append(
            ck.Producer(
                {
                    "bootstrap.servers": args.bootstrap,
                    "client.id": f"strom-crash-producer-{i}",
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    # Retries must outlive any number of restarts.
                    "message.timeout.ms": 120_000,
                    "request.timeout.ms": 10_000,
                    "reconnect.backoff.ms": 20,
                    "reconnect.backoff.max.ms": 200,
                    "error_cb": on_error,
                }
            )
        )
    for prod in producers:
        rc.wait_for_topic(ck, prod, args.topic, args.partitions, 20.0)

    def check_fatal():
        with lock:
            if not fatal:
                return
            err = fatal[0]
        acks.flush()
        rc.fail(f"fatal client error (idempotence given up): {err}; all errors: {client_errors[:10]}")

    seqs = [[0] * args.partitions for _ in producers]
    slots = [(i, p) for p in range(args.partitions) for i in range(len(producers))]
    sent = 0
    t0 = time.monotonic()
    rc.step(f"producing to {args.topic} at {args.rate:.0f}/s until {args.stop_file} exists")
    while not os.path.exists(args.stop_file):
        due = int((time.monotonic() - t0) * args.rate) + 1
        while sent < due:
            i, p = slots[sent % len(slots)]
            value = f"{i}:{p}:{seqs[i][p]}".encode()
            try:
                producers[i].produce(args.topic, value=value, partition=p, on_delivery=on_delivery)
            except BufferError:
                producers[i].poll(0.05)
                continue
            seqs[i][p] += 1
            sent += 1
        for prod in producers:
            prod.poll(0.005)
        check_fatal()
    produced_for = time.monotonic() - t0
    rc.step(f"stop file seen after {produced_for:.1f}s, {sent} sent; flushing")
    deadline = time.monotonic() + args.flush_timeout
    remaining = sum(len(prod) for prod in producers)
    while remaining and time.monotonic() < deadline:
        remaining = sum(prod.flush(0.2) for prod in producers)
        check_fatal()
    check_fatal()
    with lock:
        acked, failed = counts["acked"], counts["failed"]
    acks.close()
    if remaining:
        rc.fail(f"{remaining} records still outstanding after {args.flush_timeout:.0f}s of flush()")
    print(
        f"PRODUCE OK {rc.client_version(ck)} sent={sent} acked={acked} errors={failed} "
        f"seconds={produced_for:.1f} client_errors={len(client_errors)}",
        flush=True,
    )


def read(ck, args):
    consumer = ck.Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "strom-crash-reader",
            "group.id": f"{args.topic}-reader-{os.getpid()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "enable.partition.eof": True,
            # Verify every batch's CRC-32C (librdkafka does not by default).
            "check.crcs": True,
        }
    )
    out = open(args.out, "w")
    watermarks = {}
    for p in range(args.partitions):
        while p not in watermarks:
            try:
                watermarks[p] = consumer.get_watermark_offsets(
                    ck.TopicPartition(args.topic, p), timeout=5.0, cached=False
                )
            except ck.KafkaException as e:
                rc.step(f"watermarks of {p}: {e}; retrying")
                time.sleep(0.2)
        low, high = watermarks[p]
        out.write(f"W {p} {low} {high}\n")
    rc.step(f"reading {args.topic} {watermarks}")
    consumer.assign(
        [ck.TopicPartition(args.topic, p, ck.OFFSET_BEGINNING) for p in range(args.partitions)]
    )
    pending = {p for p, (low, high) in watermarks.items() if high > low}
    n = 0
    while pending:
        for m in consumer.consume(num_messages=1000, timeout=0.5):
            err = m.error()
            if err is not None:
                if err.code() == ck.KafkaError._PARTITION_EOF:
                    continue
                out.close()
                rc.fail(f"consumer error on partition {m.partition()}: {err}")
            p, o = m.partition(), m.offset()
            out.write(f"R {p} {o} {m.value().decode()}\n")
            n += 1
            if o + 1 >= watermarks[p][1]:
                pending.discard(p)
    consumer.close()
    out.close()
    print(f"READ OK {rc.client_version(ck)} records={n}", flush=True)


def main():
    args = parse_args()
    ck = rc.import_confluent(PROGRAM)
    rc.start_watchdog(f"{PROGRAM} {args.mode}", args.timeout)
    if args.mode == "produce":
        produce(ck, args)
    else:
        read(ck, args)


if __name__ == "__main__":
    main()
