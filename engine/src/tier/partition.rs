//! The round trip of one partition (a slot): spill it to an object's bytes, compact a
//! cold slot's object and delta into a new object's bytes, and restore an object's rows
//! into a keyspace.
//!
//! Invariants:
//! - [`spill_slot`] and [`compact_slot`] read the slot under its read lock for the whole
//!   encode, so the object is one consistent state of the slot (writes to that slot
//!   wait; other slots do not). Expired entries not yet purged are kept, as a snapshot
//!   keeps them: replicas hold them until a purge write removes them (a compaction drops
//!   an expired delta entry with the row it hides). Nothing in memory is dropped here:
//!   that is the replicated manifest's apply (`keyspace/tiering.rs`).
//! - [`load_into`] restores all rows or none: the object is decoded and every row
//!   validated ([`format::decode`], then a full DUMP decode of each) before the first
//!   restore is applied. Rows go through
//!   `Op::Restore` at time 0 (as a snapshot install does), so the engine's own validation
//!   and memory accounting apply and a deadline in the past is kept, not judged.

use bytes::Bytes;

use super::format::{self, EncodedPartition, FormatError, PartitionEncoder};
use crate::keyspace::Keyspace;
use crate::op::{Op, Output, Write};
use crate::slot::Slot;

/// What a spill produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpillStats {
    pub slot: Slot,
    pub rows: u64,
    /// Sum of the DUMP payloads.
    pub payload_bytes: u64,
    /// Size of the object.
    pub object_bytes: u64,
    pub crc32c: u32,
}

/// Encodes every entry of `slot` into an object (consistent: under the slot's read lock).
pub fn spill_slot(keyspace: &Keyspace, slot: Slot) -> Result<(EncodedPartition, SpillStats), FormatError> {
    let mut enc = PartitionEncoder::new(slot);
    {
        let table = keyspace.slot(slot);
        for i in 0..table.len() {
            if let Some((key, entry)) = table.get_index(i) {
                enc.push(key, entry)?;
            }
        }
    }
    finish(enc, slot)
}

/// Encodes cold `slot`'s delta merged over `base`, the decoded object the manifest names
/// for it, into one new object (a compaction; consistent: under the slot's read lock).
/// A delta entry replaces the object's row for its key; one expired at `now_ms` removes
/// it (the key is gone, as a purge would remove it). Object rows the delta does not
/// decide are copied with their deadlines, expired or not, as a spill keeps them.
pub fn compact_slot(
    keyspace: &Keyspace,
    slot: Slot,
    base: &format::Partition,
    now_ms: u64,
) -> Result<(EncodedPartition, SpillStats), FormatError> {
    let mut enc = PartitionEncoder::new(slot);
    {
        let table = keyspace.slot(slot);
        for i in 0..table.len() {
            if let Some((key, entry)) = table.get_index(i).filter(|(_, e)| !e.is_expired(now_ms)) {
                enc.push(key, entry)?;
            }
        }
        for (index, row) in base.rows.iter().enumerate() {
            if table.holds(&row.key) {
                continue;
            }
            let value = crate::dump::decode(&row.payload)
                .map_err(|e| FormatError::Row { index: index as u64, reason: format!("value: {e}") })?;
            enc.push(&row.key, &crate::keyspace::Entry { value, expire_at: row.expire_at })?;
        }
    }
    finish(enc, slot)
}

fn finish(enc: PartitionEncoder, slot: Slot) -> Result<(EncodedPartition, SpillStats), FormatError> {
    let obj = enc.finish()?;
    let stats = SpillStats {
        slot,
        rows: obj.rows,
        payload_bytes: obj.payload_bytes,
        object_bytes: obj.bytes.len() as u64,
        crc32c: obj.crc32c,
    };
    Ok((obj, stats))
}

/// Somewhere rows can be restored: a keyspace, or (later) a state machine that proposes
/// restores through its log.
pub trait RestoreTarget {
    /// Restores one validated row, replacing any value under `key`.
    fn restore(&self, key: Bytes, expire_at: u64, payload: Bytes) -> Result<(), String>;
}

impl RestoreTarget for Keyspace {
    fn restore(&self, key: Bytes, expire_at: u64, payload: Bytes) -> Result<(), String> {
        let op = Op::Restore { key, payload, expire_at, replace: true };
        match self.apply(&Write { now_ms: 0, op }) {
            Output::Err(e) => Err(e.to_string()),
            _ => Ok(()),
        }
    }
}

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The engine refused a row that passed validation: a bug, reported with the key.
    #[error("restoring key {key:?}: {reason}")]
    Restore { key: String, reason: String },
}

/// Restores every row of an object into `target` and returns the partition's slot and row
/// count. `bytes` must already be verified against the object's checksum (as
/// [`ColdStore::get`](super::ColdStore::get) returns them); everything inside is checked
/// here before anything is restored.
pub fn load_into(target: &impl RestoreTarget, bytes: Bytes) -> Result<(Slot, u64), LoadError> {
    let partition = format::decode(bytes)?;
    let rows = partition.rows.len() as u64;
    // `format::decode` does not build collections (its header); restores are one per
    // row, so every body is decoded here first, or a bad row would leave the ones before
    // it restored. (Decoded twice: this path serves tests and tools; a node loads through
    // `TierOp::Loaded`, which decodes once.)
    for (index, row) in partition.rows.iter().enumerate() {
        crate::dump::decode(&row.payload)
            .map_err(|e| FormatError::Row { index: index as u64, reason: format!("value: {e}") })?;
    }
    for row in partition.rows {
        let key = row.key.clone();
        target
            .restore(row.key, row.expire_at, row.payload)
            .map_err(|reason| LoadError::Restore { key: String::from_utf8_lossy(&key).into_owned(), reason })?;
    }
    Ok((partition.slot, rows))
}
