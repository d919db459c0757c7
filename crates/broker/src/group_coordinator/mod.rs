//! The group coordinator's IO: it hosts the pure `CoordinatorShard` of every
//! `__consumer_offsets` partition this broker leads, makes its records durable, and rebuilds a
//! shard from the log when leadership arrives.
//!
//! Durability is the data path's: a shard's records are appended to its partition with
//! `acks=all` and a request is answered only after the high watermark covers them, so a
//! committed offset survives what an acknowledged record survives. Records are appended under
//! the shard's lock (so the log order is the order the shard applied them) and replication is
//! awaited outside it (so many commits share one round trip to the followers).
//!
//! The shard applies an operation's records before they are durable. If an append or its
//! replication fails, the shard may hold state the log does not, so it is thrown away and the
//! next request reloads it from the log.
//!
//! Bounded state: every `snapshot_every_records` records the shard writes a snapshot record and,
//! once it is replicated, moves the partition's log start to it (followers follow the log start),
//! so loading a shard reads one snapshot plus a bounded tail, however many commits were made.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ErrorCode, TopicPartition};
use strata_controller::{Controller, MetadataCommand, MetadataState};
use strata_coordinator::shard::ShareDeadLetter;
use strata_coordinator::share::ShareLimits;
use strata_coordinator::{
    CoordinatorConfig, CoordinatorError, CoordinatorRecord, CoordinatorShard, OFFSETS_TOPIC,
    partition_for_group,
};
use strata_proto::v1 as proto;
use strata_record::{BatchIter, RecordBatchBuilder};
use tokio::sync::watch;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::broker_lifecycle::{controller_error, wait_until_applied};
use crate::error::PartitionError;
use crate::replica_manager::{Acks, Partition, ReplicaManager};

mod classic;
mod share;

pub(crate) use classic::{
    ClassicAnswer, classic_assignment, classic_subscription, classic_subscriptions,
};
pub(crate) use share::{MemberAck, ShareSettings};

/// How long the coordinator waits for a partition leader on another broker to report its
/// offsets. The leader answers from memory, so anything slower is a peer in trouble, and a share
/// fetch skips that partition for the round rather than wait on it.
const LEADER_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct GroupCoordinatorConfig {
    /// Partitions of `__consumer_offsets`, fixed when the topic is first created.
    pub offsets_topic_partitions: i32,
    /// Replicas of `__consumer_offsets` (fewer if the cluster has fewer brokers).
    pub offsets_topic_replication_factor: i32,
    /// A snapshot is written after this many records, bounding what a new coordinator replays.
    pub snapshot_every_records: u64,
    /// How long a write waits for replication before the request fails (retriably).
    pub write_timeout: Duration,
    pub coordinator: CoordinatorConfig,
    /// Share-group defaults: delivery attempts before the dead-letter topic, and the most
    /// offsets in flight per share partition.
    pub share_limits: ShareLimits,
}

impl Default for GroupCoordinatorConfig {
    fn default() -> Self {
        GroupCoordinatorConfig {
            offsets_topic_partitions: 12,
            offsets_topic_replication_factor: 3,
            snapshot_every_records: 1_000,
            write_timeout: Duration::from_secs(5),
            coordinator: CoordinatorConfig::default(),
            share_limits: ShareLimits::default(),
        }
    }
}

/// Where a partition is led, seen from this broker.
pub(crate) enum PartitionLeader {
    Local(Arc<Partition>),
    /// Led by another node, reached at its internal listener's address.
    Remote(String),
}

/// A loaded shard, valid for one leader epoch of its partition.
pub(crate) struct LoadedShard {
    partition: Arc<Partition>,
    leader_epoch: i32,
    inner: tokio::sync::Mutex<ShardInner>,
}

struct ShardInner {
    shard: CoordinatorShard,
    records_since_snapshot: u64,
    /// Set when the shard may hold state its log does not; it is reloaded before further use.
    failed: bool,
}

pub(crate) struct GroupCoordinator {
    config: GroupCoordinatorConfig,
    replicas: Arc<ReplicaManager>,
    controller: Arc<Controller>,
    applied_metadata: watch::Receiver<Arc<MetadataState>>,
    clock: Arc<dyn Clock>,
    shards: Mutex<HashMap<i32, Arc<LoadedShard>>>,
    /// Serialises loads so two requests do not replay the same partition at once.
    loading: tokio::sync::Mutex<()>,
    /// The highest high watermark seen per partition: it only grows, so a commit at or below it
    /// needs no question to the partition's leader.
    high_watermarks: Mutex<HashMap<TopicPartition, i64>>,
    leader_clients: Mutex<HashMap<String, proto::broker_client::BrokerClient<Channel>>>,
    /// Woken when share-group records may have become available (acknowledgements, releases,
    /// expired locks), so waiting share fetches look again.
    share_available: tokio::sync::Notify,
    /// Bumped whenever a classic group may have answered a waiting JoinGroup or SyncGroup.
    classic_changed: watch::Sender<u64>,
}

fn coordinator_error(error: CoordinatorError) -> PartitionError {
    PartitionError::new(error.code, error.message)
}

/// Kafka's mapping: a write that failed because of the offsets partition is reported as a
/// coordinator problem, which clients handle by finding the coordinator again and retrying.
fn write_error(error: PartitionError) -> PartitionError {
    let code = match error.code {
        ErrorCode::NotLeaderOrFollower | ErrorCode::UnknownTopicOrPartition => {
            ErrorCode::NotCoordinator
        }
        ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::KafkaStorageError
        | ErrorCode::LeaderNotAvailable => ErrorCode::CoordinatorNotAvailable,
        other => other,
    };
    PartitionError::new(
        code,
        format!("could not store the group's change: {}", error.message),
    )
}

fn not_coordinator(group_id: &str, partition: i32) -> PartitionError {
    PartitionError::new(
        ErrorCode::NotCoordinator,
        format!(
            "this broker is not the coordinator of group '{group_id}' ({OFFSETS_TOPIC}-{partition}); find the coordinator again"
        ),
    )
}

impl GroupCoordinator {
    pub(crate) fn new(
        config: GroupCoordinatorConfig,
        replicas: Arc<ReplicaManager>,
        controller: Arc<Controller>,
        applied_metadata: watch::Receiver<Arc<MetadataState>>,
        clock: Arc<dyn Clock>,
    ) -> GroupCoordinator {
        GroupCoordinator {
            config,
            replicas,
            controller,
            applied_metadata,
            clock,
            shards: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            high_watermarks: Mutex::new(HashMap::new()),
            leader_clients: Mutex::new(HashMap::new()),
            share_available: tokio::sync::Notify::new(),
            classic_changed: watch::Sender::new(0),
        }
    }

    pub(crate) fn coordinator_config(&self) -> &CoordinatorConfig {
        &self.config.coordinator
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn metadata(&self) -> Arc<MetadataState> {
        self.applied_metadata.borrow().clone()
    }

    /// The broker coordinating `group_id`: the leader of its `__consumer_offsets` partition.
    /// Creates the topic on first use, as Kafka does.
    pub(crate) async fn find_coordinator(
        &self,
        group_id: &str,
    ) -> Result<(i32, String), PartitionError> {
        if group_id.is_empty() {
            return Err(PartitionError::new(
                ErrorCode::InvalidGroupId,
                "group id is empty",
            ));
        }
        self.ensure_offsets_topic().await?;
        let metadata = self.metadata();
        let topic = metadata
            .topic(OFFSETS_TOPIC)
            .expect("ensure_offsets_topic waited for it");
        let partition = partition_for_group(group_id, topic.partitions.len() as i32);
        let leader = topic.partitions[partition as usize].leader;
        let address = metadata
            .broker(leader)
            .filter(|broker| !broker.fenced)
            .map(|broker| broker.address.clone())
            .ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::CoordinatorNotAvailable,
                    format!("{OFFSETS_TOPIC}-{partition} has no leader right now"),
                )
            })?;
        Ok((leader, address))
    }

    async fn ensure_offsets_topic(&self) -> Result<(), PartitionError> {
        self.create_internal_topic(
            OFFSETS_TOPIC,
            self.config.offsets_topic_partitions,
            |replication_factor| {
                [
                    ("retention.ms", "-1"),
                    ("retention.bytes", "-1"),
                    // Snapshots are single records holding every group of the partition.
                    ("max.message.bytes", "104857600"),
                    ("segment.bytes", "16777216"),
                    (
                        "min.insync.replicas",
                        if replication_factor >= 3 { "2" } else { "1" },
                    ),
                ]
                .into_iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
            },
        )
        .await?;
        wait_until_applied(&self.applied_metadata, Duration::from_secs(10), |state| {
            state.topic(OFFSETS_TOPIC).is_some()
        })
        .await
        .map_err(|error| PartitionError::new(ErrorCode::CoordinatorNotAvailable, error.message))
    }

    /// Creates a topic the broker itself needs (the offsets topic, dead-letter topics) unless
    /// it exists, replicated like the offsets topic but never more than the live brokers allow.
    /// `configs` is given the replication factor chosen.
    async fn create_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: impl FnOnce(i32) -> BTreeMap<String, String>,
    ) -> Result<(), PartitionError> {
        if self.metadata().topic(name).is_some() {
            return Ok(());
        }
        let live = self.metadata().live_brokers().len() as i32;
        let replication_factor = self
            .config
            .offsets_topic_replication_factor
            .min(live.max(1));
        let command = MetadataCommand::CreateTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs: configs(replication_factor),
        };
        match self.controller.submit(command).await {
            Ok(_) => {
                info!(
                    topic = name,
                    replication_factor, "created an internal topic"
                );
                Ok(())
            }
            Err(error) if error.code() == ErrorCode::TopicAlreadyExists => Ok(()),
            Err(error) => Err(controller_error(error)),
        }
    }

    /// The loaded shard for `group_id`, loading it if this broker just became its leader.
    pub(crate) async fn shard_for(
        &self,
        group_id: &str,
    ) -> Result<Arc<LoadedShard>, PartitionError> {
        if group_id.is_empty() {
            return Err(PartitionError::new(
                ErrorCode::InvalidGroupId,
                "group id is empty",
            ));
        }
        let partitions = self
            .metadata()
            .topic(OFFSETS_TOPIC)
            .map(|topic| topic.partitions.len() as i32)
            .ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::CoordinatorNotAvailable,
                    format!("{OFFSETS_TOPIC} does not exist yet; FindCoordinator creates it"),
                )
            })?;
        let partition = partition_for_group(group_id, partitions);
        self.load(partition)
            .await?
            .ok_or_else(|| not_coordinator(group_id, partition))
    }

    /// The shard of one offsets partition if this broker leads it; `None` otherwise.
    async fn load(&self, partition_index: i32) -> Result<Option<Arc<LoadedShard>>, PartitionError> {
        let current = |coordinator: &GroupCoordinator| -> Option<(Arc<Partition>, i32)> {
            let partition = coordinator
                .replicas
                .partition(OFFSETS_TOPIC, partition_index)
                .ok()?;
            partition
                .is_leader()
                .then(|| (partition.clone(), partition.leader_epoch()))
        };
        let Some((partition, leader_epoch)) = current(self) else {
            self.shards
                .lock()
                .expect("shards lock")
                .remove(&partition_index);
            return Ok(None);
        };
        if let Some(shard) = self.usable_shard(partition_index, leader_epoch) {
            return Ok(Some(shard));
        }
        let _loading = self.loading.lock().await;
        if let Some(shard) = self.usable_shard(partition_index, leader_epoch) {
            return Ok(Some(shard));
        }
        let log = partition.log().clone();
        let config = self.config.coordinator.clone();
        let (shard, replayed) = tokio::task::spawn_blocking(move || replay_log(&log, config))
            .await
            .map_err(|error| {
                PartitionError::new(
                    ErrorCode::UnknownServerError,
                    format!("loading the group coordinator failed: {error}"),
                )
            })??;
        info!(
            partition = partition_index,
            leader_epoch, replayed, "group coordinator loaded"
        );
        let loaded = Arc::new(LoadedShard {
            partition,
            leader_epoch,
            inner: tokio::sync::Mutex::new(ShardInner {
                shard,
                records_since_snapshot: replayed,
                failed: false,
            }),
        });
        self.shards
            .lock()
            .expect("shards lock")
            .insert(partition_index, loaded.clone());
        Ok(Some(loaded))
    }

    fn usable_shard(&self, partition_index: i32, leader_epoch: i32) -> Option<Arc<LoadedShard>> {
        let shards = self.shards.lock().expect("shards lock");
        let shard = shards.get(&partition_index)?;
        let usable = shard.leader_epoch == leader_epoch
            && shard.inner.try_lock().map_or(true, |inner| !inner.failed);
        usable.then(|| shard.clone())
    }

    /// Every shard this broker leads, loaded.
    /// `read` of every shard this node leads now, for metrics. A shard busy at this instant is
    /// skipped rather than waited for, so a scrape never queues behind group operations.
    pub(crate) fn read_led_shards_now<T>(
        &self,
        mut read: impl FnMut(&CoordinatorShard) -> T,
    ) -> Vec<T> {
        let shards: Vec<Arc<LoadedShard>> = self
            .shards
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        shards
            .iter()
            .filter(|shard| shard.partition.is_leader())
            .filter_map(|shard| {
                let inner = shard.inner.try_lock().ok()?;
                (!inner.failed).then(|| read(&inner.shard))
            })
            .collect()
    }

    pub(crate) async fn led_shards(&self) -> Vec<Arc<LoadedShard>> {
        let partitions = self
            .metadata()
            .topic(OFFSETS_TOPIC)
            .map_or(0, |topic| topic.partitions.len() as i32);
        let mut shards = Vec::new();
        for partition in 0..partitions {
            match self.load(partition).await {
                Ok(Some(shard)) => shards.push(shard),
                Ok(None) => {}
                Err(error) => warn!(partition, %error, "cannot load a group coordinator shard"),
            }
        }
        shards
    }

    /// Reads the shard; nothing is written.
    pub(crate) async fn read<T>(
        &self,
        shard: &LoadedShard,
        read: impl FnOnce(&CoordinatorShard) -> T,
    ) -> Result<T, PartitionError> {
        let inner = shard.inner.lock().await;
        if inner.failed {
            return Err(PartitionError::new(
                ErrorCode::CoordinatorLoadInProgress,
                "the group coordinator is reloading its state",
            ));
        }
        Ok(read(&inner.shard))
    }

    /// Runs `operation` on the shard and makes its records durable before returning its answer.
    pub(crate) async fn write<T>(
        &self,
        shard: &LoadedShard,
        operation: impl FnOnce(
            &mut CoordinatorShard,
        ) -> Result<(T, Vec<CoordinatorRecord>), CoordinatorError>,
    ) -> Result<T, PartitionError> {
        self.write_with_dead_letters(shard, |shard| {
            operation(shard).map(|(answer, records)| (answer, records, Vec::new()))
        })
        .await
    }

    /// Like `write`, for share-group operations that also dead-letter records: those are
    /// written to their dead-letter topics (with `acks=all`) before the state that archives
    /// them, so a failure in between redelivers a record rather than losing it.
    pub(crate) async fn write_with_dead_letters<T>(
        &self,
        shard: &LoadedShard,
        operation: impl FnOnce(
            &mut CoordinatorShard,
        ) -> Result<
            (T, Vec<CoordinatorRecord>, Vec<ShareDeadLetter>),
            CoordinatorError,
        >,
    ) -> Result<T, PartitionError> {
        let now_ms = self.clock.now_ms();
        let (answer, pending, snapshot) = {
            let mut inner = shard.inner.lock().await;
            if inner.failed {
                return Err(PartitionError::new(
                    ErrorCode::CoordinatorLoadInProgress,
                    "the group coordinator is reloading its state",
                ));
            }
            let (answer, records, dead_letters) =
                operation(&mut inner.shard).map_err(coordinator_error)?;
            if !dead_letters.is_empty()
                && let Err(error) = self.dead_letter(&dead_letters).await
            {
                inner.failed = true;
                return Err(error);
            }
            if records.is_empty() {
                return Ok(answer);
            }
            inner.records_since_snapshot += records.len() as u64;
            let snapshot_due = inner.records_since_snapshot >= self.config.snapshot_every_records;
            let mut batch = encode_batch(&records, now_ms);
            let mut snapshot_records = 0;
            if snapshot_due {
                // The snapshot goes in the same append, right after the records it includes.
                snapshot_records = records.len() as i64;
                let snapshot = encode_batch(&[inner.shard.snapshot()], now_ms);
                let mut both = Vec::with_capacity(batch.len() + snapshot.len());
                both.extend_from_slice(&batch);
                both.extend_from_slice(&snapshot);
                batch = Bytes::from(both);
                inner.records_since_snapshot = 0;
            }
            match self
                .replicas
                .append_as_leader(
                    OFFSETS_TOPIC,
                    shard.partition.topic_partition().partition,
                    batch,
                    Acks::All,
                )
                .await
            {
                Ok((info, pending)) => {
                    let snapshot = snapshot_due.then_some(info.base_offset + snapshot_records);
                    (answer, pending, snapshot)
                }
                Err(error) => {
                    inner.failed = true;
                    return Err(write_error(error));
                }
            }
        };
        if let Err(error) = pending.wait(self.config.write_timeout).await {
            shard.inner.lock().await.failed = true;
            return Err(write_error(error));
        }
        if let Some(snapshot_offset) = snapshot {
            let log = shard.partition.log().clone();
            let cut =
                tokio::task::spawn_blocking(move || log.delete_records_before(snapshot_offset))
                    .await;
            if !matches!(cut, Ok(Ok(_))) {
                warn!(
                    ?cut,
                    "could not move the offsets log start to the snapshot; will retry at the next one"
                );
            }
        }
        Ok(answer)
    }

    /// Session and rebalance timeouts and offset retention of every loaded shard; drops shards
    /// this broker no longer leads.
    pub(crate) async fn expire_members(&self) {
        let loaded: Vec<(i32, Arc<LoadedShard>)> = self
            .shards
            .lock()
            .expect("shards lock")
            .iter()
            .map(|(partition, shard)| (*partition, shard.clone()))
            .collect();
        for (partition_index, shard) in loaded {
            if !shard.partition.is_leader() || shard.partition.leader_epoch() != shard.leader_epoch
            {
                self.shards
                    .lock()
                    .expect("shards lock")
                    .remove(&partition_index);
                continue;
            }
            let now_ms = self.clock.now_ms();
            let expired = self
                .write(&shard, |shard| Ok(((), shard.expire_members(now_ms))))
                .await;
            self.classic_tick(&shard, now_ms).await;
            if let Err(error) = expired {
                warn!(partition = partition_index, %error, "could not store expired members");
            }
            let expired = self
                .write(&shard, |shard| Ok(((), shard.expire_offsets(now_ms))))
                .await;
            if let Err(error) = expired {
                warn!(partition = partition_index, %error, "could not store expired offsets");
            }
            let limits = self.config.share_limits;
            let expired = self
                .write_with_dead_letters(&shard, |shard| {
                    let (dead_letters, records) = shard.share_expire(&limits, now_ms);
                    Ok((!records.is_empty(), records, dead_letters))
                })
                .await;
            match expired {
                Ok(true) => self.share_available.notify_waiters(),
                Ok(false) => {}
                Err(error) => {
                    warn!(partition = partition_index, %error, "could not expire share-group locks")
                }
            }
        }
    }

    /// Partition counts of every user topic, for the assignors.
    pub(crate) fn topic_partition_counts(&self) -> BTreeMap<String, i32> {
        self.metadata()
            .topics
            .values()
            .filter(|topic| !topic.name.starts_with("__"))
            .map(|topic| (topic.name.clone(), topic.partitions.len() as i32))
            .collect()
    }

    /// Checks that no offset is above its partition's high watermark, asking the partition's
    /// leader when the cached high watermark is not enough.
    pub(crate) async fn check_high_watermarks(
        &self,
        offsets: &[(TopicPartition, i64)],
    ) -> Vec<Result<(), PartitionError>> {
        let mut outcomes = Vec::with_capacity(offsets.len());
        for (topic_partition, offset) in offsets {
            let cached = self
                .high_watermarks
                .lock()
                .expect("high watermarks lock")
                .get(topic_partition)
                .copied();
            if cached.is_some_and(|high_watermark| *offset <= high_watermark) {
                outcomes.push(Ok(()));
                continue;
            }
            let outcome = match self.current_high_watermark(topic_partition).await {
                Ok(high_watermark) => {
                    self.high_watermarks
                        .lock()
                        .expect("high watermarks lock")
                        .insert(topic_partition.clone(), high_watermark);
                    if *offset <= high_watermark {
                        Ok(())
                    } else {
                        Err(PartitionError::new(
                            ErrorCode::OffsetOutOfRange,
                            format!(
                                "offset {offset} for {topic_partition} is above its high watermark {high_watermark}"
                            ),
                        ))
                    }
                }
                Err(error) => Err(error),
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    async fn current_high_watermark(
        &self,
        topic_partition: &TopicPartition,
    ) -> Result<i64, PartitionError> {
        Ok(self.partition_bounds(topic_partition).await?.1)
    }

    /// Where `topic_partition` is led: here, or at a broker's address.
    fn leader_of(
        &self,
        topic_partition: &TopicPartition,
    ) -> Result<PartitionLeader, PartitionError> {
        if let Ok(local) = self
            .replicas
            .partition(&topic_partition.topic, topic_partition.partition)
            && local.is_leader()
        {
            return Ok(PartitionLeader::Local(local));
        }
        let metadata = self.metadata();
        let leader = metadata
            .partition(topic_partition)
            .ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("{topic_partition} does not exist"),
                )
            })?
            .leader;
        // The internal listener, not the address the node advertises to clients: clients' names
        // for a node need not resolve among the nodes (compose advertises localhost:707x), and
        // the internal listener is where nodes authenticate each other.
        metadata
            .broker(leader)
            .filter(|broker| !broker.fenced)
            .and_then(|_| self.replicas.address_of(leader))
            .map(PartitionLeader::Remote)
            .ok_or_else(|| {
                PartitionError::new(
                    ErrorCode::LeaderNotAvailable,
                    format!("{topic_partition} has no leader right now"),
                )
            })
    }

    /// The partition's log start offset and high watermark, from its leader.
    pub(crate) async fn partition_bounds(
        &self,
        topic_partition: &TopicPartition,
    ) -> Result<(i64, i64), PartitionError> {
        let address = match self.leader_of(topic_partition)? {
            PartitionLeader::Local(local) => {
                return Ok((local.log().log_start_offset(), local.high_watermark()));
            }
            PartitionLeader::Remote(address) => address,
        };
        let mut client = self.leader_client(&address)?;
        let query = |timestamp| proto::ListOffsetsPartition {
            topic: topic_partition.topic.clone(),
            partition: topic_partition.partition,
            timestamp,
        };
        let request = proto::ListOffsetsRequest {
            partitions: vec![query(-2), query(-1)],
        };
        let unavailable =
            |message: String| PartitionError::new(ErrorCode::LeaderNotAvailable, message);
        let answer = tokio::time::timeout(LEADER_QUERY_TIMEOUT, client.list_offsets(request)).await;
        let response = match answer {
            Ok(Ok(response)) => response.into_inner(),
            failed => {
                // A connection that failed or went silent is dropped, so the next query opens
                // a new one instead of waiting on the same dead path for good.
                self.leader_clients
                    .lock()
                    .expect("clients lock")
                    .remove(&address);
                let why = match failed {
                    Ok(Err(status)) => status.to_string(),
                    _ => format!("no answer within {LEADER_QUERY_TIMEOUT:?}"),
                };
                return Err(unavailable(format!(
                    "cannot ask {address} for {topic_partition}'s offsets: {why}"
                )));
            }
        };
        let mut offsets = Vec::with_capacity(2);
        for answer in response.partitions {
            if answer.error_code != 0 {
                return Err(PartitionError::new(
                    ErrorCode::from_code(answer.error_code),
                    format!(
                        "the leader of {topic_partition} answered: {}",
                        answer.error_message
                    ),
                ));
            }
            offsets.push(answer.offset);
        }
        match offsets[..] {
            [log_start, high_watermark] => Ok((log_start, high_watermark)),
            _ => Err(unavailable(format!(
                "incomplete ListOffsets answer for {topic_partition}"
            ))),
        }
    }

    fn leader_client(
        &self,
        address: &str,
    ) -> Result<proto::broker_client::BrokerClient<Channel>, PartitionError> {
        let mut clients = self.leader_clients.lock().expect("clients lock");
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let channel = self
            .replicas
            .peer_channels()
            .lazy(address, Duration::from_secs(2))
            .map_err(|error| PartitionError::new(ErrorCode::CoordinatorNotAvailable, error))?;
        let client = proto::broker_client::BrokerClient::new(channel);
        clients.insert(address.to_string(), client.clone());
        Ok(client)
    }
}

fn encode_batch(records: &[CoordinatorRecord], now_ms: i64) -> Bytes {
    let mut builder = RecordBatchBuilder::new();
    for record in records {
        builder.push(
            now_ms,
            Some(record.key().as_bytes()),
            Some(&record.encode_value()),
            &[],
        );
    }
    builder.build().into_bytes()
}

/// Rebuilds a shard from its partition's log: everything from the log start to the log end
/// (records above the high watermark included: this broker is the leader, so they are the log
/// that will be committed, or it loses leadership and drops the shard).
fn replay_log(
    log: &strata_storage::Log,
    config: CoordinatorConfig,
) -> Result<(CoordinatorShard, u64), PartitionError> {
    let mut shard = CoordinatorShard::new(config);
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    let mut replayed = 0;
    while offset < end {
        let read = log
            .read(offset, 8 << 20, None)
            .map_err(PartitionError::from)?;
        if read.records.is_empty() {
            break;
        }
        for batch in BatchIter::new(read.records) {
            let batch = batch.map_err(|error| {
                PartitionError::new(ErrorCode::CorruptMessage, error.to_string())
            })?;
            for record in batch.records() {
                let record = record.map_err(|error| {
                    PartitionError::new(ErrorCode::CorruptMessage, error.to_string())
                })?;
                if record.offset < offset {
                    continue;
                }
                let Some(value) = record.value else { continue };
                match CoordinatorRecord::decode_value(&value) {
                    Ok(decoded) => {
                        if matches!(decoded, CoordinatorRecord::Snapshot { .. }) {
                            replayed = 0;
                        }
                        shard.replay(&decoded);
                        replayed += 1;
                    }
                    Err(error) => {
                        return Err(PartitionError::new(
                            ErrorCode::CorruptMessage,
                            format!(
                                "{OFFSETS_TOPIC} record at offset {}: {error}",
                                record.offset
                            ),
                        ));
                    }
                }
            }
            offset = batch.next_offset();
        }
    }
    Ok((shard, replayed))
}
