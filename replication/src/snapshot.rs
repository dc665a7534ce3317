//! The snapshot format of a shard group's keyspace, and the consistent copy it is built
//! from.
//!
//! Layout (integers big-endian):
//! ```text
//! magic "PRSMSNAP" | version u32 (4)
//! versions         : count u32 | (slot u16 | version u64)*count    (v2 on)
//! shard metadata   : len u32 | bincode of ShardMetaImage            (v3 on)
//! cold manifest    : len u32 | bincode of ManifestImage             (v4)
//! record*          : key_len u64 | key | expire_at u64 | value_len u64 | value
//! trailer          : record_count u64 | crc32c u32 of everything before it
//! ```
//! `value` is the engine's DUMP payload of the value ([`prism_engine::dump`]: versioned,
//! CRC-64 checksummed); restoring goes through `Op::Restore`, so a snapshot rebuilds
//! exactly what RESTORE would, with the engine's memory accounting. `versions` lists the
//! slots whose write version ([`Keyspace::slot_version`]) is not 0, in ascending order;
//! the decoded keyspace gets exactly those versions (the restores' own counts are
//! overwritten), so a member that installed a snapshot agrees with one that replayed the
//! log. The shard metadata ([`prism_engine::shard_meta`]: slot claims) is the one at the
//! same instant, and so is the cold-tier manifest ([`prism_engine::tier::manifest`]: the
//! cold slots' objects; their records here are their deltas). Versions 1 (no versions
//! block: every version 0), 2 (no metadata: no claims) and 3 (no manifest: nothing
//! cold) still decode.
//!
//! Invariants: decoding checks the magic, the version, every length against what is left,
//! the record count and the checksum, and never panics on bad bytes: a truncated or
//! corrupt snapshot is an error and installs nothing.

use bincode::Options as _;
use bytes::Bytes;
use prism_engine::keyspace::SnapshotImage;
use prism_engine::shard_meta::ShardMetaImage;
use prism_engine::tier::manifest::ManifestImage;
use prism_engine::{dump, Keyspace, Op, Output, Write, SLOT_COUNT};

const MAGIC: &[u8; 8] = b"PRSMSNAP";
const VERSION: u32 = 4;
/// Still decoded: no manifest block.
const VERSION_3: u32 = 3;
/// Still decoded: no metadata block.
const VERSION_2: u32 = 2;
/// Still decoded: no versions block.
const VERSION_1: u32 = 1;
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
    #[error("snapshot slot versions are malformed")]
    Versions,
    #[error("snapshot shard metadata is malformed: {0}")]
    Meta(String),
    #[error("snapshot holds {found} records, its trailer says {expected}")]
    Count { found: u64, expected: u64 },
    #[error("record {index} (key {key:?}): {reason}")]
    Value { index: u64, key: String, reason: String },
}

/// Every entry of a keyspace at one instant, with the slot versions then: the engine's
/// copy-on-write [`SnapshotImage`] (see the state machine's header for how the instant is
/// chosen). Expired entries not yet removed are kept: replicas hold them too, until a
/// purge write removes them.
#[derive(Debug, Default)]
pub struct KeyspaceCopy {
    image: SnapshotImage,
}

impl KeyspaceCopy {
    /// A full copy now, synchronously (a live state machine copies in the background:
    /// [`Keyspace::begin_snapshot`]).
    pub fn take(keyspace: &Keyspace) -> KeyspaceCopy {
        KeyspaceCopy { image: keyspace.snapshot_now() }
    }

    /// The copy of a finished copy-on-write snapshot.
    pub fn from_image(image: SnapshotImage) -> KeyspaceCopy {
        KeyspaceCopy { image }
    }

    pub fn len(&self) -> usize {
        self.image.len()
    }

    pub fn is_empty(&self) -> bool {
        self.image.is_empty()
    }

    /// Slots a write copied before the background copy reached them.
    pub fn copied_by_writers(&self) -> usize {
        self.image.copied_by_writers
    }
}

/// Serializes a copy.
pub fn encode(copy: &KeyspaceCopy) -> Vec<u8> {
    let count = copy.len();
    let mut out = Vec::with_capacity(16 + count * 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    let versions: Vec<(u16, u64)> =
        copy.image.versions.iter().enumerate().filter(|(_, v)| **v != 0).map(|(s, v)| (s as u16, *v)).collect();
    out.extend_from_slice(&(versions.len() as u32).to_be_bytes());
    for (slot, v) in versions {
        out.extend_from_slice(&slot.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
    // Serializing plain data into a Vec cannot fail; an empty block would still decode.
    let meta = bincode::serialize(&copy.image.meta).unwrap_or_default();
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    let tier = bincode::serialize(&copy.image.tier).unwrap_or_default();
    out.extend_from_slice(&(tier.len() as u32).to_be_bytes());
    out.extend_from_slice(&tier);
    for (key, entry) in copy.image.entries() {
        put_bytes(&mut out, key);
        out.extend_from_slice(&entry.expire_at.to_be_bytes());
        put_bytes(&mut out, &dump::encode(&entry.value));
    }
    out.extend_from_slice(&(count as u64).to_be_bytes());
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
    let (versions, meta, tier) = match version {
        VERSION => (r.versions()?, r.block::<ShardMetaImage>()?, r.block::<ManifestImage>()?),
        VERSION_3 => (r.versions()?, r.block::<ShardMetaImage>()?, ManifestImage::default()),
        VERSION_2 => (r.versions()?, ShardMetaImage::default(), ManifestImage::default()),
        VERSION_1 => (Vec::new(), ShardMetaImage::default(), ManifestImage::default()),
        _ => return Err(SnapshotError::Version(version)),
    };
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
    keyspace.set_slot_versions(&versions);
    keyspace.meta.install(&meta);
    keyspace.tier.install(&tier);
    Ok(keyspace)
}

/// The cold manifest of a snapshot, read from its header without decoding the records
/// (the cold-object GC's view of what a snapshot references). The snapshot's checksum
/// is checked as [`decode`] does: a corrupt snapshot is an error, never a partial list.
pub fn cold_manifest(bytes: &Bytes) -> Result<ManifestImage, SnapshotError> {
    let body_len = bytes.len().checked_sub(12).ok_or(SnapshotError::Truncated(bytes.len()))?;
    let crc = u32::from_be_bytes(bytes[body_len + 8..].try_into().map_err(|_| SnapshotError::Truncated(bytes.len()))?);
    if CRC.checksum(&bytes[..body_len + 8]) != crc {
        return Err(SnapshotError::Checksum);
    }
    let mut r = Reader { buf: bytes.slice(..body_len), pos: 0 };
    if r.take(8)? != MAGIC[..] {
        return Err(SnapshotError::BadMagic);
    }
    match r.u32()? {
        VERSION => {
            r.versions()?;
            r.block::<ShardMetaImage>()?;
            r.block::<ManifestImage>()
        }
        VERSION_1 | VERSION_2 | VERSION_3 => Ok(ManifestImage::default()),
        version => Err(SnapshotError::Version(version)),
    }
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

    fn u16(&mut self) -> Result<u16, SnapshotError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The versions block: every slot's version (0 where not listed). Slots must be in
    /// range and strictly ascending, so the block is at most SLOT_COUNT pairs.
    fn versions(&mut self) -> Result<Vec<u64>, SnapshotError> {
        let n = self.u32()? as usize;
        if n > SLOT_COUNT {
            return Err(SnapshotError::Versions);
        }
        let mut versions = vec![0u64; SLOT_COUNT];
        let mut next = 0usize;
        for _ in 0..n {
            let slot = self.u16()? as usize;
            if slot < next || slot >= SLOT_COUNT {
                return Err(SnapshotError::Versions);
            }
            versions[slot] = self.u64()?;
            next = slot + 1;
        }
        Ok(versions)
    }

    /// A bincode block: the shard metadata, the cold manifest.
    fn block<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, SnapshotError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .allow_trailing_bytes()
            .with_limit(len as u64)
            .deserialize(&bytes)
            .map_err(|e| SnapshotError::Meta(e.to_string()))
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
