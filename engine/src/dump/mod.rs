//! DUMP / RESTORE / COPY: Prism's own serialized form of one value (the payload), and the
//! apply of [`Op::Copy`](crate::Op::Copy) and [`Op::Restore`](crate::Op::Restore).
//!
//! The payload is not Redis's RDB format: it moves values between Prism nodes (a client's
//! DUMP on one node, RESTORE on another, as Redis tools do for migrations).
//!
//! ```text
//! offset  size  field
//! 0       4     magic "PRSM"
//! 4       1     format version (FORMAT_VERSION = 1)
//! 5       1     type tag: 0 string, 1 hash, 2 set, 3 zset, 4 list, 5 vertex
//! 6       n     body (below)
//! 6+n     8     CRC-64/REDIS of bytes 0..6+n, little-endian
//! ```
//! Body primitives (`codec`): `len` and counts are LEB128 varints, `bytes` is a len then the
//! bytes, `i64` a zigzag varint, `f64` 8 bytes little-endian.
//! - string: bytes
//! - hash: count >= 1, then count x (field bytes, value bytes)
//! - set: count >= 1, then count x member bytes
//! - zset: count >= 1, then count x (member bytes, score f64) in ascending order
//! - list: count >= 1, then count x element bytes, head first
//! - vertex: flags (bit 0: has label), [label bytes], props (count, pairs), then types
//!   count, each: name bytes, out-halves, in-halves; halves are count x (neighbour bytes,
//!   rank i64, props count, props pairs). Types strictly ascending by name, each with at
//!   least one half.
//!
//! Invariants:
//! - [`decode`] is total: any bytes give a value or an error, never a panic, and never an
//!   allocation larger than the payload (counts are checked against the bytes left).
//! - A decoded value is valid: no empty collection, no duplicate field or member, no NaN
//!   score, a vertex's types unique with no empty one; otherwise "Bad data format".
//! - A payload of a newer format version, a foreign magic or a wrong checksum is refused
//!   as "DUMP payload version or checksum are wrong", before its body is looked at.
//!
//! Graph rules:
//! - DUMP of a vertex carries its label, properties and every edge half it holds (out-
//!   and in-halves with ranks; properties live on out-halves). RESTORE puts them back
//!   verbatim. An edge is visible only when both halves exist (see `graph`), so a restored
//!   vertex never shows a one-sided edge: an edge to a neighbour that is absent, or whose
//!   mirror half is gone, stays invisible until that neighbour is restored with its half.
//!   Migrating both endpoints (in any order) brings every edge back.
//! - COPY of a vertex copies its label and properties, not its edges: an edge is named by
//!   its endpoints' ids, so the copy (a new id) has no edges; copying halves would only
//!   leave halves whose mirrors name the source.

mod codec;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use codec::{Malformed, Parsed, Reader, Writer};

use crate::graph::{Dir, EdgeList, Vertex};
use crate::keyspace::{Entry, WriteSet};
use crate::list::ListValue;
use crate::op::{OpError, Output};
use crate::set::SetValue;
use crate::value::{HashValue, Value, ValueKind};
use crate::zset::ZSetValue;

/// The format version this node writes, and the newest it reads.
pub const FORMAT_VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"PRSM";
const HEADER_LEN: usize = 6;
const CRC_LEN: usize = 8;

/// CRC-64/REDIS (Jones polynomial, reflected, init 0, as Redis's DUMP) of `bytes`.
///
/// crc-fast folds 128 or 256 bits at a time with carry-less multiplication (PCLMULQDQ,
/// VPCLMULQDQ when the CPU has it, a table fallback elsewhere): tens of GB/s where the
/// byte-at-a-time table ran at about 0.4 GB/s, which made the checksum most of a cold
/// partition's load time (docs/benchmarks.md). Same polynomial and parameters, so
/// payloads written before are read unchanged (`tests::crc64_matches_the_reference`).
#[inline]
pub fn crc64(bytes: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, bytes)
}

const TAG_STRING: u8 = 0;
const TAG_HASH: u8 = 1;
const TAG_SET: u8 = 2;
const TAG_ZSET: u8 = 3;
const TAG_LIST: u8 = 4;
const TAG_VERTEX: u8 = 5;

/// Why a payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// Wrong magic, a newer format version, or a checksum mismatch.
    #[error("DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    /// The envelope is intact but the body is not a valid value.
    #[error("Bad data format")]
    BadFormat,
}

impl From<DumpError> for OpError {
    fn from(e: DumpError) -> OpError {
        match e {
            DumpError::VersionOrChecksum => OpError::BadPayload,
            DumpError::BadFormat => OpError::BadDataFormat,
        }
    }
}

impl From<Malformed> for DumpError {
    fn from(_: Malformed) -> DumpError {
        DumpError::BadFormat
    }
}

/// The payload of a value.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    w.buf.extend_from_slice(MAGIC);
    w.u8(FORMAT_VERSION);
    match value {
        Value::Str(s) => {
            w.u8(TAG_STRING);
            w.bytes(s);
        }
        Value::Hash(h) => {
            w.u8(TAG_HASH);
            put_pairs(&mut w, h);
        }
        Value::Set(s) => {
            w.u8(TAG_SET);
            w.len(s.len());
            s.iter().for_each(|m| w.bytes(m));
        }
        Value::ZSet(z) => {
            w.u8(TAG_ZSET);
            w.len(z.len());
            for (m, score) in z.iter() {
                w.bytes(m);
                w.f64(score);
            }
        }
        Value::List(l) => {
            w.u8(TAG_LIST);
            w.len(l.len());
            l.iter().for_each(|e| e.with_bytes(|b| w.bytes(b)));
        }
        Value::Vertex(v) => {
            w.u8(TAG_VERTEX);
            put_vertex(&mut w, v);
        }
    }
    let crc = crc64(&w.buf);
    w.buf.extend_from_slice(&crc.to_le_bytes());
    w.buf
}

/// Checks the envelope (magic, version, checksum) and returns the type tag and body.
pub fn verify(payload: &[u8]) -> Result<(u8, &[u8]), DumpError> {
    if payload.len() < HEADER_LEN + CRC_LEN || &payload[..4] != MAGIC || payload[4] == 0 || payload[4] > FORMAT_VERSION
    {
        return Err(DumpError::VersionOrChecksum);
    }
    let (covered, crc) = payload.split_at(payload.len() - CRC_LEN);
    let mut stored = [0u8; CRC_LEN];
    stored.copy_from_slice(crc);
    if crc64(covered) != u64::from_le_bytes(stored) {
        return Err(DumpError::VersionOrChecksum);
    }
    Ok((payload[5], &covered[HEADER_LEN..]))
}

/// What a payload says about its value without building it: its kind, its length as
/// the cold format's `len` column counts it, and for a string the bytes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspected<'a> {
    pub kind: ValueKind,
    /// String: bytes; hash, set, zset, list: element count; vertex: edge halves held.
    pub len: usize,
    /// The string's bytes (strings only), a slice of the payload.
    pub string: Option<&'a [u8]>,
}

/// Checks the envelope (magic, version, CRC-64) and reads the value's kind and length
/// from the body's head, without allocating (a vertex is decoded in full: its length is
/// a sum over its edge lists). A string is checked whole (its length prefix covers
/// exactly the body). Collections are not walked: their duplicates and structure are
/// checked by [`decode`], which every restore runs before it stores anything, so this
/// is a cheap pre-check, not a substitute for [`decode`].
pub fn inspect(payload: &[u8]) -> Result<Inspected<'_>, DumpError> {
    let (tag, body) = verify(payload)?;
    let mut r = Reader::new(body);
    let (kind, len, string) = match tag {
        TAG_STRING => {
            let s = r.bytes()?;
            (ValueKind::String, s.len(), Some(s))
        }
        TAG_HASH => (ValueKind::Hash, nonzero(r.count(2)?)?, None),
        TAG_SET => (ValueKind::Set, nonzero(r.count(1)?)?, None),
        TAG_ZSET => (ValueKind::ZSet, nonzero(r.count(9)?)?, None),
        TAG_LIST => (ValueKind::List, nonzero(r.count(1)?)?, None),
        TAG_VERTEX => {
            let v = read_vertex(&mut r)?;
            if !r.is_empty() {
                return Err(DumpError::BadFormat);
            }
            return Ok(Inspected { kind: ValueKind::Vertex, len: v.total_degree(), string: None });
        }
        _ => return Err(DumpError::BadFormat),
    };
    if string.is_some() && !r.is_empty() {
        return Err(DumpError::BadFormat);
    }
    Ok(Inspected { kind, len, string })
}

/// The value a payload holds, fully validated (module invariants).
pub fn decode(payload: &[u8]) -> Result<Value, DumpError> {
    let (tag, body) = verify(payload)?;
    let mut r = Reader::new(body);
    let value = match tag {
        TAG_STRING => Value::Str(r.bytes()?.into()),
        TAG_HASH => {
            let h = read_pairs(&mut r)?;
            if h.is_empty() {
                return Err(DumpError::BadFormat);
            }
            Value::Hash(Box::new(h))
        }
        TAG_SET => {
            let n = nonzero(r.count(1)?)?;
            let mut s = SetValue::default();
            for _ in 0..n {
                if !s.insert(r.bytes()?) {
                    return Err(DumpError::BadFormat);
                }
            }
            Value::Set(Box::new(s))
        }
        TAG_ZSET => {
            let n = nonzero(r.count(9)?)?;
            let mut z = ZSetValue::default();
            for _ in 0..n {
                let m = r.bytes()?;
                let score = r.f64()?;
                if score.is_nan() || z.insert(m, score).is_some() {
                    return Err(DumpError::BadFormat);
                }
            }
            Value::ZSet(Box::new(z))
        }
        TAG_LIST => {
            let n = nonzero(r.count(1)?)?;
            let mut l = ListValue::default();
            for _ in 0..n {
                l.push_back(r.bytes()?);
            }
            Value::List(Box::new(l))
        }
        TAG_VERTEX => Value::Vertex(Box::new(read_vertex(&mut r)?)),
        _ => return Err(DumpError::BadFormat),
    };
    if !r.is_empty() {
        return Err(DumpError::BadFormat);
    }
    Ok(value)
}

fn nonzero(n: usize) -> Parsed<usize> {
    if n == 0 {
        Err(Malformed)
    } else {
        Ok(n)
    }
}

fn put_pairs(w: &mut Writer, h: &HashValue) {
    w.len(h.len());
    for (f, v) in h.iter() {
        w.bytes(f);
        w.bytes(v);
    }
}

/// A hash (possibly empty); a repeated field is malformed.
fn read_pairs(r: &mut Reader<'_>) -> Parsed<HashValue> {
    let n = r.count(2)?;
    let mut h = HashValue::default();
    for _ in 0..n {
        let f = r.bytes()?;
        let v = r.bytes()?;
        if !h.insert(f, v) {
            return Err(Malformed);
        }
    }
    Ok(h)
}

fn put_vertex(w: &mut Writer, v: &Vertex) {
    w.u8(v.label.is_some() as u8);
    if let Some(l) = &v.label {
        w.bytes(l);
    }
    put_pairs(w, &v.props);
    w.len(v.types().len());
    for t in v.types() {
        w.bytes(&t.name);
        put_halves(w, &t.out);
        put_halves(w, &t.inn);
    }
}

fn put_halves(w: &mut Writer, list: &EdgeList) {
    w.len(list.len());
    for h in list.iter() {
        w.bytes(h.other);
        w.i64(h.rank);
        match h.props {
            Some(p) => put_pairs(w, p),
            None => w.len(0),
        }
    }
}

fn read_vertex(r: &mut Reader<'_>) -> Parsed<Vertex> {
    let mut v = Vertex::default();
    match r.u8()? {
        0 => {}
        1 => v.set_label(r.bytes()?),
        _ => return Err(Malformed),
    }
    v.props = read_pairs(r)?;
    let types = r.count(3)?;
    let mut prev: Option<&[u8]> = None;
    for _ in 0..types {
        let name = r.bytes()?;
        if prev.is_some_and(|p| p >= name) {
            return Err(Malformed);
        }
        prev = Some(name);
        let mut halves = 0;
        for dir in [Dir::Out, Dir::In] {
            let n = r.count(3)?;
            halves += n;
            for _ in 0..n {
                let other = r.bytes()?;
                let rank = r.i64()?;
                let props = read_pairs(r)?;
                let props = (!props.is_empty()).then(|| Box::new(props));
                let fresh = v.with_list(name, dir, |l| l.put_restored(other, rank, Some(props)));
                if !fresh {
                    return Err(Malformed);
                }
            }
        }
        if halves == 0 {
            return Err(Malformed);
        }
    }
    Ok(v)
}

/// The value COPY puts at the destination: the source's, except that a vertex keeps only
/// its label and properties (module doc).
fn copied(value: &Value) -> Value {
    match value {
        Value::Vertex(v) => {
            let mut copy = Vertex::default();
            copy.label = v.label.clone();
            copy.props = v.props.clone();
            Value::Vertex(Box::new(copy))
        }
        other => other.clone(),
    }
}

/// COPY: 1 if `dst` now holds a copy of `src` (with its TTL), 0 if `src` is absent or
/// `dst` exists and `replace` is false.
pub(crate) fn apply_copy(set: &mut WriteSet<'_>, src: &[u8], dst: &[u8], replace: bool, now: u64) -> Output {
    let entry = match set.table(src).get(src, now) {
        None => return Output::Int(0),
        Some(e) => Entry { value: copied(&e.value), expire_at: e.expire_at },
    };
    if !replace && set.table(dst).get(dst, now).is_some() {
        return Output::Int(0);
    }
    set.table(dst).put(dst, now, entry);
    Output::Int(1)
}

/// RESTORE: checks BUSYKEY, decodes the payload (a bad one changes nothing), then stores
/// the value with `expire_at` (0: no TTL). A deadline already passed only deletes what
/// `replace` would have replaced, as Redis does.
pub(crate) fn apply_restore(
    set: &mut WriteSet<'_>,
    key: &[u8],
    payload: &Bytes,
    expire_at: u64,
    replace: bool,
    now: u64,
) -> Output {
    if !replace && set.table(key).get(key, now).is_some() {
        return Output::Err(OpError::BusyKey);
    }
    let value = match decode(payload) {
        Ok(v) => v,
        Err(e) => return Output::Err(e.into()),
    };
    if expire_at != 0 && expire_at <= now {
        set.table(key).take(key, now);
    } else {
        set.table(key).put(key, now, Entry { value, expire_at });
    }
    Output::Ok
}
