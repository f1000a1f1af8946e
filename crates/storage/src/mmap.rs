//! Memory-mapped files for the sparse indexes: the only module with `unsafe`.
//!
//! Mapping a file is unsafe because another process (or this one) could truncate it
//! while the map is alive, turning reads into SIGBUS. Index files are private to one
//! [`crate::Log`], owned by one [`MappedFile`], and only resized here, after the map is
//! dropped.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
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
        self.remap()
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
