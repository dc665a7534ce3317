//! The cross-shard edge outbox: the halves a shard's writes owe other shards, replicated
//! with the writes that owe them (it lives in the shard's metadata,
//! [`crate::shard_meta::ShardMeta::outbox`], and travels in snapshots).
//!
//! A write whose edge has its other end on another shard (cross-shard E.ADD / E.DEL,
//! V.DEL or a generic removal of a vertex with remote neighbours) applies its own half and
//! hands the other shard's change ([`RemoteHalf`]) to [`outbound`]; when the write has
//! applied, [`crate::graph::Cleanup::finish`] appends them here with the next sequence
//! numbers. A deliverer on the leader sends entries strictly in sequence order, one batch
//! in flight; the destination commits them ([`super::GraphOp::Inbound`], idempotent) and
//! the source then commits [`crate::shard_meta::ShardOp::OutboxAck`], dropping the prefix.
//!
//! Invariants:
//! - Deterministic: entries are appended at apply, in apply order, with sequence numbers
//!   and times from the log (the write's `now_ms`), so every member holds the same outbox.
//! - Strictly ordered, at least once: an ack removes only a delivered prefix; a redelivery
//!   (lost ack) replays entries in the same order, and every entry is idempotent, so the
//!   destination ends as if each was applied once.

use std::cell::RefCell;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::RemoteHalf;

/// One entry: a change owed to the shard holding `half`'s key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    /// The time of the write that owes it (ms, from the log).
    pub at_ms: u64,
    pub half: RemoteHalf,
}

/// The outbox in a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxImage {
    /// The sequence number the next entry gets.
    pub next_seq: u64,
    pub entries: Vec<OutboxEntry>,
}

/// The outbox of one shard. An ack drains a prefix of a `Vec` (a copy of what is left):
/// acks come one delivered batch at a time, so that cost is per batch, not per entry.
#[derive(Debug, Default)]
pub struct Outbox {
    inner: Mutex<OutboxImage>,
}

thread_local! {
    /// Halves owed by the write applying on this thread (drained by its cleanup).
    static OUTBOUND: RefCell<Vec<RemoteHalf>> = const { RefCell::new(Vec::new()) };
}

/// Hands a change owed to another shard to the write applying on this thread.
pub(crate) fn outbound(h: RemoteHalf) {
    let _ = OUTBOUND.try_with(|o| o.borrow_mut().push(h));
}

/// Takes what the writes on this thread owe, in order.
pub(crate) fn take_outbound() -> Vec<RemoteHalf> {
    OUTBOUND.try_with(|o| std::mem::take(&mut *o.borrow_mut())).unwrap_or_default()
}

impl Outbox {
    /// Appends `halves` at `at_ms` with the next sequence numbers.
    pub fn push(&self, at_ms: u64, halves: Vec<RemoteHalf>) {
        if halves.is_empty() {
            return;
        }
        let mut o = self.inner.lock();
        for half in halves {
            let seq = o.next_seq;
            o.next_seq += 1;
            o.entries.push(OutboxEntry { seq, at_ms, half });
        }
    }

    /// Drops every entry up to and including `upto` (a delivered prefix). Returns how many.
    pub fn ack(&self, upto: u64) -> usize {
        let mut o = self.inner.lock();
        let n = o.entries.iter().take_while(|e| e.seq <= upto).count();
        o.entries.drain(..n);
        n
    }

    /// The first `max` entries (the next delivery's candidates), in order.
    pub fn head(&self, max: usize) -> Vec<OutboxEntry> {
        self.inner.lock().entries.iter().take(max).cloned().collect()
    }

    /// Number of entries and the time of the oldest (ms), for INFO and metrics.
    pub fn lag(&self) -> (usize, Option<u64>) {
        let o = self.inner.lock();
        (o.entries.len(), o.entries.first().map(|e| e.at_ms))
    }

    pub fn image(&self) -> OutboxImage {
        self.inner.lock().clone()
    }

    pub fn install(&self, image: &OutboxImage) {
        *self.inner.lock() = image.clone();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::graph::traverse::with_vertex;
    use crate::graph::{Dir, EdgeHalf, GraphOp, RemoteHalf};
    use crate::keyspace::Keyspace;
    use crate::op::{Op, OpError, Output, Write};
    use crate::shard_meta::ShardOp;
    use crate::slot::{Slot, SLOT_COUNT};

    /// Shard 1 owns slots below 8192, shard 2 the rest.
    fn shard(me: u32) -> Keyspace {
        let ks = Keyspace::new();
        let base: Vec<u32> = (0..SLOT_COUNT).map(|s| if s < 8192 { 1 } else { 2 }).collect();
        ks.meta.set_base(me, &base);
        ks
    }

    /// A key whose slot shard `s` owns.
    fn key_on(s: u32, stem: &str) -> Bytes {
        (0..)
            .map(|i| format!("{stem}{i}"))
            .find(|k| (Slot::of_key(k.as_bytes()).get() < 8192) == (s == 1))
            .map(Bytes::from)
            .unwrap()
    }

    fn apply(ks: &Keyspace, now: u64, op: GraphOp) -> Output {
        ks.apply(&Write { now_ms: now, op: Op::Graph(op) })
    }

    fn degree(ks: &Keyspace, v: &Bytes, dir: Dir) -> usize {
        with_vertex(ks, v, 100, |x| x.degree(b"t", dir)).unwrap().unwrap_or(0)
    }

    /// Delivers shard `from`'s whole outbox to `to` (twice: a redelivery after a lost ack
    /// must change nothing), then acks it.
    fn deliver(from: &Keyspace, from_id: u32, to: &Keyspace) -> Output {
        let head = from.meta.outbox.head(100);
        let halves: Vec<RemoteHalf> = head.iter().map(|e| e.half.clone()).collect();
        let first = apply(to, 50, GraphOp::Inbound { from: from_id, halves: halves.clone() });
        apply(to, 51, GraphOp::Inbound { from: from_id, halves });
        if let Some(last) = head.last() {
            assert_eq!(from.ks_ack(last.seq), Output::Ok);
        }
        first
    }

    trait Ack {
        fn ks_ack(&self, upto: u64) -> Output;
    }
    impl Ack for Keyspace {
        fn ks_ack(&self, upto: u64) -> Output {
            self.apply(&Write { now_ms: 60, op: Op::Shard(ShardOp::OutboxAck { upto }) })
        }
    }

    #[test]
    fn cross_shard_edge_add_deliver_ack_del() {
        let (a, b) = (shard(1), shard(2));
        let (src, dst) = (key_on(1, "src"), key_on(2, "dst"));
        let (out, inn) = EdgeHalf::pair(&src, &Bytes::from_static(b"t"), &dst);
        // A plain AddEdge naming dst's slot is refused on shard 1 and changes nothing.
        let plain = GraphOp::AddEdge { out: out.clone(), inn: inn.clone(), rank: Some(5), props: None };
        assert!(matches!(apply(&a, 10, plain), Output::Err(OpError::SlotNotServed(_))));
        assert_eq!(a.meta.outbox.lag(), (0, None));

        let add = GraphOp::AddEdgeOut { out: out.clone(), inn: inn.clone(), rank: Some(5), props: None };
        assert_eq!(apply(&a, 10, add.clone()), Output::Int(1));
        assert_eq!(degree(&a, &src, Dir::Out), 1);
        assert_eq!(a.meta.outbox.lag(), (1, Some(10)));
        // Re-adding updates: one more entry, no new edge.
        assert_eq!(apply(&a, 11, add), Output::Int(0));
        assert_eq!(a.meta.outbox.lag().0, 2);
        assert_eq!(deliver(&a, 1, &b), Output::Int(2));
        assert_eq!(degree(&b, &dst, Dir::In), 1, "the in-half once, redelivery included");
        assert_eq!(a.meta.outbox.lag(), (0, None));

        // The outbox travels in the metadata image (snapshots).
        apply(&a, 12, GraphOp::DelEdgeOut { out, inn });
        let image = a.meta.image();
        let copy = shard(1);
        copy.meta.install(&image);
        assert_eq!(copy.meta.outbox.head(10), a.meta.outbox.head(10));
        assert_eq!(deliver(&a, 1, &b), Output::Int(1));
        assert_eq!((degree(&a, &src, Dir::Out), degree(&b, &dst, Dir::In)), (0, 0));
        // Sequence numbers go on after an ack.
        assert_eq!(copy.meta.outbox.head(1)[0].seq, 2);
    }

    #[test]
    fn delivery_to_a_shard_not_serving_the_slot_changes_nothing() {
        let a = shard(1);
        let (src, dst) = (key_on(1, "src"), key_on(2, "dst"));
        let (_, inn) = EdgeHalf::pair(&src, &Bytes::from_static(b"t"), &dst);
        let op = GraphOp::Inbound { from: 2, halves: vec![RemoteHalf::Put { half: inn, rank: 1 }] };
        assert!(matches!(apply(&a, 1, op), Output::Err(OpError::SlotNotServed(_))));
        assert!(with_vertex(&a, &dst, 1, |_| ()).unwrap().is_none());
    }

    #[test]
    fn removing_the_in_side_vertex_removes_the_remote_out_half_unless_newer() {
        let (a, b) = (shard(1), shard(2));
        let (src, dst) = (key_on(1, "src"), key_on(2, "dst"));
        let (out, inn) = EdgeHalf::pair(&src, &Bytes::from_static(b"t"), &dst);
        apply(&a, 10, GraphOp::AddEdgeOut { out: out.clone(), inn: inn.clone(), rank: Some(7), props: None });
        deliver(&a, 1, &b);
        // A generic DEL of dst on shard 2: its cleanup owes src's out-half removal.
        b.apply(&Write { now_ms: 20, op: Op::Del { keys: vec![dst.clone()] } });
        assert_eq!(b.meta.outbox.lag().0, 1);
        deliver(&b, 2, &a);
        assert_eq!(degree(&a, &src, Dir::Out), 0);
        // The removal sends the mirror's removal back (it finds nothing: dst is gone).
        assert_eq!(a.meta.outbox.lag().0, 1);
        deliver(&a, 1, &b);
        assert!(with_vertex(&b, &dst, 30, |_| ()).unwrap().is_none());

        // Again, but src re-adds the edge (a new rank) before the removal arrives: the
        // newer edge stays and its in-half re-creates dst, so both halves exist.
        apply(&a, 40, GraphOp::AddEdgeOut { out: out.clone(), inn: inn.clone(), rank: Some(8), props: None });
        deliver(&a, 1, &b);
        b.apply(&Write { now_ms: 41, op: Op::Del { keys: vec![dst.clone()] } });
        apply(&a, 42, GraphOp::AddEdgeOut { out, inn, rank: Some(9), props: None });
        deliver(&b, 2, &a);
        deliver(&a, 1, &b);
        assert_eq!((degree(&a, &src, Dir::Out), degree(&b, &dst, Dir::In)), (1, 1));
    }

    #[test]
    fn detach_across_owes_the_remote_halves() {
        let (a, b) = (shard(1), shard(2));
        let v = key_on(1, "v");
        let (near, far) = (key_on(1, "near"), key_on(2, "far"));
        let t = Bytes::from_static(b"t");
        let (o1, i1) = EdgeHalf::pair(&v, &t, &near);
        apply(&a, 1, GraphOp::AddEdge { out: o1, inn: i1, rank: None, props: None });
        let (o2, i2) = EdgeHalf::pair(&v, &t, &far);
        apply(&a, 1, GraphOp::AddEdgeOut { out: o2, inn: i2, rank: None, props: None });
        deliver(&a, 1, &b);
        let op = GraphOp::DetachAcross {
            vid: v.clone(),
            local: vec![near.clone()],
            remote: vec![far.clone()],
            delete: true,
        };
        assert_eq!(apply(&a, 2, op), Output::Int(1));
        assert_eq!(degree(&a, &near, Dir::In), 0);
        assert_eq!(degree(&b, &far, Dir::In), 1, "not delivered yet");
        deliver(&a, 1, &b);
        assert_eq!(degree(&b, &far, Dir::In), 0);
    }
}
