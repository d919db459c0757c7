//! Idempotent-producer state of one partition (Kafka's `ProducerStateManager`): for each producer
//! id, its epoch and the sequence numbers and offsets of its last few batches. The leader uses it
//! to refuse out-of-order batches and to answer a retried batch with its original offsets instead
//! of writing it twice.
//!
//! The state is derived from the batch headers in the log (producer id, epoch, base sequence), so
//! every replica rebuilds the same state on open and after truncation; it needs no file of its own.
//! Pure: no IO, no clock (the log passes the time in).
//!
//! Producer ids come from clients, so the table is bounded twice over: an entry expires once its
//! producer has appended nothing for `producer.id.expiration.ms`, and past `max_producer_ids`
//! entries the least recently appending producer is forgotten. A forgotten producer is unknown,
//! and an unknown producer's next batch is accepted at any sequence, as Kafka does since KIP-360
//! (2.5): its state may simply have expired, and refusing it would wedge an idle producer. What
//! is lost is only duplicate detection for a retry of a batch from before the expiry.

use std::collections::{HashMap, VecDeque};
use strata_record::NO_PRODUCER_ID;

/// Kafka keeps the last five batches per producer: a producer has at most five requests in
/// flight, so a retry can only ever duplicate one of those.
const BATCHES_REMEMBERED: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchIdentity {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
    pub(crate) record_count: i32,
}

impl BatchIdentity {
    fn last_sequence(&self) -> i32 {
        // Sequences wrap from i32::MAX to 0, as in Kafka.
        ((i64::from(self.base_sequence) + i64::from(self.record_count) - 1)
            % (i64::from(i32::MAX) + 1)) as i32
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchRecord {
    base_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Clone, Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchRecord>,
    /// When the producer last appended, by the log's clock (or its batch's timestamp, for
    /// state rebuilt from the log, which does not store append times).
    last_append_ms: i64,
}

/// What the leader should do with a producer's batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// Append it.
    Accept,
    /// Already appended at these offsets: acknowledge without writing.
    Duplicate { base_offset: i64, last_offset: i64 },
    /// A batch in between is missing: the producer must not skip ahead.
    OutOfOrder { expected: i32, found: i32 },
    /// A newer epoch of this producer id exists: this one is a zombie.
    Fenced { current_epoch: i16 },
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    pub(crate) fn check(&self, batch: &BatchIdentity) -> SequenceCheck {
        if batch.producer_id == NO_PRODUCER_ID {
            return SequenceCheck::Accept;
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // Unknown producer (new, or its batches were all deleted by retention): accept.
            return SequenceCheck::Accept;
        };
        if batch.producer_epoch < entry.epoch {
            return SequenceCheck::Fenced {
                current_epoch: entry.epoch,
            };
        }
        if batch.producer_epoch > entry.epoch {
            // A new epoch restarts its sequence at zero.
            return if batch.base_sequence == 0 {
                SequenceCheck::Accept
            } else {
                SequenceCheck::OutOfOrder {
                    expected: 0,
                    found: batch.base_sequence,
                }
            };
        }
        let last_sequence = batch.last_sequence();
        if let Some(previous) = entry.batches.iter().find(|previous| {
            previous.base_sequence == batch.base_sequence && previous.last_sequence == last_sequence
        }) {
            return SequenceCheck::Duplicate {
                base_offset: previous.base_offset,
                last_offset: previous.last_offset,
            };
        }
        let expected = entry.batches.back().map_or(0, |last| {
            if last.last_sequence == i32::MAX {
                0
            } else {
                last.last_sequence + 1
            }
        });
        if batch.base_sequence != expected {
            return SequenceCheck::OutOfOrder {
                expected,
                found: batch.base_sequence,
            };
        }
        SequenceCheck::Accept
    }

    /// Records an appended batch (by the leader after `check`, or copied by a follower, or
    /// found by recovery), appended at `append_ms`.
    pub(crate) fn record(
        &mut self,
        batch: &BatchIdentity,
        base_offset: i64,
        last_offset: i64,
        append_ms: i64,
    ) {
        if batch.producer_id == NO_PRODUCER_ID {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        entry.last_append_ms = entry.last_append_ms.max(append_ms);
        if batch.producer_epoch > entry.epoch || entry.batches.is_empty() {
            entry.batches.clear();
        }
        entry.epoch = entry.epoch.max(batch.producer_epoch);
        entry.batches.push_back(BatchRecord {
            base_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            base_offset,
            last_offset,
        });
        while entry.batches.len() > BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
    }

    /// Forgets the least recently appending producers until at most `max_producer_ids` remain.
    /// A linear scan per eviction: it runs only when an append brings a new producer to a full
    /// table, and keeps the table a plain map for `check`.
    pub(crate) fn evict_beyond(&mut self, max_producer_ids: usize) -> usize {
        let mut evicted = 0;
        while self.producers.len() > max_producer_ids {
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(producer_id, entry)| (entry.last_append_ms, **producer_id))
                .map(|(&producer_id, _)| producer_id)
                .expect("a table over its limit is not empty");
            self.producers.remove(&oldest);
            evicted += 1;
        }
        evicted
    }

    /// Forgets producers that have not appended for `expiration_ms`; returns how many.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| now_ms.saturating_sub(entry.last_append_ms) < expiration_ms);
        before - self.producers.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        record_count: i32,
    ) -> BatchIdentity {
        BatchIdentity {
            producer_id,
            producer_epoch,
            base_sequence,
            record_count,
        }
    }

    #[test]
    fn in_order_batches_are_accepted_and_retries_answered_with_their_offsets() {
        let mut table = ProducerStateTable::default();
        let first = batch(7, 0, 0, 3);
        assert_eq!(table.check(&first), SequenceCheck::Accept);
        table.record(&first, 10, 12, 0);
        let second = batch(7, 0, 3, 2);
        assert_eq!(table.check(&second), SequenceCheck::Accept);
        table.record(&second, 13, 14, 0);
        assert_eq!(
            table.check(&first),
            SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        assert_eq!(
            table.check(&batch(7, 0, 6, 1)),
            SequenceCheck::OutOfOrder {
                expected: 5,
                found: 6
            }
        );
    }

    #[test]
    fn older_epochs_are_fenced_and_new_epochs_restart_at_zero() {
        let mut table = ProducerStateTable::default();
        table.record(&batch(7, 2, 0, 1), 0, 0, 0);
        assert_eq!(
            table.check(&batch(7, 1, 1, 1)),
            SequenceCheck::Fenced { current_epoch: 2 }
        );
        assert_eq!(
            table.check(&batch(7, 3, 5, 1)),
            SequenceCheck::OutOfOrder {
                expected: 0,
                found: 5
            }
        );
        assert_eq!(table.check(&batch(7, 3, 0, 1)), SequenceCheck::Accept);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut table = ProducerStateTable::default();
        for index in 0..7 {
            table.record(
                &batch(1, 0, index, 1),
                i64::from(index),
                i64::from(index),
                0,
            );
        }
        assert_eq!(
            table.check(&batch(1, 0, 2, 1)),
            SequenceCheck::Duplicate {
                base_offset: 2,
                last_offset: 2
            }
        );
        assert_eq!(
            table.check(&batch(1, 0, 1, 1)),
            SequenceCheck::OutOfOrder {
                expected: 7,
                found: 1
            }
        );
        let mut wrapping = ProducerStateTable::default();
        wrapping.record(&batch(2, 0, i32::MAX - 1, 2), 0, 1, 0);
        assert_eq!(wrapping.check(&batch(2, 0, 0, 1)), SequenceCheck::Accept);
    }

    #[test]
    fn idle_producers_expire_and_the_least_recent_go_first_past_the_limit() {
        let mut table = ProducerStateTable::default();
        table.record(&batch(1, 0, 0, 1), 0, 0, 1_000);
        table.record(&batch(2, 0, 0, 1), 1, 1, 2_000);
        table.record(&batch(3, 0, 0, 1), 2, 2, 3_000);
        table.record(&batch(1, 0, 1, 1), 3, 3, 4_000);
        assert_eq!(table.evict_beyond(2), 1);
        assert_eq!(table.len(), 2);
        // Producer 2 appended least recently; unknown again, it may resume at any sequence.
        assert_eq!(table.check(&batch(2, 0, 5, 1)), SequenceCheck::Accept);
        assert_eq!(
            table.check(&batch(3, 0, 5, 1)),
            SequenceCheck::OutOfOrder {
                expected: 1,
                found: 5
            }
        );
        assert_eq!(table.expire(4_500, 1_000), 1, "producer 3 was idle 1.5 s");
        assert_eq!(table.check(&batch(3, 0, 5, 1)), SequenceCheck::Accept);
        assert_eq!(
            table.check(&batch(1, 0, 5, 1)),
            SequenceCheck::OutOfOrder {
                expected: 2,
                found: 5
            },
            "producer 1 appended 0.5 s ago and is remembered"
        );
    }
}
