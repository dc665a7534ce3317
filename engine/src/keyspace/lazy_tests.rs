//! Slot tables built on first lock (keyspace module header): the probes that skip tables
//! never built (SCAN, INFO's counts, active expiry, RANDOMKEY) still see every key of the
//! built ones, and a snapshot install replaces a table with "never built" as empty.

use bytes::Bytes;

use super::{ExpiryCursor, Keyspace};
use crate::op::{Exists, Op, TtlChange, Write};
use crate::slot::{Slot, SLOT_COUNT};

fn set(k: &str, expire_at: u64) -> Write {
    let ttl = if expire_at == 0 { TtlChange::Clear } else { TtlChange::At(expire_at) };
    let op = Op::Set {
        key: Bytes::from(k.to_owned()),
        value: Bytes::from_static(b"v"),
        exists: Exists::Any,
        ttl,
        get: false,
    };
    Write { now_ms: 0, op }
}

/// Keys in scattered slots (the rest never built): `k0`..`k49`, the even ones expiring
/// at 1000.
fn scattered() -> Keyspace {
    let ks = Keyspace::new();
    for i in 0..50 {
        ks.apply(&set(&format!("k{i}"), if i % 2 == 0 { 1000 } else { 0 }));
    }
    ks
}

#[test]
fn probes_see_every_key_of_built_tables_and_nothing_else() {
    let ks = scattered();
    // SCAN from cursor 0 to 0 returns each key once.
    let (mut cursor, mut keys) = (0, Vec::new());
    for _ in 0..SLOT_COUNT {
        let mut batch = Vec::new();
        cursor = ks.scan(cursor, 10, 0, |_, _| true, &mut batch);
        keys.extend(batch);
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    let mut expected: Vec<Bytes> = (0..50).map(|i| Bytes::from(format!("k{i}"))).collect();
    expected.sort();
    assert_eq!(keys, expected);
    let stats = ks.stats();
    assert_eq!((stats.keys, stats.volatile), (50, 25));
    assert!(ks.random_key(0, |n| n / 2).is_some());
    // Active expiry finds exactly the expired ones, walking past the unbuilt tables.
    let (mut cursor, mut expired) = (ExpiryCursor::default(), Vec::new());
    for _ in 0..SLOT_COUNT {
        expired.extend(ks.find_expired(&mut cursor, 1000, 64));
        if expired.len() == 25 {
            break;
        }
    }
    expired.sort();
    let mut even: Vec<Bytes> = (0..50).step_by(2).map(|i| Bytes::from(format!("k{i}"))).collect();
    even.sort();
    assert_eq!(expired, even);
}

#[test]
fn an_empty_keyspace_answers_every_probe_with_nothing() {
    let ks = Keyspace::new();
    let mut keys = Vec::new();
    assert_eq!(ks.scan(0, 10, 0, |_, _| true, &mut keys), 0, "one call walks every unbuilt slot");
    assert!(keys.is_empty());
    assert_eq!(ks.stats().keys, 0);
    assert!(ks.random_key(0, |n| n / 2).is_none());
    assert!(ks.find_expired(&mut ExpiryCursor::default(), u64::MAX, 1000).is_empty());
    assert!(ks.keys_in_slot(Slot::of_key(b"k1"), 0, 10).is_empty());
}

#[test]
fn installing_a_keyspace_with_unbuilt_tables_empties_those_slots() {
    let live = scattered();
    let other = Keyspace::new();
    other.apply(&set("k1", 0));
    live.replace_with(other);
    assert_eq!(live.key_count(), 1);
    assert_eq!(live.stats().keys, 1);
    assert!(live.get(b"k1", 0, |e| e.is_some()));
    assert!(live.get(b"k3", 0, |e| e.is_none()), "a slot the snapshot never built is empty");
    let one = Keyspace::new();
    one.apply(&set("k1", 0));
    assert_eq!(live.used_memory(), one.used_memory());
}
