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

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import group_common as common  # noqa: E402
from group_common import LATER, PARTITIONS, PER_PARTITION, RECORDS, fail  # noqa: E402


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
    args = common.parse_args()
    left = common.time_left(args.timeout)

    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    bootstrap = args.bootstrap
    topic, group = common.names("kp")

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)], timeout_ms=10000)
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                             request_timeout_ms=10000, max_block_ms=10000)

    def produce(start, count):
        futures = [producer.send(topic, **r) for r in common.records(start, count)]
        producer.flush(timeout=10)
        for f in futures:
            f.get(timeout=10)

    produce(0, RECORDS)

    def consumer(name):
        return KafkaConsumer(**common.consumer_config(bootstrap, group, name))

    consumers = []
    for i in range(common.MEMBERS):
        name = f"member-{i}"
        c = consumer(name)
        c.subscribe([topic])
        consumers.append((name, c))

    def at_end(consumers):
        # After the last rebalance each member re-reads its partitions from
        # the committed offsets (none yet): wait until every owner is at the end.
        return all(c.position(tp, timeout_ms=10000) == PER_PARTITION
                   for _, c in consumers for tp in c.assignment())

    run = common.GroupRun(fail, left)
    while True:
        run.check_time()
        for name, c in consumers:
            run.add(name, c.poll(timeout_ms=100, max_records=500), c.assignment())
        if run.settled() and at_end(consumers):
            break
    run.check_consumed()
    versions = api_versions(consumers[0][1])

    for name, c in consumers:
        # Positions must be at the end of each owned partition before committing.
        for tp in c.assignment():
            if c.position(tp, timeout_ms=10000) != PER_PARTITION:
                fail(f"{name}: position {tp} is {c.position(tp)}, expected {PER_PARTITION}")
        c.commit()
        for tp in c.assignment():
            got = c.committed(tp)
            if got != PER_PARTITION:
                fail(f"{name}: committed {tp} = {got}, expected {PER_PARTITION}")
    settled = dict(run.assigned)
    for _, c in consumers:
        c.close(autocommit=False, timeout_ms=10000)

    produce(RECORDS, LATER)
    producer.close(timeout=10)

    resumed = consumer("resumer")
    resumed.subscribe([topic])
    resume = common.Resume(fail, left)
    while not resume.done():
        resume.add(resumed.poll(timeout_ms=200, max_records=500))
    resume.check(resumed.assignment())
    resumed.commit()
    for p in range(PARTITIONS):
        want = (RECORDS + LATER) // PARTITIONS
        if resumed.committed(TopicPartition(topic, p)) != want:
            fail(f"resumer committed p{p} = {resumed.committed(TopicPartition(topic, p))}")
    resumed.close(autocommit=False, timeout_ms=10000)
    common.all_ok("kafka-python", kafka.__version__, settled, versions)


if __name__ == "__main__":
    main()
