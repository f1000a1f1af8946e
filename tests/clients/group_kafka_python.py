#!/usr/bin/env python3
"""Consumer groups through kafka-python (pure Python client).

Usage: group_kafka_python.py BOOTSTRAP [--timeout SECONDS]

Creates a 4-partition topic (KafkaAdminClient) and produces records to it
(KafkaProducer), then runs 2 KafkaConsumers in one group (subscribe()): the
group must settle with every partition owned by exactly one member, every
produced record must be consumed, and each consumer commits synchronously.
Then a 3rd consumer in the same group, alone, must resume from the committed
offsets: it sees only the records produced after the commits, none of the
committed ones again.

Prints `ALL OK ...` (with the API versions kafka-python picked) and exits 0 on
success; exits 1 with a reason otherwise. A watchdog ends the program with
exit code 3 after the deadline.
"""

import argparse
import os
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True

PARTITIONS = 4
RECORDS = 400
LATER = 40
MEMBERS = 2


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def start_watchdog(seconds):
    def fire():
        print(f"FAIL: deadline of {seconds}s passed", flush=True)
        os._exit(3)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def api_versions(consumer):
    """The versions kafka-python picks for the group APIs against this broker."""
    from kafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
    from kafka.protocol.find_coordinator import FindCoordinatorRequest
    from kafka.protocol.group import (
        HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest)

    client = consumer._client
    # The caps kafka-python's coordinator passes as max_version (2.3.3).
    names = [
        ("FindCoordinator", FindCoordinatorRequest, 2),
        ("JoinGroup", JoinGroupRequest, 5),
        ("SyncGroup", SyncGroupRequest, 3),
        ("Heartbeat", HeartbeatRequest, 3),
        ("LeaveGroup", LeaveGroupRequest, 3),
        ("OffsetCommit", OffsetCommitRequest, 7),
        ("OffsetFetch", OffsetFetchRequest, 5),
    ]
    out = []
    for name, req, cap in names:
        try:
            out.append(f"{name}=v{client.api_version(req, max_version=cap)}")
        except Exception as e:  # report, do not fail on the introspection
            out.append(f"{name}=?({e.__class__.__name__})")
    return ",".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bootstrap")
    p.add_argument("--timeout", type=float, default=50.0)
    args = p.parse_args()
    start_watchdog(args.timeout + 5)
    deadline = time.monotonic() + args.timeout

    def left():
        return deadline - time.monotonic()

    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    bootstrap = args.bootstrap
    topic = f"groups-kp-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-g"

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)], timeout_ms=10000)
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                             request_timeout_ms=10000, max_block_ms=10000)

    def produce(start, count):
        futures = [producer.send(topic, key=str(i).encode(), value=f"v{i}".encode(),
                                 partition=i % PARTITIONS)
                   for i in range(start, start + count)]
        producer.flush(timeout=10)
        for f in futures:
            f.get(timeout=10)

    produce(0, RECORDS)

    def consumer(name):
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
            # Also the rebalance timeout: bounds a JoinGroup wait.
            max_poll_interval_ms=20000,
            request_timeout_ms=25000,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    consumers = []
    for i in range(MEMBERS):
        name = f"member-{i}"
        c = consumer(name)
        c.subscribe([topic])
        consumers.append((name, c))

    per_partition = RECORDS // PARTITIONS

    def at_end(consumers):
        # After the last rebalance each member re-reads its partitions from
        # the committed offsets (none yet): wait until every owner is at the end.
        return all(c.position(tp, timeout_ms=10000) == per_partition
                   for _, c in consumers for tp in c.assignment())

    seen = {}  # (partition, offset) -> member
    dup = 0
    assigned = {}
    while True:
        if left() <= 0:
            fail(f"group did not settle/consume: assigned={assigned} consumed={len(seen)}/{RECORDS}")
        for name, c in consumers:
            for tp, msgs in c.poll(timeout_ms=100, max_records=500).items():
                for m in msgs:
                    k = (m.partition, m.offset)
                    if k in seen:
                        dup += 1
                    seen[k] = name
            assigned[name] = sorted(tp.partition for tp in c.assignment())
        owned = [p for parts in assigned.values() for p in parts]
        if (len(assigned) == MEMBERS and sorted(owned) == list(range(PARTITIONS))
                and all(assigned.values()) and len(seen) >= RECORDS
                and at_end(consumers)):
            break
    if dup:
        # A partition can move during the first rebalance before anything is
        # committed; re-delivery then is legitimate.
        print(f"note: {dup} records delivered twice during rebalances", flush=True)
    if len(seen) != RECORDS:
        fail(f"consumed {len(seen)} distinct records, expected {RECORDS}")
    versions = api_versions(consumers[0][1])

    for name, c in consumers:
        # Positions must be at the end of each owned partition before committing.
        for tp in c.assignment():
            if c.position(tp, timeout_ms=10000) != per_partition:
                fail(f"{name}: position {tp} is {c.position(tp)}, expected {per_partition}")
        c.commit()
        for tp in c.assignment():
            got = c.committed(tp)
            if got != per_partition:
                fail(f"{name}: committed {tp} = {got}, expected {per_partition}")
    settled = dict(assigned)
    for _, c in consumers:
        c.close(autocommit=False, timeout_ms=10000)

    produce(RECORDS, LATER)
    producer.close(timeout=10)

    resumed = consumer("resumer")
    resumed.subscribe([topic])
    got = []
    while len(got) < LATER:
        if left() <= 0:
            fail(f"resumer got {len(got)} of {LATER} later records")
        for tp, msgs in resumed.poll(timeout_ms=200, max_records=500).items():
            for m in msgs:
                if m.offset < per_partition:
                    fail(f"resumer re-read committed record p{m.partition}@{m.offset}")
                got.append(int(m.key))
    if sorted(got) != list(range(RECORDS, RECORDS + LATER)):
        fail(f"resumer got unexpected records: {sorted(got)[:10]}...")
    if sorted(tp.partition for tp in resumed.assignment()) != list(range(PARTITIONS)):
        fail(f"resumer assignment {resumed.assignment()}")
    resumed.commit()
    for p in range(PARTITIONS):
        want = (RECORDS + LATER) // PARTITIONS
        if resumed.committed(TopicPartition(topic, p)) != want:
            fail(f"resumer committed p{p} = {resumed.committed(TopicPartition(topic, p))}")
    resumed.close(autocommit=False, timeout_ms=10000)
    print(f"ALL OK kafka-python {kafka.__version__} members={MEMBERS} partitions={PARTITIONS} "
          f"records={RECORDS}+{LATER} assignment={settled} apis={versions}", flush=True)


if __name__ == "__main__":
    main()
