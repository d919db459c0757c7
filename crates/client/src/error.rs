//! The client's error type.
//!
//! Errors the broker reports carry its wire [`ErrorCode`] and message unchanged, so a caller can
//! branch on the code and an operator can look the number up in Kafka's documentation. Everything
//! else (the network, deadlines, bad configuration, bad arguments) has its own variant.
//!
//! `Error` is `Clone` because one failed produce request fails every record of every batch in it:
//! each record's [`DeliveryFuture`](crate::DeliveryFuture) gets its own copy.

use std::time::Duration;

use strata_common::{ErrorCode, TopicPartition};
use strata_record::BatchError;

/// Everything that can go wrong in the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The broker refused the request, or one partition of it.
    #[error("{code}: {message}")]
    Broker { code: ErrorCode, message: String },

    /// The network failed: the broker could not be reached or the connection broke.
    #[error("cannot reach broker at {address}: {message}")]
    Transport { address: String, message: String },

    /// An operation did not complete in time.
    #[error("timed out after {} ms {operation}", elapsed.as_millis())]
    Timeout {
        operation: String,
        elapsed: Duration,
    },

    /// The configuration given to a builder is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// An argument is not acceptable (a bad topic name, a partition that does not exist, …).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A record is larger than the producer may ever send or buffer.
    #[error("record is {size} bytes, larger than the limit of {max} bytes ({limit})")]
    RecordTooLarge {
        size: usize,
        max: usize,
        limit: &'static str,
    },

    /// A fetched batch failed its CRC or framing check: the bytes cannot be trusted.
    #[error("corrupt batch in {topic_partition}: {source}")]
    CorruptBatch {
        topic_partition: TopicPartition,
        source: BatchError,
    },

    /// The consumer has no position for a partition and `auto_offset_reset` is `None`.
    #[error("no committed or requested offset for {0} and auto_offset_reset is none")]
    NoOffsetForPartition(TopicPartition),

    /// The partition is not assigned to this consumer.
    #[error("{0} is not assigned to this consumer")]
    NotAssigned(TopicPartition),

    /// The producer was closed; it accepts no more records.
    #[error("the producer is closed")]
    ProducerClosed,
}

/// `Result` with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The broker's error code, when the broker reported the error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same operation may succeed: the broker said so (a leader moved, a
    /// topic is still being created), the network failed, or a deadline passed. Errors in the
    /// request itself are not retriable.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Broker { code, .. } => code.is_retriable(),
            Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::Config(_)
            | Error::InvalidInput(_)
            | Error::RecordTooLarge { .. }
            | Error::CorruptBatch { .. }
            | Error::NoOffsetForPartition(_)
            | Error::NotAssigned(_)
            | Error::ProducerClosed => false,
        }
    }

    /// Whether the error means the client's view of the cluster is stale, so metadata must be
    /// fetched again before a retry can go to the right broker.
    pub(crate) fn invalidates_metadata(&self) -> bool {
        match self {
            Error::Broker { code, .. } => matches!(
                code,
                ErrorCode::NotLeaderOrFollower
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::LeaderNotAvailable
                    | ErrorCode::FencedLeaderEpoch
                    | ErrorCode::UnknownLeaderEpoch
                    // Replicas left the ISR: the leader may be cut off, and about to lose its
                    // leadership to one of them.
                    | ErrorCode::NotEnoughReplicas
                    | ErrorCode::NotEnoughReplicasAfterAppend
            ),
            Error::Transport { .. } => true,
            _ => false,
        }
    }

    /// Whether the connection the request went over should be dropped: it broke, or it gave
    /// no answer in time. A connection whose peer vanished without a reset (or that a NAT
    /// forgot) never fails by itself, so like Kafka's clients we close it on a request timeout
    /// rather than send the retry down the same silent path.
    pub(crate) fn condemns_connection(&self) -> bool {
        matches!(self, Error::Transport { .. } | Error::Timeout { .. })
    }

    pub(crate) fn broker(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::Broker {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn timeout(operation: impl Into<String>, elapsed: Duration) -> Error {
        Error::Timeout {
            operation: operation.into(),
            elapsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriability_follows_the_code_and_the_kind() {
        assert!(Error::broker(ErrorCode::NotLeaderOrFollower, "moved").is_retriable());
        assert!(Error::broker(ErrorCode::LeaderNotAvailable, "electing").is_retriable());
        assert!(!Error::broker(ErrorCode::InvalidTopicException, "bad").is_retriable());
        assert!(!Error::broker(ErrorCode::OffsetOutOfRange, "range").is_retriable());
        assert!(
            Error::Transport {
                address: "a:1".into(),
                message: "refused".into()
            }
            .is_retriable()
        );
        assert!(Error::timeout("waiting", Duration::from_secs(1)).is_retriable());
        assert!(!Error::InvalidInput("x".into()).is_retriable());
        assert!(!Error::ProducerClosed.is_retriable());
    }

    #[test]
    fn errors_that_mean_leadership_may_have_moved_send_the_client_to_fresh_metadata() {
        for code in [
            ErrorCode::NotLeaderOrFollower,
            ErrorCode::FencedLeaderEpoch,
            ErrorCode::NotEnoughReplicas,
            ErrorCode::NotEnoughReplicasAfterAppend,
        ] {
            assert!(Error::broker(code, "").invalidates_metadata(), "{code}");
        }
        assert!(!Error::broker(ErrorCode::MessageTooLarge, "").invalidates_metadata());
        // A timed-out request drops its connection and refreshes everything.
        let timeout = Error::timeout("waiting", Duration::from_secs(1));
        assert!(timeout.condemns_connection());
    }

    #[test]
    fn broker_errors_show_the_kafka_name_and_number() {
        let error = Error::broker(
            ErrorCode::UnknownTopicOrPartition,
            "topic 'x' does not exist",
        );
        assert_eq!(error.code(), Some(ErrorCode::UnknownTopicOrPartition));
        assert_eq!(
            error.to_string(),
            "UNKNOWN_TOPIC_OR_PARTITION (3): topic 'x' does not exist"
        );
    }
}
