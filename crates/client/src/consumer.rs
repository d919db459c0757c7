//! The consumer: reads assigned partitions with long-polling `Fetch` requests.
//!
//! Each assigned partition has a *position*: the offset of the next record `poll` returns. When
//! the buffer of fetched records is empty, `poll` sends one `Fetch` per leader for every assigned
//! partition at its position; the broker holds the request until `fetch_min_bytes` are available
//! or `fetch_max_wait_ms` passed, so an idle consumer costs one request per wait, not a spin.
//!
//! Pipelining: as soon as a fetch has buffered records, the next `Fetch` (from the end of what is
//! buffered) is sent in the background, so the broker reads and sends it while this consumer
//! decodes and the application works. It is collected once the buffer is empty, and its records
//! are kept only for partitions whose next fetch offset is still the one it fetched from, so a
//! `seek`, an `assign` or a rebalance in between discards them.
//!
//! The broker returns whole batches starting with the one that *contains* the fetch offset, so
//! the records before the position in the first batch are skipped here. Every batch's CRC is
//! checked before any of its records is returned.
//!
//! Positions start unknown; the first `poll` (or `position`) resolves them by
//! `auto_offset_reset`, as does an `OFFSET_OUT_OF_RANGE` answer.
//!
//! Tailing: once a round of fetches reaches the end of every partition it read, the consumer
//! stops long-polling and has each leader push new batches over a `FetchStream` (see
//! `tailing`), until a seek, an assignment change or an error sends it back to long polls.
//!
//! Two ways to get partitions: `assign` them (the application chooses; with a `group_id` it may
//! still commit offsets to the group), or `subscribe` to topics as a member of a consumer group:
//! the group's coordinator assigns partitions, and `poll` applies each change — committing and
//! releasing revoked partitions before new ones start at their committed offsets.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use strata_common::{ErrorCode, TopicPartition, validate_topic_name};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::consumer_config::{AutoOffsetReset, ConsumerConfig};
use crate::consumer_record::ConsumerRecord;
use crate::coordinator::CoordinatorLocator;
use crate::decode::{decode_fetched, end_of_whole_batches};
use crate::descriptions::OffsetAndMetadata;
use crate::error::{Error, Result};
use crate::group::{Membership, MembershipSettings, RebalanceEvent};
use crate::grpc::{
    self, EARLIEST_TIMESTAMP, FetchParameters, FetchTarget, FetchedPartition, LATEST_TIMESTAMP,
};
use crate::metadata::Leader;
use crate::retry::Backoff;
use crate::tailing::{TailEvent, TailTargets, Tails};

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

/// What one round of fetches returned, per leader: the leader, the topics asked for (to report
/// errors against) and the response.
type FetchResponses = Vec<(Leader, Vec<String>, Result<Vec<FetchedPartition>>)>;

/// Partitions' records decoded on the prefetch task: decoding then overlaps the application's
/// handling of the records before them.
type DecodedAhead = HashMap<TopicPartition, Decoded>;

/// What `decode_fetched` made of one partition's fetched bytes.
struct Decoded {
    /// The position the bytes were decoded from; records below it were skipped.
    from: i64,
    /// The records and the offset the next fetch starts at.
    outcome: Result<(Vec<ConsumerRecord>, i64)>,
}

/// Rounds of fetches sent ahead of the application, in flight or answered and not yet
/// collected. With one, the broker would sit idle while the consumer decodes a response: the
/// next round could only be sent once the response had been decoded and collected. With two, a
/// round is sent as soon as the one before it is answered, so the broker reads and sends while
/// the consumer decodes. Each answered round holds at most `fetch_max_bytes` per leader, so
/// this also bounds the memory beyond the buffer.
const PREFETCH_DEPTH: usize = 2;

/// A round of fetches sent before the application asked for more records.
struct Prefetch {
    /// The offset each partition was fetched from.
    fetched_from: BTreeMap<TopicPartition, i64>,
    task: AbortOnDrop<Prefetched>,
    /// Whether the task has been given a chance to send its requests; see
    /// [`Consumer::let_prefetch_start`].
    started: bool,
    /// One of the consumer's `PREFETCH_DEPTH` permits, returned when the round is collected.
    _permit: OwnedSemaphorePermit,
}

/// What a round of prefetches brought.
struct Prefetched {
    responses: FetchResponses,
    decoded: DecodedAhead,
    /// The round after this one, sent as soon as this one was answered when a permit was free.
    next: Option<Prefetch>,
}

/// A task that is cancelled when its handle is dropped (a closed consumer stops its prefetch).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a consumer subscribes to.
#[derive(Debug)]
enum Subscription {
    Topics(BTreeSet<String>),
    /// Matched against the cluster's topics whenever metadata is refreshed.
    Pattern(regex::Regex),
}

/// The consumer's side of its group.
struct GroupClient {
    locator: Arc<CoordinatorLocator>,
    subscription: Option<Subscription>,
    membership: Option<Membership>,
    events: VecDeque<RebalanceEvent>,
    last_auto_commit: Instant,
    pattern_checked: Option<Instant>,
}

/// How often a pattern subscription looks for new matching topics.
const PATTERN_REFRESH: Duration = Duration::from_secs(5);

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
        let group = config.group_id().map(|group_id| GroupClient {
            locator: Arc::new(CoordinatorLocator::new(
                cluster.clone(),
                group_id,
                config.request_timeout(),
            )),
            subscription: None,
            membership: None,
            events: VecDeque::new(),
            last_auto_commit: Instant::now(),
            pattern_checked: None,
        });
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
        if self
            .group
            .as_ref()
            .is_some_and(|group| group.subscription.is_some())
        {
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
            let count = (max - taken.len()).min(fetched.records.len());
            if taken.is_empty() {
                // The buffer's own allocation becomes the result, and what stays behind is
                // copied out in one piece rather than the result record by record.
                let rest = fetched.records.split_off(count);
                taken = Vec::from(std::mem::replace(&mut fetched.records, rest));
            } else {
                taken.extend(fetched.records.drain(..count));
            }
            if let (Some(last), Some(position)) = (
                taken.last().filter(|_| count > 0),
                self.positions.get_mut(&fetched.topic_partition),
            ) {
                *position = Some(last.offset + 1);
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
        if !taken.is_empty() {
            self.start_prefetch();
        }
        taken
    }

    /// Where the next fetch of each partition with a known position starts: after what is
    /// buffered for it, else at its position.
    fn next_fetch_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.positions
            .keys()
            .filter_map(|topic_partition| {
                Some((
                    topic_partition.clone(),
                    self.next_fetch_offset(topic_partition)?,
                ))
            })
            .collect()
    }

    fn next_fetch_offset(&self, topic_partition: &TopicPartition) -> Option<i64> {
        let after_buffered = self
            .buffered
            .iter()
            .rev()
            .find(|fetched| fetched.topic_partition == *topic_partition)
            .map(|fetched| fetched.next_fetch_offset);
        after_buffered.or(*self.positions.get(topic_partition)?)
    }

    /// Whether the next records come from streams rather than long polls.
    fn tailing(&self) -> bool {
        self.caught_up && self.tails.is_supported()
    }

    /// Every assigned partition's next fetch offset under its cached leader; `None` when a
    /// position is unresolved or a leader unknown, which only a long poll sorts out.
    fn tail_targets(&self) -> Option<TailTargets> {
        let mut targets: TailTargets = Vec::new();
        for topic_partition in self.positions.keys() {
            let offset = self.next_fetch_offset(topic_partition)?;
            let leader = self.cluster.cached_leader(topic_partition)?;
            add_target(&mut targets, leader, topic_partition, offset, &self.config);
        }
        Some(targets)
    }

    /// Waits until `deadline` for the tailed partitions' next response and buffers it.
    /// `false` when tailing stopped, for the caller to long-poll instead.
    async fn fill_from_tails(&mut self, deadline: Instant) -> Result<bool> {
        let Some(targets) = self.tail_targets() else {
            self.stop_tailing();
            return Ok(false);
        };
        // A long poll sent ahead would ask the same brokers for the same records.
        self.prefetch = None;
        if !self
            .tails
            .follow(&self.cluster, &self.config, targets)
            .await
        {
            self.stop_tailing();
            return Ok(false);
        }
        match self.tails.next(deadline).await {
            TailEvent::Idle => Ok(true),
            TailEvent::Stopped => {
                self.stop_tailing();
                Ok(false)
            }
            TailEvent::Fetched { leader, partitions } => {
                let topics = partitions
                    .iter()
                    .map(|fetched| fetched.topic_partition.topic.clone())
                    .collect();
                // Streamed responses carry no errors (`TailEvent::Fetched`), so nothing here
                // is retriable. Whether the consumer is caught up is not judged from them: one
                // that falls behind while tailing catches up over the stream.
                self.apply_fetch_responses(
                    vec![(leader, topics, Ok(partitions))],
                    &mut DecodedAhead::new(),
                )?;
                Ok(true)
            }
        }
    }

    fn stop_tailing(&mut self) {
        self.caught_up = false;
        self.tails.stop();
    }

    /// Sends the next fetch of every partition with a known position and a cached leader now,
    /// unless one is already in flight: the broker reads and sends it while the records already
    /// buffered are decoded and handed out. At most one response per partition waits beyond
    /// the buffer, since a prefetch is collected only once the buffer is empty.
    fn start_prefetch(&mut self) {
        if self.prefetch.is_none() {
            self.prefetch_from(self.next_fetch_offsets());
        }
    }

    /// Sends a round of fetches from `fetched_from` ahead of the application, unless the
    /// consumer tails: then the streams bring the next records.
    fn prefetch_from(&mut self, fetched_from: BTreeMap<TopicPartition, i64>) {
        if self.tailing() {
            return;
        }
        self.prefetch = spawn_prefetch(
            &self.cluster,
            &self.config,
            &self.prefetch_permits,
            fetched_from,
        );
    }

    /// Yields once to the runtime after spawning a prefetch, before records go back to the
    /// application. A task spawned from a runtime thread waits in that thread's queue (tokio's
    /// LIFO slot, which other workers cannot steal; the only queue on a current-thread
    /// runtime) until the spawning task yields, and a caller working through buffered records
    /// never awaits anything pending. Without this the fetch request would leave only once the
    /// buffer ran dry, so the broker would read and send while the application waited, not
    /// while it handled the records before. Kafka's consumer sends its next fetches before
    /// `poll` returns for the same reason.
    async fn let_prefetch_start(&mut self) {
        if let Some(prefetch) = self.prefetch.as_mut().filter(|prefetch| !prefetch.started) {
            prefetch.started = true;
            tokio::task::yield_now().await;
        }
    }

    /// Waits until `deadline` for the prefetch and buffers what still applies. Returns `true`
    /// when the prefetch finished (whatever it brought), `false` when it is still in flight.
    async fn collect_prefetch(&mut self, deadline: Instant) -> Result<bool> {
        let Some(prefetch) = self.prefetch.as_mut() else {
            return Ok(true);
        };
        let responses = match tokio::time::timeout_at(deadline, &mut prefetch.task.0).await {
            Err(_) => return Ok(false),
            Ok(joined) => joined,
        };
        let prefetch = self.prefetch.take().expect("checked above");
        let Ok(Prefetched {
            mut responses,
            mut decoded,
            next,
        }) = responses
        else {
            // The task was cancelled or panicked; the next round fetches afresh.
            return Ok(true);
        };
        let wanted = self.next_fetch_offsets();
        for (_, _, response) in &mut responses {
            if let Ok(partitions) = response {
                partitions.retain(|fetched| {
                    let topic_partition = &fetched.topic_partition;
                    wanted.get(topic_partition) == prefetch.fetched_from.get(topic_partition)
                });
            }
        }
        let (after_these, records_waiting) = advanced_past(&responses, &wanted);
        // Its permit goes back before the next round takes one.
        drop(prefetch);
        // The next round goes out before these records are handed out, if it has not already,
        // so the broker works on it meanwhile. Were these refused or cut below, its offsets no
        // longer match and it is discarded when collected. When nothing came back, the
        // caller's normal round fetches next; a prefetch beside it would ask for the same
        // offsets twice.
        match next {
            Some(next) if next.fetched_from == after_these => self.prefetch = Some(next),
            _ if after_these != wanted => {
                self.prefetch_from(after_these);
                if let Some(prefetch) = self.prefetch.as_mut().filter(|_| !records_waiting) {
                    // At the log end the next round only long-polls, so these records go to
                    // the application first rather than after the request is written.
                    prefetch.started = true;
                }
            }
            _ => {}
        }
        // A retriable error is left to the normal round that follows, which meets it again
        // and backs off; anything else fails the poll as it would there.
        let applied = self.apply_fetch_responses(responses, &mut decoded)?;
        self.caught_up = applied.reached_the_end;
        Ok(true)
    }

    /// Fetches until records are buffered or `deadline` passes.
    async fn fill_buffer(&mut self, deadline: Instant) -> Result<()> {
        if self.positions.is_empty() {
            return Err(Error::InvalidInput(
                "no partitions are assigned; call assign first".to_string(),
            ));
        }
        if !self.has_buffered_records() && self.tailing() && self.fill_from_tails(deadline).await? {
            return Ok(());
        }
        let mut backoff = Backoff::new(
            self.config.retry_backoff(),
            self.config.retry_backoff() * 10,
        );
        if !self.has_buffered_records() && !self.collect_prefetch(deadline).await? {
            // Still in flight at the deadline: it stays the next round's fetch.
            return Ok(());
        }
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
            if self.has_buffered_records() {
                self.start_prefetch();
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
        }
    }

    /// One long-poll round: a `Fetch` per leader, concurrently, for every assigned partition.
    async fn fetch_once(&mut self, max_wait: Duration) -> Result<()> {
        let mut retriable: Option<Error> = None;
        let mut by_leader: Vec<(Leader, Vec<FetchTarget>)> = Vec::new();
        let positions: Vec<(TopicPartition, i64)> = self
            .positions
            .iter()
            .filter_map(|(topic_partition, position)| Some((topic_partition.clone(), (*position)?)))
            .collect();
        for (topic_partition, fetch_offset) in positions {
            match self.cluster.leader(&topic_partition).await {
                Ok(leader) => add_target(
                    &mut by_leader,
                    leader,
                    &topic_partition,
                    fetch_offset,
                    &self.config,
                ),
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
        let responses = send_fetches(
            self.cluster.clone(),
            self.config.clone(),
            by_leader,
            max_wait,
        )
        .await;
        let applied = self.apply_fetch_responses(responses, &mut DecodedAhead::new())?;
        self.caught_up = applied.reached_the_end && retriable.is_none();
        if let Some(error) = applied.retriable {
            retriable = Some(error);
        }
        match retriable {
            Some(error) if !self.has_buffered_records() => Err(error),
            _ => Ok(()),
        }
    }

    /// Buffers what a round of fetches returned. Fails on an error that is not retriable.
    fn apply_fetch_responses(
        &mut self,
        responses: FetchResponses,
        decoded: &mut DecodedAhead,
    ) -> Result<Applied> {
        let mut applied = Applied {
            retriable: None,
            reached_the_end: true,
        };
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
                    applied.retriable = Some(error);
                    continue;
                }
            };
            for fetched in partitions {
                let decoded = decoded.remove(&fetched.topic_partition);
                let topic_partition = fetched.topic_partition.clone();
                let high_watermark = fetched.high_watermark;
                let failed = fetched.error.is_some();
                if let Some(error) = self.accept_fetched(fetched, decoded, &leader)? {
                    applied.retriable = Some(error);
                }
                let at_the_end = self
                    .next_fetch_offset(&topic_partition)
                    .is_some_and(|next| next >= high_watermark);
                applied.reached_the_end &= !failed && at_the_end;
            }
        }
        applied.reached_the_end &= applied.retriable.is_none();
        Ok(applied)
    }

    /// Buffers one partition's fetched records. Returns a retriable error for the caller to
    /// back off on; fails on anything else.
    fn accept_fetched(
        &mut self,
        fetched: FetchedPartition,
        decoded: Option<Decoded>,
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
        let (records, next_fetch_offset) = match decoded {
            Some(decoded) if decoded.from == position => decoded.outcome?,
            _ => decode_fetched(&topic_partition, position, fetched.records)?,
        };
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

/// What buffering a round of fetches found.
struct Applied {
    /// The last retriable error met, for the caller to back off on.
    retriable: Option<Error>,
    /// Every partition answered without an error and is read up to its high watermark.
    reached_the_end: bool,
}

/// Decodes each partition fetched without an error from the offset it was fetched from.
fn decode_ahead(
    responses: &FetchResponses,
    fetched_from: &BTreeMap<TopicPartition, i64>,
) -> DecodedAhead {
    responses
        .iter()
        .filter_map(|(_, _, response)| response.as_ref().ok())
        .flatten()
        .filter(|fetched| fetched.error.is_none())
        .filter_map(|fetched| {
            let topic_partition = &fetched.topic_partition;
            let &from = fetched_from.get(topic_partition)?;
            let outcome = decode_fetched(topic_partition, from, fetched.records.clone());
            Some((topic_partition.clone(), Decoded { from, outcome }))
        })
        .collect()
}

/// Sends a round of fetches from `fetched_from` to the partitions' cached leaders on a task that
/// also decodes the responses, and, once they arrive, sends the round after them if a permit
/// is free. `None` when no permit is free or no partition has a cached leader.
fn spawn_prefetch(
    cluster: &Arc<Cluster>,
    config: &ConsumerConfig,
    permits: &Arc<Semaphore>,
    fetched_from: BTreeMap<TopicPartition, i64>,
) -> Option<Prefetch> {
    let permit = permits.clone().try_acquire_owned().ok()?;
    let mut by_leader: Vec<(Leader, Vec<FetchTarget>)> = Vec::new();
    for (topic_partition, &fetch_offset) in &fetched_from {
        // Only what the cache knows: a prefetch never waits for metadata.
        if let Some(leader) = cluster.cached_leader(topic_partition) {
            add_target(
                &mut by_leader,
                leader,
                topic_partition,
                fetch_offset,
                config,
            );
        }
    }
    if by_leader.is_empty() {
        return None;
    }
    let responses = send_fetches(
        cluster.clone(),
        config.clone(),
        by_leader,
        config.fetch_max_wait(),
    );
    let (cluster, config, permits) = (cluster.clone(), config.clone(), permits.clone());
    let decode_from = fetched_from.clone();
    let task = async move {
        let responses = responses.await;
        let mut next = offsets_after(&responses, &decode_from)
            .and_then(|after| spawn_prefetch(&cluster, &config, &permits, after));
        if let Some(next) = next.as_mut() {
            // Lets the next round's requests leave before this task decodes (see
            // `Consumer::let_prefetch_start`).
            next.started = true;
            tokio::task::yield_now().await;
        }
        let decoded = decode_ahead(&responses, &decode_from);
        Prefetched {
            responses,
            decoded,
            next,
        }
    };
    Some(Prefetch {
        fetched_from,
        task: AbortOnDrop(tokio::spawn(task)),
        started: false,
        _permit: permit,
    })
}

/// Where the round after `responses` starts: each partition after its last whole batch.
/// `None` when a response or partition failed (the consumer's own round meets the error) or
/// when no partition has records waiting past what came back: a consumer at the log end would
/// only long-poll sooner, and the request written first would delay handing these records out.
fn offsets_after(
    responses: &FetchResponses,
    fetched_from: &BTreeMap<TopicPartition, i64>,
) -> Option<BTreeMap<TopicPartition, i64>> {
    let failed = responses.iter().any(|(_, _, response)| {
        response.as_ref().map_or(true, |partitions| {
            partitions.iter().any(|fetched| fetched.error.is_some())
        })
    });
    if failed {
        return None;
    }
    let (after, records_waiting) = advanced_past(responses, fetched_from);
    records_waiting.then_some(after)
}

/// `from` with each partition that returned records moved past its last whole batch, and
/// whether any of them has records waiting beyond that (its high watermark lies further on).
fn advanced_past(
    responses: &FetchResponses,
    from: &BTreeMap<TopicPartition, i64>,
) -> (BTreeMap<TopicPartition, i64>, bool) {
    let mut after = from.clone();
    let mut records_waiting = false;
    let answered = responses
        .iter()
        .filter_map(|(_, _, response)| response.as_ref().ok())
        .flatten();
    for fetched in answered {
        if let Some(end) = end_of_whole_batches(&fetched.records) {
            after.insert(fetched.topic_partition.clone(), end);
            records_waiting |= end < fetched.high_watermark;
        }
    }
    (after, records_waiting)
}

fn add_target(
    by_leader: &mut Vec<(Leader, Vec<FetchTarget>)>,
    leader: Leader,
    topic_partition: &TopicPartition,
    fetch_offset: i64,
    config: &ConsumerConfig,
) {
    let target = FetchTarget {
        topic_partition: topic_partition.clone(),
        fetch_offset,
        partition_max_bytes: config.max_partition_fetch_bytes(),
    };
    match by_leader
        .iter_mut()
        .find(|(known, _)| known.node_id == leader.node_id)
    {
        Some((_, targets)) => targets.push(target),
        None => by_leader.push((leader, vec![target])),
    }
}

/// Sends one `Fetch` per leader, concurrently. Owns everything it uses, so it can run as a task.
async fn send_fetches(
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    by_leader: Vec<(Leader, Vec<FetchTarget>)>,
    max_wait: Duration,
) -> FetchResponses {
    let requests = by_leader.into_iter().map(|(leader, targets)| {
        let cluster = cluster.clone();
        let config = &config;
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
    futures::future::join_all(requests).await
}

/// Consumer groups: subscribe, commit, and the rebalance protocol's client side.
impl Consumer {
    fn group(&self) -> Result<&GroupClient> {
        self.group.as_ref().ok_or_else(|| {
            Error::Config("this needs a consumer group: set group_id in the config".to_string())
        })
    }

    fn group_mut(&mut self) -> Result<&mut GroupClient> {
        self.group.as_mut().ok_or_else(|| {
            Error::Config("this needs a consumer group: set group_id in the config".to_string())
        })
    }

    /// The subscribed topics (those matching a pattern subscription when it was last checked);
    /// empty when not subscribed.
    pub fn subscription(&self) -> Vec<String> {
        match self
            .group
            .as_ref()
            .and_then(|group| group.subscription.as_ref())
        {
            Some(Subscription::Topics(topics)) => topics.iter().cloned().collect(),
            Some(Subscription::Pattern(regex)) => vec![regex.as_str().to_string()],
            None => Vec::new(),
        }
    }

    fn is_subscribed(&self) -> bool {
        self.group
            .as_ref()
            .is_some_and(|group| group.subscription.is_some())
    }

    /// Joins the group and consumes the partitions its coordinator assigns from `topics`.
    /// Replaces an earlier subscription; partitions come with the next `poll`s.
    pub fn subscribe<I, T>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let topics: BTreeSet<String> = topics.into_iter().map(Into::into).collect();
        if topics.is_empty() {
            return Err(Error::InvalidInput(
                "subscribe needs at least one topic".to_string(),
            ));
        }
        for topic in &topics {
            validate_topic_name(topic).map_err(Error::InvalidInput)?;
        }
        self.start_subscription(Subscription::Topics(topics.clone()), topics)
    }

    /// Subscribes to every topic whose whole name matches `pattern` (a regular expression),
    /// including topics created later; internal topics (`__...`) never match.
    pub async fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|error| {
            Error::InvalidInput(format!("'{pattern}' is not a valid pattern: {error}"))
        })?;
        let topics = self.topics_matching(&regex).await?;
        self.start_subscription(Subscription::Pattern(regex), topics)?;
        self.group_mut()?.pattern_checked = Some(Instant::now());
        Ok(())
    }

    async fn topics_matching(&self, regex: &regex::Regex) -> Result<BTreeSet<String>> {
        self.cluster.mark_stale();
        let snapshot = self.cluster.refresh(&[]).await?;
        Ok(snapshot
            .topic_names()
            .filter(|topic| !topic.starts_with("__") && regex.is_match(topic))
            .map(str::to_string)
            .collect())
    }

    fn start_subscription(
        &mut self,
        subscription: Subscription,
        topics: BTreeSet<String>,
    ) -> Result<()> {
        let settings = MembershipSettings {
            instance_id: self.config.group().group_instance_id.clone(),
            session_timeout: self.config.group().session_timeout,
            rebalance_timeout: self.config.group().max_poll_interval,
            max_poll_interval: self.config.group().max_poll_interval,
            assignor: self.config.group().assignor.clone(),
        };
        let was_assigned = self.group()?.subscription.is_none() && !self.positions.is_empty();
        if was_assigned {
            self.positions.clear();
            self.buffered.clear();
        }
        let group = self.group_mut()?;
        group.subscription = Some(subscription);
        match &group.membership {
            Some(membership) => membership.set_subscription(topics),
            None => {
                group.membership = Some(Membership::start(group.locator.clone(), topics, settings))
            }
        }
        Ok(())
    }

    /// Leaves the group (committing first with auto-commit) and drops every partition.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        self.leave_group().await;
        if let Some(group) = self.group.as_mut() {
            group.subscription = None;
        }
        self.positions.clear();
        self.buffered.clear();
        Ok(())
    }

    async fn leave_group(&mut self) {
        if self.config.enable_auto_commit()
            && self.is_subscribed()
            && let Err(error) = self.commit().await
        {
            tracing::warn!(%error, "could not commit positions before leaving the group");
        }
        if let Some(membership) = self
            .group
            .as_mut()
            .and_then(|group| group.membership.take())
        {
            membership.leave().await;
        }
    }

    /// Commits (with auto-commit) and leaves the group at once, so the group rebalances now
    /// rather than after the session timeout. Dropping a consumer without `close` only stops
    /// its heartbeats.
    pub async fn close(mut self) -> Result<()> {
        if self.is_subscribed() {
            self.leave_group().await;
        } else if self.group.is_some() && self.config.enable_auto_commit() {
            self.commit().await?;
        }
        Ok(())
    }

    /// Changes to this consumer's assignment since the last call, oldest first.
    pub fn rebalance_events(&mut self) -> Vec<RebalanceEvent> {
        self.group
            .as_mut()
            .map(|group| group.events.drain(..).collect())
            .unwrap_or_default()
    }

    /// Every known position as the offset to commit.
    fn positions_to_commit(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.positions
            .iter()
            .filter_map(|(topic_partition, position)| {
                position.map(|offset| (topic_partition.clone(), OffsetAndMetadata::new(offset)))
            })
            .collect()
    }

    /// Commits the position of every partition with one: the offset after the last record
    /// `poll` returned. Call it after processing a poll's records for at-least-once delivery
    /// (before processing, for at-most-once).
    pub async fn commit(&self) -> Result<()> {
        let offsets = self.positions_to_commit();
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_offsets(offsets).await
    }

    /// Commits the given offsets (the next offset to read, not the last one read).
    pub async fn commit_offsets(
        &self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let group = self.group()?;
        let identity = match &group.membership {
            Some(membership) => Some(membership.commit_identity().ok_or_else(|| {
                Error::broker(
                    ErrorCode::UnknownMemberId,
                    "the consumer has not joined its group yet; poll first",
                )
            })?),
            None => None,
        };
        commit_with(
            &group.locator,
            identity,
            offsets,
            self.config.request_timeout(),
        )
        .await
    }

    /// Starts a commit of the current positions in the background; failures are logged (a
    /// later commit supersedes them).
    pub fn commit_async(&mut self) {
        let Some(group) = self.group.as_ref() else {
            return;
        };
        let offsets = self.positions_to_commit();
        let identity = match &group.membership {
            Some(membership) => match membership.commit_identity() {
                Some(identity) => Some(identity),
                None => return,
            },
            None => None,
        };
        if offsets.is_empty() {
            return;
        }
        let locator = group.locator.clone();
        let timeout = self.config.request_timeout();
        tokio::spawn(async move {
            if let Err(error) = commit_with(&locator, identity, offsets, timeout).await {
                tracing::warn!(%error, "asynchronous commit failed");
            }
        });
    }

    /// The group's committed offsets for `partitions` (`None` where it has none).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        let group = self.group()?;
        let group_id = group.locator.group_id().to_string();
        let timeout = self.config.request_timeout();
        group
            .locator
            .call(timeout, |connection| {
                let group_id = group_id.clone();
                async move { grpc::offset_fetch(&connection, &group_id, partitions, timeout).await }
            })
            .await
    }

    /// One poll as a group member: apply assignment changes, auto-commit when due, then fetch.
    async fn poll_as_member(&mut self, deadline: Instant) -> Result<()> {
        loop {
            self.group_mut()?
                .membership
                .as_ref()
                .expect("a subscribed consumer has a membership")
                .on_poll()?;
            self.refresh_pattern_subscription().await?;
            self.reconcile_assignment().await?;
            self.auto_commit_if_due();
            if self.has_buffered_records() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            if self.positions.is_empty() {
                // Nothing to fetch until the coordinator assigns something.
                let membership = self
                    .group_mut()?
                    .membership
                    .as_mut()
                    .expect("a subscribed consumer has a membership");
                membership
                    .changed(
                        deadline
                            .saturating_duration_since(now)
                            .min(Duration::from_millis(500)),
                    )
                    .await;
                continue;
            }
            // Short rounds, so an assignment change is applied within a fetch wait.
            let round = deadline.min(now + self.config.fetch_max_wait());
            self.fill_buffer(round).await?;
        }
    }

    async fn refresh_pattern_subscription(&mut self) -> Result<()> {
        let group = self.group()?;
        let Some(Subscription::Pattern(regex)) = &group.subscription else {
            return Ok(());
        };
        if group
            .pattern_checked
            .is_some_and(|checked| checked.elapsed() < PATTERN_REFRESH)
        {
            return Ok(());
        }
        let regex = regex.clone();
        let topics = self.topics_matching(&regex).await?;
        let group = self.group_mut()?;
        group.pattern_checked = Some(Instant::now());
        if let Some(membership) = &group.membership {
            membership.set_subscription(topics);
        }
        Ok(())
    }

    /// Applies the coordinator's latest assignment: revoked partitions are committed (with
    /// auto-commit) and released, new ones start at the group's committed offsets, and the
    /// coordinator is told what the consumer now owns.
    async fn reconcile_assignment(&mut self) -> Result<()> {
        let view = {
            let group = self.group()?;
            group
                .membership
                .as_ref()
                .expect("a subscribed consumer has a membership")
                .view()
        };
        let owned: BTreeSet<TopicPartition> = self.positions.keys().cloned().collect();
        if view.fenced {
            self.positions.clear();
            self.buffered.clear();
            let group = self.group_mut()?;
            if !owned.is_empty() {
                group
                    .events
                    .push_back(RebalanceEvent::Lost(owned.into_iter().collect()));
            }
            group
                .membership
                .as_ref()
                .expect("membership")
                .report_owned(BTreeSet::new(), true);
            return Ok(());
        }
        if view.assignment == owned {
            return Ok(());
        }
        let revoked: Vec<TopicPartition> = owned.difference(&view.assignment).cloned().collect();
        if !revoked.is_empty() {
            if self.config.enable_auto_commit() {
                let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = revoked
                    .iter()
                    .filter_map(|tp| {
                        let position = self.positions.get(tp).copied().flatten()?;
                        Some((tp.clone(), OffsetAndMetadata::new(position)))
                    })
                    .collect();
                if !offsets.is_empty() {
                    let group = self.group()?;
                    let identity = Some((view.member_id.clone(), view.member_epoch));
                    if let Err(error) = commit_with(
                        &group.locator,
                        identity,
                        offsets,
                        self.config.request_timeout(),
                    )
                    .await
                    {
                        // Not fatal: the next owner starts from the last successful commit, so
                        // records are redelivered, never skipped.
                        tracing::warn!(%error, "could not commit revoked partitions");
                    }
                }
            }
            for topic_partition in &revoked {
                self.positions.remove(topic_partition);
            }
            self.buffered
                .retain(|fetched| !revoked.contains(&fetched.topic_partition));
            self.group_mut()?
                .events
                .push_back(RebalanceEvent::Revoked(revoked));
        }
        let assigned: Vec<TopicPartition> = view.assignment.difference(&owned).cloned().collect();
        if !assigned.is_empty() {
            let committed = self.committed(&assigned).await?;
            for topic_partition in &assigned {
                let offset = committed
                    .get(topic_partition)
                    .cloned()
                    .flatten()
                    .map(|committed| committed.offset);
                self.positions.insert(topic_partition.clone(), offset);
            }
            self.group_mut()?
                .events
                .push_back(RebalanceEvent::Assigned(assigned));
        }
        let owned: BTreeSet<TopicPartition> = self.positions.keys().cloned().collect();
        self.group()?
            .membership
            .as_ref()
            .expect("membership")
            .report_owned(owned, false);
        Ok(())
    }

    fn auto_commit_if_due(&mut self) {
        if !self.config.enable_auto_commit() {
            return;
        }
        let interval = self.config.group().auto_commit_interval;
        let Some(group) = self.group.as_mut() else {
            return;
        };
        if group.last_auto_commit.elapsed() < interval {
            return;
        }
        group.last_auto_commit = Instant::now();
        self.commit_async();
    }
}

/// Sends a commit to the group's coordinator; fails with the first partition's error.
async fn commit_with(
    locator: &CoordinatorLocator,
    identity: Option<(String, i32)>,
    offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    timeout: Duration,
) -> Result<()> {
    let group_id = locator.group_id().to_string();
    let answers = locator
        .call(timeout, |connection| {
            let (group_id, identity, offsets) = (group_id.clone(), identity.clone(), &offsets);
            async move {
                let member = identity
                    .as_ref()
                    .map(|(member_id, epoch)| (member_id.as_str(), *epoch));
                let answers =
                    grpc::offset_commit(&connection, &group_id, member, offsets, timeout).await?;
                // A whole-commit coordinator error is retried like a failed request.
                if let Some((_, Err(error))) = answers.first()
                    && answers.iter().all(|(_, answer)| answer.is_err())
                    && error.is_retriable()
                {
                    return Err(error.clone());
                }
                Ok(answers)
            }
        })
        .await?;
    for (_, answer) in answers {
        answer?;
    }
    Ok(())
}

/// The error for a position outside the log, naming the first and last offsets the partition
/// holds when the broker sent them. The log end offset is the offset the next record will get,
/// not one stored, so it is not named as part of the range (and the broker's own text, which
/// does name it, is left out then).
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
    let message = if log_start_offset >= 0 && high_watermark > log_start_offset {
        let last = high_watermark - 1;
        format!(
            "offset {position} is out of range for {topic_partition}: it holds offsets \
             {log_start_offset} to {last}"
        )
    } else if log_start_offset >= 0 && high_watermark == log_start_offset {
        format!(
            "offset {position} is out of range for {topic_partition}: the partition is empty \
             (the next record gets offset {high_watermark})"
        )
    } else {
        format!("offset {position} is out of range for {topic_partition} ({broker_message})")
    };
    Error::broker(ErrorCode::OffsetOutOfRange, message)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::{batch, tp};
    use bytes::Bytes;

    fn answered(records: Vec<u8>, high_watermark: i64, error: Option<Error>) -> FetchResponses {
        let leader = Leader {
            node_id: 1,
            address: "127.0.0.1:7070".to_string(),
        };
        let fetched = FetchedPartition {
            topic_partition: tp(),
            error,
            high_watermark,
            log_start_offset: 0,
            records: Bytes::from(records),
        };
        vec![(leader, vec!["t".to_string()], Ok(vec![fetched]))]
    }

    #[test]
    fn the_next_round_is_sent_ahead_only_while_records_wait_past_the_response() {
        let from = BTreeMap::from([(tp(), 0)]);
        assert_eq!(
            offsets_after(&answered(batch(0, 5), 9, None), &from),
            Some(BTreeMap::from([(tp(), 5)])),
            "catching up: the next round starts after the response"
        );
        assert_eq!(
            offsets_after(&answered(batch(0, 5), 5, None), &from),
            None,
            "at the log end the next round would only long-poll"
        );
        assert_eq!(offsets_after(&answered(Vec::new(), 5, None), &from), None);
        let failed = Error::broker(ErrorCode::NotLeaderOrFollower, "moved");
        assert_eq!(
            offsets_after(&answered(batch(0, 5), 9, Some(failed)), &from),
            None,
            "an error is left to the consumer's own round"
        );
    }

    #[test]
    fn out_of_range_errors_name_the_valid_range() {
        let broker = Error::broker(ErrorCode::OffsetOutOfRange, "offset 10 is past the end");
        let error = out_of_range(&tp(), 10, 0, 3, &broker);
        assert_eq!(error.code(), Some(ErrorCode::OffsetOutOfRange));
        assert_eq!(
            error.to_string(),
            format!(
                "OFFSET_OUT_OF_RANGE (1): offset 10 is out of range for {}: it holds offsets 0 to 2",
                tp()
            )
        );
        let empty = out_of_range(&tp(), 2, 5, 5, &broker);
        assert_eq!(
            empty.to_string(),
            format!(
                "OFFSET_OUT_OF_RANGE (1): offset 2 is out of range for {}: the partition is empty (the next record gets offset 5)",
                tp()
            )
        );
        let unknown = out_of_range(&tp(), 10, -1, -1, &broker);
        assert!(
            unknown.to_string().contains("offset 10 is past the end"),
            "{unknown}"
        );
    }
}
