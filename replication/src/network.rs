//! The peer network: Raft RPCs between nodes on their own port (by default the client
//! port + 10000, as Redis's cluster bus), every group a node hosts multiplexed over one
//! TCP connection per ordered pair of nodes.
//!
//! Wire format: each frame is a little-endian u32 length followed by that many bytes of
//! bincode. A connection opens with the handshake (below); after it, the dialer sends
//! [`Frame::Request`]s tagged with an id and a group; the listener answers each with a
//! [`Frame::Response`] of the same id, in any order.
//!
//! Handshake (version 2), a challenge-response on the cluster secret ([`PeerAuth`]) so
//! that the secret never crosses the wire and each side proves it holds it:
//! ```text
//! dialer   -> listener : Hello{from: D, to: L}, Challenge{nonce_d}
//! listener -> dialer   : Hello{from: L, to: D}, Challenge{nonce_l, proof: mac("listener", nonce_d, L, D)}
//! dialer   -> listener : Proof{mac("dialer", nonce_l, D, L)}
//! listener -> dialer   : Verdict{accepted}
//! ```
//! `mac` is HMAC-SHA256 keyed by the secret; the role label keeps a proof from being
//! reflected back as the other side's, and the fresh nonces keep it from being replayed.
//! A node without a secret sends no proofs and accepts only peers that send none; a
//! node with one refuses any peer that does not prove it (an old version-1 hello
//! included). Every refusal is logged with the remote address and counted
//! ([`PeerAuth::failures`], `prism_peer_auth_failures_total`).
//!
//! With `tls-cluster` ([`PeerTls`]) every peer connection is mutual TLS first: the
//! listener requires the dialer's certificate and the dialer checks the listener's, both
//! against the fleet's CA, before a single handshake frame; the cluster-secret handshake
//! then runs inside the TLS stream unchanged. A failed TLS handshake is a refusal like a
//! wrong secret: logged and counted in [`PeerAuth::failures`].
//!
//! Invariants:
//! - Bounded: a frame over [`MAX_FRAME`] closes the connection; every call has a deadline
//!   (openraft's hard TTL), and outstanding calls fail when their connection dies.
//! - Addresses come from the node's own configuration (node id -> peer address), not from
//!   the membership stored in the log, so an operator (or a test's proxy) can reroute a
//!   link without touching the log.
//! - Nothing here interprets Raft: requests go to the group's `Raft` handle as they came.
//! - Every open connection, either way, is listed by [`PeerNetwork::links`] (dialled) or
//!   [`Groups::links`] (accepted) from its handshake until it closes, with the bytes
//!   handed to its writer and not yet written (CLUSTER LINKS).

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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::election::{Elections, TransferError};
use crate::types::{GraphRequest, GraphResponse, GroupId, NodeId, NodeStatus, PeerNode, TypeConfig};

/// Largest frame accepted: an append of many large values, or a snapshot chunk.
pub const MAX_FRAME: usize = 256 * 1024 * 1024;
/// Frames queued for one connection's writer before callers wait.
const QUEUE: usize = 1024;
const MAGIC: [u8; 8] = *b"PRSMPEER";
const VERSION: u32 = 2;
/// How long a dial may take before the peer counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a listener gives a dialer to complete the handshake: a connection that
/// says nothing holds a task only this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest handshake frame: they are a few dozen bytes.
const MAX_HANDSHAKE_FRAME: usize = 1024;

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

/// The second handshake frame in each direction: a fresh nonce for the other side to
/// prove itself on, and (listener only) the listener's own proof on the dialer's nonce.
#[derive(Debug, Serialize, Deserialize)]
pub struct Challenge {
    pub nonce: [u8; 32],
    pub proof: Option<[u8; 32]>,
}

/// The dialer's proof on the listener's nonce (`None` from a node without a secret).
#[derive(Debug, Serialize, Deserialize)]
pub struct Proof {
    pub mac: Option<[u8; 32]>,
}

/// The listener's last handshake frame: whether it accepted the dialer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Verdict {
    pub accepted: bool,
}

/// Which end of a peer connection this node is: CLUSTER LINKS' `to` (dialled by this
/// node) and `from` (accepted from the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkDirection {
    To,
    From,
}

/// One open peer connection, as CLUSTER LINKS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub direction: LinkDirection,
    pub peer: NodeId,
    /// Unix milliseconds at which the handshake completed.
    pub created_ms: u64,
    /// Bytes of frames handed to the connection's writer and not yet written.
    pub queued_bytes: u64,
}

/// A connection's entry in the link lists, shared with its writer task.
#[derive(Debug)]
struct LinkStat {
    direction: LinkDirection,
    peer: NodeId,
    created_ms: u64,
    queued: AtomicU64,
}

impl LinkStat {
    fn new(direction: LinkDirection, peer: NodeId) -> Arc<LinkStat> {
        let created_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Arc::new(LinkStat { direction, peer, created_ms, queued: AtomicU64::new(0) })
    }

    fn info(&self) -> LinkInfo {
        LinkInfo {
            direction: self.direction,
            peer: self.peer,
            created_ms: self.created_ms,
            queued_bytes: self.queued.load(Ordering::Relaxed),
        }
    }
}

/// Mutual TLS for peer connections (`tls-cluster`): the listener's acceptor, which
/// requires and checks the dialer's certificate, and the dialer's connector, which
/// presents the same node certificate and checks the listener's.
#[derive(Clone)]
pub struct PeerTls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
}

impl PeerTls {
    pub fn new(acceptor: tokio_rustls::TlsAcceptor, connector: tokio_rustls::TlsConnector) -> PeerTls {
        PeerTls { acceptor, connector }
    }
}

/// The name a dialer asks for: peers are dialled by address, so the listener's
/// certificate is checked for its chain, not a name (the connector's verifier).
const PEER_SERVER_NAME: &str = "prism-peer";

/// The cluster secret (`cluster-secret-file`) a node proves itself with, the peer TLS
/// it speaks, and the count of peer handshakes it refused. Clones share the count.
#[derive(Clone, Default)]
pub struct PeerAuth {
    key: Option<Arc<ring::hmac::Key>>,
    tls: Option<PeerTls>,
    failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("PeerAuth").field("secret", &self.key.is_some()).field("tls", &self.tls.is_some()).finish()
    }
}

impl PeerAuth {
    /// `None`: peers authenticate with nothing (and so must every peer).
    pub fn new(secret: Option<&[u8]>) -> PeerAuth {
        PeerAuth {
            key: secret.map(|s| Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s))),
            tls: None,
            failures: Arc::default(),
        }
    }

    /// The same, speaking mutual TLS to peers when `tls` is set (and only then).
    pub fn with_tls(mut self, tls: Option<PeerTls>) -> PeerAuth {
        self.tls = tls;
        self
    }

    pub fn has_secret(&self) -> bool {
        self.key.is_some()
    }

    /// Peer handshakes refused so far (either side: a dialer that failed this node's
    /// challenge, or a listener that could not prove itself to this node).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// What a proof signs: the prover's role, the verifier's nonce, prover, verifier.
    fn message(role: &[u8], nonce: &[u8; 32], from: NodeId, to: NodeId) -> Vec<u8> {
        [role, nonce, &from.to_le_bytes(), &to.to_le_bytes()].concat()
    }

    fn mac(&self, role: &[u8], nonce: &[u8; 32], from: NodeId, to: NodeId) -> Option<[u8; 32]> {
        let key = self.key.as_ref()?;
        let tag = ring::hmac::sign(key, &Self::message(role, nonce, from, to));
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Some(out)
    }

    /// Checks a peer's proof in constant time. Without a secret, only "no proof" passes:
    /// a peer that holds a secret this node lacks is misconfigured, not trusted.
    fn verify(&self, role: &[u8], nonce: &[u8; 32], from: NodeId, to: NodeId, proof: Option<&[u8; 32]>) -> bool {
        match (&self.key, proof) {
            (None, None) => true,
            (Some(key), Some(got)) => ring::hmac::verify(key, &Self::message(role, nonce, from, to), got).is_ok(),
            _ => false,
        }
    }

    fn refused(&self, remote: &str, why: &str) -> io::Error {
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(peer = %remote, "peer authentication failed: {why}");
        io::Error::new(io::ErrorKind::PermissionDenied, format!("peer {remote}: {why}"))
    }
}

fn nonce() -> io::Result<[u8; 32]> {
    use ring::rand::SecureRandom;
    let mut n = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut n).map_err(|_| io::Error::other("no system randomness"))?;
    Ok(n)
}

async fn read_small<T: for<'de> Deserialize<'de>, R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_HANDSHAKE_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("handshake frame of {len} bytes")));
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).await?;
    decode(&buf)
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
    /// A cross-shard graph request (traversal hop, outbox delivery), answered by the
    /// node's graph hook ([`Groups::on_graph`]) with [`Response::Graph`].
    Graph(GraphRequest),
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
    Graph(GraphResponse),
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

/// The decoder every peer frame and handshake message goes through, for the fuzz
/// harness (`fuzz/fuzz_targets/peer_message.rs`); not an API.
#[doc(hidden)]
pub fn decode_message<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> io::Result<T> {
    decode(bytes)
}

/// The encoder matching [`decode_message`], for the fuzz harness; not an API.
#[doc(hidden)]
pub fn encode_message<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    encode(value)
}

/// Where a node's listener hands the statuses other nodes send it.
pub type StatusSink = Arc<dyn Fn(NodeStatus) + Send + Sync>;

/// Where a node's listener hands cross-shard graph requests (group, request).
pub type GraphHandler = Arc<dyn Fn(GroupId, GraphRequest) -> GraphFuture + Send + Sync>;
/// The answer a [`GraphHandler`] works out.
pub type GraphFuture = std::pin::Pin<Box<dyn std::future::Future<Output = GraphResponse> + Send>>;

/// The groups a node hosts, as the listener finds them, and its status sink.
#[derive(Default, Clone)]
pub struct Groups {
    inner: Arc<RwLock<HashMap<GroupId, Raft<TypeConfig>>>>,
    status: Arc<RwLock<Option<StatusSink>>>,
    elections: Arc<RwLock<HashMap<GroupId, Arc<Elections>>>>,
    graph: Arc<RwLock<Option<GraphHandler>>>,
    /// What the listener challenges dialers with.
    auth: PeerAuth,
    /// Accepted connections past their handshake, by a per-node sequence number.
    inbound: Arc<Mutex<std::collections::BTreeMap<u64, Arc<LinkStat>>>>,
    next_inbound: Arc<AtomicU64>,
}

impl Groups {
    /// Graph requests received from now on go to `handler` (none set: refused).
    pub fn on_graph(&self, handler: GraphHandler) {
        *self.graph.write() = Some(handler);
    }

    /// The same groups, with dialers challenged on `auth`'s secret.
    pub fn with_auth(mut self, auth: PeerAuth) -> Groups {
        self.auth = auth;
        self
    }

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

    /// The peer connections this node accepted and that are open now, oldest first.
    pub fn links(&self) -> Vec<LinkInfo> {
        self.inbound.lock().values().map(|l| l.info()).collect()
    }
}

/// Keeps an accepted connection in [`Groups::links`] while it lives.
struct InboundEntry {
    groups: Groups,
    seq: u64,
}

impl Drop for InboundEntry {
    fn drop(&mut self) {
        self.groups.inbound.lock().remove(&self.seq);
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
            if let Err(e) = serve_conn(stream, me, groups, addr.to_string()).await {
                tracing::debug!(peer = %addr, "peer connection closed: {e}");
            }
        });
    }
}

/// The listener's side of the handshake (see the module doc); a dialer that does not
/// complete it within [`HANDSHAKE_TIMEOUT`] is refused like one that fails it.
async fn accept_handshake<R, W>(r: &mut R, w: &mut W, me: NodeId, auth: &PeerAuth, remote: &str) -> io::Result<NodeId>
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let exchange = async {
        let hello: Hello = read_small(r).await.map_err(|e| auth.refused(remote, &format!("bad hello: {e}")))?;
        if hello.magic != MAGIC || hello.version != VERSION {
            let why = format!("hello of protocol version {} (this node speaks {VERSION})", hello.version);
            return Err(auth.refused(remote, &why));
        }
        if hello.to != me {
            let why = format!("hello from node {} meant for node {}, this is node {me}", hello.from, hello.to);
            return Err(auth.refused(remote, &why));
        }
        let theirs: Challenge = read_small(r).await.map_err(|e| auth.refused(remote, &format!("no challenge: {e}")))?;
        let mine = nonce()?;
        let proof = auth.mac(b"listener", &theirs.nonce, me, hello.from);
        write_frame(w, &encode(&Hello { magic: MAGIC, version: VERSION, from: me, to: hello.from })?).await?;
        write_frame(w, &encode(&Challenge { nonce: mine, proof })?).await?;
        w.flush().await?;
        let answer: Proof = read_small(r)
            .await
            .map_err(|e| auth.refused(remote, &format!("node {} sent no proof: {e}", hello.from)))?;
        let accepted = auth.verify(b"dialer", &mine, hello.from, me, answer.mac.as_ref());
        write_frame(w, &encode(&Verdict { accepted })?).await?;
        w.flush().await?;
        if !accepted {
            let why = match (auth.has_secret(), answer.mac.is_some()) {
                (true, true) => "wrong cluster secret",
                (true, false) => "no cluster secret",
                _ => "it has a cluster secret and this node has none",
            };
            return Err(auth.refused(remote, &format!("node {}: {why}", hello.from)));
        }
        Ok(hello.from)
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(auth.refused(remote, "handshake timed out")),
    }
}

async fn serve_conn(stream: TcpStream, me: NodeId, groups: Groups, remote: String) -> io::Result<()> {
    let Some(tls) = groups.auth.tls.clone() else {
        let (r, w) = stream.into_split();
        return serve_split(r, w, me, groups, remote).await;
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(groups.auth.refused(&remote, &format!("TLS handshake failed: {e}"))),
        Err(_) => return Err(groups.auth.refused(&remote, "TLS handshake timed out")),
    };
    let (r, w) = tokio::io::split(stream);
    serve_split(r, w, me, groups, remote).await
}

/// Serves one peer connection past its transport (TCP halves, or TLS halves).
async fn serve_split<R, W>(r: R, w: W, me: NodeId, groups: Groups, remote: String) -> io::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    let peer = accept_handshake(&mut r, &mut w, me, &groups.auth, &remote).await?;
    let stat = LinkStat::new(LinkDirection::From, peer);
    let seq = groups.next_inbound.fetch_add(1, Ordering::Relaxed);
    groups.inbound.lock().insert(seq, stat.clone());
    let _listed = InboundEntry { groups: groups.clone(), seq };
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let writer_stat = stat.clone();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            write_frame(&mut w, &frame).await?;
            writer_stat.queued.fetch_sub(frame.len() as u64, Ordering::Relaxed);
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
        let stat = stat.clone();
        let raft = groups.get(group);
        let groups = groups.clone();
        tokio::spawn(async move {
            let body = match (body, raft) {
                (Request::Status(status), _) => {
                    groups.noted(status);
                    Response::Noted
                }
                (Request::Graph(req), _) => {
                    let handler = groups.graph.read().clone();
                    Response::Graph(match handler {
                        Some(h) => h(group, req).await,
                        None => GraphResponse::Refused(format!("TRYAGAIN node {me} does not serve graph requests yet")),
                    })
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
                let len = frame.len() as u64;
                stat.queued.fetch_add(len, Ordering::Relaxed);
                if tx.send(frame).await.is_err() {
                    stat.queued.fetch_sub(len, Ordering::Relaxed);
                }
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
    stat: Arc<LinkStat>,
}

/// The dialing side toward one peer: at most one connection, re-dialled on demand.
pub struct PeerLink {
    me: NodeId,
    target: NodeId,
    addr: String,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU64,
    auth: PeerAuth,
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
        let Some(tls) = self.auth.tls.clone() else {
            let (r, w) = stream.into_split();
            return self.open(r, w).await;
        };
        let name = rustls_pki_types::ServerName::try_from(PEER_SERVER_NAME).map_err(io::Error::other)?;
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tls.connector.connect(name, stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(self.auth.refused(&self.addr, &format!("TLS handshake failed: {e}"))),
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake with {}", self.addr))),
        };
        let (r, w) = tokio::io::split(stream);
        self.open(r, w).await
    }

    /// Opens a connection over its transport's halves: the peer handshake, then the
    /// reader and writer tasks.
    async fn open<R, W>(&self, r: R, w: W) -> io::Result<Conn>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let mut r = BufReader::new(r);
        let mut w = BufWriter::new(w);
        tokio::time::timeout(CONNECT_TIMEOUT, self.handshake(&mut r, &mut w))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("peer handshake with {}", self.addr)))??;
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
        let stat = LinkStat::new(LinkDirection::To, self.target);
        let writer_stat = stat.clone();
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let written = write_frame(&mut w, &frame).await.is_ok();
                writer_stat.queued.fetch_sub(frame.len() as u64, Ordering::Relaxed);
                if !written || (rx.is_empty() && w.flush().await.is_err()) {
                    break;
                }
            }
            writer_alive.store(false, Ordering::Release);
            let _ = w.shutdown().await;
        });
        Ok(Conn { tx, pending, alive, stat })
    }

    /// The dialer's side of the handshake (see the module doc).
    async fn handshake<R, W>(&self, r: &mut R, w: &mut W) -> io::Result<()>
    where
        R: AsyncReadExt + Unpin,
        W: AsyncWriteExt + Unpin,
    {
        let mine = nonce()?;
        write_frame(w, &encode(&Hello { magic: MAGIC, version: VERSION, from: self.me, to: self.target })?).await?;
        write_frame(w, &encode(&Challenge { nonce: mine, proof: None })?).await?;
        w.flush().await?;
        let hello: Hello = read_small(r).await?;
        if hello.magic != MAGIC || hello.version != VERSION || hello.from != self.target {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} answered as node {} (protocol {}), expected node {} (protocol {VERSION})",
                    self.addr, hello.from, hello.version, self.target
                ),
            ));
        }
        let theirs: Challenge = read_small(r).await?;
        if !self.auth.verify(b"listener", &mine, self.target, self.me, theirs.proof.as_ref()) {
            let why = match (self.auth.has_secret(), theirs.proof.is_some()) {
                (true, true) => "node answered with the wrong cluster secret",
                (true, false) => "node has no cluster secret",
                _ => "node has a cluster secret and this node has none",
            };
            return Err(self.auth.refused(&self.addr, &format!("node {}: {why}", self.target)));
        }
        let mac = self.auth.mac(b"dialer", &theirs.nonce, self.me, self.target);
        write_frame(w, &encode(&Proof { mac })?).await?;
        w.flush().await?;
        let verdict: Verdict = read_small(r).await?;
        if !verdict.accepted {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("node {} at {} refused this node's cluster secret", self.target, self.addr),
            ));
        }
        Ok(())
    }

    /// Sends one request and waits for its answer, at most `ttl`.
    async fn call(&self, group: GroupId, body: Request, ttl: Duration) -> Result<Response, CallError> {
        let fut = async {
            let conn = self.conn().await.map_err(CallError::Unreachable)?;
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            conn.pending.lock().insert(id, tx);
            let frame = encode(&Frame::Request { id, group, body }).map_err(CallError::Network)?;
            let len = frame.len() as u64;
            conn.stat.queued.fetch_add(len, Ordering::Relaxed);
            if conn.tx.send(frame).await.is_err() {
                conn.stat.queued.fetch_sub(len, Ordering::Relaxed);
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
    auth: PeerAuth,
}

impl PeerNetwork {
    pub fn new(me: NodeId, addrs: HashMap<NodeId, String>) -> PeerNetwork {
        PeerNetwork { me, addrs: Arc::new(RwLock::new(addrs)), links: Arc::default(), auth: PeerAuth::default() }
    }

    /// The same network, proving itself to peers with `auth`'s secret.
    pub fn with_auth(mut self, auth: PeerAuth) -> PeerNetwork {
        self.auth = auth;
        self
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
                    auth: self.auth.clone(),
                });
                links.insert(target, link.clone());
                link
            }
        }
    }

    /// The peer connections this node dialled and that are open now, by peer id. A link
    /// being re-dialled this instant is left out.
    pub fn links(&self) -> Vec<LinkInfo> {
        let links: Vec<Arc<PeerLink>> = self.links.lock().values().cloned().collect();
        let mut out: Vec<LinkInfo> = links
            .iter()
            .filter_map(|l| {
                let conn = l.conn.try_lock().ok()?.clone()?;
                conn.alive.load(Ordering::Acquire).then(|| conn.stat.info())
            })
            .collect();
        out.sort_by_key(|l| l.peer);
        out
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

    /// Sends a cross-shard graph request to node `target` of group `group` (addressed by
    /// this node's configuration, else by `node`) and waits at most `ttl`. A transport
    /// failure is an error text, never a partial answer.
    pub async fn graph(
        &self,
        group: GroupId,
        target: NodeId,
        node: &PeerNode,
        req: GraphRequest,
        ttl: Duration,
    ) -> Result<GraphResponse, String> {
        match self.link(target, node).call(group, Request::Graph(req), ttl).await {
            Ok(Response::Graph(r)) => Ok(r),
            Ok(Response::NoGroup(g)) => Err(format!("node {target} hosts no group {g}")),
            Ok(_) => Err("mismatched peer response".into()),
            Err(CallError::Unreachable(e) | CallError::Network(e)) => Err(e.to_string()),
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

#[cfg(test)]
mod handshake_tests {
    use super::*;

    fn link(me: NodeId, target: NodeId, auth: PeerAuth) -> PeerLink {
        PeerLink {
            me,
            target,
            addr: format!("node-{target}"),
            conn: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            auth,
        }
    }

    /// Runs both sides of the handshake over an in-memory pipe: (dialer, listener).
    async fn shake(dialer: PeerAuth, listener: PeerAuth) -> (io::Result<()>, io::Result<()>) {
        let (d, l) = tokio::io::duplex(4096);
        let (mut dr, mut dw) = tokio::io::split(d);
        let (mut lr, mut lw) = tokio::io::split(l);
        let link = link(1, 2, dialer);
        let dial = async move {
            let r = link.handshake(&mut dr, &mut dw).await;
            // A refusing dialer hangs up, as the real one does by dropping the stream.
            drop((dr, dw));
            r
        };
        let listen = async move {
            // The listener learns the dialer's id from the handshake.
            let from = accept_handshake(&mut lr, &mut lw, 2, &listener, "test").await?;
            assert_eq!(from, 1);
            Ok(())
        };
        tokio::join!(dial, listen)
    }

    #[tokio::test]
    async fn same_secret_passes_both_ways() {
        let (d, l) = (PeerAuth::new(Some(b"s3cret")), PeerAuth::new(Some(b"s3cret")));
        let (dr, lr) = shake(d.clone(), l.clone()).await;
        assert!(dr.is_ok() && lr.is_ok(), "{dr:?} {lr:?}");
        assert_eq!((d.failures(), l.failures()), (0, 0));
        let (dr, lr) = shake(PeerAuth::new(None), PeerAuth::new(None)).await;
        assert!(dr.is_ok() && lr.is_ok(), "no secret on either side: {dr:?} {lr:?}");
    }

    #[tokio::test]
    async fn another_secret_is_refused_and_counted() {
        let (d, l) = (PeerAuth::new(Some(b"intruder")), PeerAuth::new(Some(b"s3cret")));
        let (dr, lr) = shake(d.clone(), l.clone()).await;
        assert_eq!(dr.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert!(lr.is_err());
        assert_eq!((d.failures(), l.failures()), (1, 1));
    }

    #[tokio::test]
    async fn a_peer_without_the_secret_is_refused() {
        let l = PeerAuth::new(Some(b"s3cret"));
        let (dr, lr) = shake(PeerAuth::new(None), l.clone()).await;
        assert!(dr.is_err() && lr.is_err());
        assert_eq!(l.failures(), 1);
        // ... and a node with a secret does not trust a listener without one.
        let d = PeerAuth::new(Some(b"s3cret"));
        let (dr, lr) = shake(d.clone(), PeerAuth::new(None)).await;
        assert!(dr.is_err() && lr.is_err());
        assert_eq!(d.failures(), 1);
    }

    #[tokio::test]
    async fn a_version_1_hello_is_refused() {
        let l = PeerAuth::new(Some(b"s3cret"));
        let (d, lside) = tokio::io::duplex(4096);
        let (mut dr, mut dw) = tokio::io::split(d);
        let (mut lr, mut lw) = tokio::io::split(lside);
        let old = Hello { magic: MAGIC, version: 1, from: 1, to: 2 };
        write_frame(&mut dw, &encode(&old).unwrap()).await.unwrap();
        let r = accept_handshake(&mut lr, &mut lw, 2, &l, "test").await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(l.failures(), 1);
        drop((lr, lw));
        let mut rest = Vec::new();
        dr.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the listener says nothing to an old hello");
    }
}
