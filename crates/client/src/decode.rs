//! Fetched bytes to records: a `Fetch` (or `FetchStream`, or `ShareFetch`) response carries each
//! partition's RecordBatches as stored; this checks them and turns them into [`ConsumerRecord`]s,
//! decompressing compressed batches (`strata_record` does the codec work).
//!
//! Pure: no IO, no state. The consumer, its tailing streams and the share consumer all decode
//! here, so none of them needs another's module for it.

use std::sync::Arc;

use bytes::Bytes;
use strata_common::TopicPartition;
use strata_record::{BatchError, BatchIter};

use crate::consumer_record::ConsumerRecord;
use crate::error::{Error, Result};

/// The offset after the last whole batch of fetched bytes, from the batch headers alone.
pub(crate) fn end_of_whole_batches(bytes: &Bytes) -> Option<i64> {
    BatchIter::new(bytes.clone())
        .map_while(|batch| batch.ok())
        .last()
        .map(|batch| batch.next_offset())
}

/// Decodes the batches of a fetch response for a partition read from `position`: checks each
/// batch's CRC, skips records before `position`, and returns the records with the offset the
/// next fetch should start at.
///
/// A batch cut off at the end of the response (the broker hit `max_bytes` mid-batch) is left for
/// the next fetch; only a response whose first batch is cut off is an error, since the broker
/// always returns at least one whole batch.
pub(crate) fn decode_fetched(
    topic_partition: &TopicPartition,
    position: i64,
    bytes: Bytes,
) -> Result<(Vec<ConsumerRecord>, i64)> {
    let corrupt = |source: BatchError| Error::CorruptBatch {
        topic_partition: topic_partition.clone(),
        source,
    };
    // Sized from the batch headers up front: growing it would copy every record decoded so far.
    let mut records = Vec::with_capacity(
        BatchIter::new(bytes.clone())
            .map_while(|batch| batch.ok())
            .map(|batch| batch.record_count_hint())
            .sum(),
    );
    let topic: Arc<str> = Arc::from(topic_partition.topic.as_str());
    let mut next_fetch_offset = position;
    for (index, batch) in BatchIter::new(bytes).enumerate() {
        let batch = match batch {
            Ok(batch) => batch,
            Err(BatchError::TooShort { .. }) if index > 0 => break,
            Err(error) => return Err(corrupt(error)),
        };
        batch.verify_crc().map_err(corrupt)?;
        if batch.next_offset() <= position {
            continue;
        }
        // A compressed batch's records are decompressed here, as a whole: a consumer reads the
        // batch as stored, as sent by its producer.
        for record in batch.records() {
            let record = record.map_err(corrupt)?;
            if record.offset < position {
                continue;
            }
            records.push(ConsumerRecord {
                topic: topic.clone(),
                partition: topic_partition.partition,
                offset: record.offset,
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record.headers,
            });
        }
        next_fetch_offset = next_fetch_offset.max(batch.next_offset());
    }
    Ok((records, next_fetch_offset))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strata_record::{CompressionType, Header, RecordBatch, RecordBatchBuilder};

    /// A batch of `count` records with values "v{offset}", stamped with `base_offset`.
    pub(crate) fn batch(base_offset: i64, count: i64) -> Vec<u8> {
        compressed_batch(base_offset, count, CompressionType::None)
    }

    /// [`batch`] with its records compressed with `codec`.
    fn compressed_batch(base_offset: i64, count: i64, codec: CompressionType) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::new().compression(codec);
        for offset in base_offset..base_offset + count {
            let headers = [Header {
                key: "h".into(),
                value: Some(Bytes::from(format!("{offset}"))),
            }];
            builder.push(
                1_000 + offset,
                Some(b"k"),
                Some(format!("v{offset}").as_bytes()),
                &headers,
            );
        }
        let mut bytes = builder.build().into_bytes().to_vec();
        RecordBatch::set_base_offset(&mut bytes, base_offset);
        bytes
    }

    pub(crate) fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    #[test]
    fn records_before_the_position_are_skipped() {
        let mut bytes = batch(0, 5);
        bytes.extend(batch(5, 3));
        let (records, next) = decode_fetched(&tp(), 3, Bytes::from(bytes)).expect("decodes");
        let offsets: Vec<i64> = records.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, vec![3, 4, 5, 6, 7]);
        assert_eq!(next, 8);
        let record = &records[0];
        assert_eq!(record.value.as_deref(), Some(&b"v3"[..]));
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.timestamp, 1_003);
        assert_eq!(record.headers[0].value.as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn compressed_batches_are_decompressed_and_skip_records_before_the_position() {
        let mut bytes = compressed_batch(0, 5, CompressionType::Gzip);
        bytes.extend(compressed_batch(5, 3, CompressionType::Snappy));
        bytes.extend(compressed_batch(8, 2, CompressionType::Lz4));
        bytes.extend(compressed_batch(10, 4, CompressionType::Zstd));
        let (records, next) = decode_fetched(&tp(), 3, Bytes::from(bytes)).expect("decodes");
        let offsets: Vec<i64> = records.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, (3..14).collect::<Vec<_>>());
        assert_eq!(next, 14);
        for record in &records {
            let offset = record.offset;
            assert_eq!(record.value, Some(Bytes::from(format!("v{offset}"))));
            assert_eq!(record.timestamp, 1_000 + offset);
            assert_eq!(
                record.headers[0].value,
                Some(Bytes::from(format!("{offset}")))
            );
        }
    }

    #[test]
    fn a_compressed_batch_that_does_not_decompress_is_an_error() {
        let mut bytes = compressed_batch(0, 5, CompressionType::Zstd);
        // Garbage in place of the zstd frame; stamping log-append time recomputes the CRC, so
        // the CRC passes and decompression is what fails.
        let garbage = vec![0x55; bytes.len() - strata_record::BATCH_HEADER_BYTES];
        bytes.truncate(strata_record::BATCH_HEADER_BYTES);
        bytes.extend(garbage);
        RecordBatch::set_log_append_time(&mut bytes, 1_000);
        let error = decode_fetched(&tp(), 0, Bytes::from(bytes)).unwrap_err();
        assert!(
            matches!(
                error,
                Error::CorruptBatch {
                    source: BatchError::CorruptCompression {
                        codec: CompressionType::Zstd,
                        ..
                    },
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_corrupt_batch_is_an_error() {
        let mut bytes = batch(0, 2);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let error = decode_fetched(&tp(), 0, Bytes::from(bytes)).unwrap_err();
        assert!(matches!(
            error,
            Error::CorruptBatch {
                source: BatchError::CorruptCrc { .. },
                ..
            }
        ));
        assert!(!error.is_retriable());
    }

    #[test]
    fn a_truncated_last_batch_waits_for_the_next_fetch() {
        let mut bytes = batch(0, 2);
        let second = batch(2, 2);
        bytes.extend(&second[..second.len() / 2]);
        let (records, next) = decode_fetched(&tp(), 0, Bytes::from(bytes)).expect("decodes");
        assert_eq!(records.len(), 2);
        assert_eq!(next, 2);

        let truncated_first = batch(0, 2);
        let error =
            decode_fetched(&tp(), 0, Bytes::from(truncated_first[..30].to_vec())).unwrap_err();
        assert!(matches!(error, Error::CorruptBatch { .. }));
    }

    #[test]
    fn an_empty_response_keeps_the_position() {
        let (records, next) = decode_fetched(&tp(), 7, Bytes::new()).expect("decodes");
        assert!(records.is_empty());
        assert_eq!(next, 7);
    }
}
