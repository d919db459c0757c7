//! Slices handed out by reads are views of memory-mapped segment files. These tests hold such
//! slices while a follower truncates the log, segments roll and recovery rewrites files, and then
//! read every byte of them: a file shrunk under a mapping would kill the process (SIGBUS), and a
//! file rewritten in place would change bytes a response is still sending.

mod support;

use bytes::Bytes;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use strata_storage::{Log, LogConfig};
use support::*;

/// Segments several pages long, so that a file shrunk under a mapping loses whole pages.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        segment_index_bytes: 4096,
        retention_ms: None,
        segment_ms: None,
        ..LogConfig::default()
    }
}

fn append_rounds(log: &Log, tag: &str, rounds: usize) {
    for round in 0..rounds {
        log.append(
            batch_with_size(&format!("{tag}{round}"), 2, START_MS, 2000),
            0,
        )
        .unwrap();
    }
}

/// One slice per segment, each holding all of that segment's batches.
fn slice_every_segment(log: &Log) -> Vec<Bytes> {
    log.segment_base_offsets()
        .into_iter()
        .map(|base| log.read(base, u64::MAX, None).unwrap().records)
        .filter(|slice| !slice.is_empty())
        .collect()
}

/// Each slice with a copy of the bytes it reads now.
fn with_copies(slices: Vec<Bytes>) -> Vec<(Bytes, Vec<u8>)> {
    slices
        .into_iter()
        .map(|slice| {
            let copy = slice.to_vec();
            (slice, copy)
        })
        .collect()
}

fn hold_every_segment(log: &Log) -> Vec<(Bytes, Vec<u8>)> {
    with_copies(slice_every_segment(log))
}

fn assert_unchanged(held: &[(Bytes, Vec<u8>)]) {
    for (index, (slice, copy)) in held.iter().enumerate() {
        assert!(
            slice[..] == copy[..],
            "slice {index} changed under its reader"
        );
    }
}

#[test]
fn truncating_into_a_closed_segment_leaves_every_held_slice_as_it_was() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), config(), &clock);
    append_rounds(&log, "old", 100);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    let held = hold_every_segment(&log);

    // Into the middle of the second segment, which is closed: it is cut and becomes active.
    let cut = bases[1] + (bases[2] - bases[1]) / 2;
    log.truncate_to(cut).unwrap();
    assert_eq!(log.log_end_offset(), cut);
    assert_unchanged(&held);
    // New appends fill the cut segment and roll it (trimming its file) several times over.
    append_rounds(&log, "new", 100);
    assert_unchanged(&held);
    log.validate();

    drop(log);
    let (reopened, _) = open(directory.path(), config(), &clock);
    reopened.validate();
    assert_eq!(reopened.log_end_offset(), cut + 200);
}

#[test]
fn truncating_the_active_segment_never_shrinks_its_file_under_a_held_slice() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, _) = open(directory.path(), config(), &clock);
    append_rounds(&log, "old", 14);
    assert_eq!(
        log.segment_base_offsets(),
        [0],
        "one segment, most of it used"
    );
    let (slice, copy) = hold_every_segment(&log).pop().unwrap();

    log.truncate_to(4).unwrap();
    let kept = log.read(0, u64::MAX, None).unwrap().records.len();
    assert_eq!(
        slice[..kept],
        copy[..kept],
        "bytes below the cut are untouched"
    );
    // A batch too large for what is left rolls the segment, which trims its file; the held
    // slice reaches far past the new end of the data.
    log.append(batch_with_size("large", 1, START_MS, 63 * 1024), 0)
        .unwrap();
    assert!(log.segment_base_offsets().len() > 1);
    // Bytes above the cut were zeroed (uncommitted records a follower discarded; receivers
    // refuse them by CRC); every byte is still readable.
    assert!(slice[kept..].iter().all(|&byte| byte == 0));
    log.validate();
    drop(log);
    let (reopened, _) = open(directory.path(), config(), &clock);
    reopened.validate();
    assert_eq!(reopened.log_end_offset(), 5);
}

#[test]
fn recovery_by_a_new_open_leaves_the_slices_and_indexes_of_the_old_one_alone() {
    let directory = tempfile::tempdir().unwrap();
    let clock = clock();
    let (old, _) = open(directory.path(), config(), &clock);
    append_rounds(&old, "old", 100);
    let bases = old.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");

    let slices = slice_every_segment(&old);

    // Damage a batch in the middle of the second segment, past the recovery point (nothing was
    // flushed): recovery cuts that segment there and deletes the segments after it. The held
    // slices see the damage (they map the same pages) and reach past the cut.
    let second = directory.path().join(format!("{:020}.log", bases[1]));
    let file = OpenOptions::new().write(true).open(&second).unwrap();
    let length = file.metadata().unwrap().len();
    file.write_all_at(&[0xff; 16], length / 2).unwrap();
    let held = with_copies(slices);

    let (recovered, report) = open(directory.path(), config(), &clock);
    let truncation = report.truncation.expect("the damaged batch is cut");
    assert_eq!(truncation.segment_base_offset, bases[1]);
    assert_unchanged(&held);
    // The old log's reads of the first segment, rebuilt by recovery too, still find their way
    // through its own index files.
    for offset in 0..bases[1] {
        let read = old.read(offset, 1, None).unwrap();
        assert!(!read.records.is_empty(), "offset {offset}");
    }
    recovered.validate();
    assert!(recovered.log_end_offset() < old.log_end_offset());
    append_rounds(&recovered, "new", 50);
    assert_unchanged(&held);
}
