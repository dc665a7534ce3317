//! SORT: sorting the elements of a list, set or sorted set, numerically or as bytes, by
//! the elements themselves or by weights read through a `BY` pattern, with `LIMIT` and
//! `GET` patterns; and the apply of [`Op::SortStore`](crate::Op::SortStore).
//!
//! Shared by the read (SORT / SORT_RO, which reply) and the write (SORT ... STORE, sorted
//! inside apply so it is atomic with other writes and its log entry is just the command):
//! both call [`run`] on one slot table.
//!
//! Invariants:
//! - Every key a pattern forms is looked up in the sorted key's slot table only. The server
//!   admits only patterns that cannot leave that slot (as Redis Cluster 7.4's
//!   `patternHashSlot` check); a formed key of another slot reads as missing, so apply never
//!   touches a slot its op did not lock, whatever the op says.
//! - Redis's rules, step by step: `LIMIT` clamping, `BY` without `*` meaning "don't sort"
//!   (a set is then sorted ALPHA when stored, so the stored order is deterministic), numeric
//!   ties broken by comparing elements as bytes, a missing weight counting as 0 (numeric)
//!   or as smaller than any (ALPHA), and `GET` of a missing key giving nil (or "" when
//!   stored). The sort is stable, as glibc's merge-sort `qsort` that Redis uses.

use std::cmp::Ordering;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::keyspace::{Entry, SlotTable, WriteSet};
use crate::list::ListValue;
use crate::op::{OpError, Output};
use crate::slot::{crc16, Slot, SLOT_COUNT};
use crate::value::Value;
use crate::zset::{Range, RangeBy};

/// The options of one SORT, as parsed by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SortSpec {
    /// The last `BY` pattern given.
    pub by: Option<Bytes>,
    /// True when any `BY` pattern had no `*`: the elements keep their order.
    pub dont_sort: bool,
    pub gets: Vec<Bytes>,
    /// `LIMIT offset count`; (0, -1) without LIMIT.
    pub offset: i64,
    pub count: i64,
    pub desc: bool,
    pub alpha: bool,
}

impl SortSpec {
    pub fn new() -> SortSpec {
        SortSpec { count: -1, ..SortSpec::default() }
    }
}

/// The slot a pattern's keys all fall in, if that can be known from the pattern alone
/// (Redis's `patternHashSlot`): `None` when a wildcard or escape comes before a non-empty
/// hash tag closes.
pub fn pattern_slot(pattern: &[u8]) -> Option<Slot> {
    let mut open: Option<usize> = None;
    let mut tag_empty = false;
    for (i, &b) in pattern.iter().enumerate() {
        match b {
            b'*' | b'?' | b'[' | b'\\' => return None,
            b'{' if open.is_none() && !tag_empty => open = Some(i),
            b'}' => match open {
                Some(s) if i == s + 1 => {
                    open = None;
                    tag_empty = true;
                }
                Some(s) => return Slot::new((crc16(&pattern[s + 1..i]) as usize % SLOT_COUNT) as u64),
                None => {}
            },
            _ => {}
        }
    }
    Some(Slot::of_key(pattern))
}

/// The rows SORT yields: each element, or with GET patterns one item per pattern per
/// element (`None`: nil).
pub fn run(
    table: &SlotTable,
    key: &[u8],
    now: u64,
    spec: &SortSpec,
    store: bool,
) -> Result<Vec<Option<Vec<u8>>>, OpError> {
    let lookup = Lookup { table, slot: Slot::of_key(key), now };
    let source = match table.get(key, now).map(|e| &e.value) {
        None => None,
        Some(v @ (Value::List(_) | Value::Set(_) | Value::ZSet(_))) => Some(v),
        Some(_) => return Err(OpError::WrongType),
    };
    let (mut dont_sort, mut alpha, mut by) = (spec.dont_sort, spec.alpha, spec.by.as_deref());
    if dont_sort && store && matches!(source, Some(Value::Set(_))) {
        // A set's own order is not the same on every node: store it sorted.
        (dont_sort, alpha, by) = (false, true, None);
    }
    let len = source.map_or(0, value_len) as i64;
    // Redis's LIMIT clamping, in the same steps.
    let mut start = spec.offset.clamp(0, len);
    let count = spec.count.clamp(-1, len);
    let mut end = if count < 0 { len } else { start + count - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    end = end.min(len - 1);

    let mut elems: Vec<Vec<u8>> = Vec::new();
    match source {
        None => {}
        Some(v @ (Value::List(_) | Value::ZSet(_))) if dont_sort => {
            // Only the LIMIT range is loaded, in the requested direction; output starts at 0.
            let n = usize::try_from(end - start + 1).unwrap_or(0);
            elems = match v {
                _ if n == 0 => Vec::new(),
                Value::List(l) if spec.desc => l.iter_rev().skip(start as usize).take(n).map(|e| e.to_vec()).collect(),
                Value::List(l) => l.range(start as usize, n).map(|e| e.to_vec()).collect(),
                Value::ZSet(z) => {
                    // A rank range counts from the top when reversed, as DESC walks.
                    let range = Range::new(RangeBy::Rank { start, stop: end }, spec.desc);
                    z.range(&range).map(|(m, _)| m.to_vec()).collect()
                }
                _ => Vec::new(),
            };
            end -= start;
            start = 0;
        }
        Some(Value::List(l)) => elems = l.iter().map(|e| e.to_vec()).collect(),
        Some(Value::Set(s)) => elems = s.iter().map(<[u8]>::to_vec).collect(),
        Some(Value::ZSet(z)) => elems = z.iter().map(|(m, _)| m.to_vec()).collect(),
        Some(_) => return Err(OpError::WrongType),
    }

    if !dont_sort {
        elems = sort_elements(elems, &lookup, by, alpha, spec.desc)?;
    }
    let mut rows = Vec::new();
    if end >= start {
        for e in &elems[start as usize..=end as usize] {
            if spec.gets.is_empty() {
                rows.push(Some(e.clone()));
            }
            rows.extend(spec.gets.iter().map(|p| lookup.by_pattern(p, e)));
        }
    }
    Ok(rows)
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::List(l) => l.len(),
        Value::Set(s) => s.len(),
        Value::ZSet(z) => z.len(),
        _ => 0,
    }
}

/// What an element is compared by.
enum SortKey {
    Score(f64),
    /// ALPHA by a pattern: the weight, `None` when its key is missing.
    Weight(Option<Vec<u8>>),
    /// ALPHA by the element itself.
    Itself,
}

fn sort_elements(
    elems: Vec<Vec<u8>>,
    lookup: &Lookup<'_>,
    by: Option<&[u8]>,
    alpha: bool,
    desc: bool,
) -> Result<Vec<Vec<u8>>, OpError> {
    let mut keyed = Vec::with_capacity(elems.len());
    for e in elems {
        let weight = match by {
            Some(p) => lookup.by_pattern(p, &e),
            None => None,
        };
        let key = match (alpha, by) {
            (true, Some(_)) => SortKey::Weight(weight),
            (true, None) => SortKey::Itself,
            (false, Some(_)) => match weight {
                None => SortKey::Score(0.0),
                Some(w) => SortKey::Score(strtod(&w).ok_or(OpError::NotDouble)?),
            },
            (false, None) => SortKey::Score(strtod(&e).ok_or(OpError::NotDouble)?),
        };
        keyed.push((key, e));
    }
    keyed.sort_by(|(ka, a), (kb, b)| {
        let cmp = match (ka, kb) {
            (SortKey::Score(x), SortKey::Score(y)) => {
                x.partial_cmp(y).unwrap_or(Ordering::Equal).then_with(|| a.cmp(b))
            }
            (SortKey::Weight(x), SortKey::Weight(y)) => x.cmp(y),
            _ => a.cmp(b),
        };
        if desc {
            cmp.reverse()
        } else {
            cmp
        }
    });
    Ok(keyed.into_iter().map(|(_, e)| e).collect())
}

/// Reads the keys patterns form, from one slot table.
struct Lookup<'a> {
    table: &'a SlotTable,
    slot: Slot,
    now: u64,
}

impl Lookup<'_> {
    /// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*` is
    /// replaced by the element, and a `->field` after it reads a hash field instead of a
    /// string. No `*`, a missing key or another type: `None`.
    fn by_pattern(&self, pattern: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
        if pattern == b"#" {
            return Some(elem.to_vec());
        }
        let star = pattern.iter().position(|&b| b == b'*')?;
        let after = &pattern[star + 1..];
        let (postfix, field) = match after.windows(2).position(|w| w == b"->") {
            Some(i) if i + 2 < after.len() => (&after[..i], Some(&after[i + 2..])),
            _ => (after, None),
        };
        let mut key = Vec::with_capacity(star + elem.len() + postfix.len());
        key.extend_from_slice(&pattern[..star]);
        key.extend_from_slice(elem);
        key.extend_from_slice(postfix);
        if Slot::of_key(&key) != self.slot {
            return None;
        }
        match (self.table.get(&key, self.now), field) {
            (Some(Entry { value: Value::Str(s), .. }), None) => Some(s.to_vec()),
            (Some(Entry { value: Value::Hash(h), .. }), Some(f)) => h.get(f).map(<[u8]>::to_vec),
            _ => None,
        }
    }
}

/// A number as C's `strtod` reads a whole string in Redis's SORT: leading white space
/// allowed, nothing after the number, no NaN, no overflow or underflow (ERANGE); the empty
/// string reads as 0.
fn strtod(s: &[u8]) -> Option<f64> {
    if s.is_empty() {
        return Some(0.0);
    }
    let start = s.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))?;
    let text = std::str::from_utf8(&s[start..]).ok()?;
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'-') => (-1.0, &text[1..]),
        Some(b'+') => (1.0, &text[1..]),
        _ => (1.0, text),
    };
    let lower = digits.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    if let Some(hex) = lower.strip_prefix("0x") {
        // Hex integers (strtod also takes hex fractions and exponents; SORT weights do not).
        let v = u64::from_str_radix(hex, 16).ok()?;
        return Some(sign * v as f64);
    }
    // Rust's grammar minus what strtod reads differently: names and signs were handled.
    if !digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
        return None;
    }
    let v: f64 = digits.parse().ok()?;
    if v.is_infinite() {
        return None;
    }
    let nonzero_digit = digits.split(['e', 'E']).next().is_some_and(|m| m.bytes().any(|b| (b'1'..=b'9').contains(&b)));
    if (v == 0.0 || v.is_subnormal()) && nonzero_digit {
        return None;
    }
    Some(sign * v)
}

/// SORT ... STORE: sorts from the source's slot table, then replaces `dst` with the rows
/// as a list (no TTL), or deletes it when there are none.
pub(crate) fn apply_store(set: &mut WriteSet<'_>, key: &[u8], dst: &[u8], spec: &SortSpec, now: u64) -> Output {
    let rows = match run(set.table(key), key, now, spec, true) {
        Ok(r) => r,
        Err(e) => return Output::Err(e),
    };
    let n = rows.len();
    set.table(dst).modify(dst, now, |cur| {
        *cur = (n > 0).then(|| {
            let mut l = ListValue::default();
            rows.iter().for_each(|r| l.push_back(r.as_deref().unwrap_or_default()));
            Entry::new(Value::List(Box::new(l)))
        });
    });
    Output::Int(n as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_matches_c() {
        assert_eq!(strtod(b""), Some(0.0));
        assert_eq!(strtod(b"  1.5"), Some(1.5));
        assert_eq!(strtod(b"1.5 "), None);
        assert_eq!(strtod(b"   "), None);
        assert_eq!(strtod(b"-3"), Some(-3.0));
        assert_eq!(strtod(b"+.5"), Some(0.5));
        assert_eq!(strtod(b"5."), Some(5.0));
        assert_eq!(strtod(b"1e3"), Some(1000.0));
        assert_eq!(strtod(b"1e"), None);
        assert_eq!(strtod(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(strtod(b"nan"), None);
        assert_eq!(strtod(b"1e400"), None);
        assert_eq!(strtod(b"1e-400"), None);
        assert_eq!(strtod(b"0.0"), Some(0.0));
        assert_eq!(strtod(b"0x10"), Some(16.0));
        assert_eq!(strtod(b"abc"), None);
    }

    /// An op naming patterns outside the key's slot (which the server never builds) reads
    /// those keys as missing instead of touching an unlocked slot.
    #[test]
    fn store_never_reads_outside_the_keys_slot() {
        use crate::keyspace::Keyspace;
        use crate::list::{End, ListOp};
        use crate::op::{Exists, Op, TtlChange, Write};
        let ks = Keyspace::new();
        let w = |op| ks.apply(&Write { now_ms: 0, op });
        let b = |s: &str| Bytes::from(s.to_owned());
        w(Op::Lists(ListOp::Push {
            key: b("{a}l"),
            elements: vec![b("2"), b("1")],
            end: End::Right,
            only_if_exists: false,
        }));
        w(Op::Set { key: b("o_1"), value: b("x"), exists: Exists::Any, ttl: TtlChange::Clear, get: false });
        let spec = SortSpec { by: Some(b("w_*")), gets: vec![b("o_*"), b("#")], ..SortSpec::new() };
        assert_eq!(w(Op::SortStore { key: b("{a}l"), dst: b("{a}d"), spec }), Output::Int(4));
        let stored = ks.get(b"{a}d", 0, |e| match e.map(|e| &e.value) {
            Some(Value::List(l)) => l.iter().map(|e| e.to_vec()).collect::<Vec<_>>(),
            _ => Vec::new(),
        });
        assert_eq!(stored, vec![b"".to_vec(), b"1".to_vec(), b"".to_vec(), b"2".to_vec()]);
    }

    #[test]
    fn pattern_slots_follow_redis() {
        let tag = Slot::of_key(b"{a}x");
        assert_eq!(pattern_slot(b"{a}by*"), Some(tag));
        assert_eq!(pattern_slot(b"{a}by*->f"), Some(tag));
        assert_eq!(pattern_slot(b"by*"), None);
        assert_eq!(pattern_slot(b"by*{a}"), None);
        assert_eq!(pattern_slot(b"{a?}*"), None);
        // An empty tag hashes the whole pattern (no wildcard here).
        assert_eq!(pattern_slot(b"{}{a}k"), Some(Slot::of_key(b"{}{a}k")));
        assert_eq!(pattern_slot(b"{}{a}*"), None);
        assert_eq!(pattern_slot(b"plain"), Some(Slot::of_key(b"plain")));
    }
}
