//! Golden files: a log directory written by format version 1 is checked in and must keep
//! opening with the same content. A change that breaks this test breaks users' existing data:
//! bump the format and migrate instead of regenerating the fixture.
//!
//! Regenerate only for a new format version: `STRATA_WRITE_GOLDEN=1 cargo test -p
//! strata-storage --test golden` writes `tests/golden/v1` afresh.

mod support;

use bytes::Bytes;
use std::fs;
use std::path::{Path, PathBuf};
use strata_record::{Header, RecordBatchBuilder};
use strata_storage::LogConfig;
use support::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 64,
        segment_index_bytes: 1024,
        retention_ms: None,
        segment_ms: None,
        ..LogConfig::default()
    }
}

fn golden_batch(round: i64) -> Bytes {
    let mut builder = RecordBatchBuilder::new().producer(1000 + round, 0, round as i32 * 4);
    for index in 0..4 {
        let key = format!("user-{}", (round + index) % 3);
        let value = format!("event {round}.{index} {}", "payload ".repeat(5));
        let headers = [Header {
            key: "source".into(),
            value: Some(Bytes::from_static(b"golden")),
        }];
        builder.push(
            1_700_000_000_000 + round * 1_000 + index,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &headers,
        );
    }
    builder.build().into_bytes()
}

fn write_fixture(directory: &Path) {
    let clock = clock();
    let (log, _) = open(directory, config(), &clock);
    for round in 0..8 {
        log.append(golden_batch(round), (round / 3) as i32).unwrap();
    }
    log.delete_records_before(2).unwrap();
    log.close().unwrap();
}

fn copy_directory(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn format_v1_log_directory_still_opens_with_the_same_content() {
    if std::env::var_os("STRATA_WRITE_GOLDEN").is_some() {
        let _ = fs::remove_dir_all(fixture());
        write_fixture(&fixture());
    }
    let copy = tempfile::tempdir().unwrap();
    copy_directory(&fixture(), copy.path());
    let clock = clock();
    let (log, report) = open(copy.path(), config(), &clock);
    assert!(report.clean_shutdown, "the fixture was closed cleanly");
    assert_eq!(report.segments_recovered, 0);
    assert!(
        log.segment_base_offsets().len() > 1,
        "the fixture spans several segments"
    );
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 32));
    assert_eq!(log.latest_epoch(), Some(2));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 12)));
    let records = read_all(&log, 2, 1 << 20);
    assert_eq!(records.len(), 30);
    let first = &records[0];
    assert_eq!(first.offset, 2);
    assert_eq!(first.timestamp, 1_700_000_000_002);
    assert_eq!(first.key.as_deref(), Some(&b"user-2"[..]));
    assert!(
        first
            .value
            .as_deref()
            .unwrap()
            .starts_with(b"event 0.2 payload")
    );
    assert_eq!(
        first.headers,
        [Header {
            key: "source".into(),
            value: Some(Bytes::from_static(b"golden"))
        }]
    );
    assert_eq!(
        log.offset_for_timestamp(1_700_000_005_001).unwrap().offset,
        21
    );
    log.validate();
}
