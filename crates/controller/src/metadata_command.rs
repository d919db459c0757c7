//! The commands of the metadata log and what applying one produced.
//!
//! A command is the unit the controller quorum agrees on: it is appended to the Raft log, and every
//! controller applies it to its own [`crate::MetadataState`]. Applying must give the same result
//! everywhere, so a command carries every input that is not already in the state — in particular
//! every time value, read from a `Clock` by whoever proposes it, never by the state machine.

use crate::metadata_state::{PartitionMetadata, TopicMetadata};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strata_auth::{AclBinding, AclFilter, Mechanism, ScramCredential};
use strata_common::TopicPartition;

/// One change to the cluster metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// Names the cluster. Proposed once by the first Raft leader; refused once a cluster id is
    /// set, so concurrent proposals cannot rename it.
    InitializeCluster {
        cluster_id: String,
    },
    /// A broker process announces itself. `incarnation` changes on every process start (a random
    /// number, say); the same incarnation registering again is a retry and keeps its broker epoch,
    /// a new one gets a new broker epoch and is unfenced. A new incarnation of a broker that was
    /// unfenced is first fenced, because the restarted process may have lost unflushed data: the
    /// partitions it led come back to it only through an election.
    RegisterBroker {
        broker_id: i32,
        address: String,
        incarnation: u64,
        now_ms: i64,
        /// `host:port` of the broker's Kafka listener, when it opens one. Added within format
        /// version 1: absent (and not written) when the broker has none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kafka_address: Option<String>,
    },
    /// Keeps a broker's session alive. Refused for an unknown broker or a stale broker epoch.
    /// A broker whose log directory failed says so in `offline_log_dirs`: it is fenced at once
    /// (its leaderships move, it leaves every ISR it can) and stays fenced while any is offline.
    BrokerHeartbeat {
        broker_id: i32,
        broker_epoch: i64,
        now_ms: i64,
        /// Added within format version 1: absent (and not written) when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        offline_log_dirs: Vec<String>,
    },
    /// Takes a broker out of service (its session expired): leadership of its partitions moves to
    /// another in-sync replica and it leaves every ISR it can leave. Issued by the controller leader.
    FenceBroker {
        broker_id: i32,
    },
    /// Puts a fenced broker back in service. Partitions it could lead come back through
    /// [`MetadataCommand::ElectLeaders`].
    UnfenceBroker {
        broker_id: i32,
    },
    /// The broker is stopping (Kafka's controlled shutdown): it is fenced at once, so its
    /// leaderships move to other in-sync replicas before it goes rather than a session timeout
    /// after, and it stays fenced, however fresh its last heartbeat, until it registers again.
    /// Sent by the broker itself; one from another registration (broker epoch) is refused.
    /// Added within format version 1.
    ControlledShutdown {
        broker_id: i32,
        broker_epoch: i64,
    },
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Sets then deletes topic config overrides.
    AlterTopicConfigs {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// The partition leader's request to change the ISR (Kafka's AlterPartition). Refused unless
    /// it comes from the current leader in the current leader epoch.
    AlterPartitionIsr {
        partition: TopicPartition,
        leader_id: i32,
        leader_epoch: i32,
        new_isr: Vec<i32>,
    },
    /// Elects a leader for every leaderless partition that has an eligible replica: an unfenced
    /// ISR member, or with `unclean.leader.election.enable=true` any unfenced replica.
    ElectLeaders,
    /// Grows a topic to `total` partitions (Kafka's CreatePartitions); partitions are never
    /// removed. The new ones get the topic's replication factor over the live brokers.
    /// Added within format version 1: a controller from before it cannot apply it, so a
    /// mixed-version cluster must not be asked to grow a topic.
    CreatePartitions {
        name: String,
        total: i32,
    },
    /// Sets `user`'s SCRAM credential for the credential's mechanism, creating the user (Kafka's
    /// AlterUserScramCredentials upsertion). The credential is the salted, iterated form; the
    /// password never reaches the metadata. Added within format version 1, like
    /// `CreatePartitions`: a mixed-version cluster must not be asked to change users.
    UpsertScramCredential {
        user: String,
        credential: ScramCredential,
    },
    /// Removes `user`'s credential for `mechanism`; the user is gone with its last one. Refused
    /// with RESOURCE_NOT_FOUND when there is none. Added within format version 1.
    DeleteScramCredential {
        user: String,
        mechanism: Mechanism,
    },
    /// Adds ACL bindings (Kafka's CreateAcls); a binding already present changes nothing. Every
    /// binding must pass [`AclBinding::validate`], or the whole command is refused. Added within
    /// format version 1.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Removes the bindings each filter matches (Kafka's DeleteAcls). Added within format
    /// version 1.
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
}

/// What an applied command changed; the proposer gets it back from [`crate::Controller::submit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    ClusterInitialized {
        cluster_id: String,
    },
    BrokerRegistered {
        broker_id: i32,
        broker_epoch: i64,
    },
    HeartbeatAccepted {
        broker_id: i32,
        fenced: bool,
    },
    /// `partitions`: those whose leader or ISR changed.
    BrokerFenced {
        broker_id: i32,
        partitions: Vec<TopicPartition>,
    },
    BrokerUnfenced {
        broker_id: i32,
    },
    TopicCreated {
        topic: TopicMetadata,
    },
    TopicDeleted {
        name: String,
        topic_id: String,
    },
    TopicConfigsAltered {
        name: String,
        configs: BTreeMap<String, String>,
    },
    PartitionsCreated {
        topic: TopicMetadata,
    },
    ScramCredentialsChanged {
        user: String,
    },
    AclsCreated {
        count: usize,
    },
    /// For each filter, in order, the bindings it removed.
    AclsDeleted {
        deleted: Vec<Vec<AclBinding>>,
    },
    PartitionIsrAltered {
        partition: TopicPartition,
        state: PartitionMetadata,
    },
    /// `partitions`: those that got a new leader.
    LeadersElected {
        partitions: Vec<TopicPartition>,
    },
}
