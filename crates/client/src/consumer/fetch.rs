//! The consumer's fetch pipeline: long polls per leader, the rounds sent ahead of the
//! application, tailing streams, and the buffer of fetched records that `poll` takes from.
//!
//! Pipelining: as soon as a fetch has buffered records, the next `Fetch` (from the end of what is
//! buffered) is sent in the background, so the broker reads and sends it while this consumer
//! decodes and the application works. It is collected once the buffer is empty, and its records
//! are kept only for partitions whose next fetch offset is still the one it fetched from, so a
//! `seek`, an `assign` or a rebalance in between discards them.
//!
//! The broker returns whole batches starting with the one that *contains* the fetch offset, so
//! the records before the position in the first batch are skipped (in `decode`). Every batch's
//! CRC is checked before any of its records is returned.
//!
//! Tailing: once a round of fetches reaches the end of every partition it read, the consumer
//! stops long-polling and has each leader push new batches over a `FetchStream` (see
//! `tailing`), until a seek, an assignment change or an error sends it back to long polls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use strata_common::{ErrorCode, TopicPartition};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::consumer_config::{AutoOffsetReset, ConsumerConfig};
use crate::consumer_record::ConsumerRecord;
use crate::decode::{decode_fetched, end_of_whole_batches};
use crate::error::{Error, Result};
use crate::grpc::{self, FetchParameters, FetchTarget, FetchedPartition};
use crate::metadata::Leader;
use crate::retry::Backoff;
use crate::tailing::{TailEvent, TailTargets};

use super::Consumer;

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
pub(super) const PREFETCH_DEPTH: usize = 2;

/// A round of fetches sent before the application asked for more records.
pub(super) struct Prefetch {
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

/// One partition's records from one fetch response.
#[derive(Debug)]
pub(super) struct FetchedRecords {
    pub(super) topic_partition: TopicPartition,
    pub(super) records: VecDeque<ConsumerRecord>,
    /// Where the next fetch of the partition starts once these are returned: past the last
    /// batch, which may be beyond the last record (e.g. after compaction).
    next_fetch_offset: i64,
}

impl Consumer {
    pub(super) fn has_buffered_records(&self) -> bool {
        self.buffered
            .iter()
            .any(|fetched| !fetched.records.is_empty())
    }

    /// Takes up to `max` buffered records, advancing positions past what is returned.
    pub(super) fn take_records(&mut self, max: usize) -> Vec<ConsumerRecord> {
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
    pub(super) async fn let_prefetch_start(&mut self) {
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
    pub(super) async fn fill_buffer(&mut self, deadline: Instant) -> Result<()> {
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
