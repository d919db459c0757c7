//! Strata's metadata controller: the cluster's brokers, topics, partition leaders and ISRs,
//! agreed on by a quorum of controllers with Raft.
//!
//! Bird's-eye view. A [`MetadataCommand`] proposed on any controller ([`Controller::submit`]) is
//! forwarded to the Raft leader, appended to the replicated log, and applied by every controller to
//! its own [`MetadataState`], a pure state machine (no IO, no clock). Each node publishes what it
//! applied on a watch channel ([`Controller::metadata`]) that brokers read. The Raft leader also
//! runs a driver that fences brokers whose sessions expired, using an injected `Clock`.
//!
//! Code map:
//! - `metadata_state`, `metadata_command`, `replica_assignment`, `broker_liveness`,
//!   `topic_config_keys`: the pure core and its decisions.
//! - `log_store`, `state_machine_store`, `node_identity`: what lives in `<data_dir>/controller/`.
//! - `raft_types`, `network`, `grpc_service`, `submit`: openraft's plumbing and the private gRPC
//!   service (`proto/controller.proto`).
//! - `controller`: the node that ties them together.
//!
//! Architecture invariant: openraft stays behind this crate. No public signature mentions an
//! openraft type, and no other crate depends on openraft.
//!
//! On-disk layout of `<data_dir>/controller/` (format version 1):
//!
//! | file | content |
//! |---|---|
//! | `identity` | node id, cluster id, format version (checkpoint, JSON) |
//! | `vote` | the Raft vote (checkpoint, versioned JSON), fsynced before it counts |
//! | `committed` | the last committed log id, a hint (CRC-32 + versioned JSON, not fsynced) |
//! | `log/{first_index:020}.log` | Raft log entries as checksummed frames of versioned JSON |
//! | `log/purged` | the last purged log id (checkpoint, versioned JSON) |
//! | `snapshot` | the last snapshot: Raft metadata and `MetadataState` (checkpoint, versioned JSON) |
//!
//! A checkpoint is `strata_storage::checkpoint`'s format: written whole, checksummed, fsynced and
//! renamed into place. Versioned JSON is `{"version":1,"<kind>":<value>}`; the format version
//! says what the value's fields mean, a value from before versions (bare) reads as version 1,
//! and an unknown version is refused naming the file (`file_format`). The bytes of a whole
//! directory are checked in under `tests/golden/`.

mod broker_liveness;
mod controller;
mod error;
mod file_format;
#[cfg(test)]
mod golden_files;
mod grpc_service;
mod log_store;
mod metadata_command;
mod metadata_state;
mod network;
mod node_identity;
mod pre_vote;
#[cfg(test)]
mod raft_storage_suite;
mod raft_types;
mod replica_assignment;
mod state_machine_store;
mod submit;
mod topic_config_keys;

pub use broker_liveness::liveness_commands;
pub use controller::{CONTROLLER_DIRECTORY, Controller, ControllerConfig, RaftStatus};
pub use error::{CommandRejected, ControllerError};
pub use grpc_service::ControllerGrpcService;
pub use metadata_command::{CommandOutcome, MetadataCommand};
pub use metadata_state::{
    BrokerRegistration, MetadataState, NO_LEADER, PARTITIONS_PER_TOPIC_MAX, PartitionMetadata,
    TopicMetadata,
};
pub use topic_config_keys::{TOPIC_CONFIG_KEYS, UNCLEAN_LEADER_ELECTION};
