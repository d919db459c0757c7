//! The consumer: reads assigned partitions with long-polling `Fetch` requests.
//!
//! Each assigned partition has a *position*: the offset of the next record `poll` returns. When
//! the buffer of fetched records is empty, `poll` sends one `Fetch` per leader for every assigned
//! partition at its position; the broker holds the request until `fetch_min_bytes` are available
//! or `fetch_max_wait_ms` passed, so an idle consumer costs one request per wait, not a spin.
//!
//! The broker returns whole batches starting with the one that *contains* the fetch offset, so
//! the records before the position in the first batch are skipped here. Every batch's CRC is
//! checked before any of its records is returned.
//!
//! Positions start unknown; the first `poll` (or `position`) resolves them by
//! `auto_offset_reset`, as does an `OFFSET_OUT_OF_RANGE` answer. Consumer groups (committed
//! offsets, partition assignment by a coordinator) do not exist yet: the application assigns
//! partitions and keeps its own offsets.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use strata_common::{ErrorCode, TopicPartition, validate_topic_name};
use strata_record::{BatchError, BatchIter, CompressionType};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::consumer_config::{AutoOffsetReset, ConsumerConfig};
use crate::consumer_record::ConsumerRecord;
use crate::error::{Error, Result};
use crate::grpc::{
    self, EARLIEST_TIMESTAMP, FetchParameters, FetchTarget, FetchedPartition, LATEST_TIMESTAMP,
};
use crate::metadata::Leader;
use crate::retry::Backoff;

/// Reads records from assigned partitions.
///
/// ```no_run
/// use std::time::Duration;
/// use strata_client::{AutoOffsetReset, Consumer, ConsumerConfig, TopicPartition};
///
/// # async fn example() -> strata_client::Result<()> {
/// let config = ConsumerConfig::builder()
///     .bootstrap("127.0.0.1:7070")
///     .auto_offset_reset(AutoOffsetReset::Earliest)
///     .build()?;
/// let mut consumer = Consumer::connect(config).await?;
/// consumer.assign(vec![TopicPartition::new("orders", 0)])?;
/// for record in consumer.poll(Duration::from_secs(1)).await? {
///     println!("{}@{}: {:?}", record.partition, record.offset, record.value);
/// }
/// # Ok(())
/// # }
/// ```
///
/// Or as a stream, which waits for records as they arrive:
///
/// ```no_run
/// use futures::StreamExt;
/// # use strata_client::{Consumer, ConsumerConfig, TopicPartition};
/// # async fn example(mut consumer: Consumer) -> strata_client::Result<()> {
/// let mut records = std::pin::pin!(consumer.stream());
/// while let Some(record) = records.next().await {
///     let record = record?;
///     println!("{}", record.offset);
/// }
/// # Ok(())
/// # }
/// ```
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    /// Assigned partitions and the offset of the next record to return; `None` until resolved
    /// by `auto_offset_reset`.
    positions: BTreeMap<TopicPartition, Option<i64>>,
    /// Fetched records not yet returned, in fetch order.
    buffered: VecDeque<FetchedRecords>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Consumer")
            .field("positions", &self.positions)
            .field(
                "buffered_records",
                &self
                    .buffered
                    .iter()
                    .map(|fetched| fetched.records.len())
                    .sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

/// One partition's records from one fetch response.
#[derive(Debug)]
struct FetchedRecords {
    topic_partition: TopicPartition,
    records: VecDeque<ConsumerRecord>,
    /// Where the next fetch of the partition starts once these are returned: past the last
    /// batch, which may be beyond the last record (e.g. after compaction).
    next_fetch_offset: i64,
}

/// The far future, for `poll(Duration::MAX)`.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

impl Consumer {
    /// Validates the configuration and fetches metadata from the bootstrap brokers. Nothing is
    /// assigned yet.
    pub async fn connect(config: ConsumerConfig) -> Result<Consumer> {
        let cluster = Cluster::connect(config.connection_settings()).await?;
        Ok(Consumer {
            config,
            cluster,
            positions: BTreeMap::new(),
            buffered: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Replaces the assignment. Partitions kept from the previous assignment keep their
    /// position; new ones start unresolved (see `auto_offset_reset`).
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        for topic_partition in &partitions {
            validate_topic_name(&topic_partition.topic).map_err(Error::InvalidInput)?;
            if topic_partition.partition < 0 {
                return Err(Error::InvalidInput(format!(
                    "partition {} is negative",
                    topic_partition.partition
                )));
            }
        }
        let mut positions = BTreeMap::new();
        for topic_partition in partitions {
            let position = self.positions.get(&topic_partition).copied().flatten();
            positions.insert(topic_partition, position);
        }
        self.positions = positions;
        self.buffered
            .retain(|fetched| self.positions.contains_key(&fetched.topic_partition));
        Ok(())
    }

    /// The assigned partitions, sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// Makes `offset` the next record `poll` returns from `topic_partition`.
    pub fn seek(&mut self, topic_partition: &TopicPartition, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(Error::InvalidInput(format!("offset {offset} is negative")));
        }
        self.set_position(topic_partition, Some(offset))
    }

    /// Moves to the first retained record of each partition.
    pub async fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_by_query(partitions, EARLIEST_TIMESTAMP).await
    }

    /// Moves past the last record of each partition: only records produced later are returned.
    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_by_query(partitions, LATEST_TIMESTAMP).await
    }

    /// Moves to the first record whose timestamp is at or after `timestamp` (ms since the Unix
    /// epoch), or to the end of partitions that have no such record.
    pub async fn seek_to_timestamp(
        &mut self,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<()> {
        if timestamp < 0 {
            return Err(Error::InvalidInput(format!(
                "timestamp {timestamp} is negative"
            )));
        }
        self.check_assigned(partitions)?;
        let queries = partitions
            .iter()
            .map(|topic_partition| (topic_partition.clone(), timestamp))
            .collect();
        let found = self
            .cluster
            .list_offsets(queries, self.config.retry_policy())
            .await?;
        let mut past_the_end = Vec::new();
        for topic_partition in partitions {
            match found.get(topic_partition).and_then(|listed| listed.offset) {
                Some(offset) => self.set_position(topic_partition, Some(offset))?,
                None => past_the_end.push(topic_partition.clone()),
            }
        }
        if !past_the_end.is_empty() {
            self.seek_by_query(&past_the_end, LATEST_TIMESTAMP).await?;
        }
        Ok(())
    }

    /// The offset of the next record `poll` returns from `topic_partition`, resolving it by
    /// `auto_offset_reset` when it is not known yet.
    pub async fn position(&mut self, topic_partition: &TopicPartition) -> Result<i64> {
        match self.positions.get(topic_partition) {
            None => Err(Error::NotAssigned(topic_partition.clone())),
            Some(Some(position)) => Ok(*position),
            Some(None) => {
                self.reset_positions(std::slice::from_ref(topic_partition))
                    .await?;
                self.positions
                    .get(topic_partition)
                    .copied()
                    .flatten()
                    .ok_or_else(|| Error::NoOffsetForPartition(topic_partition.clone()))
            }
        }
    }

    /// Returns up to `max_poll_records` records, waiting up to `timeout` for some to arrive.
    /// An empty result means none arrived in time. Retriable errors (a leader moving, a broker
    /// restarting) are retried within `timeout`; others are returned.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.fill_buffer(deadline_after(timeout)).await?;
        Ok(self.take_records(self.config.max_poll_records()))
    }

    /// The records of the assigned partitions as a stream that waits for new ones; ends after
    /// yielding an error that is not retriable. Records are taken from the same buffer `poll`
    /// uses, so the two can be mixed.
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumerRecord>> + Send + '_ {
        futures::stream::unfold((self, false), |(consumer, stopped)| async move {
            if stopped {
                return None;
            }
            match consumer.next_record().await {
                Ok(record) => Some((Ok(record), (consumer, false))),
                Err(error) => {
                    let stop = !error.is_retriable();
                    Some((Err(error), (consumer, stop)))
                }
            }
        })
    }

    /// Like [`stream`](Self::stream), owning the consumer.
    pub fn into_stream(self) -> impl Stream<Item = Result<ConsumerRecord>> + Send + 'static {
        futures::stream::unfold((self, false), |(mut consumer, stopped)| async move {
            if stopped {
                return None;
            }
            match consumer.next_record().await {
                Ok(record) => Some((Ok(record), (consumer, false))),
                Err(error) => {
                    let stop = !error.is_retriable();
                    Some((Err(error), (consumer, stop)))
                }
            }
        })
    }

    /// Waits for one record. Each round is one long-poll of `fetch_max_wait_ms`; a tailing
    /// stream has no end of its own, the caller stops it by dropping it.
    async fn next_record(&mut self) -> Result<ConsumerRecord> {
        loop {
            if let Some(record) = self.take_records(1).pop() {
                return Ok(record);
            }
            self.fill_buffer(deadline_after(self.config.fetch_max_wait()))
                .await?;
        }
    }

    fn check_assigned(&self, partitions: &[TopicPartition]) -> Result<()> {
        match partitions
            .iter()
            .find(|topic_partition| !self.positions.contains_key(*topic_partition))
        {
            Some(missing) => Err(Error::NotAssigned(missing.clone())),
            None => Ok(()),
        }
    }

    fn set_position(
        &mut self,
        topic_partition: &TopicPartition,
        position: Option<i64>,
    ) -> Result<()> {
        let Some(current) = self.positions.get_mut(topic_partition) else {
            return Err(Error::NotAssigned(topic_partition.clone()));
        };
        *current = position;
        // Buffered records were fetched for the old position.
        self.buffered
            .retain(|fetched| fetched.topic_partition != *topic_partition);
        Ok(())
    }

    async fn seek_by_query(&mut self, partitions: &[TopicPartition], query: i64) -> Result<()> {
        self.check_assigned(partitions)?;
        let queries = partitions
            .iter()
            .map(|topic_partition| (topic_partition.clone(), query))
            .collect();
        let found = self
            .cluster
            .list_offsets(queries, self.config.retry_policy())
            .await?;
        for topic_partition in partitions {
            let offset = found
                .get(topic_partition)
                .and_then(|listed| listed.offset)
                .ok_or_else(|| {
                    Error::broker(
                        ErrorCode::UnknownServerError,
                        format!("ListOffsets returned no offset for {topic_partition}"),
                    )
                })?;
            self.set_position(topic_partition, Some(offset))?;
        }
        Ok(())
    }

    /// Resolves the positions of `partitions` by `auto_offset_reset`.
    async fn reset_positions(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        match self.config.auto_offset_reset() {
            AutoOffsetReset::Earliest => self.seek_by_query(partitions, EARLIEST_TIMESTAMP).await,
            AutoOffsetReset::Latest => self.seek_by_query(partitions, LATEST_TIMESTAMP).await,
            AutoOffsetReset::None => match partitions.first() {
                Some(first) => Err(Error::NoOffsetForPartition(first.clone())),
                None => Ok(()),
            },
        }
    }

    fn has_buffered_records(&self) -> bool {
        self.buffered
            .iter()
            .any(|fetched| !fetched.records.is_empty())
    }

    /// Takes up to `max` buffered records, advancing positions past what is returned.
    fn take_records(&mut self, max: usize) -> Vec<ConsumerRecord> {
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(fetched) = self.buffered.front_mut() else {
                break;
            };
            while taken.len() < max {
                let Some(record) = fetched.records.pop_front() else {
                    break;
                };
                if let Some(position) = self.positions.get_mut(&fetched.topic_partition) {
                    *position = Some(record.offset + 1);
                }
                taken.push(record);
            }
            if fetched.records.is_empty() {
                let next_fetch_offset = fetched.next_fetch_offset;
                let topic_partition = fetched.topic_partition.clone();
                self.buffered.pop_front();
                if let Some(position) = self.positions.get_mut(&topic_partition) {
                    *position = Some(
                        position
                            .map_or(next_fetch_offset, |current| current.max(next_fetch_offset)),
                    );
                }
            }
        }
        taken
    }

    /// Fetches until records are buffered or `deadline` passes.
    async fn fill_buffer(&mut self, deadline: Instant) -> Result<()> {
        if self.positions.is_empty() {
            return Err(Error::InvalidInput(
                "no partitions are assigned; call assign first".to_string(),
            ));
        }
        let mut backoff = Backoff::new(
            self.config.retry_backoff(),
            self.config.retry_backoff() * 10,
        );
        // Bounded by the deadline: every round either long-polls or backs off.
        loop {
            if self.has_buffered_records() {
                return Ok(());
            }
            let unresolved: Vec<TopicPartition> = self
                .positions
                .iter()
                .filter(|(_, position)| position.is_none())
                .map(|(topic_partition, _)| topic_partition.clone())
                .collect();
            let round = async {
                if !unresolved.is_empty() {
                    self.reset_positions(&unresolved).await?;
                }
                let max_wait = deadline
                    .saturating_duration_since(Instant::now())
                    .min(self.config.fetch_max_wait());
                self.fetch_once(max_wait).await
            };
            match round.await {
                Ok(()) => {}
                Err(error) if error.is_retriable() => {
                    tracing::debug!(%error, "fetch failed; retrying");
                    let delay = backoff.next_delay();
                    if Instant::now() + delay >= deadline {
                        // Nothing arrived in time; a persistent problem shows as repeated
                        // empty polls, as in Kafka's consumer, rather than failing the poll.
                        return if self.has_buffered_records() {
                            Ok(())
                        } else {
                            Err(error)
                        };
                    }
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
            if self.has_buffered_records() || Instant::now() >= deadline {
                return Ok(());
            }
        }
    }

    /// One long-poll round: a `Fetch` per leader, concurrently, for every assigned partition.
    async fn fetch_once(&mut self, max_wait: Duration) -> Result<()> {
        let mut retriable: Option<Error> = None;
        let mut by_leader: Vec<(Leader, Vec<FetchTarget>)> = Vec::new();
        for (topic_partition, position) in &self.positions {
            let Some(fetch_offset) = *position else {
                continue;
            };
            match self.cluster.leader(topic_partition).await {
                Ok(leader) => {
                    let target = FetchTarget {
                        topic_partition: topic_partition.clone(),
                        fetch_offset,
                        partition_max_bytes: self.config.max_partition_fetch_bytes(),
                    };
                    match by_leader
                        .iter_mut()
                        .find(|(known, _)| known.node_id == leader.node_id)
                    {
                        Some((_, targets)) => targets.push(target),
                        None => by_leader.push((leader, vec![target])),
                    }
                }
                // Fresh metadata says the partition does not exist: waiting will not help.
                Err(error) if error.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
                    return Err(error);
                }
                Err(error) if error.is_retriable() => retriable = Some(error),
                Err(error) => return Err(error),
            }
        }
        if by_leader.is_empty() {
            return Err(retriable.unwrap_or_else(|| {
                Error::broker(
                    ErrorCode::LeaderNotAvailable,
                    "no assigned partition has a leader",
                )
            }));
        }

        let cluster = self.cluster.clone();
        let config = &self.config;
        let requests = by_leader.into_iter().map(|(leader, targets)| {
            let cluster = cluster.clone();
            async move {
                let topics: Vec<String> = targets
                    .iter()
                    .map(|target| target.topic_partition.topic.clone())
                    .collect();
                let parameters = FetchParameters {
                    max_wait,
                    min_bytes: config.fetch_min_bytes(),
                    max_bytes: config.fetch_max_bytes(),
                    targets,
                };
                let response = match cluster.connection(&leader.address).await {
                    Ok(connection) => {
                        grpc::fetch(&connection, parameters, config.request_timeout()).await
                    }
                    Err(error) => Err(error),
                };
                (leader, topics, response)
            }
        });
        let responses = futures::future::join_all(requests).await;

        for (leader, topics, response) in responses {
            let partitions = match response {
                Ok(partitions) => partitions,
                Err(error) => {
                    self.cluster.on_error(
                        &error,
                        &leader.address,
                        topics.iter().map(String::as_str),
                    );
                    if !error.is_retriable() {
                        return Err(error);
                    }
                    retriable = Some(error);
                    continue;
                }
            };
            for fetched in partitions {
                if let Some(error) = self.accept_fetched(fetched, &leader)? {
                    retriable = Some(error);
                }
            }
        }
        match retriable {
            Some(error) if !self.has_buffered_records() => Err(error),
            _ => Ok(()),
        }
    }

    /// Buffers one partition's fetched records. Returns a retriable error for the caller to
    /// back off on; fails on anything else.
    fn accept_fetched(
        &mut self,
        fetched: FetchedPartition,
        leader: &Leader,
    ) -> Result<Option<Error>> {
        let topic_partition = fetched.topic_partition;
        let Some(&Some(position)) = self.positions.get(&topic_partition) else {
            // Not asked for (or no longer assigned): ignore.
            return Ok(None);
        };
        if let Some(error) = fetched.error {
            if error.code() == Some(ErrorCode::OffsetOutOfRange) {
                return match self.config.auto_offset_reset() {
                    AutoOffsetReset::None => Err(out_of_range(
                        &topic_partition,
                        position,
                        fetched.log_start_offset,
                        fetched.high_watermark,
                        &error,
                    )),
                    reset => {
                        tracing::info!(%topic_partition, position, %reset, "fetch offset out of range; resetting");
                        self.positions.insert(topic_partition, None);
                        Ok(None)
                    }
                };
            }
            if error.is_retriable() {
                self.cluster
                    .on_error(&error, &leader.address, [topic_partition.topic.as_str()]);
                return Ok(Some(error));
            }
            return Err(error);
        }
        let (records, next_fetch_offset) =
            decode_fetched(&topic_partition, position, fetched.records)?;
        if records.is_empty() {
            if next_fetch_offset > position {
                self.positions
                    .insert(topic_partition, Some(next_fetch_offset));
            }
            return Ok(None);
        }
        self.buffered.push_back(FetchedRecords {
            topic_partition,
            records: records.into(),
            next_fetch_offset,
        });
        Ok(None)
    }
}

/// The error for a position outside the log, with the valid range when the broker sent it.
fn out_of_range(
    topic_partition: &TopicPartition,
    position: i64,
    log_start_offset: i64,
    high_watermark: i64,
    error: &Error,
) -> Error {
    let broker_message = match error {
        Error::Broker { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let message = if log_start_offset >= 0 && high_watermark >= 0 {
        format!(
            "offset {position} is out of range for {topic_partition}; valid range is [{log_start_offset}, {high_watermark}] ({broker_message})"
        )
    } else {
        format!("offset {position} is out of range for {topic_partition} ({broker_message})")
    };
    Error::broker(ErrorCode::OffsetOutOfRange, message)
}

/// Decodes the batches of a fetch response for a partition read from `position`: checks each
/// batch's CRC, skips records before `position`, and returns the records with the offset the
/// next fetch should start at.
///
/// A batch cut off at the end of the response (the broker hit `max_bytes` mid-batch) is left for
/// the next fetch; only a response whose first batch is cut off is an error, since the broker
/// always returns at least one whole batch.
pub(crate) fn decode_fetched(
    topic_partition: &TopicPartition,
    position: i64,
    bytes: Bytes,
) -> Result<(Vec<ConsumerRecord>, i64)> {
    let corrupt = |source: BatchError| Error::CorruptBatch {
        topic_partition: topic_partition.clone(),
        source,
    };
    let mut records = Vec::new();
    let mut next_fetch_offset = position;
    for (index, batch) in BatchIter::new(bytes).enumerate() {
        let batch = match batch {
            Ok(batch) => batch,
            Err(BatchError::TooShort { .. }) if index > 0 => break,
            Err(error) => return Err(corrupt(error)),
        };
        batch.verify_crc().map_err(corrupt)?;
        if batch.next_offset() <= position {
            continue;
        }
        let compression = batch.compression_type().map_err(corrupt)?;
        if compression != CompressionType::None {
            return Err(corrupt(BatchError::UnsupportedCompression(
                (batch.attributes() & 0x07) as u8,
            )));
        }
        for record in batch.records() {
            let record = record.map_err(corrupt)?;
            if record.offset < position {
                continue;
            }
            records.push(ConsumerRecord {
                topic: topic_partition.topic.clone(),
                partition: topic_partition.partition,
                offset: record.offset,
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record.headers,
            });
        }
        next_fetch_offset = next_fetch_offset.max(batch.next_offset());
    }
    Ok((records, next_fetch_offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_record::{Header, RecordBatch, RecordBatchBuilder};

    /// A batch of `count` records with values "v{offset}", stamped with `base_offset`.
    fn batch(base_offset: i64, count: i64) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::new();
        for offset in base_offset..base_offset + count {
            let headers = [Header {
                key: "h".into(),
                value: Some(Bytes::from(format!("{offset}"))),
            }];
            builder.push(
                1_000 + offset,
                Some(b"k"),
                Some(format!("v{offset}").as_bytes()),
                &headers,
            );
        }
        let mut bytes = builder.build().into_bytes().to_vec();
        RecordBatch::set_base_offset(&mut bytes, base_offset);
        bytes
    }

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    #[test]
    fn records_before_the_position_are_skipped() {
        let mut bytes = batch(0, 5);
        bytes.extend(batch(5, 3));
        let (records, next) = decode_fetched(&tp(), 3, Bytes::from(bytes)).expect("decodes");
        let offsets: Vec<i64> = records.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, vec![3, 4, 5, 6, 7]);
        assert_eq!(next, 8);
        let record = &records[0];
        assert_eq!(record.value.as_deref(), Some(&b"v3"[..]));
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.timestamp, 1_003);
        assert_eq!(record.headers[0].value.as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn a_corrupt_batch_is_an_error() {
        let mut bytes = batch(0, 2);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let error = decode_fetched(&tp(), 0, Bytes::from(bytes)).unwrap_err();
        assert!(matches!(
            error,
            Error::CorruptBatch {
                source: BatchError::CorruptCrc { .. },
                ..
            }
        ));
        assert!(!error.is_retriable());
    }

    #[test]
    fn a_truncated_last_batch_waits_for_the_next_fetch() {
        let mut bytes = batch(0, 2);
        let second = batch(2, 2);
        bytes.extend(&second[..second.len() / 2]);
        let (records, next) = decode_fetched(&tp(), 0, Bytes::from(bytes)).expect("decodes");
        assert_eq!(records.len(), 2);
        assert_eq!(next, 2);

        let truncated_first = batch(0, 2);
        let error =
            decode_fetched(&tp(), 0, Bytes::from(truncated_first[..30].to_vec())).unwrap_err();
        assert!(matches!(error, Error::CorruptBatch { .. }));
    }

    #[test]
    fn an_empty_response_keeps_the_position() {
        let (records, next) = decode_fetched(&tp(), 7, Bytes::new()).expect("decodes");
        assert!(records.is_empty());
        assert_eq!(next, 7);
    }

    #[test]
    fn out_of_range_errors_name_the_valid_range() {
        let broker = Error::broker(ErrorCode::OffsetOutOfRange, "offset 10 is past the end");
        let error = out_of_range(&tp(), 10, 0, 3, &broker);
        assert_eq!(error.code(), Some(ErrorCode::OffsetOutOfRange));
        assert!(
            error.to_string().contains("valid range is [0, 3]"),
            "{error}"
        );
        assert!(error.to_string().contains("offset 10 is past the end"));
    }
}
