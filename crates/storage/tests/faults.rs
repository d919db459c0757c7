//! A failing disk, simulated with `strata_storage::fault`: what a log does when a segment cannot
//! be created, a write runs out of space or an fsync fails.

mod support;

use std::fs;
use std::path::Path;
use strata_storage::fault::{self, Fault, Operation};
use strata_storage::{Log, LogConfig};
use support::*;

/// Appends `count` batches of 200-byte records tagged `tag`, all of which must succeed.
fn append_batches(log: &Log, tag: &str, count: usize) {
    for index in 0..count {
        log.append(batch_with_size(&format!("{tag}{index}"), 2, START_MS, 200), 0)
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
            .append(batch_with_size(&format!("during{index}"), 2, START_MS, 200), 0)
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
