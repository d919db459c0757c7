use bytes::Bytes;
use proptest::prelude::*;
use strata_record::{
    BatchError, BatchIter, Header, RecordBatch, RecordBatchBuilder, TimestampType,
};

fn sample_batch() -> RecordBatch {
    let mut builder = RecordBatchBuilder::new().producer(7, 1, 100);
    builder.push(
        1_000,
        Some(b"k1"),
        Some(b"v1"),
        &[Header {
            key: "h".into(),
            value: Some(Bytes::from_static(b"x")),
        }],
    );
    builder.push(1_005, None, Some(b"v2"), &[]);
    builder.push(
        1_002,
        Some(b"k3"),
        None,
        &[Header {
            key: "n".into(),
            value: None,
        }],
    );
    builder.build()
}

#[test]
fn built_batch_round_trips_every_field() {
    let batch = sample_batch();
    batch.validate(usize::MAX).unwrap();
    assert_eq!(batch.record_count(), 3);
    assert_eq!(batch.last_offset_delta(), 2);
    assert_eq!(batch.base_timestamp(), 1_000);
    assert_eq!(batch.max_timestamp(), 1_005);
    assert_eq!(batch.producer_id(), 7);
    assert_eq!(batch.producer_epoch(), 1);
    assert_eq!(batch.base_sequence(), 100);
    assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
    let records: Vec<_> = batch.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(
        records[0].headers,
        vec![Header {
            key: "h".into(),
            value: Some(Bytes::from_static(b"x"))
        }]
    );
    assert_eq!(records[1].key, None);
    assert_eq!(records[1].timestamp, 1_005);
    assert_eq!(records[2].value, None);
    assert_eq!(records[2].timestamp, 1_002);
    assert_eq!(records[2].offset, 2);
}

#[test]
fn stamping_offset_and_epoch_keeps_the_crc_valid() {
    let mut bytes = sample_batch().into_bytes().to_vec();
    RecordBatch::set_base_offset(&mut bytes, 42);
    RecordBatch::set_partition_leader_epoch(&mut bytes, 9);
    let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
    batch.validate(usize::MAX).unwrap();
    assert_eq!(batch.base_offset(), 42);
    assert_eq!(batch.next_offset(), 45);
    assert_eq!(batch.partition_leader_epoch(), 9);
    assert_eq!(batch.records().last().unwrap().unwrap().offset, 44);
}

#[test]
fn log_append_time_overrides_record_timestamps() {
    let mut bytes = sample_batch().into_bytes().to_vec();
    RecordBatch::set_log_append_time(&mut bytes, 99_999);
    let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
    batch.validate(usize::MAX).unwrap();
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert!(
        batch
            .records()
            .all(|record| record.unwrap().timestamp == 99_999)
    );
}

#[test]
fn a_flipped_bit_fails_the_crc() {
    let mut bytes = sample_batch().into_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
    assert!(matches!(
        batch.validate(usize::MAX),
        Err(BatchError::CorruptCrc { .. })
    ));
}

#[test]
fn a_wrong_crc_is_reported_before_a_broken_record() {
    // Corrupt the first record's length so the record walk fails too, without re-signing: the
    // CRC error must win, as it would if the CRC were checked on its own first.
    let mut bytes = sample_batch().into_bytes().to_vec();
    bytes[61] = 0x7f;
    let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
    assert!(matches!(
        batch.validate(usize::MAX),
        Err(BatchError::CorruptCrc { .. })
    ));
}

/// A batch of 200 records of 1 KB.
fn large_batch() -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new();
    let value = vec![b'v'; 1000];
    for index in 0..200 {
        builder.push(1_000 + index, Some(b"key"), Some(&value), &[]);
    }
    builder.build().into_bytes().to_vec()
}

#[test]
fn large_batches_validate_and_every_flipped_byte_is_caught() {
    let bytes = large_batch();
    let batch = RecordBatch::new(Bytes::from(bytes.clone())).unwrap();
    assert_eq!(batch.validate(usize::MAX), Ok(()));
    for position in (21..bytes.len()).step_by(997) {
        let mut corrupt = bytes.clone();
        corrupt[position] ^= 0x01;
        let batch = RecordBatch::new(Bytes::from(corrupt)).unwrap();
        assert!(
            matches!(
                batch.validate(usize::MAX),
                Err(BatchError::CorruptCrc { .. })
            ),
            "a flip at byte {position} of {} went unnoticed",
            bytes.len()
        );
    }
}

#[test]
fn a_broken_record_deep_in_a_large_batch_is_found() {
    let mut bytes = large_batch();
    // The last record gets a length that ends inside its value, leaving bytes over.
    let mut position = 61;
    let mut records = RecordBatch::new(Bytes::from(bytes.clone()))
        .unwrap()
        .records()
        .count();
    // Walk the length varints to find the start of the last record.
    while records > 1 {
        let (length, width) = zigzag(&bytes[position..]);
        position += width + length as usize;
        records -= 1;
    }
    assert!(
        position > 100_000,
        "the broken record lies deep in the batch"
    );
    bytes[position] = 0x7e; // length 63
    resign(&mut bytes);
    let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
    assert!(matches!(
        batch.validate(usize::MAX),
        Err(BatchError::InvalidRecord { index: 199, .. })
            | Err(BatchError::RecordCountMismatch { .. })
    ));
}

fn zigzag(bytes: &[u8]) -> (i64, usize) {
    let mut value = 0u64;
    for (width, byte) in bytes.iter().enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * width);
        if byte & 0x80 == 0 {
            return (((value >> 1) as i64) ^ -((value & 1) as i64), width + 1);
        }
    }
    panic!("unterminated varint")
}

#[test]
fn wrong_magic_is_refused() {
    let mut bytes = sample_batch().into_bytes().to_vec();
    bytes[16] = 1;
    assert_eq!(
        RecordBatch::new(Bytes::from(bytes)),
        Err(BatchError::InvalidMagic(1))
    );
}

#[test]
fn a_length_that_overruns_is_refused() {
    let mut bytes = sample_batch().into_bytes().to_vec();
    bytes[8..12].copy_from_slice(&10_000i32.to_be_bytes());
    assert!(matches!(
        RecordBatch::new(Bytes::from(bytes.clone())),
        Err(BatchError::LengthMismatch { .. })
    ));
    let error = BatchIter::new(Bytes::from(bytes))
        .next()
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, BatchError::TooShort { .. }));
}

/// Re-signs a batch after tampering with fields the CRC covers, so validation gets past the CRC.
fn resign(bytes: &mut [u8]) {
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn more_records_than_declared_are_refused() {
    let mut bytes = sample_batch().into_bytes().to_vec();
    bytes[57..61].copy_from_slice(&2i32.to_be_bytes());
    bytes[23..27].copy_from_slice(&1i32.to_be_bytes());
    resign(&mut bytes);
    let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
    assert!(matches!(
        batch.validate(usize::MAX),
        Err(BatchError::RecordCountMismatch { declared: 2, .. })
    ));
}

#[test]
fn fewer_records_than_declared_are_refused() {
    let mut bytes = sample_batch().into_bytes().to_vec();
    bytes[57..61].copy_from_slice(&4i32.to_be_bytes());
    bytes[23..27].copy_from_slice(&3i32.to_be_bytes());
    resign(&mut bytes);
    let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
    assert_eq!(
        batch.validate(usize::MAX),
        Err(BatchError::RecordCountMismatch {
            declared: 4,
            found: 3
        })
    );
}

#[test]
fn a_codec_bit_over_uncompressed_records_is_refused_as_corrupt() {
    // Compressed batches are tests/compression.rs's; this one only claims zstd.
    let mut bytes = sample_batch().into_bytes().to_vec();
    bytes[22] |= 4;
    resign(&mut bytes);
    let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
    assert!(matches!(
        batch.validate(usize::MAX),
        Err(BatchError::CorruptCompression { .. })
    ));
}

#[test]
fn oversized_batches_are_refused() {
    let batch = sample_batch();
    let size = batch.size_in_bytes();
    assert_eq!(
        batch.validate(size - 1),
        Err(BatchError::TooLarge {
            size,
            max: size - 1
        })
    );
    batch.validate(size).unwrap();
}

#[test]
fn batch_iter_splits_concatenated_batches() {
    let mut joined = sample_batch().into_bytes().to_vec();
    joined.extend_from_slice(&sample_batch().into_bytes());
    let batches: Vec<_> = BatchIter::new(Bytes::from(joined))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 2);
}

/// The exact bytes of a known batch. If this changes, data already on disk would no longer read
/// the same: a format change needs a new magic or a migration, not an edit of this constant.
#[test]
fn golden_batch_bytes() {
    let mut builder = RecordBatchBuilder::new();
    builder.push(
        1_700_000_000_000,
        Some(b"key"),
        Some(b"value"),
        &[Header {
            key: "h".into(),
            value: Some(Bytes::from_static(b"1")),
        }],
    );
    let hex: String = builder
        .build()
        .as_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(
        hex,
        concat!(
            "0000000000000000",
            "00000044",
            "ffffffff",
            "02",
            "16c8334a",
            "0000",
            "00000000",
            "0000018bcfe56800",
            "0000018bcfe56800",
            "ffffffffffffffff",
            "ffff",
            "ffffffff",
            "00000001",
            // One record of 18 bytes: attributes, deltas, key "key", value "value", header h=1.
            "24",
            "00",
            "00",
            "00",
            "06",
            "6b6579",
            "0a",
            "76616c7565",
            "02",
            "02",
            "68",
            "02",
            "31"
        )
    );
}

/// A record's timestamp delta, key, value and headers.
type ArbitraryRecord = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn arbitrary_record() -> impl Strategy<Value = ArbitraryRecord> {
    (
        -1_000_000i64..1_000_000,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
        proptest::collection::vec(
            (
                "[a-z]{0,8}",
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            ),
            0..4,
        ),
    )
}

proptest! {
    #[test]
    fn any_records_round_trip(records in proptest::collection::vec(arbitrary_record(), 1..20)) {
        let mut builder = RecordBatchBuilder::new();
        for (timestamp, key, value, headers) in &records {
            let headers: Vec<Header> = headers.iter().map(|(key, value)| Header { key: key.clone(), value: value.clone().map(Bytes::from) }).collect();
            builder.push(*timestamp, key.as_deref(), value.as_deref(), &headers);
        }
        let batch = builder.build();
        batch.validate(usize::MAX).unwrap();
        let decoded: Vec<_> = batch.records().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded.len(), records.len());
        for (index, (record, (timestamp, key, value, headers))) in decoded.iter().zip(&records).enumerate() {
            prop_assert_eq!(record.offset, index as i64);
            prop_assert_eq!(record.timestamp, *timestamp);
            prop_assert_eq!(record.key.as_deref(), key.as_deref());
            prop_assert_eq!(record.value.as_deref(), value.as_deref());
            prop_assert_eq!(record.headers.len(), headers.len());
        }
    }

    /// Decoding never panics, whatever the bytes: the bounded stand-in for a fuzz target.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for batch in BatchIter::new(Bytes::from(bytes)).flatten() {
            let _ = batch.validate(usize::MAX);
            let _ = batch.records().count();
        }
    }

    /// Mutating a valid batch anywhere in the records section, then re-signing it so the CRC
    /// passes, yields either a valid batch or a typed error, never a panic.
    #[test]
    fn mutated_records_are_refused_cleanly(position in 61usize..200, byte in any::<u8>()) {
        let mut bytes = sample_batch().into_bytes().to_vec();
        let position = position % bytes.len();
        bytes[position] = byte;
        resign(&mut bytes);
        if let Ok(batch) = RecordBatch::new(Bytes::from(bytes))
            && batch.validate(usize::MAX).is_ok() {
                prop_assert!(batch.records().all(|record| record.is_ok()));
            }
    }
}

#[test]
fn the_record_count_hint_never_exceeds_what_the_bytes_can_hold() {
    let batch = sample_batch();
    assert_eq!(batch.record_count_hint(), 3);
    let with_count = |count: i32| {
        let mut bytes = sample_batch().into_bytes().to_vec();
        bytes[57..61].copy_from_slice(&count.to_be_bytes());
        RecordBatch::new(Bytes::from(bytes)).unwrap()
    };
    let room = (batch.size_in_bytes() - strata_record::BATCH_HEADER_BYTES) / 7;
    assert_eq!(with_count(i32::MAX).record_count_hint(), room);
    assert_eq!(with_count(-1).record_count_hint(), 0);
}
