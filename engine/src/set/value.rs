//! [`SetValue`]: the members of a set, insertion-ordered with swap-removal, and its O(1)
//! memory figure. Members are [`CompactBytes`]: a member of up to 23 bytes lives inside
//! its table entry, with no allocation of its own.
//!
//! Invariants:
//! - `heap` is always the sum of [`member_heap`] over the members, so [`SetValue::mem`]
//!   is O(1) and exact with respect to the figure it defines.
//! - Removal is swap-removal: the last member moves into the hole. `SSCAN` walks positions
//!   from the end towards the start (`keyspace::scan_positions`), so a member present for
//!   a whole scan is never skipped, and a random member is one index away.

use indexmap::IndexSet;

use crate::compact::{self, CompactBytes};
use crate::value::FastHasher;

/// Bytes one capacity slot of the index set costs: the entry (the cached hash and the
/// 24-byte member, 32 bytes) plus its share of the hash index (9 bytes a slot, 1.14 to
/// 2.3 slots per entry as it fills), and allocator rounding. Calibrated against the
/// release binary (mimalloc): a set of 1M 10-byte members (capacity 1,049,869) grows the
/// process by 55-57 bytes per member once purged (docs/benchmarks.md), 53 per slot.
const SLOT_BYTES: usize = 53;
/// Below this capacity a set is never shrunk: small sets are not worth a rehash.
const SHRINK_MIN_CAPACITY: usize = 64;

/// Heap bytes of one member's own allocation: none for a member kept inline, else its
/// length in the allocator's 8-byte granules.
#[inline]
pub fn member_heap(len: usize) -> usize {
    compact::heap_bytes_for(len)
}

/// A set of byte-string members.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetValue {
    members: IndexSet<CompactBytes, FastHasher>,
    /// Sum of [`member_heap`] over the members.
    heap: usize,
}

impl SetValue {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    /// Adds a member; returns true if it is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        if self.members.contains(member) {
            return false;
        }
        self.insert_owned(CompactBytes::new(member))
    }

    /// Adds an owned member (no copy); returns true if it is new.
    pub fn insert_owned(&mut self, member: CompactBytes) -> bool {
        let len = member.len();
        // As `value::reserve_one`: entries grow by half, not to the index's capacity.
        if self.members.len() == self.members.capacity() {
            self.members.reserve_exact((self.members.len() / 2).max(3));
        }
        let added = self.members.insert(member);
        if added {
            self.heap += member_heap(len);
        }
        added
    }

    /// Removes a member; returns true if it was present.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.members.swap_remove_full(member) {
            Some((_, m)) => {
                self.heap -= member_heap(m.len());
                self.maybe_shrink();
                true
            }
            None => false,
        }
    }

    /// Removes and returns the member at a position (the last member takes its place).
    pub fn swap_remove_index(&mut self, i: usize) -> Option<CompactBytes> {
        let m = self.members.swap_remove_index(i)?;
        self.heap -= member_heap(m.len());
        self.maybe_shrink();
        Some(m)
    }

    /// The member at a position, `0..len()`.
    pub fn get_index(&self, i: usize) -> Option<&[u8]> {
        self.members.get_index(i).map(|m| &**m)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.members.iter().map(|m| &**m)
    }

    /// Keeps only the members `keep` accepts (order of the kept ones preserved).
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let heap = &mut self.heap;
        self.members.retain(|m| {
            let k = keep(m);
            if !k {
                *heap -= member_heap(m.len());
            }
            k
        });
        self.maybe_shrink();
    }

    /// Takes every member out, leaving the set empty.
    pub fn drain(&mut self) -> impl Iterator<Item = CompactBytes> + '_ {
        self.heap = 0;
        self.members.drain(..)
    }

    /// Approximate heap bytes held: the table's capacity plus the members' allocations.
    pub fn mem(&self) -> usize {
        std::mem::size_of::<Self>() + self.members.capacity() * SLOT_BYTES + self.heap
    }

    /// Gives memory back once a set has lost most of its members (as Redis resizes a dict
    /// under 10% full). Shrinking to twice the length means another 3/4 of the members
    /// must go before the next shrink, so the rehash cost is amortized O(1) per removal.
    /// Positions are kept, so a running `SSCAN` is unaffected.
    fn maybe_shrink(&mut self) {
        let cap = self.members.capacity();
        if cap > SHRINK_MIN_CAPACITY && self.members.len() * 8 < cap {
            self.members.shrink_to(self.members.len() * 2);
        }
    }
}

impl<'a> FromIterator<&'a [u8]> for SetValue {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut s = SetValue::default();
        for m in iter {
            s.insert(m);
        }
        s
    }
}

/// A small deterministic generator (SplitMix64) for the random choices of `SPOP`: the
/// handler picks the seed, apply draws from it, so every replica pops the same members.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0), by multiply-shift: the bias is below n / 2^64.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running byte count always equals a recount, through inserts, removals,
    /// retains and shrinks.
    #[test]
    fn heap_count_stays_exact() {
        let recount = |s: &SetValue| s.iter().map(|m| member_heap(m.len())).sum::<usize>();
        let mut s = SetValue::default();
        for i in 0..1000u32 {
            assert!(s.insert(format!("member-{i}").as_bytes()));
        }
        assert!(!s.insert(b"member-7"));
        assert!(s.insert(b""));
        assert_eq!(s.heap, recount(&s));
        for i in 0..900u32 {
            assert!(s.remove(format!("member-{i}").as_bytes()));
        }
        assert!(!s.remove(b"member-0"));
        assert_eq!(s.heap, recount(&s));
        assert!(s.members.capacity() < 1000, "shrunk after losing most members");
        s.retain(|m| m.len() % 2 == 0);
        assert_eq!(s.heap, recount(&s));
        while !s.is_empty() {
            s.swap_remove_index(0);
        }
        assert_eq!(s.heap, 0);
        s.insert(b"x");
        let _ = s.drain().count();
        assert_eq!((s.len(), s.heap), (0, 0));
    }

    #[test]
    fn splitmix_is_deterministic_and_in_range() {
        let (mut a, mut b) = (SplitMix::new(42), SplitMix::new(42));
        for n in 1..500 {
            let x = a.below(n);
            assert_eq!(x, b.below(n));
            assert!(x < n);
        }
    }
}
