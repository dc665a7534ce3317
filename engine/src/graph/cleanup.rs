//! Write-time consistency of edge halves: when a vertex leaves its key by any path, the
//! halves its neighbours hold are removed by the same write, so readers never check the
//! other end of a half.
//!
//! How: each outermost write ([`Keyspace::apply_hooked`]) opens a [`Cleanup`] scope on its
//! thread. A [`Vertex`] with halves that is dropped while the scope is open — by DEL,
//! UNLINK, expiry, SET / RESTORE / RENAME / a *STORE over it, V.DEL's last step, or a
//! write that finds it expired — hands its halves here ([`orphan`]). When the write has
//! applied and released its slot locks, [`Cleanup::finish`] removes the other end of
//! each half with [`GraphOp::DropHalves`] ops of at most [`DETACH_BATCH`] halves, each
//! under the locks of the slots it names, and binds the vertices that RESTORE and RENAME
//! put at a key ([`GraphOp::Bind`]; restored halves are confirmed by
//! [`GraphOp::Confirm`] where their mirror exists).
//!
//! Invariants:
//! - Deterministic: what is orphaned depends only on the state and the write, and every
//!   cleanup op checks the state it changes (a half is kept if the id it names is again a
//!   vertex holding its mirror), so a replica applying the same log ends identical, and a
//!   spurious orphan (a clone dropped inside apply) removes nothing.
//! - The cleanup ops are ordinary graph ops carrying both the holder and the gone id, so
//!   a fleet layer can deliver the ones for another shard through its outbox; applying
//!   them never waits on anything.
//! - Bounded steps: a write that orphans E halves runs E / DETACH_BATCH small ops, each
//!   holding its locks briefly, so other clients interleave with the cleanup of a big
//!   vertex (V.DEL stays the way to delete a vertex with millions of edges without one
//!   long apply). Between the write and its cleanup (microseconds) a reader may still see
//!   a half naming the gone vertex; a vertex that expires shows at its neighbours until
//!   active expiry (or any write to its key) removes it.
//! - FLUSHALL alone runs outside the scope: it empties every slot, neighbours included.
//! - Across shards: a half whose holder is in a slot this shard does not take writes for
//!   is not touched here; its removal is owed to the holder's shard through the outbox
//!   ([`super::outbox`]), appended when the write's cleanup ends, so the outbox gets
//!   exactly the same entries on every member.
//!
//! [`Keyspace::apply_hooked`]: crate::keyspace::Keyspace::apply_hooked

use std::cell::RefCell;

use bytes::Bytes;

use super::{Dir, GraphOp, HalfAt, TypeLists, Vertex, DETACH_BATCH};
use crate::keyspace::Keyspace;
use crate::op::{Op, Output, Write};
use crate::slot::Slot;
use crate::value::Value;

/// Halves of a vertex that left its key, named by the id it had.
struct Orphan {
    gone: Box<[u8]>,
    types: Vec<TypeLists>,
}

thread_local! {
    static PENDING: RefCell<Option<Vec<Orphan>>> = const { RefCell::new(None) };
}

/// Hands the halves of a vertex that left key `gone` to the open scope; outside a write
/// they are simply dropped.
pub(crate) fn orphan(gone: Box<[u8]>, types: Vec<TypeLists>) {
    let _ = PENDING.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if let Some(v) = p.as_mut() {
                v.push(Orphan { gone, types });
            }
        }
    });
}

/// The cleanup scope of one outermost write.
#[must_use]
pub struct Cleanup {
    owner: bool,
}

impl Cleanup {
    /// Opens the scope, or joins the one already open on this thread (the cleanup ops
    /// themselves are writes: their orphans go to the scope that runs them).
    pub fn begin() -> Cleanup {
        let owner = PENDING
            .try_with(|p| match p.try_borrow_mut() {
                Ok(mut p) if p.is_none() => {
                    *p = Some(Vec::new());
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        Cleanup { owner }
    }

    /// Runs the cleanup of write `w`, which has applied and released its locks.
    pub fn finish(self, ks: &Keyspace, w: &Write) {
        if !self.owner {
            return;
        }
        let now = w.now_ms;
        let mut bound = Vec::new();
        bind_targets(&w.op, &mut bound);
        for vid in bound {
            if ks.apply(&Write { now_ms: now, op: Op::Graph(GraphOp::Bind { vid: vid.clone() }) }) == Output::Int(1) {
                confirm(ks, now, &vid);
            }
        }
        loop {
            let batch = PENDING.with(|p| p.borrow_mut().as_mut().map(std::mem::take).unwrap_or_default());
            if batch.is_empty() {
                break;
            }
            for o in batch {
                drop_orphan(ks, now, o);
            }
        }
        // What this write and its cleanup owe other shards, in apply order.
        ks.meta.outbox.push(now, super::outbox::take_outbound());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.owner {
            let _ = PENDING.try_with(|p| p.borrow_mut().take());
            // A write that did not finish owes nothing (finish took what it owed).
            drop(super::outbox::take_outbound());
        }
    }
}

/// Keys where a write may have put a vertex that is not bound to its key yet.
fn bind_targets(op: &Op, out: &mut Vec<Bytes>) {
    match op {
        Op::Restore { key, .. } => out.push(key.clone()),
        Op::Rename { src, dst, .. } if src != dst => out.push(dst.clone()),
        Op::Multi(ops) => ops.iter().for_each(|op| bind_targets(op, out)),
        Op::Guarded(g) => g.ops.iter().for_each(|op| bind_targets(op, out)),
        _ => {}
    }
}

/// Removes the other end of every half of `o`, in bounded ops. Holders on other shards
/// (slots this shard does not take writes for) get their removal through the outbox
/// ([`GraphOp::DropRemote`]).
fn drop_orphan(ks: &Keyspace, now: u64, o: Orphan) {
    let gone = Bytes::from(o.gone.into_vec());
    let mut halves = Vec::new();
    let mut remote = Vec::new();
    let apply = |op: GraphOp| ks.apply(&Write { now_ms: now, op: Op::Graph(op) });
    for t in &o.types {
        let etype = Bytes::copy_from_slice(&t.name);
        for dir in [Dir::Out, Dir::In] {
            for h in t.list(dir).iter() {
                let at = HalfAt { holder: Bytes::copy_from_slice(h.other), etype: etype.clone(), dir: dir.opposite() };
                if ks.meta.accepts_write(Slot::of_key(h.other).get(), false) {
                    halves.push(at);
                } else {
                    remote.push((at, h.rank));
                }
                if halves.len() == DETACH_BATCH {
                    apply(GraphOp::DropHalves { gone: gone.clone(), halves: std::mem::take(&mut halves) });
                }
                if remote.len() == DETACH_BATCH {
                    apply(GraphOp::DropRemote { gone: gone.clone(), halves: std::mem::take(&mut remote) });
                }
            }
        }
    }
    if !halves.is_empty() {
        apply(GraphOp::DropHalves { gone: gone.clone(), halves });
    }
    if !remote.is_empty() {
        apply(GraphOp::DropRemote { gone, halves: remote });
    }
}

/// Confirms the restored halves of `vid` whose mirror exists, in bounded ops.
fn confirm(ks: &Keyspace, now: u64, vid: &Bytes) {
    let neighbours: Vec<Bytes> = ks.get(vid, now, |e| match e.map(|e| &e.value) {
        Some(Value::Vertex(v)) => unconfirmed_neighbours(v),
        _ => Vec::new(),
    });
    for batch in neighbours.chunks(DETACH_BATCH) {
        let op = GraphOp::Confirm { vid: vid.clone(), neighbours: batch.to_vec() };
        ks.apply(&Write { now_ms: now, op: Op::Graph(op) });
    }
}

fn unconfirmed_neighbours(v: &Vertex) -> Vec<Bytes> {
    let mut seen = std::collections::HashSet::new();
    v.types()
        .iter()
        .flat_map(|t| t.out.iter().chain(t.inn.iter()))
        .filter(|h| !h.confirmed && seen.insert(h.other))
        .map(|h| Bytes::copy_from_slice(h.other))
        .collect()
}
