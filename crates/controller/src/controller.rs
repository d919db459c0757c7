//! One controller node: storage, the Raft node, the gRPC service, and the leader's driver.
//!
//! Lifecycle. [`Controller::start`] opens `<data_dir>/controller/` (refusing a directory of
//! another node or cluster), starts the openraft node, and — on the lowest voter id, only while
//! its log is empty — initialises the cluster with the configured voters; the others wait for the
//! leader to reach them. Start does not wait for a leader: the caller must serve
//! [`Controller::service`] for the quorum to form. [`Controller::shutdown`] stops everything.
//!
//! Background tasks, all bounded by the shutdown signal:
//! - the leader driver: while this node is the Raft leader, every heartbeat interval it names the
//!   cluster if nobody has yet, and proposes what [`crate::liveness_commands`] decides from the
//!   metadata and the injected `Clock` (fence expired brokers, unfence returning ones, elect);
//! - the identity recorder: writes the cluster id into the data directory once the metadata log
//!   names it, so a later start can refuse another cluster's directory;
//! - the pre-vote guard ([`crate::pre_vote`]): lets openraft's election timer run only while a
//!   majority of voters has lost the leader too, so a voter cut off from the leader cannot
//!   depose it once the network heals.

use crate::broker_liveness::liveness_commands;
use crate::error::ControllerError;
use crate::grpc_service::ControllerGrpcService;
use crate::log_store::LogStore;
use crate::metadata_command::{CommandOutcome, MetadataCommand};
use crate::metadata_state::MetadataState;
use crate::network::{
    MESSAGE_BYTES_MAX, NetworkFactory, PeerClients, PeerError, SNAPSHOT_CHUNK_BYTES,
    SharedClusterId,
};
use crate::node_identity::NodeIdentity;
use crate::pre_vote::{self, LeaderContact};
use crate::raft_types::{Node, NodeId, Raft};
use crate::state_machine_store::StateMachineStore;
use crate::submit::{SubmitReply, propose};
use openraft::error::{InitializeError, RaftError};
use openraft::{ServerState, SnapshotPolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use strata_common::Clock;
use strata_proto::controller_v1::controller_service_server::ControllerServiceServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The controller quorum as one node sees it (`Controller::raft_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftStatus {
    pub is_leader: bool,
    pub leader_id: Option<i32>,
    pub term: u64,
    /// The last log index this node has applied, which it knows is committed.
    pub committed: Option<u64>,
}

/// The controller's directory inside a node's data directory.
pub const CONTROLLER_DIRECTORY: &str = "controller";

/// How many times `submit` tries, at most, within its time bound.
const SUBMIT_ATTEMPTS_MAX: u32 = 200;
const SUBMIT_RETRY_DELAY_MIN: Duration = Duration::from_millis(20);
const SUBMIT_RETRY_DELAY_MAX: Duration = Duration::from_millis(200);
/// How long `shutdown` waits for a background task before abandoning it.
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How a controller node runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    pub node_id: i32,
    /// Every voter's node id and the `host:port` of its gRPC listener, this node included.
    pub voters: Vec<(i32, String)>,
    /// The node's data directory; the controller keeps its files in `controller/` inside it.
    pub data_dir: PathBuf,
    /// The base Raft election timeout. openraft draws a follower's timeout between this and twice
    /// this, and a follower that has a leader also waits out that leader's lease (twice this)
    /// first, so a dead leader is replaced after 3–4 times this plus one vote round trip: 1.5 to
    /// 2 s with the default of 500 ms. Meanwhile brokers cannot renew their sessions, so this
    /// bounds how long a controller failover stops writes. Before the pre-vote guard
    /// (`pre_vote.rs`) a timeout this short let a saturated 2-core machine's voters, late to hear
    /// heartbeats, start elections that deposed a working leader and fenced every broker at once;
    /// now a voter campaigns only when a majority has lost the leader too.
    pub election_timeout_ms: u64,
    /// How often the leader sends Raft heartbeats, and how often its driver checks broker
    /// sessions. Must be well below `election_timeout_ms`.
    pub heartbeat_interval_ms: u64,
    /// A broker whose last heartbeat is older than this is fenced.
    pub broker_session_timeout_ms: i64,
    /// How long [`Controller::submit`] keeps trying to reach a leader.
    pub submit_timeout_ms: u64,
    /// A snapshot is taken after this many log entries, and the log before it is purged.
    pub snapshot_interval_entries: u64,
    /// The cluster id this node must belong to. When set, a data directory recording another
    /// cluster id is refused at start, and a new cluster is named with it; when unset, the first
    /// leader picks a random id.
    pub cluster_id: Option<String>,
    /// TLS for the calls this controller makes to the other voters (the node's certificate and
    /// the cluster's CA); `None` is plaintext.
    pub peer_tls: Option<strata_tls::ClientTls>,
}

impl ControllerConfig {
    /// A configuration with the default timings.
    pub fn new(
        node_id: i32,
        voters: Vec<(i32, String)>,
        data_dir: impl Into<PathBuf>,
    ) -> ControllerConfig {
        ControllerConfig {
            node_id,
            voters,
            data_dir: data_dir.into(),
            election_timeout_ms: 500,
            heartbeat_interval_ms: 250,
            broker_session_timeout_ms: 2_000,
            submit_timeout_ms: 5_000,
            snapshot_interval_entries: 1_000,
            cluster_id: None,
            peer_tls: None,
        }
    }

    fn validate(&self) -> Result<(), ControllerError> {
        let invalid = |message: String| Err(ControllerError::InvalidConfig(message));
        let mut ids = BTreeSet::new();
        for (id, address) in &self.voters {
            if *id < 0 {
                return invalid(format!("voter id {id} is negative"));
            }
            if !ids.insert(*id) {
                return invalid(format!("voter id {id} appears twice"));
            }
            if address.trim().is_empty() {
                return invalid(format!("voter {id} has no address"));
            }
        }
        if !ids.contains(&self.node_id) {
            return invalid(format!(
                "node {} is not among the voters {:?}",
                self.node_id, self.voters
            ));
        }
        if self.heartbeat_interval_ms == 0 || self.election_timeout_ms <= self.heartbeat_interval_ms
        {
            return invalid(format!(
                "election_timeout_ms ({}) must exceed heartbeat_interval_ms ({}), which must be positive",
                self.election_timeout_ms, self.heartbeat_interval_ms
            ));
        }
        // A new Raft leader fences brokers half a session after it took over; that is safe only
        // if the election itself took long enough for the leases brokers held to run out (see
        // `broker_liveness::liveness_commands`). openraft's leader lease is twice the election
        // timeout.
        if i64::try_from(self.election_timeout_ms.saturating_mul(2)).unwrap_or(i64::MAX)
            < self.broker_session_timeout_ms / 4
        {
            return invalid(format!(
                "twice election_timeout_ms ({}) must be at least a quarter of \
                 broker_session_timeout_ms ({})",
                self.election_timeout_ms, self.broker_session_timeout_ms
            ));
        }
        if self.broker_session_timeout_ms <= 0
            || self.submit_timeout_ms == 0
            || self.snapshot_interval_entries == 0
        {
            return invalid(
                "broker_session_timeout_ms, submit_timeout_ms and snapshot_interval_entries must be positive".to_string(),
            );
        }
        Ok(())
    }

    fn raft_config(&self) -> Result<openraft::Config, ControllerError> {
        let config = openraft::Config {
            cluster_name: "strata-controller".to_string(),
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms * 2,
            heartbeat_interval: self.heartbeat_interval_ms,
            // A snapshot chunk must not be mistaken for a dead follower under a loaded machine.
            install_snapshot_timeout: (self.election_timeout_ms * 4).max(2_000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_interval_entries),
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            // A follower slightly behind still gets entries rather than a whole snapshot.
            max_in_snapshot_log_to_keep: self.snapshot_interval_entries / 10,
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|error| ControllerError::InvalidConfig(error.to_string()))
    }
}

/// A running controller node. See the module documentation.
pub struct Controller {
    node_id: i32,
    raft: Raft,
    peers: Arc<PeerClients>,
    cluster_id: SharedClusterId,
    /// Shared with the service, which records word from the leader, and the pre-vote guard.
    leader_contact: Arc<LeaderContact>,
    metadata: watch::Receiver<Arc<MetadataState>>,
    submit_timeout: Duration,
    /// openraft's leader lease: twice the election timeout.
    leader_lease_ms: u64,
    shutdown: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    stopped: std::sync::atomic::AtomicBool,
}

fn raft_failed(error: impl std::fmt::Display) -> ControllerError {
    ControllerError::Raft(error.to_string())
}

impl Controller {
    /// Opens the node's storage and starts its Raft node and background tasks.
    pub async fn start(
        config: ControllerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Controller, ControllerError> {
        config.validate()?;
        let directory = config.data_dir.join(CONTROLLER_DIRECTORY);
        fs::create_dir_all(&directory).map_err(ControllerError::io("create", &directory))?;
        let mut identity = NodeIdentity::load_or_create(&directory, config.node_id)?;
        if let Some(expected) = &config.cluster_id {
            identity.check_and_record_cluster_id(expected)?;
        }
        let log_store = LogStore::open(&directory)?;
        let state_machine = StateMachineStore::open(&directory)?;
        let snapshot_cluster_id = state_machine.state().cluster_id.clone();
        if !snapshot_cluster_id.is_empty() {
            identity.check_and_record_cluster_id(&snapshot_cluster_id)?;
        }
        let metadata = state_machine.subscribe();
        let cluster_id: SharedClusterId = Arc::new(RwLock::new(
            identity.cluster_id().unwrap_or_default().to_string(),
        ));

        let node_id = NodeId::try_from(config.node_id)
            .map_err(|_| ControllerError::InvalidConfig("negative node id".to_string()))?;
        let voters: BTreeMap<NodeId, String> = config
            .voters
            .iter()
            .filter_map(|(id, address)| NodeId::try_from(*id).ok().map(|id| (id, address.clone())))
            .collect();
        let peers = Arc::new(PeerClients::new(
            voters.clone(),
            Arc::clone(&cluster_id),
            config.peer_tls.clone(),
        ));
        let raft = Raft::new(
            node_id,
            Arc::new(config.raft_config()?),
            NetworkFactory::new(Arc::clone(&peers)),
            log_store,
            state_machine,
        )
        .await
        .map_err(raft_failed)?;

        if let Err(error) = initialize_if_first(&raft, node_id, &voters).await {
            // Do not leave a Raft node running behind a start that failed.
            let _ = raft.shutdown().await;
            return Err(error);
        }

        let (shutdown, shutdown_signal) = watch::channel(false);
        let driver = LeaderDriver {
            raft: raft.clone(),
            metadata: metadata.clone(),
            clock,
            interval: Duration::from_millis(config.heartbeat_interval_ms),
            session_timeout_ms: config.broker_session_timeout_ms,
            preferred_cluster_id: config
                .cluster_id
                .clone()
                .or_else(|| identity.cluster_id().map(str::to_string)),
        };
        let leader_contact = Arc::new(LeaderContact::new(Duration::from_millis(
            config.election_timeout_ms,
        )));
        let tasks = vec![
            tokio::spawn(driver.run(shutdown_signal.clone())),
            tokio::spawn(pre_vote::guard_elections(
                raft.clone(),
                node_id,
                voters.keys().copied().collect(),
                Arc::clone(&peers),
                Arc::clone(&leader_contact),
                Duration::from_millis(config.heartbeat_interval_ms),
                shutdown_signal.clone(),
            )),
            tokio::spawn(record_cluster_id(
                identity,
                metadata.clone(),
                Arc::clone(&cluster_id),
                raft.clone(),
                shutdown_signal,
            )),
        ];
        Ok(Controller {
            node_id: config.node_id,
            raft,
            peers,
            cluster_id,
            leader_contact,
            metadata,
            submit_timeout: Duration::from_millis(config.submit_timeout_ms),
            leader_lease_ms: config.election_timeout_ms.saturating_mul(2),
            shutdown,
            tasks: std::sync::Mutex::new(tasks),
            stopped: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The private controller service, to mount on the node's tonic server next to its other
    /// services. Other controllers reach this node through it.
    pub fn service(&self) -> ControllerServiceServer<ControllerGrpcService> {
        let node_id = NodeId::try_from(self.node_id).unwrap_or_default();
        ControllerServiceServer::new(ControllerGrpcService::new(
            self.raft.clone(),
            node_id,
            Arc::clone(&self.cluster_id),
            Arc::clone(&self.leader_contact),
        ))
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Proposes `command` and waits until it is committed and applied, forwarding it to the
    /// leader when this node does not lead and retrying through leader changes for up to
    /// `submit_timeout_ms`.
    ///
    /// Delivery is at least once: if a leader applies the command but dies before replying, the
    /// retry applies it again, and the second outcome is what the caller sees (for example
    /// `TopicAlreadyExists` for a topic this very call created). Commands are designed so that a
    /// repeat is harmless.
    pub async fn submit(
        &self,
        command: MetadataCommand,
    ) -> Result<CommandOutcome, ControllerError> {
        let started = Instant::now();
        let deadline = started + self.submit_timeout;
        let local_id = NodeId::try_from(self.node_id).unwrap_or_default();
        let mut hint: Option<NodeId> = None;
        let mut delay = SUBMIT_RETRY_DELAY_MIN;
        let mut reason = "no controller leader is known".to_string();
        for _ in 0..SUBMIT_ATTEMPTS_MAX {
            let Some(remaining) = deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
            else {
                break;
            };
            let target = hint
                .take()
                .or_else(|| self.raft.metrics().borrow().current_leader);
            let reply = match target {
                None => None,
                Some(leader) if leader == local_id => match self.quorum_silent_ms() {
                    // openraft 0.9 has no check-quorum: a leader cut off from the other voters
                    // keeps believing it leads while they elect another. Proposing here would
                    // wait for a commit that cannot come; the caller does better elsewhere.
                    Some(silent_ms) => {
                        reason = format!(
                            "controller {} leads, but no majority of voters has answered it for \
                             {silent_ms} ms (is it cut off from them?)",
                            self.node_id
                        );
                        None
                    }
                    None => {
                        match tokio::time::timeout(remaining, propose(&self.raft, command.clone()))
                            .await
                        {
                            Ok(reply) => Some(reply?),
                            Err(_) => {
                                reason = "the command was proposed but not committed in time; it \
                                      may still apply"
                                    .to_string();
                                break;
                            }
                        }
                    }
                },
                Some(leader) => match self.peers.submit(leader, &command, remaining).await {
                    Ok(reply) => Some(reply),
                    Err(error @ PeerError::Unreachable { .. }) => {
                        reason = error.to_string();
                        None
                    }
                    Err(PeerError::Refused { node_id, message }) => {
                        return Err(ControllerError::DataDirectoryMismatch(format!(
                            "controller {node_id} refused the command: {message}"
                        )));
                    }
                    Err(error) => {
                        return Err(ControllerError::LeaderNotAvailable {
                            elapsed_ms: started.elapsed().as_millis() as u64,
                            reason: error.to_string(),
                        });
                    }
                },
            };
            match reply {
                Some(SubmitReply::Applied(outcome)) => return Ok(outcome),
                Some(SubmitReply::Rejected(rejected)) => return Err(rejected.into()),
                Some(SubmitReply::NotLeader { leader_id }) => {
                    reason = format!("controller {} does not lead", target.unwrap_or_default());
                    // Follow a fresh hint at once; a hint pointing back at the same node waits.
                    if leader_id.is_some() && leader_id != target {
                        hint = leader_id;
                        continue;
                    }
                }
                None => {}
            }
            tokio::time::sleep(delay.min(remaining)).await;
            delay = (delay * 2).min(SUBMIT_RETRY_DELAY_MAX);
        }
        Err(ControllerError::LeaderNotAvailable {
            elapsed_ms: started.elapsed().as_millis() as u64,
            reason,
        })
    }

    /// How long this node, leading, has gone without an answer from a majority of voters, once
    /// that is longer than openraft's leader lease (twice the election timeout): by then the
    /// others may have elected another leader. `None` while the quorum answers, or when this
    /// node does not lead.
    fn quorum_silent_ms(&self) -> Option<u64> {
        let silent_ms = self.raft.metrics().borrow().millis_since_quorum_ack?;
        (silent_ms > self.leader_lease_ms).then_some(silent_ms)
    }

    /// The metadata as this node has applied it; every node's receiver sees each applied batch of
    /// commands shortly after the leader commits it.
    pub fn metadata(&self) -> watch::Receiver<Arc<MetadataState>> {
        self.metadata.clone()
    }

    /// The Raft leader this node knows of, if any.
    pub fn leader_id(&self) -> Option<i32> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .and_then(|id| i32::try_from(id).ok())
    }

    /// The quorum as this node sees it now, for metrics.
    pub fn raft_status(&self) -> RaftStatus {
        let metrics = self.raft.metrics().borrow().clone();
        RaftStatus {
            is_leader: metrics.state == ServerState::Leader,
            leader_id: metrics.current_leader.and_then(|id| i32::try_from(id).ok()),
            term: metrics.current_term,
            committed: metrics.last_applied.map(|log_id| log_id.index),
        }
    }

    /// When this node leads the quorum, hands leadership to the follower whose log is most
    /// complete (Raft's leadership transfer) and waits, at most `limit`, until another node
    /// leads. A node about to stop calls it first: otherwise the quorum waits out the followers'
    /// leader lease and election timeout (1.5 to 2 s with the defaults), and meanwhile
    /// every broker's session lease lapses for want of a leader to heartbeat to, stopping writes
    /// to every partition. Returns whether another node leads now; when it does not (a single
    /// voter, an unreachable or lagging follower), the quorum elects as it would after a crash.
    pub async fn hand_off_leadership(&self, limit: Duration) -> bool {
        let local = NodeId::try_from(self.node_id).unwrap_or_default();
        let mut metrics = self.raft.metrics();
        let successor = {
            let current = metrics.borrow();
            if current.current_leader != Some(local) {
                return true;
            }
            current.replication.as_ref().and_then(|replication| {
                replication
                    .iter()
                    .filter(|(id, _)| **id != local)
                    .max_by_key(|(_, matched)| matched.map(|log_id| log_id.index))
                    .map(|(id, _)| *id)
            })
        };
        let Some(successor) = successor else {
            return false;
        };
        let deadline = tokio::time::Instant::now() + limit;
        if let Err(error) = self.peers.timeout_now(successor, limit).await {
            tracing::warn!(node_id = self.node_id, successor, %error, "could not hand controller leadership over");
            return false;
        }
        let handed_over = tokio::time::timeout_at(
            deadline,
            metrics
                .wait_for(|metrics| metrics.current_leader.is_some_and(|leader| leader != local)),
        )
        .await;
        matches!(handed_over, Ok(Ok(_)))
    }

    /// Stops the background tasks and the Raft node. The service stops answering Raft messages
    /// (peers see this node as down); the data directory can be opened again.
    /// Takes `&self` so an owner that shares the controller (a broker's request handlers hold
    /// it too) can still stop it in order; calling it twice is harmless.
    pub async fn shutdown(&self) {
        if self.stopped.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        // Raft first, so nothing applies after the tasks' last look at the metadata.
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(node_id = self.node_id, %error, "raft node did not stop cleanly");
        }
        let _ = self.shutdown.send(true);
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().expect("tasks lock").drain(..).collect();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(TASK_STOP_TIMEOUT, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Controller {
    /// A controller dropped without `shutdown` still stops: its tasks see the signal and the Raft
    /// node is shut down in the background, so a dropped node stops voting and replicating.
    fn drop(&mut self) {
        if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let _ = self.shutdown.send(true);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let raft = self.raft.clone();
            runtime.spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }
}

/// Initialises the quorum if this node is the lowest voter and its log is empty; a no-op otherwise.
async fn initialize_if_first(
    raft: &Raft,
    node_id: NodeId,
    voters: &BTreeMap<NodeId, String>,
) -> Result<(), ControllerError> {
    if voters.keys().next() != Some(&node_id) || raft.is_initialized().await.map_err(raft_failed)? {
        return Ok(());
    }
    let members: BTreeMap<NodeId, Node> = voters
        .iter()
        .map(|(id, address)| (*id, Node::new(address)))
        .collect();
    match raft.initialize(members).await {
        // NotAllowed: something reached the log first (a leader elected meanwhile); the cluster
        // exists, which is all initialisation is for.
        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            tracing::info!(node_id, ?voters, "initialised the controller quorum");
            Ok(())
        }
        Err(error) => Err(raft_failed(error)),
    }
}

/// What the leader proposes on its own: see the module documentation.
struct LeaderDriver {
    raft: Raft,
    metadata: watch::Receiver<Arc<MetadataState>>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    session_timeout_ms: i64,
    preferred_cluster_id: Option<String>,
}

impl LeaderDriver {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leader_since_ms: Option<i64> = None;
        // Measured on the runtime's own clock, not the injected one: this is about whether
        // this task ran, which a test's manual clock says nothing about.
        let mut last_tick = tokio::time::Instant::now();
        let stall_limit = Duration::from_millis((self.session_timeout_ms / 2).max(1) as u64);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            // A driver that did not run for a while (an overloaded or paused process) has not
            // been watching heartbeats either: the heartbeats it missed may be queued behind it.
            // Restart every session instead of fencing brokers for the controller's own stall.
            let stalled = last_tick.elapsed();
            last_tick = tokio::time::Instant::now();
            if stalled > stall_limit && leader_since_ms.is_some() {
                tracing::warn!(
                    stalled_ms = stalled.as_millis() as u64,
                    "the controller's liveness check stalled; restarting broker sessions"
                );
                leader_since_ms = Some(self.clock.now_ms());
            }
            let (leading, applied_own_term) = {
                let metrics = self.raft.metrics();
                let metrics = metrics.borrow();
                let applied_own_term = metrics
                    .last_applied
                    .is_some_and(|applied| applied.leader_id.term == metrics.current_term);
                (metrics.state == ServerState::Leader, applied_own_term)
            };
            if !leading {
                leader_since_ms = None;
                continue;
            }
            let since_ms = *leader_since_ms.get_or_insert_with(|| self.clock.now_ms());
            // Until this term's first entry is applied, the state may miss commands the previous
            // leader committed: deciding on it could fence a broker whose heartbeat is in there.
            if !applied_own_term {
                continue;
            }
            let state = Arc::clone(&self.metadata.borrow());
            let commands = if state.cluster_id.is_empty() {
                let cluster_id = self
                    .preferred_cluster_id
                    .clone()
                    .unwrap_or_else(random_cluster_id);
                vec![MetadataCommand::InitializeCluster { cluster_id }]
            } else {
                liveness_commands(
                    &state,
                    self.clock.now_ms(),
                    since_ms,
                    self.session_timeout_ms,
                )
            };
            for command in commands {
                match propose(&self.raft, command.clone()).await {
                    Ok(SubmitReply::Applied(outcome)) => {
                        tracing::info!(?outcome, "leader driver applied a command")
                    }
                    Ok(SubmitReply::Rejected(rejected)) => {
                        tracing::warn!(?command, %rejected, "leader driver command refused");
                    }
                    // Leadership moved on; the new leader's driver takes over.
                    Ok(SubmitReply::NotLeader { .. }) => break,
                    Err(error) => {
                        tracing::warn!(%error, "leader driver could not propose");
                        break;
                    }
                }
            }
        }
    }
}

/// 128 random bits as 32 hex digits.
fn random_cluster_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Records the cluster id in the data directory once the metadata names it; stops the Raft node
/// if the log names another cluster than the directory, which only a mixed-up directory explains.
async fn record_cluster_id(
    mut identity: NodeIdentity,
    mut metadata: watch::Receiver<Arc<MetadataState>>,
    shared: SharedClusterId,
    raft: Raft,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut stopping = false;
    // Bounded by the shutdown signal, or by the state machine going away; either way one last
    // pass records a cluster id applied just before, so a prompt shutdown does not lose it.
    loop {
        let named = metadata.borrow_and_update().cluster_id.clone();
        if !named.is_empty() && identity.cluster_id() != Some(named.as_str()) {
            // A small fsynced write, once in the directory's life: not worth a blocking-pool hop.
            match identity.check_and_record_cluster_id(&named) {
                Ok(()) => {
                    if let Ok(mut shared) = shared.write() {
                        *shared = named.clone();
                    }
                    tracing::info!(cluster_id = %named, "recorded the cluster id");
                }
                Err(error) => {
                    tracing::error!(%error, "stopping the controller: its log belongs to another cluster");
                    let _ = raft.shutdown().await;
                    return;
                }
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            changed = metadata.changed() => stopping = changed.is_err(),
            _ = shutdown.changed() => stopping = true,
        }
    }
}
