//! Behaviour of one partition log through its public API.

mod support;

use bytes::Bytes;
use std::fs;
use std::sync::Arc;
use strata_common::ErrorCode;
use strata_record::{
    BatchError, BatchIter, CompressionType, RecordBatch, RecordBatchBuilder, TimestampType,
};
use strata_storage::{Log, LogConfig, StorageError};
use support::*;

#[test]
fn append_assigns_dense_offsets_and_read_returns_whole_batches() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, report) = open(directory.path(), small_config(), &clock);
    assert!(report.truncation.is_none());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));

    let first = log.append(batch("a", 3, START_MS), 0).unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset, first.log_end_offset),
        (0, 2, 3)
    );
    let second = log.append(batch("b", 2, START_MS + 10), 0).unwrap();
    assert_eq!((second.base_offset, second.log_end_offset), (3, 5));

    // Reading from the middle of a batch returns that whole batch.
    let read = log.read(1, 1 << 20, None).unwrap();
    let batches: Vec<RecordBatch> = BatchIter::new(read.records)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].base_offset(), 0);
    assert_eq!(batches[0].partition_leader_epoch(), 0);
    assert_eq!(
        values(&read_all(&log, 0, 1 << 20)),
        ["a-0", "a-1", "a-2", "b-0", "b-1"]
    );
    assert!(log.read(5, 1 << 20, None).unwrap().records.is_empty());
    log.validate();
}

#[test]
fn max_bytes_bounds_a_read_but_one_batch_always_comes_back() {
    let directory = tempfile::tempdir().unwrap();
    let (log, _) = open(directory.path(), LogConfig::default(), &clock());
    for round in 0..4 {
        log.append(batch_with_size(&format!("r{round}"), 2, START_MS, 200), 0)
            .unwrap();
    }
    let one = log.read(0, 10, None).unwrap();
    assert_eq!(
        BatchIter::new(one.records).count(),
        1,
        "a batch larger than max_bytes still comes back alone"
    );
    let size = log.read(0, 10, None).unwrap().records.len() as u64;
    let two = log.read(0, 2 * size + 1, None).unwrap();
    assert_eq!(BatchIter::new(two.records).count(), 2);
    // The high watermark bounds what a read may see.
    let bounded = log.read(0, 1 << 20, Some(4)).unwrap();
    assert_eq!(BatchIter::new(bounded.records).count(), 2);
    assert!(log.read(4, 1 << 20, Some(4)).unwrap().records.is_empty());
}

#[test]
fn offsets_outside_the_log_are_out_of_range_with_the_valid_range() {
    let directory = tempfile::tempdir().unwrap();
    let (log, _) = open(directory.path(), small_config(), &clock());
    log.append(batch("a", 5, START_MS), 0).unwrap();
    let error = log.read(6, 1024, None).unwrap_err();
    assert!(matches!(
        error,
        StorageError::OffsetOutOfRange {
            requested: 6,
            log_start_offset: 0,
            log_end_offset: 5
        }
    ));
    assert_eq!(error.error_code(), ErrorCode::OffsetOutOfRange);
    // The last stored offset, not the log end offset, which no record has yet.
    assert!(error.to_string().contains("offsets 0 to 4"), "{error}");
    assert!(log.read(-1, 1024, None).is_err());
}

#[test]
fn invalid_batches_are_refused_and_change_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 400,
        ..small_config()
    };
    let (log, _) = open(directory.path(), config, &clock());
    log.append(batch("ok", 2, START_MS), 0).unwrap();

    let mut corrupt = batch("bad", 2, START_MS).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let error = log.append(corrupt.into(), 0).unwrap_err();
    assert!(matches!(
        error,
        StorageError::InvalidBatch {
            source: BatchError::CorruptCrc { .. },
            ..
        }
    ));
    assert_eq!(error.error_code(), ErrorCode::CorruptMessage);

    let mut wrong_magic = batch("bad", 2, START_MS).to_vec();
    wrong_magic[16] = 1;
    assert!(matches!(
        log.append(wrong_magic.into(), 0),
        Err(StorageError::InvalidBatch {
            source: BatchError::InvalidMagic(1),
            ..
        })
    ));

    let mut overrun = batch("bad", 2, START_MS).to_vec();
    overrun[8..12].copy_from_slice(&1_000_000i32.to_be_bytes());
    assert!(matches!(
        log.append(overrun.into(), 0),
        Err(StorageError::InvalidBatch { .. })
    ));

    let large = log
        .append(batch_with_size("big", 1, START_MS, 500), 0)
        .unwrap_err();
    assert!(matches!(large, StorageError::MessageTooLarge { .. }));
    assert_eq!(large.error_code(), ErrorCode::MessageTooLarge);

    // A request whose second batch is bad appends neither.
    let mut mixed = batch("fine", 1, START_MS).to_vec();
    let mut bad = batch("bad", 1, START_MS).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    mixed.extend_from_slice(&bad);
    assert!(matches!(
        log.append(mixed.into(), 0),
        Err(StorageError::InvalidBatch { index: 1, .. })
    ));
    assert!(matches!(
        log.append(bytes::Bytes::new(), 0),
        Err(StorageError::EmptyAppend)
    ));

    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(values(&read_all(&log, 0, 1 << 20)), ["ok-0", "ok-1"]);
    log.validate();
}

#[test]
fn compressed_batches_are_stored_as_sent_and_read_back() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), small_config(), &clock);
    let codecs = [
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ];
    let mut expected = Vec::new();
    for (round, codec) in (0..).zip(codecs) {
        let sent = compressed_batch(codec.name(), 3, START_MS + 100 * round, codec);
        let info = log.append(sent.clone(), 2).unwrap();
        assert_eq!(info.base_offset, 3 * round);
        // Only the base offset and leader epoch, outside the CRC, differ from what was sent.
        let stored = BatchIter::new(log.read(info.base_offset, 1, None).unwrap().records)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(stored.as_bytes()[16..], sent[16..], "{codec}");
        assert_eq!(stored.compression_type(), Ok(codec));
        assert_eq!(stored.partition_leader_epoch(), 2);
        expected.extend((0..3).map(|index| format!("{codec}-{index}")));
    }
    assert_eq!(values(&read_all(&log, 0, 1 << 20)), expected);
    // A lookup by time walks the records inside a compressed batch.
    let found = log.offset_for_timestamp(START_MS + 201).unwrap();
    assert_eq!((found.offset, found.timestamp), (7, START_MS + 201));
    log.validate();
    drop(log);
    let (reopened, _) = open(directory.path(), small_config(), &clock);
    assert_eq!(values(&read_all(&reopened, 0, 1 << 20)), expected);
}

#[test]
fn a_topic_compression_type_recompresses_other_codecs_and_keeps_its_own() {
    let directory = tempfile::tempdir().unwrap();
    let config = LogConfig {
        compression_type: Some(CompressionType::Zstd),
        ..small_config()
    };
    let (log, _) = open(directory.path(), config, &clock());
    let zstd = compressed_batch("z", 2, START_MS, CompressionType::Zstd);
    log.append(zstd.clone(), 0).unwrap();
    log.append(batch("plain", 2, START_MS), 0).unwrap();
    log.append(
        compressed_batch("gz", 2, START_MS, CompressionType::Gzip),
        0,
    )
    .unwrap();
    let stored: Vec<RecordBatch> = BatchIter::new(log.read(0, 1 << 20, None).unwrap().records)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len(), 3);
    assert!(
        stored
            .iter()
            .all(|batch| batch.compression_type() == Ok(CompressionType::Zstd))
    );
    // A batch already in the topic's codec is stored as sent.
    assert_eq!(stored[0].as_bytes()[16..], zstd[16..]);
    assert_eq!(
        values(&read_all(&log, 0, 1 << 20)),
        ["z-0", "z-1", "plain-0", "plain-1", "gz-0", "gz-1"]
    );
    log.validate();
}

#[test]
fn a_compressed_batch_inflating_past_its_limit_is_refused_as_too_large() {
    let directory = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 400,
        ..small_config()
    };
    let (log, _) = open(directory.path(), config, &clock());
    // 64 KiB of zeros compresses to well under 400 bytes but inflates past 64 x 400.
    let mut builder = RecordBatchBuilder::new().compression(CompressionType::Zstd);
    builder.push(START_MS, None, Some(&[0; 64 << 10]), &[]);
    let bomb = builder.build().into_bytes();
    assert!(bomb.len() <= 400);
    let error = log.append(bomb, 0).unwrap_err();
    assert!(matches!(
        error,
        StorageError::InvalidBatch {
            source: BatchError::DecompressedTooLarge { limit: 25_600, .. },
            ..
        }
    ));
    assert_eq!(error.error_code(), ErrorCode::MessageTooLarge);
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn segments_roll_by_size_and_reads_cross_them() {
    let directory = tempfile::tempdir().unwrap();
    let (log, _) = open(directory.path(), small_config(), &clock());
    let mut expected = Vec::new();
    for round in 0..40 {
        log.append(
            batch_with_size(&format!("r{round}"), 3, START_MS + round, 150),
            0,
        )
        .unwrap();
        expected.extend((0..3).map(|index| format!("r{round}-{index}")));
    }
    assert!(
        log.segment_base_offsets().len() > 3,
        "4 KiB segments must have rolled"
    );
    let mut padded = values(&read_all(&log, 0, 300));
    for value in &mut padded {
        *value = value.trim_end_matches('.').to_string();
    }
    assert_eq!(padded, expected);
    for name in [
        "00000000000000000000.log",
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
    ] {
        assert!(directory.path().join(name).exists(), "{name} exists");
    }
    log.validate();
}

#[test]
fn segments_roll_by_age() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = LogConfig {
        segment_ms: Some(1_000),
        ..small_config()
    };
    let (log, _) = open(directory.path(), config, &clock);
    log.append(batch("a", 1, START_MS), 0).unwrap();
    log.append(batch("b", 1, START_MS), 0).unwrap();
    assert_eq!(log.segment_base_offsets(), [0]);
    clock.advance_ms(1_000);
    log.append(batch("c", 1, START_MS), 0).unwrap();
    assert_eq!(log.segment_base_offsets(), [0, 2]);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let directory = tempfile::tempdir().unwrap();
    let (log, _) = open(directory.path(), small_config(), &clock());
    for round in 0..30 {
        // Records at START_MS + 100*round + {0,1,2}.
        log.append(batch(&format!("r{round}"), 3, START_MS + 100 * round), 0)
            .unwrap();
    }
    let found = log.offset_for_timestamp(START_MS + 1_001).unwrap();
    assert_eq!((found.offset, found.timestamp), (31, START_MS + 1_001));
    let between = log.offset_for_timestamp(START_MS + 1_050).unwrap();
    assert_eq!((between.offset, between.timestamp), (33, START_MS + 1_100));
    assert_eq!(log.offset_for_timestamp(0).unwrap().offset, 0);
    assert!(log.offset_for_timestamp(START_MS + 100_000).is_none());
}

#[test]
fn clean_reopen_keeps_everything_and_scans_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    {
        let (log, _) = open(directory.path(), small_config(), &clock);
        for round in 0..20 {
            log.append(
                batch_with_size(&format!("r{round}"), 2, START_MS + round, 150),
                3,
            )
            .unwrap();
        }
        log.close().unwrap();
        assert!(matches!(
            log.append(batch("late", 1, START_MS), 3),
            Err(StorageError::Closed(_))
        ));
    }
    let (log, report) = open(directory.path(), small_config(), &clock);
    assert!(report.clean_shutdown);
    assert_eq!(report.segments_recovered, 0);
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(log.recovery_point(), 40);
    assert_eq!(read_all(&log, 0, 1 << 20).len(), 40);
    assert_eq!(log.latest_epoch(), Some(3));
    log.append(batch("after", 1, START_MS), 3).unwrap();
    assert_eq!(log.log_end_offset(), 41);
    log.validate();
}

#[test]
fn unclean_reopen_recovers_from_the_recovery_point() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    {
        let (log, _) = open(directory.path(), small_config(), &clock);
        for round in 0..20 {
            log.append(
                batch_with_size(&format!("r{round}"), 2, START_MS + round, 150),
                0,
            )
            .unwrap();
        }
        log.flush().unwrap();
        assert_eq!(log.recovery_point(), 40);
        log.checkpoint().unwrap();
        log.append(batch("unflushed", 1, START_MS), 0).unwrap();
        // Dropped without close: a crash, but the page cache kept every write.
    }
    let (log, report) = open(directory.path(), small_config(), &clock);
    assert!(!report.clean_shutdown);
    assert!(report.truncation.is_none());
    assert!(report.segments_recovered >= 1);
    assert_eq!(log.log_end_offset(), 41);
    log.validate();
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    {
        let (log, _) = open(directory.path(), small_config(), &clock);
        for round in 0..30 {
            log.append(
                batch_with_size(&format!("r{round}"), 2, START_MS + 10 * round, 150),
                0,
            )
            .unwrap();
        }
        log.close().unwrap();
    }
    fs::remove_file(directory.path().join("00000000000000000000.index")).unwrap();
    let time_index = directory.path().join("00000000000000000000.timeindex");
    let mut bytes = fs::read(&time_index).unwrap();
    for byte in bytes.iter_mut().take(24) {
        *byte = 0xff;
    }
    fs::write(&time_index, bytes).unwrap();
    let (log, report) = open(directory.path(), small_config(), &clock);
    assert!(
        report.segments_recovered >= 1,
        "the broken segment was rebuilt"
    );
    assert_eq!(read_all(&log, 0, 100).len(), 60);
    assert_eq!(log.offset_for_timestamp(START_MS + 101).unwrap().offset, 21);
    log.validate();
}

#[test]
fn truncate_to_drops_the_tail_across_segments_and_is_durable() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), small_config(), &clock);
    for round in 0..30 {
        log.append(
            batch_with_size(&format!("r{round}"), 2, START_MS, 150),
            round / 10,
        )
        .unwrap();
    }
    assert!(log.segment_base_offsets().len() > 2);
    log.truncate_to(13).unwrap();
    // Offset 13 is inside the batch 12..=13, which goes entirely.
    assert_eq!(log.log_end_offset(), 12);
    // Epoch 1 started at offset 20, beyond the cut, so it is forgotten.
    assert_eq!(log.latest_epoch(), Some(0));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 12)));
    log.validate();
    log.append(batch("new", 3, START_MS), 5).unwrap();
    assert_eq!(log.end_offset_for_epoch(1), Some((0, 12)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 15)));
    drop(log);
    let (log, _) = open(directory.path(), small_config(), &clock);
    let read = values(&read_all(&log, 0, 1 << 20));
    assert_eq!(read.len(), 15);
    assert_eq!(&read[12..], ["new-0", "new-1", "new-2"]);
    log.validate();
}

#[test]
fn follower_appends_keep_offsets_and_epochs() {
    let leader_directory = tempfile::tempdir().unwrap();
    let follower_directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (leader, _) = open(leader_directory.path(), small_config(), &clock);
    let (follower, _) = open(follower_directory.path(), small_config(), &clock);
    leader.append(batch("a", 2, START_MS), 1).unwrap();
    leader.append(batch("b", 2, START_MS), 2).unwrap();
    let fetched = leader.read(0, 1 << 20, None).unwrap().records;
    follower.append_as_follower(fetched).unwrap();
    assert_eq!(follower.log_end_offset(), 4);
    assert_eq!(
        follower.leader_epoch_entries(),
        leader.leader_epoch_entries()
    );
    // A batch that does not continue the log is refused.
    let again = leader.read(0, 1 << 20, None).unwrap().records;
    assert!(matches!(
        follower.append_as_follower(again),
        Err(StorageError::NonMonotonicOffsets {
            expected: 4,
            found: 0
        })
    ));
    // And a leader from an older epoch cannot write.
    assert!(matches!(
        follower.append(batch("zombie", 1, START_MS), 1),
        Err(StorageError::StaleLeaderEpoch {
            requested: 1,
            latest: 2
        })
    ));
}

#[test]
fn retention_by_time_and_size_never_deletes_the_active_segment() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), small_config(), &clock);
    for round in 0..30 {
        log.append(
            batch_with_size(&format!("r{round}"), 2, START_MS + round * 1_000, 150),
            0,
        )
        .unwrap();
    }
    let segments_before = log.segment_base_offsets().len();
    assert!(segments_before >= 3);

    log.set_config(LogConfig {
        retention_bytes: Some(log.size_in_bytes() / 2),
        ..small_config()
    })
    .unwrap();
    let by_size = log.enforce_retention().unwrap();
    assert!(by_size.segments_deleted > 0);
    assert!(log.size_in_bytes() >= small_config().segment_bytes.min(log.size_in_bytes()));
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert!(matches!(
        log.read(0, 100, None),
        Err(StorageError::OffsetOutOfRange { .. })
    ));

    // Every record is older than a minute: everything but the active segment goes.
    clock.set_ms(START_MS + 200_000);
    log.set_config(LogConfig {
        retention_ms: Some(60_000),
        ..small_config()
    })
    .unwrap();
    log.enforce_retention().unwrap();
    assert_eq!(log.segment_base_offsets().len(), 1);
    assert_eq!(log.log_end_offset(), 60);
    assert!(!read_all(&log, log.log_start_offset(), 1 << 20).is_empty());
    let log_files = fs::read_dir(directory.path())
        .unwrap()
        .filter(|entry| {
            entry.as_ref().unwrap().path().extension() == Some(std::ffi::OsStr::new("log"))
        })
        .count();
    assert_eq!(log_files, 1, "the deleted segments' files are gone too");
    log.validate();
}

#[test]
fn delete_records_before_moves_the_log_start_durably() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    {
        let (log, _) = open(directory.path(), small_config(), &clock);
        for round in 0..30 {
            log.append(batch_with_size(&format!("r{round}"), 2, START_MS, 150), 0)
                .unwrap();
        }
        assert_eq!(log.delete_records_before(25).unwrap(), 25);
        assert!(log.segment_base_offsets()[0] <= 25);
        assert!(matches!(
            log.read(24, 100, None),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        let records = read_all(&log, 25, 1 << 20);
        assert_eq!(records[0].offset, 25);
        assert!(log.delete_records_before(61).is_err());
    }
    let (log, _) = open(directory.path(), small_config(), &clock);
    assert_eq!(log.log_start_offset(), 25);
}

#[test]
fn flush_messages_moves_the_recovery_point() {
    let directory = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: Some(3),
        ..small_config()
    };
    let (log, _) = open(directory.path(), config, &clock());
    log.append(batch("a", 2, START_MS), 0).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append(batch("b", 2, START_MS), 0).unwrap();
    assert_eq!(log.recovery_point(), 4);
}

#[test]
fn an_append_kept_to_the_active_segment_refuses_other_work_and_changes_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: Some(10),
        ..small_config()
    };
    let (log, _) = open(directory.path(), config, &clock());
    let refused = |records: Bytes, leader_epoch: i32| {
        log.try_append_to_active_segment(records, leader_epoch)
            .unwrap()
            .is_none()
    };
    assert!(
        refused(batch("a", 1, START_MS), 0),
        "epoch 0 is not yet persisted"
    );
    log.append(batch("a", 1, START_MS), 0).unwrap();
    let info = log
        .try_append_to_active_segment(batch("b", 2, START_MS), 0)
        .unwrap()
        .expect("fits the active segment");
    assert_eq!((info.base_offset, info.log_end_offset), (1, 3));

    assert!(refused(batch("c", 1, START_MS), 1), "epoch 1 is new");
    assert!(
        refused(batch("c", 7, START_MS), 0),
        "10 records since the last fsync"
    );
    assert!(
        refused(batch_with_size("c", 1, START_MS, 4_000), 0),
        "needs a new 4 KiB segment"
    );
    assert!(matches!(
        log.try_append_to_active_segment(Bytes::from_static(b"not a batch"), 0),
        Err(StorageError::InvalidBatch { .. })
    ));
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.segment_base_offsets(), [0]);
    assert_eq!(values(&read_all(&log, 0, 1 << 20)), ["a-0", "b-0", "b-1"]);
    log.validate();
}

#[test]
fn log_append_time_stamps_the_broker_clock() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let (log, _) = open(directory.path(), config, &clock);
    clock.set_ms(START_MS + 5_000);
    let info = log.append(batch("a", 2, 42), 0).unwrap();
    assert_eq!(info.log_append_time, Some(START_MS + 5_000));
    let records = read_all(&log, 0, 1 << 20);
    assert!(
        records
            .iter()
            .all(|record| record.timestamp == START_MS + 5_000)
    );
}

#[test]
fn an_unreadable_log_directory_is_an_error_not_an_empty_log() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("not-a-directory");
    fs::write(&path, b"x").unwrap();
    let error = Log::open(&path, small_config(), clock())
        .err()
        .expect("opening a file as a log fails");
    assert!(error.to_string().contains("not-a-directory"), "{error}");
    assert_eq!(fs::read(&path).unwrap(), b"x", "nothing was touched");
}

#[test]
fn concurrent_readers_only_see_whole_batches() {
    let directory = tempfile::tempdir().unwrap();
    let (log, _) = open(directory.path(), small_config(), &clock());
    let log = Arc::new(log);
    let writes = 300;
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let log = log.clone();
            scope.spawn(move || {
                let mut offset = 0;
                while offset < writes * 2 {
                    let read = log.read(offset, 512, None).unwrap();
                    for batch in BatchIter::new(read.records) {
                        let batch = batch.expect("whole batch");
                        batch.verify_crc().expect("valid CRC");
                        assert!(batch.next_offset() > offset);
                        offset = batch.next_offset();
                    }
                    std::thread::yield_now();
                }
            });
        }
        for round in 0..writes {
            log.append(batch(&format!("r{round}"), 2, START_MS), 0)
                .unwrap();
        }
    });
    log.validate();
}

fn idempotent_batch(sequence: i32, count: usize, epoch: i16) -> bytes::Bytes {
    let mut builder = strata_record::RecordBatchBuilder::new().producer(42, epoch, sequence);
    for index in 0..count {
        builder.push(
            START_MS,
            None,
            Some(format!("s{}", sequence as usize + index).as_bytes()),
            &[],
        );
    }
    builder.build().into_bytes()
}

#[test]
fn a_retried_producer_batch_is_written_once_and_keeps_its_offsets() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), small_config(), &clock);
    log.append(batch("plain", 1, START_MS), 0).unwrap();
    let first = log.append(idempotent_batch(0, 2, 0), 0).unwrap();
    assert_eq!((first.base_offset, first.duplicate), (1, false));
    let retry = log.append(idempotent_batch(0, 2, 0), 0).unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (1, 2, true)
    );
    assert_eq!(log.log_end_offset(), 3, "the retry wrote nothing");

    let skipped = log.append(idempotent_batch(5, 1, 0), 0).unwrap_err();
    assert!(matches!(
        skipped,
        StorageError::OutOfOrderSequence {
            expected: 2,
            found: 5,
            ..
        }
    ));
    assert_eq!(skipped.error_code(), ErrorCode::OutOfOrderSequenceNumber);
    log.append(idempotent_batch(2, 1, 0), 0).unwrap();
    log.append(idempotent_batch(0, 1, 1), 0).unwrap();
    let zombie = log.append(idempotent_batch(3, 1, 0), 0).unwrap_err();
    assert_eq!(zombie.error_code(), ErrorCode::InvalidProducerEpoch);
    drop(log);

    // Producer state is rebuilt from the log: the retry is still recognised after a restart.
    let (log, _) = open(directory.path(), small_config(), &clock);
    let retry = log.append(idempotent_batch(0, 1, 1), 0).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 4);
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn a_follower_behind_the_leaders_log_start_restarts_its_log_there() {
    let leader_directory = tempfile::tempdir().unwrap();
    let follower_directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (leader, _) = open(leader_directory.path(), small_config(), &clock);
    for round in 0..10 {
        leader
            .append(batch(&format!("l{round}"), 1, START_MS), 0)
            .unwrap();
    }
    let (follower, _) = open(follower_directory.path(), small_config(), &clock);
    for round in 0..3 {
        follower
            .append(batch(&format!("f{round}"), 1, START_MS), 0)
            .unwrap();
    }

    follower.truncate_fully_and_start_at(5).unwrap();
    assert_eq!(
        (follower.log_start_offset(), follower.log_end_offset()),
        (5, 5)
    );
    assert!(follower.read(5, 1 << 20, None).unwrap().records.is_empty());
    let tail = leader.read(5, 1 << 20, None).unwrap().records;
    follower.append_as_follower(tail).unwrap();
    assert_eq!(
        values(&read_all(&follower, 5, 1 << 20)),
        ["l5-0", "l6-0", "l7-0", "l8-0", "l9-0"]
    );
    follower.validate();
    drop(follower);

    let (reopened, _) = open(follower_directory.path(), small_config(), &clock);
    assert_eq!(
        (reopened.log_start_offset(), reopened.log_end_offset()),
        (5, 10)
    );
    assert_eq!(values(&read_all(&reopened, 5, 1 << 20)).len(), 5);
}

fn producer_batch(producer_id: i64, sequence: i32) -> bytes::Bytes {
    let mut builder = strata_record::RecordBatchBuilder::new().producer(producer_id, 0, sequence);
    builder.push(START_MS, None, Some(b"value"), &[]);
    builder.build().into_bytes()
}

#[test]
fn idle_producer_ids_expire_in_maintenance_and_the_least_recent_go_past_the_limit() {
    let root = tempfile::tempdir().unwrap();
    let clock = clock();
    let manager = strata_storage::LogManager::new(root.path(), clock.clone()).unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: 60_000,
        max_producer_ids: 3,
        ..small_config()
    };
    let partition = strata_common::TopicPartition::new("idempotent", 0);
    let (log, _) = manager.open_log(&partition, config).unwrap();
    let out_of_order = |result: Result<_, StorageError>| {
        matches!(result, Err(StorageError::OutOfOrderSequence { .. }))
    };

    log.append(producer_batch(1, 0), 0).unwrap();
    assert!(out_of_order(log.append(producer_batch(1, 5), 0)));
    clock.advance_ms(59_999);
    manager.run_maintenance();
    assert_eq!(log.producer_id_count(), 1, "not idle for long enough yet");
    clock.advance_ms(1);
    manager.run_maintenance();
    assert_eq!(log.producer_id_count(), 0);
    // Unknown after expiry, the producer resumes at any sequence (Kafka since KIP-360).
    log.append(producer_batch(1, 5), 0).unwrap();

    for producer_id in 10..13 {
        clock.advance_ms(1);
        log.append(producer_batch(producer_id, 0), 0).unwrap();
    }
    assert_eq!(
        log.producer_id_count(),
        3,
        "producer 1 was the least recent"
    );
    log.append(producer_batch(1, 9), 0).unwrap();
    assert_eq!(log.producer_id_count(), 3);
    assert!(
        out_of_order(log.append(producer_batch(12, 7), 0)),
        "the most recent producers are remembered"
    );
    log.append(producer_batch(10, 7), 0).unwrap();
    manager.close_all().unwrap();
}
