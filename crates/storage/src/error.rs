use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use strata_common::ErrorCode;
use strata_record::BatchError;
use thiserror::Error;

/// Everything a log operation can fail with.
///
/// Caller errors (`OffsetOutOfRange`, `InvalidBatch`, `MessageTooLarge`, `NonMonotonicOffsets`)
/// leave the log untouched. `Io` means the disk refused something whose failure leaves the log
/// consistent (a full disk during an append): nothing acknowledged before it is lost, the failed
/// append is not visible, and the same call may succeed later. `Offline` means the log can no
/// longer know what is on its disk (a failed fsync, a failed write it could not undo): it takes
/// no more writes until it is reopened. `Corrupt` is found data that recovery could not make
/// sense of; it names the file.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("offset {requested} is out of range: {}", stored_range(*log_start_offset, *log_end_offset))]
    OffsetOutOfRange {
        requested: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("batch {index} of the request is invalid: {source}")]
    InvalidBatch { index: usize, source: BatchError },
    #[error("batch {index} of the request is {size} bytes; max.message.bytes is {max}")]
    MessageTooLarge {
        index: usize,
        size: usize,
        max: usize,
    },
    #[error("batch starting at offset {found} does not follow the log end offset {expected}")]
    NonMonotonicOffsets { expected: i64, found: i64 },
    #[error("the request carries no record batches")]
    EmptyAppend,
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
    #[error("append in leader epoch {requested}, but epoch {latest} already wrote to this log")]
    StaleLeaderEpoch { requested: i32, latest: i32 },
    #[error("the log at {0} is closed")]
    Closed(PathBuf),
    /// The log took a disk failure whose effect on its files is unknown (Kafka takes the log
    /// directory offline). `cause` is the first such failure; every write since returns this.
    #[error("the log at {directory} is offline after a disk failure: {cause}")]
    Offline {
        directory: PathBuf,
        cause: Arc<StorageError>,
    },
    #[error(
        "producer {producer_id} sent sequence {found}, expected {expected}: a batch in between is missing"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        found: i32,
    },
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current_epoch}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
}

impl StorageError {
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io {
            operation,
            path,
            source,
        }
    }

    /// The wire code a broker reports for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            StorageError::Io { .. }
            | StorageError::Corrupt { .. }
            | StorageError::Offline { .. } => ErrorCode::KafkaStorageError,
            StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            StorageError::InvalidBatch { source, .. } => match source {
                BatchError::UnsupportedCompression(_) => ErrorCode::UnsupportedCompressionType,
                // As for a batch over max.message.bytes: a Kafka producer splits the batch and
                // retries, which is what a batch that inflates too far needs.
                BatchError::TooLarge { .. } | BatchError::DecompressedTooLarge { .. } => {
                    ErrorCode::MessageTooLarge
                }
                BatchError::InvalidRecord { .. }
                | BatchError::RecordCountMismatch { .. }
                | BatchError::InvalidLastOffsetDelta { .. }
                | BatchError::Empty => ErrorCode::InvalidRecord,
                BatchError::InvalidMaxTimestamp { .. } => ErrorCode::InvalidTimestamp,
                BatchError::TooShort { .. }
                | BatchError::LengthMismatch { .. }
                | BatchError::InvalidMagic(_)
                | BatchError::CorruptCrc { .. }
                | BatchError::CorruptCompression { .. } => ErrorCode::CorruptMessage,
            },
            StorageError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            StorageError::NonMonotonicOffsets { .. } | StorageError::EmptyAppend => {
                ErrorCode::InvalidRequest
            }
            StorageError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            StorageError::StaleLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
            StorageError::Closed(_) => ErrorCode::NotLeaderOrFollower,
            StorageError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
            StorageError::ProducerFenced { .. } => ErrorCode::InvalidProducerEpoch,
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The offsets a log holds, as people count them: the first and the last stored offset (the log
/// end offset is the next one to be written, not a stored one).
fn stored_range(log_start_offset: i64, log_end_offset: i64) -> String {
    if log_start_offset >= log_end_offset {
        format!("the log is empty (the next record gets offset {log_end_offset})")
    } else {
        format!(
            "the log holds offsets {log_start_offset} to {}",
            log_end_offset - 1
        )
    }
}
