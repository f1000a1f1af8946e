//! The mechanism both indexes share: a mapped file of sorted fixed-size entries.

use std::path::Path;

use crate::error::{Result, StorageError};
use crate::mmap::MappedFile;

/// One fixed-size entry of an index file.
pub(crate) trait Entry: Copy {
    /// Bytes per entry on disk.
    const SIZE: usize;
    fn decode(bytes: &[u8]) -> Self;
    fn encode(&self, out: &mut [u8]);
    /// The sort key; strictly increasing along the file.
    fn key(&self) -> i64;
}

#[derive(Debug)]
pub(crate) struct SparseIndex<E: Entry> {
    file: MappedFile,
    /// Entries in use; the rest of the file is preallocated space.
    entries: usize,
    /// Bytes after the last whole entry of the file as opened (a torn or foreign file);
    /// [`Self::check`] reports them. Resizing the file clears them.
    trailing_bytes: u64,
    max_entries: usize,
    _entry: std::marker::PhantomData<E>,
}

impl<E: Entry> SparseIndex<E> {
    /// Opens the index at `path`, taking every whole entry in the file as in use (a
    /// clean shutdown trims the file). The index is full until [`Self::preallocate`].
    pub fn open(path: &Path) -> Result<Self> {
        let file = MappedFile::open(path)?;
        let entries = (file.len() / E::SIZE as u64) as usize;
        let trailing_bytes = file.len() % E::SIZE as u64;
        Ok(SparseIndex {
            file,
            entries,
            trailing_bytes,
            max_entries: entries,
            _entry: std::marker::PhantomData,
        })
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_full(&self) -> bool {
        self.entries >= self.max_entries
    }

    pub fn entry(&self, n: usize) -> E {
        let at = n * E::SIZE;
        E::decode(&self.file.as_slice()[at..at + E::SIZE])
    }

    pub fn last(&self) -> Option<E> {
        self.entries.checked_sub(1).map(|n| self.entry(n))
    }

    /// Appends an entry; the caller keeps keys strictly increasing and checks `is_full`.
    pub fn push(&mut self, entry: E) -> Result<()> {
        if let Some(last) = self.last()
            && entry.key() <= last.key()
        {
            return Err(StorageError::Corrupt {
                what: "index append",
                path: self.file.path().to_path_buf(),
                detail: format!("key {} after {}", entry.key(), last.key()),
            });
        }
        if self.is_full() {
            return Err(StorageError::Corrupt {
                what: "index append",
                path: self.file.path().to_path_buf(),
                detail: format!("index full at {} entries", self.entries),
            });
        }
        let at = self.entries * E::SIZE;
        // Normally a no-op (`reserve` came first); it keeps a write through the map from
        // ever landing on an unallocated page, which is a SIGBUS on a full disk.
        self.file.allocate_to((at + E::SIZE) as u64, at as u64)?;
        entry.encode(&mut self.file.as_mut_slice()[at..at + E::SIZE]);
        self.entries += 1;
        Ok(())
    }

    /// Allocates disk blocks for the next `more` entries (as many as fit), so that
    /// pushing them cannot fail for lack of space: a full disk fails here, before the
    /// caller writes anything the entries would describe.
    pub fn reserve(&mut self, more: usize) -> Result<()> {
        let end = self.entries.saturating_add(more).min(self.max_entries) * E::SIZE;
        self.file
            .allocate_to(end as u64, (self.entries * E::SIZE) as u64)
    }

    /// Index of the last entry whose key is `<= key` (binary search).
    pub fn floor(&self, key: i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).key() <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Drops every entry whose key is `>= key`.
    pub fn truncate_from_key(&mut self, key: i64) {
        self.entries = match key.checked_sub(1) {
            Some(k) => self.floor(k).map_or(0, |n| n + 1),
            None => 0,
        };
    }

    pub fn clear(&mut self) {
        self.entries = 0;
    }

    /// Makes room for `max_bytes` of entries (the segment is or becomes the active one).
    pub fn preallocate(&mut self, max_bytes: u64) -> Result<()> {
        self.max_entries = ((max_bytes / E::SIZE as u64) as usize)
            .max(self.entries)
            .max(1);
        self.trailing_bytes = 0;
        self.file.set_len((self.max_entries * E::SIZE) as u64)
    }

    /// Shrinks the file to the entries in use (segment closed or rolled).
    pub fn trim(&mut self) -> Result<()> {
        self.max_entries = self.entries;
        self.trailing_bytes = 0;
        self.file.set_len((self.entries * E::SIZE) as u64)
    }

    /// Checks that the file holds whole entries and that keys strictly increase;
    /// `extra(previous, entry)` adds an index-specific check.
    pub fn check(
        &self,
        extra: impl Fn(Option<&E>, &E) -> std::result::Result<(), String>,
    ) -> Result<()> {
        if self.trailing_bytes > 0 {
            return Err(StorageError::Corrupt {
                what: "index",
                path: self.file.path().to_path_buf(),
                detail: format!(
                    "{} bytes are not a whole number of {}-byte entries",
                    self.file.len(),
                    E::SIZE
                ),
            });
        }
        let mut prev: Option<E> = None;
        for n in 0..self.entries {
            let e = self.entry(n);
            let bad = match prev {
                Some(p) if e.key() <= p.key() => {
                    Some(format!("entry {n}: key {} after {}", e.key(), p.key()))
                }
                _ => extra(prev.as_ref(), &e)
                    .err()
                    .map(|d| format!("entry {n}: {d}")),
            };
            if let Some(detail) = bad {
                return Err(StorageError::Corrupt {
                    what: "index",
                    path: self.file.path().to_path_buf(),
                    detail,
                });
            }
            prev = Some(e);
        }
        Ok(())
    }

    pub fn sync(&self) -> Result<()> {
        self.file.sync()
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}
