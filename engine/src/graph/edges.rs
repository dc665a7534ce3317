//! One adjacency list: the halves of one (vertex, edge type, direction), ordered newest
//! first, stored compactly.
//!
//! Layout (see [`packed`] for the entry format: rank, flags, neighbour id, ~11 bytes for
//! a short id):
//! - *Small* lists (up to [`CHUNK_MAX`] bytes of entries, about 90 halves of short ids —
//!   nearly every list of a social graph) are one packed, exactly sized buffer: one
//!   allocation per list, the neighbour id stored once.
//! - *Large* lists are packed chunks of at most [`CHUNK_MAX`] bytes in a B-tree keyed by
//!   each chunk's first position, so insert, delete and seek are O(log n) plus a walk of
//!   one chunk. From [`INDEX_MIN`] halves on, a lookup index maps a 64-bit hash of the
//!   neighbour id to its rank (ids are not stored again; the rare neighbour whose hash is
//!   already taken goes to a short side list), so finding a half by neighbour is O(1) +
//!   one seek. Below that, a lookup walks the list.
//! - Properties (rare) live in a side map keyed by neighbour, flagged per entry.
//!
//! Invariants:
//! - A neighbour appears at most once; entries are in (rank desc, neighbour asc) order
//!   across chunks; no chunk is empty; each chunk's key is its first entry's sort key.
//! - `len` is the degree (O(1)); `unconfirmed` counts halves flagged UNCONFIRMED.
//! - The index, when present, maps exactly the neighbours of the list.
//! - `mem` is an O(1) estimate kept exact under every change (allocation sizes rounded as
//!   a size-class allocator does).
//! - Cursors are positions (rank, neighbour), not offsets: a seek after a position is
//!   valid whatever was inserted or removed since.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::ops::Bound;
use std::sync::OnceLock;

use super::packed::{self, decode, sort_key, Packed, HAS_PROPS, UNCONFIRMED};
use crate::value::{FastHasher, HashValue};

/// Most bytes of entries in one chunk (and in a small list).
pub const CHUNK_MAX: usize = 1024;
/// Halves from which a large list keeps a lookup index (dropped again below half).
pub const INDEX_MIN: usize = 512;

/// Bytes charged per chunk for its B-tree slot and key on top of the buffers.
const CHUNK_SLOT: usize = 64;

/// The position of a half in its list: `(rank, neighbour)`; cursors resume after one.
pub type Position = (i64, Box<[u8]>);

/// Rounded size of an allocation of `n` bytes (size classes of a modern allocator).
pub(crate) fn alloc_size(n: usize) -> usize {
    match n {
        0 => 0,
        1..=128 => n.next_multiple_of(16),
        _ => n + n / 16,
    }
}

#[derive(Debug, Clone, Default)]
pub struct EdgeList {
    repr: Repr,
    props: Option<Box<PropsMap>>,
    len: u32,
    unconfirmed: u32,
}

#[derive(Debug, Clone)]
enum Repr {
    Small(Vec<u8>),
    Large(Box<Large>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Small(Vec::new())
    }
}

#[derive(Debug, Clone, Default)]
struct Large {
    chunks: BTreeMap<Box<[u8]>, Vec<u8>>,
    index: Option<Index>,
    /// Heap estimate of the chunks and their keys.
    bytes: usize,
}

#[derive(Debug, Clone, Default)]
struct Index {
    by_hash: HashMap<u64, i64, BuildHasherDefault<IdHasher>>,
    /// Neighbours whose hash another neighbour already holds in `by_hash`.
    dups: Vec<(Box<[u8]>, i64)>,
}

/// The key is already a hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Hash of a neighbour id: seeded once per process, so ids cannot be chosen to collide.
fn id_hash(other: &[u8]) -> u64 {
    static SEED: OnceLock<FastHasher> = OnceLock::new();
    SEED.get_or_init(FastHasher::default).hash_one(other)
}

#[derive(Debug, Clone, Default, PartialEq)]
struct PropsMap {
    map: HashMap<Box<[u8]>, Box<HashValue>, FastHasher>,
    bytes: usize,
}

/// One half as read from a list.
#[derive(Debug, Clone, Copy)]
pub struct HalfRef<'a> {
    pub other: &'a [u8],
    pub rank: i64,
    pub props: Option<&'a HashValue>,
    /// False for a restored half whose mirror has not been seen yet: reads skip it.
    pub confirmed: bool,
}

impl Index {
    fn get(&self, other: &[u8]) -> Option<i64> {
        if let Some((_, r)) = self.dups.iter().find(|(o, _)| &**o == other) {
            return Some(*r);
        }
        self.by_hash.get(&id_hash(other)).copied()
    }

    fn insert(&mut self, other: &[u8], rank: i64) {
        match self.by_hash.entry(id_hash(other)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(rank);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.dups.push((other.into(), rank)),
        }
    }

    /// Removes `other`; a side-list neighbour with the same hash takes its slot.
    fn remove(&mut self, other: &[u8]) {
        if let Some(i) = self.dups.iter().position(|(o, _)| &**o == other) {
            self.dups.swap_remove(i);
            return;
        }
        let h = id_hash(other);
        self.by_hash.remove(&h);
        if let Some(i) = self.dups.iter().position(|(o, _)| id_hash(o) == h) {
            let (_, r) = self.dups.swap_remove(i);
            self.by_hash.insert(h, r);
        }
    }

    fn mem(&self) -> usize {
        self.by_hash.capacity() * 17 + self.dups.iter().map(|(o, _)| 40 + o.len()).sum::<usize>()
    }
}

impl Large {
    fn add_chunk(&mut self, run: Vec<u8>) {
        if let Some(key) = packed::first_key(&run) {
            self.bytes += CHUNK_SLOT + alloc_size(key.len()) + alloc_size(run.capacity());
            self.chunks.insert(key, run);
        }
    }

    fn take_chunk(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let (k, run) = self.chunks.remove_entry(key)?;
        self.bytes -= CHUNK_SLOT + alloc_size(k.len()) + alloc_size(run.capacity());
        Some(run)
    }

    /// Key of the chunk where (rank, other) is or belongs: the last chunk starting at or
    /// before it, else the first chunk.
    fn chunk_key(&self, rank: i64, other: &[u8]) -> Option<Box<[u8]>> {
        let k = sort_key(rank, other);
        self.chunks
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(&k[..])))
            .next_back()
            .or_else(|| self.chunks.iter().next())
            .map(|(k, _)| k.clone())
    }

    /// Stores `run` back (split if too big) after a change at its front or size.
    fn put_back(&mut self, mut run: Vec<u8>) {
        while run.len() > CHUNK_MAX {
            let Some(mid) = packed::middle(&run) else { break };
            let mut tail = run.split_off(mid);
            tail.shrink_to_fit();
            run.shrink_to_fit();
            self.add_chunk(std::mem::replace(&mut run, tail));
        }
        self.add_chunk(run);
    }
}

fn insert_bytes(run: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    run.reserve_exact(bytes.len());
    run.splice(at..at, bytes.iter().copied());
}

fn remove_bytes(run: &mut Vec<u8>, start: usize, end: usize) {
    run.drain(start..end);
    if run.is_empty() {
        *run = Vec::new();
    } else if run.capacity() - run.len() > 32 {
        run.shrink_to_fit();
    }
}

impl EdgeList {
    /// The degree.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Halves restored without their mirror yet (see [`HalfRef::confirmed`]).
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed as usize
    }

    pub fn mem(&self) -> usize {
        let repr = match &self.repr {
            Repr::Small(run) => alloc_size(run.capacity()),
            Repr::Large(l) => std::mem::size_of::<Large>() + l.bytes + l.index.as_ref().map_or(0, |i| i.mem() + 48),
        };
        repr + self.props.as_ref().map_or(0, |p| p.bytes + std::mem::size_of::<PropsMap>() + p.map.capacity() * 33)
    }

    fn rank_of(&self, other: &[u8]) -> Option<i64> {
        match &self.repr {
            Repr::Small(run) => packed::find_other(run, other).map(|(_, _, e)| e.rank),
            Repr::Large(l) => match &l.index {
                Some(ix) => ix.get(other),
                None => l.chunks.values().find_map(|run| packed::find_other(run, other)).map(|(_, _, e)| e.rank),
            },
        }
    }

    /// The entry of (rank, other) if present.
    fn entry_at(&self, rank: i64, other: &[u8]) -> Option<Packed<'_>> {
        let run = match &self.repr {
            Repr::Small(run) => &run[..],
            Repr::Large(l) => {
                let k = sort_key(rank, other);
                &l.chunks.range::<[u8], _>((Bound::Unbounded, Bound::Included(&k[..]))).next_back()?.1[..]
            }
        };
        let (start, _) = packed::seek(run, rank, other).ok()?;
        decode(run, start).map(|(e, _)| e)
    }

    fn half<'a>(&'a self, e: Packed<'a>) -> HalfRef<'a> {
        let props = if e.flags & HAS_PROPS != 0 {
            self.props.as_ref().and_then(|p| p.map.get(e.other)).map(|b| &**b)
        } else {
            None
        };
        HalfRef { other: e.other, rank: e.rank, props, confirmed: e.flags & UNCONFIRMED == 0 }
    }

    pub fn get(&self, other: &[u8]) -> Option<HalfRef<'_>> {
        let rank = self.rank_of(other)?;
        self.entry_at(rank, other).map(|e| self.half(e))
    }

    pub fn contains(&self, other: &[u8]) -> bool {
        self.get(other).is_some()
    }

    /// Inserts or updates the half to `other`, confirmed. `props: None` keeps the
    /// properties an existing half has; `Some` replaces them. Returns true if the half is
    /// new.
    pub fn put(&mut self, other: &[u8], rank: i64, props: Option<Option<Box<HashValue>>>) -> bool {
        self.put_with(other, rank, props, true)
    }

    /// [`EdgeList::put`] for a half restored from a payload (RESTORE): it stays invisible
    /// to reads until its mirror is seen (see `graph::cleanup`).
    pub fn put_restored(&mut self, other: &[u8], rank: i64, props: Option<Option<Box<HashValue>>>) -> bool {
        self.put_with(other, rank, props, false)
    }

    fn put_with(&mut self, other: &[u8], rank: i64, props: Option<Option<Box<HashValue>>>, confirmed: bool) -> bool {
        let old = self.rank_of(other).and_then(|r| self.remove_entry(r, other));
        let old_props = match old {
            Some(flags) if flags & HAS_PROPS != 0 => self.take_props(other),
            _ => None,
        };
        let props = props.unwrap_or(old_props).filter(|p| !p.is_empty());
        let mut flags = if confirmed { 0 } else { UNCONFIRMED };
        if let Some(p) = props {
            flags |= HAS_PROPS;
            let map = self.props.get_or_insert_with(Box::default);
            map.bytes += alloc_size(other.len()) + p.mem() + 16;
            map.map.insert(other.into(), p);
        }
        self.insert_entry(rank, flags, other);
        old.is_none()
    }

    fn take_props(&mut self, other: &[u8]) -> Option<Box<HashValue>> {
        let map = self.props.as_mut()?;
        let p = map.map.remove(other)?;
        map.bytes -= alloc_size(other.len()) + p.mem() + 16;
        if map.map.is_empty() {
            self.props = None;
        }
        Some(p)
    }

    /// Removes the half to `other`; returns true if it existed.
    pub fn remove(&mut self, other: &[u8]) -> bool {
        let Some(flags) = self.rank_of(other).and_then(|r| self.remove_entry(r, other)) else { return false };
        if flags & HAS_PROPS != 0 {
            self.take_props(other);
        }
        true
    }

    /// Marks the half to `other` confirmed; true if it was unconfirmed.
    pub fn confirm(&mut self, other: &[u8]) -> bool {
        let Some(rank) = self.rank_of(other) else { return false };
        let run = match &mut self.repr {
            Repr::Small(run) => run,
            Repr::Large(l) => {
                let k = sort_key(rank, other);
                match l.chunks.range_mut::<[u8], _>((Bound::Unbounded, Bound::Included(&k[..]))).next_back() {
                    Some((_, run)) => run,
                    None => return false,
                }
            }
        };
        let Ok((start, _)) = packed::seek(run, rank, other) else { return false };
        let was = decode(run, start).is_some_and(|(e, _)| e.flags & UNCONFIRMED != 0);
        if was {
            packed::set_flag(run, start, UNCONFIRMED, false);
            self.unconfirmed -= 1;
        }
        was
    }

    /// Inserts an entry known to be absent.
    fn insert_entry(&mut self, rank: i64, flags: u8, other: &[u8]) {
        let bytes = packed::encode(rank, flags, other);
        self.len += 1;
        self.unconfirmed += u32::from(flags & UNCONFIRMED != 0);
        match &mut self.repr {
            Repr::Small(run) => {
                let at = packed::seek(run, rank, other).map_or_else(|p| p, |(s, _)| s);
                insert_bytes(run, at, &bytes);
                if run.len() > CHUNK_MAX {
                    self.promote();
                }
            }
            Repr::Large(l) => {
                if let Some(ix) = &mut l.index {
                    ix.insert(other, rank);
                }
                let Some(key) = l.chunk_key(rank, other) else {
                    l.add_chunk(bytes.to_vec());
                    return;
                };
                let Some(run) = l.chunks.get_mut(&key) else { return };
                let at = packed::seek(run, rank, other).map_or_else(|p| p, |(s, _)| s);
                if at > 0 && run.len() + bytes.len() <= CHUNK_MAX {
                    l.bytes -= alloc_size(run.capacity());
                    insert_bytes(run, at, &bytes);
                    l.bytes += alloc_size(run.capacity());
                } else if let Some(mut run) = l.take_chunk(&key) {
                    insert_bytes(&mut run, at, &bytes);
                    l.put_back(run);
                }
                self.maybe_index();
            }
        }
    }

    /// Removes the entry (rank, other) if present; returns its flags.
    fn remove_entry(&mut self, rank: i64, other: &[u8]) -> Option<u8> {
        let flags = match &mut self.repr {
            Repr::Small(run) => {
                let (start, end) = packed::seek(run, rank, other).ok()?;
                let flags = decode(run, start)?.0.flags;
                remove_bytes(run, start, end);
                flags
            }
            Repr::Large(l) => {
                let key = l.chunk_key(rank, other)?;
                let run = l.chunks.get_mut(&key)?;
                let (start, end) = packed::seek(run, rank, other).ok()?;
                let flags = decode(run, start)?.0.flags;
                if start > 0 && run.len() - (end - start) >= CHUNK_MAX / 4 {
                    l.bytes -= alloc_size(run.capacity());
                    remove_bytes(run, start, end);
                    l.bytes += alloc_size(run.capacity());
                } else if let Some(mut run) = l.take_chunk(&key) {
                    remove_bytes(&mut run, start, end);
                    // Merge a small chunk with its successor to keep chunks reasonably full.
                    let next = l.chunks.range::<[u8], _>((Bound::Excluded(&key[..]), Bound::Unbounded)).next();
                    if let Some(nk) = next.filter(|(_, n)| n.len() + run.len() <= CHUNK_MAX).map(|(k, _)| k.clone()) {
                        if let Some(n) = l.take_chunk(&nk) {
                            run.reserve_exact(n.len());
                            run.extend_from_slice(&n);
                        }
                    }
                    if !run.is_empty() {
                        l.put_back(run);
                    }
                }
                if let Some(ix) = &mut l.index {
                    ix.remove(other);
                }
                flags
            }
        };
        self.len -= 1;
        self.unconfirmed -= u32::from(flags & UNCONFIRMED != 0);
        self.maybe_demote();
        Some(flags)
    }

    /// A small list that outgrew one chunk becomes a large one.
    fn promote(&mut self) {
        let Repr::Small(run) = std::mem::take(&mut self.repr) else { return };
        let mut l = Large::default();
        l.put_back(run);
        self.repr = Repr::Large(Box::new(l));
        self.maybe_index();
    }

    /// Builds or drops the lookup index at its thresholds.
    fn maybe_index(&mut self) {
        let len = self.len as usize;
        let Repr::Large(l) = &mut self.repr else { return };
        if l.index.is_none() && len >= INDEX_MIN {
            let mut ix = Index::default();
            ix.by_hash.reserve(len);
            for run in l.chunks.values() {
                for (_, e) in packed::entries(run) {
                    ix.insert(e.other, e.rank);
                }
            }
            l.index = Some(ix);
        } else if l.index.is_some() && len < INDEX_MIN / 2 {
            l.index = None;
        }
    }

    /// A large list that shrank into one small chunk becomes a small one.
    fn maybe_demote(&mut self) {
        let Repr::Large(l) = &mut self.repr else { return };
        if l.chunks.len() > 1 || l.chunks.values().next().is_some_and(|r| r.len() > CHUNK_MAX / 2) {
            if l.index.is_some() && (self.len as usize) < INDEX_MIN / 2 {
                l.index = None;
            }
            return;
        }
        let run = l.chunks.pop_first().map(|(_, r)| r).unwrap_or_default();
        self.repr = Repr::Small(run);
    }

    /// Halves in order (rank descending, then neighbour ascending), starting strictly
    /// after `after` if given, else at the first half whose rank is at most `max_rank`.
    /// Unconfirmed halves are included (see [`HalfRef::confirmed`]).
    pub fn iter_from(&self, after: Option<(i64, &[u8])>, max_rank: i64) -> Iter<'_> {
        // A cursor already past max_rank resumes where it is; one before it starts at max_rank.
        let (rank, other, exclusive) = match after {
            Some((rank, other)) if rank <= max_rank => (rank, other, true),
            _ => (max_rank, &b""[..], false),
        };
        let start_in = |run: &[u8]| match packed::seek(run, rank, other) {
            Ok((s, e)) => {
                if exclusive {
                    e
                } else {
                    s
                }
            }
            Err(p) => p,
        };
        match &self.repr {
            Repr::Small(run) => Iter { list: self, run, pos: start_in(run), rest: None },
            Repr::Large(l) => {
                let k = sort_key(rank, other);
                let first = l.chunks.range::<[u8], _>((Bound::Unbounded, Bound::Included(&k[..]))).next_back();
                match first {
                    Some((ck, run)) => Iter {
                        list: self,
                        run,
                        pos: start_in(run),
                        rest: Some(l.chunks.range::<[u8], _>((Bound::Excluded(&ck[..]), Bound::Unbounded))),
                    },
                    None => Iter { list: self, run: &[], pos: 0, rest: Some(l.chunks.range::<[u8], _>(..)) },
                }
            }
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(None, i64::MAX)
    }
}

/// Walks a list's halves in order.
pub struct Iter<'a> {
    list: &'a EdgeList,
    run: &'a [u8],
    pos: usize,
    rest: Option<std::collections::btree_map::Range<'a, Box<[u8]>, Vec<u8>>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = HalfRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<HalfRef<'a>> {
        loop {
            if let Some((e, next)) = decode(self.run, self.pos) {
                self.pos = next;
                return Some(self.list.half(e));
            }
            let (_, run) = self.rest.as_mut()?.next()?;
            self.run = run;
            self.pos = 0;
        }
    }
}

/// Two lists are equal when they hold the same halves (neighbour, rank, properties) in
/// the same order: what DUMP carries. Confirmation is bookkeeping about the other end,
/// and the layout (small or chunked, index) is a matter of size.
impl PartialEq for EdgeList {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self.iter().zip(other.iter()).all(|(a, b)| a.other == b.other && a.rank == b.rank && a.props == b.props)
    }
}

#[cfg(test)]
#[path = "edges_tests.rs"]
mod tests;
