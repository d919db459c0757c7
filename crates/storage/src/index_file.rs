//! A file of fixed-width entries, read through a memory map and appended with positional writes.
//!
//! Writes never go through the map: a `pwrite` on a full disk returns `ENOSPC`, whereas a store
//! into a mapped page of a sparse file would raise SIGBUS. The file is extended (sparsely) to its
//! capacity while it is written and trimmed to its entries when the segment is closed or rolled.
//!
//! Thread-safety: one writer (the log's append path, under its lock) and any number of readers.
//! An entry is written before the entry count that covers it is published with release ordering,
//! so a reader that loads the count with acquire ordering sees whole entries only.

use crate::error::{Result, StorageError};
use memmap2::{Mmap, MmapOptions};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct IndexFile<const WIDTH: usize> {
    path: PathBuf,
    file: File,
    map: Option<Mmap>,
    mapped_entries: usize,
    entries: AtomicUsize,
}

impl<const WIDTH: usize> IndexFile<WIDTH> {
    /// Opens (creating if needed) an index whose first `entries` entries are valid, mapping room
    /// for `capacity_bytes` when it will be written to.
    pub(crate) fn open(path: &Path, entries: usize, capacity_bytes: Option<u64>) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(StorageError::io("open index", path))?;
        let file_length = file
            .metadata()
            .map_err(StorageError::io("stat index", path))?
            .len();
        let mapped_length = match capacity_bytes {
            Some(capacity) => {
                let capacity = (capacity - capacity % WIDTH as u64).max((entries * WIDTH) as u64);
                if file_length != capacity {
                    file.set_len(capacity)
                        .map_err(StorageError::io("extend index", path))?;
                }
                capacity
            }
            None => file_length - file_length % WIDTH as u64,
        };
        let map = Self::map(&file, path, mapped_length)?;
        let mapped_entries = mapped_length as usize / WIDTH;
        assert!(
            entries <= mapped_entries,
            "{} has room for {mapped_entries} entries, not {entries}",
            path.display()
        );
        Ok(IndexFile {
            path: path.to_owned(),
            file,
            map,
            mapped_entries,
            entries: AtomicUsize::new(entries),
        })
    }

    fn map(file: &File, path: &Path, length: u64) -> Result<Option<Mmap>> {
        if length == 0 {
            return Ok(None);
        }
        // SAFETY: the map is read-only and only the region below the published entry count is
        // read; the file is never shrunk below that count while the map is alive.
        let map = unsafe { MmapOptions::new().len(length as usize).map(file) }
            .map_err(StorageError::io("mmap index", path))?;
        Ok(Some(map))
    }

    /// How many whole entries the file holds, by its length, for indexes opened read-only.
    pub(crate) fn file_entries(path: &Path) -> Result<Option<(usize, bool)>> {
        match std::fs::metadata(path) {
            Ok(metadata) => Ok(Some((
                (metadata.len() / WIDTH as u64) as usize,
                metadata.len() % WIDTH as u64 == 0,
            ))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StorageError::Io {
                operation: "stat index",
                path: path.into(),
                source: error,
            }),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.load(Ordering::Acquire)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.mapped_entries
    }

    pub(crate) fn entry(&self, index: usize) -> [u8; WIDTH] {
        let map = self.map.as_ref().expect("an index with entries is mapped");
        map[index * WIDTH..(index + 1) * WIDTH]
            .try_into()
            .expect("entry width")
    }

    /// Appends an entry. The caller (the single writer) has checked there is room.
    pub(crate) fn append(&self, entry: [u8; WIDTH]) -> Result<()> {
        let index = self.len();
        assert!(
            index < self.mapped_entries,
            "{} is full",
            self.path.display()
        );
        self.file
            .write_all_at(&entry, (index * WIDTH) as u64)
            .map_err(StorageError::io("write index", &self.path))?;
        self.entries.store(index + 1, Ordering::Release);
        Ok(())
    }

    /// Forgets entries from `entries` on. The bytes stay until overwritten; nothing reads them.
    pub(crate) fn truncate_entries(&self, entries: usize) {
        if entries < self.len() {
            self.entries.store(entries, Ordering::Release);
        }
    }

    /// Shrinks the file to its entries, so a closed segment's index has no unused tail.
    pub(crate) fn trim(&self) -> Result<()> {
        self.file
            .set_len((self.len() * WIDTH) as u64)
            .map_err(StorageError::io("trim index", &self.path))
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(StorageError::io("fsync index", &self.path))
    }

    /// Binary search for the last entry whose key (as extracted by `key`) is at most `target`.
    pub(crate) fn last_at_or_below(
        &self,
        target: i64,
        key: impl Fn(&[u8; WIDTH]) -> i64,
    ) -> Option<[u8; WIDTH]> {
        let (mut low, mut high) = (0usize, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if key(&self.entry(middle)) <= target {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low.checked_sub(1).map(|index| self.entry(index))
    }
}
