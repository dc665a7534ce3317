//! One adjacency list: the halves of one (vertex, edge type, direction), ordered newest
//! first.
//!
//! Invariants:
//! - `order` and `rank_of` hold exactly the same neighbours: `order` keys are
//!   `(Reverse(rank), neighbour)`, so iteration is rank descending, ties by neighbour bytes
//!   ascending; `rank_of` maps each neighbour to its rank so a lookup by neighbour is one
//!   hash probe plus one tree seek. A neighbour appears at most once (an edge is unique per
//!   (src, type, dst)).
//! - Insert, delete and seek are O(log n); `len` (the degree) is O(1).
//! - `bytes` is the running heap estimate of everything the list holds, kept exact on
//!   every change so `Vertex::mem` stays O(1).
//! - Properties live only on out-halves (the src side); in-halves carry `None`, so an
//!   edge's properties are stored once.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::value::{FastHasher, HashValue};

/// Bytes charged per half on top of twice the neighbour id: one B-tree slot (key, value
/// and node share), one hash bucket, two allocator headers.
pub const HALF_OVERHEAD: usize = 72;

/// The position of a half in its list: `(rank, neighbour)`; cursors resume after one.
pub type Position = (i64, Box<[u8]>);

/// Key of the ordered map: rank descending, then neighbour ascending.
type OrderKey = (Reverse<i64>, Box<[u8]>);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeList {
    order: BTreeMap<OrderKey, Option<Box<HashValue>>>,
    rank_of: HashMap<Box<[u8]>, i64, FastHasher>,
    bytes: usize,
}

/// One half as read from a list.
#[derive(Debug, Clone, Copy)]
pub struct HalfRef<'a> {
    pub other: &'a [u8],
    pub rank: i64,
    pub props: Option<&'a HashValue>,
}

fn half_bytes(other: &[u8], props: Option<&HashValue>) -> usize {
    HALF_OVERHEAD + 2 * other.len() + props.map_or(0, |p| p.mem())
}

impl EdgeList {
    /// The degree.
    pub fn len(&self) -> usize {
        self.rank_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rank_of.is_empty()
    }

    pub fn mem(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, other: &[u8]) -> Option<HalfRef<'_>> {
        let rank = *self.rank_of.get(other)?;
        let (k, props) = self.order.get_key_value(&(Reverse(rank), Box::from(other)))?;
        Some(HalfRef { other: &k.1, rank, props: props.as_deref() })
    }

    pub fn contains(&self, other: &[u8]) -> bool {
        self.rank_of.contains_key(other)
    }

    /// Inserts or updates the half to `other`. `props: None` keeps the properties an
    /// existing half has; `Some` replaces them. Returns true if the half is new.
    pub fn put(&mut self, other: &[u8], rank: i64, props: Option<Option<Box<HashValue>>>) -> bool {
        let (is_new, old_props) = match self.rank_of.get(other).copied() {
            Some(old_rank) => {
                let old = self.order.remove(&(Reverse(old_rank), Box::from(other))).flatten();
                self.bytes -= half_bytes(other, old.as_deref());
                (false, old)
            }
            None => (true, None),
        };
        let props = props.unwrap_or(old_props).filter(|p| !p.is_empty());
        self.bytes += half_bytes(other, props.as_deref());
        self.rank_of.insert(other.into(), rank);
        self.order.insert((Reverse(rank), other.into()), props);
        is_new
    }

    /// Removes the half to `other`; returns true if it existed.
    pub fn remove(&mut self, other: &[u8]) -> bool {
        let Some(rank) = self.rank_of.remove(other) else { return false };
        let props = self.order.remove(&(Reverse(rank), Box::from(other))).flatten();
        self.bytes -= half_bytes(other, props.as_deref());
        true
    }

    /// Halves in order (rank descending, then neighbour ascending), starting strictly
    /// after `after` if given, else at the first half whose rank is at most `max_rank`.
    pub fn iter_from(&self, after: Option<(i64, &[u8])>, max_rank: i64) -> impl Iterator<Item = HalfRef<'_>> {
        let start = match after {
            // A cursor already past max_rank resumes where it is; one before it starts at max_rank.
            Some((rank, other)) if rank <= max_rank => Bound::Excluded((Reverse(rank), Box::from(other))),
            _ => Bound::Included((Reverse(max_rank), Box::default())),
        };
        self.order.range((start, Bound::Unbounded)).map(|((r, o), p)| HalfRef {
            other: o,
            rank: r.0,
            props: p.as_deref(),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = HalfRef<'_>> {
        self.iter_from(None, i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn others(l: &EdgeList) -> Vec<(i64, String)> {
        l.iter().map(|h| (h.rank, String::from_utf8_lossy(h.other).into_owned())).collect()
    }

    #[test]
    fn ordered_by_rank_desc_then_neighbour() {
        let mut l = EdgeList::default();
        assert!(l.put(b"b", 5, None));
        assert!(l.put(b"a", 5, None));
        assert!(l.put(b"c", 9, None));
        assert!(l.put(b"d", -1, None));
        assert_eq!(others(&l), vec![(9, "c".into()), (5, "a".into()), (5, "b".into()), (-1, "d".into())]);
        // Re-adding moves the half and keeps the degree.
        assert!(!l.put(b"d", 10, None));
        assert_eq!(l.len(), 4);
        assert_eq!(others(&l)[0], (10, "d".into()));
        assert!(l.remove(b"a"));
        assert!(!l.remove(b"a"));
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn memory_returns_to_zero() {
        let mut l = EdgeList::default();
        let mut p = HashValue::default();
        p.insert(b"w", b"1");
        l.put(b"x", 1, Some(Some(Box::new(p))));
        l.put(b"x", 2, None);
        assert!(l.get(b"x").and_then(|h| h.props).is_some(), "props kept on rank update");
        l.put(b"y", 3, None);
        l.remove(b"x");
        l.remove(b"y");
        assert_eq!(l.mem(), 0);
    }

    #[test]
    fn seek_after_position_and_max_rank() {
        let mut l = EdgeList::default();
        for i in 0..10 {
            l.put(format!("n{i}").as_bytes(), i, None);
        }
        let after: Vec<i64> = l.iter_from(Some((7, b"n7")), i64::MAX).map(|h| h.rank).collect();
        assert_eq!(after, vec![6, 5, 4, 3, 2, 1, 0]);
        let capped: Vec<i64> = l.iter_from(None, 3).map(|h| h.rank).collect();
        assert_eq!(capped, vec![3, 2, 1, 0]);
        // A cursor whose rank is above max_rank starts at max_rank.
        let both: Vec<i64> = l.iter_from(Some((8, b"n8")), 2).map(|h| h.rank).collect();
        assert_eq!(both, vec![2, 1, 0]);
    }
}
