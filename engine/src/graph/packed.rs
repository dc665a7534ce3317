//! Packed runs of adjacency entries: the byte format one chunk of an [`EdgeList`] holds.
//!
//! An entry is `[zigzag(rank) as LEB128][len << 2 | flags as LEB128][neighbour id]`, so a
//! 7-byte id with a rank below 2^20 costs 11 bytes and the id is stored once. Entries of
//! a run are sorted by (rank descending, id ascending) — the list order — and a run is
//! walked from its start (a run is at most a chunk, about a kilobyte).
//!
//! The flag bits sit in the low bits of the first byte of the second varint, so changing
//! them never changes an entry's length (confirming a restored half is an in-place write).
//!
//! Invariants: a run is exactly a sequence of well-formed entries (every writer here keeps
//! it so). Decoding still checks bounds and answers `None` rather than panicking.
//!
//! [`EdgeList`]: super::EdgeList

use std::cmp::Ordering;

/// The half waits for its mirror (restored by RESTORE); reads skip it.
pub const UNCONFIRMED: u8 = 1;
/// The half has properties (in the list's property map).
pub const HAS_PROPS: u8 = 2;

/// One decoded entry, borrowing its id from the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed<'a> {
    pub rank: i64,
    pub flags: u8,
    pub other: &'a [u8],
}

/// List order: rank descending, then neighbour id ascending.
#[inline]
pub fn order(rank_a: i64, other_a: &[u8], rank_b: i64, other_b: &[u8]) -> Ordering {
    rank_b.cmp(&rank_a).then_with(|| other_a.cmp(other_b))
}

fn zigzag(r: i64) -> u64 {
    ((r << 1) ^ (r >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(out: &mut smallvec::SmallVec<[u8; 32]>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The bytes of one entry.
pub fn encode(rank: i64, flags: u8, other: &[u8]) -> smallvec::SmallVec<[u8; 32]> {
    let mut v = smallvec::SmallVec::new();
    put_varint(&mut v, zigzag(rank));
    put_varint(&mut v, ((other.len() as u64) << 2) | u64::from(flags & 3));
    v.extend_from_slice(other);
    v
}

/// The entry at `pos` and the position after it.
#[inline]
pub fn decode(run: &[u8], pos: usize) -> Option<(Packed<'_>, usize)> {
    let mut p = pos;
    let rank = unzigzag(read_varint(run, &mut p)?);
    let head = read_varint(run, &mut p)?;
    let len = usize::try_from(head >> 2).ok()?;
    let other = run.get(p..p.checked_add(len)?)?;
    Some((Packed { rank, flags: (head & 3) as u8, other }, p + len))
}

/// Position of the flags byte of the entry at `pos`.
fn flags_pos(run: &[u8], pos: usize) -> Option<usize> {
    let mut p = pos;
    read_varint(run, &mut p)?;
    (p < run.len()).then_some(p)
}

/// Sets or clears `flag` on the entry at `pos`.
pub fn set_flag(run: &mut [u8], pos: usize, flag: u8, on: bool) {
    if let Some(p) = flags_pos(run, pos) {
        if on {
            run[p] |= flag;
        } else {
            run[p] &= !flag;
        }
    }
}

/// Iterates the entries of a run with their positions.
pub fn entries(run: &[u8]) -> impl Iterator<Item = (usize, Packed<'_>)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (e, next) = decode(run, pos)?;
        let at = pos;
        pos = next;
        Some((at, e))
    })
}

/// Where (rank, other) is or would go: `Ok((start, end))` of the equal entry, or
/// `Err(position)` of the first entry after it.
pub fn seek(run: &[u8], rank: i64, other: &[u8]) -> Result<(usize, usize), usize> {
    let mut pos = 0;
    while let Some((e, next)) = decode(run, pos) {
        match order(e.rank, e.other, rank, other) {
            Ordering::Less => pos = next,
            Ordering::Equal => return Ok((pos, next)),
            Ordering::Greater => return Err(pos),
        }
    }
    Err(pos)
}

/// The entry holding `other`, by a linear walk: (start, end, entry).
pub fn find_other<'a>(run: &'a [u8], other: &[u8]) -> Option<(usize, usize, Packed<'a>)> {
    let mut pos = 0;
    while let Some((e, next)) = decode(run, pos) {
        if e.other == other {
            return Some((pos, next, e));
        }
        pos = next;
    }
    None
}

/// A position near the middle of the run that starts an entry (0 < it < len), for splits.
pub fn middle(run: &[u8]) -> Option<usize> {
    let half = run.len() / 2;
    entries(run).map(|(p, _)| p).find(|&p| p >= half && p > 0)
}

/// A key whose bytewise order is the list order: 8 bytes of the rank, mapped so that
/// larger ranks sort first, then the id. Chunk maps are keyed by it (no decoding to
/// compare, and a `[u8]` key borrows without allocating).
pub fn sort_key(rank: i64, other: &[u8]) -> smallvec::SmallVec<[u8; 64]> {
    let mapped = !((rank as u64) ^ (1 << 63));
    let mut k = smallvec::SmallVec::new();
    k.extend_from_slice(&mapped.to_be_bytes());
    k.extend_from_slice(other);
    k
}

/// The sort key of a run's first entry.
pub fn first_key(run: &[u8]) -> Option<Box<[u8]>> {
    decode(run, 0).map(|(e, _)| sort_key(e.rank, e.other).into_vec().into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        let mut run = Vec::new();
        let items: [(i64, &[u8]); 5] = [(i64::MAX, b""), (7, b"a"), (7, b"b"), (-1, b"zz"), (i64::MIN, b"x")];
        for (r, o) in items {
            run.extend_from_slice(&encode(r, HAS_PROPS, o));
        }
        let got: Vec<(i64, Vec<u8>)> = entries(&run).map(|(_, e)| (e.rank, e.other.to_vec())).collect();
        assert_eq!(got, items.iter().map(|(r, o)| (*r, o.to_vec())).collect::<Vec<_>>());
        let keys: Vec<_> = items.iter().map(|(r, o)| sort_key(*r, o)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "sort keys follow list order");
        assert_eq!(seek(&run, 7, b"b").map(|(s, _)| s), Ok(entries(&run).nth(2).map(|(p, _)| p).unwrap()));
        assert!(seek(&run, 7, b"c").is_err());
        let (start, _, e) = find_other(&run, b"zz").unwrap();
        assert_eq!(e.flags, HAS_PROPS);
        set_flag(&mut run, start, UNCONFIRMED, true);
        assert_eq!(decode(&run, start).unwrap().0.flags, HAS_PROPS | UNCONFIRMED);
        set_flag(&mut run, start, HAS_PROPS, false);
        assert_eq!(decode(&run, start).unwrap().0.flags, UNCONFIRMED);
        // Truncated input decodes to None, never panics.
        for cut in 0..run.len() {
            let _ = entries(&run[..cut]).count();
        }
    }
}
