//! The cold tier through a real prism process: a node whose data is several times its
//! `maxmemory` spills slots to `<data-dir>/cold` and keeps serving every key, across a
//! kill -9 and restart; a corrupt object answers `-TRYAGAIN` for its slot only.

use std::collections::BTreeMap;

use prism_engine::Slot;
use prism_tests::backups::files;
use prism_tests::cold_model::{call, check_all, info_field, text, wait_spilled, write_all, TIMEOUT};
use prism_tests::fleet::{Fleet, FleetOptions, RespConn};

fn connect(fleet: &Fleet, i: usize) -> RespConn {
    RespConn::connect(fleet.client_addrs()[i], TIMEOUT).expect("connect")
}

#[test]
fn a_node_with_data_far_above_maxmemory_serves_every_key_across_a_restart() {
    let maxmemory = 8u64 << 20;
    let opts = FleetOptions { nodes: 1, extra_args: vec!["--maxmemory".into(), "8mb".into()], ..Default::default() };
    let mut fleet = Fleet::start(&opts).expect("node starts");
    fleet.wait_for_leader(None, TIMEOUT).expect("leader");
    let mut c = connect(&fleet, 0);
    let mut m = write_all(&mut c);
    wait_spilled(&mut c, maxmemory);
    assert!(info_field(&mut c, "tiering", "spills") > 0);
    assert!(info_field(&mut c, "tiering", "cold_rows") > 0);
    assert_eq!(text(&call(&mut c, &["DBSIZE"])), m.keys().to_string(), "DBSIZE counts cold keys");

    check_all(&mut c, &m);
    assert!(info_field(&mut c, "tiering", "loads") > 0, "reads loaded cold slots");

    // Writes to keys wherever they are (cold ones load first).
    wait_spilled(&mut c, maxmemory);
    for (i, (k, v)) in m.strings.iter_mut().enumerate().filter(|(i, _)| i % 7 == 0) {
        let tail = format!("+{i}");
        let len = call(&mut c, &["APPEND", k, &tail]);
        v.push_str(&tail);
        assert_eq!(text(&len), v.len().to_string(), "APPEND {k}");
    }
    check_all(&mut c, &m);

    // kill -9 with cold slots, restart: the log replays spills and loads.
    wait_spilled(&mut c, maxmemory);
    drop(c);
    fleet.kill(0);
    fleet.restart(0).expect("restart");
    fleet.wait_for_leader(None, TIMEOUT).expect("leader after restart");
    let mut c = connect(&fleet, 0);
    assert!(info_field(&mut c, "tiering", "cold_partitions") > 0, "cold slots survive the restart");
    assert_eq!(text(&call(&mut c, &["DBSIZE"])), m.keys().to_string());
    check_all(&mut c, &m);

    // A corrupt object: its slot answers TRYAGAIN, other slots keep serving.
    wait_spilled(&mut c, maxmemory);
    let cold_dir = fleet.data_dir(0).expect("data dir").join("cold");
    let mut by_slot: BTreeMap<u16, String> = BTreeMap::new();
    for k in m.strings.keys() {
        by_slot.entry(Slot::of_key(k.as_bytes()).get()).or_insert_with(|| k.clone());
    }
    let mut corrupted = None;
    for (slot, key) in &by_slot {
        let dir = cold_dir.join(format!("slot-{slot:05}"));
        let Ok(files) = std::fs::read_dir(&dir) else { continue };
        for f in files.flatten() {
            let mut bytes = std::fs::read(f.path()).expect("read object");
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(f.path(), bytes).expect("corrupt object");
        }
        // Hot now (loaded meanwhile)? Then its files are stale; try another slot.
        let r = text(&c.call(&["GET", key]).expect("reply"));
        if r.starts_with("-TRYAGAIN cold partition unavailable") {
            corrupted = Some((*slot, key.clone(), r));
            break;
        }
    }
    let (slot, key, reply) = corrupted.expect("some cold slot's object was corrupted");
    assert!(reply.contains("verification") || reply.contains("checksum"), "{reply}");
    assert!(info_field(&mut c, "tiering", "checksum_failures") >= 1);
    assert!(text(&c.call(&["GET", &key]).expect("reply")).starts_with("-TRYAGAIN"), "still refused, never wrong data");
    for (k, v) in m.strings.iter().filter(|(k, _)| Slot::of_key(k.as_bytes()).get() != slot).take(200) {
        assert_eq!(&text(&call(&mut c, &["GET", k])), v, "GET {k} beside the corrupt slot");
    }
}

/// A three-member group sharing one cold store: the leader spills, the followers drop
/// the same slots when they apply the manifest entry, and after the leader is killed the
/// new leader loads the cold slots and answers every key. A group with no shared store
/// keeps its data in memory (no member can spill to a directory only it can read).
#[test]
fn a_replicated_group_spills_through_the_log_and_a_new_leader_reads_cold_keys() {
    let maxmemory = 8u64 << 20;
    let shared = tempfile::tempdir().expect("tempdir");
    let store = shared.path().join("cold").display().to_string();
    let args = ["--maxmemory", "8mb", "--cold-store", &store].map(String::from).to_vec();
    let mut fleet = Fleet::start(&FleetOptions { nodes: 3, extra_args: args, ..Default::default() }).expect("start");
    let leader = fleet.wait_for_leader(None, TIMEOUT).expect("leader");
    let mut c = connect(&fleet, leader);
    let mut m = write_all(&mut c);
    wait_spilled(&mut c, maxmemory);
    let cold = info_field(&mut c, "tiering", "cold_partitions");
    assert!(cold > 0);
    for f in (0..3).filter(|&i| i != leader) {
        let mut fc = connect(&fleet, f);
        // Followers apply the same Spilled entries: cold slots, memory under the limit.
        let deadline = std::time::Instant::now() + TIMEOUT;
        while info_field(&mut fc, "tiering", "cold_partitions") == 0
            || info_field(&mut fc, "memory", "used_memory") > maxmemory
        {
            assert!(std::time::Instant::now() < deadline, "follower {f} never dropped the spilled slots");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(info_field(&mut fc, "tiering", "spills"), 0, "followers never spill themselves");
    }
    assert_eq!(text(&call(&mut c, &["DBSIZE"])), m.keys().to_string());
    // Overwrites of cold keys go to their slots' deltas, on every member through the log.
    for (k, v) in m.strings.iter_mut().step_by(5) {
        *v = format!("{v}+delta");
        assert_eq!(text(&call(&mut c, &["SET", k, v])), "OK", "SET {k}");
    }
    assert!(info_field(&mut c, "tiering", "delta_keys") > 0, "some overwrites went to deltas");
    drop(c);
    fleet.kill(leader);
    let next = fleet.wait_for_leader(Some(leader), TIMEOUT).expect("new leader");
    let mut c = connect(&fleet, next);
    check_all(&mut c, &m);
    assert!(info_field(&mut c, "tiering", "loads") > 0, "the new leader loaded slots the old one spilled");
}

#[test]
fn a_replicated_group_without_a_shared_store_does_not_spill() {
    let args = ["--maxmemory", "2mb"].map(String::from).to_vec();
    let fleet = Fleet::start(&FleetOptions { nodes: 3, extra_args: args, ..Default::default() }).expect("start");
    let leader = fleet.wait_for_leader(None, TIMEOUT).expect("leader");
    let mut c = connect(&fleet, leader);
    let value = "x".repeat(8_000);
    let mut refused = None;
    for i in 0..1_000 {
        if let redis_protocol::resp2::types::OwnedFrame::Error(e) =
            c.call(&["SET", &format!("k{i}"), &value]).expect("reply")
        {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("writes past maxmemory are refused");
    assert!(e.starts_with("OOM"), "{e}");
    assert_eq!(info_field(&mut c, "tiering", "cold_partitions"), 0);
    assert_eq!(info_field(&mut c, "tiering", "spills"), 0);
}

/// A pipelined writer far faster than the spiller, filling slots one after another
/// (as a bulk load does): its writes wait for the spiller instead of failing OOM, and
/// memory stays under the limit. Then a read-only pass over everything moves slots in
/// and out, and a slot unchanged since its load spills by naming its object again: the
/// pass writes fewer objects than it spills.
#[test]
fn writers_wait_for_the_spiller_and_unchanged_slots_spill_without_a_write() {
    let maxmemory = 2u64 << 20;
    let opts = FleetOptions { nodes: 1, extra_args: vec!["--maxmemory".into(), "2mb".into()], ..Default::default() };
    let fleet = Fleet::start(&opts).expect("node starts");
    fleet.wait_for_leader(None, TIMEOUT).expect("leader");
    let mut c = connect(&fleet, 0);
    let mut keys: Vec<(u16, String)> =
        (0..6_000).map(|i| format!("fill:{i}")).map(|k| (Slot::of_key(k.as_bytes()).get(), k)).collect();
    keys.sort();
    let value = |k: &str| format!("{k}=").repeat(1_000 / (k.len() + 1) + 1)[..1_000].to_string();
    for batch in keys.chunks(64) {
        for (_, k) in batch {
            c.send(&["SET", k, &value(k)]).expect("send");
        }
        for (_, k) in batch {
            let r = c.read_reply().expect("reply");
            assert_eq!(text(&r), "OK", "SET {k}: a write over maxmemory waits for the spiller, never fails");
        }
    }
    wait_spilled(&mut c, maxmemory);

    let cold_dir = fleet.data_dir(0).expect("data dir").join("cold");
    let objects = || files(&cold_dir).len() as u64;
    let (files, spills, unchanged) =
        (objects(), info_field(&mut c, "tiering", "spills"), info_field(&mut c, "tiering", "spills_unchanged"));
    for (_, k) in &keys {
        assert_eq!(text(&c.call(&["GET", k]).expect("reply")), value(k), "GET {k}");
    }
    wait_spilled(&mut c, maxmemory);
    let spilled = info_field(&mut c, "tiering", "spills") - spills;
    let reused = info_field(&mut c, "tiering", "spills_unchanged") - unchanged;
    let written = objects() - files;
    assert!(reused > 0, "slots read and not written spilled by naming their object again");
    assert!(written < spilled, "{written} objects written for {spilled} spills of a read-only pass");
}

/// Writes that replace whole values (SET, MSET) go to a cold slot's delta: they do not
/// load it, and reading those keys back does not either. A read of another key of the
/// slot loads it, merged under its delta; with memory short, deltas are compacted into
/// new objects; every key reads back its latest value throughout.
#[test]
fn whole_value_writes_to_cold_slots_go_to_deltas_and_are_compacted_under_pressure() {
    let maxmemory = 2u64 << 20;
    let opts = FleetOptions { nodes: 1, extra_args: vec!["--maxmemory".into(), "2mb".into()], ..Default::default() };
    let fleet = Fleet::start(&opts).expect("node starts");
    fleet.wait_for_leader(None, TIMEOUT).expect("leader");
    let mut c = connect(&fleet, 0);
    // Ten keys per slot (a hash tag each), slot after slot.
    let keys: Vec<String> = (0..600).flat_map(|t| (0..10).map(move |i| format!("{{t{t}}}:{i}"))).collect();
    let value = |k: &str, round: usize| format!("{k}/{round}=").repeat(1_000 / (k.len() + 3) + 1)[..1_000].to_string();
    let mut latest: BTreeMap<&str, usize> = BTreeMap::new();
    for batch in keys.chunks(50) {
        for k in batch {
            c.send(&["SET", k, &value(k, 0)]).expect("send");
        }
        for k in batch {
            assert_eq!(text(&c.read_reply().expect("reply")), "OK", "SET {k}");
            latest.insert(k, 0);
        }
    }
    wait_spilled(&mut c, maxmemory);

    // The first slots filled are cold: overwrite one key of each of 20, by SET and by
    // MSET, then read those keys back: no load.
    let (loads, compactions) = (info_field(&mut c, "tiering", "loads"), info_field(&mut c, "tiering", "compactions"));
    let written: Vec<&str> = keys.iter().step_by(10).take(20).map(String::as_str).collect();
    for (n, k) in written.iter().enumerate() {
        let reply =
            if n % 2 == 0 { call(&mut c, &["SET", k, &value(k, 1)]) } else { call(&mut c, &["MSET", k, &value(k, 1)]) };
        assert_eq!(text(&reply), "OK", "overwrite {k}");
        latest.insert(k, 1);
    }
    assert!(info_field(&mut c, "tiering", "delta_keys") > 0, "the writes went to deltas");
    for k in &written {
        assert_eq!(text(&call(&mut c, &["GET", k])), value(k, 1), "GET {k} from the delta");
    }
    // The spiller meanwhile spills hot slots touched before these deltas, not them.
    assert_eq!(info_field(&mut c, "tiering", "compactions"), compactions, "no delta compacted yet");
    assert_eq!(info_field(&mut c, "tiering", "loads"), loads, "delta writes and reads load nothing");
    // A key the delta does not hold loads its slot, merged under the delta.
    let other = keys[1].as_str();
    assert_eq!(text(&call(&mut c, &["GET", other])), value(other, 0));
    assert_eq!(text(&call(&mut c, &["GET", written[0]])), value(written[0], 1), "the delta won over the object");

    // Overwrite half the keys (3 MB) in slot order: deltas outgrow memory and compact.
    for batch in keys.chunks(50).step_by(2) {
        for k in batch {
            c.send(&["SET", k, &value(k, 2)]).expect("send");
        }
        for k in batch {
            assert_eq!(text(&c.read_reply().expect("reply")), "OK", "SET {k}");
            latest.insert(k, 2);
        }
    }
    wait_spilled(&mut c, maxmemory);
    assert!(info_field(&mut c, "tiering", "compactions") > 0, "deltas were compacted into new objects");
    for (k, round) in &latest {
        assert_eq!(text(&call(&mut c, &["GET", k])), value(k, *round), "GET {k}");
    }
    // DBSIZE counts a key both in a delta and in its object twice until the slot loads
    // or compacts (docs/tiering.md): never fewer than there are.
    assert!(text(&call(&mut c, &["DBSIZE"])).parse::<usize>().expect("DBSIZE") >= keys.len());
}
