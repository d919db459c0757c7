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
//! is JSON, `{"version":1,"record":{...}}`, the record tagged with its format version.
//!
//! Versions: a coordinator reads every version in [`SUPPORTED_FORMAT_VERSIONS`] and refuses any
//! other with [`RecordDecodeError::UnsupportedVersion`] rather than guess at bytes a newer
//! broker wrote (loading then fails, so the partition is not coordinated from half a state).
//! Within a version new fields must be optional (`#[serde(default)]`); anything else is a new
//! version, and the golden files in `tests/golden/` fail until it is one.
//!
//! Records written before the version was added are the bare record, `{"OffsetCommit":{...}}`,
//! and deployed logs hold them. Their content is exactly version 1's (the version was only
//! made explicit), so they read as version 1; an unversioned value can be told apart because
//! its only top-level key is a record kind, never `version`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
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

/// The format version this coordinator writes.
pub const FORMAT_VERSION: u32 = 1;
/// The format versions this coordinator reads (unversioned records are version 1).
pub const SUPPORTED_FORMAT_VERSIONS: RangeInclusive<u32> = 1..=FORMAT_VERSION;

#[derive(Debug, PartialEq, Eq)]
pub enum RecordDecodeError {
    /// Not a coordinator record of the version it claims (or not JSON at all).
    Malformed(String),
    /// A format version this coordinator does not read, most likely written by a newer broker.
    UnsupportedVersion {
        found: u64,
        supported: RangeInclusive<u32>,
    },
}

impl std::fmt::Display for RecordDecodeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordDecodeError::Malformed(reason) => {
                write!(formatter, "undecodable coordinator record: {reason}")
            }
            RecordDecodeError::UnsupportedVersion { found, supported } => write!(
                formatter,
                "coordinator record format version {found} is not supported: this broker reads versions {} to {} (and unversioned records as version 1); a newer broker probably wrote it, so upgrade this one before it coordinates the partition",
                supported.start(),
                supported.end()
            ),
        }
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
        let versioned = Versioned {
            version: FORMAT_VERSION,
            record: self,
        };
        serde_json::to_vec(&versioned).expect("coordinator records always serialize")
    }

    pub fn decode_value(bytes: &[u8]) -> Result<CoordinatorRecord, RecordDecodeError> {
        let malformed = |error: serde_json::Error| RecordDecodeError::Malformed(error.to_string());
        // A first pass reads only the version (skipping the rest without building it), so the
        // record is parsed once, by the version it claims.
        let probe: VersionProbe = serde_json::from_slice(bytes).map_err(malformed)?;
        match probe.version {
            None => serde_json::from_slice(bytes).map_err(malformed),
            Some(version)
                if u32::try_from(version)
                    .is_ok_and(|version| SUPPORTED_FORMAT_VERSIONS.contains(&version)) =>
            {
                let versioned: Versioned<CoordinatorRecord> =
                    serde_json::from_slice(bytes).map_err(malformed)?;
                Ok(versioned.record)
            }
            Some(found) => Err(RecordDecodeError::UnsupportedVersion {
                found,
                supported: SUPPORTED_FORMAT_VERSIONS,
            }),
        }
    }
}

/// A record as stored: its format version first, so a reader sees it before the record.
#[derive(Serialize, Deserialize)]
struct Versioned<R> {
    version: u32,
    record: R,
}

/// Just the version of a stored record; `None` for the unversioned records of before.
#[derive(Deserialize)]
struct VersionProbe {
    #[serde(default)]
    version: Option<u64>,
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
