//! The graph: the vertex value type, its write ops, and bounded traversals.
//!
//! Data model (see docs/graph.md):
//! - A vertex is a key whose value is [`Vertex`]: an optional label, properties, and
//!   adjacency lists per edge type and direction ([`vertex`], [`edges`], packed as in
//!   [`packed`]).
//! - An edge (src, type, dst) with a rank is stored twice: an out-half in src's vertex and
//!   an in-half in dst's vertex. [`GraphOp::AddEdge`] and [`GraphOp::DelEdge`] carry the
//!   two halves as separate [`EdgeHalf`] parts, each applied to its own key, so a later
//!   fleet layer can apply the in-half on another shard through an outbox; today one op
//!   applies both, with both keys declared so both slots are locked.
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
