//! A record to send, and where it landed.

use bytes::Bytes;
use strata_common::TopicPartition;
use strata_record::Header;

/// A record for [`Producer::send`](crate::Producer::send).
///
/// `partition` picks the partition explicitly; otherwise records with a key go to the key's
/// partition (Kafka's murmur2 partitioner) and records without one are spread over the topic's
/// partitions. `timestamp` defaults to the time of `send`.
///
/// ```
/// use strata_client::ProducerRecord;
///
/// let record = ProducerRecord::new("orders", "42 widgets")
///     .key("customer-7")
///     .header("trace-id", "abc123")
///     .timestamp(1_700_000_000_000);
/// assert_eq!(record.partition, None);
/// assert_eq!(record.key.as_deref(), Some(&b"customer-7"[..]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    /// `None` is a tombstone: on a compacted topic it deletes the key.
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else set.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A record with a key and no value: deletes the key on a compacted topic.
    pub fn tombstone(topic: impl Into<String>, key: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header; keys may repeat, and order is kept.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    pub fn headers(mut self, headers: Vec<Header>) -> Self {
        self.headers = headers;
        self
    }

    /// Milliseconds since the Unix epoch.
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

/// Where an acknowledged record was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// -1 when the producer uses `acks=0` and so never learns the offset.
    pub offset: i64,
    /// The record's timestamp, or the broker's append time when the topic uses LogAppendTime.
    pub timestamp: i64,
}

impl RecordMetadata {
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}
