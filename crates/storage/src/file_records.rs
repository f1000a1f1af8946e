//! A run of whole record batches inside one segment file, named by position and length
//! rather than read into memory: Kafka's `FileRecords` slice.
//!
//! Fetch answers with these so the bytes can go from the page cache to the socket with
//! `sendfile`, never through the broker's memory. The slice holds the segment's open
//! file, so it stays readable after the log's lock is released, after a segment roll and
//! even after retention deletes the segment (an unlinked file lives while it is open).
//! What it does not survive is the file being cut shorter: only recovery at startup and
//! `LogSegment::truncate_to` do that, and a sender must treat a short file as an error.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// Bytes `position..position + len` of a segment's `.log`: whole batches, all below the
/// high watermark when the slice was taken.
#[derive(Debug, Clone)]
pub struct FileRecords {
    file: Arc<File>,
    position: u64,
    len: usize,
}

impl FileRecords {
    pub(crate) fn new(file: Arc<File>, position: u64, len: usize) -> Self {
        FileRecords {
            file,
            position,
            len,
        }
    }

    /// The open segment file (for `sendfile`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the slice starts in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the batches into memory (one `pread`), for callers that parse them or whose
    /// slice is too small for `sendfile` to pay off.
    pub fn read(&self) -> std::io::Result<Bytes> {
        let mut buf = vec![0u8; self.len];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }
}
