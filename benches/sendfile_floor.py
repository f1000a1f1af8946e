#!/usr/bin/env python3
"""The kernel's cost of sending 1 GB over loopback TCP from one process, with sendfile
from a cached file or send from memory, in 1 MiB pieces: the floor under the broker's
fetch CPU (BENCHMARKS.md). Usage: python3 benches/sendfile_floor.py sendfile|send
"""
import os, socket, sys, resource, time, threading
path = "/tmp/sf_floor.bin"
size = 1 << 30
if not os.path.exists(path) or os.path.getsize(path) != size:
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20): f.write(chunk)
with open(path, "rb") as f:  # warm the page cache
    while f.read(1 << 24): pass
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
port = srv.getsockname()[1]
pid = os.fork()
if pid == 0:
    c = socket.create_connection(("127.0.0.1", port))
    buf = bytearray(1 << 20); n = 0
    while True:
        r = c.recv_into(buf)
        if not r: break
        n += r
    os._exit(0)
conn, _ = srv.accept()
mode = sys.argv[1] if len(sys.argv) > 1 else "sendfile"
r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.time()
fd = os.open(path, os.O_RDONLY)
off = 0
chunk = 1 << 20
if mode == "sendfile":
    while off < size:
        off += os.sendfile(conn.fileno(), fd, off, min(chunk, size - off))
else:
    data = os.pread(fd, chunk, 0)
    while off < size:
        conn.sendall(data); off += chunk
conn.close(); os.waitpid(pid, 0)
r1 = resource.getrusage(resource.RUSAGE_SELF); t1 = time.time()
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(f"{mode}: {size/1e9/(t1-t0):.2f} GB/s, sender CPU {cpu/(size/1e9):.3f} s/GB (user {(r1.ru_utime-r0.ru_utime):.2f}, sys {(r1.ru_stime-r0.ru_stime):.2f})")
