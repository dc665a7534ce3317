//! List write ops and their apply.
//!
//! Every op is a pure function of the locked keys and the op. Checks come first (type of
//! every key involved, index range), so a refused op changes nothing; a list emptied by
//! an op is deleted in the same op.
//!
//! Blocking commands reuse these ops unchanged: once a watched key has data, BLPOP /
//! BRPOP / BLMPOP apply [`ListOp::MPop`], BLMOVE / BRPOPLPUSH apply [`ListOp::Move`], and
//! only reshape the reply.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ListValue;
use crate::keyspace::{Entry, WriteSet};
use crate::op::{OpError, Output};
use crate::value::Value;

/// Which end of a list: `LEFT` is the head (index 0), `RIGHT` the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum End {
    Left,
    Right,
}

/// Deterministic writes on lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ListOp {
    /// LPUSH / RPUSH, and with `only_if_exists` LPUSHX / RPUSHX -> the new length (0 when
    /// `only_if_exists` finds no key). Elements are pushed one by one, in order.
    Push { key: Bytes, end: End, elements: Vec<Bytes>, only_if_exists: bool },
    /// LPOP / RPOP. Without `count`: the element, or nil. With `count`: an array of up to
    /// `count` elements, or nil for a missing key (which RESP2 renders as a null array).
    Pop { key: Bytes, end: End, count: Option<usize> },
    /// LSET -> OK; `NoSuchKey` for a missing key, `IndexOutOfRange`.
    Set { key: Bytes, index: i64, element: Bytes },
    /// LREM -> the number removed (see [`ListValue::remove_matching`] for `count`).
    Rem { key: Bytes, count: i64, element: Bytes },
    /// LTRIM with Redis's index rules -> OK.
    Trim { key: Bytes, start: i64, stop: i64 },
    /// LINSERT -> the new length, -1 when the pivot is missing, 0 when the key is.
    Insert { key: Bytes, after: bool, pivot: Bytes, element: Bytes },
    /// LMOVE / RPOPLPUSH: pops from `src`'s `from` end and pushes on `dst`'s `to` end ->
    /// the element, or nil when `src` is missing. `src == dst` rotates.
    Move { src: Bytes, dst: Bytes, from: End, to: End },
    /// LMPOP: pops up to `count` elements from the first non-empty list among `keys` ->
    /// `[key, [elements]]`, or nil when all are empty (a null array in RESP2).
    MPop { keys: Vec<Bytes>, end: End, count: usize },
}

impl ListOp {
    /// Every key the op reads or writes (the keyspace locks their slots).
    pub fn for_each_key(&self, f: &mut dyn FnMut(&[u8])) {
        match self {
            ListOp::Push { key, .. }
            | ListOp::Pop { key, .. }
            | ListOp::Set { key, .. }
            | ListOp::Rem { key, .. }
            | ListOp::Trim { key, .. }
            | ListOp::Insert { key, .. } => f(key),
            ListOp::Move { src, dst, .. } => {
                f(src);
                f(dst);
            }
            ListOp::MPop { keys, .. } => keys.iter().for_each(|k| f(k)),
        }
    }
}

/// The list under the key: `Ok(None)` if absent, WRONGTYPE if another type.
fn list_of(cur: &mut Option<Entry>) -> Result<Option<&mut ListValue>, OpError> {
    match cur {
        None => Ok(None),
        Some(Entry { value: Value::List(l), .. }) => Ok(Some(l)),
        Some(_) => Err(OpError::WrongType),
    }
}

/// Redis never keeps an empty list: the key goes with its last element.
fn drop_if_empty(cur: &mut Option<Entry>) {
    if matches!(cur, Some(Entry { value: Value::List(l), .. }) if l.is_empty()) {
        *cur = None;
    }
}

fn bulk(v: Vec<u8>) -> Output {
    Output::Bulk(Bytes::from(v))
}

/// Pops up to `count` elements from `end`.
fn pop_many(l: &mut ListValue, end: End, count: usize) -> Vec<Output> {
    let n = count.min(l.len());
    (0..n).filter_map(|_| l.pop(end)).map(bulk).collect()
}

/// A Redis index (negative counts from the tail) as a position in a list of `len`.
pub fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if index < 0 { index.checked_add(len)? } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

/// The `start..start + n` a Redis `start stop` range selects in a list of `len` (LRANGE,
/// LTRIM): negative indexes count from the tail, the range is clamped, and an inverted or
/// out-of-range one is empty (`n == 0`).
pub fn resolve_range(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let start = if start < 0 { start.saturating_add(len).max(0) } else { start };
    let stop = if stop < 0 { stop.saturating_add(len) } else { stop };
    if start > stop || start >= len {
        return (0, 0);
    }
    let stop = stop.min(len - 1);
    (start as usize, (stop - start + 1) as usize)
}

pub(crate) fn apply(set: &mut WriteSet<'_>, op: &ListOp, now: u64) -> Output {
    match op {
        ListOp::Push { key, end, elements, only_if_exists } => set.table(key).modify(key, now, |cur| {
            match list_of(cur) {
                Err(e) => return Output::Err(e),
                Ok(None) if *only_if_exists => return Output::Int(0),
                Ok(None) => *cur = Some(Entry::new(Value::List(Box::default()))),
                Ok(Some(_)) => {}
            }
            let Ok(Some(l)) = list_of(cur) else { return Output::Err(OpError::WrongType) };
            elements.iter().for_each(|e| l.push(*end, e));
            let len = l.len();
            drop_if_empty(cur);
            Output::Int(len as i64)
        }),
        ListOp::Pop { key, end, count } => set.table(key).modify(key, now, |cur| {
            let l = match list_of(cur) {
                Err(e) => return Output::Err(e),
                Ok(None) => return Output::Nil,
                Ok(Some(l)) => l,
            };
            let out = match count {
                None => l.pop(*end).map_or(Output::Nil, bulk),
                Some(n) => Output::Array(pop_many(l, *end, *n)),
            };
            drop_if_empty(cur);
            out
        }),
        ListOp::Set { key, index, element } => set.table(key).modify(key, now, |cur| {
            let l = match list_of(cur) {
                Err(e) => return Output::Err(e),
                Ok(None) => return Output::Err(OpError::NoSuchKey),
                Ok(Some(l)) => l,
            };
            match resolve_index(*index, l.len()) {
                Some(i) if l.set(i, element) => Output::Ok,
                _ => Output::Err(OpError::IndexOutOfRange),
            }
        }),
        ListOp::Rem { key, count, element } => set.table(key).modify(key, now, |cur| {
            let removed = match list_of(cur) {
                Err(e) => return Output::Err(e),
                Ok(None) => 0,
                Ok(Some(l)) => l.remove_matching(element, *count),
            };
            drop_if_empty(cur);
            Output::Int(removed as i64)
        }),
        ListOp::Trim { key, start, stop } => set.table(key).modify(key, now, |cur| {
            match list_of(cur) {
                Err(e) => return Output::Err(e),
                Ok(None) => {}
                Ok(Some(l)) => {
                    let (from, n) = resolve_range(*start, *stop, l.len());
                    l.retain_range(from, n);
                }
            }
            drop_if_empty(cur);
            Output::Ok
        }),
        ListOp::Insert { key, after, pivot, element } => set.table(key).modify(key, now, |cur| match list_of(cur) {
            Err(e) => Output::Err(e),
            Ok(None) => Output::Int(0),
            Ok(Some(l)) => match l.insert_at_pivot(pivot, element, *after) {
                true => Output::Int(l.len() as i64),
                false => Output::Int(-1),
            },
        }),
        ListOp::Move { src, dst, from, to } => apply_move(set, src, dst, *from, *to, now),
        ListOp::MPop { keys, end, count } => {
            for key in keys {
                match set.table(key).get(key, now) {
                    None => continue,
                    Some(Entry { value: Value::List(_), .. }) => {}
                    Some(_) => return Output::Err(OpError::WrongType),
                }
                let popped = set.table(key).modify(key, now, |cur| {
                    let items = match list_of(cur) {
                        Ok(Some(l)) => pop_many(l, *end, *count),
                        _ => Vec::new(),
                    };
                    drop_if_empty(cur);
                    items
                });
                return Output::Array(vec![Output::Bulk(key.clone()), Output::Array(popped)]);
            }
            Output::Nil
        }
    }
}

/// LMOVE: both types are checked before anything moves, as Redis does (a missing source
/// answers nil whatever the destination holds).
fn apply_move(set: &mut WriteSet<'_>, src: &Bytes, dst: &Bytes, from: End, to: End, now: u64) -> Output {
    match set.table(src).get(src, now) {
        None => return Output::Nil,
        Some(Entry { value: Value::List(_), .. }) => {}
        Some(_) => return Output::Err(OpError::WrongType),
    }
    if src == dst {
        return set.table(src).modify(src, now, |cur| match list_of(cur) {
            Ok(Some(l)) => match l.pop(from) {
                Some(v) => {
                    l.push(to, &v);
                    bulk(v)
                }
                None => Output::Nil,
            },
            _ => Output::Nil,
        });
    }
    match set.table(dst).get(dst, now) {
        None | Some(Entry { value: Value::List(_), .. }) => {}
        Some(_) => return Output::Err(OpError::WrongType),
    }
    let popped = set.table(src).modify(src, now, |cur| {
        let v = match list_of(cur) {
            Ok(Some(l)) => l.pop(from),
            _ => None,
        };
        drop_if_empty(cur);
        v
    });
    let Some(v) = popped else { return Output::Nil };
    set.table(dst).modify(dst, now, |cur| {
        if cur.is_none() {
            *cur = Some(Entry::new(Value::List(Box::default())));
        }
        if let Ok(Some(l)) = list_of(cur) {
            l.push(to, &v);
        }
    });
    bulk(v)
}
