//! The openraft type config of a Prism shard group: what a log entry carries and what
//! applying it returns.
//!
//! A log entry's payload is a batch of engine [`Write`]s (the leader packs many client
//! writes into one entry, so one fsync covers them all); applying it returns one
//! [`Output`] per write, in order. Writes are already deterministic (time, deadlines and
//! random choices fixed by the leader), so every replica that applies the same entries
//! reaches the same keyspace.

use std::fmt;
use std::io::Cursor;

use prism_engine::{Output, Write};
use serde::{Deserialize, Serialize};

/// A Raft node id: unique across the fleet, never 0.
pub type NodeId = u64;

/// A shard group's id, unique across the fleet: the key prefix of its log in the node's
/// shared log database and the tag of its RPCs on the peer network.
pub type GroupId = u32;

/// A log entry's application payload: writes applied in order.
pub type WriteBatch = Vec<Write>;

/// What applying a [`WriteBatch`] returns: one output per write, same order. Empty for
/// blank and membership entries.
pub type Outputs = Vec<Output>;

/// What the group knows about a member (stored in membership log entries): where its
/// peer port listens (the peer network, separate from the client port) and where clients
/// reach it (what `-MOVED` and CLUSTER NODES name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    /// `host:port` of the node's peer listener.
    pub peer_addr: String,
    /// `host:port` of the node's client listener.
    pub client_addr: String,
}

impl PeerNode {
    pub fn new(peer_addr: impl Into<String>, client_addr: impl Into<String>) -> PeerNode {
        PeerNode { peer_addr: peer_addr.into(), client_addr: client_addr.into() }
    }
}

pub use openraft::ChangeMembers;

/// What a node tells every other node of the fleet about itself and its group, about
/// once a second and whenever its group's leader changes: the fleet's leader hints and
/// liveness (the way Redis Cluster's bus gossips). Hints only: a stale one costs a client
/// one more `-MOVED`, never a wrong answer, since every member checks leadership itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    pub group: GroupId,
    /// The sender's current term in its group, and the leader it knows of in that term.
    pub term: u64,
    pub leader: Option<NodeId>,
    /// Log index of the membership the sender knows, and that membership's members
    /// (voters flagged): the newest index wins at the receiver.
    pub membership_index: u64,
    pub members: Vec<(NodeId, PeerNode, bool)>,
    /// The slot claims the sender's shard state holds (resharding), as ranges
    /// `(first, last, owner shard, epoch)`: per slot, the highest epoch heard names the owner.
    pub claims: Vec<(u16, u16, u32, u64)>,
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.peer_addr)
    }
}

openraft::declare_raft_types!(
    /// The Raft types of one shard group.
    pub TypeConfig:
        D = WriteBatch,
        R = Outputs,
        NodeId = NodeId,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::runtime::PrismRuntime,
);

/// A log entry of a shard group.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id (term, leader, index) of a shard group.
pub type LogId = openraft::LogId<NodeId>;
/// The vote of a shard group member.
pub type Vote = openraft::Vote<NodeId>;
/// A storage error of a shard group.
pub type StorageError = openraft::StorageError<NodeId>;
/// Membership as stored with the log id that introduced it.
pub type StoredMembership = openraft::StoredMembership<NodeId, PeerNode>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, PeerNode>;
/// A snapshot: metadata and the serialized keyspace.
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// A cross-shard graph request between fleet nodes, answered by the server's graph hook
/// ([`crate::network::Groups::on_graph`]) on the node that receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GraphRequest {
    /// One hop of a traversal over this shard's part of the frontier: the neighbours of
    /// each vertex, following the same filters as the coordinator.
    Expand(ExpandRequest),
    /// Outbox delivery from shard `from`: the in-edge halves (and remote removals) of its
    /// entries `first_seq ..`, to commit through this shard's group before answering.
    Deliver { from: u32, first_seq: u64, halves: Vec<prism_engine::graph::RemoteHalf> },
}

/// One batched hop of a cross-shard traversal (see [`GraphRequest::Expand`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpandRequest {
    pub vertices: Vec<bytes::Bytes>,
    /// Edge types to follow; empty: every type.
    pub types: Vec<bytes::Bytes>,
    /// 0 out, 1 in, 2 both.
    pub dir: u8,
    /// Most halves followed out of one vertex.
    pub per_vertex: u64,
    /// Most distinct neighbours in the whole answer (the traversal's vertex bound, which
    /// is exact: more could never be used).
    pub max_distinct: u64,
    /// Time left of the traversal, in ms: the answer stops where it is then.
    pub budget_ms: u64,
    /// Linearizable (the leader confirms it leads first); false after READONLY.
    pub linearizable: bool,
}

/// The answer to a [`GraphRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GraphResponse {
    /// Per requested vertex, in order: `None` if it is not a vertex here, else its
    /// neighbours (each distinct neighbour listed once in the whole answer, at its first
    /// occurrence). Shorter than the request when `cut` says why.
    Expanded { lists: Vec<Option<Vec<bytes::Bytes>>>, cut: Option<ExpandCut> },
    /// The delivered halves are committed in this shard's log.
    Delivered,
    /// Not served: a RESP-style error line (`TRYAGAIN ...`, `MOVED ...`); nothing done.
    Refused(String),
}

/// Why an expansion stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpandCut {
    MaxVertices,
    Timeout,
}
