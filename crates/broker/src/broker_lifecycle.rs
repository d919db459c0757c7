//! How a broker takes part in the cluster (Kafka's `BrokerLifecycleManager` and
//! `BrokerMetadataPublisher`): it registers with the controller quorum, keeps its session alive
//! with heartbeats, and makes its replicas follow the replicated metadata: it leads, follows,
//! reconfigures or deletes partitions as each new `MetadataState` arrives.
//!
//! The controller decides; this module only applies. A broker that stops heartbeating is fenced
//! by the controller, which moves its leaderships to other in-sync replicas.

use crate::BrokerState;
use crate::error::PartitionError;
use crate::replica_manager::{
    AddressBook, BrokerEpochs, IsrUpdater, PartitionAssignment, ReplicaManager,
};
use crate::topic_config::TopicConfig;
use rand::Rng;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use strata_common::{Clock, ErrorCode, TopicPartition};
use strata_controller::{
    CommandOutcome, Controller, ControllerError, MetadataCommand, MetadataState,
};
use tokio::sync::watch;
use tracing::{info, warn};

pub(crate) fn controller_error(error: ControllerError) -> PartitionError {
    let code = error.code();
    let message = match error {
        // The code travels beside the message; repeating it inside would print it twice.
        ControllerError::Rejected(rejected) => rejected.message,
        ControllerError::LeaderNotAvailable { .. } => format!(
            "the controller quorum is unavailable (are a majority of the voters up and \
             reachable?): {error}"
        ),
        other => other.to_string(),
    };
    PartitionError::new(code, message)
}

/// Where clients are told to connect to this broker, as registered with the controller.
#[derive(Clone, Debug)]
pub(crate) struct AdvertisedAddresses {
    /// The gRPC client listener.
    pub(crate) grpc: String,
    /// The Kafka listener, when this broker opens one.
    pub(crate) kafka: Option<String>,
}

/// Registers this broker; returns its broker epoch. Retries until `deadline_after` passes,
/// because at start-up the quorum may still be electing its first leader.
pub(crate) async fn register(
    controller: &Controller,
    broker_id: i32,
    advertised: &AdvertisedAddresses,
    incarnation: u64,
    clock: &Arc<dyn Clock>,
    deadline_after: Duration,
) -> Result<i64, PartitionError> {
    let deadline = tokio::time::Instant::now() + deadline_after;
    loop {
        let command = MetadataCommand::RegisterBroker {
            broker_id,
            address: advertised.grpc.clone(),
            incarnation,
            now_ms: clock.now_ms(),
            kafka_address: advertised.kafka.clone(),
        };
        match controller.submit(command).await {
            Ok(CommandOutcome::BrokerRegistered { broker_epoch, .. }) => return Ok(broker_epoch),
            Ok(other) => {
                return Err(PartitionError::new(
                    ErrorCode::UnknownServerError,
                    format!("unexpected registration outcome {other:?}"),
                ));
            }
            Err(error) if error.is_retriable() && tokio::time::Instant::now() < deadline => {
                warn!(%error, "broker registration failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(controller_error(error)),
        }
    }
}

pub(crate) fn new_incarnation() -> u64 {
    rand::rng().random()
}

/// Heartbeats every `interval`; re-registers when the controller no longer knows this epoch
/// (it was fenced, or the quorum lost and regained its state). Each heartbeat reports the log
/// directory as offline once any log in it failed a write or fsync (Kafka's whole-directory
/// model): the controller then fences this broker and moves its leaderships at once.
///
/// Every answered heartbeat (or registration) renews this broker's leadership lease to its send
/// time plus `lease`; see [`ReplicaManager::enforce_session_lease`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn heartbeat_loop(
    controller: Arc<Controller>,
    replicas: Arc<ReplicaManager>,
    broker_id: i32,
    advertised: AdvertisedAddresses,
    incarnation: u64,
    mut broker_epoch: i64,
    clock: Arc<dyn Clock>,
    interval: Duration,
    lease: Duration,
) {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut ticks = tokio::time::interval(interval);
    let mut reported_offline = false;
    loop {
        ticks.tick().await;
        let offline = replicas.logs().offline_logs();
        if let Some((partition, cause)) = offline.first().filter(|_| !reported_offline) {
            reported_offline = true;
            warn!(%partition, %cause, offline_logs = offline.len(), directory = %replicas.logs().root().display(), "the log directory is offline; reporting it so leadership moves away (restart the broker once the disk is sound)");
        }
        let offline_log_dirs = if offline.is_empty() {
            Vec::new()
        } else {
            vec![replicas.logs().root().display().to_string()]
        };
        let sent_ms = clock.now_ms();
        let command = MetadataCommand::BrokerHeartbeat {
            broker_id,
            broker_epoch,
            now_ms: sent_ms,
            offline_log_dirs,
        };
        // Bounded, so a quorum that neither commits nor refuses does not stop the heartbeats
        // that would renew the session once it is back.
        let answered = tokio::time::timeout(lease, controller.submit(command)).await;
        let Ok(answered) = answered else {
            warn!(
                ?lease,
                "heartbeat got no answer; the controller quorum may be unreachable"
            );
            continue;
        };
        match answered {
            Ok(_) => replicas.renew_session_lease(sent_ms.saturating_add(lease_ms)),
            Err(ControllerError::Rejected(rejected)) => {
                warn!(%rejected, "heartbeat refused; registering again");
                let registering_ms = clock.now_ms();
                match register(
                    &controller,
                    broker_id,
                    &advertised,
                    incarnation,
                    &clock,
                    interval * 4,
                )
                .await
                {
                    Ok(epoch) => {
                        broker_epoch = epoch;
                        replicas.set_broker_epoch(epoch);
                        replicas.renew_session_lease(registering_ms.saturating_add(lease_ms));
                    }
                    Err(error) => warn!(%error, "re-registration failed; will retry"),
                }
            }
            Err(error) => warn!(%error, "heartbeat failed; will retry"),
        }
    }
}

/// Wires the replica manager to the controller: where other brokers' internal listeners are,
/// which broker epochs are current, and ISR changes.
///
/// Followers reach a leader at its controller voter address (`voters`): every node is a voter,
/// and that address is its internal listener, the only one serving replication. Clients are
/// told the registered address (`--advertise`), which serves no inter-broker call.
pub(crate) fn connect_replicas(
    replicas: &ReplicaManager,
    controller: &Arc<Controller>,
    voters: &[(i32, String)],
) {
    let metadata = controller.metadata();
    let voters: BTreeMap<i32, String> = voters.iter().cloned().collect();
    let address_book: AddressBook = Arc::new(move |broker_id| voters.get(&broker_id).cloned());
    let broker_epochs: BrokerEpochs = Arc::new(move |broker_id| {
        metadata
            .borrow()
            .brokers
            .get(&broker_id)
            .map(|broker| broker.broker_epoch)
    });
    replicas.set_broker_epochs(broker_epochs);
    replicas.set_address_book(address_book);
    let node_id = replicas.node_id();
    let submitter = controller.clone();
    let updater: IsrUpdater = Arc::new(move |partition: TopicPartition, leader_epoch, new_isr| {
        let controller = submitter.clone();
        Box::pin(async move {
            let command = MetadataCommand::AlterPartitionIsr {
                partition,
                leader_id: node_id,
                leader_epoch,
                new_isr,
            };
            match controller.submit(command).await.map_err(controller_error)? {
                CommandOutcome::PartitionIsrAltered { state, .. } => Ok(state.isr),
                other => Err(PartitionError::new(
                    ErrorCode::UnknownServerError,
                    format!("unexpected ISR outcome {other:?}"),
                )),
            }
        })
    });
    replicas.set_isr_updater(updater);
}

/// Applies every new metadata state to the local replicas until the channel closes, publishing
/// each state on `applied` once the replicas match it. Admin requests wait on `applied` so that
/// "topic created" means "this broker serves it", and start-up waits on it so a restarted broker
/// serves its partitions before it says it is up.
pub(crate) async fn publish_metadata(
    replicas: Arc<ReplicaManager>,
    mut metadata: watch::Receiver<Arc<MetadataState>>,
    applied: watch::Sender<Arc<MetadataState>>,
) {
    let mut applied_configs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut known_partitions: HashSet<TopicPartition> = HashSet::new();
    loop {
        let state = metadata.borrow_and_update().clone();
        apply(
            &replicas,
            &state,
            &mut applied_configs,
            &mut known_partitions,
        );
        applied.send_replace(state);
        if metadata.changed().await.is_err() {
            return;
        }
    }
}

/// Waits until this broker has applied a metadata state satisfying `condition`, up to `timeout`.
pub(crate) async fn wait_until_applied(
    applied: &watch::Receiver<Arc<MetadataState>>,
    timeout: Duration,
    condition: impl Fn(&MetadataState) -> bool,
) -> Result<(), PartitionError> {
    let mut applied = applied.clone();
    match tokio::time::timeout(timeout, applied.wait_for(|state| condition(state))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(PartitionError::new(
            ErrorCode::NotLeaderOrFollower,
            "the broker is shutting down",
        )),
        Err(_) => Err(PartitionError::new(
            ErrorCode::RequestTimedOut,
            format!(
                "the change was committed but not yet applied on this broker after {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

fn apply(
    replicas: &Arc<ReplicaManager>,
    state: &MetadataState,
    applied_configs: &mut BTreeMap<String, BTreeMap<String, String>>,
    known_partitions: &mut HashSet<TopicPartition>,
) {
    let node_id = replicas.node_id();
    let mut hosted = HashSet::new();
    for topic in state.topics.values() {
        let config = match TopicConfig::resolve(&topic.configs) {
            Ok(config) => config,
            Err(error) => {
                warn!(topic = %topic.name, %error, "topic config does not resolve; keeping the previous one");
                continue;
            }
        };
        let configs_changed = applied_configs.get(&topic.name) != Some(&topic.configs);
        for partition in &topic.partitions {
            if !partition.replicas.contains(&node_id) {
                continue;
            }
            let topic_partition = TopicPartition::new(&topic.name, partition.partition);
            hosted.insert(topic_partition.clone());
            let assignment = PartitionAssignment {
                leader_id: partition.leader,
                leader_epoch: partition.leader_epoch,
                replicas: partition.replicas.clone(),
                isr: partition.isr.clone(),
            };
            if let Err(error) =
                replicas.apply_assignment(topic_partition.clone(), &config, &assignment)
            {
                warn!(partition = %topic_partition, %error, "could not apply the partition's assignment");
                continue;
            }
            if configs_changed && let Err(error) = replicas.update_config(&topic_partition, &config)
            {
                warn!(partition = %topic_partition, %error, "could not apply the topic config");
            }
        }
        applied_configs.insert(topic.name.clone(), topic.configs.clone());
    }
    // Partitions this node hosted under the controller's metadata and no longer does: the topic
    // was deleted (or the replica moved away), so its data goes.
    for gone in known_partitions.difference(&hosted) {
        info!(partition = %gone, "partition no longer assigned here; deleting it");
        if let Err(error) = replicas.remove_partition(gone, true) {
            warn!(partition = %gone, %error, "could not delete the partition");
        }
    }
    applied_configs.retain(|topic, _| state.topics.contains_key(topic));
    *known_partitions = hosted;
}

/// Creates `user` with `password` (both SCRAM mechanisms) unless the cluster already has the
/// user, whatever its password: the bootstrap user is a first user, not a password reset. A
/// failure is logged, not fatal: another node may be creating the same user, and an operator
/// can create one later.
pub(crate) async fn create_bootstrap_user(state: &BrokerState, user: &str, password: &str) {
    if state.applied_metadata.borrow().users.contains_key(user) {
        return;
    }
    for mechanism in [
        strata_auth::Mechanism::ScramSha512,
        strata_auth::Mechanism::ScramSha256,
    ] {
        let credential = match strata_auth::ScramCredential::from_password(
            mechanism,
            password,
            &strata_auth::random_salt(),
            strata_auth::MIN_ITERATIONS,
        ) {
            Ok(credential) => credential,
            Err(error) => {
                warn!(user, %error, "cannot make the bootstrap user's credential");
                return;
            }
        };
        let command = MetadataCommand::UpsertScramCredential {
            user: user.to_string(),
            credential,
        };
        match state.controller.submit(command).await {
            Ok(_) => info!(user, mechanism = mechanism.name(), "bootstrap user created"),
            Err(error) => warn!(user, %error, "cannot create the bootstrap user"),
        }
    }
}
