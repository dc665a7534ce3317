//! A real one-member openraft group over the RocksDB log and the keyspace state machine:
//! writes commit and return their outputs, a snapshot is taken and the log purged, and a
//! restart from the same directories comes back with every acknowledged write (snapshot +
//! log replay). There are no peers, so the network only ever reports them unreachable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{Config, Raft};
use prism_engine::{Exists, Keyspace, Op, Output, TtlChange, Value, Write};

use crate::types::{NodeId, PeerNode, TypeConfig};
use crate::{KeyspaceStateMachine, RocksLogStore};

struct NoPeers;

fn no_peer<E: std::error::Error>() -> RPCError<NodeId, PeerNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other("no peer network in this test")))
}

impl RaftNetwork<TypeConfig> for NoPeers {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        Err(no_peer())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        Err(no_peer())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        Err(no_peer())
    }
}

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: NodeId, _node: &PeerNode) -> NoPeers {
        NoPeers
    }
}

fn set(k: &str, v: &str) -> Write {
    let op = Op::Set {
        key: Bytes::from(k.to_owned()),
        value: Bytes::from(v.to_owned()),
        exists: Exists::Any,
        ttl: TtlChange::Clear,
        get: false,
    };
    Write { now_ms: 1, op }
}

/// A started one-member group and the handle to its keyspace.
async fn start(dir: &std::path::Path) -> (Raft<TypeConfig>, Arc<Keyspace>) {
    let config =
        Config { heartbeat_interval: 50, election_timeout_min: 150, election_timeout_max: 300, ..Default::default() };
    let config = Arc::new(config.validate().expect("config"));
    let log = RocksLogStore::open(&dir.join("log")).expect("log");
    let sm = KeyspaceStateMachine::open(&dir.join("snapshot"), Arc::new(Keyspace::new())).expect("state machine");
    let keyspace = sm.keyspace();
    let raft = Raft::new(1, config, NoPeers, log, sm).await.expect("raft");
    (raft, keyspace)
}

fn str_at(ks: &Keyspace, key: &[u8]) -> Option<Value> {
    ks.get(key, 1, |e| e.map(|e| e.value.clone()))
}

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

#[test]
fn one_member_group_writes_snapshots_and_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let last = rt.block_on(async {
        let (raft, keyspace) = start(dir.path()).await;
        raft.initialize(BTreeMap::from([(1, PeerNode::new("127.0.0.1:1", "127.0.0.1:2"))])).await.expect("initialize");
        // Initializing starts an election; writes before it is won are refused (no leader yet).
        raft.wait(WAIT).current_leader(1, "elected itself").await.expect("leader");
        let reply = raft.client_write(vec![set("a", "1"), set("b", "2")]).await.expect("write");
        assert_eq!(reply.data, vec![Output::Ok, Output::Ok]);
        let incr = Write { now_ms: 1, op: Op::IncrBy { key: Bytes::from_static(b"a"), delta: 41 } };
        let reply = raft.client_write(vec![incr]).await.expect("write");
        assert_eq!(reply.data, vec![Output::Int(42)]);

        raft.trigger().snapshot().await.expect("trigger snapshot");
        raft.wait(WAIT).snapshot(reply.log_id, "snapshot built").await.expect("snapshot");
        raft.trigger().purge_log(reply.log_id.index).await.expect("trigger purge");
        raft.wait(WAIT).purged(Some(reply.log_id), "log purged").await.expect("purge");

        // After the snapshot: only in the log.
        let reply = raft.client_write(vec![set("c", "3")]).await.expect("write");
        assert_eq!(str_at(&keyspace, b"a"), Some(Value::Str(b"42".into())));
        raft.shutdown().await.expect("shutdown");
        reply.log_id
    });
    rt.block_on(async {
        let (raft, keyspace) = start(dir.path()).await;
        raft.wait(WAIT).applied_index_at_least(Some(last.index), "replayed").await.expect("replay");
        let ks = &*keyspace;
        assert_eq!(str_at(ks, b"a"), Some(Value::Str(b"42".into())));
        assert_eq!(str_at(ks, b"b"), Some(Value::Str(b"2".into())));
        assert_eq!(str_at(ks, b"c"), Some(Value::Str(b"3".into())));
        // Still a working group: the restarted member elects itself and takes writes.
        raft.wait(WAIT).current_leader(1, "elected itself after restart").await.expect("leader");
        let reply = raft.client_write(vec![set("d", "4")]).await.expect("write after restart");
        assert_eq!(reply.data, vec![Output::Ok]);
        raft.shutdown().await.expect("shutdown");
    });
}
