//! [`CompactBytes`]: the byte string the keyspace stores (keys, string values, hash fields
//! and values, set members), in 24 bytes with no heap allocation for short strings.
//!
//! Why: most keys, fields and members are short, and a `Box<[u8]>` or `Vec<u8>` per string
//! costs a heap allocation (mimalloc's smallest bins are 8 and 16 bytes) on top of the
//! 16-24 bytes of the handle itself. Inline, a 10-byte value costs nothing beyond the
//! map bucket that holds it.
//!
//! Layout (`repr(C)`, 24 bytes, 8-aligned):
//! ```text
//! offset  0..8     8..16    16..23          23
//! inline  bytes 0..23 of the string          tag = length (0..=23)
//! heap    pointer  length   capacity (56 b) tag = HEAP
//! ```
//! Invariants:
//! - A string of at most [`INLINE_CAP`] bytes is always inline; a longer one always on
//!   the heap (so equal strings have equal representations, and `heap_bytes` is 0 for
//!   every short string).
//! - Heap form: `(pointer, length, capacity)` are exactly those of a live `Vec<u8>` that
//!   this value owns; the capacity equals the length unless an edit ([`CompactBytes::edit`],
//!   APPEND) grew it, as Redis's sds keeps spare room for appends.
//! - Inline form: bytes past the length are zero (so every byte of the value is
//!   initialized and the inline bytes can be read as one slice from offset 0).
//! - The tag's unused values (25..=255) are a niche: `Value`, whose largest variant holds a
//!   `CompactBytes`, stays 24 bytes.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr;

/// The longest string kept inline.
pub const INLINE_CAP: usize = 23;
/// The capacity field of the heap form has 7 bytes.
const MAX_HEAP_CAP: usize = (1 << 56) - 1;

/// Inline length, or `Heap`. Its discriminants are the only valid values of the last byte,
/// which gives `Option`s and enums around a `CompactBytes` a niche.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Tag {
    L0 = 0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
    L16,
    L17,
    L18,
    L19,
    L20,
    L21,
    L22,
    L23,
    Heap,
}

const INLINE_TAGS: [Tag; INLINE_CAP + 1] = [
    Tag::L0,
    Tag::L1,
    Tag::L2,
    Tag::L3,
    Tag::L4,
    Tag::L5,
    Tag::L6,
    Tag::L7,
    Tag::L8,
    Tag::L9,
    Tag::L10,
    Tag::L11,
    Tag::L12,
    Tag::L13,
    Tag::L14,
    Tag::L15,
    Tag::L16,
    Tag::L17,
    Tag::L18,
    Tag::L19,
    Tag::L20,
    Tag::L21,
    Tag::L22,
    Tag::L23,
];

/// The first word: the heap pointer (kept as a pointer, with its provenance) or the first
/// eight inline bytes.
#[derive(Clone, Copy)]
#[repr(C)]
union Word0 {
    ptr: *mut u8,
    bytes: [u8; 8],
}

/// A byte string, inline up to [`INLINE_CAP`] bytes, else one exact heap allocation.
#[repr(C)]
pub struct CompactBytes {
    word0: Word0,
    /// Inline: bytes 8..16. Heap: the length, native-endian.
    word1: [u8; 8],
    /// Inline: bytes 16..23. Heap: the capacity, low 7 bytes, little-endian.
    word2: [u8; 7],
    tag: Tag,
}

// SAFETY: a CompactBytes owns its heap bytes exclusively, as a Vec<u8> does.
unsafe impl Send for CompactBytes {}
// SAFETY: shared access only reads, as for Vec<u8>.
unsafe impl Sync for CompactBytes {}

const EMPTY: CompactBytes = CompactBytes { word0: Word0 { bytes: [0; 8] }, word1: [0; 8], word2: [0; 7], tag: Tag::L0 };

impl CompactBytes {
    /// A copy of `bytes`: inline if short, else an allocation of exactly its length.
    #[inline]
    pub fn new(bytes: &[u8]) -> CompactBytes {
        if bytes.len() <= INLINE_CAP {
            Self::inline(bytes)
        } else {
            Self::heap(bytes.to_vec())
        }
    }

    #[inline]
    fn inline(bytes: &[u8]) -> CompactBytes {
        let mut s = EMPTY;
        s.tag = INLINE_TAGS[bytes.len()];
        // SAFETY: at most INLINE_CAP bytes into the first 23 bytes of a repr(C) struct
        // whose fields there are plain bytes (word0's byte view, word1, word2).
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut s as *mut CompactBytes).cast::<u8>(), bytes.len()) };
        s
    }

    /// Takes over `v`'s allocation (`v` is longer than INLINE_CAP).
    fn heap(v: Vec<u8>) -> CompactBytes {
        let mut v = ManuallyDrop::new(v);
        if v.capacity() > MAX_HEAP_CAP {
            // Unreachable in practice (no machine has 2^56 bytes); keeps the encoding total.
            v.shrink_to_fit();
        }
        let cap = (v.capacity() as u64).to_le_bytes();
        let mut word2 = [0u8; 7];
        word2.copy_from_slice(&cap[..7]);
        CompactBytes { word0: Word0 { ptr: v.as_mut_ptr() }, word1: v.len().to_ne_bytes(), word2, tag: Tag::Heap }
    }

    #[inline]
    fn is_heap(&self) -> bool {
        self.tag == Tag::Heap
    }

    #[inline]
    fn heap_cap(&self) -> usize {
        let mut cap = [0u8; 8];
        cap[..7].copy_from_slice(&self.word2);
        u64::from_le_bytes(cap) as usize
    }

    #[inline]
    pub fn len(&self) -> usize {
        if self.is_heap() {
            usize::from_ne_bytes(self.word1)
        } else {
            self.tag as usize
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        let len = self.len();
        let p = if self.is_heap() {
            // SAFETY: the heap form's word0 is the pointer of the owned Vec.
            unsafe { self.word0.ptr as *const u8 }
        } else {
            (self as *const CompactBytes).cast::<u8>()
        };
        // SAFETY: heap: the Vec's initialized bytes; inline: `len` <= 23 initialized bytes
        // at the start of `self` (module invariants).
        unsafe { std::slice::from_raw_parts(p, len) }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len();
        let p = if self.is_heap() {
            // SAFETY: as in `as_slice`.
            unsafe { self.word0.ptr }
        } else {
            (self as *mut CompactBytes).cast::<u8>()
        };
        // SAFETY: as in `as_slice`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }

    /// The bytes as a `Vec`, without copying when they are on the heap.
    pub fn into_vec(self) -> Vec<u8> {
        let this = ManuallyDrop::new(self);
        if this.is_heap() {
            // SAFETY: the heap form is exactly a Vec this value owns; `this` is not dropped.
            unsafe { Vec::from_raw_parts(this.word0.ptr, this.len(), this.heap_cap()) }
        } else {
            this.as_slice().to_vec()
        }
    }

    /// Edits the bytes as a `Vec` (which keeps any capacity it grows, so repeated APPENDs
    /// are amortized O(1)); the result is stored in whichever form its length calls for.
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut v = std::mem::take(self).into_vec();
        let r = f(&mut v);
        *self = CompactBytes::from(v);
        r
    }

    /// Heap bytes this string holds: nothing inline, else its capacity rounded up to the
    /// allocator's 8-byte granule.
    #[inline]
    pub fn heap_bytes(&self) -> usize {
        if self.is_heap() {
            self.heap_cap().div_ceil(8) * 8
        } else {
            0
        }
    }
}

/// [`CompactBytes::heap_bytes`] of a string of `len` bytes made by [`CompactBytes::new`]
/// (keys, which are never edited, are charged by their length alone).
#[inline]
pub fn heap_bytes_for(len: usize) -> usize {
    if len <= INLINE_CAP {
        0
    } else {
        len.div_ceil(8) * 8
    }
}

impl Drop for CompactBytes {
    fn drop(&mut self) {
        if self.is_heap() {
            // SAFETY: the heap form is exactly a Vec this value owns, dropped once here.
            unsafe { drop(Vec::from_raw_parts(self.word0.ptr, self.len(), self.heap_cap())) }
        }
    }
}

impl Default for CompactBytes {
    fn default() -> Self {
        EMPTY
    }
}

impl Clone for CompactBytes {
    fn clone(&self) -> Self {
        if self.is_heap() {
            CompactBytes::heap(self.as_slice().to_vec())
        } else {
            // The inline form owns nothing: a field-by-field copy is a full copy.
            CompactBytes { word0: self.word0, word1: self.word1, word2: self.word2, tag: self.tag }
        }
    }
}

impl Deref for CompactBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for CompactBytes {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl AsRef<[u8]> for CompactBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Maps keyed by `CompactBytes` are looked up with `&[u8]`: hashing and equality are the
/// slice's, as `Borrow` requires.
impl Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Hash for CompactBytes {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl PartialEq for CompactBytes {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for CompactBytes {}

impl PartialEq<[u8]> for CompactBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialOrd for CompactBytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CompactBytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl From<&[u8]> for CompactBytes {
    #[inline]
    fn from(bytes: &[u8]) -> Self {
        CompactBytes::new(bytes)
    }
}

impl<const N: usize> From<&[u8; N]> for CompactBytes {
    fn from(bytes: &[u8; N]) -> Self {
        CompactBytes::new(bytes)
    }
}

/// Takes over the Vec's allocation when the bytes do not fit inline (its spare capacity
/// too: callers that want an exact allocation pass an exact Vec or use [`CompactBytes::new`]).
impl From<Vec<u8>> for CompactBytes {
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE_CAP {
            CompactBytes::inline(&v)
        } else {
            CompactBytes::heap(v)
        }
    }
}

impl From<Box<[u8]>> for CompactBytes {
    fn from(b: Box<[u8]>) -> Self {
        CompactBytes::from(b.into_vec())
    }
}

impl From<CompactBytes> for Vec<u8> {
    fn from(s: CompactBytes) -> Vec<u8> {
        s.into_vec()
    }
}

impl From<CompactBytes> for bytes::Bytes {
    fn from(s: CompactBytes) -> bytes::Bytes {
        bytes::Bytes::from(s.into_vec())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn layout_is_24_bytes_with_a_niche() {
        assert_eq!(std::mem::size_of::<CompactBytes>(), 24);
        assert_eq!(std::mem::size_of::<Option<CompactBytes>>(), 24);
        assert_eq!(std::mem::size_of::<crate::value::Value>(), 24);
    }

    #[test]
    fn every_length_round_trips_in_the_right_form() {
        for len in 0..100usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            let s = CompactBytes::new(&bytes);
            assert_eq!(s.as_slice(), &bytes[..]);
            assert_eq!(s.len(), len);
            assert_eq!(s.is_heap(), len > INLINE_CAP, "len {len}");
            assert_eq!(s.heap_bytes(), heap_bytes_for(len));
            assert_eq!(heap_bytes_for(len), if len > INLINE_CAP { len.div_ceil(8) * 8 } else { 0 });
            let c = s.clone();
            assert_eq!(c, s);
            assert_eq!(CompactBytes::from(bytes.clone()), s);
            assert_eq!(s.into_vec(), bytes);
        }
    }

    #[test]
    fn edits_move_between_forms_and_keep_append_capacity() {
        let mut s = CompactBytes::new(b"abc");
        let mut expect = b"abc".to_vec();
        for i in 0..200u8 {
            s.edit(|v| v.push(i));
            expect.push(i);
            assert_eq!(s.as_slice(), &expect[..]);
        }
        assert!(s.is_heap());
        assert!(s.heap_cap() >= s.len());
        s.edit(|v| v.truncate(5));
        assert!(!s.is_heap());
        assert_eq!(s.as_slice(), &expect[..5]);
        s.as_mut_slice()[0] = b'X';
        assert_eq!(&s[..2], b"Xb");
        let mut big = CompactBytes::new(&[1; 40]);
        big[39] = 9;
        assert_eq!(big.last(), Some(&9));
    }

    #[test]
    fn hashes_and_compares_as_the_slice() {
        let set: HashSet<CompactBytes> =
            ["a", "", "x".repeat(30).as_str()].iter().map(|s| s.as_bytes().into()).collect();
        assert!(set.contains(&b"a"[..]));
        assert!(set.contains(&b""[..]));
        assert!(set.contains("x".repeat(30).as_bytes()));
        assert!(!set.contains(&b"b"[..]));
        assert!(CompactBytes::new(b"ab") < CompactBytes::new(b"b"));
        assert_eq!(format!("{:?}", CompactBytes::new(b"hi")), format!("{:?}", b"hi".to_vec()));
    }
}
