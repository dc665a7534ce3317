//! The peer network: Raft RPCs between nodes on their own port (by default the client
//! port + 10000, as Redis's cluster bus), every group a node hosts multiplexed over one
//! TCP connection per ordered pair of nodes.
//!
//! Wire format: each frame is a little-endian u32 length followed by that many bytes of
//! bincode. A connection opens with a [`Hello`] from the dialer naming itself and the node
//! it means to reach; the listener answers with its own hello or closes. (The security
//! issue extends this handshake with the cluster secret.) After it, the dialer sends
//! [`Frame::Request`]s tagged with an id and a group; the listener answers each with a
//! [`Frame::Response`] of the same id, in any order.
//!
//! Invariants:
//! - Bounded: a frame over [`MAX_FRAME`] closes the connection; every call has a deadline
//!   (openraft's hard TTL), and outstanding calls fail when their connection dies.
//! - Addresses come from the node's own configuration (node id -> peer address), not from
//!   the membership stored in the log, so an operator (or a test's proxy) can reroute a
//!   link without touching the log.
//! - Nothing here interprets Raft: requests go to the group's `Raft` handle as they came.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::Raft;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::election::{Elections, TransferError};
use crate::types::{GroupId, NodeId, NodeStatus, PeerNode, TypeConfig};

/// Largest frame accepted: an append of many large values, or a snapshot chunk.
pub const MAX_FRAME: usize = 256 * 1024 * 1024;
/// Frames queued for one connection's writer before callers wait.
const QUEUE: usize = 1024;
const MAGIC: [u8; 8] = *b"PRSMPEER";
const VERSION: u32 = 1;
/// How long a dial may take before the peer counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The first frame in each direction.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub magic: [u8; 8],
    pub version: u32,
    /// The sender.
    pub from: NodeId,
    /// The node the dialer means to reach (checked by the listener: a misrouted link is
    /// refused rather than joining the wrong node's groups).
    pub to: NodeId,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A node's status for the fleet view (any group id; answered by [`Response::Noted`]).
    Status(NodeStatus),
    /// Leadership transfer, leader to target: campaign after `not_before_ms`, retrying for
    /// `window_ms`, if this member's log reaches `log_at_least` (answered by
    /// [`Response::Campaign`]).
    Campaign {
        not_before_ms: u64,
        window_ms: u64,
        log_at_least: u64,
    },
    /// `CLUSTER FAILOVER`, replica to leader: hand leadership to `to` (answered by
    /// [`Response::Transfer`] once the transfer ended).
    Transfer {
        to: NodeId,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// The listener hosts no such group.
    NoGroup(GroupId),
    /// A [`Request::Status`] was handed to the node's status sink.
    Noted,
    Campaign(Result<(), String>),
    /// Who leads after the transfer.
    Transfer(Result<NodeId, TransferError>),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Frame {
    Request { id: u64, group: GroupId, body: Request },
    Response { id: u64, body: Response },
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    w.write_all(&(bytes.len() as u32).to_le_bytes()).await?;
    w.write_all(bytes).await
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("peer frame of {len} bytes")));
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    bincode::serialize(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> io::Result<T> {
    bincode::deserialize(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Where a node's listener hands the statuses other nodes send it.
pub type StatusSink = Arc<dyn Fn(NodeStatus) + Send + Sync>;

/// The groups a node hosts, as the listener finds them, and its status sink.
#[derive(Default, Clone)]
pub struct Groups {
    inner: Arc<RwLock<HashMap<GroupId, Raft<TypeConfig>>>>,
    status: Arc<RwLock<Option<StatusSink>>>,
    elections: Arc<RwLock<HashMap<GroupId, Arc<Elections>>>>,
}

impl Groups {
    /// Statuses received from now on go to `sink` (none set: they are dropped).
    pub fn on_status(&self, sink: StatusSink) {
        *self.status.write() = Some(sink);
    }

    fn noted(&self, status: NodeStatus) {
        let sink = self.status.read().clone();
        if let Some(sink) = sink {
            sink(status);
        }
    }

    pub fn insert(&self, group: GroupId, raft: Raft<TypeConfig>) {
        self.inner.write().insert(group, raft);
    }

    /// Registers the election hooks of a hosted group (leader contact, vote hints,
    /// transfer requests).
    pub fn insert_elections(&self, group: GroupId, elections: Arc<Elections>) {
        self.elections.write().insert(group, elections);
    }

    fn elections(&self, group: GroupId) -> Option<Arc<Elections>> {
        self.elections.read().get(&group).cloned()
    }

    fn get(&self, group: GroupId) -> Option<Raft<TypeConfig>> {
        self.inner.read().get(&group).cloned()
    }
}

/// Accepts peer connections on `listener` and serves them until the task is aborted.
pub async fn serve(listener: TcpListener, me: NodeId, groups: Groups) {
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            // Out of descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let groups = groups.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_conn(stream, me, groups).await {
                tracing::debug!(peer = %addr, "peer connection closed: {e}");
            }
        });
    }
}

async fn serve_conn(stream: TcpStream, me: NodeId, groups: Groups) -> io::Result<()> {
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    let hello: Hello = decode(&read_frame(&mut r).await?)?;
    if hello.magic != MAGIC || hello.version != VERSION || hello.to != me {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("refused peer hello from node {} meant for node {}", hello.from, hello.to),
        ));
    }
    write_frame(&mut w, &encode(&Hello { magic: MAGIC, version: VERSION, from: me, to: hello.from })?).await?;
    w.flush().await?;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            write_frame(&mut w, &frame).await?;
            if rx.is_empty() {
                w.flush().await?;
            }
        }
        io::Result::Ok(())
    });
    let result = loop {
        let bytes = match read_frame(&mut r).await {
            Ok(b) => b,
            Err(e) => break Err(e),
        };
        let (id, group, body) = match decode::<Frame>(&bytes)? {
            Frame::Request { id, group, body } => (id, group, body),
            Frame::Response { .. } => break Err(io::Error::new(io::ErrorKind::InvalidData, "response on a listener")),
        };
        let tx = tx.clone();
        let raft = groups.get(group);
        let groups = groups.clone();
        tokio::spawn(async move {
            let body = match (body, raft) {
                (Request::Status(status), _) => {
                    groups.noted(status);
                    Response::Noted
                }
                (Request::Campaign { not_before_ms, window_ms, log_at_least }, _) => {
                    Response::Campaign(match groups.elections(group) {
                        None => Err(format!("node {me} hosts no group {group}")),
                        Some(e) => e.campaign(
                            Duration::from_millis(not_before_ms),
                            Duration::from_millis(window_ms),
                            log_at_least,
                        ),
                    })
                }
                (Request::Transfer { to }, _) => match groups.elections(group) {
                    None => Response::NoGroup(group),
                    Some(e) => Response::Transfer(e.transfer(to).await),
                },
                (_, None) => Response::NoGroup(group),
                (Request::Append(req), Some(raft)) => {
                    let resp = raft.append_entries(req).await;
                    // An append this member took (not one from a deposed leader) is
                    // contact with its leader, for the election hints.
                    if matches!(&resp, Ok(r) if r.is_success() || r.is_conflict()) {
                        if let Some(e) = groups.elections(group) {
                            e.contact();
                        }
                    }
                    Response::Append(resp)
                }
                (Request::Vote(req), Some(raft)) => {
                    let e = groups.elections(group);
                    let hint = e.as_ref().map(|_| req.clone());
                    let resp = raft.vote(req).await;
                    if let (Some(e), Some(req), Ok(resp)) = (e, hint, &resp) {
                        e.on_vote_request(&req, resp);
                    }
                    Response::Vote(resp)
                }
                (Request::Snapshot(req), Some(raft)) => {
                    let resp = raft.install_snapshot(req).await;
                    if resp.is_ok() {
                        if let Some(e) = groups.elections(group) {
                            e.contact();
                        }
                    }
                    Response::Snapshot(resp)
                }
            };
            if let Ok(frame) = encode(&Frame::Response { id, body }) {
                let _ = tx.send(frame).await;
            }
        });
    };
    drop(tx);
    writer.abort();
    result
}

/// One live connection to a peer: its writer queue and the calls awaiting answers.
struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>,
    alive: Arc<AtomicBool>,
}

/// The dialing side toward one peer: at most one connection, re-dialled on demand.
pub struct PeerLink {
    me: NodeId,
    target: NodeId,
    addr: String,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU64,
}

impl PeerLink {
    async fn conn(&self) -> io::Result<Arc<Conn>> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.alive.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
        }
        let conn = Arc::new(self.dial().await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn dial(&self) -> io::Result<Conn> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {}", self.addr)))??;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut r = BufReader::new(r);
        let mut w = BufWriter::new(w);
        write_frame(&mut w, &encode(&Hello { magic: MAGIC, version: VERSION, from: self.me, to: self.target })?)
            .await?;
        w.flush().await?;
        let hello: Hello = tokio::time::timeout(CONNECT_TIMEOUT, async { decode(&read_frame(&mut r).await?) })
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer hello"))??;
        if hello.magic != MAGIC || hello.from != self.target {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} answered as node {}, expected node {}", self.addr, hello.from, self.target),
            ));
        }
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let (reader_pending, reader_alive) = (pending.clone(), alive.clone());
        tokio::spawn(async move {
            loop {
                let frame = match read_frame(&mut r).await.and_then(|b| decode::<Frame>(&b)) {
                    Ok(Frame::Response { id, body }) => (id, body),
                    _ => break,
                };
                if let Some(waiter) = reader_pending.lock().remove(&frame.0) {
                    let _ = waiter.send(frame.1);
                }
            }
            // Dropping the senders fails every call still waiting on this connection.
            reader_alive.store(false, Ordering::Release);
            reader_pending.lock().clear();
        });
        let writer_alive = alive.clone();
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let ok = write_frame(&mut w, &frame).await.is_ok() && (!rx.is_empty() || w.flush().await.is_ok());
                if !ok {
                    break;
                }
            }
            writer_alive.store(false, Ordering::Release);
            let _ = w.shutdown().await;
        });
        Ok(Conn { tx, pending, alive })
    }

    /// Sends one request and waits for its answer, at most `ttl`.
    async fn call(&self, group: GroupId, body: Request, ttl: Duration) -> Result<Response, CallError> {
        let fut = async {
            let conn = self.conn().await.map_err(CallError::Unreachable)?;
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            conn.pending.lock().insert(id, tx);
            let frame = encode(&Frame::Request { id, group, body }).map_err(CallError::Network)?;
            if conn.tx.send(frame).await.is_err() {
                conn.pending.lock().remove(&id);
                return Err(CallError::Unreachable(io::Error::other("peer connection closed")));
            }
            let answer = rx.await.map_err(|_| CallError::Unreachable(io::Error::other("peer connection lost")));
            if answer.is_err() {
                conn.alive.store(false, Ordering::Release);
            }
            answer
        };
        match tokio::time::timeout(ttl, fut).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Network(io::Error::new(io::ErrorKind::TimedOut, "peer call timed out"))),
        }
    }
}

enum CallError {
    Unreachable(io::Error),
    Network(io::Error),
}

impl<E: std::error::Error> From<CallError> for RPCError<NodeId, PeerNode, E> {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

/// Where each peer listens, from this node's configuration, and the links to them.
#[derive(Clone)]
pub struct PeerNetwork {
    me: NodeId,
    addrs: Arc<RwLock<HashMap<NodeId, String>>>,
    links: Arc<Mutex<HashMap<NodeId, Arc<PeerLink>>>>,
}

impl PeerNetwork {
    pub fn new(me: NodeId, addrs: HashMap<NodeId, String>) -> PeerNetwork {
        PeerNetwork { me, addrs: Arc::new(RwLock::new(addrs)), links: Arc::default() }
    }

    fn link(&self, target: NodeId, fallback: &PeerNode) -> Arc<PeerLink> {
        let addr = self.addrs.read().get(&target).cloned().unwrap_or_else(|| fallback.peer_addr.clone());
        let mut links = self.links.lock();
        match links.get(&target) {
            Some(l) if l.addr == addr => l.clone(),
            _ => {
                let link = Arc::new(PeerLink {
                    me: self.me,
                    target,
                    addr,
                    conn: tokio::sync::Mutex::new(None),
                    next_id: AtomicU64::new(1),
                });
                links.insert(target, link.clone());
                link
            }
        }
    }

    /// Sends this node's status to `target` (addressed by this node's configuration) and
    /// waits at most `ttl` for the receipt.
    pub async fn tell(&self, target: NodeId, status: NodeStatus, ttl: Duration) -> io::Result<()> {
        let Some(addr) = self.addrs.read().get(&target).cloned() else {
            return Err(io::Error::other(format!("no peer address for node {target}")));
        };
        let link = self.link(target, &PeerNode::new(addr, ""));
        match link.call(status.group, Request::Status(status), ttl).await {
            Ok(Response::Noted) => Ok(()),
            Ok(_) => Err(io::Error::other("mismatched peer response")),
            Err(CallError::Unreachable(e) | CallError::Network(e)) => Err(e),
        }
    }

    /// The network one group's Raft uses.
    pub fn for_group(&self, group: GroupId) -> GroupNetwork {
        GroupNetwork { net: self.clone(), group, elections: None }
    }

    /// The same, telling `elections` how this member's vote requests were answered.
    pub fn for_group_with(&self, group: GroupId, elections: Arc<Elections>) -> GroupNetwork {
        GroupNetwork { net: self.clone(), group, elections: Some(elections) }
    }

    /// Asks `target` to campaign (a leadership transfer; see [`Request::Campaign`]).
    pub async fn campaign(
        &self,
        group: GroupId,
        target: NodeId,
        node: &PeerNode,
        not_before: Duration,
        window: Duration,
        log_at_least: u64,
    ) -> Result<(), String> {
        let body = Request::Campaign {
            not_before_ms: not_before.as_millis() as u64,
            window_ms: window.as_millis() as u64,
            log_at_least,
        };
        match self.link(target, node).call(group, body, Duration::from_secs(2)).await {
            Ok(Response::Campaign(r)) => r,
            Ok(Response::NoGroup(g)) => Err(format!("node {target} hosts no group {g}")),
            Ok(_) => Err("mismatched peer response".into()),
            Err(CallError::Unreachable(e) | CallError::Network(e)) => Err(e.to_string()),
        }
    }

    /// Asks the leader `leader` to hand leadership to `to`, waiting at most `ttl`
    /// (see [`Request::Transfer`]).
    pub async fn transfer(
        &self,
        group: GroupId,
        leader: NodeId,
        node: &PeerNode,
        to: NodeId,
        ttl: Duration,
    ) -> Result<NodeId, TransferError> {
        let unreachable = |reason: String| TransferError::Target { target: leader, reason };
        match self.link(leader, node).call(group, Request::Transfer { to }, ttl).await {
            Ok(Response::Transfer(r)) => r,
            Ok(Response::NoGroup(g)) => Err(unreachable(format!("node {leader} hosts no group {g}"))),
            Ok(_) => Err(unreachable("mismatched peer response".into())),
            Err(CallError::Unreachable(e) | CallError::Network(e)) => Err(unreachable(e.to_string())),
        }
    }
}

/// openraft's network factory for one group over the shared [`PeerNetwork`].
#[derive(Clone)]
pub struct GroupNetwork {
    net: PeerNetwork,
    group: GroupId,
    elections: Option<Arc<Elections>>,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = GroupClient;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> GroupClient {
        GroupClient { link: self.net.link(target, node), group: self.group, target, elections: self.elections.clone() }
    }
}

/// One group's RPC client toward one peer.
pub struct GroupClient {
    link: Arc<PeerLink>,
    group: GroupId,
    target: NodeId,
    elections: Option<Arc<Elections>>,
}

impl GroupClient {
    fn no_group<E: std::error::Error>(&self, group: GroupId) -> RPCError<NodeId, PeerNode, E> {
        let e = io::Error::other(format!("node {} hosts no group {group}", self.target));
        RPCError::Unreachable(Unreachable::new(&e))
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<NodeId, PeerNode, E> {
        RPCError::Network(NetworkError::new(&io::Error::other("mismatched peer response")))
    }
}

impl RaftNetwork<TypeConfig> for GroupClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        match self.link.call(self.group, Request::Append(rpc), option.hard_ttl()).await? {
            Response::Append(Ok(r)) => Ok(r),
            Response::Append(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Response::NoGroup(g) => Err(self.no_group(g)),
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        match self.link.call(self.group, Request::Snapshot(rpc), option.hard_ttl()).await? {
            Response::Snapshot(Ok(r)) => Ok(r),
            Response::Snapshot(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Response::NoGroup(g) => Err(self.no_group(g)),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        let asked = self.elections.as_ref().map(|_| rpc.clone());
        match self.link.call(self.group, Request::Vote(rpc), option.hard_ttl()).await? {
            Response::Vote(Ok(r)) => {
                if let (Some(e), Some(asked)) = (&self.elections, asked) {
                    e.on_vote_response(self.target, &asked, &r);
                }
                Ok(r)
            }
            Response::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Response::NoGroup(g) => Err(self.no_group(g)),
            _ => Err(self.unexpected()),
        }
    }
}
