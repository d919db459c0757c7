//! A failing disk, simulated with `strata_storage::fault`: what a log does when a segment cannot
//! be created, a write runs out of space or an fsync fails.

mod support;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use strata_common::{ErrorCode, TopicPartition};
use strata_storage::fault::{self, Fault, Operation};
use strata_storage::{Log, LogConfig, LogManager, StorageError};
use support::*;

/// Appends `count` batches of 200-byte records tagged `tag`, all of which must succeed.
fn append_batches(log: &Log, tag: &str, count: usize) {
    for index in 0..count {
        log.append(
            batch_with_size(&format!("{tag}{index}"), 2, START_MS, 200),
            0,
        )
        .expect("append");
    }
}

fn segment_files(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_roll_that_cannot_create_its_segment_fails_the_append_and_the_next_append_rolls() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), small_config(), &clock);
    append_batches(&log, "before", 5);
    let segments_before = log.segment_base_offsets();
    let end_before = log.log_end_offset();
    let expected = values(&read_all(&log, 0, 1 << 20));

    let full_disk = fault::inject(directory.path(), Fault::no_space(Operation::SegmentCreate));
    let mut failures = 0;
    for index in 0..20 {
        if log
            .append(
                batch_with_size(&format!("during{index}"), 2, START_MS, 200),
                0,
            )
            .is_err()
        {
            failures += 1;
        }
    }
    assert!(failures > 0, "the segment filled up and a roll was needed");
    assert_eq!(full_disk.failures(), failures);
    // Every failed append found the old segment full; nothing of them is in the log.
    assert_eq!(log.segment_base_offsets(), segments_before);
    assert_eq!(
        segment_files(directory.path()).len(),
        segments_before.len(),
        "no half-created segment is left behind"
    );
    log.validate();
    let during = values(&read_all(&log, end_before, 1 << 20));
    drop(full_disk);

    log.append(batch_with_size("after", 1, START_MS, 200), 0)
        .expect("the roll succeeds once the disk has room");
    assert!(log.segment_base_offsets().len() > segments_before.len());
    log.validate();
    let mut all = expected;
    all.extend(during);
    all.push(format!("after-0{}", ".".repeat(193)));
    assert_eq!(values(&read_all(&log, 0, 1 << 20)), all);

    // Reopened after an unclean stop, the log is the same.
    drop(log);
    let (reopened, _) = open(directory.path(), small_config(), &clock);
    assert_eq!(values(&read_all(&reopened, 0, 1 << 20)), all);
}

#[test]
fn replacing_an_empty_segment_too_small_for_a_batch_survives_a_failed_create() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = LogConfig {
        segment_bytes: 1024,
        ..small_config()
    };
    let (log, _) = open(directory.path(), config.clone(), &clock);
    let large = batch_with_size("large", 1, START_MS, 2000);

    let full_disk = fault::inject(directory.path(), Fault::no_space(Operation::SegmentCreate));
    assert!(log.append(large.clone(), 0).is_err());
    assert!(
        log.append(batch("small", 1, START_MS), 0).is_err(),
        "the emptied segment takes nothing until it is replaced"
    );
    log.validate();
    assert_eq!(log.log_end_offset(), 0);
    drop(full_disk);

    log.append(large, 0).unwrap();
    log.append(batch("small", 1, START_MS), 0).unwrap();
    log.validate();
    assert_eq!(values(&read_all(&log, 0, 1 << 20)).len(), 2);
    drop(log);
    let (reopened, _) = open(directory.path(), config, &clock);
    assert_eq!(reopened.log_end_offset(), 2);
}

fn assert_offline(result: Result<impl std::fmt::Debug, StorageError>) {
    match result {
        Err(error @ StorageError::Offline { .. }) => {
            assert_eq!(error.error_code(), ErrorCode::KafkaStorageError)
        }
        other => panic!("expected the log to be offline, got {other:?}"),
    }
}

#[test]
fn a_failed_fsync_takes_the_log_offline_and_never_moves_the_recovery_point() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), small_config(), &clock);
    append_batches(&log, "synced", 3);
    log.flush().unwrap();
    log.checkpoint().unwrap();
    let durable = log.log_end_offset();
    assert_eq!(log.recovery_point(), durable);
    append_batches(&log, "unsynced", 3);
    let end = log.log_end_offset();
    let everything = values(&read_all(&log, 0, 1 << 20));

    // One fsync fails; the next would report success, though the failed pages may be gone.
    let failing = fault::inject(
        directory.path(),
        Fault::io_error(Operation::SegmentSync).times(1),
    );
    assert_offline(log.flush());
    assert_eq!(failing.failures(), 1);
    assert!(log.is_offline());
    assert!(matches!(
        log.offline_cause().as_deref(),
        Some(StorageError::Io {
            operation: "fsync segment",
            ..
        })
    ));
    assert_offline(log.flush());
    assert_offline(log.sync_rolled_segments());
    assert_eq!(
        log.recovery_point(),
        durable,
        "no fsync after the failure counts"
    );
    assert_eq!(failing.failures(), 1, "nothing even tried to fsync again");

    assert_offline(log.append(batch("refused", 1, START_MS), 0));
    assert_offline(log.try_append_to_active_segment(batch("refused", 1, START_MS), 0));
    assert_offline(log.append_as_follower(log.read(0, 1, None).unwrap().records));
    assert_offline(log.truncate_to(1));
    assert_offline(log.truncate_fully_and_start_at(100));
    assert_offline(log.delete_records_before(1));
    assert_offline(log.enforce_retention());
    assert_offline(log.checkpoint());
    assert_offline(log.close());
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(
        values(&read_all(&log, 0, 1 << 20)),
        everything,
        "what the log holds is still served"
    );
    drop(failing);
    drop(log);

    // The checkpoint never recorded more than was fsynced, so reopening recovers from there.
    let (reopened, report) = open(directory.path(), small_config(), &clock);
    assert!(!report.clean_shutdown);
    assert_eq!(reopened.recovery_point(), durable);
    assert!(report.segments_recovered > 0);
    assert!(!reopened.is_offline());
    // The page cache here kept every write, so all of it comes back; a real failure would have
    // lost some of what followed `durable`, never what came before.
    assert_eq!(values(&read_all(&reopened, 0, 1 << 20)), everything);
    reopened.append(batch("after", 1, START_MS), 0).unwrap();
    reopened.flush().unwrap();
    reopened.validate();
}

#[test]
fn a_full_disk_fails_the_append_without_a_trace_and_appends_resume_once_there_is_room() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), small_config(), &clock);
    append_batches(&log, "before", 3);
    let end = log.log_end_offset();
    let size = log.size_in_bytes();
    let before = values(&read_all(&log, 0, 1 << 20));

    let full_disk = fault::inject(directory.path(), Fault::no_space(Operation::AppendWrite));
    let error = log.append(batch("lost", 2, START_MS), 0).unwrap_err();
    assert!(
        matches!(&error, StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{error:?}"
    );
    assert_eq!(error.error_code(), ErrorCode::KafkaStorageError);
    assert!(!log.is_offline(), "a full disk is not a lost write");
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.size_in_bytes(), size);
    assert_eq!(values(&read_all(&log, 0, 1 << 20)), before);
    let segment = fs::read(directory.path().join(format!("{:020}.log", 0))).unwrap();
    assert!(
        segment[size as usize..].iter().all(|&byte| byte == 0),
        "what the failed write left is zeroed"
    );
    log.flush().unwrap();
    drop(full_disk);

    log.append(batch("after", 2, START_MS), 0).unwrap();
    log.validate();
    let mut expected = before;
    expected.extend(["after-0".to_string(), "after-1".to_string()]);
    assert_eq!(values(&read_all(&log, 0, 1 << 20)), expected);
    drop(log);
    let (reopened, _) = open(directory.path(), small_config(), &clock);
    assert_eq!(values(&read_all(&reopened, 0, 1 << 20)), expected);
}

#[test]
fn a_failed_append_that_cannot_be_undone_takes_the_log_offline_and_recovery_cuts_it() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), small_config(), &clock);
    append_batches(&log, "before", 3);
    log.flush().unwrap();
    let before = values(&read_all(&log, 0, 1 << 20));

    let full_disk = fault::inject(directory.path(), Fault::no_space(Operation::AppendWrite));
    let broken_disk = fault::inject(directory.path(), Fault::io_error(Operation::Zero));
    assert_offline(log.append(batch("torn", 2, START_MS), 0));
    assert!(matches!(
        log.offline_cause().as_deref(),
        Some(StorageError::Io {
            operation: "zero segment",
            ..
        })
    ));
    assert_offline(log.append(batch("refused", 1, START_MS), 0));
    assert_eq!(values(&read_all(&log, 0, 1 << 20)), before);
    drop((full_disk, broken_disk));
    drop(log);

    let (reopened, report) = open(directory.path(), small_config(), &clock);
    assert!(
        report.truncation.is_some(),
        "the stray header of the failed append is cut"
    );
    assert_eq!(values(&read_all(&reopened, 0, 1 << 20)), before);
    reopened.validate();
}

#[test]
fn the_log_manager_lists_offline_logs_and_reopens_one_it_forgot() {
    let root = tempfile::tempdir().unwrap();
    let manager = LogManager::new(root.path(), clock()).unwrap();
    let healthy = TopicPartition::new("healthy", 0);
    let failing = TopicPartition::new("failing", 0);
    let (healthy_log, _) = manager.open_log(&healthy, small_config()).unwrap();
    let (failing_log, _) = manager.open_log(&failing, small_config()).unwrap();
    append_batches(&healthy_log, "h", 2);
    append_batches(&failing_log, "f", 2);
    assert!(manager.offline_logs().is_empty());

    let fault = fault::inject(
        &manager.log_directory(&failing),
        Fault::io_error(Operation::SegmentSync),
    );
    assert_offline(failing_log.flush());
    healthy_log.flush().unwrap();
    manager.run_maintenance();
    let offline: Vec<TopicPartition> = manager
        .offline_logs()
        .into_iter()
        .map(|(partition, _)| partition)
        .collect();
    assert_eq!(offline, std::slice::from_ref(&failing));
    drop(fault);

    let forgotten = manager.forget_log(&failing).expect("it was open");
    let (reopened, report) = manager.open_log(&failing, small_config()).unwrap();
    assert!(report.is_some(), "opened afresh");
    assert!(!Arc::ptr_eq(&forgotten, &reopened));
    assert_eq!(reopened.log_end_offset(), 4);
    reopened.append(batch("again", 1, START_MS), 0).unwrap();
    assert!(manager.offline_logs().is_empty());
    manager.close_all().unwrap();
}
