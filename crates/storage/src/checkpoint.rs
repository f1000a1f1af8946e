//! Strom's own per-partition files beside the segments.
//!
//! `partition.checkpoint` (26 bytes, big-endian, replaced atomically by rename):
//! ```text
//!  0  4  magic "SPCK"
//!  4  2  version (1)
//!  6  8  log start offset (advanced by retention and DeleteRecords)
//! 14  8  recovery point: every offset below it is fsynced, so recovery scans only
//!        the segments from the one holding it
//! 22  4  CRC-32 (IEEE, crc32fast) of bytes 0..22
//! ```
//! A missing or corrupt checkpoint is not fatal: the log start falls back to the first
//! segment's base offset and the recovery point to 0 (scan everything).
//!
//! `.strom-clean-shutdown` (empty): written last by a clean close and removed first
//! when the log is opened, so its presence means no write happened after the close.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

pub const CHECKPOINT_FILE: &str = "partition.checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = ".strom-clean-shutdown";
const MAGIC: &[u8; 4] = b"SPCK";
const VERSION: u16 = 1;
const LEN: usize = 26;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionCheckpoint {
    pub log_start_offset: u64,
    pub recovery_point: u64,
}

impl PartitionCheckpoint {
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..4].copy_from_slice(MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_be_bytes());
        b[6..14].copy_from_slice(&self.log_start_offset.to_be_bytes());
        b[14..22].copy_from_slice(&self.recovery_point.to_be_bytes());
        let crc = crc32fast::hash(&b[0..22]);
        b[22..26].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes a checkpoint, or says why it is unusable.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() != LEN {
            return Err(format!("{} bytes, expected {LEN}", b.len()));
        }
        if &b[0..4] != MAGIC {
            return Err("bad magic".into());
        }
        let crc = u32::from_be_bytes([b[22], b[23], b[24], b[25]]);
        if crc32fast::hash(&b[0..22]) != crc {
            return Err("CRC mismatch".into());
        }
        let version = u16::from_be_bytes([b[4], b[5]]);
        if version != VERSION {
            return Err(format!("unknown version {version}"));
        }
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(a)
        };
        Ok(PartitionCheckpoint {
            log_start_offset: u64_at(6),
            recovery_point: u64_at(14),
        })
    }

    /// Reads the checkpoint in `dir`; `Ok(None)` if it is missing or unusable (logged).
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CHECKPOINT_FILE);
        match fs::read(&path) {
            Ok(bytes) => match Self::decode(&bytes) {
                Ok(c) => Ok(Some(c)),
                Err(why) => {
                    tracing::warn!(path = %path.display(), %why, "ignoring corrupt partition checkpoint");
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("reading", &path),
        }
    }

    /// Replaces the checkpoint durably: write a temporary file, fsync, rename, fsync dir.
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.stage(dir)?.commit()
    }

    /// Writes the new checkpoint to a temporary file beside the real one. On failure
    /// (a full disk) the temporary file is removed and nothing else changed.
    pub fn stage(&self, dir: &Path) -> Result<StagedCheckpoint> {
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let written = File::create(&tmp)
            .ctx("creating", &tmp)
            .and_then(|mut f| f.write_all(&self.encode()).ctx("writing", &tmp).map(|()| f));
        match written {
            Ok(file) => Ok(StagedCheckpoint {
                dir: dir.to_path_buf(),
                tmp,
                file,
            }),
            Err(e) => {
                // Frees what was written; the next open would remove it anyway.
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// A checkpoint written to its temporary file, not yet fsynced or in place.
#[derive(Debug)]
pub struct StagedCheckpoint {
    dir: PathBuf,
    tmp: PathBuf,
    file: File,
}

impl StagedCheckpoint {
    /// fsyncs the temporary file, renames it over the checkpoint and fsyncs the
    /// directory.
    pub fn commit(self) -> Result<()> {
        self.file.sync_all().ctx("fsync of", &self.tmp)?;
        let path = self.dir.join(CHECKPOINT_FILE);
        fs::rename(&self.tmp, &path).ctx("renaming checkpoint to", &path)?;
        sync_dir(&self.dir)
    }
}

/// fsyncs a directory so created, renamed and deleted entries are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync of directory", dir)
}

/// Removes the clean-shutdown marker; returns whether it was there.
pub fn take_clean_shutdown_marker(dir: &Path) -> Result<bool> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    match fs::remove_file(&path) {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).ctx("removing", &path),
    }
}

pub fn write_clean_shutdown_marker(dir: &Path) -> Result<()> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    File::create(&path)
        .and_then(|f| f.sync_all())
        .ctx("writing", &path)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let c = PartitionCheckpoint {
            log_start_offset: 7,
            recovery_point: 1234,
        };
        let b = c.encode();
        assert_eq!(PartitionCheckpoint::decode(&b), Ok(c));
        for i in 0..b.len() {
            let mut d = b;
            d[i] ^= 0x40;
            assert!(PartitionCheckpoint::decode(&d).is_err(), "flip at {i}");
        }
        assert!(PartitionCheckpoint::decode(&b[..20]).is_err());
    }

    #[test]
    fn write_then_read_and_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(PartitionCheckpoint::read(dir.path()).expect("read"), None);
        let c = PartitionCheckpoint {
            log_start_offset: 1,
            recovery_point: 2,
        };
        c.write(dir.path()).expect("write");
        assert_eq!(
            PartitionCheckpoint::read(dir.path()).expect("read"),
            Some(c)
        );
        fs::write(dir.path().join(CHECKPOINT_FILE), b"garbage").expect("garbage");
        assert_eq!(PartitionCheckpoint::read(dir.path()).expect("read"), None);
        assert!(!take_clean_shutdown_marker(dir.path()).expect("take"));
        write_clean_shutdown_marker(dir.path()).expect("mark");
        assert!(take_clean_shutdown_marker(dir.path()).expect("take"));
        assert!(!take_clean_shutdown_marker(dir.path()).expect("take again"));
    }
}
