//! The cluster metadata as a pure state machine: commands in, state and outcomes out.
//!
//! [`MetadataState`] owns the cluster id, the registered brokers, and every topic with its
//! partitions' replicas, ISR, leader and epochs. It does no IO and reads no clock: every time value
//! arrives inside a [`MetadataCommand`], so replaying the same commands on any controller gives
//! the same state, and tests drive it without sleeping. Raft replicates the commands; this type
//! only decides what each one means.
//!
//! Architecture invariants (checked by [`MetadataState::validate`] after every command in debug
//! builds, and by the tests after every step):
//! - a partition's leader is `-1` or an unfenced member of its ISR;
//! - the ISR is a non-empty subset of the replicas; a fenced broker stays in an ISR only as its
//!   last member, so that a clean election can bring the partition back when the broker returns
//!   (Kafka does the same);
//! - every leadership change bumps the leader epoch, and every change of leader or ISR bumps the
//!   partition epoch;
//! - a refused command leaves the state exactly as it was, offset included.

use crate::error::{CommandRejected, ControllerError};
use crate::metadata_command::{CommandOutcome, MetadataCommand};
use crate::replica_assignment::assign_replicas;
use crate::topic_config_keys::{check_key, check_overrides, unclean_leader_election};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use strata_auth::{AclBinding, AclSet, Mechanism, ScramCredential};
use strata_common::{ErrorCode, TopicPartition, validate_topic_name};

/// The leader of a partition that has none (Kafka's `-1`).
pub const NO_LEADER: i32 = -1;

/// The most partitions one topic may have. The whole state lives in memory on every controller
/// and in every snapshot, so one careless command must not be able to exhaust them all at once.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// Fresh partitions numbered `numbers`, each led by its first replica with every replica in
/// sync. Placement starts after the `existing` partitions of the cluster, so leadership spreads
/// over the brokers across topics too, deterministically.
fn new_partitions(
    live: &[i32],
    numbers: std::ops::Range<i32>,
    replication_factor: i32,
    existing: usize,
) -> Vec<PartitionMetadata> {
    let count = numbers.end - numbers.start;
    assign_replicas(
        live,
        count,
        replication_factor,
        existing % live.len().max(1),
    )
    .into_iter()
    .zip(numbers)
    .map(|(replicas, partition)| PartitionMetadata {
        partition,
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    })
    .collect()
}

/// A broker as the controller knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    /// `host:port` clients and other brokers connect to.
    pub address: String,
    /// The process incarnation that registered (see [`MetadataCommand::RegisterBroker`]).
    pub incarnation: u64,
    /// Assigned by the controller at each new registration: the metadata offset of that
    /// registration, so it only grows and a heartbeat from an older incarnation is recognisable.
    pub broker_epoch: i64,
    /// A fenced broker leads nothing and joins no ISR.
    pub fenced: bool,
    /// The time of its last heartbeat (or registration), as the proposer's clock gave it.
    pub last_heartbeat_ms: i64,
    /// Log directories the broker reported failed (a write or fsync error); while any is, the
    /// broker stays fenced. A new registration (a restart, which recovers the logs) clears it.
    /// Added within format version 1: absent (and not written) when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline_log_dirs: Vec<String>,
    /// `host:port` Kafka clients connect to, when the broker opens a Kafka listener. Added
    /// within format version 1: absent (and not written) when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_address: Option<String>,
    /// The broker announced a controlled shutdown ([`MetadataCommand::ControlledShutdown`]); it
    /// stays fenced until a new registration. Added within format version 1: absent (and not
    /// written) when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shutting_down: bool,
}

/// One partition's replica placement and leadership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMetadata {
    pub partition: i32,
    /// In preference order: the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In replica order.
    pub isr: Vec<i32>,
    /// [`NO_LEADER`] when no eligible replica is available.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// A topic and its partitions; `partitions[i].partition == i`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub topic_id: String,
    pub name: String,
    /// Overrides of the defaults; keys are in [`crate::TOPIC_CONFIG_KEYS`].
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionMetadata>,
}

/// The whole cluster metadata at one metadata offset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    /// Empty until the first controller leader proposes [`MetadataCommand::InitializeCluster`].
    pub cluster_id: String,
    /// How many commands have been applied; every applied command advances it by one, a refused
    /// one leaves it. A broker compares offsets to tell which of two states is newer.
    pub metadata_offset: i64,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicMetadata>,
    /// SCRAM credentials by user and mechanism: salted and iterated, never a password. Added
    /// within format version 1: absent (and not written) while there are no users.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>,
    /// Every ACL binding (`strata_auth::acl`). Added within format version 1: absent (and not
    /// written) while there are none.
    #[serde(default, skip_serializing_if = "AclSet::is_empty")]
    pub acls: AclSet,
}

fn rejected(code: ErrorCode, message: impl Into<String>) -> CommandRejected {
    CommandRejected::new(code, message)
}

fn invalid_request(message: impl Into<String>) -> CommandRejected {
    rejected(ErrorCode::InvalidRequest, message)
}

/// A user name Kafka's tools can carry: not empty, at most 255 bytes, no control characters.
fn check_user_name(user: &str) -> Result<(), CommandRejected> {
    if user.is_empty() || user.len() > 255 || user.chars().any(char::is_control) {
        return Err(rejected(
            ErrorCode::UnacceptableCredential,
            "a user name is 1 to 255 bytes without control characters",
        ));
    }
    Ok(())
}

/// `host:port` with a non-empty host and a port in 1..=65535.
fn check_address(address: &str) -> Result<(), CommandRejected> {
    let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0)
    });
    if valid {
        Ok(())
    } else {
        Err(invalid_request(format!(
            "broker address '{address}' is not host:port"
        )))
    }
}

/// FNV-1a, a stable hash (std's `DefaultHasher` may change between Rust releases, and topic ids
/// must come out the same on every controller and after every upgrade).
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Who would lead `partition` if elected now: the first unfenced ISR member in replica order,
/// else (only if `unclean`) the first unfenced replica. The flag says whether it was unclean.
fn election_candidate(
    partition: &PartitionMetadata,
    brokers: &BTreeMap<i32, BrokerRegistration>,
    unclean: bool,
    excluded: Option<i32>,
) -> Option<(i32, bool)> {
    let eligible = |replica: &i32| {
        Some(*replica) != excluded && brokers.get(replica).is_some_and(|broker| !broker.fenced)
    };
    let clean = partition
        .replicas
        .iter()
        .find(|replica| partition.isr.contains(replica) && eligible(replica));
    if let Some(&leader) = clean {
        return Some((leader, false));
    }
    if unclean {
        return partition
            .replicas
            .iter()
            .find(|replica| eligible(replica))
            .map(|&leader| (leader, true));
    }
    None
}

impl MetadataState {
    pub fn new() -> MetadataState {
        MetadataState::default()
    }

    /// Applies one command. On error the state is unchanged.
    pub fn apply(&mut self, command: MetadataCommand) -> Result<CommandOutcome, ControllerError> {
        self.apply_command(command).map_err(ControllerError::from)
    }

    /// [`MetadataState::apply`] with the replicable error type the Raft state machine stores.
    pub(crate) fn apply_command(
        &mut self,
        command: MetadataCommand,
    ) -> Result<CommandOutcome, CommandRejected> {
        // The offset this command gets if it applies; it doubles as the new broker epoch and
        // makes topic ids unique.
        let offset = self.metadata_offset + 1;
        let outcome = match command {
            MetadataCommand::InitializeCluster { cluster_id } => {
                self.initialize_cluster(cluster_id)
            }
            MetadataCommand::RegisterBroker {
                broker_id,
                address,
                incarnation,
                now_ms,
                kafka_address,
            } => self.register_broker(
                broker_id,
                address,
                kafka_address,
                incarnation,
                now_ms,
                offset,
            ),
            MetadataCommand::BrokerHeartbeat {
                broker_id,
                broker_epoch,
                now_ms,
                offline_log_dirs,
            } => self.broker_heartbeat(broker_id, broker_epoch, now_ms, offline_log_dirs),
            MetadataCommand::FenceBroker { broker_id } => self.fence_broker(broker_id),
            MetadataCommand::UnfenceBroker { broker_id } => self.unfence_broker(broker_id),
            MetadataCommand::ControlledShutdown {
                broker_id,
                broker_epoch,
            } => self.controlled_shutdown(broker_id, broker_epoch),
            MetadataCommand::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
            } => self.create_topic(name, partitions, replication_factor, configs, offset),
            MetadataCommand::DeleteTopic { name } => self.delete_topic(&name),
            MetadataCommand::AlterTopicConfigs { name, set, delete } => {
                self.alter_topic_configs(&name, set, delete)
            }
            MetadataCommand::CreatePartitions { name, total } => {
                self.create_partitions(&name, total)
            }
            MetadataCommand::AlterPartitionIsr {
                partition,
                leader_id,
                leader_epoch,
                new_isr,
            } => self.alter_partition_isr(partition, leader_id, leader_epoch, new_isr),
            MetadataCommand::ElectLeaders => Ok(self.elect_leaders()),
            MetadataCommand::UpsertScramCredential { user, credential } => {
                self.upsert_scram_credential(user, credential)
            }
            MetadataCommand::DeleteScramCredential { user, mechanism } => {
                self.delete_scram_credential(user, mechanism)
            }
            MetadataCommand::CreateAcls { bindings } => self.create_acls(bindings),
            MetadataCommand::DeleteAcls { filters } => Ok(CommandOutcome::AclsDeleted {
                deleted: filters
                    .iter()
                    .map(|filter| self.acls.remove_matching(filter))
                    .collect(),
            }),
        }?;
        self.metadata_offset = offset;
        debug_assert_eq!(self.validate(), Ok(()), "after {outcome:?}");
        Ok(outcome)
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    pub fn partition(&self, partition: &TopicPartition) -> Option<&PartitionMetadata> {
        let index = usize::try_from(partition.partition).ok()?;
        self.topics.get(&partition.topic)?.partitions.get(index)
    }

    /// `user`'s credential for `mechanism`, if the user has one.
    pub fn scram_credential(&self, user: &str, mechanism: Mechanism) -> Option<&ScramCredential> {
        self.users.get(user)?.get(&mechanism)
    }

    fn upsert_scram_credential(
        &mut self,
        user: String,
        credential: ScramCredential,
    ) -> Result<CommandOutcome, CommandRejected> {
        check_user_name(&user)?;
        if !(strata_auth::MIN_ITERATIONS..=strata_auth::MAX_ITERATIONS)
            .contains(&credential.iterations)
            || credential.salt.is_empty()
            || credential.stored_key.is_empty()
            || credential.server_key.is_empty()
        {
            return Err(rejected(
                ErrorCode::UnacceptableCredential,
                format!(
                    "a SCRAM credential needs a salt, keys and {} to {} iterations",
                    strata_auth::MIN_ITERATIONS,
                    strata_auth::MAX_ITERATIONS
                ),
            ));
        }
        self.users
            .entry(user.clone())
            .or_default()
            .insert(credential.mechanism, credential);
        Ok(CommandOutcome::ScramCredentialsChanged { user })
    }

    fn delete_scram_credential(
        &mut self,
        user: String,
        mechanism: Mechanism,
    ) -> Result<CommandOutcome, CommandRejected> {
        let Some(credentials) = self.users.get_mut(&user) else {
            return Err(rejected(
                ErrorCode::ResourceNotFound,
                format!("no user '{user}'"),
            ));
        };
        if credentials.remove(&mechanism).is_none() {
            return Err(rejected(
                ErrorCode::ResourceNotFound,
                format!("user '{user}' has no {} credential", mechanism.name()),
            ));
        }
        if credentials.is_empty() {
            self.users.remove(&user);
        }
        Ok(CommandOutcome::ScramCredentialsChanged { user })
    }

    fn create_acls(
        &mut self,
        bindings: Vec<AclBinding>,
    ) -> Result<CommandOutcome, CommandRejected> {
        for binding in &bindings {
            binding
                .validate()
                .map_err(|invalid| invalid_request(invalid.0))?;
        }
        let count = bindings.len();
        for binding in bindings {
            self.acls.insert(binding);
        }
        Ok(CommandOutcome::AclsCreated { count })
    }

    pub fn broker(&self, broker_id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&broker_id)
    }

    /// Registered, unfenced brokers, by id.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|broker| !broker.fenced)
            .map(|broker| broker.broker_id)
            .collect()
    }

    /// Leaderless partitions that [`MetadataCommand::ElectLeaders`] would give a leader now.
    pub fn electable_partitions(&self) -> Vec<TopicPartition> {
        let mut electable = Vec::new();
        for topic in self.topics.values() {
            let unclean = unclean_leader_election(&topic.configs);
            for partition in &topic.partitions {
                if partition.leader == NO_LEADER
                    && election_candidate(partition, &self.brokers, unclean, None).is_some()
                {
                    electable.push(TopicPartition::new(&topic.name, partition.partition));
                }
            }
        }
        electable
    }

    /// Checks the invariants in the module documentation; the error names the first broken one.
    pub fn validate(&self) -> Result<(), String> {
        for (&id, broker) in &self.brokers {
            if broker.broker_id != id {
                return Err(format!("broker {id} is stored as {}", broker.broker_id));
            }
        }
        for (name, topic) in &self.topics {
            if &topic.name != name || topic.topic_id.is_empty() || topic.partitions.is_empty() {
                return Err(format!("topic '{name}' is malformed"));
            }
            for (index, partition) in topic.partitions.iter().enumerate() {
                let at = format!("{name}-{index}");
                if usize::try_from(partition.partition) != Ok(index) {
                    return Err(format!("{at} is stored as {}", partition.partition));
                }
                let replicas: BTreeSet<i32> = partition.replicas.iter().copied().collect();
                if replicas.is_empty() || replicas.len() != partition.replicas.len() {
                    return Err(format!(
                        "{at} replicas {:?} are empty or repeat",
                        partition.replicas
                    ));
                }
                if let Some(unknown) = replicas.iter().find(|id| !self.brokers.contains_key(id)) {
                    return Err(format!("{at} replica {unknown} is not a registered broker"));
                }
                let isr: BTreeSet<i32> = partition.isr.iter().copied().collect();
                if isr.is_empty() || isr.len() != partition.isr.len() || !isr.is_subset(&replicas) {
                    return Err(format!(
                        "{at} ISR {:?} is not a non-empty subset of replicas {:?}",
                        partition.isr, partition.replicas
                    ));
                }
                let fenced = |id: &i32| self.brokers.get(id).is_none_or(|broker| broker.fenced);
                if partition.isr.len() > 1 && partition.isr.iter().any(fenced) {
                    return Err(format!(
                        "{at} ISR {:?} holds a fenced broker",
                        partition.isr
                    ));
                }
                if partition.leader != NO_LEADER
                    && (!isr.contains(&partition.leader) || fenced(&partition.leader))
                {
                    return Err(format!(
                        "{at} leader {} is not an unfenced ISR member ({:?})",
                        partition.leader, partition.isr
                    ));
                }
                if partition.leader_epoch < 0 || partition.partition_epoch < 0 {
                    return Err(format!("{at} has a negative epoch"));
                }
            }
        }
        Ok(())
    }

    fn initialize_cluster(
        &mut self,
        cluster_id: String,
    ) -> Result<CommandOutcome, CommandRejected> {
        if !self.cluster_id.is_empty() {
            return Err(invalid_request(format!(
                "the cluster is already initialised with id {}",
                self.cluster_id
            )));
        }
        if cluster_id.is_empty()
            || !cluster_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid_request(format!(
                "cluster id '{cluster_id}' must be non-empty ASCII letters, digits and '-'"
            )));
        }
        self.cluster_id = cluster_id.clone();
        Ok(CommandOutcome::ClusterInitialized { cluster_id })
    }

    fn register_broker(
        &mut self,
        broker_id: i32,
        address: String,
        kafka_address: Option<String>,
        incarnation: u64,
        now_ms: i64,
        offset: i64,
    ) -> Result<CommandOutcome, CommandRejected> {
        if broker_id < 0 {
            return Err(invalid_request(format!(
                "broker id {broker_id} is negative"
            )));
        }
        check_address(&address)?;
        if let Some(kafka_address) = &kafka_address {
            check_address(kafka_address)?;
        }
        if let Some(existing) = self.brokers.get_mut(&broker_id)
            && existing.incarnation == incarnation
        {
            // A retry of a registration that already applied (its reply was lost).
            existing.last_heartbeat_ms = existing.last_heartbeat_ms.max(now_ms);
            return Ok(CommandOutcome::BrokerRegistered {
                broker_id,
                broker_epoch: existing.broker_epoch,
            });
        }
        if self
            .brokers
            .get(&broker_id)
            .is_some_and(|existing| !existing.fenced)
        {
            // The previous incarnation is gone without having been fenced; what it led may have
            // lost unflushed data with it, so it leaves leadership and ISRs as a fenced broker would.
            self.set_fenced(broker_id);
        }
        self.brokers.insert(
            broker_id,
            BrokerRegistration {
                broker_id,
                address,
                incarnation,
                broker_epoch: offset,
                fenced: false,
                last_heartbeat_ms: now_ms,
                offline_log_dirs: Vec::new(),
                kafka_address,
                shutting_down: false,
            },
        );
        Ok(CommandOutcome::BrokerRegistered {
            broker_id,
            broker_epoch: offset,
        })
    }

    /// The registration of `broker_id`, provided `broker_epoch` is its current one: a message
    /// (`what`) from an older incarnation is refused.
    fn current_registration(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
        what: &str,
    ) -> Result<&mut BrokerRegistration, CommandRejected> {
        let broker = self
            .brokers
            .get_mut(&broker_id)
            .ok_or_else(|| invalid_request(format!("broker {broker_id} is not registered")))?;
        if broker.broker_epoch != broker_epoch {
            return Err(invalid_request(format!(
                "broker {broker_id} {what} carries broker epoch {broker_epoch}, but the current registration has epoch {}; register again",
                broker.broker_epoch
            )));
        }
        Ok(broker)
    }

    fn broker_heartbeat(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
        now_ms: i64,
        offline_log_dirs: Vec<String>,
    ) -> Result<CommandOutcome, CommandRejected> {
        let broker = self.current_registration(broker_id, broker_epoch, "heartbeat")?;
        // Clocks of different proposers may disagree a little; the session never moves backwards.
        broker.last_heartbeat_ms = broker.last_heartbeat_ms.max(now_ms);
        // A failed directory is not healed by the process that saw it fail: only a restart,
        // which registers anew and recovers the logs, clears it.
        for directory in offline_log_dirs {
            if !broker.offline_log_dirs.contains(&directory) {
                broker.offline_log_dirs.push(directory);
            }
        }
        if !broker.offline_log_dirs.is_empty() && !broker.fenced {
            // Its logs can no longer be trusted to take writes: hand its leaderships over now,
            // not when a session times out.
            self.set_fenced(broker_id);
        }
        let fenced = self
            .brokers
            .get(&broker_id)
            .is_some_and(|broker| broker.fenced);
        Ok(CommandOutcome::HeartbeatAccepted { broker_id, fenced })
    }

    fn fence_broker(&mut self, broker_id: i32) -> Result<CommandOutcome, CommandRejected> {
        let broker = self
            .brokers
            .get(&broker_id)
            .ok_or_else(|| invalid_request(format!("broker {broker_id} is not registered")))?;
        let partitions = if broker.fenced {
            Vec::new()
        } else {
            self.set_fenced(broker_id)
        };
        Ok(CommandOutcome::BrokerFenced {
            broker_id,
            partitions,
        })
    }

    fn controlled_shutdown(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<CommandOutcome, CommandRejected> {
        // A stopping process whose registration was already replaced must not fence its
        // successor.
        let broker = self.current_registration(broker_id, broker_epoch, "shutdown")?;
        broker.shutting_down = true;
        let partitions = if broker.fenced {
            Vec::new()
        } else {
            self.set_fenced(broker_id)
        };
        Ok(CommandOutcome::BrokerFenced {
            broker_id,
            partitions,
        })
    }

    /// Marks the broker fenced and moves it out of leadership and ISRs; returns the partitions
    /// that changed.
    fn set_fenced(&mut self, broker_id: i32) -> Vec<TopicPartition> {
        if let Some(broker) = self.brokers.get_mut(&broker_id) {
            broker.fenced = true;
        }
        let brokers = &self.brokers;
        let mut changed = Vec::new();
        for topic in self.topics.values_mut() {
            let unclean = unclean_leader_election(&topic.configs);
            for partition in &mut topic.partitions {
                if !partition.isr.contains(&broker_id) {
                    continue;
                }
                let was_leader = partition.leader == broker_id;
                let remaining: Vec<i32> = partition
                    .isr
                    .iter()
                    .copied()
                    .filter(|&replica| replica != broker_id)
                    .collect();
                if !remaining.is_empty() {
                    partition.isr = remaining;
                    if was_leader {
                        // Only other ISR members are candidates: they hold every committed record.
                        partition.leader =
                            election_candidate(partition, brokers, false, Some(broker_id))
                                .map_or(NO_LEADER, |(leader, _)| leader);
                        partition.leader_epoch += 1;
                    }
                } else if was_leader {
                    // The broker was the last in-sync replica. It stays in the ISR so that it can
                    // lead again, cleanly, when it returns; meanwhile the partition is offline
                    // unless the topic accepts losing data for availability.
                    match election_candidate(partition, brokers, unclean, Some(broker_id)) {
                        Some((leader, _)) => {
                            partition.leader = leader;
                            partition.isr = vec![leader];
                        }
                        None => partition.leader = NO_LEADER,
                    }
                    partition.leader_epoch += 1;
                } else {
                    // Last ISR member and already leaderless: nothing moves.
                    continue;
                }
                partition.partition_epoch += 1;
                changed.push(TopicPartition::new(&topic.name, partition.partition));
            }
        }
        changed
    }

    fn create_partitions(
        &mut self,
        name: &str,
        total: i32,
    ) -> Result<CommandOutcome, CommandRejected> {
        let live = self.live_brokers();
        let existing: usize = self
            .topics
            .values()
            .map(|topic| topic.partitions.len())
            .sum();
        let topic = self.topics.get_mut(name).ok_or_else(|| {
            rejected(
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })?;
        let current = topic.partitions.len() as i32;
        if total <= current || total > PARTITIONS_PER_TOPIC_MAX {
            return Err(rejected(
                ErrorCode::InvalidPartitions,
                format!(
                    "topic '{name}' has {current} partitions; it can only grow, to at most \
                     {PARTITIONS_PER_TOPIC_MAX}, and {total} is not more"
                ),
            ));
        }
        let replication_factor = topic
            .partitions
            .first()
            .map_or(1, |partition| partition.replicas.len() as i32);
        if replication_factor as usize > live.len() {
            return Err(rejected(
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "topic '{name}' has replication factor {replication_factor}, but only {} \
                     broker(s) are live and unfenced",
                    live.len()
                ),
            ));
        }
        topic.partitions.extend(new_partitions(
            &live,
            current..total,
            replication_factor,
            existing,
        ));
        Ok(CommandOutcome::PartitionsCreated {
            topic: topic.clone(),
        })
    }

    fn unfence_broker(&mut self, broker_id: i32) -> Result<CommandOutcome, CommandRejected> {
        let broker = self
            .brokers
            .get_mut(&broker_id)
            .ok_or_else(|| invalid_request(format!("broker {broker_id} is not registered")))?;
        broker.fenced = false;
        Ok(CommandOutcome::BrokerUnfenced { broker_id })
    }

    fn create_topic(
        &mut self,
        name: String,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
        offset: i64,
    ) -> Result<CommandOutcome, CommandRejected> {
        validate_topic_name(&name)
            .map_err(|message| rejected(ErrorCode::InvalidTopicException, message))?;
        if self.topics.contains_key(&name) {
            return Err(rejected(
                ErrorCode::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(rejected(
                ErrorCode::InvalidPartitions,
                format!(
                    "a topic needs between 1 and {PARTITIONS_PER_TOPIC_MAX} partitions, got {partitions}"
                ),
            ));
        }
        let live = self.live_brokers();
        if replication_factor < 1 || replication_factor as usize > live.len() {
            return Err(rejected(
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "replication factor {replication_factor} must be between 1 and the {} live unfenced broker(s)",
                    live.len()
                ),
            ));
        }
        check_overrides(&configs)?;
        // Start each topic where the previous ones left off, so leadership spreads over the
        // brokers across topics too, deterministically.
        let existing: usize = self
            .topics
            .values()
            .map(|topic| topic.partitions.len())
            .sum();
        let partitions = new_partitions(&live, 0..partitions, replication_factor, existing);
        let topic = TopicMetadata {
            // Random ids would differ between controllers; the offset is unique in this cluster
            // and the cluster id's hash keeps ids of different clusters apart.
            topic_id: format!("{:016x}{offset:016x}", stable_hash(&self.cluster_id)),
            name: name.clone(),
            configs,
            partitions,
        };
        self.topics.insert(name, topic.clone());
        Ok(CommandOutcome::TopicCreated { topic })
    }

    fn delete_topic(&mut self, name: &str) -> Result<CommandOutcome, CommandRejected> {
        let topic = self
            .topics
            .remove(name)
            .ok_or_else(|| unknown_topic(name))?;
        Ok(CommandOutcome::TopicDeleted {
            name: topic.name,
            topic_id: topic.topic_id,
        })
    }

    fn alter_topic_configs(
        &mut self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<CommandOutcome, CommandRejected> {
        let topic = self
            .topics
            .get_mut(name)
            .ok_or_else(|| unknown_topic(name))?;
        check_overrides(&set)?;
        for key in &delete {
            check_key(key)?;
        }
        topic.configs.extend(set);
        for key in &delete {
            topic.configs.remove(key);
        }
        Ok(CommandOutcome::TopicConfigsAltered {
            name: name.to_string(),
            configs: topic.configs.clone(),
        })
    }

    fn alter_partition_isr(
        &mut self,
        target: TopicPartition,
        leader_id: i32,
        leader_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<CommandOutcome, CommandRejected> {
        let brokers = &self.brokers;
        let partition = usize::try_from(target.partition)
            .ok()
            .and_then(|index| {
                self.topics
                    .get_mut(&target.topic)?
                    .partitions
                    .get_mut(index)
            })
            .ok_or_else(|| {
                rejected(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("partition {target} does not exist"),
                )
            })?;
        if leader_epoch < partition.leader_epoch {
            return Err(rejected(
                ErrorCode::FencedLeaderEpoch,
                format!(
                    "{target}: leader epoch {leader_epoch} is older than the current {}",
                    partition.leader_epoch
                ),
            ));
        }
        if leader_epoch > partition.leader_epoch {
            return Err(rejected(
                ErrorCode::UnknownLeaderEpoch,
                format!(
                    "{target}: leader epoch {leader_epoch} is newer than the current {}",
                    partition.leader_epoch
                ),
            ));
        }
        if leader_id != partition.leader {
            return Err(rejected(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "{target}: broker {leader_id} is not the leader (the leader is {})",
                    partition.leader
                ),
            ));
        }
        let requested: BTreeSet<i32> = new_isr.iter().copied().collect();
        if requested.len() != new_isr.len() || !requested.contains(&leader_id) {
            return Err(invalid_request(format!(
                "{target}: ISR {new_isr:?} must list distinct brokers including the leader {leader_id}"
            )));
        }
        if let Some(outsider) = requested.iter().find(|id| !partition.replicas.contains(id)) {
            return Err(invalid_request(format!(
                "{target}: broker {outsider} is not a replica (replicas {:?})",
                partition.replicas
            )));
        }
        if let Some(fenced) = requested
            .iter()
            .find(|id| brokers.get(id).is_none_or(|broker| broker.fenced))
        {
            return Err(invalid_request(format!(
                "{target}: broker {fenced} is fenced and cannot join the ISR"
            )));
        }
        // Replica order, so that the same set always reads the same.
        let isr: Vec<i32> = partition
            .replicas
            .iter()
            .copied()
            .filter(|replica| requested.contains(replica))
            .collect();
        if isr != partition.isr {
            partition.isr = isr;
            partition.partition_epoch += 1;
        }
        Ok(CommandOutcome::PartitionIsrAltered {
            partition: target,
            state: partition.clone(),
        })
    }

    fn elect_leaders(&mut self) -> CommandOutcome {
        let brokers = &self.brokers;
        let mut elected = Vec::new();
        for topic in self.topics.values_mut() {
            let unclean = unclean_leader_election(&topic.configs);
            for partition in &mut topic.partitions {
                if partition.leader != NO_LEADER {
                    continue;
                }
                let Some((leader, was_unclean)) =
                    election_candidate(partition, brokers, unclean, None)
                else {
                    continue;
                };
                if was_unclean {
                    // The new leader's log is the truth from now on; nobody else is in sync.
                    partition.isr = vec![leader];
                }
                partition.leader = leader;
                partition.leader_epoch += 1;
                partition.partition_epoch += 1;
                elected.push(TopicPartition::new(&topic.name, partition.partition));
            }
        }
        CommandOutcome::LeadersElected {
            partitions: elected,
        }
    }
}

fn unknown_topic(name: &str) -> CommandRejected {
    rejected(
        ErrorCode::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(mechanism: Mechanism, password: &str) -> ScramCredential {
        ScramCredential::from_password(mechanism, password, b"salt", strata_auth::MIN_ITERATIONS)
            .unwrap()
    }

    #[test]
    fn acls_are_created_once_survive_a_snapshot_and_are_deleted_by_filter() {
        use strata_auth::{AclFilter, Operation, PatternType, Permission, ResourceType};
        let binding = |name: &str, operation| AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.to_string(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".to_string(),
            host: "*".to_string(),
            operation,
            permission: Permission::Allow,
        };
        let mut state = MetadataState::new();
        let create = |bindings| MetadataCommand::CreateAcls { bindings };
        state
            .apply(create(vec![
                binding("a", Operation::Read),
                binding("b", Operation::Write),
            ]))
            .unwrap();
        // The same binding again changes nothing.
        state
            .apply(create(vec![binding("a", Operation::Read)]))
            .unwrap();
        assert_eq!(state.acls.len(), 2);
        // One invalid binding refuses the whole command.
        let mut invalid = binding("c", Operation::Read);
        invalid.principal = "alice".to_string();
        let refused = state
            .apply(create(vec![binding("d", Operation::Read), invalid]))
            .unwrap_err();
        assert_eq!(refused.code(), ErrorCode::InvalidRequest);
        assert_eq!(state.acls.len(), 2);

        let copy: MetadataState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(copy, state);

        let mut only_a = AclFilter::any();
        only_a.resource_name = Some("a".to_string());
        let outcome = state
            .apply(MetadataCommand::DeleteAcls {
                filters: vec![only_a.clone(), only_a],
            })
            .unwrap();
        assert_eq!(
            outcome,
            CommandOutcome::AclsDeleted {
                deleted: vec![vec![binding("a", Operation::Read)], vec![]]
            }
        );
        assert_eq!(state.acls.len(), 1);
    }

    #[test]
    fn users_are_created_changed_and_removed_with_their_last_credential() {
        let mut state = MetadataState::new();
        let upsert = |user: &str, credential| MetadataCommand::UpsertScramCredential {
            user: user.to_string(),
            credential,
        };
        state
            .apply(upsert("alice", credential(Mechanism::ScramSha256, "one")))
            .unwrap();
        state
            .apply(upsert("alice", credential(Mechanism::ScramSha512, "one")))
            .unwrap();
        // A new password replaces the mechanism's credential.
        state
            .apply(upsert("alice", credential(Mechanism::ScramSha256, "two")))
            .unwrap();
        let stored = state
            .scram_credential("alice", Mechanism::ScramSha256)
            .unwrap();
        assert!(stored.verify_password("two") && !stored.verify_password("one"));

        // The users survive a snapshot's round trip through JSON.
        let copy: MetadataState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(copy, state);

        let delete = |user: &str, mechanism| MetadataCommand::DeleteScramCredential {
            user: user.to_string(),
            mechanism,
        };
        state
            .apply(delete("alice", Mechanism::ScramSha256))
            .unwrap();
        assert!(state.users.contains_key("alice"));
        state
            .apply(delete("alice", Mechanism::ScramSha512))
            .unwrap();
        assert!(
            !state.users.contains_key("alice"),
            "gone with its last credential"
        );
        let offset = state.metadata_offset;
        let refused = state
            .apply(delete("alice", Mechanism::ScramSha512))
            .unwrap_err();
        assert!(
            refused.to_string().contains("RESOURCE_NOT_FOUND"),
            "{refused}"
        );
        assert_eq!(
            state.metadata_offset, offset,
            "a refused command applies nothing"
        );
    }

    #[test]
    fn unusable_credentials_and_user_names_are_refused() {
        let mut state = MetadataState::new();
        let mut weak = credential(Mechanism::ScramSha256, "pw");
        weak.iterations = 1;
        for (user, credential) in [
            ("alice", weak),
            ("", credential(Mechanism::ScramSha256, "pw")),
            ("bad\nname", credential(Mechanism::ScramSha256, "pw")),
        ] {
            let refused = state
                .apply(MetadataCommand::UpsertScramCredential {
                    user: user.to_string(),
                    credential,
                })
                .unwrap_err();
            assert!(
                refused.to_string().contains("UNACCEPTABLE_CREDENTIAL"),
                "{refused}"
            );
        }
        assert!(state.users.is_empty());
    }

    fn register(state: &mut MetadataState, broker_id: i32, now_ms: i64) -> i64 {
        let outcome = step(
            state,
            MetadataCommand::RegisterBroker {
                broker_id,
                address: format!("127.0.0.1:{}", 9000 + broker_id),
                incarnation: 7,
                now_ms,
                kafka_address: None,
            },
        );
        match outcome {
            CommandOutcome::BrokerRegistered { broker_epoch, .. } => broker_epoch,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Applies a command that must succeed and checks the invariants after it.
    fn step(state: &mut MetadataState, command: MetadataCommand) -> CommandOutcome {
        let outcome = state
            .apply(command.clone())
            .unwrap_or_else(|error| panic!("{command:?} failed: {error}"));
        assert_eq!(state.validate(), Ok(()));
        outcome
    }

    /// Applies a command that must fail, checks the code and that nothing changed.
    fn refuse(state: &mut MetadataState, command: MetadataCommand, code: ErrorCode) -> String {
        let before = state.clone();
        let error = state
            .apply(command.clone())
            .expect_err("command must be refused");
        assert_eq!(error.code(), code, "{command:?}: {error}");
        assert_eq!(*state, before, "a refused command changed the state");
        error.to_string()
    }

    fn create(name: &str, partitions: i32, replication_factor: i32) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs: BTreeMap::new(),
        }
    }

    fn cluster_with_brokers(count: i32) -> MetadataState {
        let mut state = MetadataState::new();
        step(
            &mut state,
            MetadataCommand::InitializeCluster {
                cluster_id: "test-cluster".to_string(),
            },
        );
        for broker_id in 1..=count {
            register(&mut state, broker_id, 1_000);
        }
        state
    }

    fn partition(state: &MetadataState, topic: &str, index: i32) -> PartitionMetadata {
        state
            .partition(&TopicPartition::new(topic, index))
            .cloned()
            .expect("partition exists")
    }

    #[test]
    fn every_applied_command_advances_the_offset_and_refusals_do_not() {
        let mut state = cluster_with_brokers(3);
        assert_eq!(state.metadata_offset, 4);
        refuse(
            &mut state,
            create("orders", 0, 1),
            ErrorCode::InvalidPartitions,
        );
        assert_eq!(state.metadata_offset, 4);
        step(&mut state, create("orders", 1, 1));
        assert_eq!(state.metadata_offset, 5);
    }

    #[test]
    fn cluster_id_is_set_once() {
        let mut state = cluster_with_brokers(0);
        let message = refuse(
            &mut state,
            MetadataCommand::InitializeCluster {
                cluster_id: "other".to_string(),
            },
            ErrorCode::InvalidRequest,
        );
        assert!(message.contains("test-cluster"), "{message}");
    }

    #[test]
    fn create_topic_assigns_balanced_distinct_replicas_with_leader_first() {
        let mut state = cluster_with_brokers(3);
        let outcome = step(&mut state, create("orders", 6, 2));
        let CommandOutcome::TopicCreated { topic } = outcome else {
            panic!("unexpected {outcome:?}");
        };
        assert_eq!(topic.partitions.len(), 6);
        assert_eq!(topic.topic_id.len(), 32);
        let mut leaders = BTreeMap::new();
        for partition in &topic.partitions {
            assert_eq!(partition.replicas.len(), 2);
            assert_ne!(partition.replicas[0], partition.replicas[1]);
            assert_eq!(partition.leader, partition.replicas[0]);
            assert_eq!(partition.isr, partition.replicas);
            assert_eq!((partition.leader_epoch, partition.partition_epoch), (0, 0));
            *leaders.entry(partition.leader).or_insert(0) += 1;
        }
        assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
        assert_eq!(state.topic("orders"), Some(&topic));
    }

    #[test]
    fn create_topic_validates_its_arguments() {
        let mut state = cluster_with_brokers(3);
        refuse(
            &mut state,
            create("bad/name", 1, 1),
            ErrorCode::InvalidTopicException,
        );
        refuse(
            &mut state,
            create("", 1, 1),
            ErrorCode::InvalidTopicException,
        );
        refuse(&mut state, create("t", 0, 1), ErrorCode::InvalidPartitions);
        refuse(&mut state, create("t", -3, 1), ErrorCode::InvalidPartitions);
        refuse(
            &mut state,
            create("t", PARTITIONS_PER_TOPIC_MAX + 1, 1),
            ErrorCode::InvalidPartitions,
        );
        refuse(
            &mut state,
            create("t", 1, 0),
            ErrorCode::InvalidReplicationFactor,
        );
        let message = refuse(
            &mut state,
            create("t", 1, 4),
            ErrorCode::InvalidReplicationFactor,
        );
        assert!(message.contains("3 live"), "{message}");
        let mut configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        configs.insert("no.such.key".to_string(), "1".to_string());
        let message = refuse(
            &mut state,
            MetadataCommand::CreateTopic {
                name: "t".to_string(),
                partitions: 1,
                replication_factor: 1,
                configs,
            },
            ErrorCode::InvalidConfig,
        );
        assert!(message.contains("no.such.key"), "{message}");
        step(&mut state, create("t", 1, 3));
        refuse(&mut state, create("t", 1, 1), ErrorCode::TopicAlreadyExists);
    }

    #[test]
    fn a_topic_grows_with_its_replication_factor_and_never_shrinks() {
        let mut state = cluster_with_brokers(3);
        step(&mut state, create("t", 2, 2));
        let outcome = step(
            &mut state,
            MetadataCommand::CreatePartitions {
                name: "t".to_string(),
                total: 5,
            },
        );
        let CommandOutcome::PartitionsCreated { topic } = outcome else {
            panic!("unexpected {outcome:?}");
        };
        assert_eq!(topic.partitions.len(), 5);
        for (index, partition) in topic.partitions.iter().enumerate() {
            assert_eq!(partition.partition, index as i32);
            assert_eq!(partition.replicas.len(), 2, "{partition:?}");
            assert_eq!(partition.leader, partition.replicas[0]);
        }
        state.validate().expect("the grown state is valid");
        for total in [5, 3, PARTITIONS_PER_TOPIC_MAX + 1] {
            refuse(
                &mut state,
                MetadataCommand::CreatePartitions {
                    name: "t".to_string(),
                    total,
                },
                ErrorCode::InvalidPartitions,
            );
        }
        refuse(
            &mut state,
            MetadataCommand::CreatePartitions {
                name: "missing".to_string(),
                total: 3,
            },
            ErrorCode::UnknownTopicOrPartition,
        );
    }

    #[test]
    fn replication_factor_counts_only_unfenced_brokers() {
        let mut state = cluster_with_brokers(3);
        step(&mut state, MetadataCommand::FenceBroker { broker_id: 3 });
        refuse(
            &mut state,
            create("t", 1, 3),
            ErrorCode::InvalidReplicationFactor,
        );
        let outcome = step(&mut state, create("t", 4, 2));
        let CommandOutcome::TopicCreated { topic } = outcome else {
            panic!("unexpected {outcome:?}");
        };
        assert!(
            topic
                .partitions
                .iter()
                .all(|partition| !partition.replicas.contains(&3))
        );
    }

    #[test]
    fn fencing_moves_leadership_within_the_isr_and_bumps_epochs() {
        let mut state = cluster_with_brokers(3);
        step(&mut state, create("t", 3, 3));
        // Shrink partition 0's ISR to {leader, one follower} so the third replica is out of sync.
        let before = partition(&state, "t", 0);
        let leader = before.leader;
        let in_sync_follower = before.replicas[1];
        let out_of_sync = before.replicas[2];
        step(
            &mut state,
            MetadataCommand::AlterPartitionIsr {
                partition: TopicPartition::new("t", 0),
                leader_id: leader,
                leader_epoch: 0,
                new_isr: vec![leader, in_sync_follower],
            },
        );
        let outcome = step(
            &mut state,
            MetadataCommand::FenceBroker { broker_id: leader },
        );
        let CommandOutcome::BrokerFenced { partitions, .. } = outcome else {
            panic!("unexpected {outcome:?}");
        };
        assert_eq!(partitions.len(), 3, "the broker is in every ISR");
        let after = partition(&state, "t", 0);
        assert_eq!(
            after.leader, in_sync_follower,
            "never the out-of-sync {out_of_sync}"
        );
        assert_eq!(after.isr, vec![in_sync_follower]);
        assert_eq!(after.leader_epoch, before.leader_epoch + 1);
        assert_eq!(after.partition_epoch, before.partition_epoch + 2);
        for index in 1..3 {
            let other = partition(&state, "t", index);
            assert!(!other.isr.contains(&leader));
            assert_ne!(other.leader, leader);
        }
        assert!(state.broker(leader).is_some_and(|broker| broker.fenced));
        // Fencing again changes nothing but the offset.
        let offset = state.metadata_offset;
        let again = step(
            &mut state,
            MetadataCommand::FenceBroker { broker_id: leader },
        );
        assert_eq!(
            again,
            CommandOutcome::BrokerFenced {
                broker_id: leader,
                partitions: vec![]
            }
        );
        assert_eq!(state.metadata_offset, offset + 1);
    }

    #[test]
    fn losing_the_last_isr_member_leaves_the_partition_leaderless_by_default() {
        let mut state = cluster_with_brokers(2);
        step(&mut state, create("t", 2, 2));
        let leader = partition(&state, "t", 0).leader;
        let follower = partition(&state, "t", 0).replicas[1];
        step(
            &mut state,
            MetadataCommand::AlterPartitionIsr {
                partition: TopicPartition::new("t", 0),
                leader_id: leader,
                leader_epoch: 0,
                new_isr: vec![leader],
            },
        );
        step(
            &mut state,
            MetadataCommand::FenceBroker { broker_id: leader },
        );
        let after = partition(&state, "t", 0);
        assert_eq!(
            after.leader, NO_LEADER,
            "the out-of-sync follower {follower} must not lead"
        );
        assert_eq!(
            after.isr,
            vec![leader],
            "the last ISR member stays for a clean election"
        );
        assert_eq!(after.leader_epoch, 1);
        assert!(state.electable_partitions().is_empty());
        let outcome = step(&mut state, MetadataCommand::ElectLeaders);
        assert_eq!(
            outcome,
            CommandOutcome::LeadersElected { partitions: vec![] }
        );

        // The broker comes back: registering unfences it, but leadership returns only through an
        // election, which bumps the epoch again.
        step(
            &mut state,
            MetadataCommand::RegisterBroker {
                broker_id: leader,
                address: "127.0.0.1:9999".to_string(),
                incarnation: 8,
                now_ms: 5_000,
                kafka_address: None,
            },
        );
        assert_eq!(partition(&state, "t", 0).leader, NO_LEADER);
        assert_eq!(
            state.electable_partitions(),
            vec![TopicPartition::new("t", 0)]
        );
        let outcome = step(&mut state, MetadataCommand::ElectLeaders);
        assert_eq!(
            outcome,
            CommandOutcome::LeadersElected {
                partitions: vec![TopicPartition::new("t", 0)]
            }
        );
        let back = partition(&state, "t", 0);
        assert_eq!((back.leader, back.leader_epoch), (leader, 2));
    }

    #[test]
    fn unclean_election_lets_an_out_of_sync_replica_lead_when_enabled() {
        let mut state = cluster_with_brokers(2);
        step(
            &mut state,
            MetadataCommand::CreateTopic {
                name: "t".to_string(),
                partitions: 1,
                replication_factor: 2,
                configs: BTreeMap::from([(
                    "unclean.leader.election.enable".to_string(),
                    "true".to_string(),
                )]),
            },
        );
        let before = partition(&state, "t", 0);
        let (leader, follower) = (before.replicas[0], before.replicas[1]);
        step(
            &mut state,
            MetadataCommand::AlterPartitionIsr {
                partition: TopicPartition::new("t", 0),
                leader_id: leader,
                leader_epoch: 0,
                new_isr: vec![leader],
            },
        );
        step(
            &mut state,
            MetadataCommand::FenceBroker { broker_id: leader },
        );
        let after = partition(&state, "t", 0);
        assert_eq!(
            (after.leader, after.isr.clone(), after.leader_epoch),
            (follower, vec![follower], 1)
        );
    }

    #[test]
    fn alter_isr_is_refused_from_a_stale_or_wrong_leader() {
        let mut state = cluster_with_brokers(3);
        step(&mut state, create("t", 1, 3));
        let current = partition(&state, "t", 0);
        let tp = TopicPartition::new("t", 0);
        let alter = |leader_id: i32, leader_epoch: i32, new_isr: Vec<i32>| {
            MetadataCommand::AlterPartitionIsr {
                partition: tp.clone(),
                leader_id,
                leader_epoch,
                new_isr,
            }
        };
        let leader = current.leader;
        let follower = current.replicas[1];
        refuse(
            &mut state,
            alter(leader, 1, vec![leader]),
            ErrorCode::UnknownLeaderEpoch,
        );
        refuse(
            &mut state,
            alter(follower, 0, vec![follower]),
            ErrorCode::NotLeaderOrFollower,
        );
        refuse(
            &mut state,
            alter(leader, 0, vec![follower]),
            ErrorCode::InvalidRequest,
        );
        refuse(
            &mut state,
            alter(leader, 0, vec![leader, leader]),
            ErrorCode::InvalidRequest,
        );
        refuse(
            &mut state,
            alter(leader, 0, vec![leader, 42]),
            ErrorCode::InvalidRequest,
        );
        refuse(
            &mut state,
            MetadataCommand::AlterPartitionIsr {
                partition: TopicPartition::new("t", 5),
                leader_id: leader,
                leader_epoch: 0,
                new_isr: vec![leader],
            },
            ErrorCode::UnknownTopicOrPartition,
        );
        // A leadership change makes the old epoch stale.
        step(
            &mut state,
            MetadataCommand::FenceBroker { broker_id: leader },
        );
        refuse(
            &mut state,
            alter(leader, 0, vec![leader]),
            ErrorCode::FencedLeaderEpoch,
        );
        let new_leader = partition(&state, "t", 0).leader;
        // A fenced broker cannot be added back.
        refuse(
            &mut state,
            alter(new_leader, 1, vec![new_leader, leader]),
            ErrorCode::InvalidRequest,
        );
        step(
            &mut state,
            MetadataCommand::UnfenceBroker { broker_id: leader },
        );
        let outcome = step(&mut state, alter(new_leader, 1, vec![leader, new_leader]));
        let CommandOutcome::PartitionIsrAltered { state: altered, .. } = outcome else {
            panic!("unexpected {outcome:?}");
        };
        assert_eq!(altered.isr.len(), 2);
        assert_eq!(
            altered.leader, new_leader,
            "an ISR change is not a leadership change"
        );
        assert_eq!(altered.leader_epoch, 1);
    }

    #[test]
    fn a_heartbeat_reporting_an_offline_log_directory_fences_the_broker_until_it_restarts() {
        let mut state = cluster_with_brokers(3);
        step(&mut state, create("t", 2, 3));
        let leader = partition(&state, "t", 0).leader;
        let epoch = state
            .broker(leader)
            .map(|broker| broker.broker_epoch)
            .unwrap();
        let outcome = step(
            &mut state,
            MetadataCommand::BrokerHeartbeat {
                broker_id: leader,
                broker_epoch: epoch,
                now_ms: 2_000,
                offline_log_dirs: vec!["/data/logs".to_string()],
            },
        );
        assert_eq!(
            outcome,
            CommandOutcome::HeartbeatAccepted {
                broker_id: leader,
                fenced: true
            }
        );
        let broker = state.broker(leader).unwrap().clone();
        assert_eq!(broker.offline_log_dirs, ["/data/logs"]);
        let after = partition(&state, "t", 0);
        assert_ne!(after.leader, leader, "leadership moved at once");
        assert!(!after.isr.contains(&leader));
        // Healthy heartbeats do not clear what the process saw fail, so liveness never unfences
        // it; only a new registration (a restart, which recovers the logs) does.
        step(
            &mut state,
            MetadataCommand::BrokerHeartbeat {
                broker_id: leader,
                broker_epoch: epoch,
                now_ms: 2_100,
                offline_log_dirs: Vec::new(),
            },
        );
        assert!(
            !crate::broker_liveness::liveness_commands(&state, 2_200, 0, 4_000)
                .contains(&MetadataCommand::UnfenceBroker { broker_id: leader })
        );
        step(
            &mut state,
            MetadataCommand::RegisterBroker {
                broker_id: leader,
                address: "h:1".to_string(),
                incarnation: 99,
                now_ms: 3_000,
                kafka_address: None,
            },
        );
        let restarted = state.broker(leader).unwrap();
        assert!(restarted.offline_log_dirs.is_empty() && !restarted.fenced);
    }

    #[test]
    fn heartbeats_need_the_current_broker_epoch() {
        let mut state = cluster_with_brokers(1);
        let epoch = state
            .broker(1)
            .map(|broker| broker.broker_epoch)
            .unwrap_or_default();
        step(
            &mut state,
            MetadataCommand::BrokerHeartbeat {
                broker_id: 1,
                broker_epoch: epoch,
                now_ms: 2_000,
                offline_log_dirs: Vec::new(),
            },
        );
        assert_eq!(
            state.broker(1).map(|broker| broker.last_heartbeat_ms),
            Some(2_000)
        );
        // An older clock reading does not move the session back.
        step(
            &mut state,
            MetadataCommand::BrokerHeartbeat {
                broker_id: 1,
                broker_epoch: epoch,
                now_ms: 1_500,
                offline_log_dirs: Vec::new(),
            },
        );
        assert_eq!(
            state.broker(1).map(|broker| broker.last_heartbeat_ms),
            Some(2_000)
        );
        refuse(
            &mut state,
            MetadataCommand::BrokerHeartbeat {
                broker_id: 1,
                broker_epoch: epoch - 1,
                now_ms: 3_000,
                offline_log_dirs: Vec::new(),
            },
            ErrorCode::InvalidRequest,
        );
        refuse(
            &mut state,
            MetadataCommand::BrokerHeartbeat {
                broker_id: 9,
                broker_epoch: epoch,
                now_ms: 3_000,
                offline_log_dirs: Vec::new(),
            },
            ErrorCode::InvalidRequest,
        );
    }

    #[test]
    fn reregistering_the_same_incarnation_is_a_retry_and_a_new_one_fences_first() {
        let mut state = cluster_with_brokers(2);
        step(&mut state, create("t", 2, 2));
        let epoch = state
            .broker(1)
            .map(|broker| broker.broker_epoch)
            .unwrap_or_default();
        assert_eq!(
            register(&mut state, 1, 3_000),
            epoch,
            "same incarnation keeps its epoch"
        );
        let leaders_before: Vec<i32> = (0..2)
            .map(|index| partition(&state, "t", index).leader)
            .collect();
        assert_eq!(
            leaders_before.iter().filter(|&&leader| leader == 1).count(),
            1
        );

        let outcome = step(
            &mut state,
            MetadataCommand::RegisterBroker {
                broker_id: 1,
                address: "127.0.0.1:9001".to_string(),
                incarnation: 99,
                now_ms: 4_000,
                kafka_address: None,
            },
        );
        let CommandOutcome::BrokerRegistered { broker_epoch, .. } = outcome else {
            panic!("unexpected {outcome:?}");
        };
        assert!(broker_epoch > epoch);
        for index in 0..2 {
            let after = partition(&state, "t", index);
            assert_ne!(
                after.leader, 1,
                "the restarted broker leads nothing until elected"
            );
            assert!(!after.isr.contains(&1));
        }
        assert!(state.broker(1).is_some_and(|broker| !broker.fenced));
    }

    #[test]
    fn topic_configs_are_checked_against_the_known_keys() {
        let mut state = cluster_with_brokers(1);
        step(&mut state, create("t", 1, 1));
        let alter = |set: &[(&str, &str)], delete: &[&str]| MetadataCommand::AlterTopicConfigs {
            name: "t".to_string(),
            set: set
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            delete: delete.iter().map(|key| key.to_string()).collect(),
        };
        step(
            &mut state,
            alter(
                &[("retention.ms", "1000"), ("segment.bytes", "1048576")],
                &[],
            ),
        );
        step(&mut state, alter(&[], &["segment.bytes"]));
        assert_eq!(
            state.topic("t").map(|topic| topic.configs.clone()),
            Some(BTreeMap::from([(
                "retention.ms".to_string(),
                "1000".to_string()
            )]))
        );
        refuse(
            &mut state,
            alter(&[("retention.msx", "1")], &[]),
            ErrorCode::InvalidConfig,
        );
        refuse(&mut state, alter(&[], &["nope"]), ErrorCode::InvalidConfig);
        refuse(
            &mut state,
            alter(&[("unclean.leader.election.enable", "yes")], &[]),
            ErrorCode::InvalidConfig,
        );
        refuse(
            &mut state,
            MetadataCommand::AlterTopicConfigs {
                name: "missing".to_string(),
                set: BTreeMap::new(),
                delete: vec![],
            },
            ErrorCode::UnknownTopicOrPartition,
        );
        step(
            &mut state,
            MetadataCommand::DeleteTopic {
                name: "t".to_string(),
            },
        );
        refuse(
            &mut state,
            MetadataCommand::DeleteTopic {
                name: "t".to_string(),
            },
            ErrorCode::UnknownTopicOrPartition,
        );
    }

    #[test]
    fn broker_registration_is_validated() {
        let mut state = cluster_with_brokers(0);
        for address in ["localhost", ":9092", "host:0", "host:port", "host:70000"] {
            refuse(
                &mut state,
                MetadataCommand::RegisterBroker {
                    broker_id: 1,
                    address: address.to_string(),
                    incarnation: 1,
                    now_ms: 0,
                    kafka_address: None,
                },
                ErrorCode::InvalidRequest,
            );
        }
        refuse(
            &mut state,
            MetadataCommand::RegisterBroker {
                broker_id: -1,
                address: "h:1".to_string(),
                incarnation: 1,
                now_ms: 0,
                kafka_address: None,
            },
            ErrorCode::InvalidRequest,
        );
    }

    #[test]
    fn state_round_trips_through_json_unchanged() {
        let mut state = cluster_with_brokers(3);
        step(&mut state, create("t", 3, 2));
        let bytes = serde_json::to_vec(&state).expect("serialises");
        let back: MetadataState = serde_json::from_slice(&bytes).expect("deserialises");
        assert_eq!(back, state);
        let error = CommandRejected::new(ErrorCode::InvalidConfig, "bad");
        let bytes = serde_json::to_vec(&error).expect("serialises");
        assert_eq!(
            serde_json::from_slice::<CommandRejected>(&bytes).ok(),
            Some(error)
        );
    }
}
