//! openraft's storage conformance suite (`openraft::testing::Suite`) on the simulated log
//! disk with the real state machine, as replication/src/conformance.rs runs it on the
//! RocksDB store: the simulation's disk must be a correct log store before its crashes
//! mean anything.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use prism_engine::Keyspace;
use prism_replication::types::StorageError;
use prism_replication::{KeyspaceStateMachine, TypeConfig};
use prism_sim::disk::{Disk, SimLog};
use prism_sim::DiskFault;
use tempfile::TempDir;

struct SimStores;

impl StoreBuilder<TypeConfig, SimLog, KeyspaceStateMachine, TempDir> for SimStores {
    async fn build(&self) -> Result<(TempDir, SimLog, KeyspaceStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = SimLog::open(Disk::default(), 1, DiskFault::None);
        let sm = KeyspaceStateMachine::open(&dir.path().join("snapshot"), Arc::new(Keyspace::new()))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_the_simulated_disk() {
    Suite::test_all(SimStores).expect("conformance suite");
}
