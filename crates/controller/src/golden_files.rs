//! Golden files: the bytes of a controller directory are checked in under `tests/golden/`,
//! because a controller reads its log, vote and snapshot back after every restart, for as long
//! as the cluster lives. Each file must decode to the values below and those values must encode
//! to exactly the file, so renaming a field, reordering a variant, changing how a value is
//! spelled, or an openraft upgrade that changes its types' JSON fails here instead of in a
//! deployed cluster. A change that breaks this test breaks users' existing data.
//!
//! The fixture is one controller directory after a restart-worthy history: a snapshot through
//! log index 9, the log purged up to it, and a segment holding a blank entry, a membership
//! entry and one entry of every [`MetadataCommand`] variant.
//!
//! - `golden/v1/`: what this build writes (format version 1, see `file_format`).
//! - `golden/unversioned/`: the same directory as builds wrote it before files carried a format
//!   version; deployed clusters hold such files, and they read as version 1. Never regenerated.
//!
//! A change that breaks these tests needs a new format version that still reads the old ones,
//! not regenerated files. Regenerate only for a new format version: `STRATA_WRITE_GOLDEN=1
//! cargo test -p strata-controller golden_files` writes the fixture this build writes afresh.

use crate::error::ControllerError;
use crate::log_store::{LogStore, encode_frame};
use crate::metadata_command::MetadataCommand;
use crate::metadata_state::{
    BrokerRegistration, MetadataState, NO_LEADER, PartitionMetadata, TopicMetadata,
};
use crate::node_identity::NodeIdentity;
use crate::raft_types::{Entry, LogId, Node, SnapshotMeta, StoredMembership, Vote};
use crate::state_machine_store::StateMachineStore;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, Membership, RaftLogReader};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use strata_common::TopicPartition;
use strata_storage::checkpoint;

/// The fixture this build writes.
const WRITTEN_FORMAT: &str = "v1";
/// The fixture of builds from before format versions.
const UNVERSIONED_FORMAT: &str = "unversioned";
const NODE_ID: i32 = 1;
const CLUSTER_ID: &str = "golden-cluster";

/// Every file of the fixture, relative to the controller directory; the names are part of the
/// format too.
const FILES: [&str; 6] = [
    "identity",
    "vote",
    "committed",
    "snapshot",
    "log/purged",
    "log/00000000000000000010.log",
];

fn fixture(format: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format)
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn membership() -> Membership<u64, Node> {
    let nodes: BTreeMap<u64, Node> = (1..=3)
        .map(|id| (id, Node::new(format!("controller-{id}:9093"))))
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn snapshot_meta() -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(log_id(1, 9)),
        last_membership: StoredMembership::new(Some(log_id(1, 1)), membership()),
        snapshot_id: "1-9-golden".to_string(),
    }
}

fn purged() -> LogId {
    log_id(1, 9)
}

fn vote() -> Vote {
    Vote::new_committed(2, 1)
}

fn committed() -> Option<LogId> {
    Some(log_id(2, 15))
}

/// One of every command, with every optional or collection field filled where it has one.
fn commands() -> Vec<MetadataCommand> {
    vec![
        MetadataCommand::InitializeCluster {
            cluster_id: CLUSTER_ID.to_string(),
        },
        MetadataCommand::RegisterBroker {
            broker_id: 4,
            address: "broker-4:9092".to_string(),
            incarnation: 18_446_744_073_709_551_000,
            now_ms: 1_700_000_000_000,
            kafka_address: None,
        },
        MetadataCommand::BrokerHeartbeat {
            broker_id: 4,
            broker_epoch: 12,
            now_ms: 1_700_000_002_000,
            offline_log_dirs: Vec::new(),
        },
        MetadataCommand::FenceBroker { broker_id: 2 },
        MetadataCommand::UnfenceBroker { broker_id: 2 },
        MetadataCommand::CreateTopic {
            name: "payments".to_string(),
            partitions: 3,
            replication_factor: 2,
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("retention.ms".to_string(), "86400000".to_string()),
            ]),
        },
        MetadataCommand::DeleteTopic {
            name: "audit".to_string(),
        },
        MetadataCommand::AlterTopicConfigs {
            name: "orders".to_string(),
            set: BTreeMap::from([(
                "unclean.leader.election.enable".to_string(),
                "true".to_string(),
            )]),
            delete: vec!["retention.ms".to_string()],
        },
        MetadataCommand::AlterPartitionIsr {
            partition: TopicPartition::new("orders", 1),
            leader_id: 2,
            leader_epoch: 4,
            new_isr: vec![2, 3],
        },
        MetadataCommand::ElectLeaders,
    ]
}

/// The segment after the snapshot: a new leader's blank entry, a membership change, then the
/// commands.
fn entries() -> Vec<Entry> {
    let mut entries = vec![
        Entry {
            log_id: log_id(2, 10),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(2, 11),
            payload: EntryPayload::Membership(membership()),
        },
    ];
    for (index, command) in (12..).zip(commands()) {
        entries.push(Entry {
            log_id: log_id(2, index),
            payload: EntryPayload::Normal(command),
        });
    }
    entries
}

/// A state with fenced and unfenced brokers, a leaderless partition and topic configs.
fn state() -> MetadataState {
    let broker = |broker_id: i32, fenced: bool| BrokerRegistration {
        broker_id,
        address: format!("broker-{broker_id}:9092"),
        incarnation: 1_000 + broker_id as u64,
        broker_epoch: i64::from(broker_id) * 3,
        fenced,
        last_heartbeat_ms: 1_699_999_990_000 + i64::from(broker_id),
        offline_log_dirs: Vec::new(),
        kafka_address: None,
        shutting_down: false,
    };
    let partition =
        |partition: i32, replicas: Vec<i32>, isr: Vec<i32>, leader: i32| PartitionMetadata {
            partition,
            replicas,
            isr,
            leader,
            leader_epoch: 4,
            partition_epoch: 7,
        };
    MetadataState {
        cluster_id: CLUSTER_ID.to_string(),
        metadata_offset: 8,
        // Users and ACLs are written only when there are some, so these files read the same
        // with or without them (see `MetadataState::users`).
        users: BTreeMap::new(),
        acls: Default::default(),
        brokers: BTreeMap::from([
            (1, broker(1, false)),
            (2, broker(2, false)),
            (3, broker(3, true)),
        ]),
        topics: BTreeMap::from([
            (
                "audit".to_string(),
                TopicMetadata {
                    topic_id: "c0ffee00c0ffee00c0ffee00c0ffee00".to_string(),
                    name: "audit".to_string(),
                    configs: BTreeMap::new(),
                    partitions: vec![partition(0, vec![3], vec![3], NO_LEADER)],
                },
            ),
            (
                "orders".to_string(),
                TopicMetadata {
                    topic_id: "0123456789abcdef0123456789abcdef".to_string(),
                    name: "orders".to_string(),
                    configs: BTreeMap::from([(
                        "retention.ms".to_string(),
                        "604800000".to_string(),
                    )]),
                    partitions: vec![
                        partition(0, vec![1, 2], vec![1, 2], 1),
                        partition(1, vec![2, 3], vec![2], 2),
                    ],
                },
            ),
        ]),
    }
}

/// Writes every golden value into `directory` through the stores, as a running controller would.
async fn write_directory(directory: &Path) {
    let mut identity = NodeIdentity::load_or_create(directory, NODE_ID).expect("identity");
    identity
        .check_and_record_cluster_id(CLUSTER_ID)
        .expect("record cluster id");
    let mut log = LogStore::open(directory).expect("open log");
    log.purge(purged()).await.expect("purge");
    log.blocking_append(entries()).await.expect("append");
    log.save_vote(&vote()).await.expect("save vote");
    log.save_committed(committed())
        .await
        .expect("save committed");
    let mut state_machine = StateMachineStore::open(directory).expect("open state machine");
    let data = serde_json::to_vec(&state()).expect("serialise state");
    state_machine
        .install_snapshot(&snapshot_meta(), Box::new(Cursor::new(data)))
        .await
        .expect("install snapshot");
}

fn copy_fixture(format: &str, into: &Path) {
    for file in FILES {
        let target = into.join(file);
        fs::create_dir_all(target.parent().expect("a parent")).expect("create directory");
        fs::copy(fixture(format).join(file), &target)
            .unwrap_or_else(|error| panic!("{format}/{file}: {error}"));
    }
}

/// Opens a copy of the fixture as a restarting controller would and checks what it holds.
async fn assert_fixture_reads_as_golden_values(format: &str) {
    let directory = tempfile::tempdir().expect("tempdir");
    copy_fixture(format, directory.path());

    let identity = NodeIdentity::load_or_create(directory.path(), NODE_ID).expect("identity");
    assert_eq!(
        identity.cluster_id(),
        Some(CLUSTER_ID),
        "{format}: identity"
    );

    let mut log = LogStore::open(directory.path()).expect("open log");
    assert_eq!(
        log.try_get_log_entries(..).await.expect("entries"),
        entries(),
        "{format}: log entries"
    );
    let log_state = log.get_log_state().await.expect("log state");
    assert_eq!(
        log_state.last_purged_log_id,
        Some(purged()),
        "{format}: purged"
    );
    assert_eq!(
        log.read_vote().await.expect("vote"),
        Some(vote()),
        "{format}"
    );
    assert_eq!(
        log.read_committed().await.expect("committed"),
        committed(),
        "{format}: committed"
    );

    let mut state_machine = StateMachineStore::open(directory.path()).expect("open snapshot");
    assert_eq!(state_machine.state(), &state(), "{format}: snapshot state");
    let snapshot = state_machine
        .get_current_snapshot()
        .await
        .expect("snapshot")
        .expect("a snapshot");
    assert_eq!(snapshot.meta, snapshot_meta(), "{format}: snapshot meta");
}

#[tokio::test]
async fn the_golden_values_encode_to_exactly_the_golden_bytes() {
    if std::env::var_os("STRATA_WRITE_GOLDEN").is_some() {
        let target = fixture(WRITTEN_FORMAT);
        let _ = fs::remove_dir_all(&target);
        fs::create_dir_all(&target).expect("create fixture directory");
        write_directory(&target).await;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    write_directory(directory.path()).await;
    for file in FILES {
        let written = fs::read(directory.path().join(file)).expect("read written");
        let golden = fs::read(fixture(WRITTEN_FORMAT).join(file)).expect("read golden");
        assert!(
            written == golden,
            "{file}: the bytes written changed; existing controller directories would no longer \
             match\nwritten: {}\ngolden:  {}",
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&golden)
        );
    }
}

#[tokio::test]
async fn the_golden_files_decode_to_exactly_the_golden_values() {
    assert_fixture_reads_as_golden_values(WRITTEN_FORMAT).await;
}

#[tokio::test]
async fn a_directory_from_before_format_versions_still_reads() {
    assert_fixture_reads_as_golden_values(UNVERSIONED_FORMAT).await;
}

/// Expects `opened` to refuse `path` for holding format version 2; returns the message.
fn assert_refused_as_version_2<T>(opened: Result<T, ControllerError>, path: &Path) -> String {
    match opened {
        Err(ControllerError::DataDirectoryMismatch(message)) => {
            assert!(
                message.starts_with(&path.display().to_string())
                    && message.contains("format version 2 is not supported")
                    && message.contains("reads versions 1 to 1"),
                "{message}"
            );
            message
        }
        Err(other) => panic!(
            "{}: expected a version refusal, got {other}",
            path.display()
        ),
        Ok(_) => panic!("{} holds version 2 and must not open", path.display()),
    }
}

#[tokio::test]
async fn every_file_of_an_unknown_format_version_is_refused_by_name() {
    let directory = tempfile::tempdir().expect("tempdir");
    copy_fixture(WRITTEN_FORMAT, directory.path());
    let path = |file: &str| directory.path().join(file);

    checkpoint::write(
        &path("identity"),
        br#"{"format_version":2,"node_id":1,"cluster_id":null}"#,
    )
    .expect("write identity");
    assert_refused_as_version_2(
        NodeIdentity::load_or_create(directory.path(), NODE_ID),
        &path("identity"),
    );

    // Each of the log store's files in turn, the earlier ones put back in the fixture's shape.
    let segment = path("log/00000000000000000010.log");
    let mut frame = Vec::new();
    encode_frame(
        &mut frame,
        br#"{"version":2,"entry":{"a":"shape from the future"}}"#,
    );
    fs::write(&segment, &frame).expect("write segment");
    let message = assert_refused_as_version_2(LogStore::open(directory.path()), &segment);
    assert!(
        message.contains("the frame at byte 0: format version 2"),
        "{message}"
    );
    copy_fixture(WRITTEN_FORMAT, directory.path());
    for (file, kind) in [("vote", "vote"), ("log/purged", "purged")] {
        let future = format!(r#"{{"version":2,"{kind}":{{}}}}"#);
        checkpoint::write(&path(file), future.as_bytes()).expect("write");
        assert_refused_as_version_2(LogStore::open(directory.path()), &path(file));
        copy_fixture(WRITTEN_FORMAT, directory.path());
    }

    checkpoint::write(&path("snapshot"), br#"{"version":2,"snapshot":{}}"#)
        .expect("write snapshot");
    assert_refused_as_version_2(StateMachineStore::open(directory.path()), &path("snapshot"));
}

#[tokio::test]
async fn a_committed_hint_of_an_unknown_version_only_loses_the_head_start() {
    let directory = tempfile::tempdir().expect("tempdir");
    copy_fixture(WRITTEN_FORMAT, directory.path());
    let payload = br#"{"version":2,"committed":{}}"#;
    let mut bytes = crc32fast::hash(payload).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    fs::write(directory.path().join("committed"), bytes).expect("write committed");
    let mut log = LogStore::open(directory.path()).expect("open");
    assert_eq!(log.read_committed().await.expect("committed"), None);
    assert_eq!(log.read_vote().await.expect("vote"), Some(vote()));
}

#[test]
fn the_version_is_the_only_difference_from_before() {
    for (file, kind) in [
        ("vote", "vote"),
        ("log/purged", "purged"),
        ("snapshot", "snapshot"),
    ] {
        let payload = |format: &str| {
            let bytes = checkpoint::read(&fixture(format).join(file))
                .expect("read")
                .expect("present");
            String::from_utf8(bytes).expect("JSON")
        };
        assert_eq!(
            payload(WRITTEN_FORMAT),
            format!(
                r#"{{"version":1,"{kind}":{}}}"#,
                payload(UNVERSIONED_FORMAT)
            ),
            "{file}"
        );
    }
    assert_eq!(
        fs::read(fixture(WRITTEN_FORMAT).join("identity")).expect("read"),
        fs::read(fixture(UNVERSIONED_FORMAT).join("identity")).expect("read"),
        "the identity has always carried its version"
    );
}
