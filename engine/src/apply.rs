//! Applying an [`Op`] to the locked slot tables. Pure: the outcome depends only on the
//! tables and the op (with its time), never on clocks, randomness or I/O.
//!
//! Every refused op ([`OpError`]) leaves the tables unchanged: checks come before
//! mutations, and a mutation that could fail halfway is computed first and stored last.

use bytes::Bytes;

use crate::compact::CompactBytes;
use crate::keyspace::{Entry, WriteSet};
use crate::num::{format_f64, parse_f64, parse_i64};
use crate::op::{Exists, ExpireCond, Op, OpError, Output, TtlChange};
use crate::value::{HashValue, Value};

/// Largest string value, as Redis's default `proto-max-bulk-len`.
pub const MAX_STRING_LEN: usize = 512 * 1024 * 1024;

pub(crate) fn apply_op(set: &mut WriteSet<'_>, op: &Op, now: u64) -> Output {
    match op {
        Op::Del { keys } => {
            let removed = keys.iter().filter(|k| set.table(k).take(k, now).is_some()).count();
            Output::Int(removed as i64)
        }
        Op::PurgeExpired { keys } => {
            let mut removed = 0;
            for k in keys {
                // `modify` sees an expired entry as absent and removes it when left absent.
                let t = set.table(k);
                let before = t.len();
                t.modify(k, now, |_| ());
                removed += before - t.len();
            }
            Output::Int(removed as i64)
        }
        Op::Set { key, value, exists, ttl, get } => set.table(key).modify(key, now, |cur| {
            let old = match (get, &*cur) {
                (true, Some(Entry { value: Value::Str(s), .. })) => Output::Bulk(Bytes::copy_from_slice(s)),
                (true, Some(_)) => return Output::Err(OpError::WrongType),
                _ => Output::Nil,
            };
            let blocked = match exists {
                Exists::Any => false,
                Exists::Absent => cur.is_some(),
                Exists::Present => cur.is_none(),
            };
            if !blocked {
                let expire_at = match ttl {
                    TtlChange::Clear => 0,
                    TtlChange::Keep => cur.as_ref().map_or(0, |e| e.expire_at),
                    TtlChange::At(t) => *t,
                };
                *cur = Some(Entry { value: Value::Str(CompactBytes::new(value)), expire_at });
            }
            match (get, blocked) {
                (true, _) => old,
                (false, true) => Output::Nil,
                (false, false) => Output::Ok,
            }
        }),
        Op::MSet { pairs, nx } => {
            if *nx && pairs.iter().any(|(k, _)| set.table(k).get(k, now).is_some()) {
                return Output::Int(0);
            }
            for (k, v) in pairs {
                set.table(k).put(k, now, Entry::new(Value::Str(CompactBytes::new(v))));
            }
            if *nx {
                Output::Int(1)
            } else {
                Output::Ok
            }
        }
        Op::IncrBy { key, delta } => set.table(key).modify(key, now, |cur| {
            let current = match cur {
                None => 0,
                Some(Entry { value: Value::Str(s), .. }) => match parse_i64(s) {
                    Some(n) => n,
                    None => return Output::Err(OpError::NotInteger),
                },
                Some(_) => return Output::Err(OpError::WrongType),
            };
            let Some(new) = current.checked_add(*delta) else {
                return Output::Err(OpError::Overflow);
            };
            store_str(cur, CompactBytes::new(itoa::Buffer::new().format(new).as_bytes()));
            Output::Int(new)
        }),
        Op::IncrByFloat { key, delta } => set.table(key).modify(key, now, |cur| {
            let current = match cur {
                None => 0.0,
                Some(Entry { value: Value::Str(s), .. }) => match parse_f64(s) {
                    Some(n) => n,
                    None => return Output::Err(OpError::NotFloat),
                },
                Some(_) => return Output::Err(OpError::WrongType),
            };
            let new = current + delta;
            if !new.is_finite() {
                return Output::Err(OpError::NanOrInfinity);
            }
            let text = format_f64(new);
            store_str(cur, CompactBytes::new(text.as_bytes()));
            Output::Bulk(Bytes::from(text))
        }),
        Op::Append { key, value } => set.table(key).modify(key, now, |cur| match cur {
            None => {
                *cur = Some(Entry::new(Value::Str(CompactBytes::new(value))));
                Output::Int(value.len() as i64)
            }
            Some(Entry { value: Value::Str(s), .. }) => {
                if s.len() + value.len() > MAX_STRING_LEN {
                    return Output::Err(OpError::StringTooLong);
                }
                // Keeps the grown Vec's spare room: repeated APPENDs are amortized O(1).
                s.edit(|v| v.extend_from_slice(value));
                Output::Int(s.len() as i64)
            }
            Some(_) => Output::Err(OpError::WrongType),
        }),
        Op::SetRange { key, offset, value } => set.table(key).modify(key, now, |cur| {
            let len = match cur {
                None => 0,
                Some(Entry { value: Value::Str(s), .. }) => s.len(),
                Some(_) => return Output::Err(OpError::WrongType),
            };
            if value.is_empty() {
                return Output::Int(len as i64);
            }
            if offset.saturating_add(value.len()) > MAX_STRING_LEN {
                return Output::Err(OpError::StringTooLong);
            }
            if cur.is_none() {
                *cur = Some(Entry::new(Value::Str(CompactBytes::default())));
            }
            let Some(Entry { value: Value::Str(s), .. }) = cur else {
                return Output::Err(OpError::WrongType);
            };
            let end = offset + value.len();
            if s.len() < end {
                s.edit(|v| v.resize(end, 0));
            }
            s[*offset..end].copy_from_slice(value);
            Output::Int(s.len() as i64)
        }),
        Op::GetDel { key } => set.table(key).modify(key, now, |cur| match cur.take() {
            None => Output::Nil,
            Some(Entry { value: Value::Str(s), .. }) => Output::Bulk(Bytes::from(s)),
            Some(other) => {
                *cur = Some(other);
                Output::Err(OpError::WrongType)
            }
        }),
        Op::GetEx { key, ttl } => set.table(key).modify(key, now, |cur| {
            let out = match cur {
                None => return Output::Nil,
                Some(Entry { value: Value::Str(s), .. }) => Output::Bulk(Bytes::copy_from_slice(s)),
                Some(_) => return Output::Err(OpError::WrongType),
            };
            match ttl {
                TtlChange::Keep => {}
                TtlChange::Clear => set_deadline(cur, 0),
                TtlChange::At(t) if *t <= now => *cur = None,
                TtlChange::At(t) => set_deadline(cur, *t),
            }
            out
        }),
        Op::Expire { key, at_ms, cond } => set.table(key).modify(key, now, |cur| {
            let Some(e) = cur else { return Output::Int(0) };
            // No TTL counts as an infinite one for GT and LT.
            let current = if e.expire_at == 0 { i128::MAX } else { e.expire_at as i128 };
            let new = *at_ms as i128;
            let allowed = match cond {
                ExpireCond::Always => true,
                ExpireCond::Nx => e.expire_at == 0,
                ExpireCond::Xx => e.expire_at != 0,
                ExpireCond::Gt => new > current,
                ExpireCond::Lt => new < current,
                ExpireCond::XxLt => e.expire_at != 0 && new < current,
            };
            if !allowed {
                return Output::Int(0);
            }
            if *at_ms <= now as i64 {
                *cur = None;
            } else {
                e.expire_at = *at_ms as u64;
            }
            Output::Int(1)
        }),
        Op::Persist { key } => set.table(key).modify(key, now, |cur| match cur {
            Some(e) if e.expire_at != 0 => {
                e.expire_at = 0;
                Output::Int(1)
            }
            _ => Output::Int(0),
        }),
        Op::Rename { src, dst, nx } => {
            if set.table(src).get(src, now).is_none() {
                return Output::Err(OpError::NoSuchKey);
            }
            if src == dst {
                return if *nx { Output::Int(0) } else { Output::Ok };
            }
            if *nx && set.table(dst).get(dst, now).is_some() {
                return Output::Int(0);
            }
            let entry = set.table(src).take(src, now).expect("checked above");
            set.table(dst).put(dst, now, entry);
            if *nx {
                Output::Int(1)
            } else {
                Output::Ok
            }
        }
        Op::HSet { key, pairs, nx } => set.table(key).modify(key, now, |cur| {
            let hash = match hash_for_write(cur) {
                Ok(h) => h,
                Err(e) => return Output::Err(e),
            };
            let mut added = 0;
            for (f, v) in pairs {
                if *nx && hash.contains(f) {
                    continue;
                }
                added += hash.insert(f, v) as i64;
            }
            drop_if_empty_hash(cur);
            Output::Int(added)
        }),
        Op::HDel { key, fields } => set.table(key).modify(key, now, |cur| {
            let removed = match cur {
                None => 0,
                Some(Entry { value: Value::Hash(h), .. }) => fields.iter().filter(|f| h.remove(f)).count(),
                Some(_) => return Output::Err(OpError::WrongType),
            };
            drop_if_empty_hash(cur);
            Output::Int(removed as i64)
        }),
        Op::HIncrBy { key, field, delta } => set.table(key).modify(key, now, |cur| {
            let hash = match hash_for_write(cur) {
                Ok(h) => h,
                Err(e) => return Output::Err(e),
            };
            let current = match hash.get(field) {
                None => 0,
                Some(v) => match parse_i64(v) {
                    Some(n) => n,
                    None => return fail_keeping_hash(cur, OpError::HashNotInteger),
                },
            };
            let Some(new) = current.checked_add(*delta) else {
                return fail_keeping_hash(cur, OpError::Overflow);
            };
            hash.insert(field, itoa::Buffer::new().format(new).as_bytes());
            Output::Int(new)
        }),
        Op::HIncrByFloat { key, field, delta } => set.table(key).modify(key, now, |cur| {
            let hash = match hash_for_write(cur) {
                Ok(h) => h,
                Err(e) => return Output::Err(e),
            };
            let current = match hash.get(field) {
                None => 0.0,
                Some(v) => match parse_f64(v) {
                    Some(n) => n,
                    None => return fail_keeping_hash(cur, OpError::HashNotFloat),
                },
            };
            let new = current + delta;
            if !new.is_finite() {
                return fail_keeping_hash(cur, OpError::NanOrInfinity);
            }
            let text = format_f64(new);
            hash.insert(field, text.as_bytes());
            Output::Bulk(Bytes::from(text))
        }),
        // Alone, FLUSHALL is handled by the keyspace, slot by slot; inside a transaction
        // every slot is locked (see `Op::flushes_all`) and the set clears them all.
        Op::FlushAll => {
            set.clear_all();
            Output::Ok
        }
        Op::Multi(ops) => Output::Array(ops.iter().map(|op| apply_op(set, op, now)).collect()),
        // The keyspace checks the guard (it reads slot versions) before the write runs and
        // applies the items itself; a guarded write only ever comes at the top level.
        Op::Guarded(g) => Output::Array(g.ops.iter().map(|op| apply_op(set, op, now)).collect()),
        // The keyspace applies a shard op itself; one never comes inside a transaction.
        Op::Shard(_) | Op::Tier(_) => Output::Err(OpError::NotReplicated),
        Op::Copy { src, dst, replace } => crate::dump::apply_copy(set, src, dst, *replace, now),
        Op::Restore { key, payload, expire_at, replace } => {
            crate::dump::apply_restore(set, key, payload, *expire_at, *replace, now)
        }
        Op::SortStore { key, dst, spec } => crate::sort::apply_store(set, key, dst, spec, now),
        Op::Sets(op) => crate::set::apply(set, op, now),
        Op::SortedSets(op) => crate::zset::apply(set, op, now),
        Op::Lists(op) => crate::list::apply(set, op, now),
        Op::Graph(op) => crate::graph::apply(set, op, now),
    }
}

/// Stores a new string value, keeping the entry's TTL (INCR and friends do).
fn store_str(cur: &mut Option<Entry>, bytes: CompactBytes) {
    match cur {
        Some(e) => e.value = Value::Str(bytes),
        None => *cur = Some(Entry::new(Value::Str(bytes))),
    }
}

fn set_deadline(cur: &mut Option<Entry>, at: u64) {
    if let Some(e) = cur {
        e.expire_at = at;
    }
}

/// The hash under the key, created empty if absent (the caller removes it again if it
/// stays empty), or WRONGTYPE.
fn hash_for_write(cur: &mut Option<Entry>) -> Result<&mut HashValue, OpError> {
    if cur.is_none() {
        *cur = Some(Entry::new(Value::Hash(Box::default())));
    }
    match cur {
        Some(Entry { value: Value::Hash(h), .. }) => Ok(h),
        _ => Err(OpError::WrongType),
    }
}

/// Redis never keeps an empty collection: the key goes with its last field.
fn drop_if_empty_hash(cur: &mut Option<Entry>) {
    if matches!(cur, Some(Entry { value: Value::Hash(h), .. }) if h.is_empty()) {
        *cur = None;
    }
}

fn fail_keeping_hash(cur: &mut Option<Entry>, e: OpError) -> Output {
    drop_if_empty_hash(cur);
    Output::Err(e)
}
