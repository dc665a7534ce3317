//! Tests of the state machine over a real keyspace: apply order and outputs, snapshots of
//! every value kind, snapshot isolation from later writes, corrupt snapshots.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::RaftStateMachine;
use openraft::testing::log_id;
use openraft::{EntryPayload, Membership, RaftSnapshotBuilder};
use prism_engine::graph::{EdgeHalf, GraphOp};
use prism_engine::list::{End, ListOp};
use prism_engine::set::SetOp;
use prism_engine::zset::{AddFlags, ZSetOp};
use prism_engine::{Entry as KeyEntry, Exists, Keyspace, Op, Output, Slot, TtlChange, Write};

use crate::types::{Entry, SnapshotMeta, StoredMembership};
use crate::KeyspaceStateMachine;

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

fn set(k: &str, v: &str) -> Op {
    Op::Set { key: b(k), value: b(v), exists: Exists::Any, ttl: TtlChange::Clear, get: false }
}

fn write(op: Op) -> Write {
    Write { now_ms: 1_000, op }
}

fn normal(index: u64, ops: Vec<Op>) -> Entry {
    Entry { log_id: log_id(1, 0, index), payload: EntryPayload::Normal(ops.into_iter().map(write).collect()) }
}

fn new_sm(dir: &tempfile::TempDir) -> KeyspaceStateMachine {
    KeyspaceStateMachine::open(dir.path(), Arc::new(Keyspace::new())).expect("open state machine")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
}

/// One op of every value kind, with a TTL on a string, a vertex and an edge.
fn every_kind(index: u64) -> Entry {
    let (out, inn) = EdgeHalf::pair(&b("{g}a"), &b("follows"), &b("{g}b"));
    normal(
        index,
        vec![
            set("s", "v"),
            Op::Set { key: b("ttl"), value: b("x"), exists: Exists::Any, ttl: TtlChange::At(5_000), get: false },
            Op::HSet { key: b("h"), pairs: vec![(b("f1"), b("1")), (b("f2"), b("2"))], nx: false },
            Op::Sets(SetOp::Add { key: b("set"), members: vec![b("a"), b("b"), b("c")] }),
            Op::SortedSets(ZSetOp::Add {
                key: b("z"),
                flags: AddFlags::default(),
                pairs: vec![(1.5, b("m1")), (-2.0, b("m2"))],
            }),
            Op::Lists(ListOp::Push {
                key: b("l"),
                end: End::Right,
                elements: vec![b("1"), b("two"), b("3")],
                only_if_exists: false,
            }),
            Op::Graph(GraphOp::SetVertex {
                vid: b("{g}a"),
                label: Some(b("user")),
                props: vec![(b("name"), b("ann"))],
            }),
            Op::Graph(GraphOp::AddEdge { out, inn, rank: Some(42), props: Some(vec![(b("w"), b("1"))]) }),
        ],
    )
}

/// Every entry of a keyspace, in key order.
fn contents(ks: &Keyspace) -> Vec<(Vec<u8>, KeyEntry)> {
    let mut all = Vec::new();
    for slot in Slot::all() {
        let t = ks.slot(slot);
        all.extend((0..t.len()).filter_map(|i| t.get_index(i)).map(|(k, e)| (k.to_vec(), e.clone())));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn applies_in_order_and_returns_outputs() {
    rt().block_on(async {
        let sm_dir = tempfile::tempdir().expect("temp dir");
        let mut sm = new_sm(&sm_dir);
        let members = Membership::new(vec![BTreeSet::from([1, 2, 3])], None);
        let entries = vec![
            Entry { log_id: log_id(1, 0, 1), payload: EntryPayload::Membership(members.clone()) },
            normal(
                2,
                vec![set("k", "1"), Op::IncrBy { key: b("k"), delta: 5 }, Op::Append { key: b("k"), value: b("x") }],
            ),
            Entry { log_id: log_id(1, 0, 3), payload: EntryPayload::Blank },
            normal(4, vec![Op::IncrBy { key: b("k"), delta: 1 }]),
        ];
        let out = sm.apply(entries).await.expect("apply");
        assert_eq!(
            out,
            vec![
                vec![],
                vec![Output::Ok, Output::Int(6), Output::Int(2)],
                vec![],
                vec![Output::Err(prism_engine::OpError::NotInteger)],
            ]
        );
        let (applied, membership) = sm.applied_state().await.expect("state");
        assert_eq!(applied, Some(log_id(1, 0, 4)));
        assert_eq!(membership, StoredMembership::new(Some(log_id(1, 0, 1)), members));
        let ks = sm.keyspace();
        assert_eq!(ks.get(b"k", 1_000, |e| e.cloned()).map(|e| e.value), Some(prism_engine::Value::Str(b"6x".into())));
    });
}

/// A snapshot of every value kind installs into another state machine as an identical
/// keyspace (entries, deadlines, memory accounting), and replaces what it held.
#[test]
fn snapshot_round_trip_every_kind() {
    rt().block_on(async {
        let leader_dir = tempfile::tempdir().expect("temp dir");
        let mut leader = new_sm(&leader_dir);
        leader.apply([every_kind(1)]).await.expect("apply");
        let snap = leader.get_snapshot_builder().await.build_snapshot().await.expect("build");
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 0, 1)));

        let follower_dir = tempfile::tempdir().expect("temp dir");
        let mut follower = new_sm(&follower_dir);
        follower.apply([normal(1, vec![set("stale", "gone")])]).await.expect("apply");
        let handle = follower.keyspace();
        let mut data = follower.begin_receiving_snapshot().await.expect("begin");
        *data = *snap.snapshot;
        follower.install_snapshot(&snap.meta, data).await.expect("install");

        let (src, dst) = (leader.keyspace(), handle.clone());
        assert_eq!(contents(&src), contents(&dst));
        assert_eq!(contents(&src).len(), 8, "every kind present");
        assert_eq!(src.used_memory(), dst.used_memory());
        assert_eq!(src.key_count(), dst.key_count());
        assert_eq!(dst.get(b"ttl", 0, |e| e.map(|e| e.expire_at)), Some(5_000));
        assert_eq!(follower.applied_state().await.expect("state").0, Some(log_id(1, 0, 1)));
        let current = follower.get_current_snapshot().await.expect("current").expect("installed snapshot");
        assert_eq!(current.meta, snap.meta);
    });
}

/// The snapshot is the state when the builder was made: writes applied while it builds
/// are not in it.
#[test]
fn snapshot_excludes_later_writes() {
    rt().block_on(async {
        let sm_dir = tempfile::tempdir().expect("temp dir");
        let mut sm = new_sm(&sm_dir);
        sm.apply([normal(1, vec![set("a", "1")])]).await.expect("apply");
        let mut builder = sm.get_snapshot_builder().await;
        sm.apply([normal(2, vec![set("a", "2"), set("b", "2")])]).await.expect("apply");
        let snap = builder.build_snapshot().await.expect("build");
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 0, 1)));
        let ks = crate::snapshot::decode(&Bytes::from(snap.snapshot.into_inner())).expect("decode");
        assert_eq!(contents(&ks), vec![(b"a".to_vec(), KeyEntry::new(prism_engine::Value::Str(b"1".into())))]);
    });
}

/// Corrupt, truncated or foreign snapshot bytes are an error and leave the state machine
/// as it was.
#[test]
fn corrupt_snapshot_is_refused() {
    rt().block_on(async {
        let leader_dir = tempfile::tempdir().expect("temp dir");
        let mut leader = new_sm(&leader_dir);
        leader.apply([every_kind(1)]).await.expect("apply");
        let snap = leader.get_snapshot_builder().await.build_snapshot().await.expect("build");
        let good = snap.snapshot.into_inner();

        let mut flipped = good.clone();
        flipped[20] ^= 0x40;
        let variants: Vec<Vec<u8>> = vec![
            flipped,
            good[..good.len() - 1].to_vec(),
            good[..5].to_vec(),
            Vec::new(),
            b"not a snapshot at all".to_vec(),
        ];
        let follower_dir = tempfile::tempdir().expect("temp dir");
        let mut follower = new_sm(&follower_dir);
        follower.apply([normal(1, vec![set("keep", "me")])]).await.expect("apply");
        for bytes in variants {
            let meta = SnapshotMeta { last_log_id: Some(log_id(1, 0, 9)), ..snap.meta.clone() };
            let err = follower.install_snapshot(&meta, Box::new(Cursor::new(bytes))).await;
            assert!(err.is_err(), "corrupt snapshot installed");
            assert_eq!(follower.applied_state().await.expect("state").0, Some(log_id(1, 0, 1)));
            assert_eq!(contents(&follower.keyspace()).len(), 1);
        }
    });
}

/// A snapshot whose frame is intact but whose value payload is bad names the record.
#[test]
fn bad_value_payload_names_the_key() {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"PRSMSNAP");
    bytes.extend_from_slice(&1u32.to_be_bytes());
    bytes.extend_from_slice(&3u64.to_be_bytes());
    bytes.extend_from_slice(b"key");
    bytes.extend_from_slice(&0u64.to_be_bytes());
    bytes.extend_from_slice(&4u64.to_be_bytes());
    bytes.extend_from_slice(b"junk");
    bytes.extend_from_slice(&1u64.to_be_bytes());
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    let err = crate::snapshot::decode(&Bytes::from(bytes)).err().expect("bad payload refused");
    assert!(err.to_string().contains("\"key\""), "{err}");
}

/// A built snapshot survives a restart: a state machine opened on the same directory holds
/// its keyspace, applied id and membership, and serves it as the current snapshot.
#[test]
fn snapshot_survives_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (meta, before) = rt().block_on(async {
        let mut sm = new_sm(&dir);
        sm.apply([every_kind(1)]).await.expect("apply");
        let snap = sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
        // Applied after the snapshot: not in it, replayed from the log after a restart.
        sm.apply([normal(2, vec![set("later", "x")])]).await.expect("apply");
        (snap.meta, contents(&sm.keyspace()))
    });
    rt().block_on(async {
        let mut sm = new_sm(&dir);
        let (applied, membership) = sm.applied_state().await.expect("state");
        assert_eq!(applied, Some(log_id(1, 0, 1)));
        assert_eq!(membership, meta.last_membership);
        let after = contents(&sm.keyspace());
        assert_eq!(after, before.into_iter().filter(|(k, _)| k != b"later").collect::<Vec<_>>());
        assert_eq!(sm.get_current_snapshot().await.expect("current").map(|s| s.meta), Some(meta));
    });
}

/// A damaged snapshot file is an error when opening, not a panic nor an empty state.
#[test]
fn damaged_snapshot_file_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    rt().block_on(async {
        let mut sm = new_sm(&dir);
        sm.apply([every_kind(1)]).await.expect("apply");
        sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
    });
    let path = dir.path().join("snapshot");
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    assert!(KeyspaceStateMachine::open(dir.path(), Arc::new(Keyspace::new())).is_err());
    std::fs::write(&path, &bytes[..10]).expect("write");
    assert!(KeyspaceStateMachine::open(dir.path(), Arc::new(Keyspace::new())).is_err());
}

/// Entry `index` writes `per` keys spread over the slots, and overwrites one key of the
/// entry before (entry 1: adds `k0:0`).
fn spread(index: u64, per: u64) -> Entry {
    let mut ops: Vec<Op> = (0..per).map(|i| set(&format!("k{index}:{i}"), &format!("v{index}"))).collect();
    ops.push(set(&format!("k{}:0", index.saturating_sub(1)), &format!("over{index}")));
    normal(index, ops)
}

/// A snapshot taken while applies go on is the state at its index: installed on a fresh
/// state machine it equals a replay of the log up to that index, slot versions included,
/// and after the rest of the log both members are identical again.
#[test]
fn snapshot_during_writes_installs_as_a_replay() {
    rt().block_on(async {
        let leader_dir = tempfile::tempdir().expect("temp dir");
        let mut leader = new_sm(&leader_dir);
        let replay_dir = tempfile::tempdir().expect("temp dir");
        let mut replay = new_sm(&replay_dir);
        for i in 1..=20 {
            leader.apply([spread(i, 500)]).await.expect("apply");
            replay.apply([spread(i, 500)]).await.expect("apply");
        }
        let mut builder = leader.get_snapshot_builder().await;
        let build = tokio::spawn(async move { builder.build_snapshot().await });
        // Writes keep applying while the background copy runs.
        for i in 21..=40 {
            leader.apply([spread(i, 500)]).await.expect("apply");
        }
        let snap = build.await.expect("build task").expect("build");
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 0, 20)));

        let follower_dir = tempfile::tempdir().expect("temp dir");
        let mut follower = new_sm(&follower_dir);
        follower.install_snapshot(&snap.meta, snap.snapshot).await.expect("install");
        let (f, r) = (follower.keyspace(), replay.keyspace());
        assert_eq!(contents(&f), contents(&r));
        assert_eq!(f.slot_versions(), r.slot_versions());
        assert!(r.slot_versions().iter().any(|v| *v > 0));
        assert_eq!((f.key_count(), f.used_memory()), (r.key_count(), r.used_memory()));

        for i in 21..=40 {
            follower.apply([spread(i, 500)]).await.expect("apply");
        }
        let l = leader.keyspace();
        assert_eq!(contents(&f), contents(&l));
        assert_eq!(f.slot_versions(), l.slot_versions());
        assert_eq!((f.key_count(), f.used_memory()), (l.key_count(), l.used_memory()));
    });
}

/// The bytes of a snapshot holding `records` (key, DUMP payload), in format `version`
/// with the given versions block (v2 only), framed with a correct trailer.
fn framed(version: u32, versions: &[(u16, u64)], count_field: Option<u32>, records: &[(&str, Bytes)]) -> Bytes {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"PRSMSNAP");
    bytes.extend_from_slice(&version.to_be_bytes());
    if version >= 2 {
        bytes.extend_from_slice(&count_field.unwrap_or(versions.len() as u32).to_be_bytes());
        for (s, v) in versions {
            bytes.extend_from_slice(&s.to_be_bytes());
            bytes.extend_from_slice(&v.to_be_bytes());
        }
    }
    for (k, payload) in records {
        bytes.extend_from_slice(&(k.len() as u64).to_be_bytes());
        bytes.extend_from_slice(k.as_bytes());
        bytes.extend_from_slice(&0u64.to_be_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        bytes.extend_from_slice(payload);
    }
    bytes.extend_from_slice(&(records.len() as u64).to_be_bytes());
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

/// A snapshot written before slot versions existed (format 1) still installs, with every
/// version 0; a format 2 snapshot sets exactly the versions it lists; a malformed versions
/// block is an error, not a panic.
#[test]
fn slot_versions_in_the_format() {
    let payload = Bytes::from(prism_engine::dump::encode(&prism_engine::Value::Str(b"v".into())));
    let old = crate::snapshot::decode(&framed(1, &[], None, &[("a", payload.clone())])).expect("format 1");
    assert!(old.get(b"a", 0, |e| e.is_some()));
    assert!(old.slot_versions().iter().all(|v| *v == 0), "restores do not count");

    let new =
        crate::snapshot::decode(&framed(2, &[(3, 9), (16383, 1)], None, &[("a", payload.clone())])).expect("format 2");
    let mut expected = vec![0u64; prism_engine::SLOT_COUNT];
    expected[3] = 9;
    expected[16383] = 1;
    assert_eq!(new.slot_versions(), expected);

    for bad in [
        framed(2, &[(16384, 1)], None, &[]),
        framed(2, &[(5, 1), (5, 2)], None, &[]),
        framed(2, &[(5, 1), (4, 2)], None, &[]),
        framed(2, &[], Some(u32::MAX), &[]),
        framed(2, &[(1, 1)], Some(2), &[]),
        framed(3, &[], None, &[]),
    ] {
        assert!(crate::snapshot::decode(&bad).is_err());
    }
}

/// A snapshot carries the cold-tier manifest: the follower that installs it knows the
/// cold slot's object, and its hot keys, as the leader does.
#[test]
fn snapshot_carries_cold_slots() {
    use prism_engine::tier::manifest::TierOp;
    rt().block_on(async {
        let leader_dir = tempfile::tempdir().expect("temp dir");
        let mut leader = new_sm(&leader_dir);
        leader.apply([normal(1, vec![set("{a}1", "x"), set("{a}2", "y"), set("hot", "z")])]).await.expect("apply");
        let ks = leader.keyspace();
        let slot = Slot::of_key(b"{a}");
        let spilled = TierOp::Spilled {
            slot: slot.get(),
            object: "slot-x/o.1.00000000.arrow".into(),
            crc32c: 0,
            rows: 2,
            bytes: 1,
            slot_version: ks.slot_version(slot),
        };
        let out = leader.apply([normal(2, vec![Op::Tier(spilled)])]).await.expect("apply");
        assert_eq!(out, vec![vec![Output::Int(1)]]);
        let snap = leader.get_snapshot_builder().await.build_snapshot().await.expect("build");
        let raw = snap.snapshot.get_ref().clone();

        let follower_dir = tempfile::tempdir().expect("temp dir");
        let mut follower = new_sm(&follower_dir);
        let handle = follower.keyspace();
        let mut data = follower.begin_receiving_snapshot().await.expect("begin");
        *data = *snap.snapshot;
        follower.install_snapshot(&snap.meta, data).await.expect("install");
        assert!(handle.tier.is_cold(slot.get()));
        assert_eq!(handle.tier.entry(slot.get()).map(|e| e.object), Some("slot-x/o.1.00000000.arrow".into()));
        assert_eq!(handle.tier.totals().1, 2);
        assert_eq!(contents(&handle).len(), 1, "only the hot key is in memory");
        // The cold-object GC reads what the current snapshot references, on both.
        let named = vec!["slot-x/o.1.00000000.arrow".to_string()];
        assert_eq!(leader.snapshot_view().cold_objects(), Ok(named.clone()));
        assert_eq!(follower.snapshot_view().cold_objects(), Ok(named));
        assert_eq!(new_sm(&tempfile::tempdir().expect("dir")).snapshot_view().cold_objects(), Ok(vec![]));
        // A corrupt snapshot is an error, never a partial list.
        let mut bytes = raw;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        assert!(crate::snapshot::cold_manifest(&bytes::Bytes::from(bytes)).is_err());
    });
}
