//! The leader-epoch checkpoint (`leader-epoch-checkpoint`): for each leader epoch, the first
//! offset written in it (Kafka's KIP-101). A follower asks the leader for the end offset of its
//! own latest epoch and truncates to it, instead of trusting its high watermark, which is what
//! lets two replicas find where they diverge after any sequence of leader changes (KIP-279).
//!
//! Invariants: epochs strictly increase and start offsets never decrease from entry to entry; no
//! entry starts past the log end offset. The file is a checkpoint (see `checkpoint`) whose payload
//! is `count: u32` then `count` times `epoch: i32, start_offset: i64`.

use crate::checkpoint;
use crate::error::{Result, StorageError};
use std::path::{Path, PathBuf};

pub(crate) const FILE_NAME: &str = "leader-epoch-checkpoint";

/// One leader epoch and the first offset its leader wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint. `Ok(None)` when it is missing or corrupt: the caller rebuilds it from
    /// the epochs stamped in the log's batches.
    pub(crate) fn load(directory: &Path) -> Result<Option<LeaderEpochCache>> {
        let path = directory.join(FILE_NAME);
        let payload = match checkpoint::read(&path) {
            Ok(Some(payload)) => payload,
            Ok(None) | Err(StorageError::Corrupt { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let Some(count) = payload
            .get(0..4)
            .map(|bytes| u32::from_be_bytes(bytes.try_into().expect("four bytes")) as usize)
        else {
            return Ok(None);
        };
        if payload.len() != 4 + count * 12 {
            return Ok(None);
        }
        let entries: Vec<EpochEntry> = payload[4..]
            .chunks_exact(12)
            .map(|chunk| EpochEntry {
                epoch: i32::from_be_bytes(chunk[0..4].try_into().expect("four bytes")),
                start_offset: i64::from_be_bytes(chunk[4..12].try_into().expect("eight bytes")),
            })
            .collect();
        let ordered = entries.windows(2).all(|pair| {
            pair[0].epoch < pair[1].epoch && pair[0].start_offset <= pair[1].start_offset
        });
        if !ordered {
            return Ok(None);
        }
        Ok(Some(LeaderEpochCache { path, entries }))
    }

    pub(crate) fn empty(directory: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            path: directory.join(FILE_NAME),
            entries: Vec::new(),
        }
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// Records that `epoch` starts at `start_offset`, unless an equal or newer epoch is known.
    /// Returns whether anything changed (the caller then persists).
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        if let Some(last) = self.entries.last() {
            assert!(
                start_offset >= last.start_offset,
                "epoch {epoch} starts at {start_offset}, before epoch {} at {}",
                last.epoch,
                last.start_offset
            );
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested` and the offset where it
    /// ended (the next epoch's start, or the log end offset for the latest epoch). `None` when
    /// `requested` is newer than every known epoch.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let latest = self.latest_epoch()?;
        if requested == latest {
            return Some((latest, log_end_offset));
        }
        let higher = self.entries.iter().find(|entry| entry.epoch > requested)?;
        let floor = self
            .entries
            .iter()
            .rev()
            .find(|entry| entry.epoch <= requested);
        Some((
            floor.map_or(requested, |entry| entry.epoch),
            higher.start_offset,
        ))
    }

    /// Forgets epochs that start at or after `end_offset` (the log was truncated there).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.start_offset < end_offset);
        self.entries.len() != before
    }

    /// Moves the start of the log to `start_offset`: epochs wholly before it are dropped, and the
    /// epoch that spans it now starts there.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let spanning = self
            .entries
            .iter()
            .rposition(|entry| entry.start_offset <= start_offset);
        match spanning {
            Some(index) if index > 0 || self.entries[index].start_offset < start_offset => {
                self.entries.drain(..index);
                self.entries[0].start_offset = start_offset;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn persist(&self) -> Result<()> {
        let mut payload = Vec::with_capacity(4 + self.entries.len() * 12);
        payload.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for entry in &self.entries {
            payload.extend_from_slice(&entry.epoch.to_be_bytes());
            payload.extend_from_slice(&entry.start_offset.to_be_bytes());
        }
        checkpoint::write(&self.path, &payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::empty(Path::new("/nonexistent"));
        for &(epoch, start_offset) in entries {
            assert!(cache.assign(epoch, start_offset));
        }
        cache
    }

    #[test]
    fn end_offset_follows_kafka_semantics() {
        let cache = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(cache.end_offset_for(4, 40), Some((4, 40)));
        assert_eq!(cache.end_offset_for(3, 40), Some((3, 25)));
        // Epoch 2 never wrote anything here: answer with the largest epoch below it.
        assert_eq!(cache.end_offset_for(2, 40), Some((1, 10)));
        assert_eq!(cache.end_offset_for(0, 40), Some((0, 0)));
        assert_eq!(cache.end_offset_for(5, 40), None);
    }

    #[test]
    fn stale_epochs_are_ignored_and_truncation_trims() {
        let mut cache = cache(&[(1, 0), (3, 10)]);
        assert!(!cache.assign(2, 12));
        assert!(!cache.assign(3, 12));
        assert!(cache.truncate_from_end(10));
        assert_eq!(
            cache.entries(),
            &[EpochEntry {
                epoch: 1,
                start_offset: 0
            }]
        );
        let mut cache = self::cache(&[(1, 0), (3, 10), (4, 25)]);
        assert!(cache.truncate_from_start(12));
        assert_eq!(
            cache.entries(),
            &[
                EpochEntry {
                    epoch: 3,
                    start_offset: 12
                },
                EpochEntry {
                    epoch: 4,
                    start_offset: 25
                }
            ]
        );
    }

    #[test]
    fn persists_and_loads() {
        let directory = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::empty(directory.path());
        cache.assign(2, 0);
        cache.assign(5, 100);
        cache.persist().unwrap();
        let loaded = LeaderEpochCache::load(directory.path()).unwrap().unwrap();
        assert_eq!(loaded.entries(), cache.entries());
        std::fs::write(directory.path().join(FILE_NAME), b"garbage").unwrap();
        assert!(LeaderEpochCache::load(directory.path()).unwrap().is_none());
    }
}
