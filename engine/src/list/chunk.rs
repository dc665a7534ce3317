//! One chunk of a list: a run of consecutive elements packed into one buffer.
//!
//! Layout: `buf[head..tail]` holds the live entries back to back; `buf[..head]` and
//! `buf[tail..]` are free room, so pushes and pops at either end of a chunk touch only that
//! end. An entry is `[header as LEB128][payload][header as LEB128, bytes reversed]`: the
//! prefix lets a walk go forward, the mirrored suffix lets it go backward (RPOP, negative
//! LPOS, LREM with a negative count) without scanning the chunk from its start. The
//! header says what the payload is: `len << 1` for a byte string, `width << 1 | 1` for
//! an integer of `width` little-endian bytes, used for any element that is the canonical
//! decimal form of an i64. So a 10-byte string costs 12 bytes and a 32-bit number 6, as
//! in a Redis listpack.
//!
//! Invariants:
//! - `head <= tail <= buf.len()`, and `buf[head..tail]` is exactly `count` well-formed
//!   entries (every method keeps it so; decoding trusts it).
//! - Growth doubles the buffer up to [`CHUNK_MAX`], so a chunk filled by pushes ends with
//!   little slack; rebuilt chunks (LSET, LINSERT, LREM, merges) are sized exactly.

/// Bytes of live entries a chunk takes before the list starts a new one (Redis's
/// quicklist packs listpacks of 8 KB by default). A single larger entry gets a chunk of
/// its own.
pub(crate) const CHUNK_MAX: usize = 8192;

#[derive(Debug, Clone, Default)]
pub(crate) struct Chunk {
    buf: Box<[u8]>,
    head: usize,
    tail: usize,
    count: usize,
}

fn varint_len(mut n: usize) -> usize {
    let mut k = 1;
    while n >= 0x80 {
        n >>= 7;
        k += 1;
    }
    k
}

/// One element as a chunk holds it: a byte string, or an integer for a string that is
/// the canonical decimal form of an i64 (what a Redis listpack stores as an integer).
/// The form is canonical, so two elements are equal exactly when their `Elem`s are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl Elem<'_> {
    /// True when the element is the byte string `other`.
    pub fn is(&self, other: &[u8]) -> bool {
        match self {
            Elem::Bytes(b) => *b == other,
            Elem::Int(n) => other.len() <= 20 && itoa::Buffer::new().format(*n).as_bytes() == other,
        }
    }

    /// Runs `f` on the element's bytes (an integer is formatted on the stack).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Bytes(b) => f(b),
            Elem::Int(n) => f(itoa::Buffer::new().format(*n).as_bytes()),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.with_bytes(<[u8]>::to_vec)
    }
}

/// The i64 whose canonical decimal form `e` is, if any ("-0", "+1", "01" are not).
fn canonical_int(e: &[u8]) -> Option<i64> {
    if e.is_empty() || e.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(e).ok()?.parse().ok()?;
    (itoa::Buffer::new().format(n).as_bytes() == e).then_some(n)
}

/// An element ready to be written: its header (`len << 1` for bytes, `width << 1 | 1`
/// for an integer of `width` little-endian bytes) and payload.
pub(crate) struct Packed<'a> {
    header: usize,
    int: [u8; 8],
    bytes: &'a [u8],
}

impl<'a> Packed<'a> {
    pub(crate) fn new(e: &'a [u8]) -> Packed<'a> {
        match canonical_int(e) {
            Some(n) => {
                // The fewest bytes that sign-extend back to n.
                let width = (1..8).find(|w| (n << (64 - 8 * w)) >> (64 - 8 * w) == n).unwrap_or(8);
                Packed { header: width << 1 | 1, int: n.to_le_bytes(), bytes: &[] }
            }
            None => Packed { header: e.len() << 1, int: [0; 8], bytes: e },
        }
    }

    fn payload(&self) -> &[u8] {
        if self.header & 1 == 1 {
            &self.int[..self.header >> 1]
        } else {
            self.bytes
        }
    }

    /// Bytes the entry takes in a chunk.
    pub(crate) fn size(&self) -> usize {
        self.payload().len() + 2 * varint_len(self.header)
    }

    /// Writes the entry into `dst`, which is exactly `size()` long.
    fn write(&self, dst: &mut [u8]) {
        let v = varint_len(self.header);
        let mut h = self.header;
        for (i, b) in dst[..v].iter_mut().enumerate() {
            *b = (h & 0x7f) as u8 | if i + 1 < v { 0x80 } else { 0 };
            h >>= 7;
        }
        let payload = self.payload();
        dst[v..v + payload.len()].copy_from_slice(payload);
        for i in 0..v {
            dst[v + payload.len() + i] = dst[v - 1 - i];
        }
    }
}

/// The element whose header is `header` and payload `payload`.
#[inline]
fn elem(header: usize, payload: &[u8]) -> Elem<'_> {
    if header & 1 == 0 {
        return Elem::Bytes(payload);
    }
    let fill = if payload.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
    let mut le = [fill; 8];
    le[..payload.len()].copy_from_slice(payload);
    Elem::Int(i64::from_le_bytes(le))
}

/// Payload length of an entry with this header.
#[inline]
fn payload_len(header: usize) -> usize {
    header >> 1
}

/// The entry starting at `off`: (header, payload start, offset of the next entry).
#[inline]
fn read_fwd(buf: &[u8], off: usize) -> (usize, usize, usize) {
    let (mut h, mut shift, mut p) = (0usize, 0u32, off);
    loop {
        let b = buf[p];
        p += 1;
        h |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (h, p, p + payload_len(h) + (p - off))
}

/// The entry ending at `end`: (entry start, header, payload start).
#[inline]
fn read_back(buf: &[u8], end: usize) -> (usize, usize, usize) {
    let (mut h, mut shift, mut p) = (0usize, 0u32, end);
    loop {
        p -= 1;
        let b = buf[p];
        h |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let data = p - payload_len(h);
    (data - (end - p), h, data)
}

/// The next capacity for a chunk of `cap` bytes that needs `need`.
fn grown(cap: usize, need: usize) -> usize {
    need.max(cap.saturating_mul(2).min(CHUNK_MAX))
}

impl Chunk {
    /// A chunk holding the given encoded entries, sized exactly.
    pub(crate) fn from_encoded(parts: &[&[u8]], count: usize) -> Chunk {
        let len = parts.iter().map(|p| p.len()).sum();
        let mut buf = Vec::with_capacity(len);
        parts.iter().for_each(|p| buf.extend_from_slice(p));
        Chunk { buf: buf.into_boxed_slice(), head: 0, tail: len, count }
    }

    pub(crate) fn with_element(e: &Packed<'_>) -> Chunk {
        let n = e.size();
        let mut buf = vec![0u8; n].into_boxed_slice();
        e.write(&mut buf);
        Chunk { buf, head: 0, tail: n, count: 1 }
    }

    /// Bytes allocated.
    pub(crate) fn cap(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of live entries.
    pub(crate) fn live(&self) -> usize {
        self.tail - self.head
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn head(&self) -> usize {
        self.head
    }

    pub(crate) fn tail(&self) -> usize {
        self.tail
    }

    /// The live entries, encoded.
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.buf[self.head..self.tail]
    }

    /// The entry starting at `off`: its element and the offset of the next entry.
    #[inline]
    pub(crate) fn entry_at(&self, off: usize) -> (Elem<'_>, usize) {
        let (h, d, next) = read_fwd(&self.buf, off);
        (elem(h, &self.buf[d..d + payload_len(h)]), next)
    }

    /// The entry ending at `end`: its element and its start offset.
    #[inline]
    pub(crate) fn entry_before(&self, end: usize) -> (Elem<'_>, usize) {
        let (start, h, d) = read_back(&self.buf, end);
        (elem(h, &self.buf[d..d + payload_len(h)]), start)
    }

    /// Start offset of the entry at local position `i < count`, walking from the nearer end.
    pub(crate) fn offset_of(&self, i: usize) -> usize {
        if i <= self.count / 2 {
            (0..i).fold(self.head, |off, _| read_fwd(&self.buf, off).2)
        } else {
            (i..self.count).fold(self.tail, |end, _| read_back(&self.buf, end).0)
        }
    }

    pub(crate) fn get(&self, i: usize) -> Elem<'_> {
        self.entry_at(self.offset_of(i)).0
    }

    pub(crate) fn push_back(&mut self, e: &Packed<'_>) {
        let n = e.size();
        if self.cap() - self.tail < n {
            let live = self.live();
            if live + n <= self.cap() {
                // Room freed by pops at the front: slide down, splitting the slack.
                let at = (self.cap() - live - n) / 2;
                self.buf.copy_within(self.head..self.tail, at);
                self.head = at;
                self.tail = at + live;
            } else {
                self.realloc(grown(self.cap(), live + n), 0);
            }
        }
        e.write(&mut self.buf[self.tail..self.tail + n]);
        self.tail += n;
        self.count += 1;
    }

    pub(crate) fn push_front(&mut self, e: &Packed<'_>) {
        let n = e.size();
        if self.head < n {
            let live = self.live();
            if live + n <= self.cap() {
                let at = self.cap() - live - (self.cap() - live - n) / 2;
                self.buf.copy_within(self.head..self.tail, at);
                self.head = at;
                self.tail = at + live;
            } else {
                let cap = grown(self.cap(), live + n);
                self.realloc(cap, cap - live);
            }
        }
        self.head -= n;
        e.write(&mut self.buf[self.head..self.head + n]);
        self.count += 1;
    }

    /// Moves the live entries into a new buffer of `cap` bytes, starting at `at`.
    fn realloc(&mut self, cap: usize, at: usize) {
        let live = self.live();
        let mut buf = vec![0u8; cap].into_boxed_slice();
        buf[at..at + live].copy_from_slice(&self.buf[self.head..self.tail]);
        self.buf = buf;
        self.head = at;
        self.tail = at + live;
    }

    /// Gives memory back once pops left most of a large buffer unused. Halving at a
    /// quarter keeps the copies amortized O(1) per popped byte.
    pub(crate) fn shrink_if_sparse(&mut self) {
        let live = self.live();
        if self.cap() > 256 && live * 4 < self.cap() {
            let cap = (live * 2).max(64);
            self.realloc(cap, (cap - live) / 2);
        }
    }

    /// Removes the first entry (the chunk must not be empty).
    pub(crate) fn pop_front(&mut self) -> Vec<u8> {
        let (v, next) = self.entry_at(self.head);
        let v = v.to_vec();
        self.head = next;
        self.count -= 1;
        v
    }

    /// Removes the last entry (the chunk must not be empty).
    pub(crate) fn pop_back(&mut self) -> Vec<u8> {
        let (v, start) = self.entry_before(self.tail);
        let v = v.to_vec();
        self.tail = start;
        self.count -= 1;
        v
    }

    /// Drops the first `k <= count` entries.
    pub(crate) fn drop_front(&mut self, k: usize) {
        self.head = (0..k).fold(self.head, |off, _| read_fwd(&self.buf, off).2);
        self.count -= k;
    }

    /// Drops the last `k <= count` entries.
    pub(crate) fn drop_back(&mut self, k: usize) {
        self.tail = (0..k).fold(self.tail, |end, _| read_back(&self.buf, end).0);
        self.count -= k;
    }

    /// Replaces the entries in `from..to` (entry boundaries) by `elements`, rebuilding
    /// the chunk at its exact size.
    pub(crate) fn splice(&mut self, from: usize, to: usize, removed: usize, elements: &[Packed<'_>]) {
        let added: usize = elements.iter().map(Packed::size).sum();
        let len = self.live() - (to - from) + added;
        let mut buf = vec![0u8; len].into_boxed_slice();
        let before = from - self.head;
        buf[..before].copy_from_slice(&self.buf[self.head..from]);
        let mut at = before;
        for e in elements {
            let n = e.size();
            e.write(&mut buf[at..at + n]);
            at += n;
        }
        buf[at..].copy_from_slice(&self.buf[to..self.tail]);
        self.buf = buf;
        self.head = 0;
        self.tail = len;
        self.count = self.count - removed + elements.len();
    }

    /// Removes the entries starting at `starts` (ascending), rebuilding the chunk at its
    /// exact size.
    pub(crate) fn remove_entries(&mut self, starts: &[usize]) {
        let mut kept = Vec::with_capacity(self.live());
        let mut pos = self.head;
        for &s in starts {
            kept.extend_from_slice(&self.buf[pos..s]);
            pos = read_fwd(&self.buf, s).2;
        }
        kept.extend_from_slice(&self.buf[pos..self.tail]);
        self.count -= starts.len();
        self.tail = kept.len();
        self.head = 0;
        self.buf = kept.into_boxed_slice();
    }

    /// Splits an over-full chunk in two at the entry boundary nearest its middle byte;
    /// `None` if it is within [`CHUNK_MAX`] or holds a single entry.
    pub(crate) fn split_if_oversized(&mut self) -> Option<Chunk> {
        if self.live() <= CHUNK_MAX || self.count < 2 {
            return None;
        }
        let middle = self.head + self.live() / 2;
        let (mut off, mut k) = (self.head, 0);
        while off < middle && k + 1 < self.count {
            off = read_fwd(&self.buf, off).2;
            k += 1;
        }
        // live > CHUNK_MAX > 0 and count >= 2, so the walk took at least one step.
        let right = Chunk::from_encoded(&[&self.buf[off..self.tail]], self.count - k);
        let left = Chunk::from_encoded(&[&self.buf[self.head..off]], k);
        *self = left;
        Some(right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_both_ways() {
        for n in [0usize, 1, 10, 63, 64, 127, 128, 300, 16383, 16384, 70000] {
            let e: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut c = Chunk::default();
            c.push_back(&Packed::new(b"x"));
            c.push_back(&Packed::new(&e));
            c.push_front(&Packed::new(b"y"));
            assert_eq!(c.count(), 3);
            assert_eq!(c.get(1), Elem::Bytes(b"x"));
            assert_eq!(c.get(2), Elem::Bytes(&e));
            assert_eq!(c.entry_before(c.tail()).0, Elem::Bytes(&e));
            assert_eq!(c.pop_back(), e);
            assert_eq!(c.pop_front(), b"y");
            assert_eq!(c.pop_front(), b"x");
            assert_eq!(c.live(), 0);
        }
    }

    #[test]
    fn canonical_integers_are_packed_as_integers() {
        for (text, int) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("127", Some(127)),
            ("128", Some(128)),
            ("-129", Some(-129)),
            ("1000000000", Some(1_000_000_000)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("+1", None),
            ("01", None),
            (" 1", None),
            ("1.0", None),
            ("", None),
        ] {
            let p = Packed::new(text.as_bytes());
            let mut c = Chunk::default();
            c.push_back(&p);
            c.push_front(&p);
            let expected = int.map_or(Elem::Bytes(text.as_bytes()), Elem::Int);
            assert_eq!(c.get(0), expected, "{text}");
            assert_eq!(c.entry_before(c.tail()).0, expected, "{text}");
            assert!(c.get(1).is(text.as_bytes()), "{text}");
            assert_eq!(c.pop_back(), text.as_bytes(), "{text}");
        }
        // A 32-bit integer takes 6 bytes, as in a listpack.
        assert_eq!(Packed::new(b"1000000000").size(), 6);
        assert_eq!(Packed::new(b"e000000000").size(), 12);
    }
}
