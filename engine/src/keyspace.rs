//! The keyspace: 16384 slot tables, each behind its own lock.
//!
//! A slot's table is built the first time anything locks it: a node (or a fuzz input, or
//! a test) that touches a few slots pays for those, not for 16384 tables at start and
//! again at drop. Reads that only probe (SCAN, INFO's counts, active expiry, RANDOMKEY's
//! random tries) treat a table never built as empty, which it is, without building it.
//! Everything that locks (reads of a key, multi-key reads, writes, FLUSHALL, snapshots)
//! builds the tables it locks, so locking, versions and copy-on-write are unchanged.
//!
//! Invariants:
//! - A key lives in the table of `Slot::of_key(key)` and nowhere else.
//! - There is no global lock: a read locks one slot table for reading; a write locks the
//!   tables of exactly the slots its op touches, in ascending slot order (so two
//!   multi-slot writes can never deadlock), and holds them for the whole op (so a
//!   multi-key write is atomic to readers).
//! - An entry whose deadline is at or before "now" is invisible. Reads use the node's
//!   clock; writes use the time fixed in the [`Write`]. Only writes remove entries, so
//!   every replica applying the same writes holds the same entries.
//! - Each table keeps its byte and key counts exact under every mutation (see
//!   [`SlotTable::modify`]); the keyspace keeps node-wide totals as sums of table deltas.
//!
//! - A write may hold its tables across callbacks ([`WriteHooks`]): EXEC runs the reads of
//!   a transaction between the ops of its `Op::Multi` this way. Meanwhile the holding
//!   thread's own reads and writes use the held tables (see `held.rs`), and every other
//!   thread waits, so the transaction is atomic and isolated.
//!
//! - Each slot has a write version ([`Keyspace::slot_version`]): the number of applied
//!   writes whose op named a key in that slot (every slot, for FLUSHALL and a snapshot's
//!   restore). It is counted at one choke point, when the write has run and still holds
//!   the slot's lock (graph cleanup ops are writes too), so every replica applying the same
//!   log holds the same versions, and a write's hooks still see the versions from before
//!   it (EXEC compares WATCHed slots' versions in `WriteHooks::begin`). A write refused by
//!   its hooks changes nothing and counts nothing. Snapshots carry the versions.
//! - A copy-on-write snapshot in progress (`snapshot.rs`) is given every slot a write is
//!   about to lock for writing before anything there changes.
//!
//! Positions: a table is an insertion-ordered map with swap-removal. Cursors (`SCAN`,
//! active expiry) walk positions from the end of a table towards its start: a removal
//! moves the last entry, which such a walk has already visited, into the hole, so an
//! entry present for a whole scan is never skipped (it may be returned twice, which
//! Redis allows).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use indexmap::IndexMap;
use parking_lot::RwLock;
use smallvec::SmallVec;

use crate::apply;
use crate::compact::{self, CompactBytes};
use crate::op::{Op, Output, Write};
use crate::shard_meta::{Serving, ShardMeta, ShardOp, ShardOpResult};
use crate::slot::{Slot, SLOT_COUNT};
use crate::value::{reserve_one, FastHasher, Value, ENTRY_OVERHEAD};

mod held;
mod snapshot;
mod tiering;

pub use held::SlotRead;
use held::{Held, HeldTables, Registration};
pub use snapshot::{SlotCopy, SnapshotImage, SnapshotInProgress};

/// Which slots a write locks.
#[derive(Debug, Clone, Copy)]
pub enum LockScope<'a> {
    /// Those of its op's keys.
    Op,
    /// Those of its op's keys and these (a transaction's reads and WATCHed keys).
    With(&'a [Slot]),
    /// Every slot (a transaction that reads or flushes the whole keyspace).
    All,
}

/// Callbacks into a write, run while its slot tables are locked. While they run, this
/// thread's own keyspace reads and writes use the locked tables.
pub trait WriteHooks {
    /// Runs first; returning false applies nothing (the write returns `None`).
    fn begin(&mut self) -> bool {
        true
    }
    /// Before item `i` of an `Op::Multi`, and once more after the last (`i == len`).
    fn between(&mut self, _i: usize) {}
    /// After the op applied.
    fn end(&mut self, _op: &Op) {}
}

/// No callbacks.
pub struct NoHooks;

impl WriteHooks for NoHooks {}

/// A stored value with its deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: Value,
    /// Absolute deadline in ms since the epoch; 0 means no TTL.
    pub expire_at: u64,
}

impl Entry {
    pub fn new(value: Value) -> Entry {
        Entry { value, expire_at: 0 }
    }

    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }

    /// What INFO's used_memory charges for this entry under a key of `key_len` bytes
    /// (MEMORY USAGE reports it). Keys are never edited, so a key of a given length always
    /// holds the same heap bytes.
    pub fn mem(&self, key_len: usize) -> usize {
        compact::heap_bytes_for(key_len) + self.value.mem() + ENTRY_OVERHEAD
    }
}

/// The keys of one slot.
#[derive(Debug, Default)]
pub struct SlotTable {
    map: IndexMap<CompactBytes, Entry, FastHasher>,
    /// Entries with a deadline (expired or not).
    volatile: usize,
    /// Approximate bytes held by the entries.
    mem: usize,
    /// Entries removed because they had expired.
    expired_removed: u64,
    /// `(mem, len)` as last added into the keyspace totals (see [`Keyspace::sync`]).
    accounted: (usize, usize),
}

impl SlotTable {
    /// Number of entries, including expired ones not yet removed (as Redis's DBSIZE).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn volatile(&self) -> usize {
        self.volatile
    }

    pub fn mem(&self) -> usize {
        self.mem
    }

    pub fn expired_removed(&self) -> u64 {
        self.expired_removed
    }

    /// The live entry under `key`.
    #[inline]
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.map.get(key).filter(|e| !e.is_expired(now_ms))
    }

    /// Whether `key` has an entry, live or expired.
    #[inline]
    pub fn holds(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// The key and entry at a position (live or not).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &Entry)> {
        self.map.get_index(i).map(|(k, e)| (&**k, e))
    }

    /// Runs `f` on the live entry under `key` (`None` if absent or expired) and stores
    /// whatever `f` leaves behind: a changed entry is kept, `None` removes the key, a new
    /// entry inserts it. Counts stay exact whatever `f` does. An expired entry that `f`
    /// leaves as `None` is removed and counted as expired.
    pub fn modify<R>(&mut self, key: &[u8], now_ms: u64, f: impl FnOnce(&mut Option<Entry>) -> R) -> R {
        let found = self.map.get_index_of(key);
        let mut expired = false;
        let mut cur = match found {
            Some(i) => {
                let (k, e) = self.map.get_index_mut(i).expect("index from get_index_of");
                self.mem -= e.mem(k.len());
                if e.expire_at != 0 {
                    self.volatile -= 1;
                }
                let taken = std::mem::replace(e, Entry::new(Value::Str(CompactBytes::default())));
                if taken.is_expired(now_ms) {
                    expired = true;
                    None
                } else {
                    Some(taken)
                }
            }
            None => None,
        };
        let r = f(&mut cur);
        match (found, cur) {
            (Some(i), Some(e)) => {
                self.account_added(key.len(), &e);
                *self.map.get_index_mut(i).expect("index still valid").1 = e;
            }
            (Some(i), None) => {
                self.map.swap_remove_index(i);
                if expired {
                    self.expired_removed += 1;
                }
            }
            (None, Some(e)) => {
                self.account_added(key.len(), &e);
                reserve_one(&mut self.map);
                self.map.insert(CompactBytes::new(key), e);
            }
            (None, None) => {}
        }
        r
    }

    fn account_added(&mut self, key_len: usize, e: &Entry) {
        self.mem += e.mem(key_len);
        if e.expire_at != 0 {
            self.volatile += 1;
        }
    }

    /// Removes the live entry under `key`, returning it.
    pub fn take(&mut self, key: &[u8], now_ms: u64) -> Option<Entry> {
        self.modify(key, now_ms, |cur| cur.take())
    }

    /// Inserts or replaces the entry under `key`.
    pub fn put(&mut self, key: &[u8], now_ms: u64, entry: Entry) {
        self.modify(key, now_ms, |cur| *cur = Some(entry));
    }

    /// Inserts the rows of a loaded partition into this cold slot's table, which holds
    /// the slot's delta: a key the delta holds keeps its delta entry (the newer write,
    /// expired or not), every other row is added. Room for all rows is made at once and
    /// each key is hashed once.
    pub(crate) fn put_loaded(&mut self, rows: impl ExactSizeIterator<Item = (CompactBytes, Entry)>) {
        self.map.reserve(rows.len());
        for (key, entry) in rows {
            let (mem, volatile) = (entry.mem(key.len()), entry.expire_at != 0);
            if let indexmap::map::Entry::Vacant(v) = self.map.entry(key) {
                v.insert(entry);
                self.mem += mem;
                self.volatile += usize::from(volatile);
            }
        }
    }

    fn clear(&mut self) {
        *self = SlotTable { expired_removed: self.expired_removed, accounted: self.accounted, ..SlotTable::default() };
    }
}

/// Totals over all slots, for INFO.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyspaceStats {
    pub keys: u64,
    pub volatile: u64,
    pub expired_removed: u64,
}

/// Where an active-expiry walk resumes: a slot and the number of positions of that slot
/// still to visit (`None`: start the slot from its end).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryCursor {
    slot: usize,
    remaining: Option<usize>,
}

/// All keys of the node, one table per slot.
pub struct Keyspace {
    /// Built on first lock (module header): use [`Keyspace::table`], or
    /// [`SlotRead::existing`] to probe without building.
    slots: Box<[OnceLock<RwLock<SlotTable>>]>,
    mem: AtomicI64,
    keys: AtomicI64,
    /// Per-slot write versions (module header). Changed only under the slot's write lock.
    versions: Box<[AtomicU64]>,
    snapshotting: snapshot::Snapshotting,
    /// Entered by every outermost write (and [`Keyspace::replace_with`]) for its whole
    /// duration, and closed by [`Keyspace::begin_snapshot`] while it records the
    /// snapshot's instant: so that instant falls between two writes, whichever thread
    /// starts the snapshot (`snapshot.rs`).
    writes: snapshot::WriteGate,
    /// Slot ownership in a fleet (replicated beside the keys, carried by snapshots).
    pub meta: ShardMeta,
    /// Cold slots (replicated beside the keys, carried by snapshots): `tier::manifest`.
    pub tier: crate::tier::manifest::Manifest,
}

impl Default for Keyspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Keyspace {
    pub fn new() -> Keyspace {
        Keyspace {
            slots: (0..SLOT_COUNT).map(|_| OnceLock::new()).collect(),
            mem: AtomicI64::new(0),
            keys: AtomicI64::new(0),
            versions: (0..SLOT_COUNT).map(|_| AtomicU64::new(0)).collect(),
            snapshotting: snapshot::Snapshotting::default(),
            writes: snapshot::WriteGate::default(),
            meta: ShardMeta::default(),
            tier: Default::default(),
        }
    }

    /// The lock of `slot`'s table, built if it never was (module header). `slot` is below
    /// `SLOT_COUNT`.
    #[inline]
    fn table(&self, slot: u16) -> &RwLock<SlotTable> {
        self.slots[slot as usize].get_or_init(RwLock::default)
    }

    /// The write version of `slot`: how many applied writes named a key in it (module
    /// header). Equal on every replica that applied the same log.
    #[inline]
    pub fn slot_version(&self, slot: Slot) -> u64 {
        self.versions[slot.get() as usize].load(Ordering::Relaxed)
    }

    /// Every slot's write version, slot `i` at index `i`.
    pub fn slot_versions(&self) -> Vec<u64> {
        self.versions.iter().map(|v| v.load(Ordering::Relaxed)).collect()
    }

    /// Sets the slot versions (installing a snapshot): slot `i` gets `v[i]`; slots past
    /// the end of `v` get 0, values past `SLOT_COUNT` are ignored.
    pub fn set_slot_versions(&self, v: &[u64]) {
        for (i, version) in self.versions.iter().enumerate() {
            version.store(v.get(i).copied().unwrap_or(0), Ordering::Relaxed);
        }
    }

    #[inline]
    fn bump(&self, slot: u16) {
        self.versions[slot as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Read access to one slot's table.
    #[inline]
    pub fn slot(&self, slot: Slot) -> SlotRead<'_> {
        SlotRead::of(self, slot.get())
    }

    /// Runs `f` on the live entry under `key`.
    #[inline]
    pub fn get<R>(&self, key: &[u8], now_ms: u64, f: impl FnOnce(Option<&Entry>) -> R) -> R {
        let table = self.slot(Slot::of_key(key));
        f(table.get(key, now_ms))
    }

    /// Locks the slots of `keys` for reading, all at once, so a multi-key read sees one
    /// consistent state.
    pub fn read_many<'a, K: AsRef<[u8]> + 'a>(&self, keys: impl IntoIterator<Item = &'a K>) -> ReadSet<'_> {
        let mut slots: SmallVec<[u16; 8]> = keys.into_iter().map(|k| Slot::of_key(k.as_ref()).get()).collect();
        slots.sort_unstable();
        slots.dedup();
        ReadSet { guards: slots.into_iter().map(|s| (s, SlotRead::of(self, s))).collect() }
    }

    /// Replaces every slot's contents and version with `other`'s, slot by slot under each
    /// slot's write lock: a reader of one key sees the old value or the new one, never a
    /// mix. (A Raft follower installing a snapshot: the node keeps one keyspace for its
    /// life.)
    pub fn replace_with(&self, mut other: Keyspace) {
        let _writing = self.writes.enter();
        let snap = self.snapshotting.current();
        for (i, theirs) in other.slots.iter_mut().enumerate() {
            let mut mine = self.table(i as u16).write();
            if let Some(s) = &snap {
                s.preserve(i as u16, &mine);
            }
            match theirs.get_mut() {
                Some(theirs) => std::mem::swap(&mut *mine, theirs.get_mut()),
                // Never built there: empty.
                None => *theirs = OnceLock::from(RwLock::new(std::mem::take(&mut *mine))),
            }
            self.versions[i].store(other.versions[i].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.mem.store(other.mem.load(Ordering::Relaxed), Ordering::Relaxed);
        self.keys.store(other.keys.load(Ordering::Relaxed), Ordering::Relaxed);
        self.meta.take_claims(&other.meta);
        self.tier.install(&other.tier.image());
    }

    /// Approximate bytes held by all entries.
    pub fn used_memory(&self) -> u64 {
        self.mem.load(Ordering::Relaxed).max(0) as u64
    }

    /// Whether `slot`'s table holds a key: a probe that leaves a table never built unbuilt.
    pub fn has_keys(&self, slot: Slot) -> bool {
        SlotRead::existing(self, slot.get()).is_some_and(|t| !t.is_empty())
    }

    /// Bytes `slot`'s table holds (0 for a table never built).
    pub fn slot_memory(&self, slot: Slot) -> usize {
        SlotRead::existing(self, slot.get()).map_or(0, |t| t.mem())
    }

    /// Whether `key`'s slot table has an entry for it, live or expired (for a cold slot:
    /// whether its delta decides the key, `tier::manifest`).
    pub fn holds(&self, key: &[u8]) -> bool {
        SlotRead::existing(self, Slot::of_key(key).get()).is_some_and(|t| t.holds(key))
    }

    /// `(slots, keys, bytes)` of the deltas of cold slots (their tables).
    pub fn delta_totals(&self) -> (u64, u64, u64) {
        let mut totals = (0, 0, 0);
        for slot in self.tier.cold_slots() {
            if let Some(t) = SlotRead::existing(self, slot).filter(|t| !t.is_empty()) {
                totals = (totals.0 + 1, totals.1 + t.len() as u64, totals.2 + t.mem() as u64);
            }
        }
        totals
    }

    /// Slots whose table holds at least one key.
    pub fn slots_with_keys(&self) -> usize {
        Slot::all().filter(|&s| self.has_keys(s)).count()
    }

    /// Number of keys, including expired ones not yet removed.
    pub fn key_count(&self) -> u64 {
        self.keys.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn stats(&self) -> KeyspaceStats {
        let mut s = KeyspaceStats::default();
        for slot in 0..SLOT_COUNT {
            let Some(t) = SlotRead::existing(self, slot as u16) else { continue };
            s.keys += t.len() as u64;
            s.volatile += t.volatile() as u64;
            s.expired_removed += t.expired_removed();
        }
        s
    }

    /// Applies one write. Deterministic: the result and the new state depend only on the
    /// current state and `w`.
    pub fn apply(&self, w: &Write) -> Output {
        self.apply_hooked(w, LockScope::Op, &mut NoHooks).unwrap_or(Output::Nil)
    }

    /// Applies one write with the tables of `scope` locked for its whole duration,
    /// calling `hooks` under those locks. `None` when `hooks.begin` refused the write.
    ///
    /// Re-entrant: called from inside another write's hooks on this thread, it applies to
    /// the tables that write holds (locking, in ascending order, only slots it lacks).
    pub fn apply_hooked(&self, w: &Write, scope: LockScope<'_>, hooks: &mut dyn WriteHooks) -> Option<Output> {
        let outer = Held::current(self);
        // A nested write runs inside its outer write's hold of the gate.
        let writing = outer.is_none().then(|| self.writes.enter());
        if matches!(w.op, Op::FlushAll) && outer.is_none() {
            return self.flush_all(hooks);
        }
        if let Op::Tier(op) = &w.op {
            // Never proposed inside a transaction; refused there rather than deadlocking
            // on a slot the outer write holds.
            if outer.is_some() || !hooks.begin() {
                return Some(Output::Err(crate::OpError::NotReplicated));
            }
            return Some(self.apply_tier(op));
        }
        // Graph halves orphaned by this write are cleaned after its locks are released.
        let cleanup = outer.is_none().then(crate::graph::Cleanup::begin);
        // `named`: the slots the op's keys name (their versions count this write);
        // `slots`: those and the scope's, locked.
        let flushes = w.op.flushes_all();
        let mut named: SmallVec<[u16; 4]> = SmallVec::new();
        if !flushes {
            w.op.for_each_key(|k| named.push(Slot::of_key(k).get()));
            named.sort_unstable();
            named.dedup();
        }
        // The common case (scope `Op`) locks exactly `named`, without a second list.
        let wider: Option<SmallVec<[u16; 4]>> = match scope {
            LockScope::All => Some((0..SLOT_COUNT as u16).collect()),
            _ if flushes => Some((0..SLOT_COUNT as u16).collect()),
            LockScope::Op => None,
            LockScope::With(extra) => {
                let mut slots = named.clone();
                slots.extend(extra.iter().map(|s| s.get()));
                slots.sort_unstable();
                slots.dedup();
                Some(slots)
            }
        };
        let slots: &[u16] = wider.as_deref().unwrap_or(&named);
        let snap = self.snapshotting.current();
        let mut guards: SmallVec<[_; 4]> = SmallVec::new();
        let mut tables = HeldTables::with_capacity(slots.len());
        for &s in slots {
            // SAFETY: a registered hold is valid while registered (held.rs).
            match outer.and_then(|h| unsafe { (*h).find(s) }) {
                Some(p) => tables.push((s, p)),
                None => {
                    let mut g = self.table(s).write();
                    if let Some(snap) = &snap {
                        snap.preserve(s, &g);
                    }
                    let p: *mut SlotTable = &mut *g;
                    guards.push(g);
                    tables.push((s, p));
                }
            }
        }
        let held = Held::new(self, tables);
        let out = {
            let _registered = Registration::new(&held);
            self.run(&held, &named, w, hooks)
        };
        for &(_, p) in held.tables() {
            // SAFETY: still held (by this write's guards or an outer write's).
            self.sync(unsafe { &mut *p });
        }
        if out.is_some() {
            // Still under the locks, so a reader never sees a version ahead of the data.
            if flushes {
                (0..SLOT_COUNT as u16).for_each(|s| self.bump(s));
            } else {
                named.iter().for_each(|&s| self.bump(s));
            }
        }
        drop(held);
        drop(guards);
        // Released first: the cleanup's own writes take it again.
        drop(writing);
        if let Some(c) = cleanup {
            c.finish(self, w);
        }
        out
    }

    fn run(&self, held: &Held, named: &[u16], w: &Write, hooks: &mut dyn WriteHooks) -> Option<Output> {
        if !hooks.begin() {
            return None;
        }
        if let Op::Shard(ShardOp::MoveOut { slot, keys }) = &w.op {
            return Some(self.move_out(held, *slot, keys, w.now_ms));
        }
        if let Op::Shard(op) = &w.op {
            // A cold slot's keys are in an object, not its table: it may start moving
            // only once loaded (keys move as keys), or they would be left behind.
            if let ShardOp::Migrate { slots, .. } = op {
                if let Some(&slot) = slots.iter().find(|&&s| self.tier.is_cold(s)) {
                    return Some(Output::Err(crate::OpError::Cold(slot)));
                }
            }
            return Some(match self.meta.apply(op) {
                ShardOpResult::Done => Output::Ok,
                ShardOpResult::Refused(slot) => Output::Err(crate::OpError::SlotNotServed(slot)),
            });
        }
        // A fleet shard applies writes only to slots it serves (shard_meta invariants):
        // the same verdict on every member, from replicated state only.
        // In a migrating slot, only a write guarded on that slot's version applies.
        // Purging expired keys is always allowed: they are invisible already, and a
        // migrating slot must be able to empty.
        let guarded = |s: u16| match &w.op {
            Op::Guarded(g) => g.versions.iter().any(|&(gs, _)| gs == s),
            Op::PurgeExpired { .. } => true,
            _ => false,
        };
        if let Some(&slot) = named.iter().find(|&&s| !self.meta.accepts_write(s, guarded(s))) {
            return Some(Output::Err(crate::OpError::SlotNotServed(slot)));
        }
        // A cold slot's table holds only its delta (tier::manifest invariants): a write
        // there must wait for the load (the server loads and retries) unless it replaces
        // whole values without reading them; then it lands in the delta.
        if !w.op.overwrites_blindly() {
            if let Some(&slot) = named.iter().find(|&&s| self.tier.is_cold(s)) {
                return Some(Output::Err(crate::OpError::Cold(slot)));
            }
        }
        // EXEC's WATCH on a replicated shard: every member checks the same guard against
        // the versions from before this write (op.rs `Guarded`).
        if let Op::Guarded(g) = &w.op {
            if !g.holds(|s| self.versions.get(s as usize).map_or(0, |v| v.load(Ordering::Relaxed)), w.now_ms) {
                return None;
            }
        }
        let flushes_all = w.op.flushes_all();
        let mut set = WriteSet { held };
        let items = match &w.op {
            Op::Multi(ops) => Some(ops),
            Op::Guarded(g) => Some(&g.ops),
            _ => None,
        };
        let out = match items {
            Some(ops) => {
                let mut outs = Vec::with_capacity(ops.len());
                for (i, op) in ops.iter().enumerate() {
                    hooks.between(i);
                    outs.push(apply::apply_op(&mut set, op, w.now_ms));
                    // Reads between the items (DBSIZE, INFO) see exact totals.
                    self.sync_op(held, op);
                }
                hooks.between(ops.len());
                Output::Array(outs)
            }
            None => apply::apply_op(&mut set, &w.op, w.now_ms),
        };
        if flushes_all {
            // A flushed cold slot is forgotten with its object (left for GC); every slot
            // is held, so this is atomic with the flush.
            held.tables().iter().for_each(|&(s, _)| drop(self.tier.set_hot(s)));
        }
        hooks.end(&w.op);
        Some(out)
    }

    /// Adds what changed in `t` since it was last accounted into the node-wide totals.
    fn sync(&self, t: &mut SlotTable) {
        let now = (t.mem, t.map.len());
        let (mem, len) = std::mem::replace(&mut t.accounted, now);
        if now != (mem, len) {
            self.mem.fetch_add(now.0 as i64 - mem as i64, Ordering::Relaxed);
            self.keys.fetch_add(now.1 as i64 - len as i64, Ordering::Relaxed);
        }
    }

    /// [`Keyspace::sync`] for the tables `op` may have changed.
    fn sync_op(&self, held: &Held, op: &Op) {
        let sync = |slot: u16| {
            if let Some(p) = held.find(slot) {
                // SAFETY: held by this write; no other borrow of the table is alive.
                self.sync(unsafe { &mut *p });
            }
        };
        if op.flushes_all() {
            held.tables().iter().for_each(|&(s, _)| sync(s));
        } else {
            op.for_each_key(|k| sync(Slot::of_key(k).get()));
        }
    }

    /// `ShardOp::MoveOut`: takes the live `keys` of migrating `slot` out of its table into
    /// the slot's outgoing batch (shard_meta). Refused when the slot is not migrating.
    fn move_out(&self, held: &Held, slot: u16, keys: &[Bytes], now_ms: u64) -> Output {
        if !matches!(self.meta.serving(slot), Serving::Migrating(_)) {
            return Output::Err(crate::OpError::SlotNotServed(slot));
        }
        let mut set = WriteSet { held };
        let mut taken = Vec::new();
        for k in keys.iter().filter(|k| Slot::of_key(k).get() == slot) {
            if let Some(e) = set.table(k).take(k, now_ms) {
                taken.push((k.clone(), e.expire_at, Bytes::from(crate::dump::encode(&e.value))));
            }
        }
        let n = taken.len() as i64;
        self.meta.add_outgoing(slot, taken);
        Output::Int(n)
    }

    /// FLUSHALL alone: slot by slot, never holding more than one lock.
    fn flush_all(&self, hooks: &mut dyn WriteHooks) -> Option<Output> {
        if !hooks.begin() {
            return None;
        }
        let snap = self.snapshotting.current();
        for s in 0..SLOT_COUNT {
            // Every table, built or not: FLUSHALL's version bumps stay under each lock.
            let mut t = self.table(s as u16).write();
            if let Some(snap) = &snap {
                snap.preserve(s as u16, &t);
            }
            t.clear();
            self.tier.set_hot(s as u16);
            self.sync(&mut t);
            self.bump(s as u16);
        }
        hooks.end(&Op::FlushAll);
        Some(Output::Ok)
    }

    /// Walks positions from `cursor`, examining at most `budget` entries and `budget`
    /// slots, and returns the keys found expired at `now_ms`. The caller removes them with
    /// [`Op::PurgeExpired`] through the write path.
    pub fn find_expired(&self, cursor: &mut ExpiryCursor, now_ms: u64, budget: usize) -> Vec<Bytes> {
        let mut found = Vec::new();
        let mut examined = 0;
        let mut slots_seen = 0;
        while examined < budget && slots_seen < budget {
            slots_seen += 1;
            // A cold slot's delta keeps an expired entry: it hides the object's row for
            // that key until a load or compaction merges them (tier::manifest).
            let table = SlotRead::existing(self, cursor.slot as u16).filter(|_| !self.tier.is_cold(cursor.slot as u16));
            let Some(table) = table.filter(|t| t.volatile() > 0) else {
                *cursor = ExpiryCursor { slot: (cursor.slot + 1) % SLOT_COUNT, remaining: None };
                continue;
            };
            let mut pos = cursor.remaining.unwrap_or(table.len()).min(table.len());
            while pos > 0 && examined < budget {
                pos -= 1;
                examined += 1;
                if let Some((k, e)) = table.get_index(pos) {
                    if e.is_expired(now_ms) {
                        found.push(Bytes::copy_from_slice(k));
                    }
                }
            }
            *cursor = if pos == 0 {
                ExpiryCursor { slot: (cursor.slot + 1) % SLOT_COUNT, remaining: None }
            } else {
                ExpiryCursor { slot: cursor.slot, remaining: Some(pos) }
            };
        }
        found
    }

    /// One step of a `SCAN`: from `cursor`, pushes live keys accepted by `keep` into `out`
    /// until about `count` are collected or about `10 * count` positions (at least 100)
    /// were visited; empty slots are skipped without counting. Returns the next cursor (0
    /// when the scan is complete).
    ///
    /// Cursor layout: the low 14 bits are the slot; the rest is the number of positions of
    /// that slot still to visit, 0 meaning "the whole slot".
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        now_ms: u64,
        mut keep: impl FnMut(&[u8], &Entry) -> bool,
        out: &mut Vec<Bytes>,
    ) -> u64 {
        let count = count.max(1);
        let mut slot = (cursor as usize) & (SLOT_COUNT - 1);
        let mut remaining = (cursor >> 14) as usize;
        let mut visited = 0usize;
        let limit = count.saturating_mul(10).max(100);
        loop {
            let table = SlotRead::existing(self, slot as u16);
            let len = table.as_ref().map_or(0, |t| t.len());
            let mut pos = if remaining == 0 { len } else { remaining.min(len) };
            while pos > 0 && out.len() < count && visited < limit {
                pos -= 1;
                visited += 1;
                if let Some((k, e)) = table.as_ref().and_then(|t| t.get_index(pos)) {
                    if !e.is_expired(now_ms) && keep(k, e) {
                        out.push(Bytes::copy_from_slice(k));
                    }
                }
            }
            // An empty slot costs one read-lock probe and no work, so it does not count
            // against the budget: a sparse keyspace is scanned in one call, as Redis scans a
            // small dict. A call still probes at most SLOT_COUNT slots.
            if len > 0 {
                visited += 1;
            }
            if pos > 0 {
                return ((pos as u64) << 14) | slot as u64;
            }
            slot += 1;
            remaining = 0;
            if slot == SLOT_COUNT {
                return 0;
            }
            if out.len() >= count || visited >= limit {
                return slot as u64;
            }
        }
    }

    /// Live keys of one slot, at most `limit`.
    pub fn keys_in_slot(&self, slot: Slot, now_ms: u64, limit: usize) -> Vec<Bytes> {
        let table = self.slot(slot);
        (0..table.len())
            .filter_map(|i| table.get_index(i))
            .filter(|(_, e)| !e.is_expired(now_ms))
            .take(limit)
            .map(|(k, _)| Bytes::copy_from_slice(k))
            .collect()
    }

    /// A live key chosen by `pick` (called with a bound, returns a number below it), or
    /// `None` if the keyspace holds no live key among the tries made.
    pub fn random_key(&self, now_ms: u64, mut pick: impl FnMut(usize) -> usize) -> Option<Bytes> {
        if self.key_count() == 0 {
            return None;
        }
        for attempt in 0..256 {
            // Random slots first; then a linear walk so a sparse keyspace still answers.
            let slot = if attempt < 128 { pick(SLOT_COUNT) } else { (pick(SLOT_COUNT) + attempt) % SLOT_COUNT };
            let Some(table) = SlotRead::existing(self, slot as u16).filter(|t| !t.is_empty()) else {
                continue;
            };
            let (k, e) = table.get_index(pick(table.len()))?;
            if !e.is_expired(now_ms) {
                return Some(Bytes::copy_from_slice(k));
            }
        }
        Slot::all().find_map(|s| {
            let t = SlotRead::existing(self, s.get())?;
            (0..t.len())
                .filter_map(|i| t.get_index(i))
                .find(|(_, e)| !e.is_expired(now_ms))
                .map(|(k, _)| Bytes::copy_from_slice(k))
        })
    }
}

/// One step of a cursor walk over the positions `0..len` of a swap-removal map (a hash's
/// fields for `HSCAN`), from the end towards the start, as the module header explains.
/// `remaining` is the number of positions still to visit, 0 meaning "all of them" (a new
/// walk). Calls `visit` on at most `budget` positions (at least one) and returns the new
/// `remaining`: 0 once position 0 was visited, so the walk is complete.
///
/// A removal moves the last element into the hole; elements only ever move towards the
/// start, so one still below `remaining` stays there until visited.
pub fn scan_positions(len: usize, remaining: u64, budget: usize, mut visit: impl FnMut(usize)) -> u64 {
    let mut pos = if remaining == 0 { len } else { usize::try_from(remaining).unwrap_or(usize::MAX).min(len) };
    let mut budget = budget.max(1);
    while pos > 0 && budget > 0 {
        pos -= 1;
        budget -= 1;
        visit(pos);
    }
    pos as u64
}

/// Slot tables locked for reading by [`Keyspace::read_many`].
pub struct ReadSet<'a> {
    guards: SmallVec<[(u16, SlotRead<'a>); 8]>,
}

impl ReadSet<'_> {
    /// The live entry under `key`. `key` must be one of the keys the set was locked for.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let slot = Slot::of_key(key).get();
        self.guards.iter().find(|(s, _)| *s == slot).and_then(|(_, t)| t.get(key, now_ms))
    }
}

/// Slot tables locked for writing while one op applies.
pub(crate) struct WriteSet<'a> {
    held: &'a Held,
}

impl WriteSet<'_> {
    /// The table holding `key`. The op declared every key it touches, so it is locked.
    pub(crate) fn table(&mut self, key: &[u8]) -> &mut SlotTable {
        let slot = Slot::of_key(key).get();
        let p = self.held.find(slot).expect("op touched a key it did not declare");
        // SAFETY: held for this write (held.rs); `&mut self` makes this the only borrow
        // the set has handed out.
        unsafe { &mut *p }
    }

    /// Empties every table of the set (FLUSHALL inside a transaction, which holds all).
    pub(crate) fn clear_all(&mut self) {
        for &(_, p) in self.held.tables() {
            // SAFETY: as in `table`; one table at a time.
            unsafe { (*p).clear() };
        }
    }
}

#[cfg(test)]
mod scan_positions_tests {
    use super::scan_positions;
    use crate::value::HashValue;

    /// A field present for a whole walk is visited even when others are swap-removed
    /// between steps.
    #[test]
    fn removals_never_hide_a_field() {
        let mut h = HashValue::default();
        for i in 0..100u32 {
            h.insert(format!("f{i}").as_bytes(), b"v");
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut removed = 0u32;
        loop {
            cursor = scan_positions(h.len(), cursor, 7, |p| {
                if let Some((f, _)) = h.get_index(p) {
                    seen.insert(f.to_vec());
                }
            });
            // Remove fields the walk has not reached yet (low numbers live at low positions).
            for _ in 0..3 {
                h.remove(format!("f{removed}").as_bytes());
                removed += 1;
            }
            if cursor == 0 {
                break;
            }
        }
        for i in removed..100 {
            assert!(seen.contains(format!("f{i}").as_bytes()), "f{i} missed");
        }
    }
}

#[cfg(test)]
mod snapshot_tests;

#[cfg(test)]
mod lazy_tests;
