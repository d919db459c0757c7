//! The sparse offset index of one segment (`{base_offset:020}.index`).
//!
//! Each 8-byte entry is `relative_offset: u32, position: u32` (big-endian): the batch whose base
//! offset is `segment_base + relative_offset` starts at byte `position` of the `.log` file. An
//! entry is added every `index.interval.bytes` of log. Both fields strictly increase from entry to
//! entry; [`OffsetIndex::sanity_check`] verifies that on open, and a failing index is rebuilt from
//! the log. The index is only an accelerator: lookups return a position at or before the batch
//! wanted, and the reader scans forward from there.

use crate::error::Result;
use crate::index_file::IndexFile;
use std::path::Path;

pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;

pub(crate) struct OffsetIndex {
    base_offset: i64,
    file: IndexFile<OFFSET_ENTRY_BYTES>,
}

fn decode(entry: &[u8; OFFSET_ENTRY_BYTES]) -> (u32, u32) {
    (
        u32::from_be_bytes(entry[0..4].try_into().expect("four bytes")),
        u32::from_be_bytes(entry[4..8].try_into().expect("four bytes")),
    )
}

impl OffsetIndex {
    pub(crate) fn open(
        path: &Path,
        base_offset: i64,
        entries: usize,
        capacity_bytes: Option<u64>,
    ) -> Result<Self> {
        Ok(OffsetIndex {
            base_offset,
            file: IndexFile::open(path, entries, capacity_bytes)?,
        })
    }

    pub(crate) fn file(&self) -> &IndexFile<OFFSET_ENTRY_BYTES> {
        &self.file
    }

    /// Records that the batch with base offset `offset` starts at `position`.
    pub(crate) fn append(&self, offset: i64, position: u32) -> Result<()> {
        let relative = u32::try_from(offset - self.base_offset)
            .expect("segment rolls before relative offsets overflow");
        if let Some(last) = self.last_entry() {
            assert!(
                relative > last.0 && position > last.1,
                "offset index entries must increase"
            );
        }
        let mut entry = [0u8; OFFSET_ENTRY_BYTES];
        entry[0..4].copy_from_slice(&relative.to_be_bytes());
        entry[4..8].copy_from_slice(&position.to_be_bytes());
        self.file.append(entry)
    }

    fn last_entry(&self) -> Option<(u32, u32)> {
        self.file
            .len()
            .checked_sub(1)
            .map(|index| decode(&self.file.entry(index)))
    }

    /// The (offset, position) of the last indexed batch starting at or before `offset`, or the
    /// segment's start.
    pub(crate) fn lookup(&self, offset: i64) -> (i64, u32) {
        let relative = offset - self.base_offset;
        match self
            .file
            .last_at_or_below(relative, |entry| i64::from(decode(entry).0))
        {
            Some(entry) => {
                let (relative, position) = decode(&entry);
                (self.base_offset + i64::from(relative), position)
            }
            None => (self.base_offset, 0),
        }
    }

    /// Drops entries for batches at or after `offset`.
    pub(crate) fn truncate_to_offset(&self, offset: i64) {
        let relative = offset - self.base_offset;
        let keep = (0..self.file.len())
            .take_while(|&index| i64::from(decode(&self.file.entry(index)).0) < relative)
            .count();
        self.file.truncate_entries(keep);
    }

    /// Checks what the file holds against the log it indexes: entries strictly increasing and
    /// every position inside the log. An error is a reason to rebuild.
    pub(crate) fn sanity_check(
        path: &Path,
        base_offset: i64,
        log_size: u64,
    ) -> Result<std::result::Result<usize, String>> {
        let Some((entries, whole)) = IndexFile::<OFFSET_ENTRY_BYTES>::file_entries(path)? else {
            return Ok(Err("missing".to_string()));
        };
        if !whole {
            return Ok(Err("length is not a multiple of the entry size".to_string()));
        }
        let index = OffsetIndex::open(path, base_offset, entries, None)?;
        let mut previous: Option<(u32, u32)> = None;
        for entry_index in 0..entries {
            let (relative, position) = decode(&index.file.entry(entry_index));
            if u64::from(position) >= log_size.max(1) {
                return Ok(Err(format!(
                    "entry {entry_index} points at position {position}, past the log's {log_size} bytes"
                )));
            }
            if let Some((last_relative, last_position)) = previous
                && (relative <= last_relative || position <= last_position)
            {
                return Ok(Err(format!("entry {entry_index} does not increase")));
            }
            previous = Some((relative, position));
        }
        Ok(Ok(entries))
    }
}
