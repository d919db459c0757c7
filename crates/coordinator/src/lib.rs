//! The group coordinator's pure core (no IO, no clock, no async).
//!
//! - [`shard::CoordinatorShard`]: the consumer groups of one `__consumer_offsets` partition —
//!   KIP-848 membership with member epochs, server-side assignment, incremental reconciliation,
//!   static membership, committed offsets — driven by requests and the time passed in.
//! - [`classic::ClassicGroup`]: one group of Kafka's classic protocol (JoinGroup, SyncGroup,
//!   Heartbeat, LeaveGroup) with client-side assignment; the shard holds them beside its KIP-848
//!   groups, in memory only.
//! - [`assignor`]: the `uniform` (sticky, balanced) and `range` assignors.
//! - [`records`]: the records that make a shard durable, and their bytes.
//!
//! The broker owns the IO: it finds the coordinator for a group ([`partition_for_group`]),
//! appends the records a shard returns to the partition with `acks=all`, answers only after
//! they are replicated, and rebuilds a shard by replaying its partition when it becomes leader.

pub mod assignor;
pub mod classic;
pub mod records;
pub mod shard;
pub mod share;

pub use assignor::{Assignment, Assignor};
pub use records::{CoordinatorRecord, GroupState, MemberState, OffsetAndMetadata};
pub use shard::{
    CoordinatorConfig, CoordinatorError, CoordinatorShard, GroupDescription, GroupStateName,
    HeartbeatRequest, HeartbeatResponse,
};

/// The internal topic that stores group membership and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The `__consumer_offsets` partition whose leader coordinates `group_id`. Stable forever: it
/// decides where a group's state lives.
pub fn partition_for_group(group_id: &str, partitions: i32) -> i32 {
    (crc32fast::hash(group_id.as_bytes()) % partitions.max(1) as u32) as i32
}
