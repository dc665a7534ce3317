//! openraft's storage conformance suite run against [`RocksLogStore`] and
//! [`KeyspaceStateMachine`], each store in its own temporary directory.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use prism_engine::Keyspace;
use tempfile::TempDir;

use crate::types::{StorageError, TypeConfig};
use crate::{KeyspaceStateMachine, RocksLogStore};

struct TempStores;

impl StoreBuilder<TypeConfig, RocksLogStore, KeyspaceStateMachine, TempDir> for TempStores {
    async fn build(&self) -> Result<(TempDir, RocksLogStore, KeyspaceStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = RocksLogStore::open(&dir.path().join("log"))?;
        let sm = KeyspaceStateMachine::open(&dir.path().join("snapshot"), Arc::new(Keyspace::new()))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(TempStores).expect("conformance suite");
}
