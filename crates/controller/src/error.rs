//! The controller's errors.
//!
//! Two kinds, kept apart as openraft keeps API errors apart from `Fatal`: a [`CommandRejected`]
//! is the metadata state machine's deterministic answer to a bad command (every controller that
//! applies the log refuses it the same way, so it is replicated as the command's result and
//! travels back to whoever proposed it); everything else in [`ControllerError`] is about reaching
//! a leader or about this node's disk, and says whether a retry can help.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::io;
use std::path::PathBuf;
use strata_common::ErrorCode;
use thiserror::Error;

/// A command the metadata state machine refused. The state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[error("{code}: {message}")]
pub struct CommandRejected {
    #[serde(
        serialize_with = "serialize_code",
        deserialize_with = "deserialize_code"
    )]
    pub code: ErrorCode,
    pub message: String,
}

impl CommandRejected {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> CommandRejected {
        CommandRejected {
            code,
            message: message.into(),
        }
    }
}

// The replicated result carries the wire number, which never changes meaning, rather than the
// enum's Rust name, which may.
fn serialize_code<S: Serializer>(code: &ErrorCode, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_i32(code.code())
}

fn deserialize_code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ErrorCode, D::Error> {
    i32::deserialize(deserializer).map(ErrorCode::from_code)
}

/// Everything a controller operation can fail with.
#[derive(Debug, Error)]
pub enum ControllerError {
    /// The metadata state machine refused the command; [`ControllerError::code`] says why.
    #[error(transparent)]
    Rejected(#[from] CommandRejected),
    /// No controller leader accepted the command within the submit bound (an election is in
    /// progress, or too few controllers are up). Retriable; the command was not applied, unless a
    /// reply was lost on the way back (see [`crate::Controller::submit`]).
    #[error("no controller leader accepted the command within {elapsed_ms} ms: {reason}")]
    LeaderNotAvailable { elapsed_ms: u64, reason: String },
    /// The configuration cannot work (e.g. this node is not among the voters).
    #[error("invalid controller configuration: {0}")]
    InvalidConfig(String),
    /// The data directory belongs to another node or cluster, or was written by an unknown
    /// format version. Starting would mix two histories, so the controller refuses.
    #[error("{0}")]
    DataDirectoryMismatch(String),
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Bytes on disk that recovery could not make sense of; names the file.
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Checkpoint(#[from] strata_storage::StorageError),
    /// The Raft node stopped (a storage failure, or shutdown). Not retriable on this node.
    #[error("controller raft node failed: {0}")]
    Raft(String),
}

impl ControllerError {
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> ControllerError {
        let path = path.into();
        move |source| ControllerError::Io {
            operation,
            path,
            source,
        }
    }

    /// The wire code a broker reports for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ControllerError::Rejected(rejected) => rejected.code,
            ControllerError::LeaderNotAvailable { .. } => ErrorCode::RequestTimedOut,
            ControllerError::Io { .. }
            | ControllerError::Corrupt { .. }
            | ControllerError::Checkpoint(_) => ErrorCode::KafkaStorageError,
            ControllerError::InvalidConfig(_)
            | ControllerError::DataDirectoryMismatch(_)
            | ControllerError::Raft(_) => ErrorCode::UnknownServerError,
        }
    }

    /// Whether the same command may succeed if submitted again later.
    pub fn is_retriable(&self) -> bool {
        match self {
            ControllerError::Rejected(rejected) => rejected.code.is_retriable(),
            ControllerError::LeaderNotAvailable { .. } => true,
            // A failed disk or a stopped Raft node does not heal by itself.
            ControllerError::InvalidConfig(_)
            | ControllerError::DataDirectoryMismatch(_)
            | ControllerError::Io { .. }
            | ControllerError::Corrupt { .. }
            | ControllerError::Checkpoint(_)
            | ControllerError::Raft(_) => false,
        }
    }
}
