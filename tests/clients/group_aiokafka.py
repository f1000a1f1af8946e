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

import argparse
import asyncio
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
    # os._exit: no waiting on the consumers' background tasks.
    os._exit(1)


def start_watchdog(seconds):
    def fire():
        print(f"FAIL: deadline of {seconds}s passed", flush=True)
        os._exit(3)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


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
    deadline = time.monotonic() + args.timeout

    def left():
        return deadline - time.monotonic()

    import aiokafka
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    bootstrap = args.bootstrap
    topic = f"groups-aio-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-g"

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await asyncio.wait_for(admin.start(), 10)
    await asyncio.wait_for(admin.create_topics([NewTopic(topic, PARTITIONS, 1)]), 10)
    await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                request_timeout_ms=10000)
    await asyncio.wait_for(producer.start(), 10)

    async def produce(start, count):
        futures = [await producer.send(topic, key=str(i).encode(), value=f"v{i}".encode(),
                                       partition=i % PARTITIONS)
                   for i in range(start, start + count)]
        await asyncio.wait_for(asyncio.gather(*futures), 10)

    await produce(0, RECORDS)

    def consumer(name):
        return AIOKafkaConsumer(
            topic,
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
        await asyncio.wait_for(c.start(), 10)
        consumers.append((name, c))

    per_partition = RECORDS // PARTITIONS

    async def at_end(consumers):
        # After the last rebalance each member re-reads its partitions from
        # the committed offsets (none yet): wait until every owner is at the end.
        for _, c in consumers:
            for tp in c.assignment():
                if await asyncio.wait_for(c.position(tp), 10) != per_partition:
                    return False
        return True

    seen = {}  # (partition, offset) -> member
    dup = 0
    assigned = {}
    while True:
        if left() <= 0:
            fail(f"group did not settle/consume: assigned={assigned} consumed={len(seen)}/{RECORDS}")
        for name, c in consumers:
            batches = await asyncio.wait_for(c.getmany(timeout_ms=100, max_records=500), 10)
            for tp, msgs in batches.items():
                for m in msgs:
                    k = (m.partition, m.offset)
                    if k in seen:
                        dup += 1
                    seen[k] = name
            assigned[name] = sorted(tp.partition for tp in c.assignment())
        owned = [p for parts in assigned.values() for p in parts]
        if (len(assigned) == MEMBERS and sorted(owned) == list(range(PARTITIONS))
                and all(assigned.values()) and len(seen) >= RECORDS
                and await at_end(consumers)):
            break
    if dup:
        # A partition can move during the first rebalance before anything is
        # committed; re-delivery then is legitimate.
        print(f"note: {dup} records delivered twice during rebalances", flush=True)
    if len(seen) != RECORDS:
        fail(f"consumed {len(seen)} distinct records, expected {RECORDS}")
    versions = api_versions(consumers[0][1])

    for name, c in consumers:
        for tp in c.assignment():
            pos = await asyncio.wait_for(c.position(tp), 10)
            if pos != per_partition:
                fail(f"{name}: position {tp} is {pos}, expected {per_partition}")
        await asyncio.wait_for(c.commit(), 10)
        for tp in c.assignment():
            got = await asyncio.wait_for(c.committed(tp), 10)
            if got != per_partition:
                fail(f"{name}: committed {tp} = {got}, expected {per_partition}")
    settled = dict(assigned)
    for _, c in consumers:
        await asyncio.wait_for(c.stop(), 10)

    await produce(RECORDS, LATER)
    await asyncio.wait_for(producer.stop(), 10)

    resumed = consumer("resumer")
    await asyncio.wait_for(resumed.start(), 10)
    got = []
    while len(got) < LATER:
        if left() <= 0:
            fail(f"resumer got {len(got)} of {LATER} later records")
        batches = await asyncio.wait_for(resumed.getmany(timeout_ms=200, max_records=500), 10)
        for tp, msgs in batches.items():
            for m in msgs:
                if m.offset < per_partition:
                    fail(f"resumer re-read committed record p{m.partition}@{m.offset}")
                got.append(int(m.key))
    if sorted(got) != list(range(RECORDS, RECORDS + LATER)):
        fail(f"resumer got unexpected records: {sorted(got)[:10]}...")
    if sorted(tp.partition for tp in resumed.assignment()) != list(range(PARTITIONS)):
        fail(f"resumer assignment {resumed.assignment()}")
    await asyncio.wait_for(resumed.commit(), 10)
    want = (RECORDS + LATER) // PARTITIONS
    for p in range(PARTITIONS):
        got_off = await asyncio.wait_for(resumed.committed(TopicPartition(topic, p)), 10)
        if got_off != want:
            fail(f"resumer committed p{p} = {got_off}, expected {want}")
    await asyncio.wait_for(resumed.stop(), 10)
    print(f"ALL OK aiokafka {aiokafka.__version__} members={MEMBERS} partitions={PARTITIONS} "
          f"records={RECORDS}+{LATER} assignment={settled} apis={versions}", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bootstrap")
    p.add_argument("--timeout", type=float, default=50.0)
    args = p.parse_args()
    start_watchdog(args.timeout + 5)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
