//! openraft's storage conformance suite, run against the on-disk log and state machine stores.

use crate::log_store::LogStore;
use crate::raft_types::{StorageError, TypeConfig};
use crate::state_machine_store::StateMachineStore;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};
use tempfile::TempDir;

/// A fresh pair of stores in a new temporary directory, which lives as long as the guard.
struct DiskStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for DiskStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let directory =
            tempfile::tempdir().map_err(|error| StorageIOError::write(AnyError::new(&error)))?;
        let log_store = LogStore::open(directory.path())
            .map_err(|error| StorageIOError::read(AnyError::new(&error)))?;
        let state_machine = StateMachineStore::open(directory.path())
            .map_err(|error| StorageIOError::read(AnyError::new(&error)))?;
        Ok((directory, log_store, state_machine))
    }
}

#[test]
fn the_disk_stores_pass_openraft_storage_suite() {
    Suite::test_all(DiskStoreBuilder).expect("openraft storage suite");
}
