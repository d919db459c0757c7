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
//! - At most `max_in_flight` batches per partition are in flight (Kafka's
//!   `max.in.flight.requests.per.connection`, at most five: the leader remembers the last five
//!   batches of each producer, so it recognises a retry of any of them). A retried batch goes
//!   back into its queue in creation order, ahead of every newer batch, and while a retry is at
//!   the front the partition sends one batch at a time. With idempotence that keeps a
//!   partition's records in order across retries: a newer batch in flight behind a failed one
//!   is refused as out of sequence and retried after it. Without idempotence, as in Kafka, the
//!   newer batch may already be stored, so the retry lands behind it unless `max_in_flight` is 1.
//!
//! Idempotence (Kafka's `TransactionManager` sequence bookkeeping, without transactions): an
//! idempotent accumulator stamps each batch with the producer id, epoch and the partition's next
//! base sequence when the batch is first drained, and advances the sequence by its record count
//! (wrapping from `i32::MAX` to 0). A retry resends the built bytes, so it carries the same
//! sequence and the leader recognises it. Assigning at drain rather than at append means a batch
//! that expires before it was ever sent used no sequence, so it leaves no gap.
//!
//! When a sequenced batch fails for good its fate on the broker may be unknown (a timeout) and
//! the next sequence would leave a gap the leader refuses, so the accumulator forgets the producer
//! id: no new batch is stamped until [`RecordAccumulator::set_producer`] installs a fresh one,
//! whose sequences start at 0 on every partition. Batches already stamped with the old id keep it;
//! the old id's state on their partitions is still consistent, so their retries still work.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_common::TopicPartition;
use strata_record::{BATCH_HEADER_BYTES, CompressionType, Header, RecordBatch, RecordBatchBuilder};

use crate::descriptions::ProducerIdAndEpoch;

/// What a drained batch of an idempotent producer was stamped with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchSequence {
    pub producer: ProducerIdAndEpoch,
    pub base_sequence: i32,
}

/// The sequence after `record_count` records from `base_sequence`: sequences count records and
/// wrap from `i32::MAX` to 0, as the leader expects.
pub(crate) fn next_sequence(base_sequence: i32, record_count: i32) -> i32 {
    debug_assert!(base_sequence >= 0 && record_count > 0);
    let wrapped = (i64::from(base_sequence) + i64::from(record_count)) % (i64::from(i32::MAX) + 1);
    i32::try_from(wrapped).expect("a value modulo 2^31 fits i32")
}

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
    /// Why the last attempt failed, so a batch that runs out of time says what kept failing.
    pub last_error: Option<String>,
    /// What last kept the batch from being sent (its partition had no leader), so a batch that
    /// runs out of time without a request to fail says why. Kept apart from `last_error`
    /// because the batch may have been sent before, and that failure is worth reporting too.
    held_back_by: Option<String>,
    retry_not_before: Option<Instant>,
    /// Buffer memory held by the batch, returned when it completes.
    pub reserved_bytes: usize,
    /// Set on the first drain of an idempotent producer's batch; never changes afterwards.
    pub sequence: Option<BatchSequence>,
    closed: bool,
}

impl<C> ProducerBatch<C> {
    /// The batch has been sent before: it is a retry.
    fn is_retry(&self) -> bool {
        self.attempts > 0
    }

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

    /// Encodes the batch, stamped with `sequence` when given. Building twice is a no-op, so a
    /// retry keeps the bytes (and the sequence) of its first attempt.
    fn build(&mut self, sequence: Option<BatchSequence>) {
        let contents = std::mem::replace(
            &mut self.contents,
            Contents::Open(RecordBatchBuilder::new()),
        );
        self.contents = match contents {
            Contents::Open(mut builder) => {
                if let Some(sequence) = sequence {
                    builder.set_producer(
                        sequence.producer.producer_id,
                        sequence.producer.epoch,
                        sequence.base_sequence,
                    );
                }
                self.sequence = sequence;
                Contents::Built(builder.build())
            }
            built @ Contents::Built(_) => built,
        };
        self.closed = true;
    }

    fn is_built(&self) -> bool {
        matches!(self.contents, Contents::Built(_))
    }

    /// Why the batch is not delivered, for the error of a batch that ran out of time: whether
    /// and how often it was sent, how the last attempt failed, and what held it back since.
    pub(crate) fn why_undelivered(&self) -> String {
        let mut why = match (self.attempts, &self.last_error) {
            (0, _) => "never sent".to_string(),
            (1, Some(error)) => format!("1 attempt, which failed with {error}"),
            (attempts, Some(error)) => {
                format!("{attempts} attempts; the last failed with {error}")
            }
            (1, None) => "1 attempt".to_string(),
            (attempts, None) => format!("{attempts} attempts"),
        };
        if let Some(cause) = &self.held_back_by {
            let separator = if self.is_retry() {
                "; since then: "
            } else {
                ": "
            };
            why.push_str(separator);
            why.push_str(cause);
        }
        why
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
            .field("sequence", &self.sequence)
            .field("closed", &self.closed)
            .finish()
    }
}

struct PartitionQueue<C> {
    /// Waiting to be sent, in creation order (retries included).
    batches: VecDeque<ProducerBatch<C>>,
    /// Ids of the batches sent and not yet completed or re-enqueued.
    in_flight: BTreeSet<u64>,
}

impl<C> Default for PartitionQueue<C> {
    fn default() -> Self {
        PartitionQueue {
            batches: VecDeque::new(),
            in_flight: BTreeSet::new(),
        }
    }
}

impl<C> PartitionQueue<C> {
    /// Whether the oldest queued batch may be sent now, as far as in-flight batches go: a retry
    /// waits until nothing else of the partition is in flight, so it goes out alone and in order.
    fn may_send(&self, max_in_flight: usize) -> bool {
        match self.batches.front() {
            Some(oldest) if oldest.is_retry() => self.in_flight.is_empty(),
            Some(_) => self.in_flight.len() < max_in_flight,
            None => false,
        }
    }

    fn is_idle(&self) -> bool {
        self.batches.is_empty() && self.in_flight.is_empty()
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
    /// Whether batches must be stamped with a producer id and sequence before they are sent.
    idempotent: bool,
    /// The id batches are stamped with; `None` while an idempotent accumulator waits for one.
    producer: Option<ProducerIdAndEpoch>,
    /// Next base sequence per partition under `producer`. Kept apart from `partitions`, whose
    /// entries come and go with their queues, because a sequence must outlive an empty queue.
    next_sequences: BTreeMap<TopicPartition, i32>,
    /// Batches per partition that may be in flight at once.
    max_in_flight: usize,
    /// The codec batches are compressed with when built (drained). `batch_size` bounds a
    /// batch's records before compression, so a compressed batch is smaller, not fuller.
    compression: CompressionType,
    /// Partitions whose leader has acknowledged a batch stamped with `producer`. Only such a
    /// leader refuses a sequence gap: one that does not know the producer yet takes any first
    /// sequence, so a newer batch could be stored ahead of an older one that failed. Until the
    /// first acknowledgement a partition keeps one batch in flight.
    acknowledged: BTreeSet<TopicPartition>,
}

/// The most batches per partition a producer keeps in flight: the leader remembers the last five
/// batches of each producer, so a retry of any of them is still recognised.
pub(crate) const MAX_IN_FLIGHT_PER_PARTITION: usize = 5;

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
            idempotent: false,
            producer: None,
            next_sequences: BTreeMap::new(),
            max_in_flight: 1,
            compression: CompressionType::None,
            acknowledged: BTreeSet::new(),
        }
    }

    /// Compresses every batch with `codec` (Kafka's `compression.type`).
    pub(crate) fn with_compression(mut self, codec: CompressionType) -> RecordAccumulator<C> {
        self.compression = codec;
        self
    }

    /// Lets up to `max_in_flight` batches of a partition be in flight at once (at most
    /// [`MAX_IN_FLIGHT_PER_PARTITION`]).
    pub(crate) fn with_max_in_flight(mut self, max_in_flight: usize) -> RecordAccumulator<C> {
        assert!(
            (1..=MAX_IN_FLIGHT_PER_PARTITION).contains(&max_in_flight),
            "max_in_flight must be within 1..=5"
        );
        self.max_in_flight = max_in_flight;
        self
    }

    /// An accumulator whose batches carry a producer id and sequences. Nothing new is sent until
    /// [`set_producer`](Self::set_producer) gives it an id.
    pub(crate) fn idempotent(batch_size: usize, linger: Duration) -> RecordAccumulator<C> {
        RecordAccumulator {
            idempotent: true,
            ..RecordAccumulator::new(batch_size, linger)
        }
    }

    /// Installs the producer id and epoch to stamp batches with. A different id restarts every
    /// partition's sequence at 0, as the leader expects of a producer id it has not seen.
    pub(crate) fn set_producer(&mut self, producer: ProducerIdAndEpoch) {
        assert!(
            self.idempotent,
            "only an idempotent accumulator stamps batches"
        );
        if self.producer != Some(producer) {
            self.next_sequences.clear();
            self.acknowledged.clear();
        }
        self.producer = Some(producer);
    }

    /// The producer id batches are stamped with, if any.
    #[cfg(test)]
    pub(crate) fn producer(&self) -> Option<ProducerIdAndEpoch> {
        self.producer
    }

    /// An idempotent accumulator without a usable producer id: the caller must obtain one with
    /// `InitProducerId` before new batches can be sent.
    pub(crate) fn needs_producer_id(&self) -> bool {
        self.idempotent && self.producer.is_none()
    }

    /// The base sequence the next batch drained for `topic_partition` will get.
    #[cfg(test)]
    pub(crate) fn next_sequence(&self, topic_partition: &TopicPartition) -> i32 {
        self.next_sequences
            .get(topic_partition)
            .copied()
            .unwrap_or(0)
    }

    /// A batch was failed for good (not acknowledged). If it was stamped under the current
    /// producer id, the partition's sequence now has a gap (or an unknown batch) behind it, so
    /// the id is dropped and `true` returned: the caller must fetch a new one. A batch stamped
    /// under an id already replaced changes nothing.
    pub(crate) fn on_batch_failed(&mut self, batch: &ProducerBatch<C>) -> bool {
        match batch.sequence {
            Some(sequence) if Some(sequence.producer) == self.producer => {
                self.producer = None;
                self.next_sequences.clear();
                self.acknowledged.clear();
                true
            }
            _ => false,
        }
    }

    /// The leader acknowledged `batch`. Once it has acknowledged one stamped with the current
    /// producer id, the partition may have several batches in flight.
    pub(crate) fn on_batch_acknowledged(&mut self, batch: &ProducerBatch<C>) {
        if let Some(sequence) = batch.sequence
            && Some(sequence.producer) == self.producer
            && !self.acknowledged.contains(&batch.topic_partition)
        {
            self.acknowledged.insert(batch.topic_partition.clone());
        }
    }

    /// How many batches of `topic_partition` may be in flight now.
    fn in_flight_limit(&self, topic_partition: &TopicPartition) -> usize {
        if self.idempotent && !self.acknowledged.contains(topic_partition) {
            1
        } else {
            self.max_in_flight
        }
    }

    /// Adds a record to `topic_partition`'s open batch. `size_bound` is
    /// [`record_size_upper_bound`] of the record; it is also the buffer memory the record holds.
    /// `now` is called only when the record starts a new batch, to date it.
    pub(crate) fn append(
        &mut self,
        topic_partition: &TopicPartition,
        now: impl FnOnce() -> Instant,
        record: RecordFields<'_>,
        size_bound: usize,
        completion: C,
    ) -> Appended {
        let batch_size = self.batch_size;
        let compression = self.compression;
        // Looked up before `entry`, which would clone the key (a String) on every record.
        if !self.partitions.contains_key(topic_partition) {
            self.partitions
                .insert(topic_partition.clone(), PartitionQueue::default());
        }
        let queue = self
            .partitions
            .get_mut(topic_partition)
            .expect("the partition's queue was just ensured");
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
                // Sized for a full batch up front: growing by doubling to `batch_size` copied
                // each batch once more (5 % of the client's CPU at 1 KiB records). Capacity not
                // yet written costs address space, not memory.
                contents: Contents::Open(
                    RecordBatchBuilder::with_capacity(
                        batch_size.max(single_record_batch_size(size_bound)),
                    )
                    .compression(compression),
                ),
                completions: Vec::new(),
                created: now(),
                attempts: 0,
                last_error: None,
                held_back_by: None,
                retry_not_before: None,
                reserved_bytes: 0,
                sequence: None,
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
            if !queue.may_send(self.in_flight_limit(topic_partition)) {
                continue;
            }
            // A new batch cannot be stamped until a producer id arrives; retries already are.
            if self.needs_producer_id() && !oldest.is_built() {
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
                || oldest.is_retry()
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
    ///
    /// The first drain of a batch builds it; an idempotent accumulator stamps it with the
    /// partition's next sequence then. Returns `None` for a batch that cannot be stamped yet
    /// (no producer id).
    pub(crate) fn drain(&mut self, topic_partition: &TopicPartition) -> Option<ProducerBatch<C>> {
        let needs_producer_id = self.needs_producer_id();
        let limit = self.in_flight_limit(topic_partition);
        let queue = self.partitions.get_mut(topic_partition)?;
        if !queue.may_send(limit) {
            return None;
        }
        let oldest = queue.batches.front()?;
        let sequence = match (self.producer, oldest.is_built()) {
            (_, true) => None,
            (None, false) if needs_producer_id => return None,
            (None, false) => None,
            (Some(producer), false) => {
                let base_sequence = self
                    .next_sequences
                    .get(topic_partition)
                    .copied()
                    .unwrap_or(0);
                let record_count = i32::try_from(oldest.record_count())
                    .expect("a batch of at most batch_size bytes has fewer than 2^31 records");
                self.next_sequences.insert(
                    topic_partition.clone(),
                    next_sequence(base_sequence, record_count),
                );
                Some(BatchSequence {
                    producer,
                    base_sequence,
                })
            }
        };
        let mut batch = queue
            .batches
            .pop_front()
            .expect("the queue has the batch just looked at");
        queue.in_flight.insert(batch.id);
        batch.build(sequence);
        batch.attempts += 1;
        batch.retry_not_before = None;
        batch.held_back_by = None;
        Some(batch)
    }

    /// Records why the queued batches of `topic_partition` cannot be sent now (it has no
    /// leader), for the error they fail with if that lasts past the delivery timeout.
    pub(crate) fn hold_back(&mut self, topic_partition: &TopicPartition, cause: &str) {
        let Some(queue) = self.partitions.get_mut(topic_partition) else {
            return;
        };
        for batch in &mut queue.batches {
            // The sender repeats this every retry backoff while the cause lasts.
            if batch.held_back_by.as_deref() != Some(cause) {
                batch.held_back_by = Some(cause.to_string());
            }
        }
    }

    /// An in-flight batch finished (acknowledged or failed for good).
    pub(crate) fn complete(&mut self, batch: &ProducerBatch<C>) {
        if let Some(queue) = self.partitions.get_mut(&batch.topic_partition) {
            queue.in_flight.remove(&batch.id);
            if queue.is_idle() {
                self.partitions.remove(&batch.topic_partition);
            }
        }
    }

    /// Puts a batch whose send failed back into its queue, ahead of every newer batch, to be
    /// sent again no earlier than `retry_not_before`.
    pub(crate) fn reenqueue(&mut self, mut batch: ProducerBatch<C>, retry_not_before: Instant) {
        batch.retry_not_before = Some(retry_not_before);
        let queue = self
            .partitions
            .entry(batch.topic_partition.clone())
            .or_default();
        queue.in_flight.remove(&batch.id);
        // Batch ids grow in creation order, which is also the partition's sequence order.
        let position = queue.batches.partition_point(|queued| queued.id < batch.id);
        queue.batches.insert(position, batch);
    }

    /// Whether a batch of `topic_partition` older than `batch_id` is still unsettled: in flight,
    /// or queued for a retry. A newer batch's outcome waits for it (records are reported in
    /// offset order), and a sequence error on the newer batch may just mean the leader has not
    /// seen the older one yet.
    pub(crate) fn has_older_unsettled(
        &self,
        topic_partition: &TopicPartition,
        batch_id: u64,
    ) -> bool {
        self.partitions.get(topic_partition).is_some_and(|queue| {
            queue
                .in_flight
                .first()
                .is_some_and(|&oldest| oldest < batch_id)
                || queue
                    .batches
                    .front()
                    .is_some_and(|queued| queued.is_retry() && queued.id < batch_id)
        })
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
        self.partitions.retain(|_, queue| !queue.is_idle());
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
        self.partitions.retain(|_, queue| !queue.is_idle());
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
        accumulator.append(&partition(number), || now, record(value), size, tag)
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
    fn batches_are_compressed_with_the_configured_codec_when_drained() {
        let start = Instant::now();
        let mut accumulator =
            RecordAccumulator::new(1 << 20, LINGER).with_compression(CompressionType::Lz4);
        let value = vec![b'x'; 1_000];
        for tag in 0..10 {
            append(&mut accumulator, 0, start, &value, tag);
        }
        let open_size = accumulator.oldest_size(&partition(0)).expect("a batch");
        let batch = accumulator.drain(&partition(0)).expect("a batch");
        let built = RecordBatch::new(batch.bytes()).expect("framed");
        assert_eq!(built.compression_type(), Ok(CompressionType::Lz4));
        assert!(built.size_in_bytes() < open_size / 10, "{built:?}");
        built.validate(usize::MAX).expect("a valid batch");
        assert_eq!(built.records().count(), 10);
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
            accumulator.complete(&batch);
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
        accumulator.complete(&first);
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
        accumulator.complete(&again);
        let next = accumulator.drain(&partition(0)).expect("then the next one");
        assert_eq!(next.completions, vec![1]);
    }

    #[test]
    fn several_batches_fly_once_acknowledged_and_a_retry_goes_alone_and_in_order() {
        let start = Instant::now();
        let mut accumulator =
            RecordAccumulator::idempotent(1 << 20, Duration::ZERO).with_max_in_flight(3);
        accumulator.set_producer(PRODUCER);
        for tag in 0..6 {
            append(&mut accumulator, 0, start, b"x", tag);
            let closed = accumulator
                .partitions
                .get_mut(&partition(0))
                .and_then(|queue| queue.batches.back_mut())
                .expect("just appended");
            closed.closed = true;
        }
        // The leader does not know this producer yet: one batch at a time.
        let first = accumulator.drain(&partition(0)).expect("first");
        assert!(accumulator.drain(&partition(0)).is_none());
        accumulator.complete(&first);
        accumulator.on_batch_acknowledged(&first);

        // Acknowledged once: up to three in flight.
        let second = accumulator.drain(&partition(0)).expect("second");
        let third = accumulator.drain(&partition(0)).expect("third");
        let fourth = accumulator.drain(&partition(0)).expect("fourth");
        assert!(
            accumulator.drain(&partition(0)).is_none(),
            "three in flight"
        );
        assert!(accumulator.ready(start).ready.is_empty());
        assert!(!accumulator.has_older_unsettled(&partition(0), second.id));
        assert!(accumulator.has_older_unsettled(&partition(0), third.id));

        // The second fails and the two behind it are refused: they go back in creation order.
        accumulator.reenqueue(fourth, start);
        accumulator.reenqueue(second, start);
        accumulator.reenqueue(third, start);
        assert!(accumulator.has_older_unsettled(&partition(0), 4));
        let retry = accumulator.drain(&partition(0)).expect("the oldest retry");
        assert_eq!(retry.completions, vec![1]);
        assert!(
            accumulator.drain(&partition(0)).is_none(),
            "a retry goes alone"
        );
        accumulator.complete(&retry);
        let next = accumulator.drain(&partition(0)).expect("the next retry");
        assert_eq!(next.completions, vec![2]);
        accumulator.complete(&next);
        let last_retry = accumulator.drain(&partition(0)).expect("the last retry");
        assert_eq!(last_retry.completions, vec![3]);
        accumulator.complete(&last_retry);
        // Retries done: new batches fly together again, stamped after the retried ones.
        let fifth = accumulator.drain(&partition(0)).expect("fifth");
        let sixth = accumulator.drain(&partition(0)).expect("sixth");
        assert_eq!((fifth.completions[0], sixth.completions[0]), (4, 5));
        assert_eq!(stamped(&fifth).2, 4);
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

    #[test]
    fn a_batch_held_back_before_its_first_send_says_it_never_went() {
        let start = Instant::now();
        let timeout = Duration::from_secs(1);
        let mut accumulator = RecordAccumulator::new(1 << 20, LINGER);
        append(&mut accumulator, 0, start, b"a", 0);
        append(&mut accumulator, 1, start, b"b", 1);
        accumulator.hold_back(&partition(0), "no leader for t-0 in the cluster metadata");
        let expired = accumulator.expire(start + timeout, timeout);
        let why: Vec<String> = expired.iter().map(ProducerBatch::why_undelivered).collect();
        assert_eq!(
            why,
            [
                "never sent: no leader for t-0 in the cluster metadata",
                "never sent"
            ]
        );
    }

    #[test]
    fn a_retried_batch_names_its_last_failure_and_a_hold_since_then() {
        let start = Instant::now();
        let timeout = Duration::from_secs(1);
        let mut accumulator = RecordAccumulator::new(1 << 20, Duration::ZERO);
        let no_leader = |number| format!("no leader for t-{number} in the cluster metadata");
        append(&mut accumulator, 0, start, b"held after its retry", 0);
        append(&mut accumulator, 1, start, b"held before its retry", 1);
        accumulator.hold_back(&partition(1), &no_leader(1));
        for number in [0, 1] {
            let mut batch = accumulator.drain(&partition(number)).expect("a batch");
            batch.last_error = Some("NOT_LEADER_OR_FOLLOWER: moved".to_string());
            accumulator.reenqueue(batch, start);
        }
        accumulator.hold_back(&partition(0), &no_leader(0));
        let expired = accumulator.expire(start + timeout, timeout);
        let why: Vec<String> = expired.iter().map(ProducerBatch::why_undelivered).collect();
        assert_eq!(
            why,
            [
                "1 attempt, which failed with NOT_LEADER_OR_FOLLOWER: moved; \
                 since then: no leader for t-0 in the cluster metadata",
                // Sending the batch ended the hold.
                "1 attempt, which failed with NOT_LEADER_OR_FOLLOWER: moved",
            ]
        );
    }

    const PRODUCER: ProducerIdAndEpoch = ProducerIdAndEpoch {
        producer_id: 7,
        epoch: 0,
    };

    /// The producer fields of a drained batch's encoded header.
    fn stamped(batch: &ProducerBatch<u32>) -> (i64, i16, i32, i32) {
        let encoded = RecordBatch::new(batch.bytes()).expect("a built batch is well framed");
        (
            encoded.producer_id(),
            encoded.producer_epoch(),
            encoded.base_sequence(),
            encoded.record_count(),
        )
    }

    fn idempotent() -> RecordAccumulator<u32> {
        let mut accumulator = RecordAccumulator::idempotent(1 << 20, LINGER);
        accumulator.set_producer(PRODUCER);
        accumulator
    }

    #[test]
    fn sequences_are_assigned_per_partition_at_drain_and_count_records() {
        let start = Instant::now();
        let mut accumulator = idempotent();
        for (tag, value) in [b"a", b"b", b"c"].into_iter().enumerate() {
            append(&mut accumulator, 0, start, value, tag as u32);
        }
        append(&mut accumulator, 1, start, b"x", 10);
        assert_eq!(
            accumulator.next_sequence(&partition(0)),
            0,
            "nothing drained yet"
        );

        let first = accumulator
            .drain(&partition(0))
            .expect("ready by flush-free drain");
        assert_eq!(stamped(&first), (7, 0, 0, 3));
        assert_eq!(
            first.sequence,
            Some(BatchSequence {
                producer: PRODUCER,
                base_sequence: 0
            })
        );
        assert_eq!(accumulator.next_sequence(&partition(0)), 3);
        accumulator.complete(&first);

        let other = accumulator
            .drain(&partition(1))
            .expect("partition 1 has a batch");
        assert_eq!(
            stamped(&other),
            (7, 0, 0, 1),
            "each partition counts from 0"
        );
        accumulator.complete(&other);

        // The partition's queue emptied and was removed; its sequence must survive that.
        assert!(accumulator.is_empty());
        append(&mut accumulator, 0, start, b"d", 3);
        append(&mut accumulator, 0, start, b"e", 4);
        let second = accumulator.drain(&partition(0)).expect("the next batch");
        assert_eq!(stamped(&second), (7, 0, 3, 2));
        assert_eq!(accumulator.next_sequence(&partition(0)), 5);
    }

    #[test]
    fn a_retry_resends_the_same_bytes_and_sequence() {
        let start = Instant::now();
        let mut accumulator = idempotent();
        append(&mut accumulator, 0, start, b"a", 0);
        let first = accumulator.drain(&partition(0)).expect("a batch");
        let bytes = first.bytes();
        append(&mut accumulator, 0, start, b"b", 1);
        accumulator.reenqueue(first, start);

        let retry = accumulator
            .drain(&partition(0))
            .expect("the retry comes first");
        assert_eq!(retry.attempts, 2);
        assert_eq!(
            retry.bytes(),
            bytes,
            "a retry is byte for byte the first attempt"
        );
        assert_eq!(stamped(&retry), (7, 0, 0, 1));
        assert_eq!(
            accumulator.next_sequence(&partition(0)),
            1,
            "a retry takes no new sequence"
        );
        accumulator.complete(&retry);
        let next = accumulator
            .drain(&partition(0))
            .expect("then the next batch");
        assert_eq!(stamped(&next), (7, 0, 1, 1));
    }

    #[test]
    fn sequences_wrap_from_i32_max_to_zero() {
        assert_eq!(next_sequence(0, 1), 1);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(next_sequence(i32::MAX - 4, 5), 0);
    }

    #[test]
    fn nothing_new_is_sent_until_a_producer_id_arrives() {
        let start = Instant::now();
        let mut accumulator: RecordAccumulator<u32> =
            RecordAccumulator::idempotent(1 << 20, Duration::ZERO);
        assert!(accumulator.needs_producer_id());
        append(&mut accumulator, 0, start, b"a", 0);
        assert!(accumulator.ready(start).ready.is_empty());
        assert!(accumulator.drain(&partition(0)).is_none());

        accumulator.set_producer(PRODUCER);
        assert!(!accumulator.needs_producer_id());
        assert_eq!(accumulator.ready(start).ready, vec![partition(0)]);
        let batch = accumulator.drain(&partition(0)).expect("stampable now");
        assert_eq!(stamped(&batch), (7, 0, 0, 1));
    }

    #[test]
    fn a_failed_batch_retires_the_producer_id_and_a_new_one_restarts_at_zero() {
        let start = Instant::now();
        let mut accumulator = RecordAccumulator::idempotent(1 << 20, Duration::ZERO);
        accumulator.set_producer(PRODUCER);
        append(&mut accumulator, 0, start, b"a", 0);
        append(&mut accumulator, 1, start, b"b", 1);
        let failing = accumulator.drain(&partition(0)).expect("partition 0");
        let in_flight_elsewhere = accumulator.drain(&partition(1)).expect("partition 1");
        append(&mut accumulator, 0, start, b"c", 2);

        accumulator.complete(&failing);
        assert!(accumulator.on_batch_failed(&failing), "the id is retired");
        assert!(accumulator.needs_producer_id());
        assert!(
            !accumulator.on_batch_failed(&failing),
            "a second failure under the retired id changes nothing"
        );
        // New batches wait for the new id ...
        assert!(accumulator.ready(start).ready.is_empty());
        assert!(accumulator.drain(&partition(0)).is_none());
        // ... but a batch stamped with the old id is still retried with it.
        accumulator.reenqueue(in_flight_elsewhere, start);
        assert_eq!(accumulator.ready(start).ready, vec![partition(1)]);
        let retry = accumulator.drain(&partition(1)).expect("the old-id retry");
        assert_eq!(stamped(&retry), (7, 0, 0, 1));
        accumulator.complete(&retry);

        let renewed = ProducerIdAndEpoch {
            producer_id: 8,
            epoch: 0,
        };
        accumulator.set_producer(renewed);
        let next = accumulator.drain(&partition(0)).expect("stampable again");
        assert_eq!(
            stamped(&next),
            (8, 0, 0, 1),
            "a new id starts at sequence 0"
        );
        assert!(
            !accumulator.on_batch_failed(&retry),
            "a batch of the old id does not retire the new one"
        );
        assert_eq!(accumulator.producer(), Some(renewed));
    }

    #[test]
    fn a_batch_that_expires_before_its_first_send_uses_no_sequence() {
        let start = Instant::now();
        let timeout = Duration::from_secs(1);
        let mut accumulator = idempotent();
        append(&mut accumulator, 0, start, b"old", 0);
        let expired = accumulator.expire(start + timeout, timeout);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].sequence, None);
        assert!(!accumulator.on_batch_failed(&expired[0]));
        append(&mut accumulator, 0, start + timeout, b"new", 1);
        let batch = accumulator.drain(&partition(0)).expect("a batch");
        assert_eq!(stamped(&batch), (7, 0, 0, 1), "no gap was left");
    }

    #[test]
    fn a_plain_accumulator_stamps_no_producer() {
        let start = Instant::now();
        let mut accumulator = RecordAccumulator::new(1 << 20, LINGER);
        assert!(!accumulator.needs_producer_id());
        append(&mut accumulator, 0, start, b"a", 0);
        let batch = accumulator.drain(&partition(0)).expect("a batch");
        assert_eq!(
            stamped(&batch),
            (
                strata_record::NO_PRODUCER_ID,
                -1,
                strata_record::NO_SEQUENCE,
                1
            )
        );
        assert_eq!(batch.sequence, None);
    }
}
