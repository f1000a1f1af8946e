"""Shared parts of the restart programs in this folder (confluent-kafka).

`restart_durability.py` and `idempotent_restart.py` are driven by Rust tests
(`tests/broker_durability.rs`, `tests/broker_idempotence.rs`) that stop,
SIGKILL and restart the broker between or during their steps. This module
holds what both need: a hard watchdog, waiting for a topic to exist with the
expected partitions, and reading whole partitions back from the beginning.

Exit codes (as roundtrip_common.py): 0 ok; 1 a check failed or the client
raised; 2 usage; 3 deadline passed (watchdog); 4 confluent_kafka missing.
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roundtrip_common as rt  # noqa: E402

EXIT_FAILED = rt.EXIT_FAILED
EXIT_USAGE = rt.EXIT_USAGE
EXIT_TIMEOUT = rt.EXIT_TIMEOUT
EXIT_MISSING = rt.EXIT_MISSING

step = rt.step
start_watchdog = rt.start_watchdog


def import_confluent(program):
    """The confluent_kafka module, or exit 4 (or a printed skip) if missing."""
    try:
        import confluent_kafka
    except ImportError as e:
        rt.missing(program, f"python module confluent_kafka not importable: {e}")
        sys.exit(0)
    return confluent_kafka


def client_version(ck):
    return f"confluent-kafka {ck.__version__} (librdkafka {ck.libversion()[0]})"


def fail(msg):
    print(f"FAIL {msg}", file=sys.stderr, flush=True)
    sys.exit(EXIT_FAILED)


def wait_for_topic(ck, client, topic, partitions, seconds):
    """Metadata requests (which auto-create the topic: a producer's metadata
    requests allow it) until `topic` shows `partitions` partitions with
    leaders."""
    deadline = time.monotonic() + seconds
    step(f"waiting for topic {topic} with {partitions} partition(s)")
    last = "no metadata yet"
    while time.monotonic() < deadline:
        try:
            md = client.list_topics(topic=topic, timeout=5.0)
            t = md.topics.get(topic)
            if t is None:
                last = "topic missing from metadata"
            elif t.error is not None:
                last = f"topic error {t.error}"
            elif len(t.partitions) != partitions:
                last = f"{len(t.partitions)} partitions, want {partitions}"
            elif any(p.leader < 0 or p.error is not None for p in t.partitions.values()):
                last = "a partition has no leader"
            else:
                return
        except ck.KafkaException as e:
            last = f"list_topics failed: {e}"
        time.sleep(0.2)
    fail(f"topic {topic} not ready within {seconds:.0f}s: {last}")


def read_partitions(ck, bootstrap, topic, partitions, seconds):
    """Everything in partitions 0..partitions-1 of `topic`, from the log start
    to the high watermark read at the start (nothing is being produced).

    Uses assign(), never the group protocol: librdkafka requires a group.id,
    but no group is joined and nothing is committed.

    Returns (records, watermarks): records is a list of
    (partition, offset, key, value) in consumption order, watermarks a dict
    partition -> (low, high)."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "strom-restart-reader",
            "group.id": f"{topic}-reader-{os.getpid()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "enable.partition.eof": True,
        }
    )
    deadline = time.monotonic() + seconds
    try:
        step(f"reading the watermarks of {topic}")
        watermarks = {}
        for p in range(partitions):
            last = None
            while p not in watermarks:
                if time.monotonic() >= deadline:
                    fail(f"no watermarks for {topic}/{p}: {last}")
                try:
                    watermarks[p] = consumer.get_watermark_offsets(
                        ck.TopicPartition(topic, p), timeout=5.0, cached=False
                    )
                except ck.KafkaException as e:
                    last = e
                    time.sleep(0.2)
        step(f"consuming {topic} {watermarks}")
        consumer.assign(
            [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)]
        )
        records = []
        next_offset = {p: low for p, (low, _) in watermarks.items()}
        pending = {p for p, (low, high) in watermarks.items() if high > low}
        while pending:
            if time.monotonic() >= deadline:
                fail(
                    f"reading {topic} timed out after {seconds:.0f}s: "
                    f"at {next_offset}, watermarks {watermarks}"
                )
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == ck.KafkaError._PARTITION_EOF:
                        continue
                    raise ck.KafkaException(err)
                p, o = m.partition(), m.offset()
                records.append((p, o, m.key(), m.value()))
                next_offset[p] = o + 1
                if next_offset[p] >= watermarks[p][1]:
                    pending.discard(p)
        return records, watermarks
    finally:
        consumer.close()
