//! Memory-mapped files for the sparse indexes: the only module with `unsafe`.
//!
//! Mapping a file is unsafe because another process (or this one) could truncate it
//! while the map is alive, turning reads into SIGBUS. Index files are private to one
//! [`crate::Log`], owned by one [`MappedFile`], and only resized here, after the map is
//! dropped.
//!
//! A preallocated index is a sparse file: its length is set, its blocks are not. Writing
//! through the map to a page with no block behind it makes the kernel allocate one in
//! the page fault, and when the filesystem is full that fault is a SIGBUS, which kills
//! the broker. [`MappedFile::allocate_to`] allocates the blocks ahead of the writes
//! (with `fallocate`), so a full disk is an `ENOSPC` error instead.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use crate::error::{IoContext, Result};

/// A read-write file mapped whole into memory.
#[derive(Debug)]
pub(crate) struct MappedFile {
    path: PathBuf,
    file: File,
    /// `None` while the file is empty: a zero-length map is not allowed.
    map: Option<MmapMut>,
    len: u64,
    /// Bytes `..allocated` have blocks on disk (allocated by [`Self::allocate_to`]), so
    /// writing them through the map cannot fault. 0 until the first allocation: what
    /// the file held when opened is not known to be allocated.
    allocated: u64,
}

/// Blocks are allocated this many bytes at a time: one `fallocate` per 8192 offset
/// index entries, and little space held beyond what the index uses.
const ALLOCATION_CHUNK: u64 = 64 * 1024;
/// The smallest unit a filesystem allocates that matters here (Linux's page size).
const PAGE: u64 = 4096;

fn is_out_of_space(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

impl MappedFile {
    /// Opens (creating if missing) the file at `path` and maps it. The file keeps its length.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .ctx("opening index", path)?;
        let len = file.metadata().ctx("reading metadata of", path)?.len();
        let mut mapped = MappedFile {
            path: path.to_path_buf(),
            file,
            map: None,
            len,
            allocated: 0,
        };
        mapped.remap()?;
        Ok(mapped)
    }

    fn remap(&mut self) -> Result<()> {
        self.map = None;
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: the file is owned by this struct and only resized by `set_len`, which
        // drops the map first; nothing else in the process maps or truncates it.
        let map = unsafe {
            MmapOptions::new()
                .len(self.len as usize)
                .map_mut(&self.file)
        }
        .ctx("mapping", &self.path)?;
        // Index access is a binary search plus appends at the end: without this hint the
        // first touch of a fresh preallocated index makes the kernel read ahead (and
        // zero-fill) megabytes, several milliseconds per new segment.
        map.advise(memmap2::Advice::Random)
            .ctx("madvise of", &self.path)?;
        self.map = Some(map);
        Ok(())
    }

    /// Changes the file's length (preallocating or trimming) and remaps it.
    pub fn set_len(&mut self, len: u64) -> Result<()> {
        if len == self.len {
            return Ok(());
        }
        self.map = None;
        self.file.set_len(len).ctx("resizing", &self.path)?;
        self.len = len;
        self.allocated = self.allocated.min(len);
        self.remap()
    }

    /// Makes sure bytes `..end` (at most the file's length) have blocks on disk, so that
    /// writing them through the map cannot raise SIGBUS on a full disk. Allocates in
    /// [`ALLOCATION_CHUNK`]s, or, when a whole chunk does not fit, just the pages
    /// needed (rebuilding an index on a full disk needs no more than it had). `in_use`
    /// is how many leading bytes hold data: where `fallocate` is not supported the
    /// range is allocated by writing zeros, from `in_use` on only. Fails with the
    /// filesystem's error (ENOSPC) and changes nothing the map shows.
    pub fn allocate_to(&mut self, end: u64, in_use: u64) -> Result<()> {
        let end = end.min(self.len);
        if end <= self.allocated {
            return Ok(());
        }
        let round_up = |unit: u64| end.div_ceil(unit).saturating_mul(unit).min(self.len);
        let (chunk, pages) = (round_up(ALLOCATION_CHUNK), round_up(PAGE));
        match self.allocate_range(chunk, in_use) {
            Err(e) if pages < chunk && is_out_of_space(&e) => self.allocate_range(pages, in_use),
            other => other,
        }
        .ctx("allocating", &self.path)
    }

    /// Allocates bytes `allocated..to`.
    fn allocate_range(&mut self, to: u64, in_use: u64) -> std::io::Result<()> {
        let from = self.allocated;
        match rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::empty(),
            from,
            to - from,
        ) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
                // Writing the bytes allocates them as well (and reserves them, on
                // filesystems with delayed allocation). Bytes in use keep their data.
                let start = from.max(in_use.min(to));
                let zeros = vec![0u8; (to - start) as usize];
                self.file.write_all_at(&zeros, start)?;
            }
            Err(e) => return Err(e.into()),
        }
        self.allocated = to;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn as_slice(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.map.as_deref_mut().unwrap_or(&mut [])
    }

    /// Writes dirty pages and the file's metadata to disk.
    pub fn sync(&self) -> Result<()> {
        if let Some(map) = &self.map {
            map.flush().ctx("msync of", &self.path)?;
        }
        self.file.sync_all().ctx("fsync of", &self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
