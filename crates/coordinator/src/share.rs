//! Share groups (Kafka's KIP-932, "queues"): any number of members consume the same partitions,
//! each record is *acquired* by one member at a time for a visibility timeout, and is
//! acknowledged, released for redelivery, or rejected record by record. A record delivered
//! `max_delivery_attempts` times without being acknowledged goes to the dead-letter topic.
//!
//! One [`SharePartition`] per (share group, topic partition) tracks the in-flight window: every
//! offset from the *share-partition start offset* (below it, everything is acknowledged or
//! archived) up to the *fetch offset* (the next offset not yet handed out). Only offsets still in
//! flight are kept, so the state is bounded by the window, not by the log.
//!
//! Durability: the window is stored (as runs of equal state) whenever an acknowledgement, a
//! release, a rejection or an expiry changes it. Acquisitions are not stored: after a coordinator
//! failover, records that were acquired become available again (at-least-once), with the
//! delivery count of the last stored state.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strata_common::ErrorCode;

use crate::shard::CoordinatorError;

/// What happens to a delivered record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckKind {
    /// Done: never delivered again.
    Accept,
    /// Give it back for another delivery, after `delay_ms`.
    Release { delay_ms: i64 },
    /// Poison: straight to the dead-letter topic.
    Reject,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RecordState {
    Available { not_before_ms: i64 },
    Acquired { member_id: String, deadline_ms: i64 },
    Acknowledged,
    Archived,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct InFlight {
    state: RecordState,
    delivery_count: u32,
    /// The reason given with the last release or rejection, for the dead-letter headers.
    last_reason: Option<String>,
}

/// A record to move to the dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub offset: i64,
    pub delivery_count: u32,
    pub reason: String,
}

/// Limits of one share partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareLimits {
    pub max_delivery_attempts: u32,
    /// Offsets in flight (acquired, available again, or waiting for the start to move past
    /// them) at most; bounds the state whatever consumers do.
    pub max_window: usize,
}

impl Default for ShareLimits {
    fn default() -> Self {
        ShareLimits {
            max_delivery_attempts: 5,
            max_window: 20_000,
        }
    }
}

/// A stored run of offsets in one state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRun {
    pub first: i64,
    pub last: i64,
    /// `available`, `acknowledged` or `archived`.
    pub state: String,
    pub delivery_count: u32,
}

/// The stored form of a share partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSharePartition {
    pub start_offset: i64,
    pub fetch_offset: i64,
    pub runs: Vec<StoredRun>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharePartition {
    /// Every offset below is acknowledged or archived. -1 until the first fetch decides where
    /// the group starts (the log start, like `auto.offset.reset=earliest`).
    start_offset: i64,
    fetch_offset: i64,
    records: BTreeMap<i64, InFlight>,
}

/// Counts for `describe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShareCounts {
    pub start_offset: i64,
    pub fetch_offset: i64,
    pub acquired: usize,
    pub available: usize,
    pub acknowledged_in_window: usize,
    pub archived_in_window: usize,
}

fn not_held(offset: i64, member_id: &str) -> CoordinatorError {
    CoordinatorError::new(
        ErrorCode::InvalidRecordState,
        format!(
            "offset {offset} is not held by member {member_id}: its lock expired or another member holds it; it was not changed"
        ),
    )
}

impl Default for SharePartition {
    fn default() -> Self {
        SharePartition::new()
    }
}

impl SharePartition {
    pub fn new() -> SharePartition {
        SharePartition {
            start_offset: -1,
            fetch_offset: -1,
            records: BTreeMap::new(),
        }
    }

    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    pub fn fetch_offset(&self) -> i64 {
        self.fetch_offset
    }

    /// Whether the partition has ever been fetched (its start is decided).
    pub fn is_initialized(&self) -> bool {
        self.start_offset >= 0
    }

    /// Starts the group at `offset` (the log start) on its first fetch.
    pub fn initialize(&mut self, offset: i64) {
        if !self.is_initialized() {
            self.start_offset = offset;
            self.fetch_offset = offset;
        }
    }

    /// Moves past records that retention deleted before they were delivered.
    pub fn skip_to(&mut self, log_start_offset: i64) {
        if self.start_offset < log_start_offset {
            self.records.retain(|&offset, _| offset >= log_start_offset);
            self.start_offset = log_start_offset;
            self.fetch_offset = self.fetch_offset.max(log_start_offset);
        }
    }

    /// Acquires up to `max` records for `member_id` until `deadline_ms`: first records that
    /// are available again (oldest first), then new ones below `high_watermark`. Returns the
    /// acquired offsets with their delivery counts (1 on first delivery).
    pub fn acquire(
        &mut self,
        member_id: &str,
        max: usize,
        now_ms: i64,
        deadline_ms: i64,
        high_watermark: i64,
        limits: &ShareLimits,
    ) -> Vec<(i64, u32)> {
        let mut acquired = Vec::new();
        if !self.is_initialized() || max == 0 {
            return acquired;
        }
        for (&offset, record) in self.records.iter_mut() {
            if acquired.len() >= max {
                break;
            }
            if let RecordState::Available { not_before_ms } = record.state
                && not_before_ms <= now_ms
            {
                record.state = RecordState::Acquired {
                    member_id: member_id.to_string(),
                    deadline_ms,
                };
                record.delivery_count += 1;
                acquired.push((offset, record.delivery_count));
            }
        }
        while acquired.len() < max
            && self.fetch_offset < high_watermark
            && self.records.len() < limits.max_window
        {
            let offset = self.fetch_offset;
            self.records.insert(
                offset,
                InFlight {
                    state: RecordState::Acquired {
                        member_id: member_id.to_string(),
                        deadline_ms,
                    },
                    delivery_count: 1,
                    last_reason: None,
                },
            );
            acquired.push((offset, 1));
            self.fetch_offset += 1;
        }
        acquired
    }

    /// The offsets `member_id` holds now.
    pub fn held_by(&self, member_id: &str) -> usize {
        self.records
            .values()
            .filter(|record| {
                matches!(&record.state, RecordState::Acquired { member_id: holder, .. } if holder == member_id)
            })
            .count()
    }

    /// Whether any record could be acquired now or later without new data.
    pub fn has_available(&self, now_ms: i64) -> bool {
        self.records.values().any(|record| {
            matches!(record.state, RecordState::Available { not_before_ms } if not_before_ms <= now_ms)
        })
    }

    /// The earliest time a delayed release becomes available, if any.
    pub fn next_available_ms(&self) -> Option<i64> {
        self.records
            .values()
            .filter_map(|record| match record.state {
                RecordState::Available { not_before_ms } => Some(not_before_ms),
                _ => None,
            })
            .min()
    }

    /// Applies an acknowledgement to one offset the member holds. Returns a dead letter when
    /// the record is rejected or has used up its delivery attempts.
    pub fn acknowledge(
        &mut self,
        member_id: &str,
        offset: i64,
        kind: &AckKind,
        reason: Option<&str>,
        now_ms: i64,
        limits: &ShareLimits,
    ) -> Result<Option<DeadLetter>, CoordinatorError> {
        let record = self
            .records
            .get_mut(&offset)
            .ok_or_else(|| not_held(offset, member_id))?;
        match &record.state {
            RecordState::Acquired {
                member_id: holder, ..
            } if holder == member_id => {}
            _ => return Err(not_held(offset, member_id)),
        }
        if let Some(reason) = reason {
            record.last_reason = Some(reason.to_string());
        }
        let dead_letter = match kind {
            AckKind::Accept => {
                record.state = RecordState::Acknowledged;
                None
            }
            AckKind::Reject => {
                record.state = RecordState::Archived;
                Some(DeadLetter {
                    offset,
                    delivery_count: record.delivery_count,
                    reason: record
                        .last_reason
                        .clone()
                        .unwrap_or_else(|| "rejected".to_string()),
                })
            }
            AckKind::Release { delay_ms } => release(
                offset,
                record,
                now_ms + delay_ms.max(&0),
                limits,
                "released",
            ),
        };
        Ok(dead_letter)
    }

    /// Extends the member's lock on `offset` to `deadline_ms`.
    pub fn renew(
        &mut self,
        member_id: &str,
        offset: i64,
        deadline_ms: i64,
    ) -> Result<(), CoordinatorError> {
        match self
            .records
            .get_mut(&offset)
            .map(|record| &mut record.state)
        {
            Some(RecordState::Acquired {
                member_id: holder,
                deadline_ms: deadline,
            }) if holder == member_id => {
                *deadline = (*deadline).max(deadline_ms);
                Ok(())
            }
            _ => Err(not_held(offset, member_id)),
        }
    }

    /// Locks that expired (the holder crashed or hung) make their records available again, or
    /// dead letters when their attempts are used up. Returns those dead letters and whether
    /// anything changed.
    pub fn expire(&mut self, now_ms: i64, limits: &ShareLimits) -> (Vec<DeadLetter>, bool) {
        let mut dead_letters = Vec::new();
        let mut changed = false;
        for (&offset, record) in self.records.iter_mut() {
            if let RecordState::Acquired { deadline_ms, .. } = record.state
                && deadline_ms <= now_ms
            {
                changed = true;
                dead_letters.extend(release(
                    offset,
                    record,
                    now_ms,
                    limits,
                    "the visibility timeout expired",
                ));
            }
        }
        (dead_letters, changed)
    }

    /// Releases every record `member_id` holds (the member left).
    pub fn release_member(
        &mut self,
        member_id: &str,
        now_ms: i64,
        limits: &ShareLimits,
    ) -> Vec<DeadLetter> {
        let mut dead_letters = Vec::new();
        for (&offset, record) in self.records.iter_mut() {
            if matches!(&record.state, RecordState::Acquired { member_id: holder, .. } if holder == member_id)
            {
                dead_letters.extend(release(offset, record, now_ms, limits, "the member left"));
            }
        }
        dead_letters
    }

    /// Moves the start past acknowledged and archived records at the front of the window.
    pub fn advance_start(&mut self) {
        while let Some(entry) = self.records.first_entry() {
            if !matches!(
                entry.get().state,
                RecordState::Acknowledged | RecordState::Archived
            ) {
                break;
            }
            let offset = *entry.key();
            entry.remove();
            self.start_offset = offset + 1;
        }
        if self.records.is_empty() && self.is_initialized() {
            self.start_offset = self.fetch_offset;
        }
    }

    pub fn counts(&self) -> ShareCounts {
        let mut counts = ShareCounts {
            start_offset: self.start_offset,
            fetch_offset: self.fetch_offset,
            ..ShareCounts::default()
        };
        for record in self.records.values() {
            match record.state {
                RecordState::Available { .. } => counts.available += 1,
                RecordState::Acquired { .. } => counts.acquired += 1,
                RecordState::Acknowledged => counts.acknowledged_in_window += 1,
                RecordState::Archived => counts.archived_in_window += 1,
            }
        }
        counts
    }

    /// The stored form: acquired records are stored as available, so a new coordinator
    /// redelivers them.
    pub fn to_stored(&self) -> StoredSharePartition {
        let mut runs: Vec<StoredRun> = Vec::new();
        for (&offset, record) in &self.records {
            let state = match record.state {
                RecordState::Available { .. } | RecordState::Acquired { .. } => "available",
                RecordState::Acknowledged => "acknowledged",
                RecordState::Archived => "archived",
            };
            match runs.last_mut() {
                Some(run)
                    if run.last + 1 == offset
                        && run.state == state
                        && run.delivery_count == record.delivery_count =>
                {
                    run.last = offset;
                }
                _ => runs.push(StoredRun {
                    first: offset,
                    last: offset,
                    state: state.to_string(),
                    delivery_count: record.delivery_count,
                }),
            }
        }
        StoredSharePartition {
            start_offset: self.start_offset,
            fetch_offset: self.fetch_offset,
            runs,
        }
    }

    pub fn from_stored(stored: &StoredSharePartition) -> SharePartition {
        let mut records = BTreeMap::new();
        for run in &stored.runs {
            let state = match run.state.as_str() {
                "acknowledged" => RecordState::Acknowledged,
                "archived" => RecordState::Archived,
                _ => RecordState::Available { not_before_ms: 0 },
            };
            for offset in run.first..=run.last {
                records.insert(
                    offset,
                    InFlight {
                        state: state.clone(),
                        delivery_count: run.delivery_count,
                        last_reason: None,
                    },
                );
            }
        }
        SharePartition {
            start_offset: stored.start_offset,
            fetch_offset: stored.fetch_offset,
            records,
        }
    }
}

/// Gives a record back for redelivery at `not_before_ms`, or archives it as a dead letter when
/// it has been delivered `max_delivery_attempts` times.
fn release(
    offset: i64,
    record: &mut InFlight,
    not_before_ms: i64,
    limits: &ShareLimits,
    default_reason: &str,
) -> Option<DeadLetter> {
    if record.delivery_count >= limits.max_delivery_attempts {
        record.state = RecordState::Archived;
        Some(DeadLetter {
            offset,
            delivery_count: record.delivery_count,
            reason: record
                .last_reason
                .clone()
                .unwrap_or_else(|| default_reason.to_string()),
        })
    } else {
        record.state = RecordState::Available { not_before_ms };
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ShareLimits = ShareLimits {
        max_delivery_attempts: 3,
        max_window: 100,
    };

    fn started(at: i64) -> SharePartition {
        let mut partition = SharePartition::new();
        partition.initialize(at);
        partition
    }

    #[test]
    fn records_are_acquired_once_and_acknowledged_records_leave_the_window() {
        let mut partition = started(10);
        let a = partition.acquire("a", 3, 0, 1_000, 20, &LIMITS);
        assert_eq!(a, vec![(10, 1), (11, 1), (12, 1)]);
        let b = partition.acquire("b", 3, 0, 1_000, 20, &LIMITS);
        assert_eq!(b.first(), Some(&(13, 1)), "b never gets a's records");
        for offset in [10, 11] {
            partition
                .acknowledge("a", offset, &AckKind::Accept, None, 0, &LIMITS)
                .unwrap();
        }
        partition.advance_start();
        assert_eq!(partition.start_offset(), 12);
        let error = partition
            .acknowledge("b", 12, &AckKind::Accept, None, 0, &LIMITS)
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRecordState);
        assert_eq!(
            partition.held_by("a"),
            1,
            "a failed ack by b changed nothing"
        );
    }

    #[test]
    fn an_expired_lock_redelivers_and_the_last_attempt_goes_to_the_dead_letter_topic() {
        let mut partition = started(0);
        for attempt in 1..=3 {
            let now = attempt * 100;
            let acquired = partition.acquire("worker", 1, now, now + 50, 1, &LIMITS);
            assert_eq!(acquired, vec![(0, attempt as u32)]);
            let (dead, changed) = partition.expire(now + 50, &LIMITS);
            assert!(changed);
            if attempt < 3 {
                assert!(dead.is_empty());
            } else {
                assert_eq!(dead.len(), 1);
                assert_eq!(dead[0].delivery_count, 3);
                assert!(dead[0].reason.contains("visibility timeout"));
            }
        }
        partition.advance_start();
        assert_eq!(
            partition.start_offset(),
            1,
            "the dead letter left the queue"
        );
        assert!(
            partition
                .acquire("worker", 1, 1_000, 2_000, 1, &LIMITS)
                .is_empty()
        );
    }

    #[test]
    fn release_with_a_delay_and_reject_with_a_reason() {
        let mut partition = started(0);
        partition.acquire("w", 2, 0, 1_000, 2, &LIMITS);
        partition
            .acknowledge(
                "w",
                0,
                &AckKind::Release { delay_ms: 500 },
                Some("busy"),
                0,
                &LIMITS,
            )
            .unwrap();
        let dead = partition
            .acknowledge("w", 1, &AckKind::Reject, Some("bad json"), 0, &LIMITS)
            .unwrap()
            .unwrap();
        assert_eq!(dead.reason, "bad json");
        assert!(
            partition.acquire("w", 5, 499, 2_000, 2, &LIMITS).is_empty(),
            "not before the delay"
        );
        assert_eq!(partition.next_available_ms(), Some(500));
        assert_eq!(
            partition.acquire("w", 5, 500, 2_000, 2, &LIMITS),
            vec![(0, 2)]
        );
    }

    #[test]
    fn renewing_keeps_a_slow_worker_s_lock() {
        let mut partition = started(0);
        partition.acquire("slow", 1, 0, 100, 1, &LIMITS);
        partition.renew("slow", 0, 1_000).unwrap();
        let (_, changed) = partition.expire(500, &LIMITS);
        assert!(!changed);
        assert!(partition.renew("other", 0, 2_000).is_err());
    }

    #[test]
    fn the_window_bounds_the_state() {
        let limits = ShareLimits {
            max_delivery_attempts: 5,
            max_window: 10,
        };
        let mut partition = started(0);
        let acquired = partition.acquire("w", 100, 0, 1_000, 1_000, &limits);
        assert_eq!(acquired.len(), 10);
        assert!(
            partition
                .acquire("w", 100, 0, 1_000, 1_000, &limits)
                .is_empty()
        );
    }

    #[test]
    fn the_stored_form_round_trips_and_acquired_records_become_available() {
        let mut partition = started(5);
        partition.acquire("w", 6, 0, 1_000, 20, &LIMITS);
        partition
            .acknowledge("w", 6, &AckKind::Accept, None, 0, &LIMITS)
            .unwrap();
        partition
            .acknowledge("w", 7, &AckKind::Reject, None, 0, &LIMITS)
            .unwrap();
        let stored = partition.to_stored();
        assert_eq!(stored.runs.len(), 4, "{stored:?}");
        let mut loaded = SharePartition::from_stored(&stored);
        assert_eq!(loaded.to_stored(), stored);
        let redelivered = loaded.acquire("x", 10, 0, 1_000, 20, &LIMITS);
        assert_eq!(&redelivered[..2], &[(5, 2), (8, 2)]);
    }

    #[test]
    fn records_deleted_by_retention_are_skipped() {
        let mut partition = started(0);
        partition.acquire("w", 2, 0, 1_000, 10, &LIMITS);
        partition.skip_to(5);
        assert_eq!(partition.start_offset(), 5);
        assert_eq!(
            partition.acquire("w", 1, 0, 1_000, 10, &LIMITS),
            vec![(5, 1)]
        );
    }
}
