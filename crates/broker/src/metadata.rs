//! State this node keeps for itself, outside the replicated metadata: its identity (node id,
//! checked on every start so a data directory is never served under another id) and the counter
//! behind the idempotent-producer ids it hands out.
//!
//! Topics, partitions, leaders and brokers live in the Raft controller's replicated
//! `MetadataState`, not here. The file is `node-state`, a checksummed checkpoint holding JSON.

use crate::error::{BrokerError, PartitionError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use strata_storage::checkpoint;

const FILE_NAME: &str = "node-state";

/// Producer ids are striped by node id so every node can hand them out without coordination:
/// node `n` hands out `n, n + STRIDE, n + 2 * STRIDE, ...`. Node ids must stay below it.
pub const PRODUCER_ID_STRIDE: i64 = 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct NodeStateFile {
    node_id: i32,
    next_producer_sequence: i64,
}

pub struct NodeState {
    path: PathBuf,
    state: Mutex<NodeStateFile>,
}

impl NodeState {
    /// Loads the node state of `data_dir`, or initialises it. A data directory written by
    /// another node id is refused: its logs belong to that node.
    pub fn open(data_dir: &Path, node_id: i32) -> Result<NodeState, BrokerError> {
        if !(0..PRODUCER_ID_STRIDE as i32).contains(&node_id) {
            return Err(BrokerError::Startup(format!(
                "node id {node_id} must be between 0 and {}",
                PRODUCER_ID_STRIDE - 1
            )));
        }
        let path = data_dir.join(FILE_NAME);
        let state = match checkpoint::read(&path)? {
            Some(payload) => {
                let state: NodeStateFile = serde_json::from_slice(&payload).map_err(|error| {
                    BrokerError::Startup(format!(
                        "{} is not valid node state: {error}",
                        path.display()
                    ))
                })?;
                if state.node_id != node_id {
                    return Err(BrokerError::Startup(format!(
                        "data directory {} belongs to node {}, not node {node_id}; use that node id or another directory",
                        data_dir.display(),
                        state.node_id
                    )));
                }
                state
            }
            None => {
                let state = NodeStateFile {
                    node_id,
                    next_producer_sequence: 0,
                };
                checkpoint::write(
                    &path,
                    &serde_json::to_vec(&state).expect("node state serialises"),
                )?;
                state
            }
        };
        Ok(NodeState {
            path,
            state: Mutex::new(state),
        })
    }

    /// A producer id never handed out before on this cluster, even across restarts: the counter
    /// is persisted before the id leaves this node.
    pub fn allocate_producer_id(&self) -> Result<i64, PartitionError> {
        let mut state = self.state.lock().expect("node state lock");
        let mut next = state.clone();
        let producer_id =
            next.next_producer_sequence * PRODUCER_ID_STRIDE + i64::from(next.node_id);
        next.next_producer_sequence += 1;
        checkpoint::write(
            &self.path,
            &serde_json::to_vec(&next).expect("node state serialises"),
        )
        .map_err(PartitionError::from)?;
        *state = next;
        Ok(producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_ids_are_striped_by_node_and_survive_restarts() {
        let directory = tempfile::tempdir().unwrap();
        let state = NodeState::open(directory.path(), 3).unwrap();
        assert_eq!(state.allocate_producer_id().unwrap(), 3);
        assert_eq!(
            state.allocate_producer_id().unwrap(),
            3 + PRODUCER_ID_STRIDE
        );
        drop(state);
        let state = NodeState::open(directory.path(), 3).unwrap();
        assert_eq!(
            state.allocate_producer_id().unwrap(),
            3 + 2 * PRODUCER_ID_STRIDE
        );
        let error = NodeState::open(directory.path(), 4).err().unwrap();
        assert!(error.to_string().contains("belongs to node 3"), "{error}");
    }
}
