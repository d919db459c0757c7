//! Share groups' IO: acquiring records for a member and reading them from their partitions'
//! leaders (here or on another broker), applying acknowledgements, and moving dead letters to
//! their dead-letter topics.
//!
//! The coordinator of a share group is its group coordinator; the records stay in their
//! partitions and are read from the leaders, so a share group costs one extra hop per fetch
//! and no copy of the data.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::BoxFuture;
use strata_common::{ErrorCode, TopicPartition};
use strata_coordinator::shard::{
    ShareAck, ShareDeadLetter, ShareFetchPartition, ShareGroupDescription,
};
use strata_coordinator::share::{AckKind, ShareLimits};
use strata_proto::v1 as proto;
use strata_record::{BatchIter, Header, RecordBatchBuilder};
use tracing::{info, warn};

use super::{GroupCoordinator, LoadedShard, PartitionLeader};
use crate::broker_lifecycle::wait_until_applied;
use crate::error::PartitionError;
use crate::replica_manager::Acks;

/// The dead-letter topic of `topic`.
pub(crate) fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// One acknowledgement as the member sent it.
#[derive(Clone, Debug)]
pub(crate) enum MemberAck {
    Settle(ShareAck),
    Renew(TopicPartition, i64),
}

/// A member's settings for its share fetches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShareSettings {
    pub visibility_timeout_ms: i64,
    pub max_in_flight: usize,
    pub max_delivery_attempts: u32,
}

/// Records acquired from one partition: the batches holding them and the acquired offsets.
#[derive(Debug)]
pub(crate) struct AcquiredPartition {
    pub topic_partition: TopicPartition,
    pub records: Bytes,
    pub acquired: Vec<(i64, u32)>,
}

/// What reading a partition from its leader returns.
struct PartitionRead {
    records: Bytes,
    high_watermark: i64,
}

/// Bytes read per request when collecting acquired records.
const READ_CHUNK_BYTES: u64 = 4 << 20;

impl GroupCoordinator {
    fn share_limits(&self, settings: &ShareSettings) -> ShareLimits {
        ShareLimits {
            max_delivery_attempts: if settings.max_delivery_attempts == 0 {
                self.config.share_limits.max_delivery_attempts
            } else {
                settings.max_delivery_attempts
            },
            ..self.config.share_limits
        }
    }

    /// Applies acknowledgements; one result per acknowledgement, in order.
    pub(crate) async fn share_acknowledge(
        &self,
        shard: &LoadedShard,
        group_id: &str,
        member_id: &str,
        acks: Vec<MemberAck>,
        settings: &ShareSettings,
    ) -> Result<Vec<(TopicPartition, i64, Result<(), PartitionError>)>, PartitionError> {
        let limits = self.share_limits(settings);
        let now_ms = self.now_ms();
        let mut results = Vec::with_capacity(acks.len());
        let (renewals, settles): (Vec<MemberAck>, Vec<MemberAck>) = acks
            .into_iter()
            .partition(|ack| matches!(ack, MemberAck::Renew(..)));
        if !renewals.is_empty() {
            let offsets: Vec<(TopicPartition, i64)> = renewals
                .into_iter()
                .filter_map(|ack| match ack {
                    MemberAck::Renew(tp, offset) => Some((tp, offset)),
                    MemberAck::Settle(_) => None,
                })
                .collect();
            let lock_ms = settings.visibility_timeout_ms;
            let outcomes = self
                .write(shard, |shard| {
                    Ok((
                        shard.share_renew(group_id, member_id, &offsets, lock_ms, now_ms),
                        Vec::new(),
                    ))
                })
                .await?;
            for ((tp, offset), outcome) in offsets.into_iter().zip(outcomes) {
                results.push((tp, offset, outcome.map_err(super::coordinator_error)));
            }
        }
        if !settles.is_empty() {
            let acks: Vec<ShareAck> = settles
                .into_iter()
                .filter_map(|ack| match ack {
                    MemberAck::Settle(ack) => Some(ack),
                    MemberAck::Renew(..) => None,
                })
                .collect();
            let keys: Vec<(TopicPartition, i64)> = acks
                .iter()
                .map(|ack| (ack.topic_partition.clone(), ack.offset))
                .collect();
            let outcomes = self
                .write_with_dead_letters(shard, |shard| {
                    let (outcomes, dead_letters, records) =
                        shard.share_acknowledge(group_id, member_id, acks, &limits, now_ms)?;
                    Ok((outcomes, records, dead_letters))
                })
                .await?;
            for ((tp, offset), outcome) in keys.into_iter().zip(outcomes) {
                results.push((tp, offset, outcome.map_err(super::coordinator_error)));
            }
            self.share_available.notify_waiters();
        }
        Ok(results)
    }

    /// Releases what a leaving member holds.
    pub(crate) async fn share_leave(
        &self,
        shard: &LoadedShard,
        group_id: &str,
        member_id: &str,
        settings: &ShareSettings,
    ) -> Result<(), PartitionError> {
        let limits = self.share_limits(settings);
        let now_ms = self.now_ms();
        self.write_with_dead_letters(shard, |shard| {
            let (dead_letters, records) = shard.share_leave(group_id, member_id, &limits, now_ms);
            Ok(((), records, dead_letters))
        })
        .await?;
        self.share_available.notify_waiters();
        Ok(())
    }

    /// Acquires up to `max_records` records of `topics` for the member, waiting up to
    /// `max_wait` for some to be available.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn share_fetch(
        &self,
        shard: &LoadedShard,
        group_id: &str,
        member_id: &str,
        topics: &[String],
        max_records: usize,
        max_wait: Duration,
        settings: &ShareSettings,
    ) -> Result<Vec<AcquiredPartition>, PartitionError> {
        let limits = self.share_limits(settings);
        let partitions = self.partitions_of(topics)?;
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let mut bounds = Vec::with_capacity(partitions.len());
            for topic_partition in &partitions {
                // A partition without a leader just now is skipped this round.
                if let Ok((log_start_offset, high_watermark)) =
                    self.partition_bounds(topic_partition).await
                {
                    bounds.push(ShareFetchPartition {
                        topic_partition: topic_partition.clone(),
                        log_start_offset,
                        high_watermark,
                    });
                }
            }
            // Start at a different partition for each member so none is starved.
            if !bounds.is_empty() {
                let start = member_id.bytes().fold(0usize, |hash, byte| {
                    hash.wrapping_mul(31).wrapping_add(byte as usize)
                }) % bounds.len();
                bounds.rotate_left(start);
            }
            let now_ms = self.now_ms();
            let lock_ms = settings.visibility_timeout_ms;
            let max_in_flight = settings.max_in_flight;
            let acquired = self
                .write(shard, |shard| {
                    let acquired = shard.share_acquire(
                        group_id,
                        member_id,
                        &bounds,
                        max_records,
                        max_in_flight,
                        lock_ms,
                        &limits,
                        now_ms,
                    )?;
                    Ok((acquired, Vec::new()))
                })
                .await?;
            if !acquired.is_empty() {
                return self
                    .read_acquired(shard, group_id, member_id, acquired, settings)
                    .await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            self.wait_for_records(shard, group_id, &bounds, deadline)
                .await;
        }
    }

    fn partitions_of(&self, topics: &[String]) -> Result<Vec<TopicPartition>, PartitionError> {
        let metadata = self.metadata();
        let mut partitions = Vec::new();
        for topic in topics {
            let description = metadata.topic(topic).ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic '{topic}' does not exist"),
                )
            })?;
            partitions.extend(
                (0..description.partitions.len() as i32)
                    .map(|partition| TopicPartition::new(topic.as_str(), partition)),
            );
        }
        Ok(partitions)
    }

    /// Waits until new records may be there: a partition's high watermark moves, an
    /// acknowledgement or expiry frees records, a delayed release comes due, or the deadline.
    async fn wait_for_records(
        &self,
        shard: &LoadedShard,
        group_id: &str,
        bounds: &[ShareFetchPartition],
        deadline: tokio::time::Instant,
    ) {
        let now_ms = self.now_ms();
        let next_due = self
            .read(shard, |shard| shard.share_next_available(group_id, now_ms))
            .await
            .ok()
            .flatten();
        let mut wake_at = deadline;
        if let Some(due_ms) = next_due {
            wake_at = wake_at.min(
                tokio::time::Instant::now()
                    + Duration::from_millis((due_ms - now_ms).max(1) as u64),
            );
        }
        let remaining = wake_at.saturating_duration_since(tokio::time::Instant::now());
        let mut waits: Vec<BoxFuture<'_, ()>> = vec![
            tokio::time::sleep_until(wake_at).boxed(),
            self.share_available.notified().boxed(),
        ];
        for bound in bounds {
            let topic_partition = bound.topic_partition.clone();
            let high_watermark = bound.high_watermark;
            waits.push(
                async move {
                    // A long-poll at the high watermark returns when it moves.
                    let _ = self
                        .read_partition(&topic_partition, high_watermark, 1, remaining)
                        .await;
                }
                .boxed(),
            );
        }
        futures::future::select_all(waits).await;
    }

    /// Reads the batches holding the acquired offsets. If a partition cannot be read now, its
    /// records are released at once rather than left to time out.
    async fn read_acquired(
        &self,
        shard: &LoadedShard,
        group_id: &str,
        member_id: &str,
        acquired: Vec<(TopicPartition, Vec<(i64, u32)>)>,
        settings: &ShareSettings,
    ) -> Result<Vec<AcquiredPartition>, PartitionError> {
        let mut answers = Vec::with_capacity(acquired.len());
        let mut unreadable = Vec::new();
        for (topic_partition, offsets) in acquired {
            let first = offsets
                .iter()
                .map(|(offset, _)| *offset)
                .min()
                .expect("non-empty");
            let last = offsets
                .iter()
                .map(|(offset, _)| *offset)
                .max()
                .expect("non-empty");
            match self.read_range(&topic_partition, first, last).await {
                Ok(records) => answers.push(AcquiredPartition {
                    topic_partition,
                    records,
                    acquired: offsets,
                }),
                Err(error) => {
                    warn!(%topic_partition, %error, "cannot read acquired records; releasing them");
                    unreadable.extend(offsets.into_iter().map(|(offset, _)| {
                        MemberAck::Settle(ShareAck {
                            topic_partition: topic_partition.clone(),
                            offset,
                            kind: AckKind::Release { delay_ms: 0 },
                            reason: Some(format!("could not be read: {}", error.message)),
                        })
                    }));
                }
            }
        }
        if !unreadable.is_empty() {
            self.share_acknowledge(shard, group_id, member_id, unreadable, settings)
                .await?;
            if answers.is_empty() {
                return Err(PartitionError::new(
                    ErrorCode::LeaderNotAvailable,
                    "the acquired records' partitions cannot be read right now",
                ));
            }
        }
        Ok(answers)
    }

    /// Whole batches covering offsets `first..=last`.
    async fn read_range(
        &self,
        topic_partition: &TopicPartition,
        first: i64,
        last: i64,
    ) -> Result<Bytes, PartitionError> {
        let mut collected = BytesMut::new();
        let mut offset = first;
        // Bounded: every round moves `offset` forward or fails.
        while offset <= last {
            let read = self
                .read_partition(topic_partition, offset, READ_CHUNK_BYTES, Duration::ZERO)
                .await?;
            let mut next = offset;
            for batch in BatchIter::new(read.records.clone()) {
                let batch = batch.map_err(|error| {
                    PartitionError::new(ErrorCode::CorruptMessage, error.to_string())
                })?;
                next = next.max(batch.next_offset());
            }
            if next <= offset {
                return Err(PartitionError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!(
                        "{topic_partition} has no records at {offset} (high watermark {})",
                        read.high_watermark
                    ),
                ));
            }
            collected.extend_from_slice(&read.records);
            offset = next;
        }
        Ok(collected.freeze())
    }

    /// Reads whole batches from `offset` up to the high watermark on the partition's leader,
    /// waiting up to `max_wait` when there is nothing yet.
    async fn read_partition(
        &self,
        topic_partition: &TopicPartition,
        offset: i64,
        max_bytes: u64,
        max_wait: Duration,
    ) -> Result<PartitionRead, PartitionError> {
        match self.leader_of(topic_partition)? {
            PartitionLeader::Local(partition) => {
                if !max_wait.is_zero() {
                    let mut high_watermarks = partition.subscribe();
                    let _ = tokio::time::timeout(
                        max_wait,
                        high_watermarks.wait_for(|&high_watermark| high_watermark > offset),
                    )
                    .await;
                }
                let (read, high_watermark) = self.replicas.read(
                    &topic_partition.topic,
                    topic_partition.partition,
                    offset,
                    max_bytes,
                )?;
                Ok(PartitionRead {
                    records: read.records,
                    high_watermark,
                })
            }
            PartitionLeader::Remote(address) => {
                let mut client = self.leader_client(&address)?;
                let request = proto::FetchRequest {
                    max_wait_ms: max_wait.as_millis().min(30_000) as i32,
                    min_bytes: 1,
                    max_bytes: max_bytes.min(i32::MAX as u64) as i32,
                    isolation_level: 0,
                    partitions: vec![proto::FetchPartition {
                        topic: topic_partition.topic.clone(),
                        partition: topic_partition.partition,
                        fetch_offset: offset,
                        partition_max_bytes: max_bytes.min(i32::MAX as u64) as i32,
                    }],
                };
                let response = client
                    .fetch(request)
                    .await
                    .map_err(|status| {
                        self.leader_clients
                            .lock()
                            .expect("clients lock")
                            .remove(&address);
                        PartitionError::new(
                            ErrorCode::LeaderNotAvailable,
                            format!("cannot read {topic_partition} from {address}: {status}"),
                        )
                    })?
                    .into_inner();
                let answer = response.partitions.into_iter().next().ok_or_else(|| {
                    PartitionError::new(ErrorCode::LeaderNotAvailable, "empty fetch answer")
                })?;
                if answer.error_code != 0 {
                    return Err(PartitionError::new(
                        ErrorCode::from_code(answer.error_code),
                        answer.error_message,
                    ));
                }
                Ok(PartitionRead {
                    records: answer.records,
                    high_watermark: answer.high_watermark,
                })
            }
        }
    }

    pub(crate) async fn describe_share(
        &self,
        shard: &LoadedShard,
        group_id: &str,
    ) -> Result<ShareGroupDescription, PartitionError> {
        self.read(shard, |shard| shard.share_describe(group_id))
            .await?
            .ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::GroupIdNotFound,
                    format!("no consumer or share group '{group_id}' exists"),
                )
            })
    }

    /// Copies each dead letter into `<topic>.dlq` with headers saying where it came from and
    /// why, with `acks=all`.
    pub(super) async fn dead_letter(
        &self,
        dead_letters: &[ShareDeadLetter],
    ) -> Result<(), PartitionError> {
        let mut by_topic: BTreeMap<String, Vec<&ShareDeadLetter>> = BTreeMap::new();
        for letter in dead_letters {
            by_topic
                .entry(letter.topic_partition.topic.clone())
                .or_default()
                .push(letter);
        }
        let now_ms = self.now_ms();
        for (topic, letters) in by_topic {
            let dlq = dead_letter_topic(&topic);
            self.ensure_topic(&dlq).await?;
            let mut builder = RecordBatchBuilder::new();
            let mut originals: HashMap<(i32, i64), strata_record::Record> = HashMap::new();
            for letter in &letters {
                let tp = &letter.topic_partition;
                let offset = letter.dead_letter.offset;
                if originals.contains_key(&(tp.partition, offset)) {
                    continue;
                }
                let records = self.read_range(tp, offset, offset).await?;
                for batch in BatchIter::new(records) {
                    let batch = batch.map_err(|error| {
                        PartitionError::new(ErrorCode::CorruptMessage, error.to_string())
                    })?;
                    for record in batch.records() {
                        let record = record.map_err(|error| {
                            PartitionError::new(ErrorCode::CorruptMessage, error.to_string())
                        })?;
                        if record.offset == offset {
                            originals.insert((tp.partition, offset), record);
                        }
                    }
                }
            }
            for letter in &letters {
                let tp = &letter.topic_partition;
                let Some(original) = originals.get(&(tp.partition, letter.dead_letter.offset))
                else {
                    warn!(%tp, offset = letter.dead_letter.offset, "dead letter no longer in its partition");
                    continue;
                };
                let mut headers = original.headers.clone();
                for (key, value) in [
                    ("dlq.source.topic", tp.topic.clone()),
                    ("dlq.source.partition", tp.partition.to_string()),
                    ("dlq.source.offset", letter.dead_letter.offset.to_string()),
                    (
                        "dlq.delivery.count",
                        letter.dead_letter.delivery_count.to_string(),
                    ),
                    ("dlq.reason", letter.dead_letter.reason.clone()),
                    ("dlq.group", letter.group_id.clone()),
                    ("dlq.original.timestamp", original.timestamp.to_string()),
                    ("dlq.dead.lettered.at", now_ms.to_string()),
                ] {
                    headers.push(Header {
                        key: key.to_string(),
                        value: Some(Bytes::from(value)),
                    });
                }
                builder.push(
                    now_ms,
                    original.key.as_deref(),
                    original.value.as_deref(),
                    &headers,
                );
            }
            if builder.is_empty() {
                continue;
            }
            let batch = builder.build().into_bytes();
            self.produce_all(&TopicPartition::new(dlq.as_str(), 0), batch)
                .await?;
            info!(topic = %dlq, records = letters.len(), "dead-lettered records");
        }
        Ok(())
    }

    /// Creates a dead-letter topic (one partition) unless it exists, and waits until it has a
    /// leader.
    async fn ensure_topic(&self, topic: &str) -> Result<(), PartitionError> {
        self.create_internal_topic(topic, 1, |_| BTreeMap::new())
            .await?;
        let topic = topic.to_string();
        wait_until_applied(&self.applied_metadata, Duration::from_secs(10), |state| {
            state
                .topic(&topic)
                .is_some_and(|topic| topic.partitions.iter().all(|p| p.leader >= 0))
        })
        .await
    }

    /// Appends a batch on the partition's leader with `acks=all`.
    async fn produce_all(
        &self,
        topic_partition: &TopicPartition,
        batch: Bytes,
    ) -> Result<(), PartitionError> {
        match self.leader_of(topic_partition)? {
            PartitionLeader::Local(_) => self
                .replicas
                .append(
                    &topic_partition.topic,
                    topic_partition.partition,
                    batch,
                    Acks::All,
                    self.config.write_timeout,
                )
                .await
                .map(|_| ()),
            PartitionLeader::Remote(address) => {
                let mut client = self.leader_client(&address)?;
                let request = proto::ProduceRequest {
                    acks: -1,
                    timeout_ms: self.config.write_timeout.as_millis() as i32,
                    correlation_id: 0,
                    partitions: vec![proto::PartitionRecords {
                        topic: topic_partition.topic.clone(),
                        partition: topic_partition.partition,
                        records: batch,
                    }],
                };
                let response = client
                    .produce(request)
                    .await
                    .map_err(|status| {
                        PartitionError::new(
                            ErrorCode::LeaderNotAvailable,
                            format!("cannot write to {topic_partition} at {address}: {status}"),
                        )
                    })?
                    .into_inner();
                match response.partitions.into_iter().next() {
                    Some(answer) if answer.error_code == 0 => Ok(()),
                    Some(answer) => Err(PartitionError::new(
                        ErrorCode::from_code(answer.error_code),
                        answer.error_message,
                    )),
                    None => Err(PartitionError::new(
                        ErrorCode::LeaderNotAvailable,
                        "empty produce answer",
                    )),
                }
            }
        }
    }
}
