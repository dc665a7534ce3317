//! [`ScoreTree`]: the members of a sorted set, each stored once, reachable both by name
//! (a hash index) and by order (a treap keyed by `(score, member)` with subtree sizes).
//!
//! Layout: one `IndexMap<member, Node>`. The map is the dense slab of nodes (a node's
//! id is its position) and the member -> node hash index at once, so a member's bytes live
//! in exactly one allocation. The treap's links are `u32` positions into the same map.
//!
//! Invariants:
//! - In-order traversal of the treap from `root` visits every position exactly once, in
//!   ascending `(score, member)` order; scores never hold NaN, so that order is total
//!   (-0.0 and 0.0 compare equal, as in Redis, and the member decides).
//! - `size` of a node is the number of nodes in its subtree; `prio` is a max-heap over the
//!   treap, drawn from a per-tree SplitMix stream, so the expected depth is O(log n)
//!   whatever order members arrive in. The shape never shows in any reply.
//! - Removal is swap-removal in the map: the last position moves into the hole and its
//!   single incoming link (parent or root) is re-pointed, so positions stay dense and
//!   `ZSCAN` can walk them from the end (see `keyspace::scan_positions`).
//! - `heap` is the sum of the members' allocation sizes, so `mem` is O(1).

use std::cmp::Ordering;

use indexmap::IndexMap;

use crate::set::member_heap;
use crate::value::FastHasher;

const NIL: u32 = u32::MAX;

/// Bytes one capacity slot of the map costs: the entry (cached hash 8, boxed member 16,
/// node 24) plus the hash table's index (8) and control byte over its 7/8 load factor.
const SLOT_BYTES: usize = 48 + 10;
/// Below this capacity a tree is never shrunk: small sets are not worth a rehash.
const SHRINK_MIN_CAPACITY: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Node {
    score: f64,
    left: u32,
    right: u32,
    size: u32,
    prio: u32,
}

/// Compares two `(score, member)` keys in sorted-set order.
#[inline]
pub fn cmp_key(a_score: f64, a: &[u8], b_score: f64, b: &[u8]) -> Ordering {
    a_score.partial_cmp(&b_score).unwrap_or(Ordering::Equal).then_with(|| a.cmp(b))
}

#[derive(Debug, Clone, Default)]
pub struct ScoreTree {
    map: IndexMap<Box<[u8]>, Node, FastHasher>,
    root: Option<u32>,
    /// SplitMix64 state for node priorities.
    rng: u64,
    heap: usize,
}

impl ScoreTree {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn mem(&self) -> usize {
        std::mem::size_of::<Self>() + self.map.capacity() * SLOT_BYTES + self.heap
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.map.get(member).map(|n| n.score)
    }

    /// The member and score at a map position (for ZSCAN and random picks), `0..len()`.
    pub fn get_index(&self, pos: usize) -> Option<(&[u8], f64)> {
        self.map.get_index(pos).map(|(m, n)| (&**m, n.score))
    }

    /// Sets `member`'s score, inserting it if new; returns the previous score.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        debug_assert!(!score.is_nan());
        if let Some(i) = self.map.get_index_of(member) {
            let old = self.map[i].score;
            // Equal scores (-0.0 and 0.0 included) keep the stored one, as Redis does.
            if old != score {
                let root = self.root();
                let root = self.detach(root, i as u32);
                self.map[i] = Node { score, left: NIL, right: NIL, size: 1, prio: self.map[i].prio };
                let root = self.attach(root, i as u32);
                self.root = Some(root);
            }
            return Some(old);
        }
        let prio = self.next_prio();
        let (i, _) = self.map.insert_full(member.into(), Node { score, left: NIL, right: NIL, size: 1, prio });
        self.heap += member_heap(member.len());
        let root = self.root();
        let root = self.attach(root, i as u32);
        self.root = Some(root);
        None
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let i = self.map.get_index_of(member)?;
        let root = self.root();
        let root = self.detach(root, i as u32);
        self.root = (root != NIL).then_some(root);
        let last = (self.map.len() - 1) as u32;
        let (m, node) = self.map.swap_remove_index(i)?;
        self.heap -= member_heap(m.len());
        if i as u32 != last {
            self.relink(last, i as u32);
        }
        if self.map.is_empty() {
            self.root = None;
        }
        self.maybe_shrink();
        Some(node.score)
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let i = self.map.get_index_of(member)?;
        let score = self.map[i].score;
        // Every node strictly before the member's key is counted on the way down.
        Some(self.count_before(|s, m| cmp_key(s, m, score, member) == Ordering::Less))
    }

    /// How many members satisfy `before`, which must hold for a prefix of the sorted
    /// order and fail for the rest (e.g. "score < min").
    pub fn count_before(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut count = 0;
        let mut t = self.root();
        while t != NIL {
            let (m, n) = self.node(t);
            if before(n.score, m) {
                count += self.size(n.left) + 1;
                t = n.right;
            } else {
                t = n.left;
            }
        }
        count
    }

    /// Members in sorted order from rank `start` (ascending), or from rank `start`
    /// downwards when `rev`.
    pub fn iter_from(&self, start: usize, rev: bool) -> RankIter<'_> {
        let mut it = RankIter { tree: self, stack: Vec::new(), rev };
        if start >= self.len() {
            return it;
        }
        let mut t = self.root();
        let mut r = start;
        while t != NIL {
            let n = self.node(t).1;
            let ls = self.size(n.left);
            match r.cmp(&ls) {
                Ordering::Less => {
                    if !rev {
                        it.stack.push(t);
                    }
                    t = n.left;
                }
                Ordering::Equal => {
                    it.stack.push(t);
                    break;
                }
                Ordering::Greater => {
                    if rev {
                        it.stack.push(t);
                    }
                    r -= ls + 1;
                    t = n.right;
                }
            }
        }
        it
    }

    /// All members in ascending order.
    pub fn iter(&self) -> RankIter<'_> {
        self.iter_from(0, false)
    }

    // ---- treap internals ------------------------------------------------------------

    fn root(&self) -> u32 {
        self.root.unwrap_or(NIL)
    }

    #[inline]
    fn node(&self, t: u32) -> (&[u8], &Node) {
        let (m, n) = self.map.get_index(t as usize).expect("treap link points into the map");
        (m, n)
    }

    #[inline]
    fn size(&self, t: u32) -> usize {
        if t == NIL {
            0
        } else {
            self.map[t as usize].size as usize
        }
    }

    fn fix_size(&mut self, t: u32) {
        let n = self.map[t as usize];
        self.map[t as usize].size = (self.size(n.left) + self.size(n.right) + 1) as u32;
    }

    fn next_prio(&mut self) -> u32 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }

    /// True if node `a` sorts before node `b`.
    fn less(&self, a: u32, b: u32) -> bool {
        let (am, an) = self.node(a);
        let (bm, bn) = self.node(b);
        cmp_key(an.score, am, bn.score, bm) == Ordering::Less
    }

    /// Splits subtree `t` into the nodes before node `k` and the nodes after it (`k` is
    /// not in `t`).
    fn split(&mut self, t: u32, k: u32) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.less(t, k) {
            let (l, r) = self.split(self.map[t as usize].right, k);
            self.map[t as usize].right = l;
            self.fix_size(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.map[t as usize].left, k);
            self.map[t as usize].left = r;
            self.fix_size(t);
            (l, t)
        }
    }

    /// Joins two subtrees where every node of `a` sorts before every node of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.map[a as usize].prio > self.map[b as usize].prio {
            let r = self.merge(self.map[a as usize].right, b);
            self.map[a as usize].right = r;
            self.fix_size(a);
            a
        } else {
            let l = self.merge(a, self.map[b as usize].left);
            self.map[b as usize].left = l;
            self.fix_size(b);
            b
        }
    }

    /// Inserts the lone node `k` into subtree `t`; returns the new subtree root.
    fn attach(&mut self, t: u32, k: u32) -> u32 {
        if t == NIL {
            return k;
        }
        if self.map[k as usize].prio > self.map[t as usize].prio {
            let (l, r) = self.split(t, k);
            let n = &mut self.map[k as usize];
            n.left = l;
            n.right = r;
            self.fix_size(k);
            return k;
        }
        if self.less(k, t) {
            let l = self.attach(self.map[t as usize].left, k);
            self.map[t as usize].left = l;
        } else {
            let r = self.attach(self.map[t as usize].right, k);
            self.map[t as usize].right = r;
        }
        self.map[t as usize].size += 1;
        t
    }

    /// Unlinks node `k` from subtree `t` (which holds it); returns the new subtree root.
    fn detach(&mut self, t: u32, k: u32) -> u32 {
        if t == k {
            let n = self.map[k as usize];
            return self.merge(n.left, n.right);
        }
        if t == NIL {
            return NIL; // unreachable while the invariants hold
        }
        if self.less(k, t) {
            let l = self.detach(self.map[t as usize].left, k);
            self.map[t as usize].left = l;
        } else {
            let r = self.detach(self.map[t as usize].right, k);
            self.map[t as usize].right = r;
        }
        self.map[t as usize].size -= 1;
        t
    }

    /// The node formerly at position `from` now sits at `to`: re-points its one incoming
    /// link. Walks down by its key, never reading position `from` itself.
    fn relink(&mut self, from: u32, to: u32) {
        if self.root == Some(from) {
            self.root = Some(to);
            return;
        }
        let mut t = self.root();
        while t != NIL {
            let n = self.map[t as usize];
            let go_left = self.less(to, t);
            let child = if go_left { n.left } else { n.right };
            if child == from {
                if go_left {
                    self.map[t as usize].left = to;
                } else {
                    self.map[t as usize].right = to;
                }
                return;
            }
            t = child;
        }
    }

    /// Gives memory back once most members are gone; positions are unchanged.
    fn maybe_shrink(&mut self) {
        let cap = self.map.capacity();
        if cap > SHRINK_MIN_CAPACITY && self.map.len() * 8 < cap {
            self.map.shrink_to(self.map.len() * 2);
        }
    }
}

/// In-order walk from a rank, forwards or backwards, with an explicit stack.
pub struct RankIter<'a> {
    tree: &'a ScoreTree,
    stack: Vec<u32>,
    rev: bool,
}

impl<'a> Iterator for RankIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        let t = self.stack.pop()?;
        let tree = self.tree;
        let (m, n) = tree.node(t);
        let mut c = if self.rev { n.left } else { n.right };
        while c != NIL {
            self.stack.push(c);
            let cn = tree.node(c).1;
            c = if self.rev { cn.right } else { cn.left };
        }
        Some((m, n.score))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::{Rng, SeedableRng};

    use super::*;

    /// A total order on f64 without NaN, for the model.
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Score(f64);
    impl Eq for Score {}
    impl PartialOrd for Score {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Score {
        fn cmp(&self, o: &Self) -> Ordering {
            self.0.partial_cmp(&o.0).unwrap_or(Ordering::Equal)
        }
    }

    fn check(tree: &ScoreTree, model: &BTreeSet<(Score, Vec<u8>)>) {
        assert_eq!(tree.len(), model.len());
        let all: Vec<(Vec<u8>, f64)> = tree.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        let want: Vec<(Vec<u8>, f64)> = model.iter().map(|(s, m)| (m.clone(), s.0)).collect();
        assert_eq!(all, want);
        if let Some(root) = tree.root {
            assert_eq!(tree.size(root), tree.len());
        }
    }

    #[test]
    fn randomized_against_btreeset() {
        let seed: u64 = std::env::var("PRISM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut tree = ScoreTree::default();
        let mut model: BTreeSet<(Score, Vec<u8>)> = BTreeSet::new();
        let mut scores = std::collections::HashMap::new();
        for step in 0..20_000 {
            let member = format!("m{}", rng.random_range(0..300)).into_bytes();
            let score = rng.random_range(-20..20) as f64 / 2.0;
            if rng.random_bool(0.6) {
                let old = tree.insert(&member, score);
                assert_eq!(old, scores.get(&member).copied(), "step {step}");
                if let Some(o) = old {
                    model.remove(&(Score(o), member.clone()));
                }
                model.insert((Score(score), member.clone()));
                scores.insert(member, score);
            } else {
                let old = tree.remove(&member);
                assert_eq!(old, scores.remove(&member), "step {step}");
                if let Some(o) = old {
                    model.remove(&(Score(o), member.clone()));
                }
            }
            if step % 97 == 0 {
                check(&tree, &model);
            }
            // Rank, select and both walk directions at a random point.
            let sorted: Vec<&(Score, Vec<u8>)> = model.iter().collect();
            if !sorted.is_empty() {
                let r = rng.random_range(0..sorted.len());
                assert_eq!(tree.rank(&sorted[r].1), Some(r));
                let fwd: Vec<_> = tree.iter_from(r, false).take(5).map(|(m, _)| m.to_vec()).collect();
                let want: Vec<_> = sorted[r..].iter().take(5).map(|(_, m)| m.clone()).collect();
                assert_eq!(fwd, want);
                let back: Vec<_> = tree.iter_from(r, true).take(5).map(|(m, _)| m.to_vec()).collect();
                let want: Vec<_> = sorted[..=r].iter().rev().take(5).map(|(_, m)| m.clone()).collect();
                assert_eq!(back, want);
                let bound = rng.random_range(-20..20) as f64 / 2.0;
                assert_eq!(tree.count_before(|s, _| s < bound), sorted.iter().filter(|(s, _)| s.0 < bound).count());
            }
            assert_eq!(tree.rank(b"absent"), None);
        }
        check(&tree, &model);
    }

    #[test]
    fn negative_zero_sorts_with_zero_by_member() {
        let mut t = ScoreTree::default();
        t.insert(b"b", 0.0);
        t.insert(b"a", -0.0);
        t.insert(b"c", -0.0);
        let order: Vec<_> = t.iter().map(|(m, _)| m.to_vec()).collect();
        assert_eq!(order, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn memory_is_running_and_returns_after_removal() {
        let mut t = ScoreTree::default();
        let empty = t.mem();
        for i in 0..10_000 {
            t.insert(format!("member:{i}").as_bytes(), i as f64);
        }
        assert!(t.mem() > empty + 10_000 * 60);
        for i in 0..10_000 {
            t.remove(format!("member:{i}").as_bytes());
        }
        assert!(t.is_empty());
        assert!(t.mem() < empty + SHRINK_MIN_CAPACITY * 4 * SLOT_BYTES);
    }
}
