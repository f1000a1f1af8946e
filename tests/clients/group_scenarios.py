#!/usr/bin/env python3
"""Consumer-group scenarios through confluent-kafka-python (librdkafka).

Usage: group_scenarios.py BOOTSTRAP SCENARIO [ARGS] [--timeout SECONDS]

spread          3 member processes on a 6-partition topic, then a 4th joins,
                then one is SIGKILLed; a producer runs throughout. Each step
                must settle (callbacks and DescribeGroups agree) with every
                partition owned by exactly one member and each member owning
                at least one; every produced record is consumed at least once.
                --strategy sets the members' partition.assignment.strategy
                (default range).
member          (internal) one group member for `spread`: reports its
                assignment and consumed keys on stdout; leaves on stdin EOF.
commit TOPIC    creates TOPIC (3 partitions), produces 90 records, consumes
                them all in group TOPIC-g and commits offset 10 on every
                partition, then leaves (with --no-leave: exits without
                closing, so the member stays in the group). (The broker is
                then SIGKILLed and restarted by the test.)
resume TOPIC    a new member of TOPIC-g resumes at offset 10 on every
                partition: it gets offsets 10..29 of each and nothing before;
                then records produced now arrive too.
live --signal-dir DIR
                two members settle, then the program creates DIR/settled and
                keeps polling; the test SIGKILLs and restarts the broker and
                creates DIR/restarted. The members must carry on without a
                rebalance (same member ids and partitions, no callbacks) and
                consume records produced afterwards.
static          two static members (group.instance.id); one closes (static
                members send no LeaveGroup) and rejoins with a new consumer
                within the session timeout: it gets its old partitions back
                and the other member sees no rebalance. Then it closes for
                good: after the session timeout (not before) the other
                member gets every partition.
fence           a consumer with a live static member's group.instance.id
                fences it (a fatal error for the old one) and takes its
                partitions; the other member sees no rebalance.
cooperative     cooperative-sticky: one member owns all 6 partitions; when a
                second joins, the first only revokes the partitions that move
                (incremental) and keeps the rest; when it leaves, the first
                only gets those added back.

Prints `ALL OK ...` and exits 0 on success; exits 1 with `FAIL: ...` otherwise.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True

PARTITIONS = 6
SESSION_MS = 6000
T0 = time.monotonic()


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    os._exit(1)


def log(msg):
    print(f"[{time.monotonic() - T0:6.2f}] {msg}", file=sys.stderr, flush=True)


def consumer_conf(bootstrap, group, name, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    conf.update(extra)
    return conf


def create_topic(bootstrap, topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(timeout=10)
    return admin


def check_msg(m):
    from confluent_kafka import KafkaError, KafkaException

    if m.error():
        if m.error().code() == KafkaError._PARTITION_EOF:
            return False
        raise KafkaException(m.error())
    return True


def describe(admin, group):
    """(state name, {member client id: sorted partitions})."""
    desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    members = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
               for m in desc.members}
    return desc.state.name, members, desc


def partitioned(assignment, names):
    """Every partition owned by exactly one of `names`, each owning >= 1."""
    owned = [p for n in names for p in assignment.get(n, [])]
    return (sorted(owned) == list(range(PARTITIONS))
            and all(assignment.get(n) for n in names))


# ---------------------------------------------------------------- spread


def run_member(args):
    from confluent_kafka import Consumer

    c = Consumer(consumer_conf(args.bootstrap, args.group, args.name,
                               **{"enable.auto.commit": True,
                                  "auto.commit.interval.ms": 500,
                                  "partition.assignment.strategy": args.strategy}))
    out_lock = threading.Lock()

    def emit(kind, payload):
        with out_lock:
            sys.stdout.write(f"{kind} {json.dumps(payload)}\n")
            sys.stdout.flush()

    def on_assign(_c, parts):
        emit("A", sorted(p.partition for p in parts))

    def on_revoke(_c, parts):
        emit("R", sorted(p.partition for p in parts))

    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    owned = None
    while not stop.is_set():
        keys = [int(m.key()) for m in c.consume(num_messages=500, timeout=0.1) if check_msg(m)]
        if keys:
            emit("M", keys)
        now = sorted(tp.partition for tp in c.assignment())
        if now != owned:
            owned = now
            emit("O", owned)
    c.close()
    emit("X", [])


class Member:
    """A `member` child process and what it reported."""

    def __init__(self, args, topic, group, name, seen, lock):
        self.name = name
        self.assigned = []
        self.seen = seen
        self.lock = lock
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), args.bootstrap, "member",
             "--topic", topic, "--group", group, "--name", name,
             "--strategy", args.strategy],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.proc.stdout:
            kind, payload = line.split(" ", 1)
            payload = json.loads(payload)
            with self.lock:
                if kind == "O":
                    self.assigned = payload
                    log(f"{self.name} owns {payload}")
                elif kind == "A":
                    log(f"{self.name} assigned {payload}")
                elif kind == "R":
                    log(f"{self.name} revoked {payload}")
                elif kind == "M":
                    self.seen.update(payload)

    def leave(self):
        self.proc.stdin.close()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join(5)


def spread(args, left):
    from confluent_kafka import Producer

    topic = f"spread-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-g"
    admin = create_topic(args.bootstrap, topic, PARTITIONS)

    produced = [0]
    acked = set()
    stop_producing = threading.Event()
    producer_error = []

    def produce():
        p = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})

        def on_delivery(err, msg):
            if err is not None:
                producer_error.append(str(err))
            else:
                acked.add(int(msg.key()))

        i = 0
        while not stop_producing.is_set():
            p.produce(topic, key=str(i).encode(), value=b"v", partition=i % PARTITIONS,
                      on_delivery=on_delivery)
            p.poll(0)
            i += 1
            time.sleep(0.005)
        if p.flush(10) != 0:
            producer_error.append("flush did not complete")
        produced[0] = i

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()

    lock = threading.Lock()
    seen = set()
    members = {}

    def add(name):
        members[name] = Member(args, topic, group, name, seen, lock)

    def settle(names, what):
        """Wait until the callbacks and DescribeGroups both show `names`
        sharing the partitions, each owning >= 1."""
        while True:
            if left() <= 0:
                with lock:
                    now = {n: m.assigned for n, m in members.items()}
                fail(f"{what}: group did not settle on {names}: callbacks {now}, "
                     f"describe {describe(admin, group)[:2]}")
            with lock:
                now = {n: list(members[n].assigned) for n in names}
            if partitioned(now, names):
                state, described, _ = describe(admin, group)
                if state == "STABLE" and sorted(described) == sorted(names) and \
                        all(described[n] == now[n] for n in names):
                    log(f"{what}: settled {now}")
                    return now
            time.sleep(0.1)

    for i in range(3):
        add(f"m{i}")
    three = settle(["m0", "m1", "m2"], "3 members")

    add("m3")
    four = settle(["m0", "m1", "m2", "m3"], "4th joins")

    victim = "m1"
    killed_at = time.monotonic()
    members[victim].kill()
    log(f"SIGKILLed {victim} (owned {four[victim]})")
    survivors = ["m0", "m2", "m3"]
    after = settle(survivors, f"{victim} killed")
    moved_after = time.monotonic() - killed_at
    if moved_after < SESSION_MS / 1000 - 1.0:
        fail(f"{victim}'s partitions moved after {moved_after:.1f}s, before the session timeout")
    if args.strategy == "cooperative-sticky":
        for n in survivors:
            if not set(four[n]) <= set(after[n]):
                fail(f"{n} lost partitions it owned: {four[n]} -> {after[n]}")
    with lock:
        members_now = {n: members[n].assigned for n in survivors}
    if sorted(p for n in survivors for p in members_now[n]) != list(range(PARTITIONS)):
        fail(f"after the kill: {members_now}")

    # Keep producing a little while the survivors own everything, then stop.
    time.sleep(0.5)
    stop_producing.set()
    producer.join(15)
    if producer_error:
        fail(f"producer: {producer_error[:3]}")
    total = produced[0]
    if acked != set(range(total)):
        fail(f"producer: {total - len(acked)} of {total} records not acknowledged")
    while True:
        with lock:
            missing = set(range(total)) - seen
        if not missing:
            break
        if left() <= 0:
            fail(f"{len(missing)} of {total} records never consumed, e.g. {sorted(missing)[:10]}")
        time.sleep(0.1)
    for n in survivors:
        members[n].leave()
    for n in survivors:
        try:
            members[n].proc.wait(max(1.0, left()))
        except subprocess.TimeoutExpired:
            fail(f"{n} did not leave")
        if members[n].proc.returncode != 0:
            fail(f"{n} exited with {members[n].proc.returncode}")
    print(f"ALL OK spread strategy={args.strategy} records={total} three={three} four={four} "
          f"after_kill={after} (moved {moved_after:.1f}s after the kill)", flush=True)


# ---------------------------------------------------------------- commit / resume

RESTART_PARTITIONS = 3
RESTART_RECORDS = 90
COMMITTED = 10
LATER = 30


def produce_keys(bootstrap, topic, start, count):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(start, start + count):
        p.produce(topic, key=str(i).encode(), value=b"v", partition=i % RESTART_PARTITIONS)
    if p.flush(10) != 0:
        fail("produce did not complete")


def commit(args, left):
    from confluent_kafka import Consumer, TopicPartition

    topic = args.topic
    create_topic(args.bootstrap, topic, RESTART_PARTITIONS)
    produce_keys(args.bootstrap, topic, 0, RESTART_RECORDS)
    c = Consumer(consumer_conf(args.bootstrap, f"{topic}-g", "committer"))
    c.subscribe([topic])
    got = set()
    while len(got) < RESTART_RECORDS:
        if left() <= 0:
            fail(f"consumed {len(got)} of {RESTART_RECORDS}")
        got.update(int(m.key()) for m in c.consume(num_messages=500, timeout=0.2) if check_msg(m))
    if got != set(range(RESTART_RECORDS)):
        fail("unexpected records")
    offsets = [TopicPartition(topic, p, COMMITTED) for p in range(RESTART_PARTITIONS)]
    for tp in c.commit(offsets=offsets, asynchronous=False):
        if tp.error:
            fail(f"commit: {tp}")
    for tp in c.committed(offsets, timeout=10):
        if tp.error or tp.offset != COMMITTED:
            fail(f"committed: {tp}")
    if args.no_leave:
        # Crash with the broker: the member never leaves the group.
        print(f"ALL OK commit topic={topic} committed={COMMITTED} per partition, "
              f"member {c.memberid()} still in the group", flush=True)
        os._exit(0)
    c.close()
    print(f"ALL OK commit topic={topic} committed={COMMITTED} per partition", flush=True)


def resume(args, left):
    from confluent_kafka import Consumer, TopicPartition

    topic = args.topic
    per = RESTART_RECORDS // RESTART_PARTITIONS
    c = Consumer(consumer_conf(args.bootstrap, f"{topic}-g", "resumer"))
    committed = c.committed([TopicPartition(topic, p) for p in range(RESTART_PARTITIONS)],
                            timeout=10)
    if sorted((tp.partition, tp.offset) for tp in committed) != \
            [(p, COMMITTED) for p in range(RESTART_PARTITIONS)]:
        fail(f"committed offsets after the restart: {committed}")
    c.subscribe([topic])
    started = time.monotonic()
    got = {}  # (partition, offset) -> key

    def consume_until(count):
        while len(got) < count:
            if left() <= 0:
                fail(f"resumer got {len(got)} of {count} records")
            for m in c.consume(num_messages=500, timeout=0.2):
                if not check_msg(m):
                    continue
                if m.offset() < COMMITTED:
                    fail(f"re-delivered p{m.partition()}@{m.offset()}, before the committed offset")
                k = (m.partition(), m.offset())
                if k in got:
                    fail(f"delivered twice: p{m.partition()}@{m.offset()}")
                got[k] = int(m.key())

    want = {(i % RESTART_PARTITIONS, i // RESTART_PARTITIONS): i
            for i in range(RESTART_RECORDS) if i // RESTART_PARTITIONS >= COMMITTED}
    consume_until(len(want))
    first_after = time.monotonic() - started
    if got != want:
        fail(f"after the committed offsets: got {sorted(got.items())[:10]}...")
    produce_keys(args.bootstrap, topic, RESTART_RECORDS, LATER)
    for i in range(RESTART_RECORDS, RESTART_RECORDS + LATER):
        want[(i % RESTART_PARTITIONS, i // RESTART_PARTITIONS)] = i
    consume_until(len(want))
    time.sleep(0.5)
    for m in c.consume(num_messages=500, timeout=0.5):
        if check_msg(m):
            fail(f"unexpected extra record p{m.partition()}@{m.offset()}")
    if got != want:
        fail("later records differ")
    c.close()
    print(f"ALL OK resume topic={topic} from={COMMITTED} got={len(got)} "
          f"(the committed ones {first_after:.1f}s after subscribing) "
          f"(of {RESTART_RECORDS + LATER} produced, {per} per partition before)", flush=True)


# ---------------------------------------------------------------- static


class Tracked:
    """A consumer whose rebalance callbacks are recorded."""

    def __init__(self, bootstrap, group, name, topic, **extra):
        from confluent_kafka import Consumer

        self.name = name
        self.events = []  # ("A" | "R", [partitions])
        self.consumer = Consumer(consumer_conf(bootstrap, group, name, **extra))
        self.consumer.subscribe(
            [topic],
            on_assign=lambda _c, ps: self.record("A", ps),
            on_revoke=lambda _c, ps: self.record("R", ps))
        self.seen = set()

    def record(self, kind, parts):
        parts = sorted(p.partition for p in parts)
        log(f"{self.name} {'assigned' if kind == 'A' else 'revoked'} {parts}")
        self.events.append((kind, parts))

    def poll(self):
        for m in self.consumer.consume(num_messages=500, timeout=0.05):
            if check_msg(m):
                self.seen.add(int(m.key()))

    def owned(self):
        return sorted(tp.partition for tp in self.consumer.assignment())


def poll_until(consumers, cond, what, left):
    while not cond():
        if left() <= 0:
            fail(f"timed out waiting for {what}: " +
                 ", ".join(f"{c.name} events={c.events}" for c in consumers))
        for c in consumers:
            c.poll()


def static(args, left):
    topic = f"static-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-g"
    admin = create_topic(args.bootstrap, topic, PARTITIONS)

    def member(name):
        return Tracked(args.bootstrap, group, name, topic,
                       **{"group.instance.id": f"instance-{name}"})

    a, b = member("a"), member("b")

    def settled():
        if not partitioned({"a": a.owned(), "b": b.owned()}, ["a", "b"]):
            return False
        state, described, _ = describe(admin, group)
        return state == "STABLE" and described == {"a": a.owned(), "b": b.owned()}

    poll_until([a, b], settled, "a and b to share the partitions", left)
    before_a, before_b = a.owned(), b.owned()
    _, _, desc = describe(admin, group)
    ids_before = {m.client_id: (m.member_id, m.group_instance_id) for m in desc.members}
    b_events = list(b.events)
    log(f"settled: a={before_a} b={before_b} members={ids_before}")

    # Static member: close() sends no LeaveGroup; rejoin well within the
    # session timeout with a new consumer (and so a new member id).
    closed_at = time.monotonic()
    a.consumer.close()
    a2 = member("a")
    poll_until([a2, b], lambda: a2.owned() == before_a, "the restarted static member's "
               "old partitions", left)
    rejoined = time.monotonic() - closed_at
    if rejoined >= SESSION_MS / 1000:
        fail(f"rejoin took {rejoined:.1f}s, not within the session timeout")
    # Stay around longer than the session timeout of the old member id: a
    # rebalance (from the rejoin or from the old id expiring) would show up
    # on b within a few heartbeats.
    end = time.monotonic() + SESSION_MS / 1000 + 1.5
    while time.monotonic() < end:
        a2.poll()
        b.poll()
    if b.events != b_events:
        fail(f"b saw a rebalance: {b_events} -> {b.events}")
    if b.owned() != before_b or a2.owned() != before_a:
        fail(f"assignment changed: a {before_a} -> {a2.owned()}, b {before_b} -> {b.owned()}")
    if [e[0] for e in a2.events] != ["A"]:
        fail(f"restarted a: events {a2.events}")
    state, described, desc = describe(admin, group)
    ids_after = {m.client_id: (m.member_id, m.group_instance_id) for m in desc.members}
    if state != "STABLE" or described != {"a": before_a, "b": before_b}:
        fail(f"describe after the rejoin: {state} {described}")
    if ids_after["b"] != ids_before["b"]:
        fail(f"b's member id changed: {ids_before['b']} -> {ids_after['b']}")
    if ids_after["a"] != (a2.consumer.memberid(), "instance-a") or \
            ids_after["a"][0] == ids_before["a"][0]:
        fail(f"a's member: {ids_before['a']} -> {ids_after['a']}")

    # Both still consume: records produced now reach their owners.
    produce_keys_n(args.bootstrap, topic, 60)
    poll_until([a2, b], lambda: a2.seen | b.seen >= set(range(60)), "records after the rejoin",
               left)
    # Away for longer than the session timeout: the static member is removed
    # and b, alone, gets every partition -- only after that timeout.
    b_events = list(b.events)
    a2.consumer.close()
    closed_at = time.monotonic()
    poll_until([b], lambda: b.owned() == list(range(PARTITIONS)),
               "b to get every partition after a stayed away", left)
    took_over = time.monotonic() - closed_at
    if took_over < SESSION_MS / 1000 - 1.0:
        fail(f"b took a's partitions {took_over:.1f}s after a closed, before the session timeout")
    state, described, _ = describe(admin, group)
    if state != "STABLE" or described != {"b": list(range(PARTITIONS))}:
        fail(f"describe after a expired: {state} {described}")
    new_events = b.events[len(b_events):]
    b.consumer.close()
    print(f"ALL OK static a={before_a} b={before_b} rejoined_in={rejoined:.2f}s, "
          f"no rebalance; a away: b took over after {took_over:.1f}s "
          f"(b events {b_events} then {new_events})", flush=True)


def fence(args, left):
    """A second consumer with a live static member's group.instance.id takes
    its place: the old one is fenced (a fatal error), the new one gets its
    partitions, and the other member sees no rebalance."""
    from confluent_kafka import KafkaError, KafkaException

    topic = f"fence-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-g"
    admin = create_topic(args.bootstrap, topic, PARTITIONS)

    def member(name, instance):
        return Tracked(args.bootstrap, group, name, topic,
                       **{"group.instance.id": instance})

    a, b = member("a", "instance-a"), member("b", "instance-b")
    poll_until([a, b], lambda: partitioned({"a": a.owned(), "b": b.owned()}, ["a", "b"]),
               "a and b to share the partitions", left)
    before_a, before_b = a.owned(), b.owned()
    b_events = list(b.events)

    dup = member("dup", "instance-a")
    fenced = []

    def poll_a():
        if fenced:
            return
        try:
            a.poll()
        except KafkaException as e:
            err = e.args[0]
            if err.code() != KafkaError._FATAL:
                raise
            fenced.append(err)

    def done():
        poll_a()
        return fenced and dup.owned() == before_a

    poll_until([dup, b], done, "a to be fenced and dup to own a's partitions", left)
    if "fenced" not in fenced[0].str().lower():
        fail(f"a's fatal error: {fenced[0]}")
    end = time.monotonic() + 2
    while time.monotonic() < end:
        dup.poll()
        b.poll()
    if b.events != b_events or b.owned() != before_b:
        fail(f"b saw a rebalance: {b_events} -> {b.events}")
    # (Like Kafka, the replaced member keeps the old one's client id.)
    state, _, desc = describe(admin, group)
    by_instance = {m.group_instance_id: (m.member_id, sorted(
        tp.partition for tp in m.assignment.topic_partitions)) for m in desc.members}
    want = {"instance-a": (dup.consumer.memberid(), before_a),
            "instance-b": (b.consumer.memberid(), before_b)}
    if state != "STABLE" or by_instance != want:
        fail(f"describe after the fencing: {state} {by_instance}, expected {want}")
    dup.consumer.close()
    b.consumer.close()
    print(f"ALL OK fence a={before_a} b={before_b}: a fenced ({fenced[0].str()}), "
          f"dup took {before_a}, b events {b_events}", flush=True)


def live(args, left):
    """Two members keep running while the test SIGKILLs and restarts the
    broker: they carry on in the same generation, without a rebalance."""
    topic = f"live-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-g"
    admin = create_topic(args.bootstrap, topic, PARTITIONS)
    a = Tracked(args.bootstrap, group, "a", topic)
    b = Tracked(args.bootstrap, group, "b", topic)

    def settled():
        if not partitioned({"a": a.owned(), "b": b.owned()}, ["a", "b"]):
            return False
        state, described, _ = describe(admin, group)
        return state == "STABLE" and described == {"a": a.owned(), "b": b.owned()}

    poll_until([a, b], settled, "a and b to share the partitions", left)
    before = (a.owned(), b.owned())
    ids = (a.consumer.memberid(), b.consumer.memberid())
    events = (list(a.events), list(b.events))
    log(f"settled {before} {ids}; waiting for the broker restart")
    open(os.path.join(args.signal_dir, "settled"), "w").close()
    restarted = os.path.join(args.signal_dir, "restarted")
    poll_until([a, b], lambda: os.path.exists(restarted), "the broker restart", left)
    log("broker restarted")
    # Longer than the session timeout: members the restarted broker did not
    # know, or whose heartbeats it rejected, would be gone by then.
    end = time.monotonic() + SESSION_MS / 1000 + 2
    while time.monotonic() < end:
        a.poll()
        b.poll()
    if (list(a.events), list(b.events)) != events:
        fail(f"rebalance across the broker restart: {events} -> {(a.events, b.events)}")
    if (a.owned(), b.owned()) != before or \
            (a.consumer.memberid(), b.consumer.memberid()) != ids:
        fail(f"members changed: {before} {ids} -> {(a.owned(), b.owned())} "
             f"{(a.consumer.memberid(), b.consumer.memberid())}")
    # A fresh AdminClient: librdkafka 2.16's idle admin client can wedge in
    # its re-bootstrap after the broker went away (the old broker handle never
    # finishes terminating), a client quirk unrelated to the group.
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    state, described, _ = describe(admin, group)
    if state != "STABLE" or described != {"a": before[0], "b": before[1]}:
        fail(f"describe after the restart: {state} {described}")
    produce_keys_n(args.bootstrap, topic, 60)
    poll_until([a, b], lambda: a.seen | b.seen >= set(range(60)), "records after the restart",
               left)
    if not a.seen & set(range(60)) or not b.seen & set(range(60)):
        fail("a member consumed nothing after the restart")
    a.consumer.close()
    b.consumer.close()
    print(f"ALL OK live a={before[0]} b={before[1]}: same members and generation across "
          f"the broker restart, records consumed after it", flush=True)


def produce_keys_n(bootstrap, topic, count):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        p.produce(topic, key=str(i).encode(), value=b"v", partition=i % PARTITIONS)
    if p.flush(10) != 0:
        fail("produce did not complete")


# ---------------------------------------------------------------- cooperative


def cooperative(args, left):
    topic = f"coop-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-g"
    admin = create_topic(args.bootstrap, topic, PARTITIONS)
    coop = {"partition.assignment.strategy": "cooperative-sticky"}

    first = Tracked(args.bootstrap, group, "first", topic, **coop)
    poll_until([first], lambda: first.owned() == list(range(PARTITIONS)),
               "the first member to own every partition", left)
    first_events = list(first.events)

    second = Tracked(args.bootstrap, group, "second", topic, **coop)

    def settled():
        if not partitioned({"first": first.owned(), "second": second.owned()},
                           ["first", "second"]):
            return False
        state, described, _ = describe(admin, group)
        return state == "STABLE" and described == {"first": first.owned(),
                                                   "second": second.owned()}

    poll_until([first, second], settled, "the two members to share the partitions", left)
    # Let any follow-up rebalance finish before looking at the callbacks.
    end = time.monotonic() + 2
    while time.monotonic() < end:
        first.poll()
        second.poll()
    kept, moved = first.owned(), second.owned()
    if len(kept) != 3 or len(moved) != 3:
        fail(f"unbalanced: first={kept} second={moved}")

    later = first.events[len(first_events):]
    revoked = [p for kind, ps in later if kind == "R" for p in ps]
    reassigned = [p for kind, ps in later if kind == "A" for p in ps]
    if sorted(revoked) != moved:
        fail(f"first revoked {revoked}, expected only the moved {moved}: events {first.events}")
    if reassigned:
        fail(f"first got partitions re-assigned ({reassigned}): events {first.events}")
    added = sorted(p for kind, ps in second.events if kind == "A" for p in ps)
    if added != moved or any(kind == "R" and ps for kind, ps in second.events):
        fail(f"second: events {second.events}")
    state, described, desc = describe(admin, group)
    if desc.partition_assignor != "cooperative-sticky":
        fail(f"assignor {desc.partition_assignor!r}")

    # The second member leaves: the first only gets the moved partitions
    # added back, without revoking anything.
    joined_events = list(first.events)
    second.consumer.close()
    poll_until([first], lambda: first.owned() == list(range(PARTITIONS)),
               "the first member to get every partition back", left)
    back = first.events[len(joined_events):]
    if any(kind == "R" and ps for kind, ps in back):
        fail(f"first revoked partitions when second left: {back}")
    if sorted(p for kind, ps in back if kind == "A" for p in ps) != moved:
        fail(f"first got {back} when second left, expected {moved} added")
    first.consumer.close()
    print(f"ALL OK cooperative first kept {kept}, second took {moved}: first events "
          f"{joined_events}, then {back} when second left; second events {second.events}",
          flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bootstrap")
    p.add_argument("scenario",
                   choices=["spread", "member", "commit", "resume", "live", "static",
                            "fence", "cooperative"])
    p.add_argument("topic_arg", nargs="?")
    p.add_argument("--timeout", type=float, default=50.0)
    p.add_argument("--topic")
    p.add_argument("--group")
    p.add_argument("--name")
    p.add_argument("--signal-dir",
                   help="live: creates DIR/settled, waits for DIR/restarted")
    p.add_argument("--strategy", default="range",
                   help="spread: the members' partition.assignment.strategy")
    p.add_argument("--no-leave", action="store_true",
                   help="commit: exit without closing the consumer (no LeaveGroup)")
    args = p.parse_args()
    if args.topic_arg:
        args.topic = args.topic_arg
    deadline = time.monotonic() + args.timeout

    def left():
        return deadline - time.monotonic()

    if args.scenario != "member":
        # Watchdog: never outlive the deadline (a hung librdkafka call).
        def watchdog():
            time.sleep(args.timeout + 5)
            fail(f"watchdog: {args.scenario} still running after {args.timeout + 5}s")
        threading.Thread(target=watchdog, daemon=True).start()

    {"spread": spread, "member": lambda a, _l: run_member(a), "commit": commit,
     "resume": resume, "live": live, "static": static, "fence": fence, "cooperative": cooperative}[args.scenario](args, left)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
