//! The records a coordinator writes to its partition of `__consumer_offsets`, and their bytes.
//!
//! The coordinator's state is exactly what replaying these records from the partition's log
//! start produces: `CoordinatorShard` changes itself only by replaying records, both when it
//! loads and when it serves a request, so a failover rebuilds the same state the old
//! coordinator had. A `Snapshot` record replaces everything before it; once it is replicated the
//! log start moves up to it, which bounds the log (and so the failover time) whatever the
//! commit history's length.
//!
//! Encoding: the record key names what the record is about (`offset/<group>/<topic>/<partition>`,
//! `group/<group>`, `snapshot`), so `strata consume __consumer_offsets` is readable; the value
//! is the record as JSON. Format version 1; new fields must be optional.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use strata_common::TopicPartition;

use crate::assignor::Assignment;
use crate::share::StoredSharePartition;

/// A committed offset: the next offset the group will read from the partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    /// The leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member as the group stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub member_epoch: i32,
    /// The epoch before the last bump: a member whose heartbeat response was lost still uses it.
    pub previous_member_epoch: i32,
    pub subscribed_topics: BTreeSet<String>,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// Partitions the member may consume now.
    pub assigned: Assignment,
    /// Partitions taken from the member that it has not confirmed releasing yet. Nobody else
    /// gets them until it does (or is removed).
    pub revoking: Assignment,
    /// Where the assignor wants the member to end up.
    pub target: Assignment,
    /// A static member that left with epoch -2: its partitions wait for it until the session
    /// timeout instead of moving.
    pub left_temporarily: bool,
}

/// A consumer group's membership as stored (its offsets are separate records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub group_id: String,
    /// Bumped whenever membership, subscriptions or subscribed topics' partitions change.
    pub group_epoch: i32,
    /// The group epoch the members' targets were computed for.
    pub assignment_epoch: i32,
    pub assignor: String,
    /// Partition counts of the subscribed topics when the target was computed.
    pub partition_counts: BTreeMap<String, i32>,
    pub members: BTreeMap<String, MemberState>,
}

impl GroupState {
    pub fn new(group_id: &str, assignor: &str) -> GroupState {
        GroupState {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: assignor.to_string(),
            partition_counts: BTreeMap::new(),
            members: BTreeMap::new(),
        }
    }
}

/// One group's offsets inside a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffsets {
    pub group_id: String,
    pub offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordinatorRecord {
    /// `None` deletes the offset.
    OffsetCommit {
        group_id: String,
        topic_partition: TopicPartition,
        value: Option<OffsetAndMetadata>,
    },
    /// The group's whole membership; `None` deletes the group and its offsets.
    Group {
        group_id: String,
        value: Option<GroupState>,
    },
    /// Everything the shard holds; replaces all state before it.
    Snapshot {
        groups: Vec<GroupState>,
        offsets: Vec<GroupOffsets>,
        #[serde(default)]
        share: Vec<ShareStateEntry>,
    },
    /// A share group's window on one partition; `None` deletes it.
    ShareState {
        group_id: String,
        topic_partition: TopicPartition,
        value: Option<StoredSharePartition>,
    },
}

/// One share partition inside a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareStateEntry {
    pub group_id: String,
    pub topic_partition: TopicPartition,
    pub state: StoredSharePartition,
}

#[derive(Debug, PartialEq, Eq)]
pub struct RecordDecodeError(pub String);

impl std::fmt::Display for RecordDecodeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "undecodable coordinator record: {}", self.0)
    }
}

impl std::error::Error for RecordDecodeError {}

impl CoordinatorRecord {
    pub fn key(&self) -> String {
        match self {
            CoordinatorRecord::OffsetCommit {
                group_id,
                topic_partition,
                ..
            } => format!(
                "offset/{group_id}/{}/{}",
                topic_partition.topic, topic_partition.partition
            ),
            CoordinatorRecord::Group { group_id, .. } => format!("group/{group_id}"),
            CoordinatorRecord::Snapshot { .. } => "snapshot".to_string(),
            CoordinatorRecord::ShareState {
                group_id,
                topic_partition,
                ..
            } => format!(
                "share/{group_id}/{}/{}",
                topic_partition.topic, topic_partition.partition
            ),
        }
    }

    pub fn encode_value(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("coordinator records always serialize")
    }

    pub fn decode_value(bytes: &[u8]) -> Result<CoordinatorRecord, RecordDecodeError> {
        serde_json::from_slice(bytes).map_err(|error| RecordDecodeError(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_bytes() {
        let mut group = GroupState::new("g", "uniform");
        group.members.insert(
            "m".to_string(),
            MemberState {
                member_id: "m".to_string(),
                instance_id: Some("i".to_string()),
                member_epoch: 3,
                previous_member_epoch: 2,
                subscribed_topics: ["t".to_string()].into(),
                rebalance_timeout_ms: 1000,
                session_timeout_ms: 1000,
                assigned: [TopicPartition::new("t", 0)].into(),
                revoking: Assignment::new(),
                target: [TopicPartition::new("t", 0)].into(),
                left_temporarily: false,
            },
        );
        let offset = OffsetAndMetadata {
            offset: 42,
            leader_epoch: 1,
            metadata: "m".to_string(),
            commit_timestamp: 7,
        };
        let records = [
            CoordinatorRecord::OffsetCommit {
                group_id: "g".to_string(),
                topic_partition: TopicPartition::new("t", 0),
                value: Some(offset.clone()),
            },
            CoordinatorRecord::Group {
                group_id: "g".to_string(),
                value: Some(group.clone()),
            },
            CoordinatorRecord::Snapshot {
                groups: vec![group],
                offsets: vec![GroupOffsets {
                    group_id: "g".to_string(),
                    offsets: vec![(TopicPartition::new("t", 0), offset)],
                }],
                share: Vec::new(),
            },
        ];
        for record in records {
            let decoded = CoordinatorRecord::decode_value(&record.encode_value()).unwrap();
            assert_eq!(decoded, record);
        }
        assert_eq!(
            CoordinatorRecord::OffsetCommit {
                group_id: "g".to_string(),
                topic_partition: TopicPartition::new("t", 3),
                value: None
            }
            .key(),
            "offset/g/t/3"
        );
        assert!(CoordinatorRecord::decode_value(b"{not json").is_err());
    }
}
