"""Shared parts of the real-client round-trip programs in this folder.

Each `*_roundtrip.py` program does, per compression codec, the proof of the
"real clients" issue: create a fresh 3-partition topic with the client's own
admin API, produce N keyed records with headers and explicit timestamps,
remember the (partition, offset) each record was acknowledged at, consume all
3 partitions from the beginning, and check that key, value, headers,
timestamp, partition and offset are identical and per-partition order is
kept. This module holds the record generator, the checker, the argument
parser and a watchdog so that no program can hang.

Exit codes: 0 all codecs passed; 1 a check failed or the client raised;
2 bad usage; 3 the overall deadline passed (watchdog); 4 a client library
or codec library is missing (see STROM_ALLOW_MISSING_CLIENTS below).
"""

import argparse
import os
import random
import struct
import sys
import threading
import time
import traceback
import zlib

ALL_CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_MISSING = 4

# A human-readable description of what the program is doing right now; the
# watchdog prints it when the deadline passes.
_step = "starting"
_step_lock = threading.Lock()


def step(text):
    """Record (and print to stderr) the step the program is entering."""
    global _step
    with _step_lock:
        _step = text
    print(f"... {text}", file=sys.stderr, flush=True)


def now_ms():
    return int(time.time() * 1000)


def start_watchdog(client, seconds):
    """Hard deadline: print what we were doing and exit 3, even if the main
    thread is stuck inside a C extension or a blocking socket call."""

    def fire():
        with _step_lock:
            current = _step
        print(
            f"TIMEOUT: {client} round trip did not finish within {seconds:.0f}s; "
            f"stuck at step: {current}",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_TIMEOUT)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def missing(what, reason):
    """A client or codec library is not installed. In CI this is a failure;
    with STROM_ALLOW_MISSING_CLIENTS=1 it is a printed skip."""
    if os.environ.get("STROM_ALLOW_MISSING_CLIENTS") == "1":
        print(f"SKIP {what}: {reason} (STROM_ALLOW_MISSING_CLIENTS=1)", flush=True)
        return
    print(
        f"MISSING {what}: {reason}; install it with `bash .ci/run`'s setup, "
        f"or set STROM_ALLOW_MISSING_CLIENTS=1 to skip",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(EXIT_MISSING)


def parse_args(client, supported_codecs):
    """argv: BOOTSTRAP [--codecs a,b] [--records N] [--timeout SECS] ..."""
    global PARTITIONS
    p = argparse.ArgumentParser(prog=f"{client}_roundtrip", description=__doc__)
    p.add_argument("bootstrap", help="broker address, e.g. 127.0.0.1:9092")
    p.add_argument(
        "--codecs",
        default=",".join(supported_codecs),
        help="comma-separated codecs to run (default: all this client supports)",
    )
    p.add_argument("--records", type=int, default=10_000, help="records per codec")
    p.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("STROM_CLIENT_TIMEOUT", "300")),
        help="overall deadline in seconds (default $STROM_CLIENT_TIMEOUT or 300)",
    )
    p.add_argument(
        "--step-timeout",
        type=float,
        default=60.0,
        help="deadline of one step (connect, create topic, produce, consume)",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=PARTITIONS,
        help="partitions per topic (default 3); only for --no-create runs",
    )
    p.add_argument(
        "--no-create",
        action="store_true",
        help="do not create topics with the admin API; rely on the broker "
        "auto-creating them on metadata requests (for checking these programs "
        "against librdkafka's mock cluster, see mock_cluster.py)",
    )
    args = p.parse_args()
    PARTITIONS = args.partitions
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    for c in codecs:
        if c not in ALL_CODECS:
            p.error(f"unknown codec {c!r}; known: {','.join(ALL_CODECS)}")
    if args.records < 1:
        p.error("--records must be >= 1")
    args.codecs = codecs
    return args


def topic_name(client, codec):
    # Fresh topic per codec (and per run, so reruns against a long-lived
    # broker never see old data).
    suffix = "%06x" % random.SystemRandom().getrandbits(24)
    return f"roundtrip-{client}-{codec}-{suffix}"


class Record:
    __slots__ = ("index", "key", "value", "headers", "timestamp")

    def __init__(self, index, key, value, headers, timestamp):
        self.index = index
        self.key = key
        self.value = value
        self.headers = headers  # list of (str, bytes), order significant
        self.timestamp = timestamp  # ms since epoch, CreateTime

    def describe(self):
        return (
            f"#{self.index} key={self.key!r} ts={self.timestamp} "
            f"headers={self.headers!r} value[{len(self.value)}]={self.value[:40]!r}..."
        )


def make_records(n, codec, seed=None):
    """N keyed records, deterministic for a given seed.

    - keys repeat (1000 distinct) so the partitioner spreads them over all
      3 partitions and the same key always lands on the same partition;
    - values mix compressible text with incompressible binary bytes and vary
      in length, so every codec really compresses something;
    - every record has 1 header, odd ones 2 (the second is binary);
    - timestamps are explicit, 10 to 20 minutes in the past and NOT
      monotonic, so a broker that rewrites or re-derives them is caught.
    """
    rng = random.Random(seed if seed is not None else zlib.crc32(codec.encode()))
    base = now_ms() - 20 * 60 * 1000
    span = 10 * 60 * 1000
    records = []
    for i in range(n):
        key = b"key-%04d" % (i % 1000)
        text = (b"record %d codec %s " % (i, codec.encode())) * (1 + i % 5)
        noise = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
        value = text + noise
        headers = [("trace-id", b"trace-%08d" % i)]
        if i % 2 == 1:
            headers.append(("bin", struct.pack(">IH", i, i & 0xFFFF) + b"\x00\xff"))
        ts = base + (i * 7919) % span
        records.append(Record(i, key, value, headers, ts))
    return records


class Consumed:
    __slots__ = ("partition", "offset", "key", "value", "headers", "timestamp", "create_time")

    def __init__(self, partition, offset, key, value, headers, timestamp, create_time):
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = [(k, v) for k, v in (headers or [])]
        self.timestamp = timestamp
        # True/False when the client reports the timestamp type, None if not.
        self.create_time = create_time


def expected_ends(acks):
    """partition -> last acked offset (what a consumer must reach)."""
    ends = {}
    for p, o in acks:
        if p is not None and o is not None and o >= ends.get(p, -1):
            ends[p] = o
    return ends


def consumed_enough(ends, consumed_by_partition):
    for p, last in ends.items():
        got = consumed_by_partition.get(p)
        if not got or got[-1].offset < last:
            return False
    return True


def verify(client, codec, records, acks, consumed, max_errors=20):
    """Compare what was produced (records[i] acked at acks[i]) with what was
    consumed (a list in arrival order). Returns a list of error strings."""
    errors = []

    def err(msg):
        if len(errors) < max_errors:
            errors.append(msg)
        elif len(errors) == max_errors:
            errors.append("... (more errors not shown)")

    if len(acks) != len(records):
        err(f"{len(records)} records produced but {len(acks)} acknowledgements")
        return errors

    # 1. Acknowledgements: every record acked at a valid, unique position,
    #    and acked offsets increase in produce order within each partition.
    by_pos = {}
    last_acked = {}
    key_partition = {}
    for rec, (p, o) in zip(records, acks):
        if p is None or o is None or o < 0:
            err(f"record {rec.describe()} has no valid ack (partition={p}, offset={o})")
            continue
        if not 0 <= p < PARTITIONS:
            err(f"record #{rec.index} acked at partition {p}, topic has {PARTITIONS}")
        if (p, o) in by_pos:
            err(f"records #{by_pos[(p, o)].index} and #{rec.index} both acked at {p}/{o}")
        by_pos[(p, o)] = rec
        if o <= last_acked.get(p, -1):
            err(
                f"produce order lost: record #{rec.index} acked at {p}/{o} "
                f"after an earlier record was acked at {p}/{last_acked[p]}"
            )
        last_acked[p] = max(o, last_acked.get(p, -1))
        prev = key_partition.setdefault(rec.key, p)
        if prev != p:
            err(f"key {rec.key!r} acked on partitions {prev} and {p}")
    if errors:
        return errors

    # 2. Consumption: per partition strictly increasing offsets, and exactly
    #    the acked positions, each with identical content.
    seen = set()
    last_consumed = {}
    for c in consumed:
        if c.offset <= last_consumed.get(c.partition, -1):
            err(
                f"partition {c.partition}: offset {c.offset} consumed after "
                f"{last_consumed[c.partition]} (order not kept / duplicate)"
            )
        last_consumed[c.partition] = max(c.offset, last_consumed.get(c.partition, -1))
        rec = by_pos.get((c.partition, c.offset))
        if rec is None:
            err(
                f"consumed unexpected record at {c.partition}/{c.offset}: "
                f"key={c.key!r} value[:40]={(c.value or b'')[:40]!r}"
            )
            continue
        seen.add((c.partition, c.offset))
        where = f"record #{rec.index} at {c.partition}/{c.offset}"
        if c.key != rec.key:
            err(f"{where}: key {c.key!r} != produced {rec.key!r}")
        if c.value != rec.value:
            err(
                f"{where}: value differs (got {len(c.value or b'')} bytes "
                f"{(c.value or b'')[:40]!r}..., produced {len(rec.value)} bytes "
                f"{rec.value[:40]!r}...)"
            )
        if c.headers != rec.headers:
            err(f"{where}: headers {c.headers!r} != produced {rec.headers!r}")
        if c.timestamp != rec.timestamp:
            err(f"{where}: timestamp {c.timestamp} != produced {rec.timestamp}")
        if c.create_time is False:
            err(f"{where}: timestamp type is not CreateTime")
    for (p, o), rec in sorted(by_pos.items()):
        if (p, o) not in seen:
            err(f"record #{rec.index} acked at {p}/{o} was never consumed")
    return errors


def report(client, version, codec, topic, records, acks, consumed, seconds):
    """Verify and print the one-line result. Returns True on success."""
    errors = verify(client, codec, records, acks, consumed)
    counts = [0] * PARTITIONS
    for c in consumed:
        if 0 <= c.partition < PARTITIONS:
            counts[c.partition] += 1
    if errors:
        print(
            f"FAIL {client} {version} codec={codec} topic={topic}: "
            f"{len(errors)} problem(s):",
            file=sys.stderr,
            flush=True,
        )
        for e in errors:
            print(f"  - {e}", file=sys.stderr, flush=True)
        return False
    print(
        f"OK {client} {version} codec={codec} topic={topic} "
        f"produced={len(records)} consumed={len(consumed)} "
        f"per_partition={counts} in {seconds:.1f}s",
        flush=True,
    )
    return True


def run(client, version, args, one_codec, probe=None):
    """Drive one_codec(codec, topic) -> (records, acks, consumed) over every
    requested codec; print per-codec lines and a summary; exit.

    probe(), if given, is called first (under a step deadline) to check that
    the broker answers at all; if it fails no codec is tried, so a dead broker
    costs one step timeout, not one per codec."""
    start_watchdog(client, args.timeout)
    if probe is not None:
        try:
            probe()
        except Exception as e:  # noqa: BLE001
            print(
                f"FAILED {client} {version}: broker at {args.bootstrap} not usable: "
                f"{type(e).__name__}: {e}",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(EXIT_FAILED)
    failed = []
    done = []
    for codec in args.codecs:
        topic = topic_name(client, codec)
        t0 = time.monotonic()
        try:
            records, acks, consumed = one_codec(codec, topic)
        except StepTimeout as e:
            print(f"FAIL {client} {version} codec={codec}: timed out: {e}", file=sys.stderr)
            failed.append(codec)
            # The client is probably wedged; later codecs would only time out too.
            break
        except Exception as e:  # noqa: BLE001 - report any client error as a failure
            print(
                f"FAIL {client} {version} codec={codec}: {type(e).__name__}: {e}",
                file=sys.stderr,
            )
            traceback.print_exc(file=sys.stderr)
            failed.append(codec)
            continue
        if report(client, version, codec, topic, records, acks, consumed, time.monotonic() - t0):
            done.append(codec)
        else:
            failed.append(codec)
    sys.stdout.flush()
    if failed:
        print(
            f"FAILED {client} {version}: codecs failed: {','.join(failed)}; "
            f"passed: {','.join(done) or '-'}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_FAILED)
    print(
        f"ALL OK {client} {version} codecs={','.join(done)} records_per_codec={args.records}",
        flush=True,
    )
    sys.exit(0)


class StepTimeout(Exception):
    pass


class Deadline:
    """A per-step deadline: `d = Deadline(secs, 'producing')`, then
    `d.check()` raises StepTimeout once it passed; `d.left()` is seconds left."""

    def __init__(self, seconds, what):
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self.what = what
        step(what)

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end

    def check(self, detail=""):
        if self.expired():
            raise StepTimeout(
                f"{self.what}: no success within {self.seconds:.0f}s" + (f" ({detail})" if detail else "")
            )
