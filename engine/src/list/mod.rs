//! The list value type ([`ListValue`]) and its write ops ([`ListOp`]: pushes, pops, LSET
//! LREM LTRIM LINSERT LMOVE LMPOP).
//!
//! Layout: a deque of chunks, each one buffer of packed entries of up to about 8 KB
//! ([`chunk`]), the shape of Redis's quicklist of listpacks; memory per element is about
//! Redis's (integers in canonical form are stored as integers, as a listpack does). Pushes and pops at both ends touch one end chunk (amortized O(1)); an index is
//! found by walking chunk counts from the nearer end, then entries inside one chunk; LSET,
//! LINSERT and LREM rebuild only the chunks they change (O(chunk)).
//!
//! Invariants:
//! - No chunk is empty; `len` is the sum of chunk counts.
//! - `bytes` is the sum of chunk capacities, kept exact on every change, so [`mem`] is
//!   O(1) and honest about slack.
//! - The keyspace never holds an empty list: every op that can empty one deletes the key
//!   (see [`op`]).
//!
//! [`mem`]: ListValue::mem

mod chunk;
mod op;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use chunk::{Chunk, Packed, CHUNK_MAX};

pub use chunk::Elem;

pub(crate) use op::apply;
pub use op::{resolve_index, resolve_range, End, ListOp};

/// Allocator bookkeeping charged per chunk buffer.
const ALLOC_OVERHEAD: usize = 16;

/// A list of byte strings.
#[derive(Debug, Clone, Default)]
pub struct ListValue {
    chunks: VecDeque<Chunk>,
    len: usize,
    bytes: usize,
}

/// Lists are equal when they hold the same elements, however they are chunked.
impl PartialEq for ListValue {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl ListValue {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes held.
    pub fn mem(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.bytes
            + self.chunks.len() * ALLOC_OVERHEAD
            + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }

    /// Runs `f` on chunk `i`, keeping `bytes` exact.
    fn edit<R>(&mut self, i: usize, f: impl FnOnce(&mut Chunk) -> R) -> R {
        let c = &mut self.chunks[i];
        let before = c.cap();
        let r = f(c);
        self.bytes = self.bytes + c.cap() - before;
        r
    }

    fn insert_chunk(&mut self, i: usize, c: Chunk) {
        self.bytes += c.cap();
        self.chunks.insert(i, c);
    }

    fn remove_chunk(&mut self, i: usize) {
        if let Some(c) = self.chunks.remove(i) {
            self.bytes -= c.cap();
        }
        if self.chunks.capacity() > 16 && self.chunks.len() * 4 < self.chunks.capacity() {
            self.chunks.shrink_to(self.chunks.len() * 2);
        }
    }

    /// After removals from chunk `i`: drop it if empty, else give back unused room.
    fn settle(&mut self, i: usize) {
        if self.chunks[i].count() == 0 {
            self.remove_chunk(i);
        } else {
            self.edit(i, Chunk::shrink_if_sparse);
        }
    }

    /// After growth of chunk `i`: split it if it went past the chunk size.
    fn split(&mut self, i: usize) {
        if let Some(right) = self.edit(i, Chunk::split_if_oversized) {
            self.insert_chunk(i + 1, right);
        }
    }

    pub fn push_back(&mut self, e: &[u8]) {
        let e = Packed::new(e);
        match self.chunks.back() {
            Some(c) if c.live() + e.size() <= CHUNK_MAX => self.edit(self.chunks.len() - 1, |c| c.push_back(&e)),
            _ => self.insert_chunk(self.chunks.len(), Chunk::with_element(&e)),
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, e: &[u8]) {
        let e = Packed::new(e);
        match self.chunks.front() {
            Some(c) if c.live() + e.size() <= CHUNK_MAX => self.edit(0, |c| c.push_front(&e)),
            _ => self.insert_chunk(0, Chunk::with_element(&e)),
        }
        self.len += 1;
    }

    pub fn push(&mut self, end: End, e: &[u8]) {
        match end {
            End::Left => self.push_front(e),
            End::Right => self.push_back(e),
        }
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        if self.chunks.is_empty() {
            return None;
        }
        let v = self.edit(0, Chunk::pop_front);
        self.settle(0);
        self.len -= 1;
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let last = self.chunks.len().checked_sub(1)?;
        let v = self.edit(last, Chunk::pop_back);
        self.settle(last);
        self.len -= 1;
        Some(v)
    }

    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        match end {
            End::Left => self.pop_front(),
            End::Right => self.pop_back(),
        }
    }

    /// The chunk holding `index` and the index inside it, walking from the nearer end.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index < self.len / 2 {
            let mut i = index;
            for (ci, c) in self.chunks.iter().enumerate() {
                if i < c.count() {
                    return Some((ci, i));
                }
                i -= c.count();
            }
        } else {
            let mut from_end = self.len - index;
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if from_end <= c.count() {
                    return Some((ci, c.count() - from_end));
                }
                from_end -= c.count();
            }
        }
        None
    }

    /// The element at `index` (from the head, 0-based).
    pub fn get(&self, index: usize) -> Option<Elem<'_>> {
        let (ci, i) = self.locate(index)?;
        Some(self.chunks[ci].get(i))
    }

    /// Replaces the element at `index`; false if there is none.
    pub fn set(&mut self, index: usize, e: &[u8]) -> bool {
        let Some((ci, i)) = self.locate(index) else { return false };
        self.edit(ci, |c| {
            let from = c.offset_of(i);
            let to = c.entry_at(from).1;
            c.splice(from, to, 1, &[Packed::new(e)]);
        });
        self.split(ci);
        true
    }

    /// Inserts `e` before (or after) the first element equal to `pivot`; false if there
    /// is none.
    pub fn insert_at_pivot(&mut self, pivot: &[u8], e: &[u8], after: bool) -> bool {
        let mut found = None;
        'scan: for (ci, c) in self.chunks.iter().enumerate() {
            let mut off = c.head();
            while off < c.tail() {
                let (x, next) = c.entry_at(off);
                if x.is(pivot) {
                    found = Some((ci, if after { next } else { off }));
                    break 'scan;
                }
                off = next;
            }
        }
        let Some((ci, off)) = found else { return false };
        self.edit(ci, |c| c.splice(off, off, 0, &[Packed::new(e)]));
        self.split(ci);
        self.len += 1;
        true
    }

    /// Removes elements equal to `e`: all of them for `count == 0`, else up to `|count|`
    /// from the head (`count > 0`) or the tail (`count < 0`). Returns how many went.
    pub fn remove_matching(&mut self, e: &[u8], count: i64) -> usize {
        let limit = if count == 0 { usize::MAX } else { usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX) };
        let mut removed = 0;
        let order: Box<dyn Iterator<Item = usize>> =
            if count >= 0 { Box::new(0..self.chunks.len()) } else { Box::new((0..self.chunks.len()).rev()) };
        for ci in order {
            if removed == limit {
                break;
            }
            let c = &self.chunks[ci];
            let mut starts = Vec::new();
            if count >= 0 {
                let mut off = c.head();
                while off < c.tail() && removed + starts.len() < limit {
                    let (x, next) = c.entry_at(off);
                    if x.is(e) {
                        starts.push(off);
                    }
                    off = next;
                }
            } else {
                let mut end = c.tail();
                while end > c.head() && removed + starts.len() < limit {
                    let (x, start) = c.entry_before(end);
                    if x.is(e) {
                        starts.push(start);
                    }
                    end = start;
                }
                starts.reverse();
            }
            if !starts.is_empty() {
                removed += starts.len();
                self.edit(ci, |c| c.remove_entries(&starts));
            }
        }
        if removed > 0 {
            self.len -= removed;
            self.compact();
        }
        removed
    }

    /// Drops empty chunks and merges runs of neighbours that fit in one chunk, so
    /// removals in the middle do not leave a trail of small chunks.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.chunks);
        let mut chunks = VecDeque::with_capacity(old.len());
        let mut run: Vec<Chunk> = Vec::new();
        let mut run_live = 0;
        let flush = |run: &mut Vec<Chunk>, chunks: &mut VecDeque<Chunk>| match run.len() {
            0 => {}
            1 => chunks.extend(run.drain(..)),
            _ => {
                let parts: Vec<&[u8]> = run.iter().map(Chunk::encoded).collect();
                let count = run.iter().map(Chunk::count).sum();
                chunks.push_back(Chunk::from_encoded(&parts, count));
                run.clear();
            }
        };
        for c in old.into_iter().filter(|c| c.count() > 0) {
            if run_live + c.live() > CHUNK_MAX {
                flush(&mut run, &mut chunks);
                run_live = 0;
            }
            run_live += c.live();
            run.push(c);
        }
        flush(&mut run, &mut chunks);
        self.bytes = chunks.iter().map(Chunk::cap).sum();
        self.chunks = chunks;
    }

    /// Keeps only the elements at `start..start + n` (clamped to the list).
    pub fn retain_range(&mut self, start: usize, n: usize) {
        let start = start.min(self.len);
        let n = n.min(self.len - start);
        let back = self.len - start - n;
        self.drop_front(start);
        self.drop_back(back);
    }

    fn drop_front(&mut self, mut k: usize) {
        self.len -= k;
        while k > 0 {
            let count = self.chunks[0].count();
            if count <= k {
                k -= count;
                self.remove_chunk(0);
            } else {
                self.edit(0, |c| c.drop_front(k));
                self.settle(0);
                k = 0;
            }
        }
    }

    fn drop_back(&mut self, mut k: usize) {
        self.len -= k;
        while k > 0 {
            let last = self.chunks.len() - 1;
            let count = self.chunks[last].count();
            if count <= k {
                k -= count;
                self.remove_chunk(last);
            } else {
                self.edit(last, |c| c.drop_back(k));
                self.settle(last);
                k = 0;
            }
        }
    }

    /// Elements from the head.
    pub fn iter(&self) -> Iter<'_> {
        Iter { chunks: &self.chunks, ci: 0, off: self.chunks.front().map_or(0, Chunk::head), left: self.len }
    }

    /// Elements from the tail.
    pub fn iter_rev(&self) -> RevIter<'_> {
        RevIter {
            chunks: &self.chunks,
            ci: self.chunks.len().saturating_sub(1),
            end: self.chunks.back().map_or(0, Chunk::tail),
            left: self.len,
        }
    }

    /// Up to `n` elements from index `start`.
    pub fn range(&self, start: usize, n: usize) -> Iter<'_> {
        match self.locate(start) {
            Some((ci, i)) => {
                Iter { chunks: &self.chunks, ci, off: self.chunks[ci].offset_of(i), left: n.min(self.len - start) }
            }
            None => Iter { chunks: &self.chunks, ci: 0, off: 0, left: 0 },
        }
    }

    /// Checks the structural invariants (tests).
    #[cfg(test)]
    fn check(&self) {
        assert!(self.chunks.iter().all(|c| c.count() > 0), "empty chunk");
        assert_eq!(self.len, self.chunks.iter().map(Chunk::count).sum::<usize>());
        assert_eq!(self.bytes, self.chunks.iter().map(Chunk::cap).sum::<usize>());
        assert_eq!(self.iter().count(), self.len);
        assert_eq!(self.iter_rev().count(), self.len);
    }
}

/// Forward iterator over a list's elements.
pub struct Iter<'a> {
    chunks: &'a VecDeque<Chunk>,
    ci: usize,
    off: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Elem<'a>;

    fn next(&mut self) -> Option<Elem<'a>> {
        while self.left > 0 {
            let c = self.chunks.get(self.ci)?;
            if self.off < c.tail() {
                let (e, next) = c.entry_at(self.off);
                self.off = next;
                self.left -= 1;
                return Some(e);
            }
            self.ci += 1;
            self.off = self.chunks.get(self.ci)?.head();
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Backward iterator over a list's elements.
pub struct RevIter<'a> {
    chunks: &'a VecDeque<Chunk>,
    ci: usize,
    end: usize,
    left: usize,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = Elem<'a>;

    fn next(&mut self) -> Option<Elem<'a>> {
        while self.left > 0 {
            let c = self.chunks.get(self.ci)?;
            if self.end > c.head() {
                let (e, start) = c.entry_before(self.end);
                self.end = start;
                self.left -= 1;
                return Some(e);
            }
            self.ci = self.ci.checked_sub(1)?;
            self.end = self.chunks.get(self.ci)?.tail();
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for RevIter<'_> {}
