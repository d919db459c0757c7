//! The consumer: reads assigned partitions with long-polling `Fetch` requests.
//!
//! Each assigned partition has a *position*: the offset of the next record `poll` returns. When
//! the buffer of fetched records is empty, `poll` sends one `Fetch` per leader for every assigned
//! partition at its position; the broker holds the request until `fetch_min_bytes` are available
//! or `fetch_max_wait_ms` passed, so an idle consumer costs one request per wait, not a spin.
//!
//! Positions start unknown; the first `poll` (or `position`) resolves them by
//! `auto_offset_reset`, as does an `OFFSET_OUT_OF_RANGE` answer.
//!
//! Two ways to get partitions: `assign` them (the application chooses; with a `group_id` it may
//! still commit offsets to the group), or `subscribe` to topics as a member of a consumer group:
//! the group's coordinator assigns partitions, and `poll` applies each change — committing and
//! releasing revoked partitions before new ones start at their committed offsets.
//!
//! One concern a file:
//! - here, [`Consumer`] itself: assignment, positions and seeks, `poll` and the streams;
//! - `fetch`: the fetch pipeline: long polls, the rounds sent ahead, tailing streams, and the
//!   buffer of fetched records;
//! - `group`: the consumer's side of its group: subscriptions, commits, and applying the
//!   coordinator's assignment (the heartbeat itself runs in the crate's `group` module).
//!
//! Turning fetched batches into records is the crate's `decode` module's.

mod fetch;
mod group;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use strata_common::{ErrorCode, TopicPartition, validate_topic_name};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::consumer_config::{AutoOffsetReset, ConsumerConfig};
use crate::consumer_record::ConsumerRecord;
use crate::error::{Error, Result};
use crate::grpc::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, ListedOffset};
use crate::tailing::Tails;

use fetch::{FetchedRecords, PREFETCH_DEPTH, Prefetch};
use group::GroupClient;

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
    /// The fetch sent ahead of the next poll, if any.
    prefetch: Option<Prefetch>,
    /// `PREFETCH_DEPTH` permits, one held by each round of prefetches not yet collected.
    prefetch_permits: Arc<Semaphore>,
    /// Present when the configuration names a group.
    group: Option<GroupClient>,
    /// The last long-poll round read every partition it asked for up to its high watermark:
    /// the next records are the ones still to be appended, so tail them.
    caught_up: bool,
    /// Open only while tailing.
    tails: Tails,
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
        let group = config
            .group_id()
            .map(|group_id| GroupClient::new(cluster.clone(), group_id, config.request_timeout()));
        let tails = Tails::new(config.request_timeout());
        Ok(Consumer {
            config,
            cluster,
            positions: BTreeMap::new(),
            buffered: VecDeque::new(),
            prefetch: None,
            prefetch_permits: Arc::new(Semaphore::new(PREFETCH_DEPTH)),
            group,
            caught_up: false,
            tails,
        })
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Replaces the assignment. Partitions kept from the previous assignment keep their
    /// position; new ones start unresolved (see `auto_offset_reset`).
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        if self.is_subscribed() {
            return Err(Error::InvalidInput(
                "the consumer is subscribed; unsubscribe before assigning partitions".to_string(),
            ));
        }
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
        let found = self.list_offsets(partitions, timestamp).await?;
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
        let deadline = deadline_after(timeout);
        if self.is_subscribed() {
            self.poll_as_member(deadline).await?;
        } else {
            self.fill_buffer(deadline).await?;
        }
        // Before taking records, so a poll cancelled here loses none.
        self.let_prefetch_start().await;
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
            if self.has_buffered_records() {
                self.let_prefetch_start().await;
                if let Some(record) = self.take_records(1).pop() {
                    return Ok(record);
                }
            }
            let deadline = deadline_after(self.config.fetch_max_wait());
            if self.is_subscribed() {
                self.poll_as_member(deadline).await?;
            } else {
                self.fill_buffer(deadline).await?;
            }
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

    /// Kafka's ListOffsets with the same `query` (a timestamp, or earliest / latest) for each of
    /// `partitions`, which must be assigned.
    async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        query: i64,
    ) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
        self.check_assigned(partitions)?;
        let queries = partitions
            .iter()
            .map(|topic_partition| (topic_partition.clone(), query))
            .collect();
        self.cluster
            .list_offsets(queries, self.config.retry_policy())
            .await
    }

    async fn seek_by_query(&mut self, partitions: &[TopicPartition], query: i64) -> Result<()> {
        let found = self.list_offsets(partitions, query).await?;
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
}
