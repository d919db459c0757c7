//! The producer's buffer: records grouped into one queue of batches per partition.
//!
//! This type decides *what* is ready to send and *when*; it does no IO and reads no clock (every
//! method that needs the time takes `now`), so its batching rules are unit-tested without a
//! server or sleeps. The producer's sender task owns the IO.
//!
//! Rules:
//! - A record joins the partition's open (last) batch unless that would take the batch past
//!   `batch_size`; then the open batch is closed and a new one started. A single record larger
//!   than `batch_size` gets a batch of its own.
//! - A partition is ready when its oldest batch is closed, has waited `linger`, is a retry whose
//!   backoff has passed, or a flush or close is in progress.
//! - At most one batch per partition is in flight. A retried batch goes back to the front of its
//!   queue, so retries never reorder a partition's records.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_common::TopicPartition;
use strata_record::{BATCH_HEADER_BYTES, Header, RecordBatch, RecordBatchBuilder};

/// An upper bound of the bytes one record takes inside a batch, computed before encoding so a
/// batch never grows past `batch_size`. Every varint is counted at its maximum width.
pub(crate) fn record_size_upper_bound(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> usize {
    const VARINT32_MAX: usize = 5;
    const VARINT64_MAX: usize = 10;
    let field = |bytes: Option<&[u8]>| VARINT32_MAX + bytes.map_or(0, <[u8]>::len);
    let headers_size: usize = headers
        .iter()
        .map(|header| field(Some(header.key.as_bytes())) + field(header.value.as_deref()))
        .sum();
    // length, attributes, timestamp delta, offset delta, key, value, header count, headers
    VARINT32_MAX
        + 1
        + VARINT64_MAX
        + VARINT32_MAX
        + field(key)
        + field(value)
        + VARINT32_MAX
        + headers_size
}

/// The smallest possible request carrying one record: the batch header plus the record.
pub(crate) fn single_record_batch_size(record_size: usize) -> usize {
    BATCH_HEADER_BYTES + record_size
}

enum Contents {
    Open(RecordBatchBuilder),
    Built(RecordBatch),
}

/// One batch for one partition, with a completion handle per record (`C`).
pub(crate) struct ProducerBatch<C> {
    /// Increasing in creation order across all partitions; `flush` waits for ids below a mark.
    pub id: u64,
    pub topic_partition: TopicPartition,
    contents: Contents,
    /// One per record, in offset order.
    pub completions: Vec<C>,
    pub created: Instant,
    /// How many times the batch has been sent.
    pub attempts: u32,
    retry_not_before: Option<Instant>,
    /// Buffer memory held by the batch, returned when it completes.
    pub reserved_bytes: usize,
    closed: bool,
}

impl<C> ProducerBatch<C> {
    pub(crate) fn record_count(&self) -> usize {
        self.completions.len()
    }

    pub(crate) fn size_in_bytes(&self) -> usize {
        match &self.contents {
            Contents::Open(builder) => builder.size_in_bytes(),
            Contents::Built(batch) => batch.size_in_bytes(),
        }
    }

    /// The encoded batch, once drained for sending. Retries resend exactly these bytes.
    ///
    /// # Panics
    /// When the batch was not drained: only drained batches are sent.
    pub(crate) fn bytes(&self) -> Bytes {
        match &self.contents {
            Contents::Built(batch) => batch.as_bytes().clone(),
            Contents::Open(_) => panic!("only drained batches are sent"),
        }
    }

    fn build(&mut self) {
        let contents = std::mem::replace(
            &mut self.contents,
            Contents::Open(RecordBatchBuilder::new()),
        );
        self.contents = match contents {
            Contents::Open(builder) => Contents::Built(builder.build()),
            built @ Contents::Built(_) => built,
        };
        self.closed = true;
    }
}

impl<C> std::fmt::Debug for ProducerBatch<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProducerBatch")
            .field("id", &self.id)
            .field("topic_partition", &self.topic_partition)
            .field("records", &self.completions.len())
            .field("size_in_bytes", &self.size_in_bytes())
            .field("attempts", &self.attempts)
            .field("closed", &self.closed)
            .finish()
    }
}

struct PartitionQueue<C> {
    batches: VecDeque<ProducerBatch<C>>,
    in_flight: bool,
}

impl<C> Default for PartitionQueue<C> {
    fn default() -> Self {
        PartitionQueue {
            batches: VecDeque::new(),
            in_flight: false,
        }
    }
}

/// What [`RecordAccumulator::append`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    /// The batch the record went into.
    pub batch_id: u64,
    /// The record started a new batch.
    pub new_batch: bool,
    /// A batch of the partition was closed (the previous one had no room, or this one is full):
    /// the partition is ready to send without waiting for `linger`.
    pub batch_closed: bool,
}

/// Which partitions can be sent now, and when to look again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub ready: Vec<TopicPartition>,
    /// The earliest moment a partition that is not ready now becomes ready by the clock alone.
    pub next_check: Option<Instant>,
}

/// A record's fields, borrowed for encoding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordFields<'a> {
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [Header],
}

pub(crate) struct RecordAccumulator<C> {
    batch_size: usize,
    linger: Duration,
    partitions: BTreeMap<TopicPartition, PartitionQueue<C>>,
    next_batch_id: u64,
    flushes_in_progress: usize,
    closing: bool,
}

fn earliest(current: Option<Instant>, candidate: Instant) -> Option<Instant> {
    Some(current.map_or(candidate, |current| current.min(candidate)))
}

impl<C> RecordAccumulator<C> {
    pub(crate) fn new(batch_size: usize, linger: Duration) -> RecordAccumulator<C> {
        RecordAccumulator {
            batch_size,
            linger,
            partitions: BTreeMap::new(),
            next_batch_id: 0,
            flushes_in_progress: 0,
            closing: false,
        }
    }

    /// Adds a record to `topic_partition`'s open batch. `size_bound` is
    /// [`record_size_upper_bound`] of the record; it is also the buffer memory the record holds.
    pub(crate) fn append(
        &mut self,
        topic_partition: &TopicPartition,
        now: Instant,
        record: RecordFields<'_>,
        size_bound: usize,
        completion: C,
    ) -> Appended {
        let batch_size = self.batch_size;
        let queue = self.partitions.entry(topic_partition.clone()).or_default();
        let mut batch_closed = false;
        if let Some(open) = queue.batches.back_mut().filter(|batch| !batch.closed)
            && open.size_in_bytes() + size_bound > batch_size
        {
            open.closed = true;
            batch_closed = true;
        }
        let new_batch = queue.batches.back().is_none_or(|batch| batch.closed);
        if new_batch {
            let id = self.next_batch_id;
            self.next_batch_id += 1;
            queue.batches.push_back(ProducerBatch {
                id,
                topic_partition: topic_partition.clone(),
                contents: Contents::Open(RecordBatchBuilder::new()),
                completions: Vec::new(),
                created: now,
                attempts: 0,
                retry_not_before: None,
                reserved_bytes: 0,
                closed: false,
            });
        }
        let batch = queue
            .batches
            .back_mut()
            .expect("an open batch was just ensured");
        let Contents::Open(builder) = &mut batch.contents else {
            unreachable!("the last batch is open, so it is not built")
        };
        builder.push(record.timestamp, record.key, record.value, record.headers);
        batch.completions.push(completion);
        batch.reserved_bytes += size_bound;
        if batch.size_in_bytes() >= batch_size {
            batch.closed = true;
            batch_closed = true;
        }
        Appended {
            batch_id: batch.id,
            new_batch,
            batch_closed,
        }
    }

    /// The partitions whose oldest batch may be sent at `now`.
    pub(crate) fn ready(&self, now: Instant) -> Readiness {
        let mut readiness = Readiness::default();
        let hurry = self.flushes_in_progress > 0 || self.closing;
        for (topic_partition, queue) in &self.partitions {
            let Some(oldest) = queue.batches.front() else {
                continue;
            };
            if queue.in_flight {
                continue;
            }
            if let Some(retry_at) = oldest.retry_not_before
                && retry_at > now
            {
                readiness.next_check = earliest(readiness.next_check, retry_at);
                continue;
            }
            let linger_done = oldest.created + self.linger;
            let ready = oldest.closed
                || queue.batches.len() > 1
                || oldest.attempts > 0
                || hurry
                || now >= linger_done;
            if ready {
                readiness.ready.push(topic_partition.clone());
            } else {
                readiness.next_check = earliest(readiness.next_check, linger_done);
            }
        }
        readiness
    }

    /// The size of the batch [`drain`](Self::drain) would return for `topic_partition`.
    pub(crate) fn oldest_size(&self, topic_partition: &TopicPartition) -> Option<usize> {
        let queue = self.partitions.get(topic_partition)?;
        queue.batches.front().map(ProducerBatch::size_in_bytes)
    }

    /// Takes the oldest batch of `topic_partition` for sending and marks the partition in
    /// flight until [`complete`](Self::complete) or [`reenqueue`](Self::reenqueue).
    pub(crate) fn drain(&mut self, topic_partition: &TopicPartition) -> Option<ProducerBatch<C>> {
        let queue = self.partitions.get_mut(topic_partition)?;
        if queue.in_flight {
            return None;
        }
        let mut batch = queue.batches.pop_front()?;
        queue.in_flight = true;
        batch.build();
        batch.attempts += 1;
        batch.retry_not_before = None;
        Some(batch)
    }

    /// The in-flight batch of `topic_partition` finished (acknowledged or failed for good).
    pub(crate) fn complete(&mut self, topic_partition: &TopicPartition) {
        if let Some(queue) = self.partitions.get_mut(topic_partition) {
            queue.in_flight = false;
            if queue.batches.is_empty() {
                self.partitions.remove(topic_partition);
            }
        }
    }

    /// Puts a batch whose send failed back at the front of its queue, to be sent again no
    /// earlier than `retry_not_before`.
    pub(crate) fn reenqueue(&mut self, mut batch: ProducerBatch<C>, retry_not_before: Instant) {
        batch.retry_not_before = Some(retry_not_before);
        let queue = self
            .partitions
            .entry(batch.topic_partition.clone())
            .or_default();
        queue.in_flight = false;
        queue.batches.push_front(batch);
    }

    /// Removes the queued batches created at or before `now - delivery_timeout`; the caller
    /// fails their records. In-flight batches are not here: their request decides.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        delivery_timeout: Duration,
    ) -> Vec<ProducerBatch<C>> {
        let mut expired = Vec::new();
        for queue in self.partitions.values_mut() {
            // Batches are queued in creation order, except a retried batch at the front, which
            // is older still; so the expired ones are a prefix.
            while queue
                .batches
                .front()
                .is_some_and(|batch| batch.created + delivery_timeout <= now)
            {
                expired.extend(queue.batches.pop_front());
            }
        }
        self.partitions
            .retain(|_, queue| queue.in_flight || !queue.batches.is_empty());
        expired
    }

    /// When the oldest queued batch will expire.
    pub(crate) fn next_expiry(&self, delivery_timeout: Duration) -> Option<Instant> {
        self.partitions
            .values()
            .filter_map(|queue| queue.batches.front())
            .map(|batch| batch.created + delivery_timeout)
            .min()
    }

    /// Removes every queued batch, for a producer that gives up on them.
    pub(crate) fn drain_all(&mut self) -> Vec<ProducerBatch<C>> {
        let mut drained = Vec::new();
        for queue in self.partitions.values_mut() {
            drained.extend(queue.batches.drain(..));
        }
        self.partitions.retain(|_, queue| queue.in_flight);
        drained
    }

    /// The id the next new batch will get: every batch created so far has a smaller one.
    pub(crate) fn next_batch_id(&self) -> u64 {
        self.next_batch_id
    }

    /// While a flush is in progress every batch is ready, regardless of `linger`.
    pub(crate) fn begin_flush(&mut self) {
        self.flushes_in_progress += 1;
    }

    pub(crate) fn end_flush(&mut self) {
        self.flushes_in_progress = self.flushes_in_progress.saturating_sub(1);
    }

    /// From now on every batch is ready: the producer is closing and sends what it has.
    pub(crate) fn close(&mut self) {
        self.closing = true;
    }

    /// No batch is queued or in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINGER: Duration = Duration::from_millis(5);

    fn partition(number: i32) -> TopicPartition {
        TopicPartition::new("t", number)
    }

    fn record(value: &[u8]) -> RecordFields<'_> {
        RecordFields {
            timestamp: 1_000,
            key: None,
            value: Some(value),
            headers: &[],
        }
    }

    fn append(
        accumulator: &mut RecordAccumulator<u32>,
        number: i32,
        now: Instant,
        value: &[u8],
        tag: u32,
    ) -> Appended {
        let size = record_size_upper_bound(None, Some(value), &[]);
        accumulator.append(&partition(number), now, record(value), size, tag)
    }

    #[test]
    fn size_bound_is_never_below_the_encoded_size() {
        let headers = vec![Header {
            key: "trace".into(),
            value: Some(Bytes::from_static(b"abc")),
        }];
        for length in [0usize, 1, 63, 64, 127, 128, 10_000, 300_000] {
            let value = vec![7u8; length];
            let mut builder = RecordBatchBuilder::new();
            let before = builder.size_in_bytes();
            builder.push(i64::MAX / 2, Some(b"key"), Some(&value), &headers);
            let encoded = builder.size_in_bytes() - before;
            let bound = record_size_upper_bound(Some(b"key"), Some(&value), &headers);
            assert!(
                bound >= encoded,
                "bound {bound} < encoded {encoded} for {length} bytes"
            );
            assert!(
                bound <= encoded + 40,
                "bound {bound} is loose for {encoded} bytes"
            );
        }
    }

    #[test]
    fn records_wait_for_linger_then_go_in_one_batch() {
        let start = Instant::now();
        let mut accumulator = RecordAccumulator::new(1 << 20, LINGER);
        let first = append(&mut accumulator, 0, start, b"a", 0);
        assert!(first.new_batch && !first.batch_closed);
        let second = append(
            &mut accumulator,
            0,
            start + Duration::from_millis(1),
            b"b",
            1,
        );
        assert_eq!(second.batch_id, first.batch_id);
        assert!(!second.new_batch);

        let readiness = accumulator.ready(start + Duration::from_millis(4));
        assert!(readiness.ready.is_empty());
        assert_eq!(readiness.next_check, Some(start + LINGER));

        let readiness = accumulator.ready(start + LINGER);
        assert_eq!(readiness.ready, vec![partition(0)]);
        let batch = accumulator.drain(&partition(0)).expect("a batch");
        assert_eq!(batch.completions, vec![0, 1]);
        let built = RecordBatch::new(batch.bytes()).expect("framed");
        built.validate(usize::MAX).expect("a valid batch");
        assert_eq!(built.record_count(), 2);
    }

    #[test]
    fn a_full_batch_is_ready_before_linger() {
        let start = Instant::now();
        let value = vec![0u8; 100];
        let batch_size = BATCH_HEADER_BYTES + 3 * record_size_upper_bound(None, Some(&value), &[]);
        let mut accumulator = RecordAccumulator::new(batch_size, Duration::from_secs(3600));
        let mut closed_at = None;
        for index in 0..7 {
            let appended = append(&mut accumulator, 0, start, &value, index);
            if appended.batch_closed && closed_at.is_none() {
                closed_at = Some(index);
            }
        }
        assert!(closed_at.is_some(), "filling a batch closes it");
        assert_eq!(accumulator.ready(start).ready, vec![partition(0)]);
        let mut counts = Vec::new();
        for _ in 0..3 {
            let Some(batch) = accumulator.drain(&partition(0)) else {
                break;
            };
            assert!(
                batch.size_in_bytes() <= batch_size,
                "batch of {} bytes",
                batch.size_in_bytes()
            );
            counts.push(batch.record_count());
            accumulator.complete(&partition(0));
        }
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(
            counts.len() >= 3,
            "7 records of which 3 fit a batch need 3 batches: {counts:?}"
        );
    }

    #[test]
    fn an_oversized_record_gets_a_batch_of_its_own() {
        let start = Instant::now();
        let mut accumulator = RecordAccumulator::new(200, LINGER);
        append(&mut accumulator, 0, start, b"small", 0);
        let big = vec![1u8; 1_000];
        let appended = append(&mut accumulator, 0, start, &big, 1);
        assert!(appended.new_batch && appended.batch_closed);
        let first = accumulator.drain(&partition(0)).expect("first batch");
        assert_eq!(first.completions, vec![0]);
        accumulator.complete(&partition(0));
        let second = accumulator.drain(&partition(0)).expect("second batch");
        assert_eq!(second.completions, vec![1]);
    }

    #[test]
    fn one_batch_in_flight_per_partition_and_retries_keep_order() {
        let start = Instant::now();
        let mut accumulator = RecordAccumulator::new(1 << 20, Duration::ZERO);
        append(&mut accumulator, 0, start, b"first", 0);
        let first = accumulator.drain(&partition(0)).expect("first batch");
        append(&mut accumulator, 0, start, b"second", 1);
        append(&mut accumulator, 1, start, b"other", 2);
        assert_eq!(
            accumulator.ready(start).ready,
            vec![partition(1)],
            "partition 0 is in flight"
        );
        assert!(accumulator.drain(&partition(0)).is_none());

        let retry_at = start + Duration::from_millis(100);
        accumulator.reenqueue(first, retry_at);
        let readiness = accumulator.ready(start);
        assert_eq!(readiness.ready, vec![partition(1)]);
        assert_eq!(readiness.next_check, Some(retry_at));
        assert_eq!(
            accumulator.ready(retry_at).ready,
            vec![partition(0), partition(1)]
        );
        let again = accumulator
            .drain(&partition(0))
            .expect("the retried batch first");
        assert_eq!(again.completions, vec![0]);
        assert_eq!(again.attempts, 2);
        accumulator.complete(&partition(0));
        let next = accumulator.drain(&partition(0)).expect("then the next one");
        assert_eq!(next.completions, vec![1]);
    }

    #[test]
    fn flush_and_close_make_every_batch_ready() {
        let start = Instant::now();
        let mut accumulator = RecordAccumulator::new(1 << 20, Duration::from_secs(3600));
        append(&mut accumulator, 0, start, b"a", 0);
        append(&mut accumulator, 1, start, b"b", 1);
        assert!(accumulator.ready(start).ready.is_empty());
        accumulator.begin_flush();
        assert_eq!(accumulator.ready(start).ready.len(), 2);
        accumulator.end_flush();
        assert!(accumulator.ready(start).ready.is_empty());
        accumulator.close();
        assert_eq!(accumulator.ready(start).ready.len(), 2);
    }

    #[test]
    fn batch_ids_grow_so_flush_can_wait_for_older_ones() {
        let start = Instant::now();
        let mut accumulator = RecordAccumulator::new(1 << 20, LINGER);
        let a = append(&mut accumulator, 0, start, b"a", 0);
        let b = append(&mut accumulator, 1, start, b"b", 1);
        assert!(b.batch_id > a.batch_id);
        assert_eq!(accumulator.next_batch_id(), b.batch_id + 1);
    }

    #[test]
    fn queued_batches_expire_after_the_delivery_timeout() {
        let start = Instant::now();
        let timeout = Duration::from_secs(10);
        let mut accumulator = RecordAccumulator::new(1 << 20, LINGER);
        append(&mut accumulator, 0, start, b"old", 0);
        append(
            &mut accumulator,
            1,
            start + Duration::from_secs(5),
            b"new",
            1,
        );
        assert_eq!(accumulator.next_expiry(timeout), Some(start + timeout));
        assert!(
            accumulator
                .expire(start + Duration::from_secs(9), timeout)
                .is_empty()
        );
        let expired = accumulator.expire(start + timeout, timeout);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].completions, vec![0]);
        assert!(!accumulator.is_empty());
        assert_eq!(accumulator.drain_all().len(), 1);
        assert!(accumulator.is_empty());
    }
}
