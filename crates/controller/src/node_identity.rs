//! Which node and which cluster a controller directory belongs to.
//!
//! `<data_dir>/controller/identity` is a `strata_storage::checkpoint` holding JSON
//! `{format_version, node_id, cluster_id}`, written at the first start. The node id is fixed then;
//! the cluster id is recorded as soon as this node learns it from the metadata log (the first
//! controller leader names the cluster). A later start with another node id, or with an expected
//! cluster id that differs from the recorded one, is refused: the Raft log and votes in the
//! directory are that node's and that cluster's, and reusing them elsewhere could elect a leader
//! on another cluster's history.

use crate::error::ControllerError;
use crate::file_format;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use strata_storage::checkpoint;

const IDENTITY_FILE: &str = "identity";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct IdentityFile {
    /// The controller directory's format version (`file_format`). It has been here, under this
    /// name, since the first release, so unlike the other files' it needs no wrapper.
    format_version: u64,
    node_id: i32,
    cluster_id: Option<String>,
}

#[derive(Debug)]
pub(crate) struct NodeIdentity {
    path: PathBuf,
    file: IdentityFile,
}

impl NodeIdentity {
    /// Reads the identity in `directory`, or writes a new one for `node_id`.
    pub(crate) fn load_or_create(
        directory: &Path,
        node_id: i32,
    ) -> Result<NodeIdentity, ControllerError> {
        let path = directory.join(IDENTITY_FILE);
        let file = match checkpoint::read(&path)? {
            Some(payload) => {
                let file: IdentityFile =
                    serde_json::from_slice(&payload).map_err(|error| ControllerError::Corrupt {
                        path: path.clone(),
                        reason: format!("not a controller identity: {error}"),
                    })?;
                file_format::check_version(file.format_version)
                    .map_err(|error| error.at(&path, "", "a controller identity"))?;
                if file.node_id != node_id {
                    return Err(ControllerError::DataDirectoryMismatch(format!(
                        "controller data directory {} belongs to node {}, not node {node_id}; start node {} on it or give node {node_id} its own directory",
                        directory.display(),
                        file.node_id,
                        file.node_id
                    )));
                }
                file
            }
            None => {
                let file = IdentityFile {
                    format_version: u64::from(file_format::FORMAT_VERSION),
                    node_id,
                    cluster_id: None,
                };
                write(&path, &file)?;
                file
            }
        };
        Ok(NodeIdentity { path, file })
    }

    pub(crate) fn cluster_id(&self) -> Option<&str> {
        self.file.cluster_id.as_deref()
    }

    /// Refuses a cluster id other than the recorded one, and records it if none is.
    pub(crate) fn check_and_record_cluster_id(
        &mut self,
        cluster_id: &str,
    ) -> Result<(), ControllerError> {
        match &self.file.cluster_id {
            Some(recorded) if recorded == cluster_id => Ok(()),
            Some(recorded) => Err(ControllerError::DataDirectoryMismatch(format!(
                "controller data directory of {} belongs to cluster {recorded}, not cluster {cluster_id}",
                self.path.display()
            ))),
            None => {
                let mut next = self.file.clone();
                next.cluster_id = Some(cluster_id.to_string());
                write(&self.path, &next)?;
                self.file = next;
                Ok(())
            }
        }
    }
}

fn write(path: &Path, file: &IdentityFile) -> Result<(), ControllerError> {
    let payload = serde_json::to_vec(file)
        .map_err(|error| ControllerError::Raft(format!("serialise identity: {error}")))?;
    checkpoint::write(path, &payload)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_cluster_ids_stick_to_the_directory() {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut identity = NodeIdentity::load_or_create(directory.path(), 2).expect("create");
        assert_eq!(identity.cluster_id(), None);
        identity.check_and_record_cluster_id("abc").expect("record");
        identity
            .check_and_record_cluster_id("abc")
            .expect("same id again");
        assert!(matches!(
            identity.check_and_record_cluster_id("other"),
            Err(ControllerError::DataDirectoryMismatch(_))
        ));
        let reopened = NodeIdentity::load_or_create(directory.path(), 2).expect("reopen");
        assert_eq!(reopened.cluster_id(), Some("abc"));
        match NodeIdentity::load_or_create(directory.path(), 3) {
            Err(ControllerError::DataDirectoryMismatch(message)) => {
                assert!(
                    message.contains("belongs to node 2, not node 3"),
                    "{message}"
                );
            }
            other => panic!("expected a node id mismatch, got {other:?}"),
        }
    }
}
