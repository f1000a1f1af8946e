#!/usr/bin/env bash
# benches/run.sh: runs Strom's standard end-to-end benchmark matrix with
# strom-perf against a release broker it starts itself, and writes the results
# between the `<!-- benches/run.sh begin/end -->` markers of BENCHMARKS.md.
#
#   bash benches/run.sh                 # the full matrix (~15 min on 2 cores)
#   bash benches/run.sh --quick --out /tmp/bench-quick.md   # smoke test, ~2 min
#
# See benches/README.md. Needs bash, cargo, python3 and a Linux /proc.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: benches/run.sh [--quick] [--out FILE] [--repeat N] [--duration D]
                      [--tmpdir DIR] [--render JSONL] [--dry-run] [--no-warm]

Builds strom and strom-perf (release), starts a broker on a free 127.0.0.1 port
with a fresh data directory, runs the standard matrix and writes the figures
between the markers `<!-- benches/run.sh begin -->` and `<!-- benches/run.sh end -->`
of the output file (adding them after its first `# ` title if absent). The raw
JSON lines go to <target-dir>/bench-results/<timestamp>.jsonl.

  --quick          a reduced matrix with 1-2 s runs, to smoke-test the script
  --out FILE       the Markdown file to update (default: BENCHMARKS.md at the repo root)
  --repeat N       run the whole matrix N times; figures are medians (peak RSS: max)
  --duration D     length of each produce and mock run (default 8s; quick: 1s)
  --tmpdir DIR     where the broker's temporary data directory goes (default
                   $TMPDIR or /tmp); the file baseline writes there too
  --render JSONL   only (re)write the report from a saved results file
  --dry-run        print the matrix's commands (with port 9092) and exit
  --no-warm        skip touching 3/4 of free memory first (a fresh VM's first touch
                   of each page traps to the host and would be measured as broker CPU)
  -h, --help       this text
EOF
}

die() {
    printf 'run.sh: %s\n' "$*" >&2
    exit 2
}
log() { printf 'run.sh: %s\n' "$*" >&2; }

ORIG_PWD=$PWD
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=0
OUT=""
REPEAT=1
DURATION=""
TMP_PARENT=${TMPDIR:-/tmp}
RENDER_ONLY=""
DRY_RUN=0
WARM=1
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --no-warm) WARM=0 ;;
        --dry-run) DRY_RUN=1 ;;
        --out) OUT=${2:?--out needs a file}; shift ;;
        --out=*) OUT=${1#*=} ;;
        --repeat) REPEAT=${2:?--repeat needs a number}; shift ;;
        --repeat=*) REPEAT=${1#*=} ;;
        --duration) DURATION=${2:?--duration needs a value such as 8s}; shift ;;
        --duration=*) DURATION=${1#*=} ;;
        --tmpdir) TMP_PARENT=${2:?--tmpdir needs a directory}; shift ;;
        --tmpdir=*) TMP_PARENT=${1#*=} ;;
        --render) RENDER_ONLY=${2:?--render needs a .jsonl file}; shift ;;
        --render=*) RENDER_ONLY=${1#*=} ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "--repeat wants a positive integer, not '$REPEAT'"
# Paths given on the command line are relative to where the script was run.
abs() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$ORIG_PWD" "$1" ;; esac; }
if [[ -n $OUT ]]; then OUT=$(abs "$OUT"); else OUT=$ROOT/BENCHMARKS.md; fi
TMP_PARENT=$(abs "$TMP_PARENT")
[[ -n $RENDER_ONLY ]] && RENDER_ONLY=$(abs "$RENDER_ONLY")
command -v python3 >/dev/null || die "python3 is needed (to read strom-perf --json and write the report)"

# ---------------------------------------------------------------------------
# The matrix.
if ((QUICK)); then
    SIZES=(100 1024 16384)
    ACKS=(1)
    COMPRESSIONS=(none lz4)
    PARTITIONS=(1 12)
    PRODUCE_DURATION=${DURATION:-1s}
    E2E_DURATION=2s
    BASE_BYTES=100000000 # loopback TCP and file baselines: 100 MB
else
    SIZES=(100 1024 16384)
    ACKS=(1 all)
    COMPRESSIONS=(none lz4 zstd)
    PARTITIONS=(1 12)
    PRODUCE_DURATION=${DURATION:-8s}
    E2E_DURATION=10s
    BASE_BYTES=2000000000 # 2 GB, about what one produce run moves
fi
E2E_RATE=50MB/s
E2E_LINGERS=(1 5)
E2E_SIZE=1024
E2E_ACKS=(all 1)

# ---------------------------------------------------------------------------
# Python helpers: wrap one strom-perf JSON line with what the script knows,
# record machine facts, and render the Markdown region. python3 -c "$PY" CMD ...
PY=$(
    cat <<'PYEOF'
import json, os, re, shlex, statistics, subprocess, sys
from datetime import datetime, timezone

BEGIN = "<!-- benches/run.sh begin -->"
END = "<!-- benches/run.sh end -->"


def out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


def loadavg():
    try:
        return " / ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def append(path, obj):
    with open(path, "a") as f:
        f.write(json.dumps(obj, separators=(",", ":")) + "\n")


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or d.get(p) is None:
            return None
        d = d[p]
    return d


def spaced(v):
    """8s -> 8 s, 50MB/s -> 50 MB/s."""
    return re.sub(r"^([\d.]+)([A-Za-z])", r"\1 \2", str(v))


def size_label(n):
    n = int(n)
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


# -- meta ------------------------------------------------------------------
def cmd_meta(jsonl, root, data_dir, perf, port, opts):
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    fs = out(["findmnt", "-no", "FSTYPE,SOURCE", "-T", data_dir]) or out(["stat", "-f", "-c", "%T", data_dir])
    commit = out(["git", "-C", root, "rev-parse", "--short=12", "HEAD"])
    dirty = bool(out(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"]))
    librdkafka = None
    try:
        lock = open(os.path.join(root, "Cargo.lock")).read()
        m = re.search(r'name = "rdkafka-sys"\nversion = "([^"]+)"', lock)
        if m:
            librdkafka = m.group(1).split("+", 1)[-1]
    except OSError:
        pass
    def damon():
        # A DAMON "pageout" scheme (seen on this VM) reclaims cold pages, and the host
        # then takes them back: the next first touch of each page traps again, which
        # warming cannot undo. It makes every page-cache write dear (file-write
        # baseline 0.6-1.9 GB/s instead of 5.7), so the report says whether it ran.
        import glob
        states = []
        for d in sorted(glob.glob("/sys/kernel/mm/damon/admin/kdamonds/[0-9]*")):
            try:
                state = open(d + "/state").read().strip()
                actions = sorted({open(a).read().strip() for a in
                                  glob.glob(d + "/contexts/*/schemes/*/action")})
            except OSError:
                continue
            states.append(state + (" (" + ", ".join(actions) + ")" if actions else ""))
        return ", ".join(states) or "none"
    append(jsonl, {
        "type": "meta",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "mem": mem,
        "kernel": os.uname().release,
        "damon": damon(),
        "fs": " ".join(fs.split()) or "?",
        "git": commit or "?",
        "dirty": dirty,
        "rustc": out(["rustc", "--version"]),
        "strom_perf": out([perf, "--version"]),
        "librdkafka": librdkafka,
        "loadavg_start": loadavg(),
        "port": int(port),
        "options": json.loads(opts),
    })


# -- one run -------------------------------------------------------------------
def cmd_wrap(jsonl, rid, kind, rep, rc, errfile, labels, t0, t1, *argv):
    text = sys.stdin.read().strip()
    lab = {}
    for kv in filter(None, labels.split(",")):
        k, v = kv.split("=", 1)
        lab[k] = int(v) if v.isdigit() else v
    result, ok = None, rc == "0"
    if ok:
        try:
            result = json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            ok = False
    try:
        err = open(errfile, errors="replace").read().strip().splitlines()
    except OSError:
        err = []
    start, wall = float(t0), float(t1) - float(t0)
    rec = {"type": "run", "id": rid, "kind": kind, "rep": int(rep), "ok": ok, "rc": int(rc),
           "labels": lab, "argv": list(argv),
           "start": datetime.fromtimestamp(start, timezone.utc).strftime("%H:%M:%S"),
           "wall_s": round(wall, 2), "result": result}
    if not ok:
        rec["error"] = "\n".join(err[-5:]) or text[-500:] or f"exit status {rc}"
    append(jsonl, rec)
    # One progress line.
    desc = " ".join(f"{k}={v}" for k, v in lab.items() if k != "source")
    if not ok:
        print(f"  {rid:<4} {kind} {desc}: FAILED (exit {rc}) [{wall:.1f} s]: "
              f"{rec['error'].splitlines()[-1] if rec['error'] else ''}", file=sys.stderr)
        sys.exit(3)
    r = result
    bits = []
    if kind == "baseline":
        bits.append(f"TCP {r['tcp_loopback']['mb_per_s']:.0f} MB/s, file {r['file_write']['mb_per_s']:.0f} MB/s "
                    f"({r['file_write_fsync']['mb_per_s']:.0f} with fsync)")
    for side in ("produce", "consume"):
        f = r.get(side)
        if f:
            s = f"{side} {f['mb_per_s']:.1f} MB/s ({f['records_per_s']:,.0f} rec/s)"
            if f.get("latency"):
                s += f" p99 {f['latency']['p99_ms']:.2f} ms"
            if f.get("errors"):
                s += f" ERRORS {f['errors']}"
            bits.append(s)
    b = get(r, "cost", "broker")
    if b:
        bits.append(f"broker {b['cpu_s_per_gb'] or 0:.3f} CPU-s/GB, {b['peak_rss_mib']:.0f} MiB")
    print(f"  {rid:<4} {kind} {desc}: " + "; ".join(bits) + f" [{wall:.1f} s]", file=sys.stderr)


def cmd_field(*path):
    v = get(json.loads(sys.stdin.read().strip().splitlines()[-1]), *path)
    print("" if v is None else v)


def cmd_broker_end(jsonl, pid, seconds):
    mem = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                mem[k] = int(v.split()[0]) / 1024
    except OSError:
        pass
    append(jsonl, {"type": "broker_end", "pid": int(pid), "vmhwm_mib": mem.get("VmHWM"),
                   "vmrss_mib": mem.get("VmRSS"), "loadavg_end": loadavg(), "matrix_s": int(seconds),
                   "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})


# -- the report ----------------------------------------------------------------
def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def mx(vals):
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def f(v, nd=1, unit=""):
    if v is None:
        return "–"
    return f"{v:,.{nd}f}{unit}"


class Run:
    """Every repetition of one run id."""

    def __init__(self, rid):
        self.id, self.reps = rid, []

    @property
    def first(self):
        return self.reps[0]

    @property
    def kind(self):
        return self.first["kind"]

    @property
    def lab(self):
        return self.first["labels"]

    @property
    def ok(self):
        return [r["result"] for r in self.reps if r["ok"] and r["result"]]

    def m(self, *path):
        return med(get(r, *path) for r in self.ok)

    def peak_rss(self):
        return mx(get(r, "cost", "broker", "peak_rss_mib") for r in self.ok)

    def errors(self):
        n = sum(get(r, s, "errors") or 0 for r in self.ok for s in ("produce", "consume"))
        first = next((get(r, s, "first_error") for r in self.ok for s in ("produce", "consume")
                      if get(r, s, "first_error")), None)
        return n, first

    def note(self):
        bad = [r for r in self.reps if not r["ok"]]
        notes = []
        if bad:
            notes.append(f"{len(bad)} of {len(self.reps)} failed: "
                         + bad[0].get("error", "?").splitlines()[-1][:120].replace("|", "/"))
        n, first = self.errors()
        if n:
            notes.append(f"{n:,} errors ({(first or '?')[:100]})".replace("|", "/"))
        return "; ".join(notes)


def ids_text(ids):
    """P13, P14, P15, P17 -> P13–P15, P17."""
    parts, run = [], []
    def flush():
        if run:
            parts.append(run[0] if len(run) < 3 else f"{run[0]}–{run[-1]}")
            if len(run) == 2:
                parts.append(run[1])
    for i in ids:
        if run and re.sub(r"\d", "", i) == re.sub(r"\d", "", run[-1]) and \
                int(re.sub(r"\D", "", i)) == int(re.sub(r"\D", "", run[-1])) + 1:
            run.append(i)
        else:
            flush()
            run = [i]
    flush()
    return ", ".join(parts)


def cmd_render(jsonl, outpath):
    meta, end, runs = {}, {}, {}
    for line in open(jsonl):
        line = line.strip()
        if not line:
            continue
        o = json.loads(line)
        if o["type"] == "meta":
            meta = o
        elif o["type"] == "broker_end":
            end = o
        elif o["type"] == "run":
            runs.setdefault(o["id"], Run(o["id"])).reps.append(o)
    port = meta.get("port")
    opts = meta.get("options", {})
    work = opts.get("work")

    def command(run):
        s = "$P " + shlex.join(run.first["argv"])
        if port:
            s = s.replace(f"--brokers 127.0.0.1:{port} --broker-port {port}", "$B")
        if work:
            s = s.replace(work, "$WORK")
        if opts.get("repeat", 1) > 1:
            s = re.sub(r"-r1\b", "-rN", s)
        return s

    of = lambda kind: [r for r in runs.values() if r.kind == kind]
    baselines, mocks, produces = of("baseline"), of("mock"), of("produce")
    consumes, e2es = of("consume"), of("e2e")

    def tcp_of(size):
        return next((b.m("tcp_loopback", "mb_per_s") for b in baselines if b.lab["size"] == size), None)

    def mock_of(lab):
        return next((m for m in mocks if all(m.lab.get(k) == lab.get(k)
                                              for k in ("size", "compression", "partitions"))), None)

    def pct(a, b):
        return a / b * 100 if a is not None and b else None

    L = [BEGIN, ""]
    L.append("# End to end: the standard matrix (`benches/run.sh`)")
    L.append("")
    L.append("_Generated by [`benches/run.sh`](benches/run.sh); do not edit by hand: change "
             "the script and run it again (see [benches/README.md](benches/README.md))._")
    L.append("")
    if opts.get("quick"):
        L.append("> **`--quick` smoke run: tiny runs on a reduced matrix; these figures are "
                 "not measurements.**")
        L.append("")
    dirty = " (with uncommitted changes)" if meta.get("dirty") else ""
    rk = meta.get("librdkafka")
    L += [
        f"- **Date**: {meta.get('date', '?')} to {end.get('date', '?')}"
        + (f" ({end['matrix_s'] // 60} min {end['matrix_s'] % 60} s)" if end.get("matrix_s") is not None else "")
        + "; load average "
        f"(1/5/15 min) {meta.get('loadavg_start', '?')} at the start, "
        f"{end.get('loadavg_end', '?')} at the end.",
        f"- **Machine**: {meta.get('nproc', '?')} CPUs (`nproc`), {meta.get('cpu', '?')}, "
        f"{meta.get('mem', '?')} RAM, kernel {meta.get('kernel', '?')}; broker data directory "
        f"on {meta.get('fs', '?')}; kernel DAMON reclaim (kdamond): {meta.get('damon', '?')}.",
        f"- **Build**: git `{meta.get('git', '?')}`{dirty}, {meta.get('rustc') or 'rustc ?'}, "
        f"release profile; {meta.get('strom_perf') or 'strom-perf'}"
        + (f" on librdkafka {rk}" if rk else "") + ".",
        f"- **Runs**: produce flat out for {spaced(opts.get('produce_duration', '?'))} per run (one "
        "producer, linger.ms 5, batch.size 1,000,000, each run into a new topic), then waits "
        "for every ack; consume at full speed from the beginning of the `acks=1`, uncompressed "
        f"topic just produced; e2e at {spaced(opts.get('e2e_rate', '?'))} for "
        f"{spaced(opts.get('e2e_duration', '?'))}; baselines move {f(opts.get('base_bytes', 0) / 1e9, 1)} GB. "
        "`sync` before every run; one broker for the whole matrix. "
        + (f"Each figure is the median of {opts['repeat']} repetitions of the whole matrix "
           "(peak RSS: the highest). " if opts.get("repeat", 1) > 1 else "One repetition. ")
        + f"Raw JSON: `{opts.get('jsonl', '?')}`.",
        "- **Units**: MB = 10^6 payload bytes (no keys, no protocol overhead); latencies in ms. "
        "**Broker CPU-s/GB**: the broker process's user+system CPU seconds during the run per "
        "10^9 payload bytes moved (e2e: produced + consumed). **Client CPU-s/GB**: the same "
        "for strom-perf (librdkafka included; for the mock cluster, the mock broker too): "
        "client and broker share the cores. **Peak RSS**: the broker's VmRSS, sampled every 50 ms.",
        "- **Rerun a row**: every row has an id; its command is under *Commands* below.",
        "",
    ]

    # -- targets
    targets = []

    def target(name, limit, unit, nd, items, better, limit_text, what):
        items = [(i, v) for i, v in items if v is not None]
        if not items:
            targets.append((name, limit_text, "no run", "n/a", what))
            return
        worst = (min if better == ">=" else max)(items, key=lambda x: x[1])
        met = {"<=": worst[1] <= limit, "<": worst[1] < limit, ">=": worst[1] >= limit}[better]
        lo, hi = min(v for _, v in items), max(v for _, v in items)
        nruns = sum(1 for i, _ in items if re.fullmatch(r"[A-Z]\d+", i))
        rng = f"; {f(lo, nd)}–{f(hi, nd)} over {nruns} runs" if len(items) > 1 else ""
        targets.append((name, limit_text, f"**{f(worst[1], nd)}{unit}** (worst: {worst[0]}{rng})",
                        "met" if met else "**missed**", what))

    p1k = [p for p in produces if p.lab.get("size") == 1024]
    target("broker CPU per GB produced, 1 KiB records", 0.5, " s/GB", 3,
           [(p.id, p.m("cost", "broker", "cpu_s_per_gb")) for p in p1k], "<=", "≤ 0.5 s/GB",
           ids_text([p.id for p in p1k]) + " (every 1 KiB produce run)")
    c1k = [c for c in consumes if c.lab.get("size") == 1024]
    target("broker CPU per GB fetched, 1 KiB records", 0.25, " s/GB", 3,
           [(c.id, c.m("cost", "broker", "cpu_s_per_gb")) for c in c1k], "<=", "≤ 0.25 s/GB",
           ids_text([c.id for c in c1k]) + " (every 1 KiB consume run)")
    ratio = []
    for p in p1k:
        mk = mock_of(p.lab)
        ratio.append((p.id, pct(p.m("produce", "mb_per_s"), mk.m("produce", "mb_per_s") if mk else None)))
    target("produce throughput / mock-cluster ceiling, 1 KiB records", 90, " %", 1, ratio, ">=",
           "≥ 90 %", ids_text([p.id for p in p1k]) + " against the mock run (acks=1) of the same "
           "size, compression and partitions")
    p16 = [p for p in produces if p.lab.get("size") == 16384 and p.lab.get("compression") == "none"]
    target("produce throughput / loopback TCP, 16 KiB records", 50, " %", 1,
           [(p.id, pct(p.m("produce", "mb_per_s"), tcp_of(16384))) for p in p16], ">=", "≥ 50 %",
           ids_text([p.id for p in p16]) + " (uncompressed) against the 16 KiB loopback TCP baseline")
    # Judged at linger.ms 1 (the latency setting); linger 5 rows are for reference.
    eall = [e for e in e2es if str(e.lab.get("acks")) == "all" and str(e.lab.get("linger", 1)) == "1"]
    target(f"p99 produce-to-ack at {spaced(opts.get('e2e_rate', '?'))}, acks=all", 5, " ms", 2,
           [(e.id, e.m("produce", "latency", "p99_ms")) for e in eall], "<=", "≤ 5 ms",
           ids_text([e.id for e in eall]))
    target(f"p99 end to end at {spaced(opts.get('e2e_rate', '?'))}, acks=all", 10, " ms", 2,
           [(e.id, e.m("consume", "latency", "p99_ms")) for e in eall], "<=", "≤ 10 ms",
           ids_text([e.id for e in eall]))
    rss = [(r.id, r.peak_rss()) for r in runs.values()]
    if end.get("vmhwm_mib") is not None:
        rss.append(("VmHWM at the end", end["vmhwm_mib"]))
    target("broker peak RSS, whole matrix", 512, " MiB", 1, rss, "<", "< 512 MiB",
           "every run's sampled peak, and the broker's VmHWM (its peak since it started) "
           "read after the last run")

    L += ["## Targets", "", "| target | limit | measured | verdict | runs |", "|---|---|---|---|---|"]
    L += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in targets]
    L.append("")

    # -- baselines
    L += ["## Baselines", "",
          "The same bytes through a plain loopback TCP socket (one writer thread, one reader, "
          "1 MiB writes) and into a file on the data directory's filesystem (1 MiB writes; "
          "then one fsync), and the same produce load against librdkafka's in-process mock "
          "cluster (one mock broker, acks=1): what the machine and the client can do.", "",
          "| id | record size | bytes | loopback TCP MB/s | file write MB/s | file write + fsync MB/s | notes |",
          "|---|---|---|---|---|---|---|"]
    for b in baselines:
        L.append(f"| {b.id} | {size_label(b.lab['size'])} | {f(b.m('bytes') / 1e9 if b.m('bytes') else None, 2)} GB "
                 f"| {f(b.m('tcp_loopback', 'mb_per_s'))} | {f(b.m('file_write', 'mb_per_s'))} "
                 f"| {f(b.m('file_write_fsync', 'mb_per_s'))} | {b.note()} |")
    L += ["", "| id | record size | compression | partitions | records/s | MB/s | "
          "ack p50 / p99 / p99.9 / max | client CPU-s/GB | notes |", "|---|---|---|---|---|---|---|---|---|"]
    for m in mocks:
        L.append(f"| {m.id} | {size_label(m.lab['size'])} | {m.lab.get('compression')} | {m.lab.get('partitions')} "
                 f"| {f(m.m('produce', 'records_per_s'), 0)} | **{f(m.m('produce', 'mb_per_s'))}** "
                 f"| {lat(m, 'produce')} | {f(m.m('cost', 'client_cpu_s_per_gb'), 3)} | {m.note()} |")
    L.append("")

    # -- produce
    L += ["## Produce", "",
          "Flat out, one producer. % of mock: this run's MB/s over the mock-cluster run with the "
          "same record size, compression and partitions (the client's ceiling). % of TCP: over "
          "the loopback TCP baseline for the same record size. Flat out, the ack latency is "
          "mostly time queued in librdkafka; the e2e table has latencies at a fixed rate.", "",
          "| id | record size | acks | compression | partitions | records/s | MB/s | % of mock | % of TCP "
          "| ack p50 / p99 / p99.9 / max | broker CPU-s/GB | broker peak RSS MiB | client CPU-s/GB | notes |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in produces:
        mb = p.m("produce", "mb_per_s")
        mk = mock_of(p.lab)
        L.append(f"| {p.id} | {size_label(p.lab['size'])} | {p.lab.get('acks')} | {p.lab.get('compression')} "
                 f"| {p.lab.get('partitions')} | {f(p.m('produce', 'records_per_s'), 0)} | **{f(mb)}** "
                 f"| {f(pct(mb, mk.m('produce', 'mb_per_s') if mk else None), 0)} % "
                 f"| {f(pct(mb, tcp_of(p.lab['size'])), 0)} % | {lat(p, 'produce')} "
                 f"| {f(p.m('cost', 'broker', 'cpu_s_per_gb'), 3)} | {f(p.peak_rss())} "
                 f"| {f(p.m('cost', 'client_cpu_s_per_gb'), 3)} | {p.note()} |")
    L.append("")

    # -- consume
    L += ["## Consume", "",
          "At full speed from the beginning of the topic the row's produce run (source) wrote: "
          "by assignment of every partition until each is at its end, or as a consumer group "
          "(subscribe; `--count` = the records produced). Throughput is from the first record "
          "received to the last, so connecting and joining the group (startup) are left out; "
          "the broker's CPU covers the whole run.", "",
          "| id | record size | partitions | how | source | records | records/s | MB/s | % of TCP "
          "| startup s | broker CPU-s/GB | broker peak RSS MiB | client CPU-s/GB | notes |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in consumes:
        mb = c.m("consume", "mb_per_s")
        L.append(f"| {c.id} | {size_label(c.lab['size'])} | {c.lab.get('partitions')} | {c.lab.get('mode')} "
                 f"| {c.lab.get('source', '')} | {f(c.m('consume', 'records'), 0)} "
                 f"| {f(c.m('consume', 'records_per_s'), 0)} | **{f(mb)}** "
                 f"| {f(pct(mb, tcp_of(c.lab['size'])), 0)} % | {f(c.m('settings', 'startup_s'), 2)} "
                 f"| {f(c.m('cost', 'broker', 'cpu_s_per_gb'), 3)} | {f(c.peak_rss())} "
                 f"| {f(c.m('cost', 'client_cpu_s_per_gb'), 3)} | {c.note()} |")
    L.append("")

    # -- e2e
    L += ["## End-to-end latency at a fixed rate", "",
          "Producer at a fixed rate and a consumer assigned at the end of every partition, in the "
          "same process; end to end = from the send time stamped in the payload to receipt.", "",
          "| id | record size | acks | partitions | linger.ms | rate | produced MB/s | ack p50 / p99 / p99.9 / max "
          "| e2e p50 / p99 / p99.9 / max | broker CPU-s/GB | broker peak RSS MiB | client CPU-s/GB | notes |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in e2es:
        L.append(f"| {e.id} | {size_label(e.lab['size'])} | {e.lab.get('acks')} | {e.lab.get('partitions')} "
                 f"| {e.lab.get('linger', 5)} | {spaced(e.lab.get('rate', ''))} | {f(e.m('produce', 'mb_per_s'))} | {lat(e, 'produce')} "
                 f"| {lat(e, 'consume')} | {f(e.m('cost', 'broker', 'cpu_s_per_gb'), 3)} | {f(e.peak_rss())} "
                 f"| {f(e.m('cost', 'client_cpu_s_per_gb'), 3)} | {e.note()} |")
    L.append("")

    # -- commands
    L += ["## Commands", "",
          "From the repository root, after `cargo build --release -p strom-cli -p strom-perf`, "
          "in the order they ran: each consume reads the topic of the produce run just before "
          "it, and the script deletes each topic after its last use (`strom topic delete`) "
          "so the disk does not fill. `$WORK`: a scratch directory on the data directory's "
          "filesystem"
          + ("; `-rN`: a new topic per repetition" if opts.get("repeat", 1) > 1 else "")
          + ". The script adds `--json` to each and records the JSON object it prints.", "",
          "```sh",
          "target/release/strom serve --data-dir /tmp/perf-data --listen 127.0.0.1:9092 "
          "--advertise 127.0.0.1:9092 &",
          "P=target/release/strom-perf",
          'B="--brokers 127.0.0.1:9092 --broker-port 9092"',
          "sync  # before each run",
          ]
    for r in runs.values():
        L.append(f"{command(r)}  # {r.id}")
    L += ["```", "", END]
    region = "\n".join(L) + "\n"
    write_region(outpath, region)


def lat(run, side):
    v = [run.m(side, "latency", k) for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms")]
    if all(x is None for x in v):
        return "–"
    return " / ".join(f(x, 2) for x in v)


def write_region(path, region):
    try:
        text = open(path).read()
    except FileNotFoundError:
        text = "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    b = [i for i, l in enumerate(lines) if l.strip() == BEGIN]
    e = [i for i, l in enumerate(lines) if l.strip() == END]
    if b or e:
        if len(b) != 1 or len(e) != 1 or e[0] < b[0]:
            sys.exit(f"run.sh: {path}: expected one '{BEGIN}' line followed by one '{END}' "
                     "line; not touching it")
        new = "".join(lines[:b[0]]) + region + "".join(lines[e[0] + 1:])
    else:
        # After the first "# " title, else at the top.
        at = next((i + 1 for i, l in enumerate(lines) if l.startswith("# ")), 0)
        head = "".join(lines[:at])
        if head and not head.endswith("\n"):
            head += "\n"
        new = head + ("\n" if head else "") + region + "\n" + "".join(lines[at:]).lstrip("\n")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(new)
    os.replace(tmp, path)


def cmd_targets(jsonl, outpath):
    # Print the generated targets table to the terminal.
    text = open(outpath).read()
    s = text.find("## Targets")
    e = text.find("## Baselines", s)
    if s >= 0:
        print(text[s:e].strip(), file=sys.stderr)


cmds = {"meta": cmd_meta, "wrap": cmd_wrap, "field": cmd_field, "broker_end": cmd_broker_end,
        "render": cmd_render, "targets": cmd_targets}
cmds[sys.argv[1]](*sys.argv[2:])
PYEOF
)
py() { python3 -c "$PY" "$@"; }

if [[ -n $RENDER_ONLY ]]; then
    py render "$RENDER_ONLY" "$OUT"
    py targets "$RENDER_ONLY" "$OUT"
    log "wrote $OUT from $RENDER_ONLY"
    exit 0
fi

# run_perf ID KIND REP LABELS STROM-PERF-ARGS...: one run, with `sync` first;
# its JSON (wrapped with the id, labels and command) is appended to $JSONL.
FAILURES=0
LAST_OUT=""
LAST_RC=0
run_perf() {
    local id=$1 kind=$2 rep=$3 labels=$4
    shift 4
    local rc=0 t0 t1 done_pid=""
    if ((DRY_RUN)); then
        printf '%s ' "$PERF"
        printf '%q ' "$@"
        printf ' # %s\n' "$id"
        LAST_OUT="" LAST_RC=0
        return 0
    fi
    sync
    t0=$EPOCHREALTIME
    "$PERF" "$@" --json >"$WORK/perf.out" 2>"$WORK/perf.stderr" &
    PERF_PID=$!
    if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 501)); then
        # Whichever ends first: the run, or the broker (then librdkafka would
        # retry for minutes, so stop the run).
        wait -n -p done_pid "$PERF_PID" "$BROKER_PID" || rc=$?
        if [[ $done_pid != "$PERF_PID" ]]; then
            kill -TERM "$PERF_PID" 2>/dev/null || true
            wait "$PERF_PID" 2>/dev/null || true
            rc=99
            echo "the broker exited during the run" >>"$WORK/perf.stderr"
        fi
    else
        wait "$PERF_PID" || rc=$?
    fi
    PERF_PID=""
    t1=$EPOCHREALTIME
    LAST_OUT=$(<"$WORK/perf.out")
    if ! py wrap "$JSONL" "$id" "$kind" "$rep" "$rc" "$WORK/perf.stderr" "$labels" "$t0" "$t1" "$@" <<<"$LAST_OUT"; then
        ((rc != 0)) || rc=3 # exit 0 but no JSON
    fi
    LAST_RC=$rc
    if ((rc != 0)); then
        FAILURES=$((FAILURES + 1))
        broker_alive
    fi
}

delete_topic() {
    if ((DRY_RUN)); then
        printf '%s topic delete --if-exists %q -b %s\n' "$STROM" "$1" "$BROKER_ADDR"
        return 0
    fi
    if ! "$STROM" topic delete --if-exists "$1" -b "$BROKER_ADDR" >/dev/null 2>"$WORK/delete.stderr"; then
        log "warning: deleting topic $1 failed: $(tail -n 1 "$WORK/delete.stderr")"
    fi
}

run_matrix() {
    local rep=$1 b=0 m=0 p=0 c=0 e=0 size acks comp parts topic n produced
    for size in "${SIZES[@]}"; do
        b=$((b + 1))
        run_perf "B$b" baseline "$rep" "size=$size" \
            baseline --record-size "$size" --count $((BASE_BYTES / size)) --no-mock --dir "$WORK"
        for comp in "${COMPRESSIONS[@]}"; do
            for parts in "${PARTITIONS[@]}"; do
                m=$((m + 1))
                run_perf "M$m" mock "$rep" "size=$size,compression=$comp,partitions=$parts" \
                    produce --mock --topic "mock-$size-$comp-p$parts" --partitions "$parts" \
                    --record-size "$size" --acks 1 --compression "$comp" --duration "$PRODUCE_DURATION"
            done
        done
        for acks in "${ACKS[@]}"; do
            for comp in "${COMPRESSIONS[@]}"; do
                for parts in "${PARTITIONS[@]}"; do
                    p=$((p + 1))
                    topic=p-$size-a$acks-$comp-p$parts-r$rep
                    run_perf "P$p" produce "$rep" "size=$size,acks=$acks,compression=$comp,partitions=$parts" \
                        produce "${BROKER[@]}" --topic "$topic" --partitions "$parts" \
                        --record-size "$size" --acks "$acks" --compression "$comp" \
                        --duration "$PRODUCE_DURATION"
                    produced=$LAST_OUT
                    # The acks=1, uncompressed topics are read back at full speed.
                    if ((LAST_RC == 0)) && [[ $acks == 1 && $comp == none ]]; then
                        c=$((c + 1))
                        run_perf "C$c" consume "$rep" "size=$size,partitions=$parts,mode=assignment,source=P$p" \
                            consume "${BROKER[@]}" --topic "$topic"
                        if [[ $size == 1024 && $parts == 12 ]]; then
                            if ((DRY_RUN)); then n=RECORDS_OF_P$p; else n=$(py field produce records <<<"$produced"); fi
                            c=$((c + 1))
                            run_perf "C$c" consume "$rep" "size=$size,partitions=$parts,mode=group,source=P$p" \
                                consume "${BROKER[@]}" --topic "$topic" --group "g-$topic" --count "$n"
                        fi
                    fi
                    delete_topic "$topic"
                done
            done
        done
    done
    # linger.ms 1 is how latency is measured (OpenMessaging Benchmark's latency runs use
    # it too); librdkafka's default 5 is shown beside it: it adds up to 5 ms of waiting
    # in the client before a record is even sent.
    for linger in "${E2E_LINGERS[@]}"; do
        for acks in "${E2E_ACKS[@]}"; do
            for parts in "${PARTITIONS[@]}"; do
                e=$((e + 1))
                topic=e-$E2E_SIZE-a$acks-p$parts-l$linger-r$rep
                run_perf "E$e" e2e "$rep" \
                    "size=$E2E_SIZE,acks=$acks,partitions=$parts,rate=$E2E_RATE,linger=$linger" \
                    e2e "${BROKER[@]}" --topic "$topic" --partitions "$parts" \
                    --record-size "$E2E_SIZE" --rate "$E2E_RATE" --duration "$E2E_DURATION" \
                    --acks "$acks" --linger-ms "$linger"
                delete_topic "$topic"
            done
        done
    done
}

if ((DRY_RUN)); then
    PERF=target/release/strom-perf STROM=target/release/strom WORK=/tmp/strom-bench.XXXXXX
    PORT=9092 BROKER_ADDR=127.0.0.1:9092
    BROKER=(--brokers "$BROKER_ADDR" --broker-port "$PORT")
    for ((rep = 1; rep <= REPEAT; rep++)); do run_matrix "$rep"; done
    exit 0
fi

# ---------------------------------------------------------------------------
# Build, and where things go.
log "building: cargo build --release -p strom-cli -p strom-perf"
cargo build --release -p strom-cli -p strom-perf
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') ||
    TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
STROM=$TARGET_DIR/release/strom
PERF=$TARGET_DIR/release/strom-perf

RESULTS_DIR=$TARGET_DIR/bench-results
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSONL=$RESULTS_DIR/$STAMP.jsonl
mkdir -p "$TMP_PARENT"
WORK=$(mktemp -d "$TMP_PARENT/strom-bench.XXXXXX")
DATA=$WORK/data
BROKER_PID=""

stop_broker() {
    [[ -n $BROKER_PID ]] || return 0
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$BROKER_PID" 2>/dev/null; then
            log "broker $BROKER_PID did not stop in 10 s; killing it"
            kill -KILL "$BROKER_PID" 2>/dev/null || true
        fi
    fi
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}
PERF_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $PERF_PID ]]; then # a run in progress
        kill -TERM "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
    fi
    stop_broker
    if [[ -f $WORK/broker.log ]]; then cp "$WORK/broker.log" "$RESULTS_DIR/$STAMP.broker.log" || true; fi
    rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_kib=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
if ((!QUICK && free_kib < 12 * 1024 * 1024)); then
    log "warning: only $((free_kib / 1024 / 1024)) GiB free under $TMP_PARENT; a produce run can write ~4 GB"
fi
read -r load1 _ </proc/loadavg
if python3 -c "import sys; sys.exit(0 if float('$load1') > 1.0 else 1)"; then
    log "warning: load average $load1: the machine is not quiet, figures will be noisy"
fi

# ---------------------------------------------------------------------------
# The broker.
start_broker() {
    local attempt
    for attempt in 1 2 3; do
        PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        BROKER_ADDR=127.0.0.1:$PORT
        rm -rf -- "$DATA"
        "$STROM" serve --data-dir "$DATA" --listen "$BROKER_ADDR" --advertise "$BROKER_ADDR" \
            >"$WORK/broker.log" 2>&1 &
        BROKER_PID=$!
        local i
        for ((i = 0; i < 150; i++)); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
                "$PORT" 2>/dev/null; then
                log "broker pid $BROKER_PID on $BROKER_ADDR, data in $DATA"
                return 0
            fi
            sleep 0.2
        done
        log "broker did not come up on $BROKER_ADDR (attempt $attempt):"
        tail -n 20 "$WORK/broker.log" >&2 || true
        stop_broker
    done
    die "could not start the broker"
}
# A fresh VM's memory is backed by the host lazily: the guest's first touch of each
# physical page traps to the hypervisor. Measured here: touching 16 GiB once took 69 s
# (29 s of it system time), and a 1 GB new-file write cost 1.97 CPU-s before and
# 0.15 CPU-s after, so page-cache growth in the first runs would measure the VM, not
# the broker. A long-running server has touched its memory long ago; so do we, once:
# three quarters of MemAvailable, written a page at a time and released (--no-warm
# skips it).
warm_memory() {
    log "warming memory (first touch of 3/4 of MemAvailable; --no-warm skips)"
    python3 - <<'PY'
import mmap
avail_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemAvailable:"))
size = avail_kb * 1024 * 3 // 4 // mmap.PAGESIZE * mmap.PAGESIZE
m = mmap.mmap(-1, size)
for i in range(0, size, mmap.PAGESIZE):
    m[i] = 1
m.close()
PY
}
((WARM == 0 || QUICK == 1)) || warm_memory
start_broker
BROKER=(--brokers "$BROKER_ADDR" --broker-port "$PORT")

broker_alive() {
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        log "the broker exited; the end of its log:"
        tail -n 30 "$WORK/broker.log" >&2 || true
        die "broker gone"
    fi
}

OPTS=$(python3 -c 'import json, sys; a = sys.argv[1:]; print(json.dumps({
    "quick": a[0] == "1", "repeat": int(a[1]), "produce_duration": a[2], "e2e_duration": a[3],
    "e2e_rate": a[4], "base_bytes": int(a[5]), "work": a[6], "jsonl": a[7],
    "memory_warmed": a[8] == "1"}))' \
    "$QUICK" "$REPEAT" "$PRODUCE_DURATION" "$E2E_DURATION" "$E2E_RATE" "$BASE_BYTES" "$WORK" \
    "${JSONL#"$ROOT"/}" "$((WARM && !QUICK))")
py meta "$JSONL" "$ROOT" "$DATA" "$PERF" "$PORT" "$OPTS"
log "results: $JSONL"

SECONDS=0
for ((rep = 1; rep <= REPEAT; rep++)); do
    ((REPEAT == 1)) || log "repetition $rep of $REPEAT"
    run_matrix "$rep"
done
py broker_end "$JSONL" "$BROKER_PID" "$SECONDS"
stop_broker
log "matrix done in $((SECONDS / 60)) min $((SECONDS % 60)) s"

py render "$JSONL" "$OUT"
py targets "$JSONL" "$OUT"
log "wrote $OUT (raw results: $JSONL)"
if ((FAILURES)); then
    log "$FAILURES run(s) failed; see the notes column"
    exit 1
fi
