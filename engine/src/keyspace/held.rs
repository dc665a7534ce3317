//! Slot tables held locked across a whole write, and re-entrant access to them from the
//! thread that holds them.
//!
//! Why: a transaction (EXEC) runs its reads between the ops of one `Op::Multi`, under that
//! write's locks, and read handlers read through the ordinary keyspace API, which locks
//! slots itself. parking_lot locks are not re-entrant, so without this the thread would
//! wait on itself. While a [`Held`] is registered for this thread, every keyspace access
//! made on this thread to a held slot uses the held table instead of locking, and a write
//! made on this thread applies to the held tables.
//!
//! Invariants (the safety argument for the raw pointers):
//! - The pointers of a `Held` come from write guards that outlive the registration: the
//!   keyspace drops the [`Registration`] before the guards, so a registered pointer is
//!   valid, and no other thread can reach those tables while it is registered.
//! - The registration is thread-local and the holder runs synchronously (no await point
//!   while registered), so only the holding thread ever sees it.
//! - Every access during a hold goes through these pointers and is short: a `&SlotTable`
//!   from [`SlotRead`] lives within one command handler, a `&mut SlotTable` within one
//!   `WriteSet::table` borrow. A handler must not keep a slot read across its own write
//!   to the same slot (which would deadlock without a hold).

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr;

use parking_lot::RwLockReadGuard;

use super::{Keyspace, SlotTable};
use crate::slot::SLOT_COUNT;

/// Tables one write has locked, by slot.
pub(crate) struct Held {
    keyspace: *const Keyspace,
    /// Sorted by slot; when every slot is held, the index is the slot.
    tables: HeldTables,
}

/// Most writes touch one or two slots: keep those inline, no allocation per write.
pub(crate) type HeldTables = smallvec::SmallVec<[(u16, *mut SlotTable); 4]>;

thread_local! {
    static HELD: Cell<*const Held> = const { Cell::new(ptr::null()) };
}

impl Held {
    /// `tables` must be sorted by slot, without duplicates.
    pub(crate) fn new(keyspace: &Keyspace, tables: HeldTables) -> Held {
        Held { keyspace, tables }
    }

    pub(crate) fn tables(&self) -> &[(u16, *mut SlotTable)] {
        &self.tables
    }

    pub(crate) fn find(&self, slot: u16) -> Option<*mut SlotTable> {
        if self.tables.len() == SLOT_COUNT {
            return self.tables.get(slot as usize).map(|t| t.1);
        }
        self.tables.binary_search_by_key(&slot, |t| t.0).ok().map(|i| self.tables[i].1)
    }

    /// The hold this thread has registered on `keyspace`, if any.
    pub(crate) fn current(keyspace: &Keyspace) -> Option<*const Held> {
        let p = HELD.with(Cell::get);
        if p.is_null() {
            return None;
        }
        // SAFETY: a registered pointer is valid until its registration drops (module doc).
        let held = unsafe { &*p };
        ptr::eq(held.keyspace, keyspace).then_some(p)
    }

    /// The table of `slot` if this thread holds it on `keyspace`.
    #[inline]
    pub(crate) fn table_of(keyspace: &Keyspace, slot: u16) -> Option<*mut SlotTable> {
        // SAFETY: as in `current`.
        Held::current(keyspace).and_then(|h| unsafe { (*h).find(slot) })
    }
}

/// Makes a [`Held`] this thread's hold until dropped; the previous one comes back then
/// (a write made inside a transaction registers its own, wider or equal, hold).
pub(crate) struct Registration {
    prev: *const Held,
}

impl Registration {
    pub(crate) fn new(held: &Held) -> Registration {
        Registration { prev: HELD.with(|c| c.replace(held)) }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        HELD.with(|c| c.set(self.prev));
    }
}

/// Read access to one slot table: a read lock, or the table this thread already holds.
pub struct SlotRead<'a> {
    inner: Inner<'a>,
    /// Never leaves the thread: a held table is only this thread's to read.
    _local: PhantomData<*const ()>,
}

enum Inner<'a> {
    Locked(RwLockReadGuard<'a, SlotTable>),
    Held(&'a SlotTable),
}

impl<'a> SlotRead<'a> {
    pub(crate) fn of(keyspace: &'a Keyspace, slot: u16) -> SlotRead<'a> {
        let inner = match Held::table_of(keyspace, slot) {
            // SAFETY: held by this thread for longer than this command reads (module doc).
            Some(p) => Inner::Held(unsafe { &*p }),
            None => Inner::Locked(keyspace.table(slot).read()),
        };
        SlotRead { inner, _local: PhantomData }
    }

    /// [`SlotRead::of`] for a probe that takes a table never built as empty (keyspace
    /// module header): `None` for such a table, which stays unbuilt.
    pub(crate) fn existing(keyspace: &'a Keyspace, slot: u16) -> Option<SlotRead<'a>> {
        let inner = match Held::table_of(keyspace, slot) {
            // SAFETY: as in `of`.
            Some(p) => Inner::Held(unsafe { &*p }),
            None => Inner::Locked(keyspace.slots[slot as usize].get()?.read()),
        };
        Some(SlotRead { inner, _local: PhantomData })
    }
}

impl Deref for SlotRead<'_> {
    type Target = SlotTable;

    fn deref(&self) -> &SlotTable {
        match &self.inner {
            Inner::Locked(g) => g,
            Inner::Held(t) => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::keyspace::{Keyspace, LockScope, WriteHooks};
    use crate::op::{Exists, Op, OpError, Output, TtlChange, Write};
    use crate::value::Value;

    fn set(k: &str, v: &str) -> Op {
        Op::Set {
            key: Bytes::from(k.to_owned()),
            value: Bytes::from(v.to_owned()),
            exists: Exists::Any,
            ttl: TtlChange::Clear,
            get: false,
        }
    }

    fn read(ks: &Keyspace, k: &str) -> Option<Vec<u8>> {
        ks.get(k.as_bytes(), 0, |e| match e.map(|e| &e.value) {
            Some(Value::Str(s)) => Some(s.to_vec()),
            _ => None,
        })
    }

    /// Reads the keyspace (and writes to it) from inside the hooks, as EXEC does.
    struct Probe<'a> {
        ks: &'a Keyspace,
        seen: Vec<(usize, Option<Vec<u8>>)>,
    }

    impl WriteHooks for Probe<'_> {
        fn between(&mut self, i: usize) {
            self.seen.push((i, read(self.ks, "a")));
            if i == 1 {
                // A write made on the holding thread applies to the held tables.
                let w = Write { now_ms: 0, op: set("{a}b", "side") };
                assert_eq!(self.ks.apply(&w), Output::Ok);
            }
        }
    }

    #[test]
    fn multi_applies_in_order_and_keeps_going_after_an_error() {
        let ks = Keyspace::new();
        ks.apply(&Write {
            now_ms: 0,
            op: Op::HSet { key: "h".into(), pairs: vec![("f".into(), "v".into())], nx: false },
        });
        let op = Op::Multi(vec![
            set("a", "1"),
            Op::IncrBy { key: "h".into(), delta: 1 },
            Op::IncrBy { key: "a".into(), delta: 1 },
        ]);
        let mut probe = Probe { ks: &ks, seen: Vec::new() };
        let out = ks.apply_hooked(&Write { now_ms: 0, op }, LockScope::Op, &mut probe);
        assert_eq!(out, Some(Output::Array(vec![Output::Ok, Output::Err(OpError::WrongType), Output::Int(2)])));
        assert_eq!(
            probe.seen,
            vec![(0, None), (1, Some(b"1".to_vec())), (2, Some(b"1".to_vec())), (3, Some(b"2".to_vec()))]
        );
        assert_eq!(read(&ks, "{a}b"), Some(b"side".to_vec()));
        assert_eq!(ks.key_count(), 3);
        assert!(ks.used_memory() > 0);
    }

    #[test]
    fn refused_begin_applies_nothing() {
        struct No;
        impl WriteHooks for No {
            fn begin(&mut self) -> bool {
                false
            }
        }
        let ks = Keyspace::new();
        let out = ks.apply_hooked(&Write { now_ms: 0, op: Op::Multi(vec![set("a", "1")]) }, LockScope::All, &mut No);
        assert_eq!(out, None);
        assert_eq!(ks.key_count(), 0);
    }

    #[test]
    fn flushall_inside_a_transaction_clears_everything_with_exact_counts() {
        let ks = Keyspace::new();
        for k in ["x", "y", "z"] {
            ks.apply(&Write { now_ms: 0, op: set(k, "v") });
        }
        let op = Op::Multi(vec![set("a", "1"), Op::FlushAll, set("b", "2")]);
        let out = ks.apply(&Write { now_ms: 0, op });
        assert_eq!(out, Output::Array(vec![Output::Ok, Output::Ok, Output::Ok]));
        assert_eq!(ks.key_count(), 1);
        assert_eq!(ks.stats().keys, 1);
        assert_eq!(read(&ks, "b"), Some(b"2".to_vec()));
    }
}
