//! The plain data the client exchanges with brokers and hands to applications: descriptions of
//! the cluster, its topics and configs, of consumer and share groups, the committed offsets they
//! hold, a topic to create, and the id and epoch an idempotent producer stamps on its batches.
//!
//! Values only, no IO: the transport (`grpc`) converts to and from them, and the clients that
//! return or take them (the admin client, the consumers, the producer) sit above it, so keeping
//! them here lets the transport stay below every client.

use std::collections::{BTreeMap, BTreeSet};

use strata_common::TopicPartition;

/// One broker of the cluster, as clients should reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerNode {
    pub node_id: i32,
    /// `host:port` the broker advertises to clients.
    pub address: String,
    /// A fenced broker is registered but must not lead partitions (it lost its controller lease).
    pub fenced: bool,
    /// Log directories the broker reported failed; it stays fenced until it restarts.
    pub offline_log_dirs: Vec<String>,
}

/// One partition of a topic with its leadership and replication state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// `None` while no broker leads the partition (during an election).
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    /// Every broker that holds a replica, preferred leader first.
    pub replicas: Vec<i32>,
    /// The replicas caught up with the leader (in-sync replicas).
    pub isr: Vec<i32>,
}

/// A topic and its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    /// Sorted by partition number.
    pub partitions: Vec<PartitionInfo>,
}

/// The cluster's identity and membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    /// The active controller, when one is elected.
    pub controller_id: Option<i32>,
    /// Sorted by node id.
    pub brokers: Vec<BrokerNode>,
}

/// A topic to create.
///
/// ```
/// use strata_client::NewTopic;
///
/// let topic = NewTopic::new("orders", 6, 3).config("retention.ms", "86400000");
/// assert_eq!(topic.configs["retention.ms"], "86400000");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configs by Kafka's names, e.g. `retention.ms`.
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: BTreeMap::new(),
        }
    }

    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// A user and the SCRAM mechanisms it has credentials for, with their iteration counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDescription {
    pub user: String,
    pub mechanisms: Vec<(strata_auth::Mechanism, u32)>,
}

/// One config of a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    /// The value is the broker's default, not set on the topic.
    pub is_default: bool,
}

/// A committed offset: the next offset the group reads from the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    /// Free text stored with the offset (at most 4096 bytes).
    pub metadata: String,
}

impl OffsetAndMetadata {
    pub fn new(offset: i64) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }

    pub fn with_metadata(offset: i64, metadata: impl Into<String>) -> OffsetAndMetadata {
        OffsetAndMetadata {
            metadata: metadata.into(),
            ..OffsetAndMetadata::new(offset)
        }
    }
}

/// One group as `Admin::list_groups` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `Empty`, `Assigning`, `Reconciling` or `Stable`.
    pub state: String,
    pub members: usize,
    /// `consumer` or `share`.
    pub group_type: String,
}

/// A group's members, assignment and committed offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub coordinator_id: i32,
    pub members: Vec<MemberDescription>,
    pub offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub member_epoch: i32,
    pub subscribed_topics: Vec<String>,
    /// Partitions the member consumes now.
    pub assignment: BTreeSet<TopicPartition>,
    /// Partitions it is giving up.
    pub revoking: BTreeSet<TopicPartition>,
    /// Where the assignor wants it to end up.
    pub target: BTreeSet<TopicPartition>,
}

/// One partition of a share group as `Admin::describe_share_group` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharePartitionDescription {
    pub topic_partition: TopicPartition,
    /// Everything below is acknowledged or dead-lettered.
    pub start_offset: i64,
    /// The next offset not yet delivered.
    pub fetch_offset: i64,
    /// Delivered and not settled yet (in flight).
    pub acquired: usize,
    /// Waiting for redelivery.
    pub available: usize,
}

/// A share group's members, windows and counters (since its coordinator loaded it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareGroupDescription {
    pub group_id: String,
    pub coordinator_id: i32,
    pub members: Vec<String>,
    pub partitions: Vec<SharePartitionDescription>,
    pub delivered: u64,
    pub acknowledged: u64,
    pub dead_lettered: u64,
}

/// The identity an idempotent producer stamps on its batches (Kafka's `ProducerIdAndEpoch`),
/// obtained from `InitProducerId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}
