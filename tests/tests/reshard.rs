//! Resharding online: a fleet of 2 shards x 3 members (6 real `prism` processes) moves
//! slots from one shard to the other and back with `prism cluster reshard` while clients
//! read and write every key of those slots, following `-MOVED`, `-ASK` (behind ASKING)
//! and `-TRYAGAIN`; the history must be linearizable (every acknowledged write found, no
//! lost or stale read), the keys must end on the new owner, and a SETSLOT that would
//! strand keys is refused.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use prism_tests::fleet::{shard_slots, Fleet, FleetOptions, RespConn};
use prism_tests::history::{Workload, WorkloadOptions};
use redis_protocol::resp2::types::OwnedFrame;

const SHARDS: usize = 2;
const MEMBERS: usize = 3;
const BOUND: Duration = Duration::from_secs(60);

fn start() -> Fleet {
    let opts = FleetOptions { nodes: SHARDS * MEMBERS, shards: SHARDS, ..FleetOptions::default() };
    let fleet = Fleet::start(&opts).expect("start a 6-node fleet");
    let deadline = Instant::now() + BOUND;
    while (0..SHARDS).any(|s| leader_of(&fleet, s).is_none()) {
        assert!(Instant::now() < deadline, "no leader in every shard");
        std::thread::sleep(Duration::from_millis(100));
    }
    fleet
}

fn leader_of(fleet: &Fleet, s: usize) -> Option<usize> {
    (s * MEMBERS..(s + 1) * MEMBERS).find(|&i| fleet.raft_info(i).is_some_and(|r| r.role == "leader"))
}

fn call(addr: SocketAddr, args: &[&str]) -> OwnedFrame {
    let mut c = RespConn::connect(addr, Duration::from_secs(5)).expect("connect");
    c.call(args).expect("reply")
}

fn key_slot(key: &str) -> u16 {
    prism_engine::Slot::of_key(key.as_bytes()).get()
}

/// `prism cluster reshard` on the fleet's topology file.
fn reshard(fleet: &Fleet, slots: &str, to: usize) {
    let topology = fleet.topology_path().expect("topology file");
    let out = Command::new(prism_tests::prism_bin())
        .args(["cluster", "reshard", "--topology"])
        .arg(&topology)
        .args(["--slots", slots, "--to", &to.to_string(), "--wait", "120"])
        .output()
        .expect("run prism cluster reshard");
    assert!(
        out.status.success(),
        "reshard {slots} -> {to} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The client port of the master serving `slot`, per CLUSTER SLOTS of `addr`.
fn master_port(addr: SocketAddr, slot: u16) -> Option<i64> {
    let OwnedFrame::Array(ranges) = call(addr, &["CLUSTER", "SLOTS"]) else { return None };
    ranges.iter().find_map(|r| match r {
        OwnedFrame::Array(p) => match (&p[0], &p[1], &p[2]) {
            (OwnedFrame::Integer(a), OwnedFrame::Integer(b), OwnedFrame::Array(m))
                if (*a..=*b).contains(&i64::from(slot)) =>
            {
                match m.get(1) {
                    Some(OwnedFrame::Integer(port)) => Some(*port),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    })
}

#[test]
fn slots_move_back_and_forth_under_a_linearizable_workload() {
    let fleet = start();
    let addrs = fleet.client_addrs();
    let (first, last) = shard_slots(0, SHARDS);
    // The workload's keys k0..k23; move the slots of those served by shard 1 (id 1).
    let keys = 24;
    let mut moving: Vec<u16> =
        (0..keys).map(|k| key_slot(&format!("k{k}"))).filter(|s| (first..=last).contains(s)).collect();
    moving.sort_unstable();
    moving.dedup();
    assert!(moving.len() >= 4, "too few workload keys on shard 1: {moving:?}");
    let slots = moving.iter().map(u16::to_string).collect::<Vec<_>>().join(",");

    let opts = WorkloadOptions { clients: 4, keys, read_percent: 40, seed: 7, ..WorkloadOptions::default() };
    let mut w = Workload::start(addrs.clone(), opts);
    std::thread::sleep(Duration::from_millis(800));
    for round in 0..2 {
        reshard(&fleet, &slots, 2);
        // Every node's map shows shard 2 (nodes 4..6) as the owner once gossip caught up.
        let deadline = Instant::now() + BOUND;
        let shard2_ports: Vec<i64> = addrs[MEMBERS..].iter().map(|a| i64::from(a.port())).collect();
        while !addrs.iter().all(|&a| master_port(a, moving[0]).is_some_and(|p| shard2_ports.contains(&p))) {
            assert!(Instant::now() < deadline, "round {round}: the fleet's map never showed the move");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        reshard(&fleet, &slots, 1);
        std::thread::sleep(Duration::from_millis(500));
    }
    w.stop();
    w.final_reads(BOUND).expect("final reads");
    let report = w.check();
    let counts = w.counts();
    println!("reshard: {counts}\nreshard: {report}\nunexpected: {:?}", w.unexpected_replies());
    assert!(report.is_linearizable(), "{report}\n{}", w.explain(&report));
    assert!(counts.writes_ok > 50, "too few acknowledged writes: {counts}");
    assert!(w.unexpected_replies().is_empty(), "replies outside the contract: {:?}", w.unexpected_replies());

    // Back on shard 1: its leader holds the keys; shard 2's holds none of those slots.
    let l1 = leader_of(&fleet, 0).expect("shard 1 leader");
    let l2 = leader_of(&fleet, 1).expect("shard 2 leader");
    for &s in &moving {
        let n = |i: usize| match call(addrs[i], &["CLUSTER", "COUNTKEYSINSLOT", &s.to_string()]) {
            OwnedFrame::Integer(n) => n,
            other => panic!("COUNTKEYSINSLOT: {other:?}"),
        };
        assert_eq!(n(l2), 0, "slot {s} left keys on shard 2");
        assert!(n(l1) >= 1, "slot {s} has no keys on shard 1");
    }
}

#[test]
fn setslot_refuses_what_would_strand_keys() {
    let fleet = start();
    let addrs = fleet.client_addrs();
    let l1 = leader_of(&fleet, 0).expect("leader");
    let l2 = leader_of(&fleet, 1).expect("leader");
    let key = (0..1000).map(|k| format!("s{k}")).find(|k| key_slot(k) < 100).expect("a key of a low slot");
    let slot = key_slot(&key).to_string();
    let mut c = RespConn::connect(addrs[l1], Duration::from_secs(5)).expect("connect");
    assert!(matches!(c.call(&["SET", &key, "v"]), Ok(OwnedFrame::SimpleString(_))));
    let id = |i: usize| match call(addrs[i], &["CLUSTER", "MYID"]) {
        OwnedFrame::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("MYID: {other:?}"),
    };
    let err = |f: OwnedFrame| match f {
        OwnedFrame::Error(e) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    };
    // Giving away a slot that still holds a key: Redis's refusal.
    let e = err(call(addrs[l1], &["CLUSTER", "SETSLOT", &slot, "NODE", &id(l2)]));
    assert!(e.contains("still hold keys"), "{e}");
    // Taking a slot that was never imported.
    let e = err(call(addrs[l2], &["CLUSTER", "SETSLOT", &slot, "NODE", &id(l2)]));
    assert!(e.contains("not being imported"), "{e}");
    // Bad arguments.
    assert!(err(call(addrs[l1], &["CLUSTER", "SETSLOT", "16384", "STABLE"])).contains("slot"));
    assert!(err(call(addrs[l1], &["CLUSTER", "SETSLOT", &slot, "MIGRATING", "nosuchnode"])).contains("don't know"));
    // Nothing changed: the key is still served where it was.
    assert_eq!(call(addrs[l1], &["GET", &key]), OwnedFrame::BulkString(b"v".to_vec()));
    // A write on shard 2 for that slot is redirected to shard 1's leader.
    let e = err(call(addrs[l2], &["SET", &key, "w"]));
    assert!(e.starts_with(&format!("MOVED {slot} ")), "{e}");

    // Shard 2 imports the slot: ASKING opens it for the one next command only, even
    // when that command is refused (a leftover flag would let a later GET read the
    // slot's half-imported state: a false nil).
    let ok = |f: OwnedFrame| assert!(matches!(f, OwnedFrame::SimpleString(_)), "{f:?}");
    ok(call(addrs[l2], &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &id(l1)]));
    let mut c2 = RespConn::connect(addrs[l2], Duration::from_secs(5)).expect("connect");
    for refused in [&["GET"][..], &["NOSUCHCOMMAND", "x"], &["GET", "a", "b"]] {
        assert_eq!(c2.call(&["ASKING"]).expect("ASKING"), OwnedFrame::SimpleString(b"OK".to_vec()));
        err(c2.call(refused).expect("reply"));
        let e = err(c2.call(&["GET", &key]).expect("reply"));
        assert!(e.starts_with(&format!("MOVED {slot} ")), "after ASKING and a refused {refused:?}: {e}");
    }
    // With ASKING right before it, the read is served by the importing shard (nothing
    // imported yet: nil).
    assert_eq!(c2.call(&["ASKING"]).expect("ASKING"), OwnedFrame::SimpleString(b"OK".to_vec()));
    assert_eq!(c2.call(&["GET", &key]).expect("GET"), OwnedFrame::Null);
    ok(call(addrs[l2], &["CLUSTER", "SETSLOT", &slot, "STABLE"]));

    // Shard 1 migrates the slot to shard 2, which does not import it: the mover takes the
    // key out but cannot deliver it. The key is then neither readable (TRYAGAIN) nor gone:
    // GETKEYSINSLOT and COUNTKEYSINSLOT still show it (so redis-cli keeps MIGRATE-ing)
    // and the slot cannot be given away.
    ok(call(addrs[l1], &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &id(l2)]));
    let deadline = Instant::now() + BOUND;
    while !matches!(call(addrs[l1], &["GET", &key]), OwnedFrame::Error(e) if e.starts_with("TRYAGAIN")) {
        assert!(Instant::now() < deadline, "the mover never took the key out");
        std::thread::sleep(Duration::from_millis(50));
    }
    let listed = call(addrs[l1], &["CLUSTER", "GETKEYSINSLOT", &slot, "10"]);
    assert_eq!(listed, OwnedFrame::Array(vec![OwnedFrame::BulkString(key.as_bytes().to_vec())]));
    assert_eq!(call(addrs[l1], &["CLUSTER", "COUNTKEYSINSLOT", &slot]), OwnedFrame::Integer(1));
    let e = err(call(addrs[l1], &["CLUSTER", "SETSLOT", &slot, "NODE", &id(l2)]));
    assert!(e.contains("still hold keys"), "{e}");
}

#[test]
fn a_move_survives_the_source_leader_being_killed() {
    let mut fleet = start();
    let addrs = fleet.client_addrs();
    let (first, last) = shard_slots(0, SHARDS);
    // 12 slots of shard 1, 2000 keys each (hash tags put them in one slot).
    let tags: Vec<String> =
        (0..200).map(|k| format!("t{k}")).filter(|t| (first..=last).contains(&key_slot(t))).take(12).collect();
    let slots: Vec<u16> = tags.iter().map(|t| key_slot(t)).collect();
    let per_tag = 2000;
    let source = leader_of(&fleet, 0).expect("shard 1 leader");
    let mut c = RespConn::connect(addrs[source], Duration::from_secs(30)).expect("connect");
    for t in &tags {
        for i in 0..per_tag {
            c.send(&["SET", &format!("{{{t}}}:{i}"), &format!("{t}-{i}")]).expect("send");
        }
        for _ in 0..per_tag {
            assert!(matches!(c.read_reply(), Ok(OwnedFrame::SimpleString(_))), "fill");
        }
    }
    drop(c);

    let topology = fleet.topology_path().expect("topology file");
    let list = slots.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let mut mover = Command::new(prism_tests::prism_bin())
        .args(["cluster", "reshard", "--topology"])
        .arg(&topology)
        .args(["--slots", &list, "--to", "2", "--wait", "120"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start prism cluster reshard");
    // Kill the source's leader once the move has started (its first slots are migrating).
    let deadline = Instant::now() + BOUND;
    loop {
        let migrating = match call(addrs[source], &["CLUSTER", "COUNTKEYSINSLOT", &slots[0].to_string()]) {
            OwnedFrame::Integer(n) => n < per_tag as i64,
            _ => false,
        };
        if migrating || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    fleet.kill(source);
    let status = mover.wait().expect("wait for reshard");
    let out = mover.stdout.take().map(|mut s| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut s, &mut text).ok();
        text
    });
    assert!(status.success(), "reshard failed after the leader kill: {out:?}");

    // Every key is on shard 2, with its value, and none is left on shard 1.
    let target = leader_of(&fleet, 1).expect("shard 2 leader");
    let new_source = leader_of(&fleet, 0).expect("shard 1 has a new leader");
    for (t, &s) in tags.iter().zip(&slots) {
        let count = |i: usize| match call(addrs[i], &["CLUSTER", "COUNTKEYSINSLOT", &s.to_string()]) {
            OwnedFrame::Integer(n) => n,
            other => panic!("COUNTKEYSINSLOT: {other:?}"),
        };
        assert_eq!(count(target), per_tag as i64, "slot {s} on shard 2");
        assert_eq!(count(new_source), 0, "slot {s} left keys on shard 1");
        let key = format!("{{{t}}}:{}", per_tag - 1);
        assert_eq!(
            call(addrs[target], &["GET", &key]),
            OwnedFrame::BulkString(format!("{t}-{}", per_tag - 1).into_bytes())
        );
    }
}

/// A slot whose keys were spilled to the cold tier moves with every key: the source
/// counts its cold keys (COUNTKEYSINSLOT), loads the slot when it starts migrating, and
/// the target serves every key afterwards. (A cold slot's table is empty: before this
/// was handled, the move saw no keys, handed the slot over, and its keys were lost.)
#[test]
fn a_cold_slot_moves_with_every_key() {
    use prism_tests::cold_model::{call as retrying, info_field, value};
    let shared = tempfile::tempdir().expect("tempdir");
    let store = shared.path().join("cold");
    let args = ["--maxmemory", "4mb", "--cold-store", &store.display().to_string()].map(String::from).to_vec();
    let opts = FleetOptions { nodes: 2, shards: 2, extra_args: args, ..FleetOptions::default() };
    let fleet = Fleet::start(&opts).expect("start a 2-shard fleet");
    let addrs = fleet.client_addrs();
    let deadline = Instant::now() + BOUND;
    while (0..2).any(|i| fleet.raft_info(i).is_none_or(|r| r.role != "leader")) {
        assert!(Instant::now() < deadline, "no leader in every shard");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (first, last) = shard_slots(0, SHARDS);
    let tag = (0..10_000).map(|i| format!("{{cold{i}}}")).find(|t| (first..=last).contains(&key_slot(t))).unwrap();
    let slot = key_slot(&tag);
    let mut c = RespConn::connect(addrs[0], Duration::from_secs(5)).expect("connect");
    // The slot's keys are written first and never touched again: the least recently
    // used slot, so the first the spiller takes once shard 1 passes its maxmemory.
    let keys: Vec<String> = (0..40).map(|i| format!("{tag}:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(retrying(&mut c, &["SET", k, &value(i, 16_000)]), OwnedFrame::SimpleString(b"OK".to_vec()));
    }
    let filler = (0..20_000).map(|i| format!("f{i}")).filter(|k| (first..=last).contains(&key_slot(k)));
    for (i, k) in filler.take(3_000).enumerate() {
        retrying(&mut c, &["SET", &k, &value(i, 4_000)]);
    }
    let deadline = Instant::now() + BOUND;
    while info_field(&mut c, "tiering", "cold_partitions") == 0 {
        assert!(Instant::now() < deadline, "shard 1 never spilled");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The slot was spilled (its object exists) and nothing touched it since.
    let spilled = store.join(format!("slot-{slot:05}"));
    let deadline = Instant::now() + BOUND;
    while !spilled.exists() {
        assert!(Instant::now() < deadline, "slot {slot} was never spilled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let count = |i: usize| call(addrs[i], &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]);
    assert_eq!(count(0), OwnedFrame::Integer(40), "cold keys are keys of the slot");

    reshard(&fleet, &slot.to_string(), 2);
    assert_eq!(count(0), OwnedFrame::Integer(0), "the source kept keys of the moved slot");
    assert_eq!(count(1), OwnedFrame::Integer(40), "the target does not hold every key");
    let mut t = RespConn::connect(addrs[1], Duration::from_secs(5)).expect("connect");
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(t.call(&["GET", k]).expect("GET"), OwnedFrame::BulkString(value(i, 16_000).into_bytes()), "{k}");
    }
    let listed = call(addrs[1], &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "100"]);
    assert!(matches!(&listed, OwnedFrame::Array(a) if a.len() == 40), "{listed:?}");
}

/// `INFO metadata` of a node as field -> value (empty when it cannot be read).
fn metadata(addr: SocketAddr) -> std::collections::HashMap<String, String> {
    let Ok(mut c) = RespConn::connect(addr, Duration::from_secs(2)) else { return Default::default() };
    let text = match c.call(&["INFO", "metadata"]) {
        Ok(OwnedFrame::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => return Default::default(),
    };
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect()
}

/// Field `k` of an `INFO metadata` map ("" when absent).
fn field(m: &std::collections::HashMap<String, String>, k: &str) -> String {
    m.get(k).cloned().unwrap_or_default()
}

/// Numeric field `k` of an `INFO metadata` map (0 when absent or not a number).
fn num(m: &std::collections::HashMap<String, String>, k: &str) -> u64 {
    field(m, k).parse().unwrap_or(0)
}

/// Waits until every running node's `INFO metadata` satisfies `ok`; returns them.
fn wait_metadata(
    fleet: &Fleet,
    what: &str,
    ok: impl Fn(&std::collections::HashMap<String, String>) -> bool,
) -> Vec<std::collections::HashMap<String, String>> {
    let deadline = Instant::now() + BOUND;
    loop {
        let all: Vec<_> =
            (0..fleet.len()).filter(|&i| fleet.is_running(i)).map(|i| metadata(fleet.client_addrs()[i])).collect();
        if all.iter().all(&ok) {
            return all;
        }
        assert!(Instant::now() < deadline, "{what}: {all:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The fleet's metadata group: three voters, every other node a learner holding the same
/// catalog (the topology's 6 nodes and 2 shards), every slot move recorded with its
/// epoch on every node, a new metadata leader after the old one is killed, the dead
/// voter replaced by a learner (`RAFT METADATA VOTERS`), the killed node catching up when
/// it comes back, and leaving the metadata group once `RAFT REMOVE`d from its shard.
#[test]
fn the_metadata_group_records_every_move_and_survives_its_leader() {
    let mut fleet = start();
    let formed = wait_metadata(&fleet, "metadata group formed with the whole catalog", |m| {
        num(m, "meta_leader") != 0 && num(m, "catalog_nodes") == 6 && num(m, "catalog_shards") == 2
    });
    let leaders: BTreeSet<u64> = formed.iter().map(|m| num(m, "meta_leader")).collect();
    assert_eq!(leaders.len(), 1, "one metadata leader everywhere: {formed:#?}");
    let voters = field(&formed[0], "meta_voters");
    assert_eq!(voters.split(',').count(), 3, "{formed:#?}");
    assert_eq!(formed.iter().filter(|m| field(m, "meta_role") == "learner").count(), 3, "{formed:#?}");
    assert_eq!(formed.iter().filter(|m| field(m, "meta_role") == "leader").count(), 1, "{formed:#?}");

    // A move is recorded on every node with an epoch above the file's (0).
    let (first, _) = shard_slots(0, SHARDS);
    let slots = format!("{}-{}", first + 7, first + 9);
    reshard(&fleet, &slots, 2);
    let moved = wait_metadata(&fleet, "the move recorded everywhere", |m| num(m, "catalog_epoch") > 0);
    let epoch = num(&moved[0], "catalog_epoch");
    assert!(moved.iter().all(|m| num(m, "catalog_epoch") == epoch), "{moved:#?}");

    // Kill the metadata leader: the two other voters elect one, and the next move (back)
    // is recorded by it on every running node.
    let old = *leaders.iter().next().expect("a leader");
    let index = (old - 1) as usize;
    fleet.kill(index);
    let killed = Instant::now();
    wait_metadata(&fleet, "a new metadata leader", |m| num(m, "meta_leader") != 0 && num(m, "meta_leader") != old);
    // The killed node may have led its shard: wait for both shards to have leaders.
    let deadline = Instant::now() + BOUND;
    while (0..SHARDS).any(|s| leader_of(&fleet, s).is_none()) {
        assert!(Instant::now() < deadline, "a shard without a leader after the kill");
        std::thread::sleep(Duration::from_millis(100));
    }
    let more = format!("{}-{}", first + 10, first + 12);
    reshard(&fleet, &more, 2);
    let later = wait_metadata(&fleet, "the next move recorded", |m| num(m, "catalog_epoch") > epoch);
    let epoch = num(&later[0], "catalog_epoch");

    // Replace the dead voter by a learner that is up (RAFT METADATA VOTERS on the metadata
    // leader); refused forms change nothing, and the dead voter stays a learner.
    let ids = |text: String| -> BTreeSet<u64> { text.split(',').filter_map(|t| t.parse().ok()).collect() };
    let meta_leader = num(&later[0], "meta_leader");
    let old_voters = ids(field(&later[0], "meta_voters"));
    let learner = (1..=fleet.len() as u64).find(|id| !old_voters.contains(id)).expect("a learner");
    let mut new_voters = old_voters.clone();
    new_voters.remove(&old);
    new_voters.insert(learner);
    let addrs = fleet.client_addrs();
    let addr = |id: u64| addrs[(id - 1) as usize];
    let mut change: Vec<String> = ["RAFT", "METADATA", "VOTERS"].map(String::from).to_vec();
    change.extend(new_voters.iter().map(u64::to_string));
    let change: Vec<&str> = change.iter().map(String::as_str).collect();
    let follower = *old_voters.iter().find(|&&v| v != old && v != meta_leader).expect("a following voter");
    let error = |f: OwnedFrame| match f {
        OwnedFrame::Error(e) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    };
    let redirect = error(call(addr(follower), &change));
    assert_eq!(redirect, format!("READONLY metadata changes go to the metadata leader, {}", addr(meta_leader)));
    assert!(error(call(addr(meta_leader), &["RAFT", "METADATA", "VOTERS", "99"])).starts_with("ERR Unknown node 99"));
    assert_eq!(error(call(addr(meta_leader), &["RAFT", "METADATA", "VOTERS", "1", "1"])), "ERR node 1 is named twice");
    assert_eq!(call(addr(meta_leader), &change), OwnedFrame::SimpleString(b"OK".to_vec()));
    wait_metadata(&fleet, "the new voters everywhere", |m| ids(field(m, "meta_voters")) == new_voters);
    // Making the dead node a voter again is refused: it could stall the group. (Silent
    // for 3.5 s makes it suspect.)
    std::thread::sleep(Duration::from_secs(4).saturating_sub(killed.elapsed()));
    let mut back: Vec<String> = ["RAFT", "METADATA", "VOTERS"].map(String::from).to_vec();
    back.extend(new_voters.iter().filter(|&&v| v != learner).chain([&old]).map(u64::to_string));
    let back: Vec<&str> = back.iter().map(String::as_str).collect();
    assert_eq!(
        error(call(addr(meta_leader), &back)),
        format!("ERR node {old} has not been heard from for seconds; is it up?")
    );
    let OwnedFrame::Array(rows) = call(addr(learner), &["RAFT", "METADATA", "MEMBERS"]) else { panic!("no rows") };
    let role = |id: u64| {
        rows.iter().find_map(|r| match r {
            OwnedFrame::Array(r) if r[0] == OwnedFrame::Integer(id as i64) => Some(r[3].clone()),
            _ => None,
        })
    };
    assert_eq!(rows.len(), fleet.len(), "{rows:?}");
    assert_eq!(role(old), Some(OwnedFrame::BulkString(b"learner".to_vec())), "{rows:?}");
    assert_eq!(role(learner), Some(OwnedFrame::BulkString(b"voter".to_vec())), "{rows:?}");

    // The killed node comes back with its copy, catches up with the move it missed, and
    // routes the moved slots to shard 2.
    fleet.restart(index).expect("restart the old metadata leader");
    wait_metadata(&fleet, "the restarted node's catalog caught up", |m| num(m, "catalog_epoch") == epoch);
    let deadline = Instant::now() + BOUND;
    loop {
        let target = leader_of(&fleet, 1).map(|t| i64::from(fleet.client_addrs()[t].port()));
        let routed = master_port(fleet.client_addrs()[index], first + 11);
        if target.is_some() && routed == target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node routes slot {} to {routed:?}, not {target:?}",
            first + 11
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(field(&metadata(addr(old)), "meta_role"), "learner");

    // A node removed from its shard leaves the metadata group too (the way a replaced
    // node's id goes): kill the old leader again and RAFT REMOVE it from its shard.
    fleet.kill(index);
    let shard = index / MEMBERS;
    let deadline = Instant::now() + BOUND;
    loop {
        let l = leader_of(&fleet, shard).map(|l| call(fleet.client_addrs()[l], &["RAFT", "REMOVE", &old.to_string()]));
        if let Some(OwnedFrame::SimpleString(_)) = l {
            break;
        }
        assert!(Instant::now() < deadline, "RAFT REMOVE {old}: {l:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_metadata(&fleet, "the removed node out of the metadata group", |m| {
        num(m, "meta_learners") == fleet.len() as u64 - 4
    });
    let OwnedFrame::Array(rows) = call(addr(learner), &["RAFT", "METADATA", "MEMBERS"]) else { panic!("no rows") };
    assert!(
        !rows.iter().any(|r| matches!(r, OwnedFrame::Array(r) if r[0] == OwnedFrame::Integer(old as i64))),
        "{rows:?}"
    );
}

/// Two of the metadata group's three voters lost for good (killed, data deleted): the
/// group has no majority until the survivor is made its only voter offline (`prism raft
/// force-single-voter --group metadata`); then it leads alone, takes two live nodes as
/// voters (`RAFT METADATA VOTERS`) and records the next slot move on every node.
#[test]
fn a_metadata_group_that_lost_two_voters_is_rebuilt_from_its_survivor() {
    let mut fleet = start();
    let ids = |text: String| -> Vec<u64> { text.split(',').filter_map(|t| t.parse().ok()).collect() };
    let formed = wait_metadata(&fleet, "metadata group formed", |m| num(m, "meta_leader") != 0);
    let voters = ids(field(&formed[0], "meta_voters"));
    assert_eq!(voters.len(), 3, "{formed:#?}");
    // Lose one voter of each shard, so both shards keep a majority: the survivor shares a
    // shard with one of the lost (three voters, two shards).
    let shard = |id: u64| (id as usize - 1) / MEMBERS;
    let survivor = *voters
        .iter()
        .find(|&&v| voters.iter().any(|&w| w != v && shard(w) == shard(v)))
        .expect("two voters in one shard");
    let lost: Vec<u64> = voters.iter().copied().filter(|&v| v != survivor).collect();
    assert_ne!(shard(lost[0]), shard(lost[1]), "{voters:?}");
    for &id in &lost {
        fleet.kill(id as usize - 1);
        std::fs::remove_dir_all(fleet.data_dir(id as usize - 1).expect("dir")).expect("delete a lost voter's data");
    }
    let s = survivor as usize - 1;
    fleet.kill(s);
    let data = fleet.data_dir(s).expect("dir");
    let data = data.to_str().expect("utf-8");
    let (code, out, err) = prism_tests::raft_cli(&["show", "--data-dir", data]);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<String> = voters.iter().map(u64::to_string).collect();
    assert!(out.contains("group 0 (metadata)\n  vote: "), "{out}");
    assert!(out.contains(&format!("  voters: {}\n", listed.join(","))), "{out}");
    let me = survivor.to_string();
    let (code, _, err) =
        prism_tests::raft_cli(&["force-single-voter", "--data-dir", data, "--node-id", &me, "--group", "metadata"]);
    assert_eq!(code, 0, "{err}");
    fleet.restart(s).expect("restart the survivor");
    wait_metadata(&fleet, "the survivor leads the metadata group alone", |m| {
        num(m, "meta_leader") == survivor && ids(field(m, "meta_voters")) == [survivor]
    });

    // Any two live nodes become voters beside the survivor.
    let mut new_voters: Vec<u64> =
        (1..=fleet.len() as u64).filter(|id| *id != survivor && !lost.contains(id)).take(2).collect();
    new_voters.push(survivor);
    new_voters.sort();
    let mut change: Vec<String> = ["RAFT", "METADATA", "VOTERS"].map(String::from).to_vec();
    change.extend(new_voters.iter().map(u64::to_string));
    let change: Vec<&str> = change.iter().map(String::as_str).collect();
    let deadline = Instant::now() + BOUND;
    loop {
        // A learner just re-added may still be catching up: "behind" is retried.
        match call(fleet.client_addrs()[s], &change) {
            OwnedFrame::SimpleString(ok) if ok == b"OK" => break,
            other => assert!(Instant::now() < deadline, "RAFT METADATA VOTERS: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_metadata(&fleet, "three voters again everywhere", |m| ids(field(m, "meta_voters")) == new_voters);

    // The catalog records again: a move, once both shards lead (the survivor's restart
    // left its shard one member short for a moment).
    let deadline = Instant::now() + BOUND;
    while (0..SHARDS).any(|s| leader_of(&fleet, s).is_none()) {
        assert!(Instant::now() < deadline, "a shard without a leader after the recovery");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = num(&metadata(fleet.client_addrs()[s]), "catalog_epoch");
    let (first, _) = shard_slots(0, SHARDS);
    reshard(&fleet, &format!("{}-{}", first + 20, first + 21), 2);
    wait_metadata(&fleet, "the move after the recovery recorded everywhere", |m| num(m, "catalog_epoch") > before);
}

/// A node `RAFT ADD`ed to a shard while it is in no running node's topology file (only
/// in its own) becomes a learner of the metadata group by itself and holds the fleet's
/// catalog: the same as every other node's, and a slot move made afterwards.
#[test]
fn a_node_added_outside_the_topology_file_gets_the_catalog() {
    let fleet = start();
    wait_metadata(&fleet, "metadata group formed", |m| num(m, "meta_leader") != 0 && num(m, "catalog_nodes") == 6);
    // Node 7's file: the fleet's, with node 7 a fourth member of shard 1.
    let text = std::fs::read_to_string(fleet.topology_path().expect("topology file")).expect("read topology");
    let (port, peer) = (prism_tests::free_port(), prism_tests::free_port());
    let at = text.find("]\n[[shard]]").expect("the end of shard 1's members");
    let entry = format!("  {{ id = 7, host = \"127.0.0.1\", port = {port}, peer-port = {peer} }},\n");
    let file = tempfile::NamedTempFile::new().expect("topology for node 7");
    std::fs::write(file.path(), format!("{}{entry}{}", &text[..at], &text[at..])).expect("write topology");
    let seven = prism_tests::Outsider::start(&[
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--node-id",
        "7",
        "--cluster-topology",
        file.path().to_str().expect("utf-8 path"),
    ]);
    let seven_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + BOUND;
    while RespConn::connect(seven_addr, Duration::from_secs(1)).is_err() {
        assert!(Instant::now() < deadline, "node 7 does not listen:\n{}", seven.log_tail(30));
        std::thread::sleep(Duration::from_millis(100));
    }

    let leader = leader_of(&fleet, 0).expect("shard 1 leads");
    let add = call(fleet.client_addrs()[leader], &["RAFT", "ADD", "7", &format!("127.0.0.1:{port}@{peer}")]);
    assert_eq!(add, OwnedFrame::SimpleString(b"OK".to_vec()));

    // Node 7 learns the metadata group's log from its leader: the same catalog as node 1's.
    let deadline = Instant::now() + BOUND;
    let same = ["catalog_epoch", "catalog_nodes", "catalog_shards", "meta_leader", "meta_voters"];
    loop {
        let (mine, theirs) = (metadata(seven_addr), metadata(fleet.client_addrs()[0]));
        if field(&mine, "meta_role") == "learner" && same.iter().all(|k| field(&mine, k) == field(&theirs, k)) {
            break;
        }
        assert!(Instant::now() < deadline, "node 7's catalog: {mine:#?}\nnode 1's: {theirs:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let members = text_of(call(fleet.client_addrs()[0], &["RAFT", "METADATA", "MEMBERS"]));
    assert!(members.contains(&format!("7,127.0.0.1:{port},127.0.0.1:{peer},learner")), "{members}");

    // A move recorded afterwards reaches node 7 too.
    let before = num(&metadata(seven_addr), "catalog_epoch");
    let (first, _) = shard_slots(0, SHARDS);
    reshard(&fleet, &format!("{}-{}", first + 30, first + 31), 2);
    let deadline = Instant::now() + BOUND;
    while num(&metadata(seven_addr), "catalog_epoch") <= before {
        assert!(Instant::now() < deadline, "node 7 never saw the move: {:#?}", metadata(seven_addr));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A reply as comma-joined text (nested arrays flattened), for `contains` checks.
fn text_of(f: OwnedFrame) -> String {
    match f {
        OwnedFrame::SimpleString(s) | OwnedFrame::BulkString(s) => String::from_utf8_lossy(&s).into_owned(),
        OwnedFrame::Integer(i) => i.to_string(),
        OwnedFrame::Array(items) => items.into_iter().map(text_of).collect::<Vec<_>>().join(","),
        other => format!("{other:?}"),
    }
}
