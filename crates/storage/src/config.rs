use crate::error::StorageError;
use strata_record::{CompressionType, TimestampType};

/// How one partition's log stores, rolls, flushes and retains data. Field names follow Kafka's
/// topic configs (`segment.bytes` is `segment_bytes`, and so on); `None` means "never" / unbounded.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// A segment is rolled before it would grow past this many bytes.
    pub segment_bytes: u64,
    /// A non-empty segment is rolled on the first append after it is this old.
    pub segment_ms: Option<i64>,
    /// Closed segments whose newest record is older than this are deleted.
    pub retention_ms: Option<i64>,
    /// Closed segments are deleted, oldest first, while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// The largest record batch accepted, in bytes.
    pub max_message_bytes: usize,
    /// Bytes of log between two entries of the sparse offset and time indexes.
    pub index_interval_bytes: u64,
    /// Space reserved for each index file; a segment is rolled when an index fills up.
    pub segment_index_bytes: u64,
    /// fsync after this many records since the last flush; `None` leaves it to the page cache.
    pub flush_messages: Option<u64>,
    /// fsync when the last flush is this old; `None` leaves it to the page cache.
    pub flush_ms: Option<i64>,
    /// Whether stored timestamps are the producer's or the broker's append time.
    pub message_timestamp_type: TimestampType,
    /// Kafka's `compression.type`: `None` ("producer") stores each batch as its producer
    /// compressed it; a codec has the leader recompress batches in any other codec to it.
    pub compression_type: Option<CompressionType>,
    /// Kafka's `producer.id.expiration.ms`: an idempotent producer's state (its epoch and last
    /// sequences) is forgotten once it has appended nothing for this long, by the log's clock.
    /// Its next batch is then accepted at any sequence, as in Kafka.
    pub producer_id_expiration_ms: i64,
    /// The most producer ids whose state the partition keeps; past it the least recently
    /// appending producer is forgotten, as if it had expired. Strata's own bound (Kafka has
    /// none per partition): producer ids come from clients, so without it a client minting ids
    /// could grow the broker's memory without limit.
    pub max_producer_ids: usize,
}

pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 30;
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's default: one MiB of records plus the batch's log overhead.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;
/// Kafka's default `producer.id.expiration.ms`: one day.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
/// About a megabyte of producer state per partition (an entry remembers five batches).
pub const DEFAULT_MAX_PRODUCER_IDS: usize = 10_000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: Some(DEFAULT_RETENTION_MS),
            retention_ms: Some(DEFAULT_RETENTION_MS),
            retention_bytes: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            flush_messages: None,
            flush_ms: None,
            message_timestamp_type: TimestampType::CreateTime,
            compression_type: None,
            producer_id_expiration_ms: DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            max_producer_ids: DEFAULT_MAX_PRODUCER_IDS,
        }
    }
}

/// Index entries are 8 or 12 bytes; an index needs room for a few of them.
const SEGMENT_INDEX_BYTES_MIN: u64 = 4 * 12;
/// Positions in the offset index are 32 bits.
const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

impl LogConfig {
    pub fn validate(&self) -> Result<(), StorageError> {
        let invalid = |message: String| Err(StorageError::InvalidConfig(message));
        if self.segment_bytes < 1024 || self.segment_bytes > SEGMENT_BYTES_MAX {
            return invalid(format!(
                "segment.bytes must be between 1024 and {SEGMENT_BYTES_MAX}, got {}",
                self.segment_bytes
            ));
        }
        if self.segment_index_bytes < SEGMENT_INDEX_BYTES_MIN {
            return invalid(format!(
                "segment.index.bytes must be at least {SEGMENT_INDEX_BYTES_MIN}, got {}",
                self.segment_index_bytes
            ));
        }
        if self.max_message_bytes < strata_record::BATCH_HEADER_BYTES {
            return invalid(format!(
                "max.message.bytes must be at least {}, got {}",
                strata_record::BATCH_HEADER_BYTES,
                self.max_message_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return invalid("index.interval.bytes must be positive".to_string());
        }
        for (name, value) in [
            ("segment.ms", self.segment_ms),
            ("retention.ms", self.retention_ms),
            ("flush.ms", self.flush_ms),
            (
                "producer.id.expiration.ms",
                Some(self.producer_id_expiration_ms),
            ),
        ] {
            if let Some(value) = value
                && value <= 0
            {
                return invalid(format!("{name} must be positive, got {value}"));
            }
        }
        if self.flush_messages == Some(0) {
            return invalid("flush.messages must be positive".to_string());
        }
        if self.max_producer_ids == 0 {
            return invalid("max.producer.ids must be positive".to_string());
        }
        Ok(())
    }
}
