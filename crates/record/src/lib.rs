//! Kafka's RecordBatch v2 format, the unit Strata stores on disk and carries on the wire.
//!
//! Keeping Kafka's layout byte for byte means the bytes a producer sends are the bytes the log
//! stores and the bytes a consumer receives: the broker validates a batch and stamps its base
//! offset and leader epoch, both outside the CRC, and never re-encodes it.
//!
//! ```text
//! offset  size  field
//!      0     8  base_offset             assigned by the leader
//!      8     4  batch_length            bytes after this field
//!     12     4  partition_leader_epoch  stamped by the leader
//!     16     1  magic                   always 2
//!     17     4  crc                     CRC-32C (Castagnoli) of bytes 21..end
//!     21     2  attributes              bits 0-2 compression, bit 3 timestamp type,
//!                                       bit 4 transactional, bit 5 control
//!     23     4  last_offset_delta
//!     27     8  base_timestamp
//!     35     8  max_timestamp
//!     43     8  producer_id             -1 when not idempotent
//!     51     2  producer_epoch
//!     53     4  base_sequence
//!     57     4  record_count
//!     61     …  records
//! ```
//!
//! Each record: `length varint, attributes i8, timestamp_delta varlong, offset_delta varint,
//! key_length varint, key, value_length varint, value, header_count varint, headers` where a
//! length of -1 means null and varints are zigzag-encoded as in protobuf's `sint`.
//!
//! A compressed batch (attributes bits 0-2: gzip, snappy, lz4 or zstd) compresses the records
//! section as a whole; the header stays as above (see the `compression` module).
//!
//! This crate does no IO and never panics on bad bytes: every malformed input is a [`BatchError`].

mod batch;
mod builder;
mod compression;
mod error;
mod record;
mod varint;

pub use batch::{
    BATCH_HEADER_BYTES, BatchIter, LENGTH_FIELD_END, MAGIC_V2, NO_PRODUCER_ID, NO_SEQUENCE,
    RecordBatch, TimestampType,
};
pub use builder::RecordBatchBuilder;
pub use compression::{
    CompressionType, MAX_COMPRESSION_RATIO, MAX_DECOMPRESSED_BYTES, UnknownCompressionType,
    decompressed_limit,
};
pub use error::BatchError;
pub use record::{Header, Record};
