//! Strata's storage engine: one append-only [`Log`] per partition, made of segment files with
//! sparse offset and time indexes, read through memory maps.
//!
//! Architecture invariant: this crate knows nothing of gRPC, Raft, networking or consumer groups.
//! It stores Kafka RecordBatch v2 bytes (see `strata-record`) and answers offset and timestamp
//! questions about them; replication, leadership and groups are built on top of it.
//!
//! On-disk layout of a log directory (`<data>/<topic>-<partition>/`):
//!
//! | file | content |
//! |---|---|
//! | `{base_offset:020}.log` | RecordBatch v2 batches, back to back, as produced (offsets and epoch stamped by the leader) |
//! | `{base_offset:020}.index` | 8-byte entries `relative_offset u32, position u32`, one per `index.interval.bytes` |
//! | `{base_offset:020}.timeindex` | 12-byte entries `max_timestamp i64, relative_offset u32` |
//! | `log-state-checkpoint` | recovery point, log start offset, clean-shutdown flag (checksummed) |
//! | `leader-epoch-checkpoint` | leader epoch -> first offset, for divergence detection (checksummed) |
//!
//! Every batch carries a CRC-32C; the checkpoint files carry a CRC-32 and are replaced atomically
//! (write, fsync, rename, fsync directory).

pub mod checkpoint;
mod config;
mod error;
pub mod fault;
mod index_file;
mod leader_epoch;
mod log;
mod log_manager;
mod offset_index;
mod producer_state;
mod segment;
mod time_index;

pub use config::{
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PRODUCER_IDS, DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    DEFAULT_RETENTION_MS, DEFAULT_SEGMENT_BYTES, LogConfig,
};
pub use error::{Result, StorageError};
pub use leader_epoch::EpochEntry;
pub use log::{AppendInfo, Log, ReadResult, RecoveryReport, RetentionReport, TimestampOffset};
pub use log_manager::LogManager;
pub use segment::Truncation;
