//! The partitions this broker hosts, as leader or follower, and the produce, fetch and
//! replication paths into their logs (Kafka's `ReplicaManager` and `Partition`).
//!
//! Invariants:
//! - a consumer never reads past a partition's high watermark, and `acks=all` is answered only
//!   when the high watermark covers the batch, i.e. every in-sync replica has it;
//! - a follower appends only batches fetched from the leader of its current leader epoch, and
//!   truncates only to the offset the leader reports for the follower's latest epoch
//!   (OffsetsForLeaderEpoch), never to its high watermark alone (KIP-101, KIP-279);
//! - role changes and follower appends are serialised per partition, so an append fetched in an
//!   old epoch can never land after the truncation of a new one.
//!
//! Logs do blocking file IO, so appends and truncations run on tokio's blocking pool; reads are
//! memory-map lookups and run inline.

use crate::error::PartitionError;
use crate::leader_state::LeaderState;
use crate::peer_channels::PeerChannels;
use crate::topic_config::TopicConfig;
use crate::worker_appends::WorkerAppendGate;
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use strata_common::{Clock, ErrorCode, TopicPartition};
use strata_storage::{AppendInfo, Log, LogManager, ReadResult, StorageError, TimestampOffset};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

const HIGH_WATERMARK_CHECKPOINT: &str = "replication-offset-checkpoint";

/// `acks` as a producer asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    pub fn from_wire(acks: i32) -> Result<Acks, PartitionError> {
        match acks {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            -1 => Ok(Acks::All),
            other => Err(PartitionError::new(
                ErrorCode::InvalidRequiredAcks,
                format!("acks must be 0, 1 or -1 (all), got {other}"),
            )),
        }
    }
}

/// An append on the leader that is not known to be on every in-sync replica yet.
pub struct PendingReplication {
    partition: Arc<Partition>,
    high_watermarks: watch::Receiver<i64>,
    target: i64,
    base_offset: i64,
    required: usize,
    /// The leader epoch the append was made in: only this leadership can acknowledge it.
    leader_epoch: i32,
    lease: Arc<SessionLease>,
}

impl PendingReplication {
    /// The second half of a producer's append: waits as `acks` asks (for `acks=all`, see
    /// [`wait`](Self::wait)), then hands back the first half's `info`. A duplicate waits too:
    /// its first attempt may have timed out before replicating.
    pub async fn complete(
        self,
        info: AppendInfo,
        acks: Acks,
        timeout: Duration,
    ) -> Result<AppendInfo, PartitionError> {
        if acks == Acks::All {
            self.wait(timeout).await?;
        }
        Ok(info)
    }

    /// Waits until the high watermark covers the append: every in-sync replica has it, and the
    /// ISR still has `min.insync.replicas` members. Ends at once with `NOT_LEADER_OR_FOLLOWER`
    /// when this broker stops leading in the append's epoch (a new leader, or a lapsed session
    /// lease), so the producer goes to the new leader instead of waiting out its timeout; the
    /// record is then not acknowledged, and may or may not survive.
    pub async fn wait(mut self, timeout: Duration) -> Result<(), PartitionError> {
        let target = self.target;
        let deadline = tokio::time::Instant::now() + timeout;
        let topic_partition = &self.partition.topic_partition;
        loop {
            // The guard `borrow_and_update` returns read-locks the watch channel: it must be
            // dropped at once, because publishing a high watermark takes the write lock while
            // holding the partition's role lock, which the checks below take too.
            let covered = *self.high_watermarks.borrow_and_update() >= target;
            if covered {
                break;
            }
            let lease_left = self.check_still_leading()?;
            // Capped, since an unenforced lease has centuries left.
            let wake = deadline.min(tokio::time::Instant::now() + lease_left.min(timeout));
            match tokio::time::timeout_at(wake, self.high_watermarks.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(PartitionError::new(
                        ErrorCode::NotLeaderOrFollower,
                        format!("{topic_partition} was removed while waiting"),
                    ));
                }
                Err(_) if wake < deadline => {} // the lease is checked again above
                Err(_) => {
                    return Err(PartitionError::new(
                        ErrorCode::RequestTimedOut,
                        format!(
                            "{topic_partition} was appended at offset {} but not replicated to every in-sync replica within {} ms",
                            self.base_offset,
                            timeout.as_millis()
                        ),
                    ));
                }
            }
        }
        self.check_still_leading()?;
        let in_sync = self.partition.in_sync_replicas().len();
        if in_sync < self.required {
            return Err(PartitionError::new(
                ErrorCode::NotEnoughReplicasAfterAppend,
                format!(
                    "{topic_partition} was written but the ISR shrank to {in_sync}, below min.insync.replicas {}",
                    self.required
                ),
            ));
        }
        Ok(())
    }
}

/// Leadership bounded by the controller session (a lease). The controller fences a broker a
/// session timeout after the send time of its last heartbeat and then elects other leaders; a
/// broker that can no longer renew its session (cut off from the quorum, or the quorum lost) must
/// stop appending before that, or two brokers would take writes for one partition.
pub struct SessionLease {
    node_id: i32,
    /// Until when (clock ms) this broker may act as a leader; `i64::MAX` while not enforced.
    until_ms: AtomicI64,
    clock: Arc<dyn Clock>,
}

impl SessionLease {
    /// How long the lease has left now; an error once it has run out.
    fn check(&self) -> Result<Duration, PartitionError> {
        let until_ms = self.until_ms.load(Ordering::Acquire);
        let now_ms = self.clock.now_ms();
        if now_ms <= until_ms {
            return Ok(Duration::from_millis(
                u64::try_from(until_ms - now_ms).unwrap_or(0),
            ));
        }
        Err(PartitionError::new(
            ErrorCode::NotLeaderOrFollower,
            format!(
                "broker {} has not renewed its controller session for {} ms past its lease, so it \
                 leads nothing until it does; the controller moves its partitions",
                self.node_id,
                now_ms - until_ms
            ),
        ))
    }
}

impl PendingReplication {
    /// Whether this broker still leads the partition in the append's epoch, under a live
    /// session lease; returns what is left of the lease.
    fn check_still_leading(&self) -> Result<Duration, PartitionError> {
        let partition = &self.partition;
        if !partition.is_leader() || partition.leader_epoch() != self.leader_epoch {
            return Err(PartitionError::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "{} changed leader (epoch {} to {}) before offset {} was replicated; it is not \
                     acknowledged",
                    partition.topic_partition,
                    self.leader_epoch,
                    partition.leader_epoch(),
                    self.base_offset
                ),
            ));
        }
        self.lease.check()
    }
}

/// Who a follower fetch says it comes from: a broker id and the epoch of that broker's current
/// registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaIdentity {
    pub replica_id: i32,
    pub broker_epoch: i64,
}

/// Who leads a partition and who replicates it, as the metadata says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

enum Role {
    Leader(LeaderState),
    Follower {
        leader_id: i32,
        fetcher: Option<JoinHandle<()>>,
    },
}

/// A partition as its leader reports it to a metrics scrape.
pub struct LeaderMetrics {
    pub in_sync_replicas: usize,
    /// Each follower, and how many records it is behind the leader's log end as of its last
    /// fetch.
    pub follower_lags: Vec<(i32, i64)>,
}

/// Locking: two locks, never held across an await, and taken in this order.
/// - `write_fence` is held by every write to the log (a leader's append, a follower's append,
///   truncation or restart), for as long as the write takes, fsyncs and rolls included. Only
///   blocking-pool threads wait for it (an async worker at most `try_lock`s it), so a slow disk
///   delays this partition's writes and nothing else.
/// - `role` guards the leader or follower state. It is held only for bookkeeping, never for IO,
///   so async request threads (fetches, `acks=all` checks, replica fetches) can take it.
///
/// A write checks the role under the fence, then writes without the role lock. A role change
/// does not wait for a write in progress; instead a new follower's fetcher passes the fence once
/// ([`ReplicaManager::wait_for_writes`]) before it reads its log end, so a write the old role
/// began is complete, and seen, before the follower decides what to truncate.
pub struct Partition {
    topic_partition: TopicPartition,
    log: Arc<Log>,
    leader_epoch: AtomicI32,
    write_fence: Mutex<()>,
    role: Mutex<Role>,
    min_insync_replicas: AtomicI32,
    /// Published so consumer fetches waiting for data wake as soon as it becomes readable.
    high_watermark: watch::Sender<i64>,
    /// Published so follower fetches waiting for data wake on every leader append.
    log_end_offset: watch::Sender<i64>,
}

impl Partition {
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }
    pub fn is_leader(&self) -> bool {
        matches!(*self.role.lock().expect("role lock"), Role::Leader(_))
    }
    /// The in-sync replicas as this broker knows them (the leader's view; empty on a follower).
    pub fn in_sync_replicas(&self) -> Vec<i32> {
        match &*self.role.lock().expect("role lock") {
            Role::Leader(state) => state.isr().iter().copied().collect(),
            Role::Follower { .. } => Vec::new(),
        }
    }

    /// What a metrics scrape reports of this partition as its leader (`None` on a follower),
    /// read under one hold of the role lock.
    pub fn leader_metrics(&self) -> Option<LeaderMetrics> {
        let log_end_offset = self.log().log_end_offset();
        match &*self.role.lock().expect("role lock") {
            Role::Leader(state) => Some(LeaderMetrics {
                in_sync_replicas: state.isr().len(),
                follower_lags: state
                    .follower_log_end_offsets()
                    .map(|(replica, offset)| (replica, (log_end_offset - offset).max(0)))
                    .collect(),
            }),
            Role::Follower { .. } => None,
        }
    }

    fn publish_high_watermark(&self, high_watermark: i64) {
        self.high_watermark.send_if_modified(|current| {
            let advanced = high_watermark > *current;
            if advanced {
                *current = high_watermark;
            }
            advanced
        });
    }

    /// Lowers the high watermark to `log_end_offset` when it is above it, which a follower's
    /// truncation can leave (as Kafka's `truncateTo` does). A leader whose high watermark sat
    /// above its log end would wait for followers to reach an offset it does not have, and never
    /// take them back into the ISR. Returns the high watermark it lowered, if any.
    fn cap_high_watermark(&self, log_end_offset: i64) -> Option<i64> {
        let mut lowered = None;
        self.high_watermark.send_if_modified(|current| {
            if *current > log_end_offset {
                lowered = Some(std::mem::replace(current, log_end_offset));
                true
            } else {
                false
            }
        });
        lowered
    }

    fn publish_log_end_offset(&self) {
        let log_end_offset = self.log.log_end_offset();
        self.log_end_offset.send_if_modified(|current| {
            std::mem::replace(current, log_end_offset) != log_end_offset
        });
    }

    /// Checks that this broker leads the partition in `leader_epoch` (or any epoch, if `None`).
    fn check_leader(&self, leader_epoch: Option<i32>) -> Result<(), PartitionError> {
        let current = self.leader_epoch();
        match (&*self.role.lock().expect("role lock"), leader_epoch) {
            (Role::Follower { leader_id, .. }, _) => Err(PartitionError::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "this broker follows {}; broker {leader_id} leads it in epoch {current}",
                    self.topic_partition
                ),
            )),
            (Role::Leader(_), Some(requested)) if requested < current => Err(PartitionError::new(
                ErrorCode::FencedLeaderEpoch,
                format!(
                    "leader epoch {requested} of {} is older than the current {current}",
                    self.topic_partition
                ),
            )),
            (Role::Leader(_), Some(requested)) if requested > current => Err(PartitionError::new(
                ErrorCode::UnknownLeaderEpoch,
                format!(
                    "leader epoch {requested} of {} is newer than the current {current}",
                    self.topic_partition
                ),
            )),
            (Role::Leader(_), _) => Ok(()),
        }
    }
}

/// Asks the controller to change a partition's ISR; resolves to the ISR it committed.
pub type IsrUpdater = Arc<
    dyn Fn(
            TopicPartition,
            i32,
            Vec<i32>,
        ) -> futures::future::BoxFuture<'static, Result<Vec<i32>, PartitionError>>
        + Send
        + Sync,
>;
/// Resolves a broker id to the address its replication service listens on.
pub type AddressBook = Arc<dyn Fn(i32) -> Option<String> + Send + Sync>;
/// Resolves a broker id to the broker epoch of its current registration, as the controller
/// recorded it (KIP-380); `None` for a broker the metadata does not know.
pub type BrokerEpochs = Arc<dyn Fn(i32) -> Option<i64> + Send + Sync>;

/// Replication tuning; the defaults follow Kafka's, scaled for fast failover.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    pub replica_lag_time_max_ms: i64,
    pub replica_fetch_max_wait_ms: i32,
    pub replica_fetch_max_bytes: i32,
    /// How long a follower waits for any answer from its leader before it drops the connection
    /// and connects again (Kafka's `replica.socket.timeout.ms`). A leader whose host vanished
    /// without a reset, or a connection a middlebox forgot, never answers and never fails, so
    /// without this the follower would wait until leadership moved, which it may never do.
    pub replica_socket_timeout_ms: i32,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            // A follower cut off from its leader alone (a partial partition: both still reach the
            // controller, so neither is fenced) holds up every acks=all write to the partition
            // until it leaves the ISR: this is how long such writes stop. Kafka's 30 s favours
            // keeping slow followers in sync; 5 s still covers a loaded follower's long poll
            // (500 ms) many times over.
            replica_lag_time_max_ms: 5_000,
            replica_fetch_max_wait_ms: 500,
            replica_fetch_max_bytes: 8 * 1024 * 1024,
            replica_socket_timeout_ms: 30_000,
        }
    }
}

impl ReplicationConfig {
    /// Refuses settings under which replication could not work.
    pub fn validate(&self) -> Result<(), String> {
        if self.replica_socket_timeout_ms <= self.replica_fetch_max_wait_ms {
            return Err(format!(
                "replica.socket.timeout.ms ({}) must exceed replica.fetch.wait.max.ms ({}), or \
                 every long-polling replica fetch would time out",
                self.replica_socket_timeout_ms, self.replica_fetch_max_wait_ms
            ));
        }
        Ok(())
    }
}

pub struct ReplicaManager {
    node_id: i32,
    peer_channels: PeerChannels,
    logs: Arc<LogManager>,
    clock: Arc<dyn Clock>,
    config: ReplicationConfig,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// High watermarks from the last checkpoint, so a restarted replica does not start from 0.
    checkpointed_high_watermarks: HashMap<TopicPartition, i64>,
    isr_updater: RwLock<Option<IsrUpdater>>,
    address_book: RwLock<Option<AddressBook>>,
    /// Checks the broker epoch a follower presents. Unset, every follower is refused: a leader
    /// that cannot tell a current replica from a stale or forged one serves neither.
    broker_epochs: RwLock<Option<BrokerEpochs>>,
    /// This broker's own epoch, which its followers present to leaders; -1 until registered.
    broker_epoch: AtomicI64,
    session_lease: Arc<SessionLease>,
    worker_appends: WorkerAppendGate,
}

fn check_follower_epoch(partition: &Partition, leader_epoch: i32) -> Result<(), PartitionError> {
    let role = partition.role.lock().expect("role lock");
    follower_in_epoch(partition, &role, leader_epoch)
}

fn follower_in_epoch(
    partition: &Partition,
    role: &Role,
    leader_epoch: i32,
) -> Result<(), PartitionError> {
    if matches!(role, Role::Follower { .. }) && partition.leader_epoch() == leader_epoch {
        return Ok(());
    }
    Err(PartitionError::new(
        ErrorCode::FencedLeaderEpoch,
        format!(
            "{} left leader epoch {leader_epoch}",
            partition.topic_partition
        ),
    ))
}

/// Runs a follower's write to its log on the blocking pool, under the write fence and only while
/// the partition still follows in `leader_epoch`, then publishes the new log end offset. This is
/// what keeps a batch fetched in an old epoch from landing after a new epoch's truncation.
async fn run_as_follower(
    partition: &Arc<Partition>,
    leader_epoch: i32,
    write: impl FnOnce(&Log) -> Result<(), StorageError> + Send + 'static,
) -> Result<(), PartitionError> {
    let writing = partition.clone();
    tokio::task::spawn_blocking(move || {
        let _fence = writing.write_fence.lock().expect("write fence");
        check_follower_epoch(&writing, leader_epoch)?;
        write(&writing.log).map_err(PartitionError::from)
    })
    .await
    .map_err(task_failed)??;
    partition.publish_log_end_offset();
    Ok(())
}

fn task_failed(error: tokio::task::JoinError) -> PartitionError {
    PartitionError::new(
        ErrorCode::UnknownServerError,
        format!("storage task failed: {error}"),
    )
}

impl ReplicaManager {
    /// `checkpointed_high_watermarks` comes from [`ReplicaManager::read_high_watermark_checkpoint`].
    pub fn new(
        node_id: i32,
        logs: Arc<LogManager>,
        clock: Arc<dyn Clock>,
        config: ReplicationConfig,
        checkpointed_high_watermarks: HashMap<TopicPartition, i64>,
        peer_channels: PeerChannels,
    ) -> ReplicaManager {
        ReplicaManager {
            node_id,
            peer_channels,
            logs,
            clock: clock.clone(),
            config,
            partitions: RwLock::new(HashMap::new()),
            checkpointed_high_watermarks,
            isr_updater: RwLock::new(None),
            address_book: RwLock::new(None),
            broker_epochs: RwLock::new(None),
            broker_epoch: AtomicI64::new(-1),
            session_lease: Arc::new(SessionLease {
                node_id,
                until_ms: AtomicI64::new(i64::MAX),
                clock: clock.clone(),
            }),
            worker_appends: WorkerAppendGate::default(),
        }
    }

    /// Reads the high-watermark checkpoint (`replication-offset-checkpoint`, as Kafka calls it)
    /// of a data directory; missing or unreadable means "start every partition from 0".
    pub fn read_high_watermark_checkpoint(data_dir: &Path) -> HashMap<TopicPartition, i64> {
        let path = data_dir.join(HIGH_WATERMARK_CHECKPOINT);
        match strata_storage::checkpoint::read(&path) {
            Ok(Some(payload)) => serde_json::from_slice::<Vec<(TopicPartition, i64)>>(&payload).map(|entries| entries.into_iter().collect()).unwrap_or_else(|error| {
                warn!(path = %path.display(), %error, "ignoring an unreadable high-watermark checkpoint");
                HashMap::new()
            }),
            Ok(None) => HashMap::new(),
            Err(error) => {
                warn!(path = %path.display(), %error, "ignoring an unreadable high-watermark checkpoint");
                HashMap::new()
            }
        }
    }

    /// Writes every hosted partition's high watermark to the checkpoint.
    pub fn write_high_watermark_checkpoint(&self, data_dir: &Path) -> Result<(), StorageError> {
        let mut entries: Vec<(TopicPartition, i64)> = self
            .partitions()
            .iter()
            .map(|partition| {
                (
                    partition.topic_partition.clone(),
                    partition.high_watermark(),
                )
            })
            .collect();
        entries.sort();
        strata_storage::checkpoint::write(
            &data_dir.join(HIGH_WATERMARK_CHECKPOINT),
            &serde_json::to_vec(&entries).expect("high watermarks serialise"),
        )
    }

    /// The time as this broker's clock gives it.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }
    pub fn logs(&self) -> &Arc<LogManager> {
        &self.logs
    }
    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }
    pub fn set_isr_updater(&self, updater: IsrUpdater) {
        *self.isr_updater.write().expect("updater lock") = Some(updater);
    }
    pub fn set_address_book(&self, address_book: AddressBook) {
        *self.address_book.write().expect("address book lock") = Some(address_book);
    }
    pub fn set_broker_epochs(&self, broker_epochs: BrokerEpochs) {
        *self.broker_epochs.write().expect("broker epochs lock") = Some(broker_epochs);
    }
    /// Records the epoch of this broker's current registration, which its follower fetches
    /// present.
    pub fn set_broker_epoch(&self, broker_epoch: i64) {
        self.broker_epoch.store(broker_epoch, Ordering::Release);
    }
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    /// Bounds this broker's leadership by its controller session; see [`SessionLease`]. From
    /// this call on, appends as leader are refused once the clock passes `until_ms`; each
    /// answered heartbeat moves it on ([`ReplicaManager::renew_session_lease`]).
    pub fn enforce_session_lease(&self, until_ms: i64) {
        self.session_lease
            .until_ms
            .store(until_ms, Ordering::Release);
    }

    /// Extends the lease to `until_ms` (never shortens it).
    pub fn renew_session_lease(&self, until_ms: i64) {
        self.session_lease
            .until_ms
            .fetch_max(until_ms, Ordering::AcqRel);
    }

    /// Whether `broker_epoch` is `replica_id`'s current one; see [`BrokerEpochs`].
    fn check_broker_epoch(&self, replica_id: i32, broker_epoch: i64) -> Result<(), PartitionError> {
        let current = self
            .broker_epochs
            .read()
            .expect("broker epochs lock")
            .as_ref()
            .and_then(|epochs| epochs(replica_id));
        if current == Some(broker_epoch) {
            return Ok(());
        }
        let known = current.map_or("none known".to_string(), |epoch| format!("it is {epoch}"));
        Err(PartitionError::new(
            ErrorCode::StaleBrokerEpoch,
            format!("broker {replica_id} presented broker epoch {broker_epoch}; {known}"),
        ))
    }

    /// How this node opens channels to the others.
    pub(crate) fn peer_channels(&self) -> &PeerChannels {
        &self.peer_channels
    }

    pub(crate) fn address_of(&self, broker_id: i32) -> Option<String> {
        self.address_book
            .read()
            .expect("address book lock")
            .as_ref()
            .and_then(|book| book(broker_id))
    }

    /// Single-node convenience: lead the partition alone in `leader_epoch`.
    pub fn become_leader(
        self: &Arc<Self>,
        topic_partition: TopicPartition,
        config: &TopicConfig,
        leader_epoch: i32,
    ) -> Result<Arc<Partition>, StorageError> {
        let assignment = PartitionAssignment {
            leader_id: self.node_id,
            leader_epoch,
            replicas: vec![self.node_id],
            isr: vec![self.node_id],
        };
        self.apply_assignment(topic_partition, config, &assignment)
    }

    /// Makes this broker's replica of a partition match the metadata: leader, follower (with a
    /// fetcher task), or, when it is not a replica, nothing. Idempotent for an unchanged epoch.
    pub fn apply_assignment(
        self: &Arc<Self>,
        topic_partition: TopicPartition,
        config: &TopicConfig,
        assignment: &PartitionAssignment,
    ) -> Result<Arc<Partition>, StorageError> {
        let existing = self
            .partitions
            .read()
            .expect("partitions lock")
            .get(&topic_partition)
            .cloned();
        let partition = match existing {
            Some(partition) => partition,
            None => {
                let (log, _) = self.logs.open_log(&topic_partition, config.log.clone())?;
                let log_end_offset = log.log_end_offset();
                let partition = Arc::new(Partition {
                    topic_partition: topic_partition.clone(),
                    log,
                    leader_epoch: AtomicI32::new(-1),
                    write_fence: Mutex::new(()),
                    role: Mutex::new(Role::Follower {
                        leader_id: -1,
                        fetcher: None,
                    }),
                    min_insync_replicas: AtomicI32::new(config.min_insync_replicas),
                    // Until replicas report in, only what is known to be everywhere is visible: the
                    // checkpointed mark (a single replica is always "everywhere").
                    high_watermark: watch::Sender::new(if assignment.replicas.len() <= 1 {
                        log_end_offset
                    } else {
                        self.checkpointed_high_watermarks
                            .get(&topic_partition)
                            .copied()
                            .unwrap_or(0)
                            .min(log_end_offset)
                    }),
                    log_end_offset: watch::Sender::new(log_end_offset),
                });
                self.partitions
                    .write()
                    .expect("partitions lock")
                    .insert(topic_partition.clone(), partition.clone());
                partition
            }
        };
        if partition.leader_epoch() == assignment.leader_epoch {
            self.adopt_controller_isr(&partition, assignment);
            return Ok(partition);
        }
        self.change_role(&partition, assignment);
        Ok(partition)
    }

    /// The controller may change a partition's ISR without a new leader epoch, e.g. when it fences
    /// a follower's broker. The leader must then stop counting that follower for `acks=all` and
    /// the high watermark at once, not only after its own lag check would have dropped it.
    fn adopt_controller_isr(&self, partition: &Partition, assignment: &PartitionAssignment) {
        let mut role = partition.role.lock().expect("role lock");
        let Role::Leader(state) = &mut *role else {
            return;
        };
        let committed: BTreeSet<i32> = assignment.isr.iter().copied().collect();
        if state.has_pending_isr_change() || *state.isr() == committed {
            return;
        }
        if state.on_isr_committed(Some(committed), partition.log.log_end_offset()) {
            partition.publish_high_watermark(state.high_watermark());
        }
    }

    fn change_role(self: &Arc<Self>, partition: &Arc<Partition>, assignment: &PartitionAssignment) {
        let mut role = partition.role.lock().expect("role lock");
        if let Role::Follower {
            fetcher: Some(fetcher),
            ..
        } = &*role
        {
            fetcher.abort();
        }
        partition
            .leader_epoch
            .store(assignment.leader_epoch, Ordering::Release);
        if assignment.leader_id == self.node_id {
            let log_end_offset = partition.log.log_end_offset();
            if let Some(lowered) = partition.cap_high_watermark(log_end_offset) {
                warn!(partition = %partition.topic_partition, high_watermark = lowered, log_end_offset, leader_epoch = assignment.leader_epoch, "a new leader's high watermark was above its log end; lowered to it");
            }
            let state = LeaderState::new(
                self.node_id,
                assignment.leader_epoch,
                &assignment.replicas,
                &assignment.isr,
                log_end_offset,
                partition.high_watermark(),
                self.clock.now_ms(),
            );
            let mut state = state;
            state.update_high_watermark(partition.log.log_end_offset());
            partition.publish_high_watermark(state.high_watermark());
            *role = Role::Leader(state);
        } else {
            let fetcher = (assignment.leader_id >= 0).then(|| {
                crate::replica_fetcher::spawn(
                    self.clone(),
                    partition.clone(),
                    assignment.leader_id,
                    assignment.leader_epoch,
                )
            });
            *role = Role::Follower {
                leader_id: assignment.leader_id,
                fetcher,
            };
            // Consumers waiting on this partition's high watermark learn now, not at their
            // next append or deadline, that they must go to the new leader.
            partition.high_watermark.send_modify(|_| {});
        }
    }

    /// Stops hosting a partition; with `delete`, removes its data.
    pub fn remove_partition(
        &self,
        topic_partition: &TopicPartition,
        delete: bool,
    ) -> Result<(), StorageError> {
        if let Some(partition) = self
            .partitions
            .write()
            .expect("partitions lock")
            .remove(topic_partition)
            && let Role::Follower {
                fetcher: Some(fetcher),
                ..
            } = &*partition.role.lock().expect("role lock")
        {
            fetcher.abort();
        }
        if delete {
            self.logs.delete_log(topic_partition)
        } else {
            Ok(())
        }
    }

    pub fn update_config(
        &self,
        topic_partition: &TopicPartition,
        config: &TopicConfig,
    ) -> Result<(), PartitionError> {
        let partition = self.partition(&topic_partition.topic, topic_partition.partition)?;
        partition.log.set_config(config.log.clone())?;
        partition
            .min_insync_replicas
            .store(config.min_insync_replicas, Ordering::Release);
        Ok(())
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>, PartitionError> {
        self.partitions
            .read()
            .expect("partitions lock")
            .get(&TopicPartition::new(topic, partition))
            .cloned()
            .ok_or_else(|| PartitionError::unknown_topic_or_partition(topic, partition))
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .expect("partitions lock")
            .values()
            .cloned()
            .collect()
    }

    /// Appends a producer's batches as leader and waits as `acks` asks: for `acks=all`, until
    /// the high watermark covers the batches (every in-sync replica has them).
    pub async fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: Acks,
        timeout: Duration,
    ) -> Result<AppendInfo, PartitionError> {
        let (info, replication) = self
            .append_as_leader(topic, partition, records, acks)
            .await?;
        replication.complete(info, acks, timeout).await
    }

    /// The first half of an append: checks leadership (and, for `acks=all`,
    /// `min.insync.replicas`) and appends to the leader's log. The returned
    /// [`PendingReplication`] waits for the second half. Callers that must order appends (the
    /// group coordinator) hold their own lock across this half only.
    pub async fn append_as_leader(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: Acks,
    ) -> Result<(AppendInfo, PendingReplication), PartitionError> {
        let partition = self.partition(topic, partition)?;
        partition.check_leader(None)?;
        self.session_lease.check()?;
        let required = partition.min_insync_replicas.load(Ordering::Acquire) as usize;
        if acks == Acks::All {
            let in_sync = partition.in_sync_replicas().len();
            if in_sync < required {
                return Err(PartitionError::new(
                    ErrorCode::NotEnoughReplicas,
                    format!(
                        "{} has {in_sync} in-sync replica(s); min.insync.replicas is {required}",
                        partition.topic_partition
                    ),
                ));
            }
        }
        let high_watermarks = partition.subscribe();
        let info = match self.try_append_on_worker(&partition, &records) {
            Some(appended) => appended?,
            None => Self::append_on_blocking_pool(&partition, records).await?,
        };
        partition.publish_log_end_offset();
        self.advance_leader_high_watermark(&partition);
        // An append that outlived the lease (a stalled disk) may already be in another leader's
        // epoch: it is in the log, but not acknowledged.
        self.session_lease.check()?;
        let pending = PendingReplication {
            leader_epoch: partition.leader_epoch(),
            partition,
            high_watermarks,
            target: info.last_offset + 1,
            base_offset: info.base_offset,
            required,
            lease: self.session_lease.clone(),
        };
        Ok((info, pending))
    }

    /// Appends on this async worker when the append is small and needs nothing but a write into
    /// the active segment (see [`crate::worker_appends`]); `None` when it must go to the pool.
    fn try_append_on_worker(
        &self,
        partition: &Partition,
        records: &Bytes,
    ) -> Option<Result<AppendInfo, PartitionError>> {
        let started = Instant::now();
        if !self.worker_appends.admits(records.len(), started) {
            return None;
        }
        // Held by a write on the pool; waiting for it would block this worker.
        let fence = partition.write_fence.try_lock().ok()?;
        if !partition.is_leader() {
            return None;
        }
        let appended = partition
            .log
            .try_append_to_active_segment(records.clone(), partition.leader_epoch());
        drop(fence);
        self.worker_appends.record(started, Instant::now());
        appended.map_err(PartitionError::from).transpose()
    }

    async fn append_on_blocking_pool(
        partition: &Arc<Partition>,
        records: Bytes,
    ) -> Result<AppendInfo, PartitionError> {
        let appending = partition.clone();
        tokio::task::spawn_blocking(move || {
            let _fence = appending.write_fence.lock().expect("write fence");
            // Re-checked under the fence: leadership may have moved while this waited.
            if !appending.is_leader() {
                return Err(PartitionError::new(
                    ErrorCode::NotLeaderOrFollower,
                    format!("{} lost leadership", appending.topic_partition),
                ));
            }
            appending
                .log
                .append(records, appending.leader_epoch())
                .map_err(PartitionError::from)
        })
        .await
        .map_err(task_failed)?
    }
    fn advance_leader_high_watermark(&self, partition: &Partition) {
        let mut role = partition.role.lock().expect("role lock");
        if let Role::Leader(state) = &mut *role
            && state.update_high_watermark(partition.log.log_end_offset())
        {
            partition.publish_high_watermark(state.high_watermark());
        }
    }

    /// Whole batches from `offset`, up to the high watermark, as a consumer sees them.
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: u64,
    ) -> Result<(ReadResult, i64), PartitionError> {
        let partition = self.partition(topic, partition)?;
        partition.check_leader(None)?;
        let high_watermark = partition.high_watermark();
        let read = partition
            .log
            .read(offset, max_bytes, Some(high_watermark))?;
        Ok((read, high_watermark))
    }

    /// Bytes of this broker's copy of the partition's log: the records in its segment files,
    /// indexes not counted (what Kafka's DescribeLogDirs reports for a replica). Kept by each
    /// segment as it grows, so asking costs no file system call.
    pub fn log_size(&self, topic: &str, partition: i32) -> Result<u64, PartitionError> {
        Ok(self.partition(topic, partition)?.log.size_in_bytes())
    }

    /// Kafka's ListOffsets: -2 earliest, -1 latest (the high watermark), else the first offset at
    /// or after a timestamp (`None` when there is none below the high watermark).
    pub fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, PartitionError> {
        let partition = self.partition(topic, partition)?;
        partition.check_leader(None)?;
        match timestamp {
            -2 => Ok(Some(TimestampOffset {
                offset: partition.log.log_start_offset(),
                timestamp: -1,
            })),
            -1 => Ok(Some(TimestampOffset {
                offset: partition.high_watermark(),
                timestamp: -1,
            })),
            timestamp if timestamp >= 0 => {
                let found = partition.log.offset_for_timestamp(timestamp);
                Ok(found.filter(|found| found.offset < partition.high_watermark()))
            }
            other => Err(PartitionError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "timestamp {other} is not -2 (earliest), -1 (latest) or a time in milliseconds"
                ),
            )),
        }
    }

    /// Kafka's DeleteRecords on the leader: moves the log start offset up to `offset` (-1 means
    /// the high watermark) and returns the log start offset after the call. Only records every
    /// in-sync replica has may go, so an offset above the high watermark is refused with
    /// OFFSET_OUT_OF_RANGE, as Kafka does; one at or below the log start changes nothing.
    /// Followers adopt the new log start from the leader's next answer to their fetch (see
    /// [`ReplicaManager::append_as_follower`]); this call does not wait for them.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, PartitionError> {
        let partition = self.partition(topic, partition)?;
        partition.check_leader(None)?;
        // A leader cut off from the controller may already be deposed; its deletion would make
        // its log disagree with the new leader's.
        self.session_lease.check()?;
        let deleting = partition.clone();
        tokio::task::spawn_blocking(move || {
            let _fence = deleting.write_fence.lock().expect("write fence");
            // Re-checked under the fence: leadership may have moved while this waited.
            deleting.check_leader(None)?;
            let high_watermark = deleting.high_watermark();
            let offset = if offset == -1 { high_watermark } else { offset };
            if !(0..=high_watermark).contains(&offset) {
                return Err(PartitionError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!(
                        "cannot delete the records of {} before offset {offset}: it must be \
                         between 0 and the high watermark {high_watermark}, or -1 for the high \
                         watermark",
                        deleting.topic_partition
                    ),
                ));
            }
            deleting
                .log
                .delete_records_before(offset)
                .map_err(PartitionError::from)
        })
        .await
        .map_err(task_failed)?
    }

    /// The leader's side of a follower fetch: records the follower's position (which may advance
    /// the high watermark) and reads from `fetch_offset` up to the log end offset.
    /// Only a replica of the partition with its current broker epoch is served: anything else
    /// could move the high watermark over records no follower has.
    pub fn replica_read(
        &self,
        replica: ReplicaIdentity,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        fetch_offset: i64,
        max_bytes: u64,
    ) -> Result<(ReadResult, i64), PartitionError> {
        let ReplicaIdentity {
            replica_id,
            broker_epoch,
        } = replica;
        let partition = self.partition(topic, partition)?;
        partition.check_leader(Some(leader_epoch))?;
        self.check_broker_epoch(replica_id, broker_epoch)?;
        let log_end_offset = partition.log.log_end_offset();
        {
            let mut role = partition.role.lock().expect("role lock");
            if let Role::Leader(state) = &mut *role {
                if !state.has_follower(replica_id) {
                    return Err(PartitionError::new(
                        ErrorCode::NotLeaderOrFollower,
                        format!(
                            "broker {replica_id} is not a replica of {} in leader epoch \
                             {leader_epoch}",
                            partition.topic_partition
                        ),
                    ));
                }
                if state.on_follower_fetch(
                    replica_id,
                    fetch_offset,
                    log_end_offset,
                    self.clock.now_ms(),
                ) {
                    partition.publish_high_watermark(state.high_watermark());
                }
            }
        }
        let read = partition.log.read(fetch_offset, max_bytes, None)?;
        Ok((read, partition.high_watermark()))
    }

    /// A follower's fetch watches the leader's log end offset.
    pub fn subscribe_log_end_offset(
        &self,
        topic: &str,
        partition: i32,
    ) -> Option<watch::Receiver<i64>> {
        self.partition(topic, partition)
            .ok()
            .map(|partition| partition.log_end_offset.subscribe())
    }

    /// OffsetsForLeaderEpoch on the leader.
    pub fn end_offset_for_epoch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        requested_epoch: i32,
    ) -> Result<Option<(i32, i64)>, PartitionError> {
        let partition = self.partition(topic, partition)?;
        partition.check_leader(Some(current_leader_epoch))?;
        Ok(partition.log.end_offset_for_epoch(requested_epoch))
    }

    /// The follower's append of batches fetched from the leader of `leader_epoch`. Refused if the
    /// partition moved on to another epoch meanwhile.
    pub(crate) async fn append_as_follower(
        &self,
        partition: &Arc<Partition>,
        leader_epoch: i32,
        records: Bytes,
        leader_high_watermark: i64,
        leader_log_start_offset: i64,
    ) -> Result<(), PartitionError> {
        if !records.is_empty() {
            run_as_follower(partition, leader_epoch, move |log| {
                log.append_as_follower(records).map(|_| ())
            })
            .await?;
        } else {
            check_follower_epoch(partition, leader_epoch)?;
        }
        // Follow the leader's log start (retention, DeleteRecords, coordinator snapshots), so
        // what the leader dropped does not outlive it here.
        let local = &partition.log;
        if leader_log_start_offset > local.log_start_offset()
            && leader_log_start_offset <= local.log_end_offset()
        {
            run_as_follower(partition, leader_epoch, move |log| {
                log.delete_records_before(leader_log_start_offset)
                    .map(|_| ())
            })
            .await?;
        }
        partition.publish_high_watermark(leader_high_watermark.min(partition.log.log_end_offset()));
        Ok(())
    }

    /// Empties a follower's log and restarts it at the leader's log start.
    pub(crate) async fn restart_log_as_follower(
        &self,
        partition: &Arc<Partition>,
        leader_epoch: i32,
        offset: i64,
    ) -> Result<(), PartitionError> {
        run_as_follower(partition, leader_epoch, move |log| {
            log.truncate_fully_and_start_at(offset)
        })
        .await
    }

    /// The follower's truncation to the divergence point the leader reported.
    /// Returns once no write begun before the call is still running on `partition`: a new
    /// follower calls this before reading its log end (see [`Partition`]'s locking).
    pub(crate) async fn wait_for_writes(partition: &Arc<Partition>) -> Result<(), PartitionError> {
        let fenced = partition.clone();
        tokio::task::spawn_blocking(move || {
            drop(fenced.write_fence.lock().expect("write fence"));
        })
        .await
        .map_err(task_failed)
    }

    pub(crate) async fn truncate_as_follower(
        &self,
        partition: &Arc<Partition>,
        leader_epoch: i32,
        offset: i64,
    ) -> Result<(), PartitionError> {
        run_as_follower(partition, leader_epoch, move |log| log.truncate_to(offset)).await?;
        partition.cap_high_watermark(partition.log.log_end_offset());
        Ok(())
    }

    /// One pass of ISR maintenance on every partition this broker leads: propose dropping
    /// followers that lag and re-adding ones that caught up, through the controller.
    pub async fn maintain_isr(&self) {
        let Some(updater) = self.isr_updater.read().expect("updater lock").clone() else {
            return;
        };
        let now_ms = self.clock.now_ms();
        for partition in self.partitions() {
            let proposal = {
                let mut role = partition.role.lock().expect("role lock");
                let Role::Leader(state) = &mut *role else {
                    continue;
                };
                let proposal = state
                    .propose_shrink(now_ms, self.config.replica_lag_time_max_ms)
                    .or_else(|| state.propose_expand());
                if let Some(proposal) = &proposal {
                    state.on_isr_proposed(proposal.clone());
                }
                proposal.map(|proposal| (state.leader_epoch(), proposal))
            };
            let Some((leader_epoch, proposal)) = proposal else {
                continue;
            };
            let result = updater(
                partition.topic_partition.clone(),
                leader_epoch,
                proposal.into_iter().collect(),
            )
            .await;
            let mut role = partition.role.lock().expect("role lock");
            if let Role::Leader(state) = &mut *role
                && state.leader_epoch() == leader_epoch
            {
                let committed = result
                    .ok()
                    .map(|isr| isr.into_iter().collect::<BTreeSet<i32>>());
                if state.on_isr_committed(committed, partition.log.log_end_offset()) {
                    partition.publish_high_watermark(state.high_watermark());
                }
            }
        }
    }
}
