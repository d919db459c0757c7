//! A record as the consumer returns it.

use std::sync::Arc;

use bytes::Bytes;
use strata_common::TopicPartition;
use strata_record::Header;

/// One record read from a partition, with its offset and timestamp resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Shared by every record of a fetch, so decoding a record allocates nothing for it.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch: the producer's timestamp, or the broker's append time
    /// when the topic uses LogAppendTime.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl ConsumerRecord {
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.to_string(), self.partition)
    }
}
