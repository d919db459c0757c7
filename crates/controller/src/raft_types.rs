//! The openraft type configuration. Everything openraft-specific stays inside this crate: no
//! public signature mentions an openraft type, so Raft can be replaced without touching callers.

use crate::error::CommandRejected;
use crate::metadata_command::{CommandOutcome, MetadataCommand};
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// What applying one log entry produced; the response `client_write` hands back to the proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EntryResponse {
    /// A blank or membership entry: Raft's own, not a metadata command.
    NotACommand,
    Applied(CommandOutcome),
    Rejected(CommandRejected),
}

openraft::declare_raft_types!(
    /// Strata's controller quorum: metadata commands in, their outcomes out, u64 node ids (the
    /// controller's i32 node ids, checked non-negative), snapshots as in-memory bytes.
    pub(crate) TypeConfig:
        D = MetadataCommand,
        R = EntryResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub(crate) type NodeId = u64;
pub(crate) type Node = openraft::BasicNode;
pub(crate) type Raft = openraft::Raft<TypeConfig>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type Vote = openraft::Vote<NodeId>;
pub(crate) type StorageError = openraft::StorageError<NodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub(crate) type Snapshot = openraft::Snapshot<TypeConfig>;
