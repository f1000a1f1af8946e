#!/usr/bin/env python3
"""benches/hostile_attack.py: hostile clients against a Kafka broker, for
benches/hostile.sh (issue 7: "a producer running beside the attacker keeps its
throughput within 20%").

For --duration seconds, from loopback source addresses other than the producer's:
  - slowloris (from --slowloris-source, default 127.0.0.2): up to --slowloris
    connections, each sending a 10,000-byte request a byte a second; reopened when
    the broker closes them (read timeout, or max.connections.per.ip);
  - garbage (from --noise-source, default 127.0.0.4): connections sending 4 KiB of
    random bytes, --garbage-rate a second;
  - 2 GiB claims (from --noise-source): connections announcing an i32::MAX-byte
    Produce request, --claim-rate a second, each waiting for the broker to close it.

Only loopback targets; every loop is bounded by --duration. Prints one summary line
of counts on stderr at the end. Standard library only.
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", required=True, help="HOST:PORT (a loopback address)")
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument("--slowloris", type=int, default=110)
    p.add_argument("--slowloris-source", default="127.0.0.2")
    p.add_argument("--noise-source", default="127.0.0.4")
    p.add_argument("--garbage-rate", type=float, default=100.0)
    p.add_argument("--claim-rate", type=float, default=100.0)
    a = p.parse_args()
    host, _, port = a.broker.rpartition(":")
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        p.error("only loopback brokers are attacked")
    a.addr = (host, int(port))
    return a


def connect(source, addr, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(addr)
    return s


# Request header v1 for (api, version), correlation id 99, client id "x".
def header_v1(api, version):
    return struct.pack(">hhih", api, version, 99, 1) + b"x"


class Attack:
    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.duration
        self.lock = threading.Lock()
        self.counts = {"slowloris_opened": 0, "slowloris_closed": 0, "garbage": 0,
                       "claims": 0, "claims_closed": 0, "connect_errors": 0}

    def running(self):
        return time.monotonic() < self.deadline

    def count(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def slowloris(self):
        body = header_v1(18, 3)
        request = struct.pack(">i", 10_000) + body + bytes(10_000 - len(body))
        conns = []  # [socket, bytes sent]
        while self.running():
            while len(conns) < self.args.slowloris:
                try:
                    s = connect(self.args.slowloris_source, self.args.addr)
                    s.setblocking(False)
                    conns.append([s, 0])
                    self.count("slowloris_opened")
                except OSError:
                    self.count("connect_errors")
                    break
            alive = []
            for c in conns:
                s, sent = c
                try:
                    s.send(request[sent:sent + 1])
                    c[1] = (sent + 1) % len(request)
                    try:
                        if s.recv(1) == b"":
                            raise ConnectionResetError
                    except BlockingIOError:
                        pass
                    alive.append(c)
                except OSError:
                    self.count("slowloris_closed")
                    s.close()
            conns = alive
            time.sleep(1.0)
        for s, _ in conns:
            s.close()

    def paced(self, rate, one):
        interval = 1.0 / rate
        next_at = time.monotonic()
        while self.running():
            try:
                one()
            except OSError:
                self.count("connect_errors")
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()

    def garbage_once(self):
        s = connect(self.args.noise_source, self.args.addr)
        try:
            s.sendall(os.urandom(4096))
        except OSError:
            pass  # the broker may close before it read it all
        finally:
            s.close()
        self.count("garbage")

    def claim_once(self):
        s = connect(self.args.noise_source, self.args.addr)
        try:
            s.sendall(struct.pack(">i", 2**31 - 1) + header_v1(0, 3))
            self.count("claims")
            s.settimeout(10)
            if s.recv(64) == b"":
                self.count("claims_closed")
        except OSError:
            self.count("claims_closed")  # reset: closed too
        finally:
            s.close()

    def run(self):
        threads = [
            threading.Thread(target=self.slowloris, daemon=True),
            threading.Thread(target=self.paced, args=(self.args.garbage_rate, self.garbage_once), daemon=True),
            threading.Thread(target=self.paced, args=(self.args.claim_rate, self.claim_once), daemon=True),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=self.args.duration + 30)
        print("attack: " + " ".join(f"{k}={v}" for k, v in self.counts.items()), file=sys.stderr)


if __name__ == "__main__":
    Attack(parse_args()).run()
