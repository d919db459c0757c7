//! Helpers shared by the storage tests.
#![allow(dead_code)]

use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use strata_common::ManualClock;
use strata_record::{BatchIter, CompressionType, Record, RecordBatch, RecordBatchBuilder};
use strata_storage::{Log, LogConfig, RecoveryReport};

pub const START_MS: i64 = 1_700_000_000_000;

/// A batch of `count` records valued `"{tag}-{i}"`, timestamps from `timestamp` upward.
pub fn batch(tag: &str, count: usize, timestamp: i64) -> Bytes {
    batch_with_size(tag, count, timestamp, 0)
}

/// Like [`batch`], with values padded to at least `value_bytes`.
pub fn batch_with_size(tag: &str, count: usize, timestamp: i64, value_bytes: usize) -> Bytes {
    build_batch(tag, count, timestamp, value_bytes, CompressionType::None)
}

/// Like [`batch`], with the records compressed with `codec`.
pub fn compressed_batch(tag: &str, count: usize, timestamp: i64, codec: CompressionType) -> Bytes {
    build_batch(tag, count, timestamp, 0, codec)
}

fn build_batch(
    tag: &str,
    count: usize,
    timestamp: i64,
    value_bytes: usize,
    codec: CompressionType,
) -> Bytes {
    let mut builder = RecordBatchBuilder::new().compression(codec);
    for index in 0..count {
        let mut value = format!("{tag}-{index}").into_bytes();
        value.resize(value.len().max(value_bytes), b'.');
        let key = format!("key-{}", index % 7);
        builder.push(
            timestamp + index as i64,
            Some(key.as_bytes()),
            Some(&value),
            &[],
        );
    }
    builder.build().into_bytes()
}

/// Small segments and a dense index, so a few kilobytes exercise rolls and index lookups.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        retention_ms: None,
        segment_ms: None,
        ..LogConfig::default()
    }
}

pub fn open(
    directory: &Path,
    config: LogConfig,
    clock: &Arc<ManualClock>,
) -> (Log, RecoveryReport) {
    Log::open(directory, config, clock.clone()).expect("log opens")
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START_MS))
}

/// Every record from `offset` to the log end, reading in chunks of `max_bytes`.
pub fn read_all(log: &Log, mut offset: i64, max_bytes: u64) -> Vec<Record> {
    let mut records = Vec::new();
    let end = log.log_end_offset();
    let mut guard = 0;
    while offset < end {
        guard += 1;
        assert!(
            guard < 100_000,
            "read_all makes no progress at offset {offset}"
        );
        let read = log.read(offset, max_bytes, None).expect("read");
        assert!(
            !read.records.is_empty(),
            "no records at offset {offset} below the log end {end}"
        );
        for batch in BatchIter::new(read.records) {
            let batch: RecordBatch = batch.expect("whole batch");
            batch
                .verify_crc()
                .expect("served batches are never corrupt");
            for record in batch.records() {
                let record = record.expect("valid record");
                if record.offset >= offset {
                    records.push(record);
                }
            }
            offset = batch.next_offset();
        }
    }
    records
}

pub fn values(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|record| {
            String::from_utf8(record.value.as_ref().expect("value").to_vec()).expect("utf-8")
        })
        .collect()
}
