//! The wire error codes.
//!
//! Numbers follow Kafka's protocol where Kafka has the error, so operators can map a code to
//! Kafka's documentation. A number, once shipped, never changes meaning and is never reused;
//! names may change.

use std::fmt;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $retriable:literal;)*) => {
        /// A stable error code carried on the wire.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant = $code,)*
        }

        impl ErrorCode {
            /// Every code, for tests that check the table is consistent.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code's number on the wire.
            pub fn code(self) -> i32 {
                self as i32
            }

            /// Kafka's spelling of the code, e.g. `NOT_LEADER_OR_FOLLOWER`.
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            /// Whether a client may retry the same request and expect it to succeed later
            /// (after a metadata refresh or a wait), as opposed to an error in the request itself.
            pub fn is_retriable(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $retriable,)*
                }
            }

            /// Whether the server, not the request or the cluster's state, is at fault: its disk
            /// failed or it hit a bug. Operators need to see these; the rest the client is told.
            pub fn is_server_fault(self) -> bool {
                matches!(self, ErrorCode::UnknownServerError | ErrorCode::KafkaStorageError)
            }

            /// The code for a number received from the wire. Unknown numbers, e.g. from a newer
            /// server, become [`ErrorCode::UnknownServerError`] so the caller still fails cleanly.
            pub fn from_code(code: i32) -> ErrorCode {
                match code {
                    $($code => ErrorCode::$variant,)*
                    _ => ErrorCode::UnknownServerError,
                }
            }
        }
    };
}

error_codes! {
    /// An unexpected server error; the message says more.
    UnknownServerError = -1, "UNKNOWN_SERVER_ERROR", false;
    /// Success.
    None = 0, "NONE", false;
    /// The requested offset is below the log start offset or above the log end offset.
    OffsetOutOfRange = 1, "OFFSET_OUT_OF_RANGE", false;
    /// A batch failed its CRC or structural validation.
    CorruptMessage = 2, "CORRUPT_MESSAGE", false;
    /// The topic or partition does not exist on this cluster.
    UnknownTopicOrPartition = 3, "UNKNOWN_TOPIC_OR_PARTITION", true;
    /// A fetch asked for a negative or zero byte budget.
    InvalidFetchSize = 4, "INVALID_FETCH_SIZE", false;
    /// The partition has no leader at the moment (an election is in progress).
    LeaderNotAvailable = 5, "LEADER_NOT_AVAILABLE", true;
    /// This broker does not lead (or follow) the partition; refresh metadata and retry.
    NotLeaderOrFollower = 6, "NOT_LEADER_OR_FOLLOWER", true;
    /// The request did not complete before its timeout.
    RequestTimedOut = 7, "REQUEST_TIMED_OUT", true;
    /// The batch is larger than the topic's `max.message.bytes`.
    MessageTooLarge = 10, "MESSAGE_TOO_LARGE", false;
    /// The offset metadata string is longer than the coordinator accepts.
    OffsetMetadataTooLarge = 12, "OFFSET_METADATA_TOO_LARGE", false;
    /// The coordinator is still loading the group's state.
    CoordinatorLoadInProgress = 14, "COORDINATOR_LOAD_IN_PROGRESS", true;
    /// No coordinator is available for the group.
    CoordinatorNotAvailable = 15, "COORDINATOR_NOT_AVAILABLE", true;
    /// This broker is not the group's coordinator.
    NotCoordinator = 16, "NOT_COORDINATOR", true;
    /// The topic name is empty, too long, or uses characters outside `[a-zA-Z0-9._-]`.
    InvalidTopicException = 17, "INVALID_TOPIC_EXCEPTION", false;
    /// Fewer in-sync replicas than `min.insync.replicas`; nothing was appended.
    NotEnoughReplicas = 19, "NOT_ENOUGH_REPLICAS", true;
    /// Appended on the leader, but the in-sync replicas shrank below `min.insync.replicas`.
    NotEnoughReplicasAfterAppend = 20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", true;
    /// `acks` was not 0, 1 or -1 (all).
    InvalidRequiredAcks = 21, "INVALID_REQUIRED_ACKS", false;
    /// A classic-group member used a generation that is not the group's current one: it must
    /// rejoin.
    IllegalGeneration = 22, "ILLEGAL_GENERATION", false;
    /// The member's protocol type, or every protocol it supports, does not fit the group's (or
    /// the group uses the other group protocol, classic or KIP-848).
    InconsistentGroupProtocol = 23, "INCONSISTENT_GROUP_PROTOCOL", false;
    /// The group id is empty or too long.
    InvalidGroupId = 24, "INVALID_GROUP_ID", false;
    /// The member is not (or no longer) in the group: it left, or missed heartbeats for its
    /// session timeout. It must rejoin with epoch 0.
    UnknownMemberId = 25, "UNKNOWN_MEMBER_ID", false;
    /// The session timeout is outside the broker's allowed range.
    InvalidSessionTimeout = 26, "INVALID_SESSION_TIMEOUT", false;
    /// The classic group is rebalancing: the member rejoins.
    RebalanceInProgress = 27, "REBALANCE_IN_PROGRESS", false;
    /// The caller may not act on this topic.
    TopicAuthorizationFailed = 29, "TOPIC_AUTHORIZATION_FAILED", false;
    /// The caller may not act on this group.
    GroupAuthorizationFailed = 30, "GROUP_AUTHORIZATION_FAILED", false;
    /// The caller may not make this cluster-level call (an inter-broker API, for instance).
    ClusterAuthorizationFailed = 31, "CLUSTER_AUTHORIZATION_FAILED", false;
    /// The batch's timestamps are not acceptable.
    InvalidTimestamp = 32, "INVALID_TIMESTAMP", false;
    /// The client asked for a SASL mechanism this listener does not enable.
    UnsupportedSaslMechanism = 33, "UNSUPPORTED_SASL_MECHANISM", false;
    /// A SASL request out of order (authenticate before handshake, or anything before either).
    IllegalSaslState = 34, "ILLEGAL_SASL_STATE", false;
    /// The topic already exists.
    TopicAlreadyExists = 36, "TOPIC_ALREADY_EXISTS", false;
    /// The partition count is zero, negative, or a decrease.
    InvalidPartitions = 37, "INVALID_PARTITIONS", false;
    /// The replication factor is zero or larger than the number of brokers.
    InvalidReplicationFactor = 38, "INVALID_REPLICATION_FACTOR", false;
    /// A topic config key is unknown or its value is out of range.
    InvalidConfig = 40, "INVALID_CONFIG", false;
    /// The request is malformed.
    InvalidRequest = 42, "INVALID_REQUEST", false;
    /// The producer's sequence number skipped ahead: a batch in between was lost.
    OutOfOrderSequenceNumber = 45, "OUT_OF_ORDER_SEQUENCE_NUMBER", false;
    /// The batch was already appended; the response carries its original offset.
    DuplicateSequenceNumber = 46, "DUPLICATE_SEQUENCE_NUMBER", false;
    /// A newer producer with the same id has fenced this one.
    InvalidProducerEpoch = 47, "INVALID_PRODUCER_EPOCH", false;
    /// The broker could not read or write its log directory (disk full, IO error).
    KafkaStorageError = 56, "KAFKA_STORAGE_ERROR", true;
    /// Wrong user or password, or a SASL exchange that failed; says no more, on purpose.
    SaslAuthenticationFailed = 58, "SASL_AUTHENTICATION_FAILED", false;
    /// The operation needs an empty group (no members), e.g. resetting or deleting offsets.
    NonEmptyGroup = 68, "NON_EMPTY_GROUP", false;
    /// The group does not exist.
    GroupIdNotFound = 69, "GROUP_ID_NOT_FOUND", false;
    /// The leader epoch in the request is older than the partition's.
    FencedLeaderEpoch = 74, "FENCED_LEADER_EPOCH", true;
    /// The leader epoch in the request is newer than the broker knows.
    UnknownLeaderEpoch = 75, "UNKNOWN_LEADER_EPOCH", true;
    /// The broker epoch in an inter-broker request is not the sender's current one: the sender
    /// restarted, or was fenced and registered again (KIP-380).
    StaleBrokerEpoch = 77, "STALE_BROKER_EPOCH", false;
    /// The batch uses a compression codec this broker does not support.
    UnsupportedCompressionType = 76, "UNSUPPORTED_COMPRESSION_TYPE", false;
    /// KIP-394: a classic member joins first without an id, then again with the one returned.
    MemberIdRequired = 79, "MEMBER_ID_REQUIRED", false;
    /// The group already has as many members as the broker allows.
    GroupMaxSizeReached = 81, "GROUP_MAX_SIZE_REACHED", false;
    /// Another member holds the static instance id (KIP-345): this one was replaced.
    FencedInstanceId = 82, "FENCED_INSTANCE_ID", false;
    /// The offsets cannot be deleted while members of the group consume the topic.
    GroupSubscribedToTopic = 86, "GROUP_SUBSCRIBED_TO_TOPIC", false;
    /// A record inside a batch is malformed, or the batch claims something a client may not
    /// send (a control or transactional batch).
    InvalidRecord = 87, "INVALID_RECORD", false;
    /// The named resource (a user's credential, say) does not exist.
    ResourceNotFound = 91, "RESOURCE_NOT_FOUND", false;
    /// A credential outside what the cluster accepts (iterations out of bounds, an empty salt,
    /// a user name that is not one).
    UnacceptableCredential = 93, "UNACCEPTABLE_CREDENTIAL", false;
    /// The member's epoch is ahead of the coordinator's: it must rejoin.
    FencedMemberEpoch = 110, "FENCED_MEMBER_EPOCH", false;
    /// The server-side assignor named by the member does not exist.
    UnsupportedAssignor = 112, "UNSUPPORTED_ASSIGNOR", false;
    /// The member's epoch is behind the coordinator's, or it no longer owns the partition: it
    /// heartbeats to learn its new assignment, then retries.
    StaleMemberEpoch = 113, "STALE_MEMBER_EPOCH", true;
    /// A share-group acknowledgement for a record the member does not hold (its lock expired,
    /// or another member has it); nothing was changed.
    InvalidRecordState = 121, "INVALID_RECORD_STATE", false;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_names_are_unique_and_round_trip() {
        let mut codes = HashSet::new();
        let mut names = HashSet::new();
        for &error in ErrorCode::ALL {
            assert!(
                codes.insert(error.code()),
                "duplicate code {}",
                error.code()
            );
            assert!(
                names.insert(error.name()),
                "duplicate name {}",
                error.name()
            );
            assert_eq!(ErrorCode::from_code(error.code()), error);
        }
    }

    #[test]
    fn kafka_numbers_never_change() {
        assert_eq!(ErrorCode::OffsetOutOfRange.code(), 1);
        assert_eq!(ErrorCode::UnknownTopicOrPartition.code(), 3);
        assert_eq!(ErrorCode::NotLeaderOrFollower.code(), 6);
        assert_eq!(ErrorCode::MessageTooLarge.code(), 10);
        assert_eq!(ErrorCode::NotEnoughReplicas.code(), 19);
        assert_eq!(ErrorCode::from_code(123_456), ErrorCode::UnknownServerError);
    }
}
