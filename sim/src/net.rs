//! The simulated peer and client network: one turmoil TCP connection per request, a
//! length-prefixed bincode frame each way (replication's `encode_message` /
//! `decode_message`, the encoder of the real peer frames).
//!
//! One connection per request because turmoil drops the segments a partition or a lost
//! message catches and TCP there does not retransmit: a request caught by a fault times
//! out (openraft's TTL, or the client's) and its connection is dropped, never reused
//! half-read. Frames are bounded ([`MAX_FRAME`]) before anything is allocated.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use prism_replication::network::{decode_message, encode_message};
use prism_replication::{NodeId, PeerNode, TypeConfig};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpStream;

/// The port every simulated member listens on (peers and clients alike).
pub const PORT: u16 = 7000;
/// Largest frame read: the simulation's entries are small; anything bigger is garbage.
pub const MAX_FRAME: usize = 16 << 20;

/// The turmoil host name of member `id`.
pub fn host_name(id: NodeId) -> String {
    format!("n{id}")
}

/// What a member is asked.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client's RPUSH of one unique token to `key`.
    Push {
        key: Bytes,
        token: Bytes,
    },
    AddLearner(NodeId),
    ChangeMembership(BTreeSet<NodeId>),
}

/// What a member answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// The write committed and applied.
    Pushed,
    /// Not the leader (the leader if known): the write may still commit later if this
    /// member proposed it before losing leadership, so the client counts it as unknown.
    NotLeader(Option<NodeId>),
    /// Admin request done.
    Done,
    /// Anything else: the outcome is unknown.
    Failed(String),
}

pub async fn write_frame(s: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("frame too large"))?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(bytes).await?;
    s.flush().await
}

pub async fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Sends one request to member `target` and waits for its answer, within `ttl`.
pub async fn call(target: NodeId, req: &Request, ttl: Duration) -> io::Result<Response> {
    let exchange = async {
        let mut s = TcpStream::connect((host_name(target), PORT)).await?;
        write_frame(&mut s, &encode_message(req)?).await?;
        decode_message::<Response>(&read_frame(&mut s).await?)
    };
    match tokio::time::timeout(ttl, exchange).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out")),
    }
}

/// openraft's network factory over [`call`].
#[derive(Clone)]
pub struct SimNetwork;

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimClient;

    async fn new_client(&mut self, target: NodeId, _node: &PeerNode) -> SimClient {
        SimClient { target }
    }
}

/// One member's RPC client toward one peer.
pub struct SimClient {
    target: NodeId,
}

fn unreachable<E: std::error::Error>(e: io::Error) -> RPCError<NodeId, PeerNode, E> {
    RPCError::Unreachable(Unreachable::new(&e))
}

fn mismatched<E: std::error::Error>() -> RPCError<NodeId, PeerNode, E> {
    RPCError::Network(NetworkError::new(&io::Error::other("mismatched response")))
}

impl RaftNetwork<TypeConfig> for SimClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        match call(self.target, &Request::Append(rpc), option.hard_ttl()).await.map_err(unreachable)? {
            Response::Append(Ok(r)) => Ok(r),
            Response::Append(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(mismatched()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        match call(self.target, &Request::Snapshot(rpc), option.hard_ttl()).await.map_err(unreachable)? {
            Response::Snapshot(Ok(r)) => Ok(r),
            Response::Snapshot(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(mismatched()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, PeerNode, RaftError<NodeId>>> {
        match call(self.target, &Request::Vote(rpc), option.hard_ttl()).await.map_err(unreachable)? {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(mismatched()),
        }
    }
}
