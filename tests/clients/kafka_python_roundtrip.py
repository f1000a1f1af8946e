#!/usr/bin/env python3
"""Round trip through kafka-python (pure Python client).

Usage: kafka_python_roundtrip.py BOOTSTRAP [--codecs none,gzip,...] [--records N]

Per codec: KafkaAdminClient.create_topics (3 partitions), KafkaProducer.send
with the RecordMetadata of every future as the ack, KafkaConsumer without a
group (assign + seek_to_beginning), then the checks of
roundtrip_common.verify. Codec libraries: gzip is built in; snappy needs
python-snappy, lz4 needs lz4, zstd needs zstandard (all installed by
.ci/run). See roundtrip_common.py for exit codes.
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roundtrip_common as rt  # noqa: E402

CLIENT = "kafka-python"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def main():
    args = rt.parse_args(CLIENT, CODECS)
    try:
        import kafka
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition
        from kafka import codec as kcodec
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError  # noqa: F401
    except ImportError as e:
        rt.missing(CLIENT, f"python module kafka not importable: {e}")
        return

    version = kafka.__version__
    bootstrap = args.bootstrap
    step_s = args.step_timeout
    step_ms = int(step_s * 1000)

    available = {
        "none": (True, ""),
        "gzip": (kcodec.has_gzip(), "gzip module"),
        "snappy": (kcodec.has_snappy(), "python-snappy"),
        "lz4": (kcodec.has_lz4(), "lz4"),
        "zstd": (kcodec.has_zstd(), "zstandard"),
    }
    codecs = []
    for c in args.codecs:
        ok, lib = available[c]
        if ok:
            codecs.append(c)
        else:
            rt.missing(f"{CLIENT} codec {c}", f"python package {lib} is not installed")
    args.codecs = codecs

    common = {
        "bootstrap_servers": bootstrap,
        "request_timeout_ms": step_ms,
        # Version probing on connect; bounded so a dead broker fails fast.
        "api_version_auto_timeout_ms": min(step_ms, 10_000),
    }

    def probe():
        rt.step(f"connecting to {bootstrap} and fetching cluster metadata")
        consumer = KafkaConsumer(client_id="strom-roundtrip-probe", group_id=None, **common)
        try:
            consumer.topics()
            print(
                f"kafka-python inferred broker version {consumer.config.get('api_version')}",
                file=sys.stderr,
            )
        finally:
            consumer.close(autocommit=False)

    def create_topic(topic):
        if not args.no_create:
            rt.step(f"creating topic {topic} (KafkaAdminClient.create_topics) at {bootstrap}")
            admin = KafkaAdminClient(client_id="strom-roundtrip-admin", **common)
            try:
                admin.create_topics(
                    [NewTopic(name=topic, num_partitions=rt.PARTITIONS, replication_factor=1)],
                    timeout_ms=10_000,
                )
            finally:
                admin.close()

    def wait_partitions(client, topic):
        """client: a KafkaProducer or KafkaConsumer; waits until its metadata
        knows all partitions of topic."""
        d = rt.Deadline(step_s, f"waiting for metadata of {topic} to show {rt.PARTITIONS} partitions")
        while True:
            parts = client.partitions_for(topic) if isinstance(client, KafkaProducer) else client.partitions_for_topic(topic)
            if parts is not None and len(parts) == rt.PARTITIONS:
                return
            d.check(f"partitions: {sorted(parts) if parts else parts}")
            if isinstance(client, KafkaConsumer):
                client.topics()  # forces a metadata refresh
            time.sleep(0.2)

    def produce(topic, codec, records):
        producer = KafkaProducer(
            client_id="strom-roundtrip-producer",
            compression_type=None if codec == "none" else codec,
            acks="all",
            linger_ms=10,
            max_block_ms=step_ms,
            **common,
        )
        try:
            wait_partitions(producer, topic)
            d = rt.Deadline(step_s, f"producing {len(records)} records to {topic} with {codec}")
            futures = []
            for rec in records:
                futures.append(
                    producer.send(
                        topic,
                        key=rec.key,
                        value=rec.value,
                        headers=rec.headers,
                        timestamp_ms=rec.timestamp,
                    )
                )
            producer.flush(timeout=max(1.0, d.left()))
            acks = []
            errors = []
            for rec, fut in zip(records, futures):
                if not fut.is_done:
                    d.check("records still unacknowledged after flush")
                    raise rt.StepTimeout(f"record #{rec.index} unacknowledged after flush")
                if fut.failed():
                    errors.append(f"record #{rec.index}: {fut.exception!r}")
                    acks.append((None, None))
                else:
                    md = fut.value
                    acks.append((md.partition, md.offset))
            if errors:
                raise RuntimeError(f"{len(errors)} send errors, first: " + "; ".join(errors[:5]))
            return acks
        finally:
            producer.close(timeout=5)

    def consume(topic, acks):
        ends = rt.expected_ends(acks)
        consumer = KafkaConsumer(
            client_id="strom-roundtrip-consumer",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **common,
        )
        try:
            wait_partitions(consumer, topic)
            tps = [TopicPartition(topic, p) for p in range(rt.PARTITIONS)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            d = rt.Deadline(step_s, f"consuming {topic} from the beginning of {rt.PARTITIONS} partitions")
            consumed = []
            by_partition = {}
            while not rt.consumed_enough(ends, by_partition):
                d.check(f"consumed {len(consumed)} of {len(acks)}")
                batches = consumer.poll(timeout_ms=500, max_records=2000)
                # poll() returns {TopicPartition: [records]}; arrival order
                # within each partition is what matters.
                for tp, msgs in batches.items():
                    for m in msgs:
                        c = rt.Consumed(
                            m.partition,
                            m.offset,
                            m.key,
                            m.value,
                            m.headers,
                            m.timestamp,
                            m.timestamp_type == 0,
                        )
                        consumed.append(c)
                        by_partition.setdefault(c.partition, []).append(c)
            return consumed
        finally:
            consumer.close(autocommit=False)

    def one_codec(codec, topic):
        create_topic(topic)
        records = rt.make_records(args.records, codec)
        acks = produce(topic, codec, records)
        consumed = consume(topic, acks)
        return records, acks, consumed

    rt.run(CLIENT, version, args, one_codec, probe)


if __name__ == "__main__":
    main()
