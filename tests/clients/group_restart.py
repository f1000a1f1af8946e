#!/usr/bin/env python3
"""Committed offsets survive a broker restart (confluent-kafka-python).

Usage: group_restart.py BOOTSTRAP commit|verify TOPIC [--timeout SECONDS]

commit: creates TOPIC (2 partitions), produces 100 records, consumes them all
        in group TOPIC-g (subscribe()), commits synchronously and leaves.
verify: (after the broker restarted) a new member of TOPIC-g sees the committed
        offsets (50 per partition) and, after 10 more records are produced,
        consumes exactly those.

Prints `ALL OK ...` and exits 0 on success; exits 1 with a reason otherwise.
"""

import argparse
import sys
import time

sys.dont_write_bytecode = True

PARTITIONS = 2
RECORDS = 100
LATER = 10


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bootstrap")
    p.add_argument("mode", choices=["commit", "verify"])
    p.add_argument("topic")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    deadline = time.monotonic() + args.timeout

    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = args.topic
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})

    def produce(start, count):
        for i in range(start, start + count):
            producer.produce(topic, key=str(i).encode(), value=b"v", partition=i % PARTITIONS)
        if producer.flush(10) != 0:
            fail("produce did not complete")

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"{topic}-g",
        "session.timeout.ms": 6000,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })

    def consume(count):
        got = []
        while len(got) < count:
            if time.monotonic() > deadline:
                fail(f"consumed {len(got)} of {count}")
            for m in consumer.consume(num_messages=500, timeout=0.2):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                got.append(int(m.key()))
        return sorted(got)

    if args.mode == "commit":
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
            f.result(timeout=10)
        produce(0, RECORDS)
        consumer.subscribe([topic])
        if consume(RECORDS) != list(range(RECORDS)):
            fail("did not consume every record once")
        consumer.commit(asynchronous=False)
    else:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = consumer.committed(tps, timeout=10)
        want = RECORDS // PARTITIONS
        if [tp.offset for tp in committed] != [want] * PARTITIONS:
            fail(f"committed after restart: {committed}")
        produce(RECORDS, LATER)
        consumer.subscribe([topic])
        got = consume(LATER)
        if got != list(range(RECORDS, RECORDS + LATER)):
            fail(f"resumed with {got}")
    consumer.close()
    print(f"ALL OK {args.mode}", flush=True)


if __name__ == "__main__":
    main()
