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
        | ErrorCode::IllegalGeneration
        | ErrorCode::RebalanceInProgress
        | ErrorCode::MemberIdRequired
        | ErrorCode::FencedInstanceId
        | ErrorCode::GroupSubscribedToTopic
        | ErrorCode::InvalidRecordState => Code::FailedPrecondition,
        ErrorCode::StaleBrokerEpoch => Code::FailedPrecondition,
        ErrorCode::GroupMaxSizeReached => Code::ResourceExhausted,
        ErrorCode::TopicAuthorizationFailed
        | ErrorCode::GroupAuthorizationFailed
        | ErrorCode::ClusterAuthorizationFailed => Code::PermissionDenied,
        ErrorCode::GroupIdNotFound | ErrorCode::ResourceNotFound => Code::NotFound,
        ErrorCode::SaslAuthenticationFailed => Code::Unauthenticated,
        ErrorCode::UnsupportedSaslMechanism
        | ErrorCode::IllegalSaslState
        | ErrorCode::UnacceptableCredential => Code::InvalidArgument,
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
        | ErrorCode::InconsistentGroupProtocol
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

/// The Strata code of a refusal made before any handler ran, by tonic's decoder or the zero-copy
/// framing: only a request above the size limit is refused there with these gRPC codes. Every
/// refusal then carries a code the way handlers' refusals do.
fn transport_refusal_code(code: Code) -> Option<ErrorCode> {
    match code {
        Code::ResourceExhausted | Code::OutOfRange => Some(ErrorCode::MessageTooLarge),
        _ => None,
    }
}

/// Adds `strata-error-code` to a status that has none; see [`transport_refusal_code`].
pub fn with_error_code(mut status: Status) -> Status {
    if status.metadata().get(ERROR_CODE_METADATA).is_none()
        && let Some(code) = transport_refusal_code(status.code())
    {
        status.metadata_mut().insert(
            ERROR_CODE_METADATA,
            code.code()
                .to_string()
                .parse()
                .expect("digits are valid metadata"),
        );
    }
    status
}

/// The same for a response that is only a status (gRPC's trailers-only form, which is how a
/// call refused before its handler ran is answered).
pub fn tag_refusal<B>(response: &mut http::Response<B>) {
    let headers = response.headers();
    if headers.contains_key(ERROR_CODE_METADATA) {
        return;
    }
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .and_then(|value| transport_refusal_code(Code::from_i32(value)))
    else {
        return;
    };
    response.headers_mut().insert(
        ERROR_CODE_METADATA,
        code.code()
            .to_string()
            .parse()
            .expect("digits are a valid header value"),
    );
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
            "this node is not serving clients yet: it has not registered with the controller \
             quorum (are a majority of the voters up and reachable?)",
        )))
    }
}
