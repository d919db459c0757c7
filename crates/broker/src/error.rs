use strata_common::ErrorCode;
use strata_storage::StorageError;

/// An error for one partition or topic of a request: the wire code and a message for humans.
/// Kafka reports these in the response body, so one bad partition does not fail the rest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct PartitionError {
    pub code: ErrorCode,
    pub message: String,
}

impl PartitionError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> PartitionError {
        PartitionError {
            code,
            message: message.into(),
        }
    }

    pub fn unknown_topic_or_partition(topic: &str, partition: i32) -> PartitionError {
        PartitionError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("this server does not host topic-partition {topic}-{partition}"),
        )
    }
}

impl From<StorageError> for PartitionError {
    fn from(error: StorageError) -> PartitionError {
        PartitionError::new(error.error_code(), error.to_string())
    }
}

/// Errors that stop a broker from starting.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Startup(String),
}
