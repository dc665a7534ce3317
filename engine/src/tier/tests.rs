use bytes::Bytes;
use rand::{Rng, SeedableRng};

use super::format::{self, FormatError};
use super::*;
use crate::graph::{Dir, Vertex};
use crate::keyspace::Keyspace;
use crate::list::ListValue;
use crate::set::SetValue;
use crate::slot::Slot;
use crate::value::{HashValue, Value};
use crate::zset::ZSetValue;

/// Every key shares the hash tag `{p}`, so all land in one slot.
fn slot() -> Slot {
    Slot::of_key(b"{p}")
}

fn hash(pairs: &[(&str, &str)]) -> HashValue {
    let mut h = HashValue::default();
    pairs.iter().for_each(|(f, v)| _ = h.insert(f.as_bytes(), v.as_bytes()));
    h
}

/// One key of every type, vertices with in- and out-edges and properties, some with TTLs.
fn sample() -> Keyspace {
    let ks = Keyspace::new();
    let mut set = SetValue::default();
    let mut zset = ZSetValue::default();
    let mut list = ListValue::default();
    for i in 0..500 {
        set.insert(format!("m{i}").as_bytes());
        zset.insert(format!("z{i}").as_bytes(), i as f64 * 0.25 - 3.0);
        list.push_back(format!("e{i}").as_bytes());
    }
    let mut a = Vertex::default();
    a.set_label(b"person");
    a.props = hash(&[("name", "ann")]);
    a.with_list(b"follows", Dir::Out, |l| l.put(b"{p}v:b", 7, Some(Some(Box::new(hash(&[("w", "1")]))))));
    let mut b = Vertex::default();
    b.with_list(b"follows", Dir::In, |l| l.put(b"{p}v:a", 7, Some(None)));
    let values: Vec<(&str, Value, u64)> = vec![
        ("{p}s", Value::Str(b"hello\x00\xff".to_vec().into()), 0),
        ("{p}s:ttl", Value::Str(b"soon".to_vec().into()), 4_102_444_800_000),
        ("{p}s:expired", Value::Str(b"old".to_vec().into()), 1),
        ("{p}s:empty", Value::Str(Vec::new().into()), 0),
        ("{p}h", Value::Hash(Box::new(hash(&[("a", "1"), ("b", "")]))), 0),
        ("{p}set", Value::Set(Box::new(set)), 0),
        ("{p}z", Value::ZSet(Box::new(zset)), 99),
        ("{p}l", Value::List(Box::new(list)), 0),
        ("{p}v:a", Value::Vertex(Box::new(a)), 0),
        ("{p}v:b", Value::Vertex(Box::new(b)), 0),
    ];
    for (key, value, expire_at) in values {
        ks.restore(Bytes::from(key), expire_at, Bytes::from(crate::dump::encode(&value))).expect("setup restore");
    }
    ks
}

/// Every key of the slot with its deadline and DUMP payload, sorted by key.
fn dump_slot(ks: &Keyspace, slot: Slot) -> Vec<(Vec<u8>, u64, Vec<u8>)> {
    let t = ks.slot(slot);
    let mut out: Vec<_> = (0..t.len())
        .filter_map(|i| t.get_index(i))
        .map(|(k, e)| (k.to_vec(), e.expire_at, crate::dump::encode(&e.value)))
        .collect();
    out.sort();
    out
}

#[test]
fn every_type_round_trips_through_the_format() {
    let ks = sample();
    let (obj, stats) = spill_slot(&ks, slot()).expect("spill");
    assert_eq!(stats.rows, 10);
    assert_eq!(stats.crc32c, format::checksum(&obj.bytes));
    let back = Keyspace::new();
    assert_eq!(load_into(&back, obj.bytes.clone()).expect("load"), (slot(), 10));
    assert_eq!(dump_slot(&back, slot()), dump_slot(&ks, slot()));
    assert_eq!(back.key_count(), 10);
}

#[test]
fn an_empty_slot_is_an_empty_object() {
    let (obj, stats) = spill_slot(&Keyspace::new(), Slot::new(5).expect("slot")).expect("spill");
    assert_eq!(stats.rows, 0);
    let back = Keyspace::new();
    assert_eq!(load_into(&back, obj.bytes).expect("load"), (Slot::new(5).expect("slot"), 0));
    assert_eq!(back.key_count(), 0);
}

#[test]
fn many_rows_span_several_batches() {
    let ks = Keyspace::new();
    let n = format::BATCH_ROWS + 10;
    for i in 0..n {
        let v = Value::Str(format!("v{i}").into_bytes().into());
        ks.restore(Bytes::from(format!("{{p}}k{i}")), 0, Bytes::from(crate::dump::encode(&v))).expect("setup");
    }
    let (obj, _) = spill_slot(&ks, slot()).expect("spill");
    let back = Keyspace::new();
    assert_eq!(load_into(&back, obj.bytes).expect("load").1, n as u64);
    assert_eq!(dump_slot(&back, slot()), dump_slot(&ks, slot()));
}

#[test]
fn corruption_is_an_error_never_a_panic() {
    let (obj, _) = spill_slot(&sample(), slot()).expect("spill");
    let good = obj.bytes.to_vec();
    let seed: u64 = 0x5eed_c01d;
    println!("corruption seed {seed:#x}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for round in 0..400 {
        let mut bad = good.clone();
        match round % 4 {
            0 => bad.truncate(rng.random_range(0..good.len())),
            _ => {
                for _ in 0..rng.random_range(1..4) {
                    let i = rng.random_range(0..bad.len());
                    bad[i] ^= rng.random_range(1..=255u8);
                }
            }
        }
        let bytes = Bytes::from(bad);
        // With the object's true checksum, every change is caught before decoding.
        assert!(
            matches!(
                format::decode_verified(bytes.clone(), obj.crc32c, good.len() as u64),
                Err(FormatError::Checksum { .. })
            ),
            "round {round}"
        );
        // Decoding the corrupt bytes anyway (as if the checksum had been forged) must
        // still end in an error or a fully valid partition, and never panic.
        let back = Keyspace::new();
        match load_into(&back, bytes) {
            Err(_) => assert_eq!(back.key_count(), 0, "round {round}: a failed load changed nothing"),
            Ok((s, n)) => assert_eq!((s, n as usize), (slot(), dump_slot(&back, slot()).len())),
        }
    }
}

#[test]
fn foreign_objects_are_refused() {
    let empty = Keyspace::new();
    assert!(matches!(load_into(&empty, Bytes::new()), Err(LoadError::Format(FormatError::Arrow(_)))));
    assert!(load_into(&empty, Bytes::from_static(b"ARROW1\0\0hello world ARROW1")).is_err());
    // A key outside the object's slot: built by hand with the encoder.
    let mut enc = format::PartitionEncoder::new(slot());
    enc.push(b"elsewhere", &crate::keyspace::Entry::new(Value::Str(b"x".to_vec().into()))).expect("push");
    let obj = enc.finish().expect("finish");
    match load_into(&empty, obj.bytes) {
        Err(LoadError::Format(FormatError::Row { index: 0, reason })) => assert!(reason.contains("slot"), "{reason}"),
        other => panic!("expected a row error, got {other:?}"),
    }
    assert_eq!(empty.key_count(), 0);
}

/// The SIMD CRC-32C names objects exactly as the table one did (objects written before
/// keep verifying): seeded random bytes of many lengths against crc's CRC-32/ISCSI.
#[test]
fn checksum_matches_the_reference() {
    const REFERENCE: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);
    let seed = 0x5eed_c32c;
    println!("seed {seed:#x}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 1 << 20];
    rng.fill(&mut buf[..]);
    for len in (0..600).chain([4095, 4096, 4097, 65_537, 1 << 20]) {
        for start in [0, 3] {
            let b = &buf[start.min(len)..len];
            assert_eq!(format::checksum(b), REFERENCE.checksum(b), "len {}", b.len());
        }
    }
    assert_eq!(format::checksum(b"123456789"), 0xe306_9283, "the catalogue's check value");
}

/// A DUMP payload of a hash whose field repeats, with a correct CRC-64: its envelope and
/// head are fine, only a full decode sees the duplicate.
fn hash_with_a_repeated_field() -> Vec<u8> {
    let mut p = b"PRSM\x01\x01".to_vec();
    p.extend_from_slice(&[2, 1, b'a', 1, b'1', 1, b'a', 1, b'2']);
    let crc = crate::dump::crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    assert!(crate::dump::inspect(&p).is_ok() && crate::dump::decode(&p).is_err());
    p
}

/// An object of three good rows and `{p}bad`, as given, under a correct checksum.
fn object_with_row(payload: &[u8], kind: &str, len: usize, string: Option<&[u8]>) -> Bytes {
    let mut enc = format::PartitionEncoder::new(slot());
    for i in 0..3 {
        let e = crate::keyspace::Entry::new(Value::Str(format!("v{i}").into_bytes().into()));
        enc.push(format!("{{p}}good{i}").as_bytes(), &e).expect("push");
    }
    enc.push_row(b"{p}bad", 0, kind, len, string, payload).expect("push bad row");
    enc.finish().expect("finish").bytes
}

/// Rows whose payload fails its CRC-64, or whose head disagrees with the columns, are
/// refused by `decode` (before anything is proposed); a row only a full decode refuses
/// (a repeated hash field) is refused by the restore, and neither path changes anything.
#[test]
fn a_bad_payload_inside_a_well_checksummed_object_is_refused() {
    let good = crate::dump::encode(&Value::Str(b"xyz".to_vec().into()));
    let mut flipped = good.clone();
    flipped[7] ^= 1;
    // (payload, type column, len column, string_value, what is wrong)
    type Case<'a> = (Vec<u8>, &'a str, usize, Option<&'a [u8]>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (flipped, "string", 3, Some(&b"xyz"[..]), "checksum"),
        (good.clone(), "hash", 3, None, "type column"),
        (good.clone(), "string", 4, Some(&b"xyz"[..]), "len"),
        (good.clone(), "string", 3, Some(&b"xyw"[..]), "string_value"),
    ];
    for (payload, kind, len, string, what) in cases {
        let obj = object_with_row(&payload, kind, len, string);
        match format::decode(obj.clone()) {
            Err(FormatError::Row { index: 3, .. }) => {}
            other => panic!("{what}: expected row 3 refused, got {other:?}"),
        }
        let back = Keyspace::new();
        assert!(load_into(&back, obj).is_err(), "{what}");
        assert_eq!(back.key_count(), 0, "{what}: a failed load changed nothing");
    }

    // The repeated field passes decode's inspection...
    let obj = object_with_row(&hash_with_a_repeated_field(), "hash", 2, None);
    let rows = format::decode(obj.clone()).expect("the envelope and head are intact").rows;
    assert_eq!(rows.len(), 4);
    // ...and is refused by both restores, which change nothing.
    let back = Keyspace::new();
    assert!(matches!(load_into(&back, obj), Err(LoadError::Format(FormatError::Row { index: 3, .. }))));
    assert_eq!(back.key_count(), 0);
}

#[test]
fn object_names_carry_length_and_checksum() {
    let r = ObjectRef::for_bytes("slot-00042/v1", b"abc");
    assert_eq!(r.key, format!("slot-00042/v1.3.{:08x}.arrow", format::checksum(b"abc")));
    assert_eq!(ObjectRef::parse(&r.key), Some(r));
    for bad in
        ["x.arrow", "a.3.zz.arrow", "a.3.0000000.arrow", ".3.00000000.arrow", "a.x.00000000.arrow", "a.3.00000000"]
    {
        assert_eq!(ObjectRef::parse(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn local_store_round_trip_and_verification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ColdStore::open(dir.path().join("cold").to_str().expect("utf8 path"), None).expect("open");
    let ks = sample();
    let (obj, _) = spill_slot(&ks, slot()).expect("spill");
    let r = store.put(&format!("slot-{:05}/v1", slot().get()), obj.bytes.clone()).await.expect("put");
    assert_eq!(store.list("").await.expect("list"), vec![r.clone()]);
    let got = store.get(&r.key).await.expect("get");
    let back = Keyspace::new();
    load_into(&back, got).expect("load");
    assert_eq!(dump_slot(&back, slot()), dump_slot(&ks, slot()));

    // Flip one byte on disk: the store refuses the object.
    let path = dir.path().join("cold").join(&r.key);
    let mut raw = std::fs::read(&path).expect("read");
    let mid = raw.len() / 2;
    raw[mid] ^= 0x40;
    std::fs::write(&path, raw).expect("write");
    assert!(matches!(store.get(&r.key).await, Err(StoreError::Checksum { .. })));

    store.delete(&r.key).await.expect("delete");
    store.delete(&r.key).await.expect("deleting twice is fine");
    assert!(matches!(store.get(&r.key).await, Err(StoreError::NotFound(_))));
    assert!(store.list("").await.expect("list").is_empty());
    assert!(matches!(store.get("../etc/passwd.3.00000000.arrow").await, Err(StoreError::BadName(_))));
    assert!(matches!(ColdStore::open("gs://bucket", None), Err(StoreError::Config(_))));
}

// ---- the replicated manifest (keyspace/tiering.rs) ---------------------------------

mod manifest {
    use super::*;
    use crate::op::{Op, OpError, Output, Write};
    use crate::tier::manifest::TierOp;

    fn apply(ks: &Keyspace, op: Op) -> Output {
        ks.apply(&Write { now_ms: 2, op })
    }

    /// Spills the sample slot: the object's rows and the `Spilled` op for `version`.
    fn spilled(ks: &Keyspace, version: u64) -> (TierOp, Vec<(Bytes, u64, Bytes)>) {
        let (obj, stats) = spill_slot(ks, slot()).expect("encode");
        let rows = format::decode(obj.bytes.clone()).expect("decode").rows;
        let op = TierOp::Spilled {
            slot: slot().get(),
            object: "o1".into(),
            crc32c: stats.crc32c,
            rows: stats.rows,
            bytes: stats.object_bytes,
            slot_version: version,
        };
        (op, rows.into_iter().map(|r| (r.key, r.expire_at, r.payload)).collect())
    }

    #[test]
    fn a_spill_applies_only_at_the_version_it_encoded() {
        let ks = sample();
        let before = dump_slot(&ks, slot());
        let v = ks.slot_version(slot());
        let (stale, _) = spilled(&ks, v + 1);
        assert_eq!(apply(&ks, Op::Tier(stale)), Output::Int(0), "a write landed after the encode");
        assert_eq!(dump_slot(&ks, slot()), before);
        assert!(!ks.tier.is_cold(slot().get()));

        let (op, _) = spilled(&ks, v);
        assert_eq!(apply(&ks, Op::Tier(op)), Output::Int(1));
        assert!(ks.tier.is_cold(slot().get()));
        assert!(ks.slot(slot()).is_empty() && ks.key_count() == 0 && ks.used_memory() == 0);
        assert_eq!(ks.tier.totals(), (1, before.len() as u64, ks.tier.entry(slot().get()).unwrap().bytes));
        assert_eq!(ks.slot_version(slot()), v, "the contents clients see did not change");
        // A write to the cold slot is refused, never applied to the empty table.
        let set = Op::Set {
            key: Bytes::from_static(b"{p}s"),
            value: Bytes::from_static(b"x"),
            exists: crate::Exists::Absent,
            ttl: crate::TtlChange::Clear,
            get: false,
        };
        assert_eq!(apply(&ks, set), Output::Err(OpError::Cold(slot().get())));
    }

    #[test]
    fn a_load_restores_only_the_object_the_manifest_names() {
        let ks = sample();
        let before = dump_slot(&ks, slot());
        let (op, rows) = spilled(&ks, ks.slot_version(slot()));
        assert_eq!(apply(&ks, Op::Tier(op)), Output::Int(1));

        let load = |object: &str, rows: Vec<(Bytes, u64, Bytes)>| {
            Op::Tier(TierOp::Loaded { slot: slot().get(), object: object.into(), rows })
        };
        assert_eq!(apply(&ks, load("stale", rows.clone())), Output::Int(0));
        assert!(ks.tier.is_cold(slot().get()) && ks.slot(slot()).is_empty());
        // One bad row refuses the whole load.
        let mut bad = rows.clone();
        bad[0].2 = Bytes::from_static(b"junk");
        assert!(matches!(apply(&ks, load("o1", bad)), Output::Err(_)));
        assert!(ks.tier.is_cold(slot().get()) && ks.slot(slot()).is_empty());

        // A payload whose envelope is intact but whose body is not (a hash field twice):
        // the apply's full decode refuses it, after three good rows, changing nothing.
        let mut deep = rows.clone();
        deep[3].2 = Bytes::from(super::hash_with_a_repeated_field());
        assert_eq!(apply(&ks, load("o1", deep)), Output::Err(OpError::BadDataFormat));
        assert!(ks.tier.is_cold(slot().get()) && ks.slot(slot()).is_empty() && ks.key_count() == 0);

        assert_eq!(apply(&ks, load("o1", rows.clone())), Output::Int(1));
        assert!(!ks.tier.is_cold(slot().get()));
        // The bulk insert's counts are exact: the node-wide totals equal the sum over the
        // entries, and agree with a row-by-row restore of the same object on keys and TTLs.
        let charged: usize = {
            let t = ks.slot(slot());
            (0..t.len()).filter_map(|i| t.get_index(i)).map(|(k, e)| e.mem(k.len())).sum()
        };
        assert_eq!(ks.used_memory(), charged as u64);
        let fresh = Keyspace::new();
        let (obj, _) = spill_slot(&sample(), slot()).expect("encode");
        load_into(&fresh, obj.bytes).expect("load");
        assert_eq!(ks.key_count(), fresh.key_count());
        assert_eq!(ks.stats().volatile, fresh.stats().volatile);
        assert_eq!(dump_slot(&ks, slot()), before);
        assert_eq!(ks.tier.totals(), (0, 0, 0));
        assert_eq!(apply(&ks, load("o1", rows)), Output::Int(0), "a second load of the same object");
    }

    #[test]
    fn flushall_forgets_cold_slots_and_snapshots_carry_them() {
        let ks = sample();
        let (op, _) = spilled(&ks, ks.slot_version(slot()));
        assert_eq!(apply(&ks, Op::Tier(op)), Output::Int(1));
        let image = ks.snapshot_now();
        assert_eq!(image.tier.cold.len(), 1);
        assert_eq!(image.tier.cold[0].0, slot().get());
        let other = Keyspace::new();
        other.tier.install(&image.tier);
        assert!(other.tier.is_cold(slot().get()));

        assert_eq!(apply(&ks, Op::FlushAll), Output::Ok);
        assert!(!ks.tier.is_cold(slot().get()));
        assert_eq!(ks.tier.totals(), (0, 0, 0));
    }

    /// Plain SET, SET ... PXAT in the past (the key's latest write, already expired) and
    /// MSET: writes that replace whole values without reading them.
    fn blind_writes() -> Vec<Op> {
        let set = |k: &'static str, v: &'static str, ttl| Op::Set {
            key: Bytes::from_static(k.as_bytes()),
            value: Bytes::from_static(v.as_bytes()),
            exists: crate::Exists::Any,
            ttl,
            get: false,
        };
        vec![
            set("{p}h", "now a string", crate::TtlChange::Clear),
            set("{p}new", "fresh", crate::TtlChange::At(4_102_444_800_000)),
            set("{p}l", "gone", crate::TtlChange::At(1)),
            Op::MSet { pairs: vec![(Bytes::from_static(b"{p}s"), Bytes::from_static(b"v2"))], nx: false },
        ]
    }

    /// The sample slot spilled as object "o1", then `blind_writes` applied to it cold;
    /// also returns the object's rows and the same writes applied to a hot copy.
    fn cold_with_delta() -> (Keyspace, Vec<(Bytes, u64, Bytes)>, Keyspace) {
        let ks = sample();
        let (op, rows) = spilled(&ks, ks.slot_version(slot()));
        assert_eq!(apply(&ks, Op::Tier(op)), Output::Int(1));
        let model = sample();
        for w in blind_writes() {
            assert_eq!(apply(&ks, w.clone()), Output::Ok, "{w:?} on the cold slot");
            assert_eq!(apply(&model, w), Output::Ok);
        }
        (ks, rows, model)
    }

    #[test]
    fn blind_writes_to_a_cold_slot_go_to_its_delta_and_win_over_the_object() {
        let (ks, rows, model) = cold_with_delta();
        assert!(ks.tier.is_cold(slot().get()), "the slot stays cold");
        assert_eq!(ks.slot(slot()).len(), 4);
        assert!(ks.holds(b"{p}l") && !ks.holds(b"{p}set"), "the delta decides only what it holds");
        assert_eq!(ks.delta_totals().0, 1);
        // Writes that read the old value still need the load.
        let nx = Op::Set {
            key: Bytes::from_static(b"{p}s"),
            value: Bytes::from_static(b"x"),
            exists: crate::Exists::Absent,
            ttl: crate::TtlChange::Clear,
            get: false,
        };
        for w in [nx, Op::Del { keys: vec![Bytes::from_static(b"{p}new")] }] {
            assert_eq!(apply(&ks, w), Output::Err(OpError::Cold(slot().get())));
        }
        // Active expiry leaves the delta's expired entry: it hides the object's list.
        let mut cursor = crate::keyspace::ExpiryCursor::default();
        for _ in 0..20 {
            assert!(ks.find_expired(&mut cursor, 10, 4096).is_empty());
        }

        let load = Op::Tier(TierOp::Loaded { slot: slot().get(), object: "o1".into(), rows });
        assert_eq!(apply(&ks, load), Output::Int(1));
        assert!(!ks.tier.is_cold(slot().get()));
        assert_eq!(dump_slot(&ks, slot()), dump_slot(&model, slot()), "object + delta = the writes on a hot slot");
        assert_eq!(ks.key_count(), model.key_count());
        let charged: usize = {
            let t = ks.slot(slot());
            (0..t.len()).filter_map(|i| t.get_index(i)).map(|(k, e)| e.mem(k.len())).sum()
        };
        assert_eq!(ks.used_memory(), charged as u64, "delta and object rows both counted, once");
        assert_eq!(ks.stats().volatile, model.stats().volatile);
        assert!(ks.get(b"{p}l", 2, |e| e.is_none()), "the expired write hides the object's list");
        assert!(ks.tier.loaded_from(slot().get()).is_none(), "a merged slot is not its object: no reuse");
    }

    #[test]
    fn a_compaction_writes_object_and_delta_as_one_object_and_empties_the_delta() {
        let (ks, rows, model) = cold_with_delta();
        let base = format::Partition {
            slot: slot(),
            rows: rows
                .iter()
                .map(|(key, expire_at, payload)| format::Row {
                    key: key.clone(),
                    expire_at: *expire_at,
                    payload: payload.clone(),
                })
                .collect(),
        };
        let v = ks.slot_version(slot());
        let (obj, stats) = compact_slot(&ks, slot(), &base, 2).expect("compact");
        // The expired delta entry removed the key: 10 rows + 1 new - 1 expired.
        assert_eq!(stats.rows, 10);
        let compacted = |base: &str, version| {
            Op::Tier(TierOp::Compacted {
                slot: slot().get(),
                base: base.into(),
                object: "o2".into(),
                crc32c: stats.crc32c,
                rows: stats.rows,
                bytes: stats.object_bytes,
                slot_version: version,
            })
        };
        let generation = ks.tier.generation(slot().get());
        assert_eq!(apply(&ks, compacted("o0", v)), Output::Int(0), "not the object the manifest names");
        assert_eq!(apply(&ks, compacted("o1", v + 1)), Output::Int(0), "a write landed after the merge");
        assert_eq!(ks.slot(slot()).len(), 4);
        assert_eq!(apply(&ks, compacted("o1", v)), Output::Int(1));
        assert!(ks.tier.is_cold(slot().get()) && ks.slot(slot()).is_empty() && ks.used_memory() == 0);
        assert_eq!(ks.tier.entry(slot().get()).map(|e| (e.object, e.rows)), Some(("o2".to_string(), 10)));
        assert_eq!(ks.tier.generation(slot().get()), generation + 2, "odd still, and readers see a transition");
        assert_eq!(ks.slot_version(slot()), v);

        // The new object is the model minus the key whose last write expired.
        let back = Keyspace::new();
        load_into(&back, obj.bytes).expect("load the compacted object");
        let mut expected = dump_slot(&model, slot());
        expected.retain(|(k, _, _)| k != b"{p}l");
        assert_eq!(dump_slot(&back, slot()), expected);
    }

    /// Random writes (blind ones to the delta of a cold slot, others after a load),
    /// spills, compactions, loads and reads of one slot, beside the same writes on a
    /// keyspace that never tiers: every read and every write's reply agree, and at the
    /// end the live keys are equal.
    #[test]
    fn random_tier_moves_under_writes_match_a_keyspace_that_never_tiers() {
        use std::collections::HashMap;
        let key = |i: u64| Bytes::from(format!("{{p}}k{i}"));
        for seed in 0..40u64 {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let (ks, model) = (Keyspace::new(), Keyspace::new());
            let mut objects: HashMap<String, Vec<format::Row>> = HashMap::new();
            let mut now = 1_000u64;
            let at = |ks: &Keyspace, now, op| ks.apply(&Write { now_ms: now, op });
            // Brings the cold slot back, as a node's load does.
            let load = |ks: &Keyspace, objects: &HashMap<String, Vec<format::Row>>, now| {
                let entry = ks.tier.entry(slot().get()).expect("cold");
                let rows = objects[&entry.object].iter().map(|r| (r.key.clone(), r.expire_at, r.payload.clone()));
                let op = Op::Tier(TierOp::Loaded { slot: slot().get(), object: entry.object, rows: rows.collect() });
                assert_eq!(at(ks, now, op), Output::Int(1), "seed {seed}");
            };
            for step in 0..400 {
                now += rng.random_range(0..40);
                let cold = ks.tier.is_cold(slot().get());
                let k = key(rng.random_range(0..12));
                let value = Bytes::from(format!("v{step}"));
                let ttl = match rng.random_range(0..4) {
                    0 => crate::TtlChange::At(now + rng.random_range(1..200)),
                    1 => crate::TtlChange::At(now.saturating_sub(5)),
                    _ => crate::TtlChange::Clear,
                };
                match rng.random_range(0..12) {
                    0..=3 => {
                        let op = if rng.random_bool(0.5) {
                            Op::Set { key: k, value, exists: crate::Exists::Any, ttl, get: false }
                        } else {
                            let pairs =
                                (0..rng.random_range(1..4)).map(|_| (key(rng.random_range(0..12)), value.clone()));
                            Op::MSet { pairs: pairs.collect(), nx: false }
                        };
                        assert_eq!(at(&ks, now, op.clone()), at(&model, now, op), "seed {seed} step {step}");
                    }
                    4..=5 => {
                        let op = match rng.random_range(0..3) {
                            0 => Op::Append { key: k, value },
                            1 => Op::Del { keys: vec![k] },
                            _ => Op::Set { key: k, value, exists: crate::Exists::Absent, ttl, get: true },
                        };
                        if cold {
                            assert_eq!(at(&ks, now, op.clone()), Output::Err(OpError::Cold(slot().get())));
                            load(&ks, &objects, now);
                        }
                        assert_eq!(at(&ks, now, op.clone()), at(&model, now, op), "seed {seed} step {step}");
                    }
                    6 if !cold => {
                        let (obj, stats) = spill_slot(&ks, slot()).expect("spill");
                        let name = format!("o{step}");
                        objects.insert(name.clone(), format::decode(obj.bytes).expect("decode").rows);
                        let op = TierOp::Spilled {
                            slot: slot().get(),
                            object: name,
                            crc32c: stats.crc32c,
                            rows: stats.rows,
                            bytes: stats.object_bytes,
                            slot_version: ks.slot_version(slot()),
                        };
                        assert_eq!(at(&ks, now, Op::Tier(op)), Output::Int(1));
                    }
                    7 if cold => {
                        let base = ks.tier.entry(slot().get()).expect("cold").object;
                        let partition = format::Partition { slot: slot(), rows: objects[&base].clone() };
                        let (obj, stats) = compact_slot(&ks, slot(), &partition, now).expect("compact");
                        let name = format!("o{step}");
                        objects.insert(name.clone(), format::decode(obj.bytes).expect("decode").rows);
                        let op = TierOp::Compacted {
                            slot: slot().get(),
                            base,
                            object: name,
                            crc32c: stats.crc32c,
                            rows: stats.rows,
                            bytes: stats.object_bytes,
                            slot_version: ks.slot_version(slot()),
                        };
                        assert_eq!(at(&ks, now, Op::Tier(op)), Output::Int(1));
                        assert!(ks.slot(slot()).is_empty(), "the delta left memory");
                    }
                    8 if cold => load(&ks, &objects, now),
                    _ => {
                        // A read is served where the node serves it: a hot slot, or a
                        // key the delta decides; otherwise the node loads first.
                        if cold && !ks.holds(&k) {
                            load(&ks, &objects, now);
                        }
                        let read = |ks: &Keyspace| ks.get(&k, now, |e| e.map(|e| (e.value.clone(), e.expire_at)));
                        assert_eq!(read(&ks), read(&model), "seed {seed} step {step}: GET {k:?}");
                    }
                }
            }
            if ks.tier.is_cold(slot().get()) {
                load(&ks, &objects, now);
            }
            let live = |ks: &Keyspace| {
                let mut v: Vec<_> = dump_slot(ks, slot()).into_iter().filter(|(_, e, _)| *e == 0 || *e > now).collect();
                v.sort();
                v
            };
            assert_eq!(live(&ks), live(&model), "seed {seed}: the live keys at the end");
        }
    }
}
