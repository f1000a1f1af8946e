#!/usr/bin/env python3
"""Consumer groups through aiokafka (asyncio client).

Usage: group_aiokafka.py BOOTSTRAP [--timeout SECONDS]

Creates a 4-partition topic (AIOKafkaAdminClient) and produces records to it
(AIOKafkaProducer), then runs 2 AIOKafkaConsumers in one group (subscribe()):
the group must settle with every partition owned by exactly one member, every
produced record must be consumed, and each consumer commits. Then a 3rd
consumer in the same group, alone, must resume from the committed offsets: it
sees only the records produced after the commits, none of the committed ones
again.

Prints `ALL OK ...` (with the API versions aiokafka picked) and exits 0 on
success; exits 1 with a reason otherwise. A watchdog ends the program with
exit code 3 after the deadline.
"""

import asyncio
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import group_common as common  # noqa: E402
from group_common import LATER, PARTITIONS, PER_PARTITION, RECORDS  # noqa: E402


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    # os._exit: no waiting on the consumers' background tasks.
    os._exit(1)


def api_versions(consumer):
    """The versions aiokafka picks for the group APIs: the highest it knows
    within the range the broker advertised."""
    from aiokafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
    from aiokafka.protocol.coordination import FindCoordinatorRequest
    from aiokafka.protocol.group import (
        HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest)

    try:
        versions = next(c._versions for c in consumer._client._conns.values() if c._versions)
    except Exception as e:  # report, do not fail on the introspection
        return f"?({e.__class__.__name__})"
    out = []
    for name, req in [
        ("FindCoordinator", FindCoordinatorRequest),
        ("JoinGroup", JoinGroupRequest),
        ("SyncGroup", SyncGroupRequest),
        ("Heartbeat", HeartbeatRequest),
        ("LeaveGroup", LeaveGroupRequest),
        ("OffsetCommit", OffsetCommitRequest),
        ("OffsetFetch", OffsetFetchRequest),
    ]:
        lo, hi = versions.get(req.API_KEY, (None, None))
        ok = [c.API_VERSION for c in req._CLASSES
              if lo is not None and lo <= c.API_VERSION <= hi]
        out.append(f"{name}=v{max(ok)}" if ok else f"{name}=none")
    return ",".join(out)


async def run(args):
    left = common.time_left(args.timeout)

    import aiokafka
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    bootstrap = args.bootstrap
    topic, group = common.names("aio")

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await asyncio.wait_for(admin.start(), 10)
    await asyncio.wait_for(admin.create_topics([NewTopic(topic, PARTITIONS, 1)]), 10)
    await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                request_timeout_ms=10000)
    await asyncio.wait_for(producer.start(), 10)

    async def produce(start, count):
        futures = [await producer.send(topic, **r) for r in common.records(start, count)]
        await asyncio.wait_for(asyncio.gather(*futures), 10)

    await produce(0, RECORDS)

    def consumer(name):
        return AIOKafkaConsumer(topic, **common.consumer_config(bootstrap, group, name))

    consumers = []
    for i in range(common.MEMBERS):
        name = f"member-{i}"
        c = consumer(name)
        await asyncio.wait_for(c.start(), 10)
        consumers.append((name, c))

    async def at_end(consumers):
        # After the last rebalance each member re-reads its partitions from
        # the committed offsets (none yet): wait until every owner is at the end.
        for _, c in consumers:
            for tp in c.assignment():
                if await asyncio.wait_for(c.position(tp), 10) != PER_PARTITION:
                    return False
        return True

    run = common.GroupRun(fail, left)
    while True:
        run.check_time()
        for name, c in consumers:
            batches = await asyncio.wait_for(c.getmany(timeout_ms=100, max_records=500), 10)
            run.add(name, batches, c.assignment())
        if run.settled() and await at_end(consumers):
            break
    run.check_consumed()
    versions = api_versions(consumers[0][1])

    for name, c in consumers:
        for tp in c.assignment():
            pos = await asyncio.wait_for(c.position(tp), 10)
            if pos != PER_PARTITION:
                fail(f"{name}: position {tp} is {pos}, expected {PER_PARTITION}")
        await asyncio.wait_for(c.commit(), 10)
        for tp in c.assignment():
            got = await asyncio.wait_for(c.committed(tp), 10)
            if got != PER_PARTITION:
                fail(f"{name}: committed {tp} = {got}, expected {PER_PARTITION}")
    settled = dict(run.assigned)
    for _, c in consumers:
        await asyncio.wait_for(c.stop(), 10)

    await produce(RECORDS, LATER)
    await asyncio.wait_for(producer.stop(), 10)

    resumed = consumer("resumer")
    await asyncio.wait_for(resumed.start(), 10)
    resume = common.Resume(fail, left)
    while not resume.done():
        resume.add(await asyncio.wait_for(resumed.getmany(timeout_ms=200, max_records=500), 10))
    resume.check(resumed.assignment())
    await asyncio.wait_for(resumed.commit(), 10)
    want = (RECORDS + LATER) // PARTITIONS
    for p in range(PARTITIONS):
        got_off = await asyncio.wait_for(resumed.committed(TopicPartition(topic, p)), 10)
        if got_off != want:
            fail(f"resumer committed p{p} = {got_off}, expected {want}")
    await asyncio.wait_for(resumed.stop(), 10)
    common.all_ok("aiokafka", aiokafka.__version__, settled, versions)


def main():
    asyncio.run(run(common.parse_args()))


if __name__ == "__main__":
    main()
