//! Slot write versions and copy-on-write snapshots (`snapshot.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::{Keyspace, LockScope, SnapshotImage, WriteHooks};
use crate::op::{Exists, Op, Output, TtlChange, Write};
use crate::slot::{Slot, SLOT_COUNT};
use crate::value::Value;

fn set(k: &str, v: &str) -> Write {
    let op = Op::Set {
        key: Bytes::from(k.to_owned()),
        value: Bytes::from(v.to_owned()),
        exists: Exists::Any,
        ttl: TtlChange::Clear,
        get: false,
    };
    Write { now_ms: 0, op }
}

fn slot(k: &str) -> Slot {
    Slot::of_key(k.as_bytes())
}

/// The image as sorted `(key, value)` strings, for comparing with a keyspace.
fn image_strings(img: &SnapshotImage) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<_> = img
        .entries()
        .map(|(k, e)| match &e.value {
            Value::Str(s) => (k.to_vec(), s.to_vec()),
            other => panic!("unexpected value {other:?}"),
        })
        .collect();
    v.sort();
    v
}

fn keyspace_strings(ks: &Keyspace) -> Vec<(Vec<u8>, Vec<u8>)> {
    image_strings(&ks.snapshot_now())
}

#[test]
fn a_write_counts_once_in_each_slot_its_keys_name() {
    let ks = Keyspace::new();
    assert_eq!(ks.slot_version(slot("a")), 0);
    ks.apply(&set("a", "1"));
    ks.apply(&set("a", "2"));
    assert_eq!(ks.slot_version(slot("a")), 2);
    // Two keys of one slot: one write, one count; a key of another slot counts there.
    let pairs = vec![("{a}x".into(), "1".into()), ("{a}y".into(), "1".into()), ("b".into(), "1".into())];
    ks.apply(&Write { now_ms: 0, op: Op::MSet { pairs, nx: false } });
    assert_eq!(ks.slot_version(slot("a")), 3);
    assert_eq!(ks.slot_version(slot("b")), 1);
    // A failing write (wrong type) still took the lock and counts; untouched slots do not.
    ks.apply(&Write { now_ms: 0, op: Op::HSet { key: "a".into(), pairs: vec![("f".into(), "v".into())], nx: false } });
    assert_eq!(ks.slot_version(slot("a")), 4);
    let total: u64 = ks.slot_versions().iter().sum();
    assert_eq!(total, 5);
    assert_eq!(ks.slot_versions().len(), SLOT_COUNT);
}

#[test]
fn hooks_see_the_versions_before_the_write_and_a_refused_write_counts_nothing() {
    struct Check<'a> {
        ks: &'a Keyspace,
        refuse: bool,
        seen: Option<u64>,
    }
    impl WriteHooks for Check<'_> {
        fn begin(&mut self) -> bool {
            self.seen = Some(self.ks.slot_version(slot("w")));
            !self.refuse
        }
    }
    let ks = Keyspace::new();
    ks.apply(&set("w", "0"));
    let extra = [slot("other")];
    let mut refused = Check { ks: &ks, refuse: true, seen: None };
    assert_eq!(ks.apply_hooked(&set("w", "1"), LockScope::With(&extra), &mut refused), None);
    assert_eq!(refused.seen, Some(1));
    assert_eq!(ks.slot_version(slot("w")), 1);
    let mut ran = Check { ks: &ks, refuse: false, seen: None };
    assert_eq!(ks.apply_hooked(&set("w", "1"), LockScope::With(&extra), &mut ran), Some(Output::Ok));
    assert_eq!(ran.seen, Some(1));
    assert_eq!(ks.slot_version(slot("w")), 2);
    // Slots locked only for the transaction's reads are not written: they do not count.
    assert_eq!(ks.slot_version(slot("other")), 0);
}

#[test]
fn flushall_counts_in_every_slot_and_replicas_agree() {
    let writes = [set("a", "1"), Write { now_ms: 0, op: Op::FlushAll }, set("b", "2"), set("a", "3")];
    let one = Keyspace::new();
    let two = Keyspace::new();
    for w in &writes {
        one.apply(w);
        two.apply(w);
    }
    assert_eq!(one.slot_versions(), two.slot_versions());
    assert_eq!(one.slot_version(slot("a")), 3);
    assert_eq!(one.slot_version(slot("zzz")), 1);
}

#[test]
fn set_and_replace_carry_versions() {
    let src = Keyspace::new();
    src.apply(&set("a", "1"));
    src.apply(&set("a", "2"));
    let mut v = vec![0u64; SLOT_COUNT];
    v[7] = 42;
    let fresh = Keyspace::new();
    fresh.set_slot_versions(&v[..10]);
    assert_eq!(fresh.slot_version(Slot::new(7).expect("slot")), 42);
    fresh.set_slot_versions(&src.slot_versions());
    assert_eq!(fresh.slot_version(Slot::new(7).expect("slot")), 0);
    let live = Keyspace::new();
    live.apply(&set("b", "x"));
    live.replace_with(fresh);
    assert_eq!(live.slot_versions(), src.slot_versions());
}

#[test]
fn a_snapshot_holds_writes_before_it_and_none_after() {
    let ks = Keyspace::new();
    for i in 0..200 {
        ks.apply(&set(&format!("k{i}"), "before"));
    }
    let expected = keyspace_strings(&ks);
    let versions = ks.slot_versions();
    let snap = ks.begin_snapshot();
    // Overwrite, delete and add keys: each first write to a slot copies it first.
    for i in 0..200 {
        ks.apply(&set(&format!("k{i}"), "after"));
        ks.apply(&set(&format!("new{i}"), "after"));
    }
    ks.apply(&Write { now_ms: 0, op: Op::Del { keys: vec!["k0".into(), "k1".into()] } });
    let img = snap.copy_rest(&ks);
    assert_eq!(image_strings(&img), expected);
    assert_eq!(img.versions, versions);
    assert_eq!(img.slots.len(), SLOT_COUNT, "every slot copied exactly once");
    assert!(img.copied_by_writers > 0);
    // The live keyspace kept the later writes, and no snapshot is registered any more.
    assert_eq!(ks.key_count(), 200 * 2 - 2);
    assert!(ks.snapshotting.current().is_none());
}

#[test]
fn flushall_and_replace_during_a_snapshot_do_not_reach_it() {
    let ks = Keyspace::new();
    ks.apply(&set("a", "1"));
    ks.apply(&set("b", "2"));
    let expected = keyspace_strings(&ks);
    let snap = ks.begin_snapshot();
    ks.apply(&Write { now_ms: 0, op: Op::FlushAll });
    let other = Keyspace::new();
    other.apply(&set("c", "3"));
    ks.replace_with(other);
    let img = snap.copy_rest(&ks);
    assert_eq!(image_strings(&img), expected);
    assert_eq!(img.copied_by_writers, SLOT_COUNT);
}

#[test]
fn starting_a_snapshot_completes_the_one_in_progress() {
    let ks = Keyspace::new();
    ks.apply(&set("a", "1"));
    let first = ks.begin_snapshot();
    ks.apply(&set("a", "2"));
    let second = ks.begin_snapshot();
    ks.apply(&set("a", "3"));
    let second = second.copy_rest(&ks);
    let first = first.copy_rest(&ks);
    assert_eq!(image_strings(&first), vec![(b"a".to_vec(), b"1".to_vec())]);
    assert_eq!(image_strings(&second), vec![(b"a".to_vec(), b"2".to_vec())]);
    assert_eq!(first.slots.len(), SLOT_COUNT);
    assert_eq!(second.slots.len(), SLOT_COUNT);
}

/// A writer thread runs while the copy is made: the copy is exactly the state at the
/// snapshot's start, whatever the interleaving.
#[test]
fn concurrent_writes_never_leak_into_the_copy() {
    let ks = Arc::new(Keyspace::new());
    for i in 0..2000 {
        ks.apply(&set(&format!("k{i}"), "0"));
    }
    let expected = keyspace_strings(&ks);
    let snap = ks.begin_snapshot();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (ks, stop) = (ks.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded: at most 20 passes over the keys.
            for round in 1..=20 {
                for i in 0..2000 {
                    ks.apply(&set(&format!("k{i}"), &round.to_string()));
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        })
    };
    let img = snap.copy_rest(&ks);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
    assert_eq!(image_strings(&img), expected);
    assert_eq!(img.slots.len(), SLOT_COUNT);
}

/// A snapshot begun on one thread while another writes (BACKUP SAVE on a live node does
/// this) is still of one instant: each MSET below names two slots and bumps both, so in
/// any image the two values agree and equal the slots' recorded versions.
#[test]
fn a_snapshot_begun_while_another_thread_writes_is_of_one_instant() {
    let ks = Arc::new(Keyspace::new());
    let (x, y) = ("{b}x", "{a}y");
    assert!(slot(x).get() < slot(y).get(), "the copier reaches x first");
    let mset = |i: u64| Write {
        now_ms: 0,
        op: Op::MSet { pairs: vec![(x.into(), i.to_string().into()), (y.into(), i.to_string().into())], nx: false },
    };
    ks.apply(&mset(0));
    let base = ks.slot_version(slot(x)) - 1;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (ks, stop) = (ks.clone(), stop.clone());
        // Bounded: at most 2 M writes.
        std::thread::spawn(move || {
            for i in 1..2_000_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                ks.apply(&mset(i));
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut images = 0;
    while images < 500 && std::time::Instant::now() < deadline {
        let img = ks.snapshot_now();
        let value = |k: &str| match img.slots[slot(k).get() as usize].iter().find(|(key, _)| key == k) {
            Some((_, e)) => match &e.value {
                Value::Str(s) => std::str::from_utf8(s).expect("utf8").parse::<u64>().expect("a number"),
                other => panic!("unexpected value {other:?}"),
            },
            None => panic!("{k} missing from the image"),
        };
        let (vx, vy) = (value(x), value(y));
        assert_eq!(vx, vy, "image {images}: one MSET is wholly in or out");
        assert_eq!(img.versions[slot(x).get() as usize] - base, vx + 1, "image {images}: versions of the same instant");
        assert_eq!(img.versions[slot(y).get() as usize], img.versions[slot(x).get() as usize]);
        images += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
    assert!(images > 10, "only {images} images");
}
