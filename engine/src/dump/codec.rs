//! The primitives of the DUMP payload body: LEB128 varints, zigzag integers, length-prefixed
//! byte strings and fixed 8-byte floats.
//!
//! Invariant: [`Reader`] never panics and never allocates more than the bytes it has left:
//! every count is checked against the remaining input before anything is sized by it, so
//! a hostile payload costs at most its own length.

/// Appends payload primitives to a buffer.
#[derive(Default)]
pub(super) struct Writer {
    pub(super) buf: Vec<u8>,
}

impl Writer {
    pub(super) fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    pub(super) fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.buf.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.buf.push(n as u8);
    }

    pub(super) fn len(&mut self, n: usize) {
        self.varint(n as u64);
    }

    /// A signed integer, zigzag-coded so small negatives stay short.
    pub(super) fn i64(&mut self, n: i64) {
        self.varint(((n << 1) ^ (n >> 63)) as u64);
    }

    pub(super) fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
}

/// Why a body did not decode. The caller turns every case into "Bad data format".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed;

pub(super) type Parsed<T> = Result<T, Malformed>;

/// Reads payload primitives from a slice.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(super) fn u8(&mut self) -> Parsed<u8> {
        let (&b, rest) = self.rest.split_first().ok_or(Malformed)?;
        self.rest = rest;
        Ok(b)
    }

    /// A canonical LEB128 u64: at most 10 bytes, no overflow, no redundant trailing zero
    /// group (so every value has exactly one encoding and a flipped byte cannot alias).
    pub(super) fn varint(&mut self) -> Parsed<u64> {
        let mut n: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let group = (b & 0x7f) as u64;
            if i == 9 && b > 1 {
                return Err(Malformed);
            }
            n |= group << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(Malformed);
                }
                return Ok(n);
            }
        }
        Err(Malformed)
    }

    /// A count of items each taking at least `min_item` bytes: never more than the input
    /// left could hold, so the caller may size an allocation by it.
    pub(super) fn count(&mut self, min_item: usize) -> Parsed<usize> {
        let n = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
        if n.checked_mul(min_item.max(1)).is_none_or(|need| need > self.rest.len()) {
            return Err(Malformed);
        }
        Ok(n)
    }

    pub(super) fn i64(&mut self) -> Parsed<i64> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub(super) fn f64(&mut self) -> Parsed<f64> {
        let (head, rest) = self.rest.split_first_chunk::<8>().ok_or(Malformed)?;
        self.rest = rest;
        Ok(f64::from_bits(u64::from_le_bytes(*head)))
    }

    pub(super) fn bytes(&mut self) -> Parsed<&'a [u8]> {
        let n = self.count(1)?;
        let (b, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut w = Writer::default();
        for n in [0u64, 1, 127, 128, 300, u64::MAX] {
            w.varint(n);
        }
        for n in [0i64, -1, 1, i64::MIN, i64::MAX] {
            w.i64(n);
        }
        w.f64(-0.5);
        w.bytes(b"abc");
        let mut r = Reader::new(&w.buf);
        for n in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(r.varint(), Ok(n));
        }
        for n in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(r.i64(), Ok(n));
        }
        assert_eq!(r.f64(), Ok(-0.5));
        assert_eq!(r.bytes(), Ok(&b"abc"[..]));
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(Malformed));
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        // A length of u64::MAX with three bytes behind it.
        let mut w = Writer::default();
        w.varint(u64::MAX);
        w.buf.extend_from_slice(b"abc");
        assert_eq!(Reader::new(&w.buf).bytes(), Err(Malformed));
        // Overlong and overflowing varints.
        assert_eq!(Reader::new(&[0x80, 0x00]).varint(), Err(Malformed));
        assert_eq!(Reader::new(&[0xff; 10]).varint(), Err(Malformed));
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(Malformed));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(Malformed));
    }
}
