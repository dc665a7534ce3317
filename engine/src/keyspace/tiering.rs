//! Applying [`TierOp`]s: dropping a spilled slot's entries, restoring a loaded one's
//! (merged under its delta), and swapping a compacted slot's object for its delta, each
//! under the slot's write lock together with the manifest change (`tier::manifest`).
//!
//! Invariants:
//! - No tier op bumps the slot's write version: the slot's contents as clients see them
//!   do not change (the rows move between memory and an object), so a WATCH or a version
//!   guard stays valid across them. `Spilled` compares against that version, so a write
//!   that landed after the encode makes it a no-op; so does `Compacted`, which also
//!   requires the slot to be still cold on the object it merged.
//! - `Loaded` validates every row (slot and payload) before the first is restored: a bad
//!   row refuses the whole op and changes nothing.
//! - A snapshot in progress is given the slot before it changes (as every write does).
//! - Only an owned slot that is not migrating or importing spills, and a cold slot may
//!   not start migrating (`Keyspace::run` refuses `ShardOp::Migrate` with
//!   `OpError::Cold`): a slot's keys leave it through its table, so a moving slot stays
//!   hot until the move ends.

use std::sync::atomic::Ordering;

use super::{Entry, Keyspace};
use crate::compact::CompactBytes;
use crate::op::{OpError, Output};
use crate::slot::{Slot, SLOT_COUNT};
use crate::tier::manifest::{ColdEntry, TierOp};

impl Keyspace {
    /// Applies one manifest op (module header). Deterministic.
    pub(super) fn apply_tier(&self, op: &TierOp) -> Output {
        match op {
            TierOp::Spilled { slot, object, crc32c, rows, bytes, slot_version } => {
                let entry = ColdEntry { object: object.clone(), crc32c: *crc32c, rows: *rows, bytes: *bytes };
                // The count check is defence in depth: an equal version means an equal table.
                self.to_object(*slot, entry, *slot_version, false, |table| {
                    !self.tier.is_cold(*slot) && table.len() as u64 == *rows
                })
            }
            TierOp::Loaded { slot, object, rows } => {
                let s = *slot as usize;
                if s >= SLOT_COUNT || self.tier.entry(*slot).is_none_or(|e| e.object != *object) {
                    return Output::Int(0);
                }
                // Every row decoded (the one full decode of a load: `format::decode` only
                // inspected the payloads) before the table is touched: a bad row refuses
                // the whole op. The CRC-64 of each payload is checked again here (SIMD,
                // a few ms per 100 MB): the rows came through the log, and a member must
                // not store a value whose bytes it has not verified.
                let mut decoded = Vec::with_capacity(rows.len());
                for (key, expire_at, payload) in rows {
                    if Slot::of_key(key).get() != *slot {
                        return Output::Err(OpError::BadDataFormat);
                    }
                    match crate::dump::decode(payload) {
                        Ok(value) => decoded.push((CompactBytes::new(key), Entry { value, expire_at: *expire_at })),
                        Err(e) => return Output::Err(e.into()),
                    }
                }
                let mut table = self.table(*slot).write();
                // Rechecked under the lock: a FLUSHALL may have run since.
                if self.tier.entry(*slot).is_none_or(|e| e.object != *object) {
                    return Output::Int(0);
                }
                if let Some(snap) = self.snapshotting.current() {
                    snap.preserve(*slot, &table);
                }
                // A cold slot's table is its delta (manifest invariant): its entries win
                // over the object's rows. One allocation for the whole slot.
                let had_delta = !table.is_empty();
                table.put_loaded(decoded.into_iter());
                if let Some(entry) = self.tier.set_hot(*slot) {
                    // Only a slot that is exactly its object may be spilled again by
                    // naming that object (`Manifest::loaded_from`).
                    if !had_delta {
                        self.tier.set_loaded_from(*slot, entry, self.versions[s].load(Ordering::Relaxed));
                    }
                }
                self.sync(&mut table);
                Output::Int(1)
            }
            TierOp::Compacted { slot, base, object, crc32c, rows, bytes, slot_version } => {
                let entry = ColdEntry { object: object.clone(), crc32c: *crc32c, rows: *rows, bytes: *bytes };
                self.to_object(*slot, entry, *slot_version, true, |_| {
                    self.tier.entry(*slot).is_some_and(|e| e.object == *base)
                })
            }
        }
    }

    /// `Spilled` and `Compacted`: under the slot's write lock, if the shard owns the slot
    /// (and is not moving it: a migration moves keys out of the table, which a cold slot
    /// does not hold), it is still at `slot_version` and `ready` holds, the table (the
    /// slot's rows, or a cold slot's delta) leaves memory and the manifest names `entry`
    /// (-> `Int(1)`); otherwise nothing changes (-> `Int(0)`).
    fn to_object(
        &self,
        slot: u16,
        entry: ColdEntry,
        slot_version: u64,
        compacted: bool,
        ready: impl FnOnce(&super::SlotTable) -> bool,
    ) -> Output {
        let s = slot as usize;
        if s >= SLOT_COUNT {
            return Output::Int(0);
        }
        let mut table = self.table(slot).write();
        let current = self.versions[s].load(Ordering::Relaxed);
        let owned = self.meta.serving(slot) == crate::shard_meta::Serving::Owned;
        if !owned || current != slot_version || !ready(&table) {
            return Output::Int(0);
        }
        if let Some(snap) = self.snapshotting.current() {
            snap.preserve(slot, &table);
        }
        if compacted {
            self.tier.set_compacted(slot, entry);
        } else {
            self.tier.set_cold(slot, entry);
        }
        table.clear();
        self.sync(&mut table);
        Output::Int(1)
    }
}
