//! Proof from an strace log that `strom serve` fsyncs every acknowledged produce
//! before the acknowledgement leaves the broker.
//!
//! The broker runs under strace ([`wrapper_args`]): every `recvfrom`/`sendto`/`writev`/
//! `sendfile` with its full data (hex), every `fdatasync`/`fsync`, each file
//! descriptor annotated with its path or socket inode, one trace file per broker start.
//! [`check`] then rebuilds, per connection, the byte streams both ways, splits them into
//! Kafka frames, pairs each Produce response with its request (by correlation id) and
//! decodes it. For every partition acknowledged without error it finds the segment
//! write that put the acknowledged batch in the `.log` and requires an `fdatasync` (or
//! `fsync`) of that file that started after the write returned and returned before the
//! first byte of the response was handed to the socket. A duplicate (a retry answered
//! with the offsets of a batch written before a crash) must have been written by an
//! earlier broker start (possibly by a `writev` the SIGKILL cut short: strace then saw
//! no return) and fsynced by this one before the response.
//!
//! This works on the syscalls themselves, so it holds whatever the code paths in
//! between: the order is the order strace saw the calls enter and return. Included only
//! by `tests/broker_crash_recovery.rs` (it needs `kafka-protocol`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ProduceResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;

/// The syscalls traced: socket data both ways (tokio reads with `recv` and writes with
/// `send`, which are `recvfrom`/`sendto`; fetches send file ranges with `sendfile`),
/// segment appends (`writev`) and the flushes.
pub const TRACED: &str = "trace=recvfrom,sendto,writev,sendfile,fdatasync,fsync";

/// Arguments for `BrokerBuilder::wrapper("sh", ...)`: strace writing `strace.<pid>` in
/// `dir`, a new file for every start of the broker.
pub fn wrapper_args(dir: &Path) -> Vec<String> {
    let script = format!(
        "exec strace -f --seccomp-bpf -qq -y -xx -s 16777216 -e {TRACED} -e signal=none \
         -o \"$0/strace.$$\" \"$@\""
    );
    vec!["-c".into(), script, dir.to_string_lossy().into_owned()]
}

/// The trace files in `dir`, oldest first (by the pid in their name, then by mtime).
pub fn trace_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("strace."))
        })
        .map(|p| {
            let t = fs::metadata(&p)
                .and_then(|m| m.created().or_else(|_| m.modified()))
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// One completed syscall: `entry`/`exit` are the trace lines where it entered and
/// returned (equal unless another thread's call came in between).
#[derive(Debug)]
struct Call {
    name: String,
    /// The first argument's fd annotation: a path, or `socket:[inode]`.
    fd: Option<String>,
    strings: Vec<Vec<u8>>,
    truncated: bool,
    /// `None`: the broker was killed before the call returned (`= ?`).
    ret: Option<i64>,
    entry: usize,
    exit: usize,
}

/// A `writev` to a segment: the batches it wrote as (base offset, last offset).
#[derive(Debug)]
struct LogWrite {
    path: String,
    batches: Vec<(u64, u64)>,
    exit: usize,
    /// False for a write cut short by the SIGKILL: it may have reached the file (and
    /// a retry may find it there after recovery), but nothing may rely on it in the
    /// start that made it.
    returned: bool,
}

#[derive(Debug)]
struct Sync {
    path: String,
    entry: usize,
    exit: usize,
}

#[derive(Debug, Default)]
struct Conn {
    inbound: Vec<u8>,
    outbound: Vec<u8>,
    /// (offset in `outbound`, entry line) of each write.
    writes: Vec<(usize, usize)>,
}

/// What [`check`] proved.
#[derive(Debug, Default)]
pub struct Proof {
    pub trace_files: usize,
    pub produce_responses: usize,
    /// Partition acknowledgements whose batch was written and then fsynced before the
    /// response was sent.
    pub fsynced_after_write: usize,
    /// Partition acknowledgements of retried batches written by an earlier start,
    /// fsynced by this start before the response.
    pub duplicates_fsynced: usize,
    /// Socket sends the SIGKILL interrupted before strace saw them return, counted as
    /// sent (their acknowledgements proven like any other).
    pub interrupted_sends: usize,
    /// Per partition, the offset ranges (first, last) of the proven acknowledgements.
    pub proven: BTreeMap<i32, Vec<(u64, u64)>>,
}

impl Proof {
    /// Whether `offset` of `partition` lies in a proven acknowledgement.
    pub fn covers(&self, partition: i32, offset: u64) -> bool {
        self.proven.get(&partition).is_some_and(|ranges| {
            // Sorted by [`check`]; batches of one partition do not overlap.
            let i = ranges.partition_point(|&(first, _)| first <= offset);
            i > 0 && ranges[i - 1].1 >= offset
        })
    }
}

/// Checks every Produce acknowledgement for `topic` in the trace files (in start
/// order). Errors name the first violation.
pub fn check(files: &[PathBuf], topic: &str) -> Result<Proof, String> {
    let mut proof = Proof {
        trace_files: files.len(),
        ..Proof::default()
    };
    // (partition, base offset) -> last offset of every batch written by earlier starts.
    let mut earlier: HashMap<(i32, u64), u64> = HashMap::new();
    for file in files {
        let text = fs::read_to_string(file).map_err(|e| format!("read {}: {e}", file.display()))?;
        let what = file.display().to_string();
        let calls = parse_calls(&text);
        let (writes, syncs, conns, interrupted) = classify(&calls, &what)?;
        proof.interrupted_sends += interrupted;
        let partition_of = |path: &str| -> Option<i32> {
            let dir = Path::new(path).parent()?.file_name()?.to_str()?;
            dir.strip_prefix(topic)?.strip_prefix('-')?.parse().ok()
        };
        // Indexes: writes by (partition, batch base offset), in trace order; each
        // segment's syncs as (entry, exit), in trace order (one at a time: appends and
        // their fsyncs hold the partition lock); each partition's first `.log` sync.
        let mut by_base: HashMap<(i32, u64), Vec<&LogWrite>> = HashMap::new();
        for w in writes.iter().filter(|w| w.returned) {
            if let Some(p) = partition_of(&w.path) {
                for b in &w.batches {
                    by_base.entry((p, b.0)).or_default().push(w);
                }
            }
        }
        let mut syncs_of: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        let mut first_sync: HashMap<i32, usize> = HashMap::new();
        for s in &syncs {
            syncs_of.entry(&s.path).or_default().push((s.entry, s.exit));
            if let Some(p) = partition_of(&s.path).filter(|_| s.path.ends_with(".log")) {
                let first = first_sync.entry(p).or_insert(s.exit);
                *first = (*first).min(s.exit);
            }
        }
        for (key, conn) in &conns {
            for ack in produce_acks(conn, topic).map_err(|e| format!("{what} {key}: {e}"))? {
                proof.produce_responses += usize::from(ack.first_of_response);
                let Some(p) = ack.partition else { continue };
                let write = by_base
                    .get(&(p, ack.base_offset))
                    .and_then(|ws| ws.iter().rfind(|w| w.exit < ack.line));
                if let Some(w) = write {
                    // The first sync of the file that started after the write returned
                    // must have returned before the response was sent.
                    let synced = syncs_of.get(w.path.as_str()).is_some_and(|list| {
                        let i = list.partition_point(|&(entry, _)| entry <= w.exit);
                        list.get(i).is_some_and(|&(_, exit)| exit < ack.line)
                    });
                    if !synced {
                        return Err(format!(
                            "{what}: partition {p} base offset {} was acknowledged (response \
                             written at trace line {}) without an fsync of {} between its \
                             write (line {}) and the response",
                            ack.base_offset,
                            ack.line + 1,
                            w.path,
                            w.exit + 1
                        ));
                    }
                    proof.fsynced_after_write += 1;
                    for &(a, b) in &w.batches {
                        proof.proven.entry(p).or_default().push((a, b));
                    }
                } else {
                    let Some(&last) = earlier.get(&(p, ack.base_offset)) else {
                        return Err(format!(
                            "{what}: partition {p} base offset {} was acknowledged (line {}) \
                             but no start of the broker wrote a batch there",
                            ack.base_offset,
                            ack.line + 1
                        ));
                    };
                    if first_sync.get(&p).is_none_or(|&exit| exit >= ack.line) {
                        return Err(format!(
                            "{what}: the retried batch at partition {p} base offset {} \
                             (written by an earlier start) was acknowledged (line {}) \
                             before this start fsynced the partition",
                            ack.base_offset,
                            ack.line + 1
                        ));
                    }
                    proof.duplicates_fsynced += 1;
                    proof
                        .proven
                        .entry(p)
                        .or_default()
                        .push((ack.base_offset, last));
                }
            }
        }
        for w in &writes {
            if let Some(p) = partition_of(&w.path) {
                for &(a, b) in &w.batches {
                    earlier.insert((p, a), b);
                }
            }
        }
    }
    for ranges in proof.proven.values_mut() {
        ranges.sort_unstable();
        ranges.dedup();
    }
    Ok(proof)
}

/// One partition of a Produce response, acknowledged without error.
struct Ack {
    /// Set on the first partition of each response (for counting responses).
    first_of_response: bool,
    partition: Option<i32>,
    base_offset: u64,
    /// Entry line of the write that handed the response's first byte to the socket.
    line: usize,
}

/// The error-free partition acknowledgements of the Produce responses on one
/// connection. An incomplete last frame (the broker was killed while writing or
/// reading it) is ignored: no client received it whole.
fn produce_acks(conn: &Conn, topic: &str) -> Result<Vec<Ack>, String> {
    let mut requests: HashMap<i32, (i16, i16)> = HashMap::new();
    for (_, body) in frames(&conn.inbound)? {
        if body.len() < 8 {
            return Err(format!("request frame of {} bytes", body.len()));
        }
        let api = i16::from_be_bytes([body[0], body[1]]);
        let version = i16::from_be_bytes([body[2], body[3]]);
        let correlation = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        requests.insert(correlation, (api, version));
    }
    let mut acks = Vec::new();
    for (start, body) in frames(&conn.outbound)? {
        if body.len() < 4 {
            return Err(format!("response frame of {} bytes", body.len()));
        }
        let correlation = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let Some(&(api, version)) = requests.get(&correlation) else {
            return Err(format!(
                "a response to unknown correlation id {correlation}"
            ));
        };
        if api != ApiKey::Produce as i16 {
            continue;
        }
        let line = conn
            .writes
            .iter()
            .rfind(|(offset, _)| *offset <= start)
            .map(|(_, line)| *line)
            .ok_or("a response before any write")?;
        let mut buf = Bytes::copy_from_slice(body);
        ResponseHeader::decode(&mut buf, ApiKey::Produce.response_header_version(version))
            .map_err(|e| format!("Produce v{version} response header: {e:#}"))?;
        let response = ProduceResponse::decode(&mut buf, version)
            .map_err(|e| format!("Produce v{version} response: {e:#}"))?;
        let mut first = true;
        for t in &response.responses {
            let name: &str = &t.name;
            if version < 13 && name != topic {
                return Err(format!("a Produce response for topic {name:?}"));
            }
            for p in &t.partition_responses {
                let ok = p.error_code == 0 && p.base_offset >= 0;
                acks.push(Ack {
                    first_of_response: first,
                    partition: ok.then_some(p.index),
                    base_offset: p.base_offset.max(0) as u64,
                    line,
                });
                first = false;
            }
        }
    }
    Ok(acks)
}

/// Complete size-prefixed frames of a stream: (offset of the size field, body).
fn frames(stream: &[u8]) -> Result<Vec<(usize, &[u8])>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= stream.len() {
        let size = i32::from_be_bytes([
            stream[pos],
            stream[pos + 1],
            stream[pos + 2],
            stream[pos + 3],
        ]);
        let size = usize::try_from(size).map_err(|_| format!("negative frame size at {pos}"))?;
        if pos + 4 + size > stream.len() {
            break;
        }
        out.push((pos, &stream[pos + 4..pos + 4 + size]));
        pos += 4 + size;
    }
    Ok(out)
}

/// Segment writes, syncs, connections, and how many sends were interrupted.
type Classified = (Vec<LogWrite>, Vec<Sync>, BTreeMap<String, Conn>, usize);

fn classify(calls: &[Call], what: &str) -> Result<Classified, String> {
    let mut writes = Vec::new();
    let mut syncs = Vec::new();
    let mut conns: BTreeMap<String, Conn> = BTreeMap::new();
    let mut interrupted = 0;
    for c in calls {
        let Some(fd) = &c.fd else { continue };
        let socket = !fd.starts_with('/');
        if !socket && c.name == "writev" && fd.ends_with(".log") {
            writes.push(log_write(c, fd, what)?);
            continue;
        }
        // A send the SIGKILL interrupted (`= ?`) may still have completed in the
        // kernel: ptrace reports a call's return only at its exit stop, which a kill
        // can pre-empt after the data reached the client. Such a send counts as sent
        // in full, at its entry line (nothing follows it on a killed broker), so its
        // responses must be proven too. Its size is known only for `sendto`/`writev`.
        let unconfirmed_send = c.ret.is_none()
            && socket
            && matches!(c.name.as_str(), "sendto" | "writev")
            && !c.truncated;
        let ret = if unconfirmed_send {
            interrupted += 1;
            c.strings.iter().map(Vec::len).sum()
        } else {
            let Some(ret) = c.ret.and_then(|r| usize::try_from(r).ok()) else {
                continue;
            };
            ret
        };
        if socket
            && matches!(
                c.name.as_str(),
                "recvfrom" | "sendto" | "writev" | "sendfile"
            )
        {
            if c.truncated {
                return Err(format!("{what}: truncated data at line {}", c.entry + 1));
            }
            let conn = conns.entry(fd.clone()).or_default();
            if c.name == "recvfrom" {
                let data: Vec<u8> = c.strings.concat();
                conn.inbound.extend_from_slice(&data[..ret.min(data.len())]);
                continue;
            }
            // What was sent: the bytes (a partial write sends a prefix), or for
            // sendfile as many placeholder bytes (file data, inside Fetch frames).
            let data = if c.name == "sendfile" {
                vec![0u8; ret]
            } else {
                let d = c.strings.concat();
                d[..ret.min(d.len())].to_vec()
            };
            conn.writes.push((conn.outbound.len(), c.entry));
            conn.outbound.extend_from_slice(&data);
        } else if !socket && matches!(c.name.as_str(), "fdatasync" | "fsync") && ret == 0 {
            syncs.push(Sync {
                path: fd.clone(),
                entry: c.entry,
                exit: c.exit,
            });
        }
    }
    Ok((writes, syncs, conns, interrupted))
}

/// A `writev` appending batches to a segment: each batch is two parts, the stored
/// prefix (base offset, length, leader epoch) and the rest of the batch from its magic
/// byte: magic (1), CRC (4), attributes (2), last offset delta (4).
fn log_write(c: &Call, path: &str, what: &str) -> Result<LogWrite, String> {
    let total: usize = c.strings.iter().map(Vec::len).sum();
    let complete = c.ret.is_none_or(|r| usize::try_from(r) == Ok(total));
    if !complete || c.strings.len() % 2 != 0 || c.truncated {
        return Err(format!(
            "{what}: unexpected segment writev at line {} ({:?} of {total} bytes, {} parts)",
            c.exit + 1,
            c.ret,
            c.strings.len()
        ));
    }
    let mut batches = Vec::new();
    for pair in c.strings.chunks(2) {
        let (prefix, rest) = (&pair[0], &pair[1]);
        if prefix.len() != 16 || rest.len() < 11 {
            return Err(format!(
                "{what}: unexpected batch layout at line {}",
                c.exit + 1
            ));
        }
        let base = u64::from_be_bytes(prefix[..8].try_into().expect("8 bytes"));
        let delta = i32::from_be_bytes(rest[7..11].try_into().expect("4 bytes"));
        batches.push((base, base + delta.max(0) as u64));
    }
    Ok(LogWrite {
        path: path.to_string(),
        batches,
        exit: c.exit,
        returned: c.ret.is_some(),
    })
}

/// The calls of one trace file, unfinished/resumed halves joined per thread.
fn parse_calls(text: &str) -> Vec<Call> {
    let mut pending: HashMap<&str, (String, usize)> = HashMap::new();
    let mut calls = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(tid, (head.to_string(), n));
            continue;
        }
        let (full, entry) = match rest.strip_prefix("<... ") {
            Some(tail) => {
                let Some((_, after)) = tail.split_once(" resumed>") else {
                    continue;
                };
                let Some((head, entry)) = pending.remove(tid) else {
                    continue;
                };
                (head + after, entry)
            }
            None => (rest.to_string(), n),
        };
        if let Some(call) = parse_call(&full, entry, n) {
            calls.push(call);
        }
    }
    // Calls that never returned: the broker was killed inside them.
    let last = text.lines().count();
    for (head, entry) in pending.into_values() {
        if let Some(call) = parse_call(&format!("{head}) = ?"), entry, last) {
            calls.push(call);
        }
    }
    calls
}

fn parse_call(full: &str, entry: usize, exit: usize) -> Option<Call> {
    let open = full.find('(')?;
    let name = &full[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    // `...) = 5`, the result often padded to a column: `...)       = 5`. With `-xx`
    // data and paths are all hex, so " = " occurs only there.
    let eq = full.rfind(" = ")?;
    let ret = match full[eq + 3..].split_whitespace().next()? {
        "?" => None,
        r => Some(r.parse().ok()?),
    };
    let args = full[..eq].trim_end().strip_suffix(')')?.get(open + 1..)?;
    let fd = args
        .split_once('<')
        .filter(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(annotation, _)| String::from_utf8_lossy(&unescape(annotation)).into_owned());
    let (strings, truncated) = quoted_strings(args);
    Some(Call {
        name: name.to_string(),
        fd,
        strings,
        truncated,
        ret,
        entry,
        exit,
    })
}

/// The quoted strings of an argument list, unescaped, and whether any was cut short
/// (strace's `"..."...`).
fn quoted_strings(args: &str) -> (Vec<Vec<u8>>, bool) {
    let b = args.as_bytes();
    let mut out = Vec::new();
    let mut truncated = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j] != b'"' {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        let end = j.min(b.len());
        out.push(unescape(&args[start..end]));
        i = end + 1;
        if args[i.min(args.len())..].starts_with("...") {
            truncated = true;
        }
    }
    (out, truncated)
}

/// strace's C-style escapes (`\xHH`, octal, `\n` and the like) to bytes.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4 + 1);
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'x' if i + 3 < b.len() => {
                match (hex(b[i + 2]), hex(b[i + 3])) {
                    (Some(h), Some(l)) => out.push((h << 4) | l),
                    _ => out.extend_from_slice(&b[i..i + 4]),
                }
                i += 4;
            }
            d @ b'0'..=b'7' => {
                let mut v = u32::from(d - b'0');
                let mut k = i + 2;
                while k < b.len() && k < i + 4 && (b'0'..=b'7').contains(&b[k]) {
                    v = v * 8 + u32::from(b[k] - b'0');
                    k += 1;
                }
                out.push(v as u8);
                i = k;
            }
            c => {
                out.push(match c {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'v' => 0x0b,
                    b'f' => 0x0c,
                    other => other,
                });
                i += 2;
            }
        }
    }
    out
}

/// Lowercase `\xHH` escapes of every byte, as `strace -xx` prints data.
pub fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

#[cfg(test)]
#[path = "fsync_trace_tests.rs"]
mod tests;
