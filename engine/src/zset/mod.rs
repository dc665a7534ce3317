//! Sorted sets: the value type ([`ZSetValue`]), score and lex ranges ([`Range`]) as the
//! commands read them, and the deterministic writes ([`ZSetOp`]: ZADD ZINCRBY ZREM ZPOP*
//! ZMPOP ZREMRANGEBY* ZRANGESTORE and ZUNION/ZINTER/ZDIFF STORE, in `ops`).
//!
//! Invariants:
//! - A member has one score, never NaN and never -0.0 (stored as 0, as Redis's listpack
//!   does); members are ordered by `(score, member bytes)`.
//! - Rank, insert, delete and the start of any range are O(log n) ([`tree::ScoreTree`]);
//!   a range of k members is O(log n + k).
//! - Every range (by rank, score or lex, forward or reverse, with LIMIT) is first turned
//!   into a half-open span of ascending ranks, so counting and listing share one rule.
//! - No empty sorted set is ever stored (see `ops`).

mod ops;
mod tree;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub(crate) use ops::apply;
pub use ops::{combine, AddFlags, Aggregate, Combine, Source, ZSetOp};
pub use tree::RankIter;

/// A sorted set.
#[derive(Debug, Clone, Default)]
pub struct ZSetValue {
    tree: tree::ScoreTree,
}

impl PartialEq for ZSetValue {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a.0 == b.0 && a.1 == b.1)
    }
}

impl ZSetValue {
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Approximate heap bytes held, O(1).
    pub fn mem(&self) -> usize {
        self.tree.mem()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.tree.score(member)
    }

    /// Sets a member's score; returns the previous one. `score` must not be NaN. A
    /// negative zero is stored as 0, as Redis's listpack encoding (which holds every
    /// small sorted set) does.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        self.tree.insert(member, if score == 0.0 { 0.0 } else { score })
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        self.tree.remove(member)
    }

    /// 0-based rank in ascending order (`rev`: in descending order).
    pub fn rank(&self, member: &[u8], rev: bool) -> Option<usize> {
        let r = self.tree.rank(member)?;
        Some(if rev { self.len() - 1 - r } else { r })
    }

    /// The member and score at a storage position `0..len()` (ZSCAN, random picks).
    pub fn get_index(&self, pos: usize) -> Option<(&[u8], f64)> {
        self.tree.get_index(pos)
    }

    /// All members in ascending order.
    pub fn iter(&self) -> RankIter<'_> {
        self.tree.iter()
    }

    /// The members a range selects, in the range's direction, LIMIT applied.
    pub fn range(&self, r: &Range) -> std::iter::Take<RankIter<'_>> {
        let (start, end) = self.span(&r.by, r.rev);
        // Rank ranges take no LIMIT (the command parser refuses one).
        let (offset, limit) = if matches!(r.by, RangeBy::Rank { .. }) { (0, -1) } else { (r.offset, r.limit) };
        let Ok(offset) = usize::try_from(offset) else {
            return self.tree.iter_from(usize::MAX, false).take(0);
        };
        let avail = end.saturating_sub(start).saturating_sub(offset);
        if avail == 0 {
            return self.tree.iter_from(usize::MAX, false).take(0);
        }
        let n = usize::try_from(limit).map_or(avail, |l| l.min(avail));
        let first = if r.rev { end - 1 - offset } else { start + offset };
        self.tree.iter_from(first, r.rev).take(n)
    }

    /// How many members a score or lex range holds (ZCOUNT, ZLEXCOUNT).
    pub fn count(&self, by: &RangeBy) -> usize {
        let (start, end) = self.span(by, false);
        end.saturating_sub(start)
    }

    /// The half-open span of ascending ranks a range covers. For a rank range, `rev`
    /// says its indexes count from the highest score.
    fn span(&self, by: &RangeBy, rev: bool) -> (usize, usize) {
        let len = self.len();
        match by {
            RangeBy::Rank { start, stop } => {
                let Some((s, e)) = rank_span(*start, *stop, len) else { return (0, 0) };
                if rev {
                    (len - 1 - e, len - s)
                } else {
                    (s, e + 1)
                }
            }
            RangeBy::Score { min, max } => {
                let start = self.tree.count_before(|s, _| s < min.value || (min.exclusive && s == min.value));
                let end = self.tree.count_before(|s, _| s < max.value || (!max.exclusive && s == max.value));
                (start, end)
            }
            RangeBy::Lex { min, max } => {
                let below = |b: &LexBound, at_start: bool| match b {
                    LexBound::Min => 0,
                    LexBound::Max => len,
                    // An inclusive start and an exclusive end both stop before the value.
                    LexBound::Incl(v) if at_start => self.tree.count_before(|_, m| m < &v[..]),
                    LexBound::Excl(v) if !at_start => self.tree.count_before(|_, m| m < &v[..]),
                    LexBound::Incl(v) | LexBound::Excl(v) => self.tree.count_before(|_, m| m <= &v[..]),
                };
                (below(min, true), below(max, false))
            }
        }
    }
}

/// Redis's index rules for ZRANGE / ZREMRANGEBYRANK: negative indexes count from the end,
/// the stop is clamped; `None` if nothing is selected. Both ends inclusive.
pub fn rank_span(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (start + len).max(0) } else { start };
    let stop = if stop < 0 { stop + len } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop.min(len - 1) as usize))
}

/// One end of a score range: `1.5`, `(1.5`, `-inf`, `+inf`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// One end of a lex range: `-`, `+`, `[a`, `(a`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RangeBy {
    /// Inclusive indexes, negative from the end (from the top when the range is `rev`).
    Rank {
        start: i64,
        stop: i64,
    },
    Score {
        min: ScoreBound,
        max: ScoreBound,
    },
    Lex {
        min: LexBound,
        max: LexBound,
    },
}

/// A ZRANGE-style selection. `offset` and `limit` apply to score and lex ranges only: a
/// negative offset selects nothing, a negative limit means all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub by: RangeBy,
    pub rev: bool,
    pub offset: i64,
    pub limit: i64,
}

impl Range {
    pub fn new(by: RangeBy, rev: bool) -> Range {
        Range { by, rev, offset: 0, limit: -1 }
    }
}

/// A score argument (ZADD, ZINCRBY, WEIGHTS) with Redis's `string2d` rules: the whole
/// text is a float, no leading space, not NaN, no overflow to infinity or underflow to
/// zero (`inf` itself is fine).
pub fn parse_score(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let v: f64 = text.parse().ok()?;
    let lower = text.to_ascii_lowercase();
    if v.is_nan() || (v.is_infinite() && !lower.contains("inf")) {
        return None;
    }
    if v == 0.0 {
        let mantissa = lower.split('e').next().unwrap_or("");
        if mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            return None;
        }
    }
    Some(v)
}

/// A score range end as `zslParseRange` reads it: `(` makes it exclusive, the rest goes
/// through `strtod` (so an empty text is 0 and leading spaces are allowed), NaN refused.
pub fn parse_score_bound(s: &[u8]) -> Option<ScoreBound> {
    let (exclusive, rest) = match s.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, s),
    };
    let value = if rest.is_empty() {
        0.0
    } else {
        let text = std::str::from_utf8(rest).ok()?;
        let v: f64 = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']).parse().ok()?;
        if v.is_nan() {
            return None;
        }
        v
    };
    Some(ScoreBound { value, exclusive })
}

/// A lex range end as `zslParseLexRangeItem` reads it.
pub fn parse_lex_bound(s: &Bytes) -> Option<LexBound> {
    match s.first()? {
        b'+' if s.len() == 1 => Some(LexBound::Max),
        b'-' if s.len() == 1 => Some(LexBound::Min),
        b'(' => Some(LexBound::Excl(s.slice(1..))),
        b'[' => Some(LexBound::Incl(s.slice(1..))),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
