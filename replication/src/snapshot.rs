//! The snapshot format of a shard group's keyspace, and the consistent copy it is built
//! from.
//!
//! Layout (integers big-endian):
//! ```text
//! magic "PRSMSNAP" | version u32
//! record*          : key_len u64 | key | expire_at u64 | value_len u64 | value
//! trailer          : record_count u64 | crc32c u32 of everything before it
//! ```
//! `value` is the engine's DUMP payload of the value ([`prism_engine::dump`]: versioned,
//! CRC-64 checksummed); restoring goes through `Op::Restore`, so a snapshot rebuilds
//! exactly what RESTORE would, with the engine's memory accounting.
//!
//! Invariants: decoding checks the magic, the version, every length against what is left,
//! the record count and the checksum, and never panics on bad bytes: a truncated or
//! corrupt snapshot is an error and installs nothing.

use bytes::Bytes;
use prism_engine::{dump, Entry, Keyspace, Op, Output, Slot, Write};

const MAGIC: &[u8; 8] = b"PRSMSNAP";
const VERSION: u32 = 1;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Why a snapshot could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Prism snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot version {0} is not supported (this build reads {VERSION})")]
    Version(u32),
    #[error("snapshot truncated at byte {0}")]
    Truncated(usize),
    #[error("snapshot checksum mismatch")]
    Checksum,
    #[error("snapshot holds {found} records, its trailer says {expected}")]
    Count { found: u64, expected: u64 },
    #[error("record {index} (key {key:?}): {reason}")]
    Value { index: u64, key: String, reason: String },
}

/// Every entry of a keyspace at one instant (see the state machine's header for how that
/// instant is made consistent).
#[derive(Debug, Default)]
pub struct KeyspaceCopy {
    entries: Vec<(Bytes, Entry)>,
}

impl KeyspaceCopy {
    /// Clones every entry, slot by slot, each under its slot's read lock. Expired entries
    /// not yet removed are kept: replicas hold them too, until a purge write removes them.
    pub fn take(keyspace: &Keyspace) -> KeyspaceCopy {
        let mut entries = Vec::with_capacity(keyspace.key_count() as usize);
        for slot in Slot::all() {
            let table = keyspace.slot(slot);
            entries.extend(
                (0..table.len())
                    .filter_map(|i| table.get_index(i))
                    .map(|(k, e)| (Bytes::copy_from_slice(k), e.clone())),
            );
        }
        KeyspaceCopy { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Serializes a copy.
pub fn encode(copy: &KeyspaceCopy) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + copy.entries.len() * 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    for (key, entry) in &copy.entries {
        put_bytes(&mut out, key);
        out.extend_from_slice(&entry.expire_at.to_be_bytes());
        put_bytes(&mut out, &dump::encode(&entry.value));
    }
    out.extend_from_slice(&(copy.entries.len() as u64).to_be_bytes());
    let crc = CRC.checksum(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a snapshot into a fresh keyspace. Keys and payloads are slices of `bytes`,
/// not copies.
pub fn decode(bytes: &Bytes) -> Result<Keyspace, SnapshotError> {
    let body_len = bytes.len().checked_sub(12).ok_or(SnapshotError::Truncated(bytes.len()))?;
    let trailer = &bytes[body_len..];
    let (count, crc) = trailer.split_at(8);
    let crc = u32::from_be_bytes(crc.try_into().map_err(|_| SnapshotError::Truncated(bytes.len()))?);
    if CRC.checksum(&bytes[..body_len + 8]) != crc {
        return Err(SnapshotError::Checksum);
    }
    let expected = u64::from_be_bytes(count.try_into().map_err(|_| SnapshotError::Truncated(bytes.len()))?);
    let mut r = Reader { buf: bytes.slice(..body_len), pos: 0 };
    if r.take(8)? != MAGIC[..] {
        return Err(SnapshotError::BadMagic);
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(SnapshotError::Version(version));
    }
    let keyspace = Keyspace::new();
    let mut found = 0u64;
    while r.pos < body_len {
        let key = r.bytes()?;
        let expire_at = r.u64()?;
        let value = r.bytes()?;
        restore(&keyspace, key.clone(), expire_at, value).map_err(|reason| SnapshotError::Value {
            index: found,
            key: String::from_utf8_lossy(&key).into_owned(),
            reason,
        })?;
        found += 1;
    }
    if found != expected {
        return Err(SnapshotError::Count { found, expected });
    }
    Ok(keyspace)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // u64: a large collection's payload may pass 4 GiB.
    out.extend_from_slice(&(b.len() as u64).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<Bytes, SnapshotError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(SnapshotError::Truncated(self.pos))?;
        let s = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    fn bytes(&mut self) -> Result<Bytes, SnapshotError> {
        // A length beyond what is left fails in `take` (no allocation is sized by it).
        let n = usize::try_from(self.u64()?).map_err(|_| SnapshotError::Truncated(self.pos))?;
        self.take(n)
    }
}

/// Restores one record through the write path: the value's DUMP payload goes in an
/// [`Op::Restore`] applied at time 0, so no deadline counts as passed and the entry keeps
/// its `expire_at` (expired-but-present entries stay present, as on the source).
fn restore(keyspace: &Keyspace, key: Bytes, expire_at: u64, payload: Bytes) -> Result<(), String> {
    let op = Op::Restore { key, payload, expire_at, replace: true };
    match keyspace.apply(&Write { now_ms: 0, op }) {
        Output::Err(e) => Err(e.to_string()),
        _ => Ok(()),
    }
}
