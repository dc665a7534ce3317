//! Copy-on-write snapshots of the keyspace: a consistent copy of every slot table, taken
//! while writes go on.
//!
//! How: [`Keyspace::begin_snapshot`] copies nothing. It records the slot versions and
//! registers a [`SnapshotInProgress`] on the keyspace. From then on, a write copies each
//! slot it locks that the snapshot has not copied yet, before it changes anything there
//! ([`SnapshotInProgress::preserve`], called by the keyspace right after it takes a slot's
//! write lock: the same choke point that counts slot versions). Meanwhile a background
//! thread calls [`SnapshotInProgress::copy_rest`], which copies the remaining slots one by
//! one under each slot's read lock. A write therefore pays for at most the slots it locks
//! (one slot is ~1/16384 of the data), once per snapshot.
//!
//! Invariants:
//! - No write runs while `begin_snapshot` records the instant (the slot versions, the
//!   shard metadata and the tier manifest) and registers the snapshot: it closes the
//!   keyspace's [`WriteGate`], which every outermost write has entered from before it
//!   reads [`Snapshotting::current`] until it released its slot locks. So the instant
//!   falls between two writes whoever calls it: a Raft state machine between two
//!   applies, or `BACKUP SAVE` on a connection while the shard applies writes.
//! - Each slot is copied exactly once: its "copied" flag is claimed (`swap`) only while
//!   that slot's lock is held, read or write, so the table is the untouched state at the
//!   snapshot's instant when it is copied, and no write to the slot can run until the copy
//!   is stored.
//! - `copy_rest` visits every slot under its read lock, so by the time it returns every
//!   copy made by a writer is stored too (the writer held the write lock while storing).
//! - A keyspace has at most one snapshot registered; starting another first completes the
//!   earlier one (its copier may still be running; both claim through the same flags).
//! - Without a snapshot, the write path costs one atomic load.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{Entry, Keyspace, SlotRead, SlotTable};
use crate::slot::SLOT_COUNT;

/// Lets writes run together and a snapshot's start exclude them all: a read lock per
/// write, on a stripe of its thread's own (a cache line no other writing thread shares,
/// so writers on several cores do not contend), and every stripe's write lock, in
/// order, to close it.
pub(crate) struct WriteGate {
    stripes: Box<[Stripe]>,
}

/// One stripe, alone on its cache line(s).
#[repr(align(128))]
#[derive(Default)]
struct Stripe(RwLock<()>);

/// More stripes than a node has writing threads, so each usually has its own.
const STRIPES: usize = 32;

impl Default for WriteGate {
    fn default() -> Self {
        WriteGate { stripes: (0..STRIPES).map(|_| Stripe::default()).collect() }
    }
}

impl WriteGate {
    /// Entered for one write; waits while the gate is closed.
    #[inline]
    pub(crate) fn enter(&self) -> RwLockReadGuard<'_, ()> {
        self.stripes[this_threads_stripe()].0.read()
    }

    /// Closed: every write that entered has left, and none enters until this is dropped.
    fn close(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.stripes.iter().map(|s| s.0.write()).collect()
    }
}

fn this_threads_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// The entries of one slot as a snapshot copied them.
pub type SlotCopy = Vec<(Bytes, Entry)>;

/// A snapshot being copied.
pub struct SnapshotInProgress {
    versions: Vec<u64>,
    meta: crate::shard_meta::ShardMetaImage,
    tier: crate::tier::manifest::ManifestImage,
    copied: Box<[AtomicBool]>,
    /// Copies made so far, in no particular order (writers and the copier both push).
    done: Mutex<Vec<(u16, SlotCopy)>>,
    /// Slots copied by writers before the copier reached them (for tests and metrics).
    by_writers: AtomicUsize,
}

/// A finished snapshot: every slot's entries at the snapshot's instant, and the slot
/// versions then.
#[derive(Debug, Default)]
pub struct SnapshotImage {
    /// One copy per slot, in slot order (slot `i` at index `i`), or empty for an image
    /// made by hand.
    pub slots: Vec<SlotCopy>,
    /// [`Keyspace::slot_versions`] at the snapshot's instant (empty for an image made by
    /// hand: all zero).
    pub versions: Vec<u64>,
    /// The shard's metadata ([`crate::shard_meta`]) at the snapshot's instant.
    pub meta: crate::shard_meta::ShardMetaImage,
    /// The cold-tier manifest at the snapshot's instant (its slots' tables hold their deltas).
    pub tier: crate::tier::manifest::ManifestImage,
    /// How many slots were copied by a write before the background copy reached them.
    pub copied_by_writers: usize,
}

impl SnapshotImage {
    /// Every entry, slot by slot. Expired entries not yet removed are included: replicas
    /// hold them too, until a purge write removes them.
    pub fn entries(&self) -> impl Iterator<Item = &(Bytes, Entry)> {
        self.slots.iter().flatten()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Vec::is_empty)
    }
}

/// The keyspace's registration of the snapshot in progress.
#[derive(Default)]
pub(crate) struct Snapshotting {
    /// Mirrors `current.is_some()`: the one load a write makes when no snapshot runs.
    active: AtomicBool,
    current: Mutex<Option<Arc<SnapshotInProgress>>>,
}

impl Snapshotting {
    /// The snapshot a write must preserve slots for, if one is in progress.
    #[inline]
    pub(crate) fn current(&self) -> Option<Arc<SnapshotInProgress>> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        self.current.lock().clone()
    }

    fn register(&self, snap: Arc<SnapshotInProgress>) {
        *self.current.lock() = Some(snap);
        self.active.store(true, Ordering::Release);
    }

    fn unregister(&self, snap: &Arc<SnapshotInProgress>) {
        let mut cur = self.current.lock();
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, snap)) {
            *cur = None;
            self.active.store(false, Ordering::Release);
        }
    }
}

fn copy_table(t: &SlotTable) -> SlotCopy {
    (0..t.len()).filter_map(|i| t.get_index(i)).map(|(k, e)| (Bytes::copy_from_slice(k), e.clone())).collect()
}

impl SnapshotInProgress {
    /// Called with `slot`'s table locked for writing, before the write changes it: copies
    /// the table if this snapshot has not yet.
    #[inline]
    pub(crate) fn preserve(&self, slot: u16, table: &SlotTable) {
        let flag = &self.copied[slot as usize];
        if flag.load(Ordering::Acquire) || flag.swap(true, Ordering::AcqRel) {
            return;
        }
        let copy = copy_table(table);
        self.done.lock().push((slot, copy));
        self.by_writers.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies every slot not copied yet, each under its read lock, and unregisters the
    /// snapshot from `keyspace`. Blocking (O(data)): run it off the async runtime.
    pub fn copy_rest(self: &Arc<Self>, keyspace: &Keyspace) -> SnapshotImage {
        self.copy_remaining(keyspace);
        keyspace.snapshotting.unregister(self);
        let mut done = std::mem::take(&mut *self.done.lock());
        done.sort_unstable_by_key(|(s, _)| *s);
        // Each slot was claimed once (module invariants), so `done` holds slots 0..16384.
        debug_assert!(done.len() == SLOT_COUNT && done.iter().enumerate().all(|(i, (s, _))| *s as usize == i));
        SnapshotImage {
            slots: done.into_iter().map(|(_, c)| c).collect(),
            versions: self.versions.clone(),
            meta: self.meta.clone(),
            tier: self.tier.clone(),
            copied_by_writers: self.by_writers.load(Ordering::Relaxed),
        }
    }

    fn copy_remaining(&self, keyspace: &Keyspace) {
        for slot in 0..SLOT_COUNT as u16 {
            // The read lock is taken even for a slot already claimed: it waits for a
            // writer that claimed it to store its copy.
            let table = SlotRead::of(keyspace, slot);
            if !self.copied[slot as usize].swap(true, Ordering::AcqRel) {
                let copy = copy_table(&table);
                drop(table);
                self.done.lock().push((slot, copy));
            }
        }
    }
}

impl Keyspace {
    /// Starts a copy-on-write snapshot of the current state and returns it; finish it with
    /// [`SnapshotInProgress::copy_rest`] (typically on a background thread) while writes go
    /// on. Safe to call while other threads write: it waits for the writes in flight and
    /// holds new ones back while it records the instant (0.1-1 ms, docs/benchmarks.md;
    /// module invariants). A snapshot still in progress is completed first.
    pub fn begin_snapshot(&self) -> Arc<SnapshotInProgress> {
        if let Some(earlier) = self.snapshotting.current() {
            earlier.copy_remaining(self);
        }
        let _instant = self.writes.close();
        // Another thread began one meanwhile (rare): it is completed too, writes waiting.
        if let Some(earlier) = self.snapshotting.current() {
            earlier.copy_remaining(self);
        }
        let snap = Arc::new(SnapshotInProgress {
            versions: self.slot_versions(),
            meta: self.meta.image(),
            tier: self.tier.image(),
            copied: (0..SLOT_COUNT).map(|_| AtomicBool::new(false)).collect(),
            done: Mutex::new(Vec::with_capacity(SLOT_COUNT)),
            by_writers: AtomicUsize::new(0),
        });
        self.snapshotting.register(snap.clone());
        snap
    }

    /// A full copy now, synchronously (for tests and tools; a live node uses
    /// [`Keyspace::begin_snapshot`]).
    pub fn snapshot_now(&self) -> SnapshotImage {
        self.begin_snapshot().copy_rest(self)
    }
}
