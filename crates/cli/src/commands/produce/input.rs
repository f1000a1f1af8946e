//! Input for `strom produce`: stdin or a file, read in big chunks on a thread of its own
//! and cut into records, one per line.
//!
//! Each chunk ends at a line boundary (except the last one when the input does not end
//! with a newline), so a record never spans two chunks and keys and values are
//! zero-copy slices of the chunk's `Bytes`: producing a record costs two reference
//! count increments, not an allocation.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::thread;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// How much room a read gets: the size of a chunk from a file.
const CHUNK: usize = 1 << 20;
/// Below this much room left, the buffer gets a new chunk's worth.
const MIN_READ: usize = 64 << 10;
/// Chunks read ahead of the producer: enough to cover a slow response, bounded so a
/// slow broker holds back reading instead of filling memory.
const READ_AHEAD: usize = 8;

/// Where records come from.
#[derive(Debug, Clone)]
pub enum Source {
    Stdin,
    File(PathBuf),
}

/// The reading thread's output: chunks of whole lines, then the end of the channel.
pub type Chunks = mpsc::Receiver<io::Result<Bytes>>;

/// Opens `source` (so a missing file fails before anything connects) and starts the
/// thread that reads it. Also returns the input's size when known, for the progress bar.
pub fn spawn(source: &Source) -> anyhow::Result<(Chunks, Option<u64>)> {
    let (reader, size): (Box<dyn Read + Send>, Option<u64>) = match source {
        Source::Stdin => (Box::new(io::stdin()), None),
        Source::File(path) => {
            let file = File::open(path).with_context(|| format!("cannot open {}", show(path)))?;
            let size = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            (Box::new(file), size)
        }
    };
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    thread::Builder::new()
        .name("strom-produce-input".into())
        .spawn(move || read_chunks(reader, &tx))
        .context("cannot start the input thread")?;
    Ok((rx, size))
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

/// Reads `reader` to the end, sending chunks that end after a newline. A short read
/// (a pipe or terminal with nothing more for now) hands on what is there, so
/// interactive input is produced line by line.
fn read_chunks(mut reader: Box<dyn Read + Send>, tx: &mpsc::Sender<io::Result<Bytes>>) {
    // `buf[..filled]` is input not yet handed on; `buf[filled..]` is zeroed room to read
    // into. `Read` has no stable way to fill uninitialised memory, so the room is
    // zeroed, but only once: a pipe returns 64 KiB per read, and zeroing a whole chunk
    // for each would cost more than the reading.
    let mut buf = BytesMut::new();
    let mut filled = 0;
    loop {
        if buf.len() - filled < MIN_READ {
            buf.truncate(filled);
            buf.reserve(CHUNK);
            buf.resize(filled + CHUNK, 0);
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        if n == 0 {
            if filled > 0 {
                let _ = tx.blocking_send(Ok(buf.split_to(filled).freeze()));
            }
            return;
        }
        let start = filled;
        filled += n;
        // Hand on everything up to the last newline; a line longer than a chunk keeps
        // growing the buffer until its newline arrives.
        if let Some(last) = rfind_byte(b'\n', &buf[start..filled]) {
            let chunk = buf.split_to(start + last + 1).freeze();
            filled -= chunk.len();
            if tx.blocking_send(Ok(chunk)).is_err() {
                // The producer stopped (an error): nothing more to read for.
                return;
            }
        }
    }
}

/// The next line of `data` from `pos`: the line's end (without `\n`, and without a `\r`
/// before that `\n`) and where the following line starts. `None` at the end.
#[inline]
pub fn next_line(data: &[u8], pos: usize) -> Option<(usize, usize)> {
    if pos >= data.len() {
        return None;
    }
    match find_byte(b'\n', &data[pos..]) {
        Some(i) => {
            let newline = pos + i;
            let end = if newline > pos && data[newline - 1] == b'\r' {
                newline - 1
            } else {
                newline
            };
            Some((end, newline + 1))
        }
        // The input's last line without a newline: kept whole, `\r` included, since
        // only a line ending is stripped.
        None => Some((data.len(), data.len())),
    }
}

/// A separator between key and value.
#[derive(Debug, Clone)]
pub struct KeySeparator(Vec<u8>);

impl KeySeparator {
    pub fn new(separator: &str) -> Option<KeySeparator> {
        (!separator.is_empty()).then(|| KeySeparator(separator.as_bytes().to_vec()))
    }

    /// Where the separator first occurs in `line`, and its length.
    #[inline]
    pub fn find(&self, line: &[u8]) -> Option<(usize, usize)> {
        let at = match self.0.as_slice() {
            [byte] => find_byte(*byte, line),
            sep => line.windows(sep.len()).position(|w| w == sep),
        };
        at.map(|at| (at, self.0.len()))
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `word` is zero (the classic bit trick; exact, no false hits).
#[inline]
fn has_zero(word: u64) -> bool {
    word.wrapping_sub(LO) & !word & HI != 0
}

/// The first index of `needle` in `haystack`, eight bytes at a time: a newline search
/// runs over every input byte, and a byte loop is several times slower.
#[inline]
pub fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    let pattern = LO * u64::from(needle);
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        if has_zero(u64::from_le_bytes(bytes) ^ pattern) {
            break;
        }
        offset += 8;
    }
    haystack[offset..]
        .iter()
        .position(|&b| b == needle)
        .map(|i| offset + i)
}

/// The last index of `needle` in `haystack`.
fn rfind_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().rposition(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(data: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some((end, next)) = next_line(data, pos) {
            out.push(&data[pos..end]);
            pos = next;
        }
        out
    }

    #[test]
    fn lines_strip_newline_and_carriage_return() {
        assert_eq!(lines(b"a\nb\r\n\nc"), [&b"a"[..], b"b", b"", b"c"]);
        assert_eq!(lines(b"a\n"), [&b"a"[..]]);
        assert_eq!(lines(b"\r\n"), [&b""[..]]);
        assert_eq!(lines(b"x\r"), [&b"x\r"[..]], "no newline: nothing stripped");
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"\n\n"), [&b""[..], b""]);
    }

    #[test]
    fn find_byte_agrees_with_a_byte_loop() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        for needle in [0u8, 1, 10, 58, 128, 200, 255] {
            for start in 0..40 {
                let hay = &data[start..];
                assert_eq!(
                    find_byte(needle, hay),
                    hay.iter().position(|&b| b == needle),
                    "needle {needle} from {start}"
                );
            }
        }
        assert_eq!(find_byte(b'\n', b""), None);
        assert_eq!(find_byte(0x80, &[0x7f, 0x00, 0x81, 0x80]), Some(3));
    }

    #[test]
    fn key_separator_splits_on_the_first_occurrence() {
        let colon = KeySeparator::new(":").unwrap();
        assert_eq!(colon.find(b"k:v:w"), Some((1, 1)));
        assert_eq!(colon.find(b"nokey"), None);
        assert_eq!(colon.find(b":v"), Some((0, 1)));
        let arrow = KeySeparator::new("=>").unwrap();
        assert_eq!(arrow.find(b"a=b=>c=>d"), Some((3, 2)));
        assert_eq!(arrow.find(b"="), None);
        assert!(KeySeparator::new("").is_none());
    }

    /// A reader that returns at most `step` bytes per read, as a pipe does.
    struct Trickle(io::Cursor<Vec<u8>>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn short_reads_and_long_lines() {
        let mut input = b"short\n".repeat(1000);
        input.extend(std::iter::repeat_n(b'L', 3 * CHUNK + 5));
        input.extend_from_slice(b"\nend\n");
        for step in [7, 64 << 10, 3 * CHUNK] {
            let (tx, mut rx) = mpsc::channel(100_000);
            let reader: Box<dyn Read + Send> =
                Box::new(Trickle(io::Cursor::new(input.clone()), step));
            let handle = thread::spawn(move || read_chunks(reader, &tx));
            let mut joined = Vec::new();
            while let Some(chunk) = rx.blocking_recv() {
                let chunk = chunk.unwrap();
                assert_eq!(chunk.last(), Some(&b'\n'), "step {step}");
                joined.extend_from_slice(&chunk);
            }
            handle.join().unwrap();
            assert!(joined == input, "step {step}");
        }
    }

    #[test]
    fn chunks_end_at_line_boundaries() {
        let mut input = Vec::new();
        for i in 0..100_000 {
            input.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        input.extend_from_slice(b"tail without newline");
        let (tx, mut rx) = mpsc::channel(1000);
        let reader: Box<dyn Read + Send> = Box::new(io::Cursor::new(input.clone()));
        let handle = thread::spawn(move || read_chunks(reader, &tx));
        let mut joined = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = rx.blocking_recv() {
            let chunk = chunk.unwrap();
            chunks += 1;
            if joined.len() + chunk.len() < input.len() {
                assert_eq!(chunk.last(), Some(&b'\n'));
            }
            joined.extend_from_slice(&chunk);
        }
        handle.join().unwrap();
        assert_eq!(joined, input);
        assert!(chunks > 1);
    }
}
