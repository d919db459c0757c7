//! Golden files: the bytes of every kind of coordinator record are checked in, because
//! `__consumer_offsets` keeps them for as long as a cluster lives. Each file must decode to the
//! value below and each value must encode to exactly the file, so renaming a field, reordering
//! a variant or changing how a value is spelled fails here instead of in a deployed cluster.
//! A change that breaks this test breaks users' existing data: add a format version and keep
//! reading the old one instead of regenerating these files.
//!
//! - `golden/v1/`: what this coordinator writes today (format version 1, with its version).
//! - `golden/unversioned/`: what coordinators wrote before records carried a version; logs
//!   hold them still, and they read as version 1. Never regenerated.
//!
//! Regenerate only for a new format version: `STRATA_WRITE_GOLDEN=1 cargo test -p
//! strata-coordinator --test golden` writes `tests/golden/v1` afresh.

use std::fs;
use std::path::{Path, PathBuf};
use strata_common::TopicPartition;
use strata_coordinator::records::{GroupOffsets, RecordDecodeError, ShareStateEntry};
use strata_coordinator::share::{StoredRun, StoredSharePartition};
use strata_coordinator::{CoordinatorRecord, GroupState, MemberState, OffsetAndMetadata};

fn fixture(directory: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(directory)
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new("orders", partition)
}

fn offset() -> OffsetAndMetadata {
    OffsetAndMetadata {
        offset: 1_234,
        leader_epoch: 3,
        metadata: "checkpoint 7".to_string(),
        commit_timestamp: 1_700_000_000_000,
    }
}

/// A group mid-rebalance, so every member field has a value worth checking.
fn group() -> GroupState {
    let mut group = GroupState::new("billing", "uniform");
    group.group_epoch = 7;
    group.assignment_epoch = 6;
    group.partition_counts = [("orders".to_string(), 4)].into();
    group.members.insert(
        "member-1".to_string(),
        MemberState {
            member_id: "member-1".to_string(),
            instance_id: Some("worker-a".to_string()),
            member_epoch: 6,
            previous_member_epoch: 5,
            subscribed_topics: ["orders".to_string()].into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            assigned: [tp(0), tp(1)].into(),
            revoking: [tp(2)].into(),
            target: [tp(0), tp(1)].into(),
            left_temporarily: false,
        },
    );
    group.members.insert(
        "member-2".to_string(),
        MemberState {
            member_id: "member-2".to_string(),
            instance_id: None,
            member_epoch: 5,
            previous_member_epoch: 4,
            subscribed_topics: ["orders".to_string()].into(),
            rebalance_timeout_ms: 60_000,
            session_timeout_ms: 10_000,
            assigned: [tp(3)].into(),
            revoking: [].into(),
            target: [tp(2), tp(3)].into(),
            left_temporarily: true,
        },
    );
    group
}

fn share_partition() -> StoredSharePartition {
    let run = |first, last, state: &str, delivery_count| StoredRun {
        first,
        last,
        state: state.to_string(),
        delivery_count,
    };
    StoredSharePartition {
        start_offset: 10,
        fetch_offset: 20,
        runs: vec![
            run(10, 12, "acknowledged", 1),
            run(13, 15, "available", 2),
            run(16, 19, "archived", 5),
        ],
    }
}

/// One record of each kind, and each deletion, by file name.
fn golden_records() -> Vec<(&'static str, CoordinatorRecord)> {
    vec![
        (
            "offset_commit",
            CoordinatorRecord::OffsetCommit {
                group_id: "billing".to_string(),
                topic_partition: tp(0),
                value: Some(offset()),
            },
        ),
        (
            "offset_delete",
            CoordinatorRecord::OffsetCommit {
                group_id: "billing".to_string(),
                topic_partition: tp(0),
                value: None,
            },
        ),
        (
            "group",
            CoordinatorRecord::Group {
                group_id: "billing".to_string(),
                value: Some(group()),
            },
        ),
        (
            "group_delete",
            CoordinatorRecord::Group {
                group_id: "billing".to_string(),
                value: None,
            },
        ),
        (
            "share_state",
            CoordinatorRecord::ShareState {
                group_id: "jobs".to_string(),
                topic_partition: tp(1),
                value: Some(share_partition()),
            },
        ),
        (
            "share_state_delete",
            CoordinatorRecord::ShareState {
                group_id: "jobs".to_string(),
                topic_partition: tp(1),
                value: None,
            },
        ),
        (
            "snapshot",
            CoordinatorRecord::Snapshot {
                groups: vec![group()],
                offsets: vec![GroupOffsets {
                    group_id: "billing".to_string(),
                    offsets: vec![(tp(0), offset()), (tp(3), offset())],
                }],
                share: vec![ShareStateEntry {
                    group_id: "jobs".to_string(),
                    topic_partition: tp(1),
                    state: share_partition(),
                }],
            },
        ),
    ]
}

fn read(directory: &str, name: &str) -> Vec<u8> {
    let path = fixture(directory).join(format!("{name}.json"));
    fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn each_record_kind_encodes_to_its_golden_bytes_and_decodes_from_them() {
    if std::env::var_os("STRATA_WRITE_GOLDEN").is_some() {
        fs::create_dir_all(fixture("v1")).unwrap();
        for (name, record) in golden_records() {
            fs::write(
                fixture("v1").join(format!("{name}.json")),
                record.encode_value(),
            )
            .unwrap();
        }
    }
    for (name, record) in golden_records() {
        let golden = read("v1", name);
        assert_eq!(
            CoordinatorRecord::decode_value(&golden).as_ref(),
            Ok(&record),
            "{name}"
        );
        assert_eq!(
            String::from_utf8(record.encode_value()).unwrap(),
            String::from_utf8(golden).unwrap(),
            "{name}: the bytes written changed; existing logs would no longer match"
        );
    }
}

#[test]
fn records_written_before_the_version_was_added_read_as_version_1() {
    for (name, record) in golden_records() {
        let unversioned = read("unversioned", name);
        assert_eq!(
            CoordinatorRecord::decode_value(&unversioned).as_ref(),
            Ok(&record),
            "{name}"
        );
        // The only difference is the version around the record.
        let versioned = String::from_utf8(read("v1", name)).unwrap();
        let unversioned = String::from_utf8(unversioned).unwrap();
        assert_eq!(
            versioned,
            format!(r#"{{"version":1,"record":{unversioned}}}"#)
        );
    }
}

#[test]
fn a_version_this_coordinator_does_not_know_is_refused_by_name() {
    let offset_commit = String::from_utf8(read("unversioned", "offset_commit")).unwrap();
    for version in [0, 2, 4_294_967_296] {
        let bytes = format!(r#"{{"version":{version},"record":{offset_commit}}}"#);
        let error = CoordinatorRecord::decode_value(bytes.as_bytes()).unwrap_err();
        assert_eq!(
            error,
            RecordDecodeError::UnsupportedVersion {
                found: version,
                supported: 1..=1,
            }
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("format version {version} is not supported"))
                && message.contains("reads versions 1 to 1"),
            "{message}"
        );
    }
    let not_a_record = br#"{"version":1,"record":{"Unheard":{}}}"#;
    assert!(matches!(
        CoordinatorRecord::decode_value(not_a_record),
        Err(RecordDecodeError::Malformed(_))
    ));
}
