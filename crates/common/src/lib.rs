//! Types every Strata crate shares.
//!
//! This crate does no IO and depends on nothing of Strata's. It holds the vocabulary that crosses
//! crate boundaries: the wire [`ErrorCode`] and the [`TopicPartition`] name of a partition.

mod error_code;
mod topic_partition;

pub use error_code::ErrorCode;
pub use topic_partition::{TopicPartition, validate_topic_name};
