//! The deterministic writes on sorted sets and their apply.
//!
//! Invariants:
//! - No empty sorted set is stored: a write that removes members deletes the key with its
//!   last one, and a STORE whose result is empty deletes the destination.
//! - A refused op (WRONGTYPE, a NaN score) changes nothing: every key an op reads is
//!   type-checked before the first mutation, and the NaN check of ZADD INCR comes before
//!   its only insert.
//! - STORE results are computed inside apply from the sources as they are at apply time,
//!   then replace the destination whatever it held, TTL included (Redis's `setKey`).

use bytes::Bytes;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{Range, RangeBy, ZSetValue};
use crate::keyspace::{Entry, WriteSet};
use crate::op::{OpError, Output};
use crate::set::SetValue;
use crate::value::{FastHasher, Value};

/// ZADD's options, fixed by the parser (which refuses the incompatible ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub ch: bool,
    pub incr: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Aggregate {
    Sum,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Combine {
    Union,
    Inter,
    /// The first source minus all the others.
    Diff,
}

/// Deterministic writes on sorted sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ZSetOp {
    /// ZADD -> members added (or added + updated with CH); with INCR (and ZINCRBY) the
    /// new score, or nil when a condition blocked it.
    Add { key: Bytes, flags: AddFlags, pairs: Vec<(f64, Bytes)> },
    /// ZREM -> members removed.
    Rem { key: Bytes, members: Vec<Bytes> },
    /// ZPOPMIN / ZPOPMAX -> a flat array `[member, score, ...]` of up to `count` members.
    Pop { key: Bytes, max: bool, count: usize },
    /// ZMPOP -> nil if every key is missing, else `[key, [[member, score], ...]]` from the
    /// first key that exists.
    MPop { keys: Vec<Bytes>, max: bool, count: usize },
    /// ZREMRANGEBYRANK / BYSCORE / BYLEX -> members removed.
    RemRange { key: Bytes, by: RangeBy },
    /// ZRANGESTORE -> size of the stored result.
    RangeStore { dst: Bytes, src: Bytes, range: Range },
    /// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE -> size of the stored result. `weights` is
    /// empty or one per key.
    Store { dst: Bytes, kind: Combine, keys: Vec<Bytes>, weights: Vec<f64>, aggregate: Aggregate },
}

impl ZSetOp {
    /// Every key the op reads or writes (the keyspace locks their slots).
    pub fn for_each_key(&self, f: &mut dyn FnMut(&[u8])) {
        match self {
            ZSetOp::Add { key, .. } | ZSetOp::Rem { key, .. } | ZSetOp::Pop { key, .. } => f(key),
            ZSetOp::RemRange { key, .. } => f(key),
            ZSetOp::MPop { keys, .. } => keys.iter().for_each(|k| f(k)),
            ZSetOp::RangeStore { dst, src, .. } => {
                f(src);
                f(dst);
            }
            ZSetOp::Store { dst, keys, .. } => {
                keys.iter().for_each(|k| f(k));
                f(dst);
            }
        }
    }
}

pub(crate) fn apply(set: &mut WriteSet<'_>, op: &ZSetOp, now: u64) -> Output {
    match op {
        ZSetOp::Add { key, flags, pairs } => set.table(key).modify(key, now, |cur| add(cur, *flags, pairs)),
        ZSetOp::Rem { key, members } => set.table(key).modify(key, now, |cur| {
            let z = match cur {
                None => return Output::Int(0),
                Some(Entry { value: Value::ZSet(z), .. }) => z,
                Some(_) => return Output::Err(OpError::WrongType),
            };
            let removed = members.iter().filter(|m| z.remove(m).is_some()).count();
            drop_if_empty(cur);
            Output::Int(removed as i64)
        }),
        ZSetOp::Pop { key, max, count } => set.table(key).modify(key, now, |cur| match pop(cur, *max, *count) {
            Ok(items) => Output::Array(items.into_iter().flat_map(|(m, s)| [m, s]).collect()),
            Err(e) => Output::Err(e),
        }),
        ZSetOp::MPop { keys, max, count } => {
            for k in keys {
                let found = set.table(k).modify(k, now, |cur| cur.is_some().then(|| pop(cur, *max, *count)));
                match found {
                    None => continue,
                    Some(Err(e)) => return Output::Err(e),
                    Some(Ok(items)) => {
                        let items = items.into_iter().map(|(m, s)| Output::Array(vec![m, s])).collect();
                        return Output::Array(vec![Output::Bulk(k.clone()), Output::Array(items)]);
                    }
                }
            }
            Output::Nil
        }
        ZSetOp::RemRange { key, by } => set.table(key).modify(key, now, |cur| {
            let z = match cur {
                None => return Output::Int(0),
                Some(Entry { value: Value::ZSet(z), .. }) => z,
                Some(_) => return Output::Err(OpError::WrongType),
            };
            let doomed: Vec<Box<[u8]>> = z.range(&Range::new(by.clone(), false)).map(|(m, _)| m.into()).collect();
            doomed.iter().for_each(|m| _ = z.remove(m));
            drop_if_empty(cur);
            Output::Int(doomed.len() as i64)
        }),
        ZSetOp::RangeStore { dst, src, range } => {
            let result = match set.table(src).get(src, now) {
                None => ZSetValue::default(),
                Some(Entry { value: Value::ZSet(z), .. }) => {
                    let mut out = ZSetValue::default();
                    z.range(range).for_each(|(m, s)| _ = out.insert(m, s));
                    out
                }
                Some(_) => return Output::Err(OpError::WrongType),
            };
            store(set, dst, result, now)
        }
        ZSetOp::Store { dst, kind, keys, weights, aggregate } => {
            for k in keys {
                match set.table(k).get(k, now) {
                    None | Some(Entry { value: Value::ZSet(_) | Value::Set(_), .. }) => {}
                    Some(_) => return Output::Err(OpError::WrongType),
                }
            }
            let result =
                combine(*kind, weights, *aggregate, keys.len(), |i, f| match set.table(&keys[i]).get(&keys[i], now) {
                    Some(Entry { value: Value::ZSet(z), .. }) => f(Source::ZSet(z)),
                    Some(Entry { value: Value::Set(s), .. }) => f(Source::Set(s)),
                    _ => f(Source::Missing),
                });
            store(set, dst, result, now)
        }
    }
}

/// ZADD's per-member rules, as Redis's `zsetAdd`.
fn add(cur: &mut Option<Entry>, flags: AddFlags, pairs: &[(f64, Bytes)]) -> Output {
    // ZADD's handler refuses NaN; an op from a damaged or foreign log is refused the same
    // way here, before anything changes: a NaN in the tree would break its order (found
    // by fuzzing the op decoder).
    if pairs.iter().any(|(score, _)| score.is_nan()) {
        return Output::Err(OpError::NotFloat);
    }
    let blocked = if flags.incr { Output::Nil } else { Output::Int(0) };
    let z = match cur {
        None if flags.xx => return blocked,
        None => {
            *cur = Some(Entry::new(Value::ZSet(Box::default())));
            match cur {
                Some(Entry { value: Value::ZSet(z), .. }) => z,
                _ => return Output::Err(OpError::WrongType),
            }
        }
        Some(Entry { value: Value::ZSet(z), .. }) => z,
        Some(_) => return Output::Err(OpError::WrongType),
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    for (score, member) in pairs {
        match z.score(member) {
            Some(old) => {
                if flags.nx {
                    continue;
                }
                let mut new = *score;
                if flags.incr {
                    new += old;
                    if new.is_nan() {
                        drop_if_empty(cur);
                        return Output::Err(OpError::ScoreNan);
                    }
                }
                if (flags.lt && new >= old) || (flags.gt && new <= old) {
                    continue;
                }
                processed += 1;
                last = new;
                if new != old {
                    z.insert(member, new);
                    updated += 1;
                }
            }
            None if flags.xx => {}
            None => {
                z.insert(member, *score);
                added += 1;
                processed += 1;
                last = *score;
            }
        }
    }
    drop_if_empty(cur);
    match (flags.incr, processed) {
        (true, 0) => Output::Nil,
        (true, _) => Output::Double(last),
        (false, _) => Output::Int(if flags.ch { added + updated } else { added }),
    }
}

/// Pops up to `count` members from the low (or, `max`, the high) end: `(member, score)`
/// outputs. A missing key pops nothing.
fn pop(cur: &mut Option<Entry>, max: bool, count: usize) -> Result<Vec<(Output, Output)>, OpError> {
    let z = match cur {
        None => return Ok(Vec::new()),
        Some(Entry { value: Value::ZSet(z), .. }) => z,
        Some(_) => return Err(OpError::WrongType),
    };
    let taken: Vec<(Bytes, f64)> = z
        .tree
        .iter_from(if max { z.len().saturating_sub(1) } else { 0 }, max)
        .take(count)
        .map(|(m, s)| (Bytes::copy_from_slice(m), s))
        .collect();
    for (m, _) in &taken {
        z.remove(m);
    }
    drop_if_empty(cur);
    Ok(taken.into_iter().map(|(m, s)| (Output::Bulk(m), Output::Double(s))).collect())
}

/// Replaces `dst` with `result` (TTL cleared), or deletes it when `result` is empty.
fn store(set: &mut WriteSet<'_>, dst: &[u8], result: ZSetValue, now: u64) -> Output {
    let len = result.len();
    set.table(dst).modify(dst, now, |cur| {
        *cur = (len > 0).then(|| Entry::new(Value::ZSet(Box::new(result))));
    });
    Output::Int(len as i64)
}

/// Redis never keeps an empty collection: the key goes with its last member.
fn drop_if_empty(cur: &mut Option<Entry>) {
    if matches!(cur, Some(Entry { value: Value::ZSet(z), .. }) if z.is_empty()) {
        *cur = None;
    }
}

/// A source of ZUNION / ZINTER / ZDIFF: a sorted set, a plain set (every member scores
/// 1, as in Redis) or a missing key (empty).
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Missing,
    ZSet(&'a ZSetValue),
    Set(&'a SetValue),
}

impl Source<'_> {
    pub fn len(&self) -> usize {
        match self {
            Source::Missing => 0,
            Source::ZSet(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn find(&self, member: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::ZSet(z) => z.score(member),
            Source::Set(s) => s.contains(member).then_some(1.0),
        }
    }

    fn for_each(&self, mut f: impl FnMut(&[u8], f64)) {
        match self {
            Source::Missing => {}
            Source::ZSet(z) => z.iter().for_each(|(m, s)| f(m, s)),
            Source::Set(s) => s.iter().for_each(|m| f(m, 1.0)),
        }
    }
}

fn aggregate_into(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += value;
            // +inf + -inf: Redis's convention is 0.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if value < *target {
                *target = value
            }
        }
        Aggregate::Max => {
            if value > *target {
                *target = value
            }
        }
    }
}

/// ZUNION / ZINTER / ZDIFF over `n` sources, visited one at a time through `visit(i, f)`
/// (which calls `f` with source `i`): apply can lend only one slot table at a time, and
/// reads hold them all. Sources are aggregated smallest first, as Redis does, so float
/// sums come out the same. `weights` is empty (all 1) or one per source.
pub fn combine(
    kind: Combine,
    weights: &[f64],
    how: Aggregate,
    n: usize,
    mut visit: impl FnMut(usize, &mut dyn FnMut(Source<'_>)),
) -> ZSetValue {
    let weight = |i: usize| weights.get(i).copied().unwrap_or(1.0);
    let weighted = |w: f64, s: f64| {
        let v = w * s;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    let mut cards = vec![0usize; n];
    for (i, c) in cards.iter_mut().enumerate() {
        visit(i, &mut |s| *c = s.len());
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| cards[i]);
    let mut acc: IndexMap<Box<[u8]>, f64, FastHasher> = IndexMap::default();
    match kind {
        Combine::Union => {
            for &i in &order {
                let w = weight(i);
                visit(i, &mut |s| {
                    s.for_each(|m, score| {
                        let v = weighted(w, score);
                        match acc.get_mut(m) {
                            Some(t) => aggregate_into(t, v, how),
                            None => _ = acc.insert(m.into(), v),
                        }
                    })
                });
            }
        }
        Combine::Inter => {
            if cards.contains(&0) || n == 0 {
                return ZSetValue::default();
            }
            let first = order[0];
            let w = weight(first);
            visit(first, &mut |s| s.for_each(|m, score| _ = acc.insert(m.into(), weighted(w, score))));
            for &j in &order[1..] {
                let w = weight(j);
                visit(j, &mut |s| {
                    acc.retain(|m, t| match s.find(m) {
                        Some(v) => {
                            aggregate_into(t, v * w, how);
                            true
                        }
                        None => false,
                    })
                });
            }
        }
        Combine::Diff => {
            if n == 0 || cards[0] == 0 {
                return ZSetValue::default();
            }
            visit(0, &mut |s| s.for_each(|m, score| _ = acc.insert(m.into(), score)));
            for j in 1..n {
                visit(j, &mut |s| {
                    if !s.is_empty() {
                        acc.retain(|m, _| s.find(m).is_none());
                    }
                });
            }
        }
    }
    let mut out = ZSetValue::default();
    for (m, s) in acc {
        out.insert(&m, if s.is_nan() { 0.0 } else { s });
    }
    out
}
