//! The one place where Strata's error codes become gRPC statuses.
//!
//! A whole-request failure is a `tonic::Status` whose `strata-error-code` metadata carries the
//! numeric code; clients decode it from there, not from the message text.

use crate::error::PartitionError;
use strata_common::ErrorCode;
use tonic::{Code, Status};

pub const ERROR_CODE_METADATA: &str = "strata-error-code";

fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::None => Code::Ok,
        ErrorCode::UnknownTopicOrPartition => Code::NotFound,
        ErrorCode::TopicAlreadyExists => Code::AlreadyExists,
        ErrorCode::OffsetOutOfRange => Code::OutOfRange,
        ErrorCode::RequestTimedOut => Code::DeadlineExceeded,
        ErrorCode::NotLeaderOrFollower
        | ErrorCode::LeaderNotAvailable
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::NotCoordinator => Code::Unavailable,
        ErrorCode::FencedLeaderEpoch
        | ErrorCode::UnknownLeaderEpoch
        | ErrorCode::InvalidProducerEpoch
        | ErrorCode::OutOfOrderSequenceNumber
        | ErrorCode::DuplicateSequenceNumber
        | ErrorCode::UnknownMemberId
        | ErrorCode::FencedMemberEpoch
        | ErrorCode::StaleMemberEpoch
        | ErrorCode::NonEmptyGroup
        | ErrorCode::InvalidRecordState => Code::FailedPrecondition,
        ErrorCode::StaleBrokerEpoch => Code::FailedPrecondition,
        ErrorCode::GroupMaxSizeReached => Code::ResourceExhausted,
        ErrorCode::TopicAuthorizationFailed | ErrorCode::ClusterAuthorizationFailed => {
            Code::PermissionDenied
        }
        ErrorCode::GroupIdNotFound => Code::NotFound,
        ErrorCode::KafkaStorageError | ErrorCode::UnknownServerError => Code::Internal,
        ErrorCode::CorruptMessage
        | ErrorCode::InvalidFetchSize
        | ErrorCode::MessageTooLarge
        | ErrorCode::InvalidTopicException
        | ErrorCode::InvalidRequiredAcks
        | ErrorCode::InvalidTimestamp
        | ErrorCode::InvalidPartitions
        | ErrorCode::InvalidReplicationFactor
        | ErrorCode::InvalidConfig
        | ErrorCode::InvalidRequest
        | ErrorCode::UnsupportedCompressionType
        | ErrorCode::InvalidRecord
        | ErrorCode::OffsetMetadataTooLarge
        | ErrorCode::InvalidGroupId
        | ErrorCode::InvalidSessionTimeout
        | ErrorCode::UnsupportedAssignor => Code::InvalidArgument,
    }
}

pub fn to_status(error: PartitionError) -> Status {
    let mut status = Status::new(
        grpc_code(error.code),
        format!("{}: {}", error.code.name(), error.message),
    );
    status.metadata_mut().insert(
        ERROR_CODE_METADATA,
        error
            .code
            .code()
            .to_string()
            .parse()
            .expect("digits are valid metadata"),
    );
    status
}

/// The `(error_code, error_message)` pair of a per-partition result.
pub fn error_fields<T>(result: &Result<T, PartitionError>) -> (i32, String) {
    match result {
        Ok(_) => (ErrorCode::None.code(), String::new()),
        Err(error) => (error.code.code(), error.message.clone()),
    }
}

/// Refuses client requests with `LEADER_NOT_AVAILABLE` (retriable) until `ready` is set.
pub fn ready_interceptor(
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> impl tonic::service::Interceptor + Clone {
    move |request: tonic::Request<()>| check_ready(&ready).map(|()| request)
}

/// What `ready_interceptor` checks, for calls served outside tonic's router.
pub fn check_ready(ready: &std::sync::atomic::AtomicBool) -> Result<(), Status> {
    if ready.load(std::sync::atomic::Ordering::Acquire) {
        Ok(())
    } else {
        Err(to_status(PartitionError::new(
            ErrorCode::LeaderNotAvailable,
            "this node is still starting: registering with the controller quorum",
        )))
    }
}
