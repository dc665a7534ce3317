//! The software of one simulated member (a turmoil host): the real openraft `Raft` with
//! the real raft config (`GroupOptions::raft_config`) and the real
//! `KeyspaceStateMachine` over a fresh engine `Keyspace`, on the simulated disk
//! ([`crate::disk`]) and network ([`crate::net`]).
//!
//! Each (re)start is a new incarnation: it opens the durable part of its disk, a new
//! keyspace (the state machine is in memory, so openraft replays the log up to the
//! durable `committed`), and registers itself in [`Observed::live`]. A crash drops the
//! whole incarnation with the host's runtime.
//!
//! Not the node's proposer (`ShardGroup`, tied to the RocksDB store and the TLS peer
//! network): client writes go to `Raft::client_write` one by one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft};
use prism_engine::list::{End, ListOp};
use prism_engine::{Keyspace, Op, Write};
use prism_replication::network::{decode_message, encode_message};
use prism_replication::{KeyspaceStateMachine, NodeId, PeerNode, TypeConfig};
use turmoil::net::{TcpListener, TcpStream};

use crate::disk::{Disk, DiskFault, SimLog};
use crate::net::{host_name, read_frame, write_frame, Request, Response, SimNetwork, PORT};
use crate::observe::{Live, Shared};

/// How long a member waits for a client write or a membership change to commit before
/// answering "unknown".
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a member's software needs; shared by all its incarnations.
pub struct NodeSpec {
    pub id: NodeId,
    pub disk: Disk,
    pub snapshot_dir: PathBuf,
    pub config: Arc<Config>,
    pub observed: Shared,
    pub seed: u64,
    pub fault: DiskFault,
    /// The first voters, for the member that initializes the group (the lowest id).
    pub init: Option<BTreeMap<NodeId, PeerNode>>,
}

pub fn peer_node(id: NodeId) -> PeerNode {
    let addr = format!("{}:{PORT}", host_name(id));
    PeerNode::new(addr.clone(), addr)
}

/// One incarnation of member `spec.id`; runs until the host crashes.
pub async fn run(spec: Arc<NodeSpec>) -> turmoil::Result {
    let fresh = {
        let d = spec.disk.lock();
        d.image.vote.is_none() && d.image.entries.is_empty()
    };
    let log = SimLog::open(spec.disk.clone(), spec.seed ^ spec.id, spec.fault);
    let keyspace = Arc::new(Keyspace::new());
    let sm = KeyspaceStateMachine::open(&spec.snapshot_dir, keyspace.clone())?;
    let raft = Raft::new(spec.id, spec.config.clone(), SimNetwork, log, sm).await?;
    {
        let mut o = spec.observed.lock();
        o.event(format!("n{} start fresh={fresh}", spec.id));
        o.live.insert(spec.id, Live { keyspace, raft: raft.clone() });
    }
    if let (true, Some(members)) = (fresh, &spec.init) {
        // Refused if the group already formed (a peer's log): harmless, as for a node.
        let _ = raft.initialize(members.clone()).await;
    }
    tokio::spawn(watch_metrics(spec.id, raft.clone(), spec.observed.clone()));
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(stream, raft.clone()));
    }
}

/// Records every change of role, term, leader or applied index.
async fn watch_metrics(id: NodeId, raft: Raft<TypeConfig>, observed: Shared) {
    let mut rx = raft.metrics();
    let mut last = None;
    loop {
        let m = rx.borrow_and_update().clone();
        let key = (m.state, m.current_term, m.current_leader, m.last_applied);
        if last != Some(key) {
            observed.lock().on_metrics(id, &m);
            last = Some(key);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn serve(mut stream: TcpStream, raft: Raft<TypeConfig>) {
    let Ok(Ok(frame)) = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut stream)).await else {
        return;
    };
    let response = match decode_message::<Request>(&frame) {
        Ok(req) => handle(req, &raft).await,
        Err(e) => Response::Failed(format!("bad request: {e}")),
    };
    if let Ok(bytes) = encode_message(&response) {
        let _ = write_frame(&mut stream, &bytes).await;
    }
}

/// A client write or membership change as openraft answers it, within a timeout.
type WriteResult<T> =
    Result<Result<T, RaftError<NodeId, ClientWriteError<NodeId, PeerNode>>>, tokio::time::error::Elapsed>;

fn write_outcome<T>(r: WriteResult<T>, ok: Response) -> Response {
    match r {
        Ok(Ok(_)) => ok,
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Response::NotLeader(f.leader_id),
        Ok(Err(e)) => Response::Failed(e.to_string()),
        Err(_) => Response::Failed("timed out".into()),
    }
}

async fn handle(req: Request, raft: &Raft<TypeConfig>) -> Response {
    match req {
        Request::Append(rpc) => Response::Append(raft.append_entries(rpc).await),
        Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
        Request::Snapshot(rpc) => Response::Snapshot(raft.install_snapshot(rpc).await),
        Request::Push { key, token } => {
            // The leader fixes the write's time, as the node does.
            let now_ms = turmoil::sim_elapsed().map(|d| d.as_millis() as u64).unwrap_or(0);
            let op = Op::Lists(ListOp::Push { key, end: End::Right, elements: vec![token], only_if_exists: false });
            let r = tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(vec![Write { now_ms, op }])).await;
            write_outcome(r, Response::Pushed)
        }
        Request::AddLearner(id) => {
            let r = tokio::time::timeout(WRITE_TIMEOUT, raft.add_learner(id, peer_node(id), true)).await;
            write_outcome(r, Response::Done)
        }
        Request::ChangeMembership(voters) => {
            let r = tokio::time::timeout(WRITE_TIMEOUT, raft.change_membership(voters, false)).await;
            write_outcome(r, Response::Done)
        }
    }
}

/// The elements of list `key` in a member's keyspace (tokens are never integers, but an
/// integer element would still be reported as its decimal form).
pub fn read_list(keyspace: &Keyspace, key: &str) -> Vec<String> {
    keyspace.get(key.as_bytes(), 0, |entry| match entry.map(|e| &e.value) {
        Some(prism_engine::Value::List(list)) => list
            .iter()
            .map(|e| match e {
                prism_engine::list::Elem::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                prism_engine::list::Elem::Int(n) => n.to_string(),
            })
            .collect(),
        Some(_) => vec!["<not a list>".to_string()],
        None => Vec::new(),
    })
}

pub fn token_bytes(token: &str) -> Bytes {
    Bytes::copy_from_slice(token.as_bytes())
}
