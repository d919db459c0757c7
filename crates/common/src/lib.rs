//! Types every Strata crate shares.
//!
//! This crate does no IO and depends on nothing of Strata's. It holds the vocabulary that crosses
//! crate boundaries: the wire [`ErrorCode`], the [`TopicPartition`] name of a partition, and the [`Clock`]
//! through which every core reads time.

mod clock;
mod error_code;
mod key_partition;
mod topic_partition;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error_code::ErrorCode;
pub use key_partition::{murmur2, partition_for_key};
pub use topic_partition::{
    INTERNAL_TOPIC_PREFIX, TopicPartition, is_internal_topic, validate_topic_name,
};
