//! A shard's replicated metadata beside its keys: which slots the shard owns and which
//! are moving in or out (resharding, issue 6).
//!
//! Ownership starts from the fleet's topology file (the *base*: every member loads the
//! same file, so every member starts alike) and changes only through [`ShardOp`]s in the
//! shard's log, so every member holds the same table after the same log. A *claim* is a
//! slot's override of the base: its owner and the epoch of the move that gave it. Claims
//! travel with snapshots ([`ShardMeta::image`]).
//!
//! Resharding a slot from shard A to shard B (server/src/cluster/reshard.rs drives it):
//! B records `Import` (it accepts ASKING requests and migrated keys for the slot), A
//! records `Migrate` (it serves the keys it still holds and sends the others to B with
//! `-ASK`), the keys move, then B and A record `Assign` to B with a new epoch.
//!
//! Invariants (checked at apply, so every member reaches the same verdict):
//! - A shard never applies a write to a slot it neither owns nor imports: such a write is
//!   refused with [`crate::OpError::SlotNotServed`] and changes nothing. (A write checked
//!   against an older state, then committed after the slot left, is refused this way.)
//! - In a migrating slot only guarded writes ([`crate::Op::Guarded`]) apply: their guard
//!   carries the slot's version from when the proposer saw the keys present, and every
//!   migrated batch bumps it, so a write can never land on a key that already moved, and a
//!   migrating slot never gains a key. Unguarded writes there are refused as above.
//! - Epochs only grow along a slot's history: a move's epoch is above the source's claim,
//!   so among the claims nodes gossip the highest epoch names the owner.
//! - Without a shard identity (a single node, `raft-group`) every slot is owned and
//!   nothing is checked.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::slot::SLOT_COUNT;

/// The owner value of a slot no shard serves, and of every slot before [`ShardMeta::set_base`].
pub const NO_SHARD: u32 = u32::MAX;

/// One slot's state beyond the base owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The shard that owns the slot.
    pub owner: u32,
    /// The epoch of the move that made `owner` the owner (0: the base).
    pub epoch: u64,
    /// This shard sends the slot's keys to that shard.
    pub migrating: Option<u32>,
    /// This shard receives the slot's keys from that shard.
    pub importing: Option<u32>,
}

/// A change to the shard's metadata, proposed through the shard's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardOp {
    /// Start sending `slots` (owned here) to shard `to`.
    Migrate { slots: Vec<u16>, to: u32 },
    /// Start receiving `slots` from shard `from`.
    Import { slots: Vec<u16>, from: u32 },
    /// `owner` owns `slots` from `epoch` on; ends any migration or import of them.
    Assign { slots: Vec<u16>, owner: u32, epoch: u64 },
    /// Ends any migration or import of `slots`; ownership unchanged (`CLUSTER SETSLOT STABLE`).
    Stable { slots: Vec<u16> },
    /// Takes `keys` (of migrating `slot`) out of the keyspace into the slot's outgoing
    /// batch, as DUMP payloads with their deadlines; the keyspace applies it (it needs the
    /// slot's lock) -> the number of keys taken. Keys absent, expired or of another slot
    /// are skipped.
    MoveOut { slot: u16, keys: Vec<Bytes> },
    /// The target shard committed these keys of the slot's outgoing batch: they are
    /// dropped (only these: keys taken out since stay until confirmed).
    MovedOut { slot: u16, keys: Vec<Bytes> },
    /// The cross-shard edge outbox's entries up to `upto` were committed by their
    /// destinations: they are dropped (`crate::graph::outbox`).
    OutboxAck { upto: u64 },
}

impl ShardOp {
    /// The keys the op touches (the keyspace locks their slots): `MoveOut`'s.
    pub fn for_each_key(&self, f: &mut dyn FnMut(&[u8])) {
        if let ShardOp::MoveOut { keys, .. } = self {
            keys.iter().for_each(|k| f(k));
        }
    }
}

/// A key taken out of a migrating slot, on its way to the target shard: the key, its
/// deadline (0: none) and its DUMP payload.
pub type Outgoing = (Bytes, u64, Bytes);

/// What applying a [`ShardOp`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardOpResult {
    Done,
    /// `Migrate` of a slot this shard does not own, or an epoch not above the current one.
    Refused(u16),
}

/// The metadata in a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMetaImage {
    /// Slot -> claim, ascending.
    pub claims: Vec<(u16, Claim)>,
    /// Slot -> keys taken out and not yet confirmed by the target, ascending.
    pub outgoing: Vec<(u16, Vec<Outgoing>)>,
    /// The cross-shard edge outbox (`crate::graph::outbox`).
    pub outbox: crate::graph::outbox::OutboxImage,
}

/// A slot's ownership as a write sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// This shard owns the slot (and is not moving it).
    Owned,
    /// This shard owns the slot and moves its keys to the shard named.
    Migrating(u32),
    /// Another shard owns it and this one receives its keys from the shard named.
    Importing(u32),
    /// Another shard owns it (the one named, or [`NO_SHARD`]).
    Elsewhere(u32),
}

/// The table. Reads of a slot's owner are lock-free (one atomic per slot); changes
/// happen under `claims`' lock, at apply.
pub struct ShardMeta {
    /// This shard's id; `None` outside a fleet (every slot owned, nothing checked).
    me: AtomicU32,
    base: Mutex<Vec<u32>>,
    claims: Mutex<BTreeMap<u16, Claim>>,
    /// Keys taken out of migrating slots, not yet confirmed by the target (`MoveOut`).
    outgoing: Mutex<BTreeMap<u16, Vec<Outgoing>>>,
    /// Cross-shard edge halves owed to other shards (`crate::graph::outbox`).
    pub outbox: crate::graph::outbox::Outbox,
    /// Effective owner per slot: the claim's owner, or the base's.
    owner: Box<[AtomicU32]>,
    /// 1 where a claim has `migrating` or `importing` (checked before taking the lock).
    moving: Box<[AtomicU32]>,
}

impl Default for ShardMeta {
    fn default() -> Self {
        ShardMeta {
            me: AtomicU32::new(NO_SHARD),
            base: Mutex::new(vec![NO_SHARD; SLOT_COUNT]),
            claims: Mutex::default(),
            outgoing: Mutex::default(),
            outbox: Default::default(),
            owner: (0..SLOT_COUNT).map(|_| AtomicU32::new(NO_SHARD)).collect(),
            moving: (0..SLOT_COUNT).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl std::fmt::Debug for ShardMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardMeta").field("me", &self.me()).field("claims", &self.claims.lock().len()).finish()
    }
}

impl ShardMeta {
    /// Names this shard and the base owner of every slot (`base[i]` for slot `i`), from
    /// the topology file. Called once at startup, before the log replays.
    pub fn set_base(&self, me: u32, base: &[u32]) {
        self.me.store(me, Ordering::Release);
        let mut b = self.base.lock();
        for (i, o) in b.iter_mut().enumerate() {
            *o = base.get(i).copied().unwrap_or(NO_SHARD);
        }
        drop(b);
        self.refresh();
    }

    /// This shard's id in a fleet.
    pub fn me(&self) -> Option<u32> {
        Some(self.me.load(Ordering::Acquire)).filter(|&m| m != NO_SHARD)
    }

    /// How a write to `slot` is served here (always `Owned` outside a fleet).
    #[inline]
    pub fn serving(&self, slot: u16) -> Serving {
        let me = self.me.load(Ordering::Acquire);
        if me == NO_SHARD {
            return Serving::Owned;
        }
        let i = slot as usize;
        let Some(owner) = self.owner.get(i).map(|o| o.load(Ordering::Acquire)) else {
            return Serving::Elsewhere(NO_SHARD);
        };
        if self.moving[i].load(Ordering::Acquire) != 0 {
            match self.claims.lock().get(&slot) {
                Some(Claim { migrating: Some(to), .. }) => return Serving::Migrating(*to),
                Some(Claim { importing: Some(from), .. }) => return Serving::Importing(*from),
                _ => {}
            }
        }
        if owner == me {
            Serving::Owned
        } else {
            Serving::Elsewhere(owner)
        }
    }

    /// Whether a write naming `slot` may apply; `guarded` tells whether it carries a
    /// WATCH-style version guard (module invariants).
    #[inline]
    pub fn accepts_write(&self, slot: u16, guarded: bool) -> bool {
        match self.serving(slot) {
            Serving::Owned | Serving::Importing(_) => true,
            Serving::Migrating(_) => guarded,
            Serving::Elsewhere(_) => false,
        }
    }

    /// The claim of `slot`, if it has one.
    pub fn claim(&self, slot: u16) -> Option<Claim> {
        self.claims.lock().get(&slot).copied()
    }

    /// The effective owner of `slot` and its epoch.
    pub fn owner(&self, slot: u16) -> (u32, u64) {
        let epoch = self.claims.lock().get(&slot).map_or(0, |c| c.epoch);
        (self.owner.get(slot as usize).map_or(NO_SHARD, |o| o.load(Ordering::Acquire)), epoch)
    }

    /// The claims as ranges of consecutive slots with one owner and epoch:
    /// `(first, last, owner, epoch)`, ascending (what a node tells the fleet).
    pub fn claim_ranges(&self) -> Vec<(u16, u16, u32, u64)> {
        let mut out: Vec<(u16, u16, u32, u64)> = Vec::new();
        for (&s, c) in self.claims.lock().iter() {
            match out.last_mut() {
                Some(r) if r.1.checked_add(1) == Some(s) && r.2 == c.owner && r.3 == c.epoch => r.1 = s,
                _ => out.push((s, s, c.owner, c.epoch)),
            }
        }
        out
    }

    /// Every claim, ascending by slot.
    pub fn image(&self) -> ShardMetaImage {
        ShardMetaImage {
            claims: self.claims.lock().iter().map(|(s, c)| (*s, *c)).collect(),
            outgoing: self.outgoing.lock().iter().map(|(s, o)| (*s, o.clone())).collect(),
            outbox: self.outbox.image(),
        }
    }

    /// `(slot, target)` of every slot this shard is migrating, ascending.
    pub fn migrating(&self) -> Vec<(u16, u32)> {
        self.claims.lock().iter().filter_map(|(s, c)| c.migrating.map(|to| (*s, to))).collect()
    }

    /// True when some key is on its way out.
    pub fn has_outgoing(&self) -> bool {
        !self.outgoing.lock().is_empty()
    }

    /// The keys of `slot` taken out and not yet confirmed by the target.
    pub fn outgoing(&self, slot: u16) -> Vec<Outgoing> {
        self.outgoing.lock().get(&slot).cloned().unwrap_or_default()
    }

    /// True when `key` (of `slot`) is on its way out: neither here nor surely there yet.
    pub fn is_outgoing(&self, slot: u16, key: &[u8]) -> bool {
        self.outgoing.lock().get(&slot).is_some_and(|o| o.iter().any(|(k, _, _)| k[..] == *key))
    }

    /// Records keys `MoveOut` took (called by the keyspace under the slot's lock).
    pub fn add_outgoing(&self, slot: u16, keys: Vec<Outgoing>) {
        if !keys.is_empty() {
            self.outgoing.lock().entry(slot).or_default().extend(keys);
        }
    }

    /// Replaces every claim (installing a snapshot).
    pub fn install(&self, image: &ShardMetaImage) {
        let mut claims = self.claims.lock();
        claims.clear();
        claims.extend(image.claims.iter().filter(|(s, _)| (*s as usize) < SLOT_COUNT).map(|(s, c)| (*s, *c)));
        drop(claims);
        *self.outgoing.lock() = image.outgoing.iter().cloned().collect();
        self.outbox.install(&image.outbox);
        self.refresh();
    }

    /// Takes `other`'s claims (a snapshot decoded off to the side replacing this state).
    pub fn take_claims(&self, other: &ShardMeta) {
        let image = other.image();
        self.install(&image);
    }

    /// Applies one op. Deterministic.
    pub fn apply(&self, op: &ShardOp) -> ShardOpResult {
        if let ShardOp::OutboxAck { upto } = op {
            // Ownership is untouched: no refresh of the per-slot views.
            self.outbox.ack(*upto);
            return ShardOpResult::Done;
        }
        let base = self.base.lock().clone();
        let mut claims = self.claims.lock();
        let owner_of = |claims: &BTreeMap<u16, Claim>, s: u16| {
            claims.get(&s).map_or_else(|| base.get(s as usize).copied().unwrap_or(NO_SHARD), |c| c.owner)
        };
        let valid = |s: &u16| (*s as usize) < SLOT_COUNT;
        let result = match op {
            ShardOp::Migrate { slots, to } => {
                let me = self.me();
                if let Some(&bad) = slots.iter().find(|s| !valid(s) || Some(owner_of(&claims, **s)) != me) {
                    return ShardOpResult::Refused(bad);
                }
                for &s in slots {
                    let owner = owner_of(&claims, s);
                    let c = claims.entry(s).or_insert(Claim { owner, epoch: 0, migrating: None, importing: None });
                    c.migrating = Some(*to);
                    c.importing = None;
                }
                ShardOpResult::Done
            }
            ShardOp::Import { slots, from } => {
                if let Some(&bad) = slots.iter().find(|s| !valid(s)) {
                    return ShardOpResult::Refused(bad);
                }
                for &s in slots {
                    let owner = owner_of(&claims, s);
                    let c = claims.entry(s).or_insert(Claim { owner, epoch: 0, migrating: None, importing: None });
                    c.importing = Some(*from);
                    c.migrating = None;
                }
                ShardOpResult::Done
            }
            ShardOp::Assign { slots, owner, epoch } => {
                if let Some(&bad) = slots.iter().find(|s| !valid(s) || claims.get(s).is_some_and(|c| c.epoch > *epoch))
                {
                    return ShardOpResult::Refused(bad);
                }
                for &s in slots {
                    claims.insert(s, Claim { owner: *owner, epoch: *epoch, migrating: None, importing: None });
                }
                ShardOpResult::Done
            }
            ShardOp::MovedOut { slot, keys } => {
                let mut outgoing = self.outgoing.lock();
                if let Some(list) = outgoing.get_mut(slot) {
                    list.retain(|(k, _, _)| !keys.contains(k));
                    if list.is_empty() {
                        outgoing.remove(slot);
                    }
                }
                ShardOpResult::Done
            }
            // Applied by the keyspace (it needs the slot's table).
            ShardOp::MoveOut { slot, .. } => ShardOpResult::Refused(*slot),
            // Handled above.
            ShardOp::OutboxAck { .. } => ShardOpResult::Done,
            ShardOp::Stable { slots } => {
                for s in slots {
                    if let Some(c) = claims.get_mut(s) {
                        c.migrating = None;
                        c.importing = None;
                    }
                }
                ShardOpResult::Done
            }
        };
        drop(claims);
        self.refresh();
        result
    }

    /// Recomputes the lock-free per-slot views from the base and the claims.
    fn refresh(&self) {
        let base = self.base.lock();
        let claims = self.claims.lock();
        for (i, o) in self.owner.iter().enumerate() {
            let c = claims.get(&(i as u16));
            o.store(c.map_or(base[i], |c| c.owner), Ordering::Release);
            let moving = c.is_some_and(|c| c.migrating.is_some() || c.importing.is_some());
            self.moving[i].store(u32::from(moving), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(me: u32) -> ShardMeta {
        let m = ShardMeta::default();
        let base: Vec<u32> = (0..SLOT_COUNT).map(|s| if s < 8192 { 0 } else { 1 }).collect();
        m.set_base(me, &base);
        m
    }

    #[test]
    fn outside_a_fleet_every_slot_is_owned() {
        let m = ShardMeta::default();
        assert_eq!(m.serving(5), Serving::Owned);
        assert!(m.accepts_write(16383, false));
    }

    #[test]
    fn a_move_from_a_to_b_as_both_shards_see_it() {
        let (a, b) = (meta(0), meta(1));
        assert_eq!(a.serving(10), Serving::Owned);
        assert_eq!(b.serving(10), Serving::Elsewhere(0));
        assert!(!b.accepts_write(10, false));

        assert_eq!(b.apply(&ShardOp::Import { slots: vec![10], from: 0 }), ShardOpResult::Done);
        assert_eq!(a.apply(&ShardOp::Migrate { slots: vec![10], to: 1 }), ShardOpResult::Done);
        assert_eq!(b.serving(10), Serving::Importing(0));
        assert!(b.accepts_write(10, false));
        assert_eq!(a.serving(10), Serving::Migrating(1));
        assert!(a.accepts_write(10, true) && !a.accepts_write(10, false));

        let assign = ShardOp::Assign { slots: vec![10], owner: 1, epoch: 1 };
        assert_eq!(b.apply(&assign), ShardOpResult::Done);
        assert_eq!(a.apply(&assign), ShardOpResult::Done);
        assert_eq!(b.serving(10), Serving::Owned);
        assert_eq!(a.serving(10), Serving::Elsewhere(1));
        assert!(!a.accepts_write(10, true));
        assert_eq!(a.owner(10), (1, 1));
        // An older epoch cannot take it back; B cannot migrate what it does not own.
        assert_eq!(a.apply(&ShardOp::Assign { slots: vec![10], owner: 0, epoch: 0 }), ShardOpResult::Refused(10));
        assert_eq!(a.apply(&ShardOp::Migrate { slots: vec![11, 9000], to: 1 }), ShardOpResult::Refused(9000));
        assert_eq!(a.serving(11), Serving::Owned);
    }

    fn set(k: &str) -> crate::Op {
        crate::Op::Set {
            key: Bytes::from(k.to_owned()),
            value: Bytes::from_static(b"v"),
            exists: crate::Exists::Any,
            ttl: crate::TtlChange::Clear,
            get: false,
        }
    }

    fn write(ks: &crate::Keyspace, op: crate::Op) -> crate::Output {
        ks.apply(&crate::Write { now_ms: 1, op })
    }

    #[test]
    fn the_keyspace_enforces_ownership_at_apply() {
        use crate::{Keyspace, Op, OpError, Output, Slot};
        let ks = Keyspace::new();
        let base: Vec<u32> = (0..SLOT_COUNT).map(|s| if s < 8192 { 0 } else { 1 }).collect();
        ks.meta.set_base(0, &base);
        // "a" is in slot 15495 (shard 1's), "b" in 3300 (ours).
        let (a, b) = (Slot::of_key(b"a").get(), Slot::of_key(b"b").get());
        assert_eq!(write(&ks, set("a")), Output::Err(OpError::SlotNotServed(a)));
        assert_eq!(write(&ks, set("b")), Output::Ok);
        assert_eq!(write(&ks, Op::Shard(ShardOp::Migrate { slots: vec![b], to: 1 })), Output::Ok);
        // Migrating: unguarded writes refused, guarded ones apply while the version holds.
        assert_eq!(write(&ks, set("b")), Output::Err(OpError::SlotNotServed(b)));
        let v = ks.slot_version(Slot::of_key(b"b"));
        let guarded = |v| {
            Op::Guarded(Box::new(crate::op::Guarded {
                tag: 0,
                versions: vec![(b, v)],
                expires_at: 0,
                ops: vec![set("b")],
            }))
        };
        assert_eq!(write(&ks, guarded(v)), Output::Array(vec![Output::Ok]));
        // MoveOut takes the key out (and changes the version: an older guard now fails).
        let moved = write(&ks, Op::Shard(ShardOp::MoveOut { slot: b, keys: vec![Bytes::from_static(b"b")] }));
        assert_eq!(moved, Output::Int(1));
        assert!(!ks.get(b"b", 1, |e| e.is_some()));
        assert!(ks.meta.is_outgoing(b, b"b"));
        assert_eq!(write(&ks, guarded(v + 1)), Output::Nil, "a guard from before the move fails");
        let image = ks.meta.image();
        assert_eq!(image.outgoing.len(), 1);
        let confirm = |keys: &[&'static [u8]]| {
            Op::Shard(ShardOp::MovedOut { slot: b, keys: keys.iter().map(|k| Bytes::from_static(k)).collect() })
        };
        assert_eq!(write(&ks, confirm(&[b"other"])), Output::Ok);
        assert!(ks.meta.is_outgoing(b, b"b"), "only the confirmed keys are dropped");
        assert_eq!(write(&ks, confirm(&[b"b"])), Output::Ok);
        assert!(!ks.meta.is_outgoing(b, b"b"));
        assert_eq!(write(&ks, Op::Shard(ShardOp::Assign { slots: vec![b], owner: 1, epoch: 1 })), Output::Ok);
        assert_eq!(write(&ks, set("b")), Output::Err(OpError::SlotNotServed(b)));
    }

    #[test]
    fn claims_survive_an_image_round_trip() {
        let a = meta(0);
        a.apply(&ShardOp::Migrate { slots: vec![3, 4], to: 1 });
        a.apply(&ShardOp::Assign { slots: vec![4], owner: 1, epoch: 7 });
        let image = a.image();
        let bytes = bincode::serialize(&image).unwrap();
        let back: ShardMetaImage = bincode::deserialize(&bytes).unwrap();
        let fresh = meta(0);
        fresh.install(&back);
        assert_eq!(fresh.serving(3), Serving::Migrating(1));
        assert_eq!(fresh.serving(4), Serving::Elsewhere(1));
        assert_eq!(fresh.owner(4), (1, 7));
        fresh.apply(&ShardOp::Stable { slots: vec![3] });
        assert_eq!(fresh.serving(3), Serving::Owned);
    }
}
