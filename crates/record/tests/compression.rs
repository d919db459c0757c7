//! Compressed batches: each codec through the builder, validation and the record walk; batches
//! from kafka-protocol's independent encoder (and Kafka's own snappy bytes) read here and ours
//! read there; and what a hostile or broken payload gets: a typed error, never a panic or an
//! unbounded allocation.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KafkaTimestampType,
};
use proptest::prelude::*;
use strata_record::{
    BATCH_HEADER_BYTES, BatchError, CompressionType, Header, MAX_COMPRESSION_RATIO,
    MAX_DECOMPRESSED_BYTES, Record, RecordBatch, RecordBatchBuilder, decompressed_limit,
};

const CODECS: [CompressionType; 4] = [
    CompressionType::Gzip,
    CompressionType::Snappy,
    CompressionType::Lz4,
    CompressionType::Zstd,
];

/// Forty records, compressible as real ones are: repeated keys and similar values, some null,
/// some with headers.
fn push_records(builder: &mut RecordBatchBuilder) {
    for index in 0..40i64 {
        let key = format!("user-{}", index % 4);
        let value = format!("{{\"event\":\"page-view\",\"page\":\"/items/{index}\"}}");
        let headers = match index % 3 {
            0 => vec![Header {
                key: "trace".into(),
                value: Some(Bytes::from(format!("t-{index}"))),
            }],
            1 => vec![Header {
                key: "empty".into(),
                value: None,
            }],
            _ => Vec::new(),
        };
        let key = (index % 5 != 0).then_some(key.as_bytes());
        let value = (index % 7 != 3).then_some(value.as_bytes());
        // Out of order timestamps, as a producer's records may be.
        builder.push(1_700_000_000_000 + (index * 37) % 11, key, value, &headers);
    }
}

fn batch_with(codec: CompressionType) -> RecordBatch {
    let mut builder = RecordBatchBuilder::new()
        .producer(5, 2, 1_000)
        .compression(codec);
    push_records(&mut builder);
    builder.build()
}

fn records_of(batch: &RecordBatch) -> Vec<Record> {
    batch
        .records()
        .collect::<Result<_, _>>()
        .expect("the records decode")
}

/// Re-signs a batch after tampering with fields the CRC covers, so validation gets past the CRC.
fn resign(bytes: &mut [u8]) {
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// `batch`'s header with `records` as its records section, framed and signed.
fn with_records_section(batch: &RecordBatch, records: &[u8]) -> RecordBatch {
    let mut bytes = batch.as_bytes()[..BATCH_HEADER_BYTES].to_vec();
    bytes.extend_from_slice(records);
    let batch_length = i32::try_from(bytes.len() - 12).expect("a small batch");
    bytes[8..12].copy_from_slice(&batch_length.to_be_bytes());
    resign(&mut bytes);
    RecordBatch::new(Bytes::from(bytes)).expect("framed")
}

#[test]
fn each_codec_round_trips_through_builder_validate_and_records() {
    let plain = batch_with(CompressionType::None);
    plain.validate(usize::MAX).unwrap();
    let expected = records_of(&plain);
    assert_eq!(expected.len(), 40);
    for codec in CODECS {
        let batch = batch_with(codec);
        assert_eq!(batch.compression_type(), Ok(codec));
        assert_eq!(i16::from(codec.id()), batch.attributes() & 0x07);
        assert!(
            batch.size_in_bytes() < plain.size_in_bytes(),
            "{codec}: {} bytes compressed, {} plain",
            batch.size_in_bytes(),
            plain.size_in_bytes()
        );
        // Only the records section differs: the header fields are the plain batch's.
        for (field, value) in [
            ("record_count", batch.record_count() == plain.record_count()),
            (
                "max_timestamp",
                batch.max_timestamp() == plain.max_timestamp(),
            ),
            (
                "base_sequence",
                batch.base_sequence() == plain.base_sequence(),
            ),
        ] {
            assert!(value, "{codec}: {field}");
        }
        batch
            .validate(batch.size_in_bytes())
            .unwrap_or_else(|error| panic!("{codec}: {error}"));
        assert_eq!(records_of(&batch), expected, "{codec}");
    }
}

#[test]
fn stamping_offset_and_epoch_keeps_a_compressed_batch_valid() {
    for codec in CODECS {
        let mut bytes = batch_with(codec).into_bytes().to_vec();
        RecordBatch::set_base_offset(&mut bytes, 1_000);
        RecordBatch::set_partition_leader_epoch(&mut bytes, 3);
        let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
        batch.validate(usize::MAX).unwrap();
        let offsets: Vec<i64> = records_of(&batch)
            .iter()
            .map(|record| record.offset)
            .collect();
        assert_eq!(offsets, (1_000..1_040).collect::<Vec<_>>(), "{codec}");
    }
}

#[test]
fn log_append_time_keeps_the_codec() {
    for codec in CODECS {
        let mut bytes = batch_with(codec).into_bytes().to_vec();
        RecordBatch::set_log_append_time(&mut bytes, 42);
        let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
        assert_eq!(batch.compression_type(), Ok(codec));
        batch.validate(usize::MAX).unwrap();
        assert!(
            records_of(&batch)
                .iter()
                .all(|record| record.timestamp == 42)
        );
    }
}

fn kafka_records() -> Vec<KafkaRecord> {
    (0..25i64)
        .map(|index| {
            let mut headers = IndexMap::new();
            headers.insert(
                StrBytes::from_static_str("h"),
                Some(Bytes::from(format!("{index}"))),
            );
            KafkaRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 9,
                producer_epoch: 1,
                timestamp_type: KafkaTimestampType::Creation,
                offset: index,
                sequence: 7 + index as i32,
                timestamp: 1_600_000_000_000 + index,
                key: (index % 2 == 0).then(|| Bytes::from(format!("key-{index}"))),
                value: Some(Bytes::from(format!("value value value {index}"))),
                headers,
            }
        })
        .collect()
}

fn kafka_compression(codec: CompressionType) -> Compression {
    match codec {
        CompressionType::None => Compression::None,
        CompressionType::Gzip => Compression::Gzip,
        CompressionType::Snappy => Compression::Snappy,
        CompressionType::Lz4 => Compression::Lz4,
        CompressionType::Zstd => Compression::Zstd,
    }
}

/// `records` as one batch compressed with `codec`, by kafka-protocol's encoder.
fn kafka_encode(records: &[KafkaRecord], codec: CompressionType) -> BytesMut {
    let mut encoded = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut encoded,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: kafka_compression(codec),
        },
    )
    .unwrap();
    encoded
}

#[test]
fn batches_from_an_independent_kafka_encoder_validate_and_decode() {
    let sent = kafka_records();
    for codec in CODECS {
        let encoded = kafka_encode(&sent, codec);
        let batch = RecordBatch::new(encoded.freeze()).unwrap();
        assert_eq!(batch.compression_type(), Ok(codec));
        batch
            .validate(usize::MAX)
            .unwrap_or_else(|error| panic!("{codec}: {error}"));
        let received = records_of(&batch);
        assert_eq!(received.len(), sent.len(), "{codec}");
        for (record, original) in received.iter().zip(&sent) {
            assert_eq!(record.offset, original.offset);
            assert_eq!(record.timestamp, original.timestamp);
            assert_eq!(record.key, original.key);
            assert_eq!(record.value, original.value);
            assert_eq!(record.headers[0].value, original.headers[0]);
        }
    }
}

#[test]
fn our_compressed_batches_decode_in_an_independent_kafka_decoder() {
    for codec in CODECS {
        let batch = batch_with(codec);
        let expected = records_of(&batch);
        let mut bytes = batch.into_bytes();
        let decoded = RecordBatchDecoder::decode(&mut bytes)
            .unwrap_or_else(|error| panic!("{codec}: {error:#}"));
        assert_eq!(decoded.compression, kafka_compression(codec));
        assert_eq!(decoded.records.len(), expected.len());
        for (record, original) in decoded.records.iter().zip(&expected) {
            assert_eq!(record.offset, original.offset);
            assert_eq!(record.timestamp, original.timestamp);
            assert_eq!(record.key, original.key);
            assert_eq!(record.value, original.value);
            assert_eq!(record.sequence, 1_000 + original.offset as i32);
        }
    }
}

#[test]
fn snappy_payloads_of_kafka_and_of_raw_snappy_both_read() {
    // One record, value "sdfdsf", as compressed by Kafka's Java client (xerial framing), and the
    // same as raw snappy, which Java's SnappyInputStream also accepts. From kafka-protocol's
    // own tests of its snappy codec.
    let xerial: &[u8] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
    let raw: &[u8] = b"\r0\x18\0\0\0\x01\x0csdfdsf\0";
    let mut builder = RecordBatchBuilder::new().compression(CompressionType::Snappy);
    builder.push(0, None, Some(b"sdfdsf"), &[]);
    let template = builder.build();
    for payload in [xerial, raw] {
        let batch = with_records_section(&template, payload);
        batch.validate(usize::MAX).unwrap();
        let records = records_of(&batch);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].value.as_deref(), Some(&b"sdfdsf"[..]));
        assert_eq!(records[0].key, None);
    }
}

#[test]
fn a_compressed_batch_whose_count_lies_is_refused() {
    for codec in CODECS {
        for (declared, found) in [(39i32, 40i64), (41, 40)] {
            let mut bytes = batch_with(codec).into_bytes().to_vec();
            bytes[57..61].copy_from_slice(&declared.to_be_bytes());
            bytes[23..27].copy_from_slice(&(declared - 1).to_be_bytes());
            resign(&mut bytes);
            let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
            let error = batch.validate(usize::MAX).unwrap_err();
            assert_eq!(
                error,
                BatchError::RecordCountMismatch { declared, found },
                "{codec}"
            );
        }
    }
}

#[test]
fn inner_offset_deltas_must_count_from_zero() {
    // kafka-protocol's encoder writes each record's offset less the first's as its delta, so
    // offsets 0, 2, 4... give deltas with gaps, which Kafka's broker refuses too.
    let gappy: Vec<KafkaRecord> = kafka_records()
        .into_iter()
        .map(|mut record| {
            record.offset *= 2;
            // The encoder starts a new batch where offset and sequence stop moving together.
            record.sequence = 7 + record.offset as i32;
            record
        })
        .collect();
    for codec in CODECS {
        let encoded = kafka_encode(&gappy, codec);
        let mut bytes = encoded.to_vec();
        // The header's last offset delta says 48; make it agree with the count so the walk is
        // what finds the gap.
        bytes[23..27].copy_from_slice(&24i32.to_be_bytes());
        resign(&mut bytes);
        let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
        assert!(
            matches!(
                batch.validate(usize::MAX),
                Err(BatchError::InvalidRecord { index: 1, .. })
            ),
            "{codec}"
        );
    }
}

#[test]
fn truncated_or_garbage_payloads_are_refused_with_an_error() {
    for codec in CODECS {
        let batch = batch_with(codec);
        let section = &batch.as_bytes()[BATCH_HEADER_BYTES..];
        for payload in [
            &section[..section.len() / 2],
            &section[..1],
            &[][..],
            &[0xab; 300][..],
        ] {
            let broken = with_records_section(&batch, payload);
            let validated = broken.validate(usize::MAX);
            assert!(
                matches!(
                    validated,
                    Err(BatchError::CorruptCompression { codec: found, .. }
                        | BatchError::DecompressedTooLarge { codec: found, .. }) if found == codec
                ),
                "{codec}, {} bytes: {validated:?}",
                payload.len()
            );
            let records: Vec<_> = broken.records().collect();
            assert_eq!(records.len(), 1, "{codec}: one error, then nothing");
            assert!(records[0].is_err());
        }
    }
}

#[test]
fn an_unknown_codec_id_is_refused_with_its_id() {
    for id in 5u8..=7 {
        let mut bytes = batch_with(CompressionType::None).into_bytes().to_vec();
        bytes[22] = id;
        resign(&mut bytes);
        let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
        assert_eq!(
            batch.validate(usize::MAX),
            Err(BatchError::UnsupportedCompression(id))
        );
        assert_eq!(
            batch.records().next(),
            Some(Err(BatchError::UnsupportedCompression(id)))
        );
    }
}

#[test]
fn a_decompression_bomb_is_refused_at_the_limit() {
    // 8 MiB of zeros: kilobytes compressed, far past 64 times that inflated.
    let zeros = vec![0u8; 8 << 20];
    for codec in CODECS {
        let mut builder = RecordBatchBuilder::new().compression(codec);
        builder.push(0, None, Some(&zeros), &[]);
        let bomb = builder.build();
        let max_bytes = bomb.size_in_bytes();
        let limit = decompressed_limit(max_bytes);
        let inflated = zeros.len() + 20;
        if inflated <= limit {
            // Snappy cannot inflate more than about 21 times, so its bomb is a lie instead, below.
            assert_eq!(codec, CompressionType::Snappy);
            continue;
        }
        assert_eq!(
            bomb.validate(max_bytes),
            Err(BatchError::DecompressedTooLarge { codec, limit }),
            "{codec}: {max_bytes} bytes compressed"
        );
        // Under a larger batch limit the same batch is fine.
        bomb.validate(inflated.div_ceil(MAX_COMPRESSION_RATIO))
            .unwrap();
    }
}

#[test]
fn a_snappy_block_claiming_a_huge_length_is_refused_before_allocating() {
    let mut builder = RecordBatchBuilder::new().compression(CompressionType::Snappy);
    builder.push(0, None, Some(b"v"), &[]);
    let template = builder.build();
    // A raw snappy payload whose length preamble claims 4 GiB - 1 bytes.
    let raw_claim: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    // The xerial framing with many blocks, each claiming 1 GiB.
    let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    for _ in 0..64 {
        xerial.extend_from_slice(&5u32.to_be_bytes());
        xerial.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x04]);
    }
    for payload in [raw_claim, &xerial[..]] {
        let batch = with_records_section(&template, payload);
        assert_eq!(
            batch.validate(usize::MAX),
            Err(BatchError::DecompressedTooLarge {
                codec: CompressionType::Snappy,
                limit: MAX_DECOMPRESSED_BYTES
            })
        );
    }
}

#[test]
fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
    // A tiny frame that declares a 128 MiB window: the decoder would allocate it up front.
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    encoder.window_log(27).unwrap();
    std::io::Write::write_all(&mut encoder, &[1u8; 100]).unwrap();
    let frame = encoder.finish().unwrap();
    let mut builder = RecordBatchBuilder::new().compression(CompressionType::Zstd);
    builder.push(0, None, Some(b"v"), &[]);
    let batch = with_records_section(&builder.build(), &frame);
    match batch.validate(batch.size_in_bytes()) {
        Err(BatchError::CorruptCompression {
            codec: CompressionType::Zstd,
            reason,
        }) => assert!(reason.contains("memory"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn recompressing_changes_only_the_records_section_and_its_codec() {
    let expected = records_of(&batch_with(CompressionType::None));
    for from in CompressionType::ALL {
        let mut bytes = batch_with(from).into_bytes().to_vec();
        RecordBatch::set_base_offset(&mut bytes, 0);
        let original = RecordBatch::new(Bytes::from(bytes)).unwrap();
        for to in CompressionType::ALL {
            let recompressed = original.recompressed(to).unwrap();
            assert_eq!(recompressed.compression_type(), Ok(to), "{from} -> {to}");
            recompressed
                .validate(usize::MAX)
                .unwrap_or_else(|error| panic!("{from} -> {to}: {error}"));
            assert_eq!(records_of(&recompressed), expected, "{from} -> {to}");
            assert_eq!(
                recompressed.attributes() & !0x07,
                original.attributes() & !0x07
            );
            assert_eq!(recompressed.base_sequence(), original.base_sequence());
            assert_eq!(recompressed.max_timestamp(), original.max_timestamp());
        }
    }
    let broken = with_records_section(&batch_with(CompressionType::Lz4), &[0xab; 40]);
    assert!(matches!(
        broken.recompressed(CompressionType::Zstd),
        Err(BatchError::CorruptCompression { .. })
    ));
}

#[test]
fn the_decompression_limit_scales_with_max_bytes_up_to_a_ceiling() {
    assert_eq!(decompressed_limit(1 << 20), 64 << 20);
    assert_eq!(decompressed_limit(1_000), 64_000);
    assert_eq!(decompressed_limit(usize::MAX), MAX_DECOMPRESSED_BYTES);
    assert_eq!(decompressed_limit(1 << 30), MAX_DECOMPRESSED_BYTES);
}

#[test]
fn codec_names_parse_as_kafka_spells_them() {
    for codec in CompressionType::ALL {
        assert_eq!(codec.name().parse::<CompressionType>(), Ok(codec));
        assert_eq!(codec.to_string().parse::<CompressionType>(), Ok(codec));
        assert_eq!(CompressionType::from_id(codec.id()), Ok(codec));
    }
    assert_eq!(
        " ZSTD ".parse::<CompressionType>(),
        Ok(CompressionType::Zstd)
    );
    let error = "brotli".parse::<CompressionType>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown compression type 'brotli'; expected one of none, gzip, snappy, lz4, zstd"
    );
    assert_eq!(CompressionType::default(), CompressionType::None);
}

fn codec() -> impl Strategy<Value = CompressionType> {
    proptest::sample::select(CODECS.to_vec())
}

proptest! {
    /// Whatever bytes sit in a compressed batch's records section, validating and walking it
    /// give a result or a typed error, never a panic.
    #[test]
    fn arbitrary_compressed_payloads_never_panic(
        codec in codec(),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut builder = RecordBatchBuilder::new().compression(codec);
        builder.push(0, None, Some(b"v"), &[]);
        let batch = with_records_section(&builder.build(), &payload);
        let _ = batch.validate(usize::MAX);
        let _ = batch.records().count();
    }

    /// A valid compressed batch with one byte of its payload changed (and re-signed) is either
    /// still valid, with records that all decode, or refused with a typed error.
    #[test]
    fn mutated_compressed_payloads_are_refused_cleanly(
        codec in codec(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let batch = batch_with(codec);
        let mut payload = batch.as_bytes()[BATCH_HEADER_BYTES..].to_vec();
        let at = position.index(payload.len());
        payload[at] = byte;
        let mutated = with_records_section(&batch, &payload);
        if mutated.validate(usize::MAX).is_ok() {
            prop_assert!(mutated.records().all(|record| record.is_ok()));
        }
    }
}
