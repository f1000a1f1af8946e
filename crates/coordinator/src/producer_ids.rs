//! Producer id allocation for InitProducerId.
//!
//! Ids are handed out from blocks; the end of the current block is persisted before any
//! id from it is used, so a restart never reissues an id (it skips the rest of the
//! block instead). File `producer-ids.checkpoint` in the data directory: the next block
//! start as a big-endian u64 followed by its CRC-32 (crc32fast).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{CoordinatorError, IoContext, Result};

pub const PRODUCER_IDS_FILE: &str = "producer-ids.checkpoint";
const BLOCK: i64 = 1000;

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

#[derive(Debug)]
pub struct ProducerIdManager {
    path: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIdManager {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(PRODUCER_IDS_FILE);
        let start = match fs::read(&path) {
            Ok(b) if b.len() == 12 => {
                let mut v = [0u8; 8];
                v.copy_from_slice(&b[0..8]);
                let crc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                if crc32fast::hash(&v) != crc {
                    return Err(CoordinatorError::Corrupt {
                        what: "producer id checkpoint",
                        path,
                        detail: "CRC mismatch".into(),
                    });
                }
                i64::from_be_bytes(v)
            }
            Ok(b) => {
                return Err(CoordinatorError::Corrupt {
                    what: "producer id checkpoint",
                    path,
                    detail: format!("{} bytes, expected 12", b.len()),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).ctx("reading", &path),
        };
        Ok(ProducerIdManager {
            path,
            block: Mutex::new(Block {
                next: start,
                end: start,
            }),
        })
    }

    fn persist(&self, next_block_start: i64) -> Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).ctx("creating", &tmp)?;
        let v = next_block_start.to_be_bytes();
        f.write_all(&v).ctx("writing", &tmp)?;
        f.write_all(&crc32fast::hash(&v).to_be_bytes())
            .ctx("writing", &tmp)?;
        f.sync_all().ctx("fsync of", &tmp)?;
        fs::rename(&tmp, &self.path).ctx("renaming to", &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .ctx("fsync of", dir)?;
        }
        Ok(())
    }

    /// A producer id never handed out before.
    pub fn next_id(&self) -> Result<i64> {
        let mut block = self.block.lock().unwrap_or_else(|p| p.into_inner());
        if block.next >= block.end {
            let end = block.next + BLOCK;
            self.persist(end)?;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = ProducerIdManager::open(dir.path()).expect("open");
        let a: Vec<i64> = (0..3).map(|_| m.next_id().expect("id")).collect();
        assert_eq!(a, vec![0, 1, 2]);
        drop(m);
        let m = ProducerIdManager::open(dir.path()).expect("reopen");
        assert_eq!(
            m.next_id().expect("id"),
            BLOCK,
            "the rest of the used block is skipped"
        );
        fs::write(dir.path().join(PRODUCER_IDS_FILE), [1u8; 12]).expect("corrupt");
        assert!(ProducerIdManager::open(dir.path()).is_err());
    }
}
