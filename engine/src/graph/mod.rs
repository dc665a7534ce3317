//! The graph: the vertex value type, its write ops, and bounded traversals.
//!
//! Data model (see docs/graph.md):
//! - A vertex is a key whose value is [`Vertex`]: an optional label, properties, and
//!   adjacency lists per edge type and direction ([`vertex`], [`edges`], packed as in
//!   [`packed`]).
//! - An edge (src, type, dst) with a rank is stored twice: an out-half in src's vertex and
//!   an in-half in dst's vertex. [`GraphOp::AddEdge`] and [`GraphOp::DelEdge`] carry the
//!   two halves as separate [`EdgeHalf`] parts, each applied to its own key, with both
//!   keys declared so both slots are locked. When dst is on another shard,
//!   [`GraphOp::AddEdgeOut`] / [`GraphOp::DelEdgeOut`] apply the out-half and owe the
//!   in-half through the shard's [`outbox`]; the other shard applies it with
//!   [`GraphOp::Inbound`] ([`RemoteHalf`], idempotent).
//! - The default rank is the write's time in ms (fixed in the log entry), so lists are
//!   newest first.
//!
//! Halves are kept mirrored at write time, so reads return a vertex's halves as stored,
//! without looking at the other end:
//! - graph writes change both halves in one op;
//! - a vertex that leaves its key by a generic path (DEL, UNLINK, expiry, SET / RESTORE /
//!   RENAME over it, ...) hands its halves to the write's [`cleanup`], which removes the
//!   other ends in bounded ops right after the write;
//! - V.DEL never stalls the node: the server removes the vertex's edges in ops of at most
//!   [`DETACH_BATCH`] neighbours each ([`GraphOp::Detach`]), then removes the vertex with
//!   the last batch ([`GraphOp::DelVertex`]); other writes interleave between the ops;
//! - RESTORE puts a vertex's halves back *unconfirmed*: invisible to reads until the
//!   mirror exists (the other endpoint restored too), then confirmed by the cleanup pass.
//!   E.COUNT is the stored degree and counts unconfirmed halves.

pub mod apply;
pub mod cleanup;
pub mod edges;
pub mod outbox;
pub mod packed;
pub mod traverse;
pub mod vertex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use cleanup::Cleanup;
pub use edges::EdgeList;
pub use vertex::{TypeLists, Vertex};

pub(crate) use apply::apply;

/// Most neighbours one Detach / DelVertex op handles.
pub const DETACH_BATCH: usize = 256;

/// The direction of a half, seen from the vertex holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dir {
    Out,
    In,
}

impl Dir {
    pub fn opposite(self) -> Dir {
        match self {
            Dir::Out => Dir::In,
            Dir::In => Dir::Out,
        }
    }
}

/// One half of an edge: held by `owner`, pointing at `other`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeHalf {
    pub owner: Bytes,
    pub dir: Dir,
    pub etype: Bytes,
    pub other: Bytes,
}

impl EdgeHalf {
    /// The out-half and in-half of edge (src, etype, dst).
    pub fn pair(src: &Bytes, etype: &Bytes, dst: &Bytes) -> (EdgeHalf, EdgeHalf) {
        (
            EdgeHalf { owner: src.clone(), dir: Dir::Out, etype: etype.clone(), other: dst.clone() },
            EdgeHalf { owner: dst.clone(), dir: Dir::In, etype: etype.clone(), other: src.clone() },
        )
    }
}

/// One half named by its holder, seen from a vertex that is gone: the half
/// (`etype`, `dir`) held by `holder` that points at the gone id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalfAt {
    pub holder: Bytes,
    pub etype: Bytes,
    pub dir: Dir,
}

/// A change to one half held on another shard, carried by the source shard's outbox
/// (`crate::shard_meta`) and applied there by [`GraphOp::Inbound`]. Each is idempotent:
/// applying it again (a redelivery after a lost ack) changes nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteHalf {
    /// Insert or update the half (the in-half of a cross-shard E.ADD), creating its
    /// holder as an empty vertex if missing.
    Put { half: EdgeHalf, rank: i64 },
    /// Remove the half if present. With `if_rank`, only a half of that rank (an out-half
    /// whose in-side vertex went away: a newer E.ADD of the same edge is kept), and a
    /// removal then sends the mirror's removal back through the holder's outbox, after any
    /// in-half still queued there for that edge.
    Remove { half: EdgeHalf, if_rank: Option<i64> },
}

impl RemoteHalf {
    /// The key holding the half: where the change applies.
    pub fn holder(&self) -> &Bytes {
        match self {
            RemoteHalf::Put { half, .. } | RemoteHalf::Remove { half, .. } => &half.owner,
        }
    }
}

/// Deterministic writes on the graph. New variants go last (the log encodes positions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GraphOp {
    /// V.SET: creates the vertex if missing, sets the label if given and the properties
    /// -> number of new properties.
    SetVertex { vid: Bytes, label: Option<Bytes>, props: Vec<(Bytes, Bytes)> },
    /// E.ADD: creates missing endpoints, inserts or updates both halves -> 1 if the edge
    /// is new, 0 if it was updated. `rank: None` is the write's time; `props: None` keeps
    /// an existing edge's properties, `Some` replaces them.
    AddEdge { out: EdgeHalf, inn: EdgeHalf, rank: Option<i64>, props: Option<Vec<(Bytes, Bytes)>> },
    /// E.DEL -> 1 if the out-half existed. The in-half is removed whenever present.
    DelEdge { out: EdgeHalf, inn: EdgeHalf },
    /// One bounded step of V.DEL: removes every half between `vid` and each listed
    /// neighbour, on both sides -> number of halves removed at `vid`.
    Detach { vid: Bytes, neighbours: Vec<Bytes> },
    /// The last step of V.DEL: a Detach of `neighbours`, then the vertex key is removed
    /// -> 1 if it was a vertex, 0 if absent.
    DelVertex { vid: Bytes, neighbours: Vec<Bytes> },
    /// Cleanup after a vertex left key `gone` (see [`cleanup`]): removes each listed half
    /// unless `gone` is again a vertex holding its mirror -> number removed.
    DropHalves { gone: Bytes, halves: Vec<HalfAt> },
    /// Binds the vertex under `vid` to its key after RESTORE / RENAME put it there (a
    /// moved vertex's halves are handed to the cleanup) -> 1 if it holds unconfirmed
    /// halves, else 0.
    Bind { vid: Bytes },
    /// Confirms the unconfirmed halves between `vid` and each listed neighbour whose
    /// mirror exists, on both sides -> number confirmed at `vid`.
    Confirm { vid: Bytes, neighbours: Vec<Bytes> },
    /// Cross-shard E.ADD on the source shard: the out-half here; the in-half is owed to
    /// dst's shard through the outbox ([`outbox`]) -> as `AddEdge`. dst's type cannot be
    /// checked here: an in-half for a key of another type is dropped at delivery.
    AddEdgeOut { out: EdgeHalf, inn: EdgeHalf, rank: Option<i64>, props: Option<Vec<(Bytes, Bytes)>> },
    /// Cross-shard E.DEL on the source shard: the out-half here, the in-half's removal
    /// owed -> as `DelEdge`.
    DelEdgeOut { out: EdgeHalf, inn: EdgeHalf },
    /// A V.DEL step with neighbours on other shards: a `Detach` of `local`; the halves
    /// between `vid` and each of `remote` removed here and their mirrors' removal owed;
    /// with `delete`, then the vertex removed -> as `Detach` / `DelVertex`.
    DetachAcross { vid: Bytes, local: Vec<Bytes>, remote: Vec<Bytes>, delete: bool },
    /// The cleanup's part for holders on other shards: the removal of each half (with its
    /// rank) is owed, unless `gone` is again a vertex holding its mirror -> number owed.
    DropRemote { gone: Bytes, halves: Vec<(HalfAt, i64)> },
    /// A delivery from shard `from`'s outbox: applies each change, idempotently
    /// ([`RemoteHalf`]) -> number of halves changed.
    Inbound { from: u32, halves: Vec<RemoteHalf> },
}

impl GraphOp {
    /// Every key the op reads or writes (the keyspace locks their slots).
    pub fn for_each_key(&self, f: &mut dyn FnMut(&[u8])) {
        match self {
            GraphOp::SetVertex { vid, .. } => f(vid),
            GraphOp::AddEdge { out, inn, .. } | GraphOp::DelEdge { out, inn } => {
                f(&out.owner);
                f(&inn.owner);
            }
            GraphOp::AddEdgeOut { out, .. } | GraphOp::DelEdgeOut { out, .. } => f(&out.owner),
            GraphOp::DetachAcross { vid, local, .. } => {
                f(vid);
                local.iter().for_each(|n| f(n));
            }
            GraphOp::DropRemote { gone, .. } => f(gone),
            GraphOp::Inbound { halves, .. } => halves.iter().for_each(|h| f(h.holder())),
            GraphOp::Detach { vid, neighbours }
            | GraphOp::DelVertex { vid, neighbours }
            | GraphOp::Confirm { vid, neighbours } => {
                f(vid);
                neighbours.iter().for_each(|n| f(n));
            }
            GraphOp::DropHalves { gone, halves } => {
                f(gone);
                halves.iter().for_each(|h| f(&h.holder));
            }
            GraphOp::Bind { vid } => f(vid),
        }
    }
}
