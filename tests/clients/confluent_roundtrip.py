#!/usr/bin/env python3
"""Round trip through confluent-kafka-python (librdkafka).

Usage: confluent_roundtrip.py BOOTSTRAP [--codecs none,gzip,...] [--records N]

Per codec: AdminClient.create_topics (3 partitions), Producer with delivery
reports, Consumer.assign() of all 3 partitions from OFFSET_BEGINNING, then the
checks of roundtrip_common.verify. See roundtrip_common.py for exit codes.
"""

import functools
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roundtrip_common as rt  # noqa: E402

CLIENT = "confluent-kafka"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def main():
    args = rt.parse_args(CLIENT, CODECS)
    try:
        import confluent_kafka
        from confluent_kafka import (
            OFFSET_BEGINNING,
            TIMESTAMP_CREATE_TIME,
            Consumer,
            KafkaError,
            KafkaException,
            Producer,
            TopicPartition,
        )
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError as e:
        rt.missing(CLIENT, f"python module confluent_kafka not importable: {e}")
        return

    version = f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"
    bootstrap = args.bootstrap
    step_s = args.step_timeout

    def probe():
        admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "strom-roundtrip-admin"})
        d = rt.Deadline(step_s, f"fetching cluster metadata from {bootstrap}")
        try:
            md = admin.list_topics(timeout=max(1.0, d.left()))
        except KafkaException as e:
            raise rt.StepTimeout(f"no metadata from {bootstrap} within {step_s:.0f}s: {e}")
        if md.controller_id < 0:
            print(
                f"warning: metadata has no controller (controller_id={md.controller_id}); "
                "librdkafka's AdminClient needs one for CreateTopics",
                file=sys.stderr,
            )

    def create_topic(topic):
        admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "strom-roundtrip-admin"})
        if not args.no_create:
            d = rt.Deadline(step_s, f"creating topic {topic} (AdminClient.create_topics) at {bootstrap}")
            futures = admin.create_topics(
                [NewTopic(topic, num_partitions=rt.PARTITIONS, replication_factor=1)],
                request_timeout=max(1.0, d.left()),
                operation_timeout=10.0,
            )
            try:
                futures[topic].result(timeout=max(1.0, d.left()))
            except KafkaException:
                raise
            except Exception as e:  # concurrent.futures.TimeoutError and friends
                raise rt.StepTimeout(f"create_topics({topic}) got no answer from {bootstrap}: {e!r}")

        d = rt.Deadline(step_s, f"waiting for metadata of {topic} to show {rt.PARTITIONS} partitions")
        last = "no metadata yet"
        while True:
            try:
                md = admin.list_topics(topic=topic, timeout=max(0.5, min(5.0, d.left())))
                t = md.topics.get(topic)
                if t is None:
                    last = "topic missing from metadata"
                elif t.error is not None:
                    last = f"topic error {t.error}"
                elif len(t.partitions) != rt.PARTITIONS:
                    last = f"{len(t.partitions)} partitions"
                elif any(p.leader < 0 or p.error is not None for p in t.partitions.values()):
                    last = "a partition has no leader yet"
                else:
                    return
            except KafkaException as e:
                last = f"list_topics failed: {e}"
            d.check(last)
            time.sleep(0.2)

    def produce(topic, codec, records):
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "strom-roundtrip-producer",
                "compression.type": codec,
                "acks": "all",
                "linger.ms": 10,
                "message.timeout.ms": int(step_s * 1000),
            }
        )
        acks = [(None, None)] * len(records)
        errors = []

        def on_delivery(i, err, msg):
            if err is not None:
                errors.append(f"record #{i}: {err}")
            else:
                acks[i] = (msg.partition(), msg.offset())

        d = rt.Deadline(step_s, f"producing {len(records)} records to {topic} with {codec}")
        for rec in records:
            while True:
                try:
                    producer.produce(
                        topic,
                        key=rec.key,
                        value=rec.value,
                        headers=rec.headers,
                        timestamp=rec.timestamp,
                        on_delivery=functools.partial(on_delivery, rec.index),
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
                    d.check("local queue full")
            producer.poll(0)
        remaining = producer.flush(max(0.0, d.left()))
        while remaining and not d.expired():
            remaining = producer.flush(max(0.0, d.left()))
        if remaining:
            d.check(f"{remaining} records still unacknowledged")
            raise rt.StepTimeout(f"{remaining} records still unacknowledged")
        if errors:
            raise RuntimeError(
                f"{len(errors)} delivery errors, first: " + "; ".join(errors[:5])
            )
        return acks

    def consume(topic, acks):
        ends = rt.expected_ends(acks)
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "strom-roundtrip-consumer",
                # Mandatory for librdkafka's consumer; no group is joined
                # (assign(), not subscribe()) and nothing is committed.
                "group.id": f"{topic}-reader",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.assign(
                [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(rt.PARTITIONS)]
            )
            d = rt.Deadline(step_s, f"consuming {topic} from the beginning of {rt.PARTITIONS} partitions")
            consumed = []
            by_partition = {}
            while not rt.consumed_enough(ends, by_partition):
                d.check(f"consumed {len(consumed)} of {len(acks)}")
                for m in consumer.consume(num_messages=1000, timeout=0.5):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(err)
                    ts_type, ts = m.timestamp()
                    c = rt.Consumed(
                        m.partition(),
                        m.offset(),
                        m.key(),
                        m.value(),
                        m.headers(),
                        ts,
                        ts_type == TIMESTAMP_CREATE_TIME,
                    )
                    consumed.append(c)
                    by_partition.setdefault(c.partition, []).append(c)
            return consumed
        finally:
            consumer.close()

    def one_codec(codec, topic):
        create_topic(topic)
        records = rt.make_records(args.records, codec)
        acks = produce(topic, codec, records)
        consumed = consume(topic, acks)
        return records, acks, consumed

    rt.run(CLIENT, version, args, one_codec, probe)


if __name__ == "__main__":
    main()
