//! The sparse time index of one segment (`{base_offset:020}.timeindex`).
//!
//! Each 12-byte entry is `timestamp: i64, relative_offset: u32` (big-endian) and says: every
//! batch of the segment up to and including the one at `segment_base + relative_offset` has
//! timestamps of at most `timestamp`. Entries are added at the offset index's interval, only when
//! the segment's running maximum timestamp grows, so timestamps strictly increase.
//! A lookup for time `t` returns the offset of the last entry whose timestamp is below `t`; the
//! first record at or after `t` cannot be earlier than that, and the reader scans forward.

use crate::error::Result;
use crate::index_file::IndexFile;
use std::path::Path;

pub(crate) const TIME_ENTRY_BYTES: usize = 12;

pub(crate) struct TimeIndex {
    base_offset: i64,
    file: IndexFile<TIME_ENTRY_BYTES>,
}

fn decode(entry: &[u8; TIME_ENTRY_BYTES]) -> (i64, u32) {
    (
        i64::from_be_bytes(entry[0..8].try_into().expect("eight bytes")),
        u32::from_be_bytes(entry[8..12].try_into().expect("four bytes")),
    )
}

impl TimeIndex {
    pub(crate) fn open(
        path: &Path,
        base_offset: i64,
        entries: usize,
        capacity_bytes: Option<u64>,
    ) -> Result<Self> {
        Ok(TimeIndex {
            base_offset,
            file: IndexFile::open(path, entries, capacity_bytes)?,
        })
    }

    pub(crate) fn file(&self) -> &IndexFile<TIME_ENTRY_BYTES> {
        &self.file
    }

    pub(crate) fn last_timestamp(&self) -> Option<i64> {
        self.file
            .len()
            .checked_sub(1)
            .map(|index| decode(&self.file.entry(index)).0)
    }

    /// Records that batches from `offset` on may hold timestamps up to `timestamp`, the running
    /// maximum of the segment so far. Ignored unless the maximum grew.
    pub(crate) fn maybe_append(&self, timestamp: i64, offset: i64) -> Result<()> {
        if self.last_timestamp().is_some_and(|last| timestamp <= last) {
            return Ok(());
        }
        let relative = u32::try_from(offset - self.base_offset)
            .expect("segment rolls before relative offsets overflow");
        let mut entry = [0u8; TIME_ENTRY_BYTES];
        entry[0..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..12].copy_from_slice(&relative.to_be_bytes());
        self.file.append(entry)
    }

    /// The offset from which to scan for the first record with a timestamp of at least
    /// `timestamp`.
    pub(crate) fn lookup(&self, timestamp: i64) -> i64 {
        match self
            .file
            .last_at_or_below(timestamp - 1, |entry| decode(entry).0)
        {
            Some(entry) => self.base_offset + i64::from(decode(&entry).1),
            None => self.base_offset,
        }
    }

    /// Drops entries for offsets at or after `offset`.
    pub(crate) fn truncate_to_offset(&self, offset: i64) {
        let relative = offset - self.base_offset;
        let keep = (0..self.file.len())
            .take_while(|&index| i64::from(decode(&self.file.entry(index)).1) < relative)
            .count();
        self.file.truncate_entries(keep);
    }

    /// Entries strictly increasing in timestamp, offsets non-decreasing and inside the segment.
    pub(crate) fn sanity_check(
        path: &Path,
        base_offset: i64,
        next_offset: i64,
    ) -> Result<std::result::Result<usize, String>> {
        let Some((entries, whole)) = IndexFile::<TIME_ENTRY_BYTES>::file_entries(path)? else {
            return Ok(Err("missing".to_string()));
        };
        if !whole {
            return Ok(Err("length is not a multiple of the entry size".to_string()));
        }
        let index = TimeIndex::open(path, base_offset, entries, None)?;
        let mut previous: Option<(i64, u32)> = None;
        for entry_index in 0..entries {
            let (timestamp, relative) = decode(&index.file.entry(entry_index));
            if base_offset + i64::from(relative) >= next_offset.max(base_offset + 1) {
                return Ok(Err(format!(
                    "entry {entry_index} points past the segment's last offset"
                )));
            }
            if let Some((last_timestamp, last_relative)) = previous
                && (timestamp <= last_timestamp || relative < last_relative)
            {
                return Ok(Err(format!("entry {entry_index} does not increase")));
            }
            previous = Some((timestamp, relative));
        }
        Ok(Ok(entries))
    }
}
