"""Shared by group_kafka_python.py and group_aiokafka.py: the scenario's sizes,
argument parsing and watchdog, the records produced, the consumer settings,
and the checks on what the group and the resuming member consumed.

Each check takes the program's `fail(msg)` (which does not return).
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
PER_PARTITION = RECORDS // PARTITIONS


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


def parse_args():
    """Parses `BOOTSTRAP [--timeout SECONDS]` and starts the watchdog, 5 s
    after the program's own deadline."""
    p = argparse.ArgumentParser()
    p.add_argument("bootstrap")
    p.add_argument("--timeout", type=float, default=50.0)
    args = p.parse_args()
    start_watchdog(args.timeout + 5)
    return args


def time_left(seconds):
    """A function returning the seconds left until `seconds` from now."""
    deadline = time.monotonic() + seconds
    return lambda: deadline - time.monotonic()


def names(tag):
    """A fresh topic name and its group's name."""
    topic = f"groups-{tag}-{uuid.uuid4().hex[:8]}"
    return topic, f"{topic}-g"


def records(start, count):
    """Keyword arguments of the sends for records `start..start+count`."""
    return [dict(key=str(i).encode(), value=f"v{i}".encode(), partition=i % PARTITIONS)
            for i in range(start, start + count)]


def consumer_config(bootstrap, group, name):
    return dict(
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


class GroupRun:
    """What the group's members consumed and own."""

    def __init__(self, fail, left):
        self.fail = fail
        self.left = left
        self.seen = {}  # (partition, offset) -> member
        self.dup = 0
        self.assigned = {}

    def check_time(self):
        if self.left() <= 0:
            self.fail(f"group did not settle/consume: assigned={self.assigned} "
                      f"consumed={len(self.seen)}/{RECORDS}")

    def add(self, name, batches, assignment):
        """Records one member's polled `batches` and its current assignment."""
        for tp, msgs in batches.items():
            for m in msgs:
                k = (m.partition, m.offset)
                if k in self.seen:
                    self.dup += 1
                self.seen[k] = name
        self.assigned[name] = sorted(tp.partition for tp in assignment)

    def settled(self):
        """Every partition owned by exactly one of the members, each owning
        some, and every record seen (positions are checked separately)."""
        owned = [p for parts in self.assigned.values() for p in parts]
        return (len(self.assigned) == MEMBERS and sorted(owned) == list(range(PARTITIONS))
                and all(self.assigned.values()) and len(self.seen) >= RECORDS)

    def check_consumed(self):
        if self.dup:
            # A partition can move during the first rebalance before anything is
            # committed; re-delivery then is legitimate.
            print(f"note: {self.dup} records delivered twice during rebalances", flush=True)
        if len(self.seen) != RECORDS:
            self.fail(f"consumed {len(self.seen)} distinct records, expected {RECORDS}")


class Resume:
    """What the resuming member consumed: only the records produced after
    the commits."""

    def __init__(self, fail, left):
        self.fail = fail
        self.left = left
        self.got = []

    def done(self):
        if len(self.got) >= LATER:
            return True
        if self.left() <= 0:
            self.fail(f"resumer got {len(self.got)} of {LATER} later records")
        return False

    def add(self, batches):
        for tp, msgs in batches.items():
            for m in msgs:
                if m.offset < PER_PARTITION:
                    self.fail(f"resumer re-read committed record p{m.partition}@{m.offset}")
                self.got.append(int(m.key))

    def check(self, assignment):
        if sorted(self.got) != list(range(RECORDS, RECORDS + LATER)):
            self.fail(f"resumer got unexpected records: {sorted(self.got)[:10]}...")
        if sorted(tp.partition for tp in assignment) != list(range(PARTITIONS)):
            self.fail(f"resumer assignment {assignment}")


def all_ok(client, version, settled, versions):
    print(f"ALL OK {client} {version} members={MEMBERS} partitions={PARTITIONS} "
          f"records={RECORDS}+{LATER} assignment={settled} apis={versions}", flush=True)
