//! Sets: the value type ([`SetValue`]), its deterministic writes ([`SetOp`]: SADD SREM
//! SPOP SMOVE and the *STORE commands) and the set algebra shared by SINTER SUNION SDIFF
//! SINTERCARD and their STORE forms.
//!
//! Invariants:
//! - No empty set is ever stored: every write that may remove members deletes the key with
//!   its last member, and a *STORE whose result is empty deletes the destination.
//! - Apply is a pure function of the tables and the op: SPOP's random picks come from a
//!   [`SplitMix`] seeded with the op's `seed`, chosen by the handler.
//! - A refused op (WRONGTYPE) changes nothing: every key an op reads is type-checked
//!   before the first mutation.
//! - A *STORE computes its result from the sources inside apply (so it is atomic with
//!   respect to other writes) and then replaces the destination whatever it held, TTL
//!   included, as Redis's `setKey` does.

mod value;

use bytes::Bytes;
use indexmap::IndexSet;
use serde::{Deserialize, Serialize};

pub use value::{member_heap, SetValue, SplitMix};

use crate::keyspace::{Entry, WriteSet};
use crate::op::{OpError, Output};
use crate::value::{FastHasher, Value};

/// Which combination of sets a SINTER / SUNION / SDIFF family command computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algebra {
    Inter,
    Union,
    /// The first set minus all the others.
    Diff,
}

/// Deterministic writes on sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SetOp {
    /// SADD -> number of members added.
    Add { key: Bytes, members: Vec<Bytes> },
    /// SREM -> number of members removed.
    Rem { key: Bytes, members: Vec<Bytes> },
    /// SPOP. Without `count`: one member, or nil. With it: an array of at most `count`
    /// distinct members (the whole set, which goes, when it asks for at least as many).
    /// Members are picked by `SplitMix::new(seed)`.
    Pop { key: Bytes, count: Option<u64>, seed: u64 },
    /// SMOVE -> 1 if `member` moved from `src` to `dst` (or is in `src` when both are the
    /// same key), else 0.
    Move { src: Bytes, dst: Bytes, member: Bytes },
    /// SINTERSTORE / SUNIONSTORE / SDIFFSTORE -> the size of the set stored at `dst`.
    Store { algebra: Algebra, dst: Bytes, keys: Vec<Bytes> },
}

impl SetOp {
    /// Every key the op reads or writes (the keyspace locks their slots).
    pub fn for_each_key(&self, f: &mut dyn FnMut(&[u8])) {
        match self {
            SetOp::Add { key, .. } | SetOp::Rem { key, .. } | SetOp::Pop { key, .. } => f(key),
            SetOp::Move { src, dst, .. } => {
                f(src);
                f(dst);
            }
            SetOp::Store { dst, keys, .. } => {
                keys.iter().for_each(|k| f(k));
                f(dst);
            }
        }
    }
}

pub(crate) fn apply(set: &mut WriteSet<'_>, op: &SetOp, now: u64) -> Output {
    match op {
        SetOp::Add { key, members } => set.table(key).modify(key, now, |cur| {
            let s = match set_for_write(cur) {
                Ok(s) => s,
                Err(e) => return Output::Err(e),
            };
            let added = members.iter().filter(|m| s.insert(m)).count();
            drop_if_empty(cur);
            Output::Int(added as i64)
        }),
        SetOp::Rem { key, members } => set.table(key).modify(key, now, |cur| {
            let removed = match cur {
                None => 0,
                Some(Entry { value: Value::Set(s), .. }) => members.iter().filter(|m| s.remove(m)).count(),
                Some(_) => return Output::Err(OpError::WrongType),
            };
            drop_if_empty(cur);
            Output::Int(removed as i64)
        }),
        SetOp::Pop { key, count, seed } => set.table(key).modify(key, now, |cur| {
            let s = match cur {
                None if count.is_some() => return Output::Array(Vec::new()),
                None => return Output::Nil,
                Some(Entry { value: Value::Set(s), .. }) => s,
                Some(_) => return Output::Err(OpError::WrongType),
            };
            let mut rng = SplitMix::new(*seed);
            let mut pop_one = |s: &mut SetValue| {
                let i = rng.below(s.len());
                s.swap_remove_index(i).map(Bytes::from)
            };
            let out = match *count {
                None => pop_one(s).map_or(Output::Nil, Output::Bulk),
                Some(n) if n >= s.len() as u64 => Output::Array(s.drain().map(|m| Output::Bulk(m.into())).collect()),
                // n is below the set's size here, so the reply is bounded by what exists.
                Some(n) => Output::Array((0..n).filter_map(|_| pop_one(s).map(Output::Bulk)).collect()),
            };
            drop_if_empty(cur);
            out
        }),
        SetOp::Move { src, dst, member } => {
            let present = match with_set(set, src, now, |s| s.map(|s| s.contains(member))) {
                Err(e) => return Output::Err(e),
                // A missing source answers 0 before the destination's type is looked at.
                Ok(None) => return Output::Int(0),
                Ok(Some(p)) => p,
            };
            if let Err(e) = with_set(set, dst, now, |_| ()) {
                return Output::Err(e);
            }
            if src == dst || !present {
                return Output::Int(present as i64);
            }
            set.table(src).modify(src, now, |cur| {
                if let Some(Entry { value: Value::Set(s), .. }) = cur {
                    s.remove(member);
                }
                drop_if_empty(cur);
            });
            set.table(dst).modify(dst, now, |cur| {
                if let Ok(s) = set_for_write(cur) {
                    s.insert(member);
                }
            });
            Output::Int(1)
        }
        SetOp::Store { algebra, dst, keys } => {
            let result = match combine_in_place(set, *algebra, keys, now) {
                Ok(r) => r,
                Err(e) => return Output::Err(e),
            };
            let len = result.len();
            set.table(dst).modify(dst, now, |cur| {
                *cur = (len > 0).then(|| Entry::new(Value::Set(Box::new(result))));
            });
            Output::Int(len as i64)
        }
    }
}

/// The set under the key, created empty if absent (the caller removes it again if it
/// stays empty), or WRONGTYPE.
fn set_for_write(cur: &mut Option<Entry>) -> Result<&mut SetValue, OpError> {
    if cur.is_none() {
        *cur = Some(Entry::new(Value::Set(Box::default())));
    }
    match cur {
        Some(Entry { value: Value::Set(s), .. }) => Ok(s),
        _ => Err(OpError::WrongType),
    }
}

/// Redis never keeps an empty collection: the key goes with its last member.
fn drop_if_empty(cur: &mut Option<Entry>) {
    if matches!(cur, Some(Entry { value: Value::Set(s), .. }) if s.is_empty()) {
        *cur = None;
    }
}

/// Runs `f` on the set under `key` inside apply: `None` if absent, WRONGTYPE if the key
/// holds another type.
fn with_set<R>(
    set: &mut WriteSet<'_>,
    key: &[u8],
    now: u64,
    f: impl FnOnce(Option<&SetValue>) -> R,
) -> Result<R, OpError> {
    match set.table(key).get(key, now) {
        None => Ok(f(None)),
        Some(Entry { value: Value::Set(s), .. }) => Ok(f(Some(s))),
        Some(_) => Err(OpError::WrongType),
    }
}

/// The result of a *STORE, computed inside apply. The write set lends one table at a
/// time, so sources are visited one after another: the result starts as a copy of the
/// smallest (intersection) or first (difference) source, which bounds it anyway, and is
/// narrowed by each other source. Every key is type-checked first, in order, as Redis.
fn combine_in_place(set: &mut WriteSet<'_>, algebra: Algebra, keys: &[Bytes], now: u64) -> Result<SetValue, OpError> {
    let mut sizes = Vec::with_capacity(keys.len());
    for k in keys {
        sizes.push(with_set(set, k, now, |s| s.map_or(0, SetValue::len))?);
    }
    let copy = |set: &mut WriteSet<'_>, k: &[u8]| with_set(set, k, now, |s| s.cloned().unwrap_or_default());
    match algebra {
        Algebra::Inter => {
            let smallest = (0..keys.len()).min_by_key(|&i| sizes[i]);
            let Some(smallest) = smallest.filter(|&i| sizes[i] > 0) else {
                return Ok(SetValue::default());
            };
            let mut result = copy(set, &keys[smallest])?;
            for (i, k) in keys.iter().enumerate() {
                if i == smallest || result.is_empty() {
                    continue;
                }
                with_set(set, k, now, |s| result.retain(|m| s.is_some_and(|s| s.contains(m))))?;
            }
            Ok(result)
        }
        Algebra::Union => {
            let mut result = SetValue::default();
            for k in keys {
                with_set(set, k, now, |s| s.into_iter().flat_map(|s| s.iter()).for_each(|m| _ = result.insert(m)))?;
            }
            Ok(result)
        }
        Algebra::Diff => {
            let Some(first) = keys.first() else {
                return Ok(SetValue::default());
            };
            let mut result = copy(set, first)?;
            for k in &keys[1..] {
                if result.is_empty() {
                    break;
                }
                with_set(set, k, now, |s| {
                    let Some(s) = s else { return };
                    // Walk whichever side is smaller.
                    if s.len() < result.len() {
                        s.iter().for_each(|m| _ = result.remove(m));
                    } else {
                        result.retain(|m| !s.contains(m));
                    }
                })?;
            }
            Ok(result)
        }
    }
}

/// The members of the intersection, union or difference of `sets` (an absent key is an
/// empty set), each once, borrowed from the sets. For reads, which hold every source at
/// once.
pub fn combine<'a>(algebra: Algebra, sets: &[Option<&'a SetValue>]) -> Vec<&'a [u8]> {
    match algebra {
        Algebra::Inter => {
            let Some(present) = sets.iter().copied().collect::<Option<Vec<&SetValue>>>() else {
                return Vec::new();
            };
            let Some(smallest) = present.iter().copied().min_by_key(|s| s.len()) else {
                return Vec::new();
            };
            smallest.iter().filter(|m| present.iter().all(|s| std::ptr::eq(*s, smallest) || s.contains(m))).collect()
        }
        Algebra::Union => {
            let mut present = sets.iter().flatten();
            match (present.next(), present.next()) {
                (None, _) => Vec::new(),
                (Some(only), None) => only.iter().collect(),
                _ => {
                    let mut seen: IndexSet<&[u8], FastHasher> = IndexSet::default();
                    sets.iter().flatten().for_each(|s| seen.extend(s.iter()));
                    seen.into_iter().collect()
                }
            }
        }
        Algebra::Diff => match sets.split_first() {
            Some((Some(first), rest)) => {
                first.iter().filter(|m| !rest.iter().flatten().any(|s| s.contains(m))).collect()
            }
            _ => Vec::new(),
        },
    }
}

/// SINTERCARD: the size of the intersection, counting stops at `limit` (0: no limit).
pub fn inter_card(sets: &[Option<&SetValue>], limit: usize) -> usize {
    let Some(present) = sets.iter().copied().collect::<Option<Vec<&SetValue>>>() else {
        return 0;
    };
    let Some(smallest) = present.iter().copied().min_by_key(|s| s.len()) else {
        return 0;
    };
    let limit = if limit == 0 { usize::MAX } else { limit };
    smallest.iter().filter(|m| present.iter().all(|s| std::ptr::eq(*s, smallest) || s.contains(m))).take(limit).count()
}

#[cfg(test)]
mod tests;
