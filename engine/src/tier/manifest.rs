//! The replicated manifest of cold partitions: which slots live in object storage, under
//! which object, and how many rows and bytes they hold. Changed only by [`TierOp`]s
//! applied through the keyspace's write path (`keyspace/tiering.rs`), so every member of a
//! shard group that applied the same log names the same objects; carried by snapshots
//! ([`ManifestImage`]).
//!
//! Invariants:
//! - A slot is cold exactly when the manifest has an entry for it. Its in-memory table
//!   is then its *delta*: only keys written whole since the spill (plain SET, SETEX,
//!   PSETEX, MSET: `Op::overwrites_blindly`), each entry the key's current value,
//!   an expired one included (it hides the object's row for that key: active expiry
//!   skips cold slots). A key the delta holds is decided by the delta; any other key of
//!   the slot by the object. A load merges them (the delta wins) and a compaction
//!   ([`TierOp::Compacted`]) writes them as one new object and empties the delta. Entry
//!   and table change together under the slot's write lock.
//! - Each slot has a generation ([`Manifest::generation`]): odd while cold, bumped on
//!   every transition (twice by a compaction, which empties the delta). A reader that
//!   sees the same transition count before and after reading a slot's table read data
//!   that no spill, load or compaction replaced meanwhile; that check is the whole
//!   hot-path cost of tiering (one relaxed atomic load each side).
//! - Apply never touches the object store (invariant 2): an entry is recorded only after
//!   the leader stored the object (invariant 3), and a load's rows travel in the log.
//! - Last-access ticks ([`Manifest::touch`]) are local, not replicated: they only choose
//!   which slot the spiller encodes next. So is [`Manifest::loaded_from`]: the object a
//!   hot slot was last loaded from, which a spill may name again instead of writing a
//!   new one while the slot is unchanged (the caller checks the version and row count).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::slot::SLOT_COUNT;

/// One cold slot's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdEntry {
    /// The object's key in the cold store (its name carries length and CRC-32C).
    pub object: String,
    pub crc32c: u32,
    /// Entries in the object.
    pub rows: u64,
    /// The object's size.
    pub bytes: u64,
}

/// A change to the manifest, proposed through the shard's log by the node that stored or
/// fetched the object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TierOp {
    /// `slot` was encoded into `object` at write version `slot_version`: if the slot is
    /// still at that version (no write landed since the encode), its entries are dropped
    /// from memory and the manifest records it cold; otherwise nothing happens
    /// (-> `Int(1)` applied, `Int(0)` not).
    Spilled { slot: u16, object: String, crc32c: u32, rows: u64, bytes: u64, slot_version: u64 },
    /// The rows of cold `slot`'s `object`, fetched and verified by the proposer: restored
    /// (all of them, validated before any applies) and the entry cleared, only if the
    /// manifest still names `object` for the slot (-> `Int(1)`; `Int(0)` when stale).
    /// Rows are `(key, deadline or 0, DUMP payload)`.
    Loaded { slot: u16, object: String, rows: Vec<(Bytes, u64, Bytes)> },
    /// Cold `slot`'s object `base` merged with its delta at write version `slot_version`
    /// into `object`: if the slot is still cold on `base` at that version, the manifest
    /// names `object` instead and the delta is dropped from memory; otherwise nothing
    /// happens (-> `Int(1)` / `Int(0)`, as `Spilled`).
    Compacted { slot: u16, base: String, object: String, crc32c: u32, rows: u64, bytes: u64, slot_version: u64 },
}

/// Where a hot slot's rows came from: the entry it had while cold, its write version
/// when the load applied (loads do not change it), and when that was on this member.
#[derive(Debug, Clone)]
pub struct LoadedFrom {
    pub entry: ColdEntry,
    pub slot_version: u64,
    pub at: Instant,
}

/// The manifest in a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestImage {
    /// Slot -> entry, ascending.
    pub cold: Vec<(u16, ColdEntry)>,
}

/// The manifest (module header).
pub struct Manifest {
    entries: Mutex<BTreeMap<u16, ColdEntry>>,
    generation: Box<[AtomicU64]>,
    touched: Box<[AtomicU32]>,
    /// Hot slots loaded on this member, and from what (module header).
    loaded_from: Mutex<HashMap<u16, LoadedFrom>>,
    /// Totals over `entries` (kept beside them for INFO and DBSIZE without the lock).
    rows: AtomicU64,
    bytes: AtomicU64,
    count: AtomicU64,
    /// Bumped on every transition of any slot (a reader's cheap "did anything move").
    transitions: AtomicU64,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            entries: Mutex::default(),
            generation: (0..SLOT_COUNT).map(|_| AtomicU64::new(0)).collect(),
            touched: (0..SLOT_COUNT).map(|_| AtomicU32::new(0)).collect(),
            loaded_from: Mutex::default(),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            count: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest").field("cold", &self.count.load(Ordering::Relaxed)).finish()
    }
}

impl Manifest {
    /// The slot's generation: odd while cold (module invariants). Out of range: 0.
    #[inline]
    pub fn generation(&self, slot: u16) -> u64 {
        self.generation.get(slot as usize).map_or(0, |g| g.load(Ordering::Acquire))
    }

    #[inline]
    pub fn is_cold(&self, slot: u16) -> bool {
        self.generation(slot) & 1 == 1
    }

    /// How many transitions (spills, loads) any slot made so far: a request that sees
    /// the same number before and after it read saw no slot change tier meanwhile.
    #[inline]
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Acquire)
    }

    /// Records an access to `slot` at `tick` (a relaxed store; ticks only order slots).
    #[inline]
    pub fn touch(&self, slot: u16, tick: u32) {
        // Stored only when it changed: a hot slot's line stays shared between cores.
        if let Some(t) = self.touched.get(slot as usize).filter(|t| t.load(Ordering::Relaxed) != tick) {
            t.store(tick, Ordering::Relaxed);
        }
    }

    /// The slot's last-access tick.
    pub fn touched(&self, slot: u16) -> u32 {
        self.touched.get(slot as usize).map_or(0, |t| t.load(Ordering::Relaxed))
    }

    /// What hot `slot` was last loaded from on this member (module header).
    pub fn loaded_from(&self, slot: u16) -> Option<LoadedFrom> {
        self.loaded_from.lock().get(&slot).cloned()
    }

    /// Records that `slot` was just loaded from `entry` at `slot_version`.
    pub(crate) fn set_loaded_from(&self, slot: u16, entry: ColdEntry, slot_version: u64) {
        self.loaded_from.lock().insert(slot, LoadedFrom { entry, slot_version, at: Instant::now() });
    }

    /// The entry of a cold slot.
    pub fn entry(&self, slot: u16) -> Option<ColdEntry> {
        self.entries.lock().get(&slot).cloned()
    }

    /// `(cold partitions, cold rows, cold object bytes)`.
    pub fn totals(&self) -> (u64, u64, u64) {
        (self.count.load(Ordering::Relaxed), self.rows.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }

    /// The cold slots, ascending.
    pub fn cold_slots(&self) -> Vec<u16> {
        self.entries.lock().keys().copied().collect()
    }

    pub fn image(&self) -> ManifestImage {
        ManifestImage { cold: self.entries.lock().iter().map(|(s, e)| (*s, e.clone())).collect() }
    }

    /// Records `slot` cold (the caller holds its write lock and empties its table).
    pub(crate) fn set_cold(&self, slot: u16, entry: ColdEntry) {
        self.loaded_from.lock().remove(&slot);
        let mut entries = self.entries.lock();
        self.add(&entry, 1);
        if let Some(old) = entries.insert(slot, entry) {
            self.add(&old, -1);
        } else {
            self.generation[slot as usize].fetch_add(1, Ordering::AcqRel);
            self.transitions.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Replaces cold `slot`'s entry after a compaction (the caller holds its write lock
    /// and empties the delta): a transition for readers, the generation staying odd.
    pub(crate) fn set_compacted(&self, slot: u16, entry: ColdEntry) {
        self.loaded_from.lock().remove(&slot);
        let mut entries = self.entries.lock();
        self.add(&entry, 1);
        // Two steps keep it odd; one if the slot was not cold (the caller checks it was).
        let step = match entries.insert(slot, entry) {
            Some(old) => {
                self.add(&old, -1);
                2
            }
            None => 1,
        };
        self.generation[slot as usize].fetch_add(step, Ordering::AcqRel);
        self.transitions.fetch_add(1, Ordering::AcqRel);
    }

    /// Clears `slot`'s entry, if any (the caller holds its write lock).
    pub(crate) fn set_hot(&self, slot: u16) -> Option<ColdEntry> {
        let old = self.entries.lock().remove(&slot)?;
        self.add(&old, -1);
        self.generation[slot as usize].fetch_add(1, Ordering::AcqRel);
        self.transitions.fetch_add(1, Ordering::AcqRel);
        Some(old)
    }

    fn add(&self, e: &ColdEntry, sign: i64) {
        let op = |a: &AtomicU64, v: u64| {
            if sign > 0 {
                a.fetch_add(v, Ordering::Relaxed);
            } else {
                a.fetch_sub(v, Ordering::Relaxed);
            }
        };
        op(&self.rows, e.rows);
        op(&self.bytes, e.bytes);
        op(&self.count, 1);
    }

    /// Replaces every entry (installing a snapshot; the caller replaced the tables too).
    /// Entries of slots out of range are ignored.
    pub fn install(&self, image: &ManifestImage) {
        for slot in self.cold_slots() {
            self.set_hot(slot);
        }
        self.loaded_from.lock().clear();
        for (slot, e) in image.cold.iter().filter(|(s, _)| (*s as usize) < SLOT_COUNT) {
            self.set_cold(*slot, e.clone());
        }
    }
}
