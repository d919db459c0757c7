//! Crash tests: cut the active segment at random byte positions and flip random bits, then
//! reopen and check that the log opens, keeps every batch that was fsynced, serves nothing
//! corrupt, and keeps its offsets dense.

mod support;

use rand::{Rng, SeedableRng, rngs::StdRng};
use std::fs::{self, OpenOptions};
use std::path::Path;
use strata_storage::LogConfig;
use support::*;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
        segment_index_bytes: 4096,
        retention_ms: None,
        segment_ms: None,
        ..LogConfig::default()
    }
}

/// What a crash left: every value written in offset order, how many records were fsynced, the
/// active segment and how many of its bytes were fsynced.
struct Crashed {
    expected: Vec<String>,
    durable_records: usize,
    active: std::path::PathBuf,
    durable_bytes: usize,
    written_bytes: usize,
}

fn active_segment(directory: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = fs::read_dir(directory)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

fn meaningful_length(path: &Path) -> usize {
    fs::read(path)
        .unwrap()
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(0, |index| index + 1)
}

/// Builds a log of `batches` batches of 3 records, fsyncs after `flushed_batches`, then "crashes"
/// (drops the log without closing it).
fn build(directory: &Path, batches: usize, flushed_batches: usize) -> Crashed {
    let clock = clock();
    let (log, _) = open(directory, config(), &clock);
    let mut expected = Vec::new();
    let mut durable = None;
    for round in 0..batches {
        let tag = format!("r{round}");
        log.append(batch_with_size(&tag, 3, START_MS + round as i64, 120), 0)
            .unwrap();
        expected.extend((0..3).map(|index| format!("{tag}-{index}")));
        if round + 1 == flushed_batches {
            log.flush().unwrap();
            log.checkpoint().unwrap();
            let active = active_segment(directory);
            durable = Some((active.clone(), meaningful_length(&active)));
        }
    }
    let active = active_segment(directory);
    let (durable_bytes, durable_records) = match durable {
        Some((flushed_active, bytes)) => {
            assert_eq!(
                flushed_active, active,
                "the test needs no roll between the flush and the crash"
            );
            (bytes, flushed_batches * 3)
        }
        None => (0, 0),
    };
    let written_bytes = meaningful_length(&active);
    Crashed {
        expected,
        durable_records,
        active,
        durable_bytes,
        written_bytes,
    }
}

/// Opens the damaged log and checks the invariants against what was written.
fn check_after_crash(directory: &Path, expected: &[String], durable_records: usize) {
    let clock = clock();
    let (log, report) = open(directory, config(), &clock);
    log.validate();
    let served: Vec<String> = values(&read_all(&log, 0, 4096))
        .iter()
        .map(|value| value.trim_end_matches('.').to_string())
        .collect();
    assert!(
        served.len() >= durable_records,
        "lost fsynced records: {} served, {durable_records} durable; {report:?}",
        served.len()
    );
    assert_eq!(
        &served[..],
        &expected[..served.len()],
        "served records must be a prefix of what was written"
    );
    // The log takes new appends where recovery left it.
    let end = log.log_end_offset();
    log.append(batch("after-crash", 1, START_MS), 0).unwrap();
    assert_eq!(log.log_end_offset(), end + 1);
    log.validate();
}

#[test]
fn cutting_the_active_segment_after_the_recovery_point_never_serves_a_torn_batch() {
    let mut rng = StdRng::seed_from_u64(0x0574_7a7a);
    for trial in 0..40 {
        let directory = tempfile::tempdir().unwrap();
        let crashed = build(directory.path(), 60, 40);
        // Only bytes the log never fsynced can be lost in a crash.
        let cut = rng.random_range(crashed.durable_bytes..=crashed.written_bytes);
        OpenOptions::new()
            .write(true)
            .open(&crashed.active)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        eprintln!("trial {trial}: cut {} at {cut}", crashed.active.display());
        check_after_crash(directory.path(), &crashed.expected, crashed.durable_records);
    }
}

#[test]
fn flipped_bits_after_the_recovery_point_are_cut_not_served() {
    let mut rng = StdRng::seed_from_u64(0xb175);
    for trial in 0..40 {
        let directory = tempfile::tempdir().unwrap();
        let crashed = build(directory.path(), 60, 40);
        let mut bytes = fs::read(&crashed.active).unwrap();
        for _ in 0..rng.random_range(1..4) {
            let position = rng.random_range(crashed.durable_bytes..crashed.written_bytes);
            bytes[position] ^= 1 << rng.random_range(0..8);
        }
        fs::write(&crashed.active, &bytes).unwrap();
        eprintln!(
            "trial {trial}: flipped bits in {}",
            crashed.active.display()
        );
        check_after_crash(directory.path(), &crashed.expected, crashed.durable_records);
    }
}

#[test]
fn garbage_after_zeroed_preallocation_is_reported() {
    let directory = tempfile::tempdir().unwrap();
    let crashed = build(directory.path(), 5, 0);
    let active = crashed.active;
    let mut bytes = fs::read(&active).unwrap();
    let end = bytes.len();
    bytes[end - 10..].copy_from_slice(b"stale-data");
    fs::write(&active, &bytes).unwrap();
    let clock = clock();
    let (log, report) = open(directory.path(), config(), &clock);
    let truncation = report
        .truncation
        .expect("stray bytes after the end are reported");
    assert_eq!(truncation.log_end_offset, 15);
    assert!(truncation.bytes_discarded > 0);
    assert_eq!(
        values(&read_all(&log, 0, 4096)).len(),
        crashed.expected.len()
    );
}

#[test]
fn a_corrupt_state_checkpoint_recovers_every_segment() {
    let directory = tempfile::tempdir().unwrap();
    let expected = build(directory.path(), 60, 60).expected;
    fs::write(directory.path().join("log-state-checkpoint"), b"garbage").unwrap();
    fs::write(directory.path().join("leader-epoch-checkpoint"), b"garbage").unwrap();
    let clock = clock();
    let (log, report) = open(directory.path(), config(), &clock);
    assert!(report.segments_recovered > 1);
    assert_eq!(values(&read_all(&log, 0, 4096)).len(), expected.len());
    assert_eq!(
        log.latest_epoch(),
        Some(0),
        "epochs are rebuilt from the batches"
    );
}
