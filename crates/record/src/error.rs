use crate::compression::CompressionType;
use thiserror::Error;

/// Why a batch was refused. Every variant is a property of the bytes, not of the reader.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("batch is {actual} bytes, shorter than the {needed} bytes its header needs")]
    TooShort { needed: usize, actual: usize },
    #[error("batch declares {declared} bytes after its length field but {available} are present")]
    LengthMismatch { declared: i64, available: usize },
    #[error("batch magic is {0}; only magic 2 (RecordBatch v2) is supported")]
    InvalidMagic(i8),
    #[error("batch CRC is {stored:#010x} but its contents hash to {computed:#010x}")]
    CorruptCrc { stored: u32, computed: u32 },
    #[error("batch is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("batch uses compression codec {0}, which this build does not support")]
    UnsupportedCompression(u8),
    #[error("batch's {codec}-compressed records do not decompress: {reason}")]
    CorruptCompression {
        codec: CompressionType,
        reason: String,
    },
    /// The records would inflate past the decompression cap (see [`crate::decompressed_limit`]):
    /// a decompression bomb, or a batch that should have been split.
    #[error("batch's {codec}-compressed records inflate past the limit of {limit} bytes")]
    DecompressedTooLarge {
        codec: CompressionType,
        limit: usize,
    },
    #[error("batch declares {declared} records but {found} were decoded")]
    RecordCountMismatch { declared: i32, found: i64 },
    #[error("batch has no records")]
    Empty,
    #[error("record {index}: {reason}")]
    InvalidRecord { index: i64, reason: String },
    #[error("batch last_offset_delta is {last_offset_delta} but it has {record_count} records")]
    InvalidLastOffsetDelta {
        last_offset_delta: i32,
        record_count: i32,
    },
    #[error("batch max_timestamp {max_timestamp} is below a record timestamp {record_timestamp}")]
    InvalidMaxTimestamp {
        max_timestamp: i64,
        record_timestamp: i64,
    },
}
