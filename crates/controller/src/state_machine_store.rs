//! The metadata state machine under Raft: openraft's `RaftStateMachine` around [`MetadataState`].
//!
//! The state lives in memory and is persisted only as snapshots: `snapshot` in the controller
//! directory, a `strata_storage::checkpoint` (written whole, fsynced, renamed) holding
//! `{"version":1,"snapshot":{"meta":...,"state":...}}`, JSON of the snapshot's Raft metadata
//! (last included log id, membership) and the `MetadataState` tagged with the controller's format
//! version; a file from before versions holds the bare `{"meta":...,"state":...}` and reads as
//! version 1, and an unknown version is refused (see `file_format`). On start
//! the state is the last snapshot's; openraft then re-applies the log entries after it (at once up
//! to the `committed` hint the log store keeps, the rest as the leader reports them committed).
//! Openraft builds a snapshot every few thousand entries and purges the log up to it.
//!
//! Every applied batch publishes the new state on a `tokio::sync::watch` channel, which is how
//! [`crate::Controller::metadata`] readers on every node see it.
//!
//! Thread-safety: openraft drives the state machine from one task (`&mut self`); snapshot builds
//! run concurrently on a copy, and the snapshot file is replaced under a mutex, newest wins.

use crate::error::ControllerError;
use crate::file_format;
use crate::metadata_state::MetadataState;
use crate::raft_types::{
    Entry, EntryResponse, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageIOError,
};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use strata_storage::checkpoint;
use tokio::sync::watch;

const SNAPSHOT_FILE: &str = "snapshot";
/// What the snapshot file's value is called next to its format version (see `file_format`).
const SNAPSHOT_KIND: &str = "snapshot";

/// The snapshot file's payload.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    state: MetadataState,
}

/// The current snapshot: its metadata and the bytes sent to followers (JSON of the state).
///
/// Those bytes are bare, without the format version the snapshot file carries: they are an RPC
/// payload, never stored as they are (a follower decodes them and writes its own file), and a
/// follower still on a build from before versions must be able to install a snapshot from an
/// upgraded leader. See `grpc_service` on mixed-version clusters.
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

impl StoredSnapshot {
    fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(self.data.clone())),
        }
    }
}

/// Writes a snapshot file unless a newer one is already current; returns whether it did.
fn store_snapshot(
    path: &Path,
    current: &Mutex<Option<StoredSnapshot>>,
    snapshot: StoredSnapshot,
    file_payload: &[u8],
    force: bool,
) -> Result<(), ControllerError> {
    let mut current = current
        .lock()
        .map_err(|_| ControllerError::Raft("an earlier snapshot write panicked".to_string()))?;
    let newer_exists = current
        .as_ref()
        .is_some_and(|existing| existing.meta.last_log_id > snapshot.meta.last_log_id);
    if newer_exists && !force {
        return Ok(());
    }
    checkpoint::write(path, file_payload)?;
    *current = Some(snapshot);
    Ok(())
}

fn snapshot_error<E: std::error::Error + 'static>(
    meta: Option<&SnapshotMeta>,
    verb: ErrorVerb,
    error: &E,
) -> StorageError {
    let subject = ErrorSubject::Snapshot(meta.map(|meta| meta.signature()));
    StorageIOError::new(subject, verb, AnyError::new(error)).into()
}

/// A snapshot id that differs between builds of the same log position (openraft's requirement
/// for telling transfers apart); the random part matters only for that.
fn snapshot_id(last_log_id: Option<&LogId>) -> String {
    let suffix: u32 = rand::random();
    match last_log_id {
        Some(log_id) => format!("{}-{}-{suffix:08x}", log_id.leader_id.term, log_id.index),
        None => format!("empty-{suffix:08x}"),
    }
}

pub(crate) struct StateMachineStore {
    snapshot_path: PathBuf,
    state: MetadataState,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    current_snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    published: watch::Sender<Arc<MetadataState>>,
}

impl StateMachineStore {
    /// Loads the last snapshot from `directory`, if any.
    pub(crate) fn open(directory: &Path) -> Result<StateMachineStore, ControllerError> {
        let snapshot_path = directory.join(SNAPSHOT_FILE);
        let (state, last_applied, last_membership, current) =
            match checkpoint::read(&snapshot_path)? {
                None => (
                    MetadataState::new(),
                    None,
                    StoredMembership::default(),
                    None,
                ),
                Some(payload) => {
                    let file: SnapshotFile = file_format::decode(SNAPSHOT_KIND, &payload)
                        .map_err(|error| error.at(&snapshot_path, "", "a metadata snapshot"))?;
                    state_is_valid(&file.state, &snapshot_path)?;
                    let data = serde_json::to_vec(&file.state).map_err(|error| {
                        ControllerError::Raft(format!("serialise state: {error}"))
                    })?;
                    let stored = StoredSnapshot {
                        meta: file.meta.clone(),
                        data,
                    };
                    (
                        file.state,
                        file.meta.last_log_id,
                        file.meta.last_membership,
                        Some(stored),
                    )
                }
            };
        let (published, _) = watch::channel(Arc::new(state.clone()));
        Ok(StateMachineStore {
            snapshot_path,
            state,
            last_applied,
            last_membership,
            current_snapshot: Arc::new(Mutex::new(current)),
            published,
        })
    }

    /// A receiver of every state this store applies from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<MetadataState>> {
        self.published.subscribe()
    }

    pub(crate) fn state(&self) -> &MetadataState {
        &self.state
    }

    fn publish(&self) {
        self.published.send_replace(Arc::new(self.state.clone()));
    }
}

fn state_is_valid(state: &MetadataState, path: &Path) -> Result<(), ControllerError> {
    state.validate().map_err(|reason| ControllerError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("snapshot breaks a metadata invariant: {reason}"),
    })
}

/// Builds a snapshot from a copy of the state taken when openraft asked for the builder.
pub(crate) struct SnapshotBuilder {
    snapshot_path: PathBuf,
    state: MetadataState,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    current_snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id: snapshot_id(self.last_applied.as_ref()),
        };
        let data = serde_json::to_vec(&self.state)
            .map_err(|error| snapshot_error(Some(&meta), ErrorVerb::Write, &error))?;
        let file = SnapshotFile {
            meta: meta.clone(),
            state: self.state.clone(),
        };
        let file_payload = file_format::encode(SNAPSHOT_KIND, &file)
            .map_err(|error| snapshot_error(Some(&meta), ErrorVerb::Write, &error))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let snapshot = stored.to_snapshot();
        let path = self.snapshot_path.clone();
        let current = Arc::clone(&self.current_snapshot);
        tokio::task::spawn_blocking(move || {
            store_snapshot(&path, &current, stored, &file_payload, false)
        })
        .await
        .map_err(|error| snapshot_error(Some(&meta), ErrorVerb::Write, &error))?
        .map_err(|error| snapshot_error(Some(&meta), ErrorVerb::Write, &error))?;
        tracing::info!(last_log_id = ?meta.last_log_id, "built metadata snapshot");
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => EntryResponse::NotACommand,
                EntryPayload::Normal(command) => match self.state.apply_command(command) {
                    Ok(outcome) => EntryResponse::Applied(outcome),
                    Err(rejected) => EntryResponse::Rejected(rejected),
                },
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    EntryResponse::NotACommand
                }
            };
            responses.push(response);
        }
        if !responses.is_empty() {
            self.publish();
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            snapshot_path: self.snapshot_path.clone(),
            state: self.state.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            current_snapshot: Arc::clone(&self.current_snapshot),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state: MetadataState = serde_json::from_slice(&data)
            .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Read, &error))?;
        state_is_valid(&state, &self.snapshot_path)
            .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Read, &error))?;
        let file_payload = file_format::encode(
            SNAPSHOT_KIND,
            &SnapshotFile {
                meta: meta.clone(),
                state: state.clone(),
            },
        )
        .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Write, &error))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let path = self.snapshot_path.clone();
        let current = Arc::clone(&self.current_snapshot);
        // The leader's snapshot replaces ours even if ours has a later log id: our state is
        // about to be replaced by it, and the snapshot must describe the state we hold.
        tokio::task::spawn_blocking(move || {
            store_snapshot(&path, &current, stored, &file_payload, true)
        })
        .await
        .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Write, &error))?
        .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Write, &error))?;
        self.state = state;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.publish();
        tracing::info!(last_log_id = ?meta.last_log_id, "installed metadata snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let current = self.current_snapshot.lock().map_err(|_| {
            snapshot_error(
                None,
                ErrorVerb::Read,
                &std::io::Error::other("snapshot lock poisoned"),
            )
        })?;
        Ok(current.as_ref().map(StoredSnapshot::to_snapshot))
    }
}
