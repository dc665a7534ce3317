//! The last snapshot of a shard group on disk: what a restarted node loads before it
//! replays the log (openraft purges the log up to a snapshot once it is built, so the
//! snapshot must be durable by then).
//!
//! One file, `snapshot`, replaced atomically: written to `snapshot.tmp`, fsynced, renamed
//! over, and the directory fsynced. Layout (integers big-endian):
//! ```text
//! magic "PRSMSNPF" | meta_len u64 | meta (bincode SnapshotMeta) | crc32c(meta) u32 | data
//! ```
//! `data` is the snapshot as [`crate::snapshot`] encodes it, which checks itself.
//! Invariant: reading never panics on bad bytes; a damaged file is an error naming it.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"PRSMSNPF";
const FILE: &str = "snapshot";
const TMP: &str = "snapshot.tmp";
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot file {}: {why}", path.display()))
}

/// Durably replaces the snapshot in `dir` with `meta` and `data`.
pub fn save(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
    let meta_bytes = bincode::serialize(meta).map_err(io::Error::other)?;
    let tmp = dir.join(TMP);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&(meta_bytes.len() as u64).to_be_bytes())?;
        f.write_all(&meta_bytes)?;
        f.write_all(&CRC.checksum(&meta_bytes).to_be_bytes())?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(FILE))?;
    fs::File::open(dir)?.sync_all()
}

/// The snapshot in `dir`, if one was saved.
pub fn load(dir: &Path) -> io::Result<Option<(SnapshotMeta, Bytes)>> {
    let path: PathBuf = dir.join(FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => Bytes::from(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(invalid(&path, "bad header"));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..16]);
    let meta_end = usize::try_from(u64::from_be_bytes(len))
        .ok()
        .and_then(|n| n.checked_add(16))
        .filter(|&end| end.checked_add(4).is_some_and(|e| e <= bytes.len()))
        .ok_or_else(|| invalid(&path, "truncated"))?;
    let meta_bytes = &bytes[16..meta_end];
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[meta_end..meta_end + 4]);
    if CRC.checksum(meta_bytes) != u32::from_be_bytes(crc) {
        return Err(invalid(&path, "metadata checksum mismatch"));
    }
    let meta: SnapshotMeta = bincode::deserialize(meta_bytes).map_err(|e| invalid(&path, &e.to_string()))?;
    Ok(Some((meta, bytes.slice(meta_end + 4..))))
}
