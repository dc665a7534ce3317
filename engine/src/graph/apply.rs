//! Applying [`GraphOp`]s. Pure: the outcome depends only on the locked tables and the op
//! (with its time). Every type check comes before the first mutation, so a refused op
//! (WRONGTYPE) changes nothing.

use bytes::Bytes;

use super::outbox::outbound;
use super::vertex::Bound;
use super::{Dir, EdgeHalf, GraphOp, HalfAt, RemoteHalf, Vertex};
use crate::keyspace::{Entry, WriteSet};
use crate::op::{OpError, Output};
use crate::value::{HashValue, Value};

pub(crate) fn apply(set: &mut WriteSet<'_>, op: &GraphOp, now: u64) -> Output {
    match op {
        GraphOp::SetVertex { vid, label, props } => set.table(vid).modify(vid, now, |cur| {
            let v = match vertex_for_write(cur) {
                Ok(v) => v,
                Err(e) => return Output::Err(e),
            };
            if let Some(l) = label {
                v.set_label(l);
            }
            let added = props.iter().filter(|(f, val)| v.props.insert(f, val)).count();
            Output::Int(added as i64)
        }),
        GraphOp::AddEdge { out, inn, rank, props } => {
            for owner in [&out.owner, &inn.owner] {
                if !is_vertex_or_absent(set, owner, now) {
                    return Output::Err(OpError::WrongType);
                }
            }
            let rank = rank.unwrap_or(now as i64);
            let props = edge_props(props);
            let is_new = put_half(set, out, rank, props, now);
            // Properties live on the out-half only.
            put_half(set, inn, rank, Some(None), now);
            Output::Int(is_new as i64)
        }
        GraphOp::DelEdge { out, inn } => {
            if !is_vertex_or_absent(set, &out.owner, now) {
                return Output::Err(OpError::WrongType);
            }
            let removed = remove_half(set, &out.owner, out.dir, &out.etype, &out.other, now);
            remove_half(set, &inn.owner, inn.dir, &inn.etype, &inn.other, now);
            Output::Int(removed as i64)
        }
        GraphOp::Detach { vid, neighbours } => {
            if !is_vertex_or_absent(set, vid, now) {
                return Output::Err(OpError::WrongType);
            }
            Output::Int(detach(set, vid, neighbours, now) as i64)
        }
        GraphOp::DelVertex { vid, neighbours } => {
            if !is_vertex_or_absent(set, vid, now) {
                return Output::Err(OpError::WrongType);
            }
            detach(set, vid, neighbours, now);
            // Halves added since the last batch go with the vertex to the cleanup.
            Output::Int(set.table(vid).take(vid, now).is_some() as i64)
        }
        GraphOp::DropHalves { gone, halves } => Output::Int(drop_halves(set, gone, halves, now) as i64),
        GraphOp::Bind { vid } => set.table(vid).modify(vid, now, |cur| match cur {
            Some(Entry { value: Value::Vertex(v), .. }) => {
                v.bind(vid);
                let waiting = v.types().iter().any(|t| t.out.unconfirmed() + t.inn.unconfirmed() > 0);
                Output::Int(waiting as i64)
            }
            _ => Output::Int(0),
        }),
        GraphOp::Confirm { vid, neighbours } => Output::Int(confirm(set, vid, neighbours, now) as i64),
        GraphOp::AddEdgeOut { out, inn, rank, props } => {
            if !is_vertex_or_absent(set, &out.owner, now) {
                return Output::Err(OpError::WrongType);
            }
            let rank = rank.unwrap_or(now as i64);
            let props = edge_props(props);
            let is_new = put_half(set, out, rank, props, now);
            outbound(RemoteHalf::Put { half: inn.clone(), rank });
            Output::Int(is_new as i64)
        }
        GraphOp::DelEdgeOut { out, inn } => {
            if !is_vertex_or_absent(set, &out.owner, now) {
                return Output::Err(OpError::WrongType);
            }
            let removed = remove_half(set, &out.owner, out.dir, &out.etype, &out.other, now);
            if removed {
                outbound(RemoteHalf::Remove { half: inn.clone(), if_rank: None });
            }
            Output::Int(removed as i64)
        }
        GraphOp::DetachAcross { vid, local, remote, delete } => {
            if !is_vertex_or_absent(set, vid, now) {
                return Output::Err(OpError::WrongType);
            }
            let mut removed = detach(set, vid, local, now);
            for n in remote {
                for (etype, dir, rank) in ranked_halves_to(set, vid, n, now) {
                    if !remove_half(set, vid, dir, &etype, n, now) {
                        continue;
                    }
                    removed += 1;
                    let half = EdgeHalf {
                        owner: n.clone(),
                        dir: dir.opposite(),
                        etype: Bytes::copy_from_slice(&etype),
                        other: vid.clone(),
                    };
                    outbound(remote_removal(half, rank));
                }
            }
            if *delete {
                Output::Int(set.table(vid).take(vid, now).is_some() as i64)
            } else {
                Output::Int(removed as i64)
            }
        }
        GraphOp::DropRemote { gone, halves } => {
            let mut owed = 0;
            for (h, rank) in halves {
                if holds(set, gone, &h.etype, h.dir.opposite(), &h.holder, now) {
                    continue;
                }
                let half =
                    EdgeHalf { owner: h.holder.clone(), dir: h.dir, etype: h.etype.clone(), other: gone.clone() };
                outbound(remote_removal(half, *rank));
                owed += 1;
            }
            Output::Int(owed)
        }
        GraphOp::Inbound { halves, .. } => Output::Int(inbound(set, halves, now) as i64),
    }
}

/// The removal of a half on another shard. An out-half there (its edge's in-side went
/// away here) is removed only at the rank seen, so a newer E.ADD of the same edge wins;
/// an in-half is only ever written by its out-side's shard, in outbox order: plain.
fn remote_removal(half: EdgeHalf, rank: i64) -> RemoteHalf {
    let if_rank = (half.dir == Dir::Out).then_some(rank);
    RemoteHalf::Remove { half, if_rank }
}

/// The halves of `key` pointing at `other`: (type, dir, rank).
fn ranked_halves_to(set: &mut WriteSet<'_>, key: &[u8], other: &[u8], now: u64) -> Vec<(Box<[u8]>, Dir, i64)> {
    match set.table(key).get(key, now) {
        Some(Entry { value: Value::Vertex(v), .. }) => v
            .types()
            .iter()
            .flat_map(|t| [Dir::Out, Dir::In].into_iter().map(move |d| (t, d)))
            .filter_map(|(t, d)| t.list(d).get(other).map(|h| (t.name.clone(), d, h.rank)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Applies a delivery from another shard's outbox (see [`RemoteHalf`]).
fn inbound(set: &mut WriteSet<'_>, halves: &[RemoteHalf], now: u64) -> usize {
    let mut changed = 0;
    for h in halves {
        match h {
            RemoteHalf::Put { half, rank } => {
                // A key of another type cannot hold a half: the in-half is dropped.
                if is_vertex_or_absent(set, &half.owner, now) {
                    put_half(set, half, *rank, Some(None), now);
                    changed += 1;
                }
            }
            RemoteHalf::Remove { half, if_rank } => {
                let current = match set.table(&half.owner).get(&half.owner, now) {
                    Some(Entry { value: Value::Vertex(v), .. }) => {
                        v.list(&half.etype, half.dir).and_then(|l| l.get(&half.other)).map(|h| h.rank)
                    }
                    _ => None,
                };
                let Some(current) = current else { continue };
                if if_rank.is_some_and(|r| r != current) {
                    continue;
                }
                if remove_half(set, &half.owner, half.dir, &half.etype, &half.other, now) {
                    changed += 1;
                    if if_rank.is_some() {
                        // The mirror's removal goes back after any in-half still queued
                        // here for this edge, so the two sides end alike.
                        let mirror = EdgeHalf {
                            owner: half.other.clone(),
                            dir: half.dir.opposite(),
                            etype: half.etype.clone(),
                            other: half.owner.clone(),
                        };
                        outbound(RemoteHalf::Remove { half: mirror, if_rank: None });
                    }
                }
            }
        }
    }
    changed
}

/// The halves of the vertex under `key` that point at `other` and satisfy `keep`:
/// (type, dir) pairs.
fn halves_to(
    set: &mut WriteSet<'_>,
    key: &[u8],
    other: &[u8],
    now: u64,
    keep: impl Fn(bool) -> bool,
) -> Vec<(Box<[u8]>, Dir)> {
    match set.table(key).get(key, now) {
        Some(Entry { value: Value::Vertex(v), .. }) => v
            .types()
            .iter()
            .flat_map(|t| [Dir::Out, Dir::In].into_iter().map(move |d| (t, d)))
            .filter(|(t, d)| t.list(*d).get(other).is_some_and(|h| keep(h.confirmed)))
            .map(|(t, d)| (t.name.clone(), d))
            .collect(),
        _ => Vec::new(),
    }
}

/// True if `key` is a vertex whose (etype, dir) list holds `other`.
fn holds(set: &mut WriteSet<'_>, key: &[u8], etype: &[u8], dir: Dir, other: &[u8], now: u64) -> bool {
    matches!(set.table(key).get(key, now),
        Some(Entry { value: Value::Vertex(v), .. }) if v.list(etype, dir).is_some_and(|l| l.contains(other)))
}

fn drop_halves(set: &mut WriteSet<'_>, gone: &[u8], halves: &[HalfAt], now: u64) -> usize {
    let mut removed = 0;
    for h in halves {
        // Re-created since, with the edge again: the half is valid.
        if holds(set, gone, &h.etype, h.dir.opposite(), &h.holder, now) {
            continue;
        }
        removed += remove_half(set, &h.holder, h.dir, &h.etype, gone, now) as usize;
    }
    removed
}

fn confirm(set: &mut WriteSet<'_>, vid: &[u8], neighbours: &[Bytes], now: u64) -> usize {
    let mut confirmed = 0;
    for n in neighbours {
        for (etype, dir) in halves_to(set, vid, n, now, |c| !c) {
            if !holds(set, n, &etype, dir.opposite(), vid, now) {
                continue;
            }
            for (owner, d, other) in [(vid, dir, &n[..]), (&n[..], dir.opposite(), vid)] {
                let done = set.table(owner).modify(owner, now, |cur| match cur {
                    Some(Entry { value: Value::Vertex(v), .. }) => v.with_list(&etype, d, |l| l.confirm(other)),
                    _ => false,
                });
                if owner == vid {
                    confirmed += done as usize;
                }
            }
        }
    }
    confirmed
}

/// The vertex under the key, created empty if absent, or WRONGTYPE.
fn vertex_for_write(cur: &mut Option<Entry>) -> Result<&mut Vertex, OpError> {
    if cur.is_none() {
        *cur = Some(Entry::new(Value::Vertex(Box::default())));
    }
    match cur {
        Some(Entry { value: Value::Vertex(v), .. }) => Ok(v),
        _ => Err(OpError::WrongType),
    }
}

fn is_vertex_or_absent(set: &mut WriteSet<'_>, key: &[u8], now: u64) -> bool {
    matches!(set.table(key).get(key, now), None | Some(Entry { value: Value::Vertex(_), .. }))
}

/// An E.ADD's properties as `put_half` takes them: `None` keeps the edge's, `Some` sets them.
fn edge_props(props: &Option<Vec<(Bytes, Bytes)>>) -> Option<Option<Box<HashValue>>> {
    props.as_ref().map(|p| {
        let mut h = HashValue::default();
        p.iter().for_each(|(f, v)| {
            h.insert(f, v);
        });
        Some(Box::new(h))
    })
}

/// Inserts or updates a half, creating its owner. The caller checked the owner's type.
fn put_half(set: &mut WriteSet<'_>, h: &EdgeHalf, rank: i64, props: Option<Option<Box<HashValue>>>, now: u64) -> bool {
    set.table(&h.owner).modify(&h.owner, now, |cur| match vertex_for_write(cur) {
        Ok(v) => {
            // A vertex RENAMEd here in this same write gives up the halves of its old id first.
            let _: Bound = v.bind(&h.owner);
            v.with_list(&h.etype, h.dir, |l| l.put(&h.other, rank, props))
        }
        Err(_) => false,
    })
}

/// Removes a half if its owner is a vertex holding it; other owners are left alone.
fn remove_half(set: &mut WriteSet<'_>, owner: &[u8], dir: Dir, etype: &[u8], other: &[u8], now: u64) -> bool {
    set.table(owner).modify(owner, now, |cur| match cur {
        Some(Entry { value: Value::Vertex(v), .. }) if v.list(etype, dir).is_some_and(|l| l.contains(other)) => {
            v.with_list(etype, dir, |l| l.remove(other))
        }
        _ => false,
    })
}

/// Removes every half between `vid` and each neighbour, on both sides; returns the number
/// removed at `vid`.
fn detach(set: &mut WriteSet<'_>, vid: &Bytes, neighbours: &[Bytes], now: u64) -> usize {
    let mut removed = 0;
    for n in neighbours {
        // (type, dir) of each half at vid pointing at n.
        let halves = halves_to(set, vid, n, now, |_| true);
        for (etype, dir) in &halves {
            removed += remove_half(set, vid, *dir, etype, n, now) as usize;
        }
        for (etype, dir) in &halves {
            remove_half(set, n, dir.opposite(), etype, vid, now);
        }
    }
    removed
}
