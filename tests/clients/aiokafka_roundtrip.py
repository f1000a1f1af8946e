#!/usr/bin/env python3
"""Round trip through aiokafka (asyncio client).

Usage: aiokafka_roundtrip.py BOOTSTRAP [--codecs none,gzip,...] [--records N]

Per codec: AIOKafkaAdminClient.create_topics (3 partitions),
AIOKafkaProducer.send with the RecordMetadata of every future as the ack,
AIOKafkaConsumer without a group (assign + seek_to_beginning), then the
checks of roundtrip_common.verify. aiokafka needs cramjam for snappy, lz4 and
zstd (installed by .ci/run). See roundtrip_common.py for exit codes.
"""

import asyncio
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roundtrip_common as rt  # noqa: E402

CLIENT = "aiokafka"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def main():
    args = rt.parse_args(CLIENT, CODECS)
    try:
        import aiokafka
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
        from aiokafka import codec as acodec
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import for_code
    except ImportError as e:
        rt.missing(CLIENT, f"python module aiokafka not importable: {e}")
        return

    version = aiokafka.__version__
    bootstrap = args.bootstrap
    step_s = args.step_timeout
    step_ms = int(step_s * 1000)

    available = {
        "none": True,
        "gzip": acodec.has_gzip(),
        "snappy": acodec.has_snappy(),
        "lz4": acodec.has_lz4(),
        "zstd": acodec.has_zstd(),
    }
    codecs = []
    for c in args.codecs:
        if available[c]:
            codecs.append(c)
        else:
            rt.missing(f"{CLIENT} codec {c}", "python package cramjam is not installed")
    args.codecs = codecs

    async def bounded(what, coro, seconds=None):
        """Await coro under a step deadline; a timeout becomes StepTimeout."""
        seconds = step_s if seconds is None else seconds
        rt.step(what)
        try:
            return await asyncio.wait_for(coro, timeout=seconds)
        except asyncio.TimeoutError:
            raise rt.StepTimeout(f"{what}: no success within {seconds:.0f}s")

    async def probe():
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="strom-roundtrip-probe",
            group_id=None,
            request_timeout_ms=step_ms,
        )
        try:
            await bounded(f"connecting to {bootstrap} and fetching cluster metadata", consumer.start())
            await bounded("listing topics", consumer.topics())
        finally:
            await consumer.stop()

    async def create_topic(topic):
        if args.no_create:
            return
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="strom-roundtrip-admin",
            request_timeout_ms=step_ms,
        )
        try:
            await bounded(f"connecting AIOKafkaAdminClient to {bootstrap}", admin.start())
            resp = await bounded(
                f"creating topic {topic} (AIOKafkaAdminClient.create_topics)",
                admin.create_topics(
                    [NewTopic(name=topic, num_partitions=rt.PARTITIONS, replication_factor=1)],
                    timeout_ms=10_000,
                ),
            )
            # aiokafka returns the raw response; errors are not raised.
            for entry in resp.topic_errors:
                name, code = entry[0], entry[1]
                if code != 0:
                    raise RuntimeError(
                        f"CreateTopics({name}) failed: {for_code(code).__name__} "
                        f"(error code {code}) {entry[2:] if len(entry) > 2 else ''}"
                    )
        finally:
            await admin.close()

    async def wait_partitions(get_parts, topic):
        d = rt.Deadline(step_s, f"waiting for metadata of {topic} to show {rt.PARTITIONS} partitions")
        while True:
            parts = await asyncio.wait_for(get_parts(), timeout=max(0.5, d.left()))
            if parts is not None and len(parts) == rt.PARTITIONS:
                return
            d.check(f"partitions: {sorted(parts) if parts else parts}")
            await asyncio.sleep(0.2)

    async def produce(topic, codec, records):
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="strom-roundtrip-producer",
            compression_type=None if codec == "none" else codec,
            acks="all",
            linger_ms=10,
            request_timeout_ms=step_ms,
        )
        try:
            await bounded(f"starting AIOKafkaProducer against {bootstrap}", producer.start())
            await wait_partitions(lambda: producer.partitions_for(topic), topic)

            async def send_all():
                futures = []
                for rec in records:
                    futures.append(
                        await producer.send(
                            topic,
                            key=rec.key,
                            value=rec.value,
                            headers=rec.headers,
                            timestamp_ms=rec.timestamp,
                        )
                    )
                await producer.flush()
                return await asyncio.gather(*futures, return_exceptions=True)

            results = await bounded(
                f"producing {len(records)} records to {topic} with {codec}", send_all()
            )
            acks = []
            errors = []
            for rec, res in zip(records, results):
                if isinstance(res, BaseException):
                    errors.append(f"record #{rec.index}: {res!r}")
                    acks.append((None, None))
                else:
                    acks.append((res.partition, res.offset))
            if errors:
                raise RuntimeError(f"{len(errors)} send errors, first: " + "; ".join(errors[:5]))
            return acks
        finally:
            await producer.stop()

    async def consume(topic, acks):
        ends = rt.expected_ends(acks)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="strom-roundtrip-consumer",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=step_ms,
        )
        try:
            await bounded(f"starting AIOKafkaConsumer against {bootstrap}", consumer.start())

            async def parts():
                await consumer._client.force_metadata_update()
                return consumer.partitions_for_topic(topic)

            await wait_partitions(parts, topic)
            tps = [TopicPartition(topic, p) for p in range(rt.PARTITIONS)]
            consumer.assign(tps)
            await bounded("seeking to the beginning", consumer.seek_to_beginning(*tps))
            d = rt.Deadline(step_s, f"consuming {topic} from the beginning of {rt.PARTITIONS} partitions")
            consumed = []
            by_partition = {}
            while not rt.consumed_enough(ends, by_partition):
                d.check(f"consumed {len(consumed)} of {len(acks)}")
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
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
            await consumer.stop()

    def one_codec(codec, topic):
        async def go():
            await create_topic(topic)
            records = rt.make_records(args.records, codec)
            acks = await produce(topic, codec, records)
            consumed = await consume(topic, acks)
            return records, acks, consumed

        return asyncio.run(go())

    rt.run(CLIENT, version, args, one_codec, lambda: asyncio.run(probe()))


if __name__ == "__main__":
    main()
