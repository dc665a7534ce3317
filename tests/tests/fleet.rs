//! A fleet of 3 shards x 3 members (9 real `prism` processes started from one topology
//! file) as unchanged Redis Cluster clients see it: every slot served, masters = Raft
//! leaders on every node alike, `-MOVED` / `-CROSSSLOT` between shards, the `redis`
//! crate's cluster client writing and reading over all slots (hash tags, a pipeline, a
//! same-slot MGET), and the same client carrying on through a leader SIGKILL with every
//! acknowledged write still there.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prism_tests::fleet::{shard_slots, Fleet, FleetOptions, RespConn};
use redis::Commands;
use redis_protocol::resp2::types::OwnedFrame;

const SHARDS: usize = 3;
const MEMBERS: usize = 3;

fn start() -> Fleet {
    let opts = FleetOptions { nodes: SHARDS * MEMBERS, shards: SHARDS, ..FleetOptions::default() };
    Fleet::start(&opts).expect("start a 9-node fleet")
}

/// The node index (0-based) leading shard `s`, per its own INFO raft.
fn leader_of(fleet: &Fleet, s: usize) -> Option<usize> {
    (s * MEMBERS..(s + 1) * MEMBERS).find(|&i| fleet.raft_info(i).is_some_and(|r| r.role == "leader"))
}

fn wait_for_leaders(fleet: &Fleet, timeout: Duration) -> Vec<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let leaders: Vec<Option<usize>> = (0..SHARDS).map(|s| leader_of(fleet, s)).collect();
        if leaders.iter().all(Option::is_some) {
            return leaders.into_iter().flatten().collect();
        }
        assert!(Instant::now() < deadline, "shards without a leader after {timeout:?}: {leaders:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn conn(addr: SocketAddr) -> RespConn {
    RespConn::connect(addr, Duration::from_secs(5)).expect("connect")
}

fn text(frame: &OwnedFrame) -> String {
    match frame {
        OwnedFrame::SimpleString(s) | OwnedFrame::BulkString(s) => String::from_utf8_lossy(s).into_owned(),
        OwnedFrame::Error(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// CLUSTER LINKS of a node as (direction, peer id) pairs, each entry checked for Redis
/// 7's six fields.
fn links(addr: SocketAddr) -> BTreeSet<(String, String)> {
    let mut c = conn(addr);
    let OwnedFrame::Array(entries) = c.call(&["CLUSTER", "LINKS"]).expect("CLUSTER LINKS") else {
        panic!("CLUSTER LINKS is an array")
    };
    let mut out = BTreeSet::new();
    for e in entries {
        let OwnedFrame::Array(fields) = e else { panic!("a link is a map: {e:?}") };
        let pairs: BTreeMap<String, OwnedFrame> = fields.chunks(2).map(|kv| (text(&kv[0]), kv[1].clone())).collect();
        let keys: Vec<&str> = pairs.keys().map(String::as_str).collect();
        let want = ["create-time", "direction", "events", "node", "send-buffer-allocated", "send-buffer-used"];
        assert_eq!(keys, want);
        let int = |k: &str| match pairs[k] {
            OwnedFrame::Integer(n) => n,
            ref other => panic!("{k}: {other:?}"),
        };
        assert!(int("create-time") > 1_600_000_000_000, "unix ms");
        assert!(int("send-buffer-allocated") >= int("send-buffer-used") && int("send-buffer-used") >= 0);
        assert!(["r", "rw"].contains(&text(&pairs["events"]).as_str()));
        out.insert((text(&pairs["direction"]), text(&pairs["node"])));
    }
    out
}

/// CLUSTER SLOTS of a node as (first slot, last slot) -> master port.
fn slot_masters(addr: SocketAddr) -> BTreeMap<(i64, i64), i64> {
    let mut c = conn(addr);
    let OwnedFrame::Array(ranges) = c.call(&["CLUSTER", "SLOTS"]).expect("CLUSTER SLOTS") else {
        panic!("CLUSTER SLOTS is not an array")
    };
    ranges
        .iter()
        .map(|r| {
            let OwnedFrame::Array(r) = r else { panic!("{r:?}") };
            let (OwnedFrame::Integer(a), OwnedFrame::Integer(b), OwnedFrame::Array(master)) = (&r[0], &r[1], &r[2])
            else {
                panic!("{r:?}")
            };
            let OwnedFrame::Integer(port) = master[1] else { panic!("{master:?}") };
            ((*a, *b), port)
        })
        .collect()
}

/// Waits until every running node's CLUSTER SLOTS names `want` (slot range -> port).
fn wait_for_agreement(fleet: &Fleet, want: &BTreeMap<(i64, i64), i64>, skip: &[usize], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for i in (0..fleet.len()).filter(|i| !skip.contains(i)) {
        loop {
            let seen = slot_masters(fleet.client_addrs()[i]);
            if &seen == want {
                break;
            }
            assert!(Instant::now() < deadline, "node {i} sees masters {seen:?}, want {want:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn expected_masters(fleet: &Fleet, leaders: &[usize]) -> BTreeMap<(i64, i64), i64> {
    (0..SHARDS)
        .map(|s| {
            let (a, b) = shard_slots(s, SHARDS);
            ((a as i64, b as i64), fleet.client_addrs()[leaders[s]].port() as i64)
        })
        .collect()
}

/// A key whose slot shard `s` serves.
fn key_in_shard(s: usize, tag: &str) -> String {
    let (a, b) = shard_slots(s, SHARDS);
    (0..)
        .map(|i| format!("{tag}:{i}"))
        .find(|k| (a..=b).contains(&prism_engine::Slot::of_key(k.as_bytes()).get()))
        .expect("some key lands in every shard")
}

#[test]
fn nine_processes_serve_every_slot_with_leaders_as_masters() {
    let fleet = start();
    let leaders = wait_for_leaders(&fleet, Duration::from_secs(60));
    let want = expected_masters(&fleet, &leaders);
    wait_for_agreement(&fleet, &want, &[], Duration::from_secs(10));

    // CLUSTER NODES: 9 lines, 3 masters each with its slot range, 6 replicas naming them.
    let mut c = conn(fleet.client_addrs()[0]);
    let nodes = text(&c.call(&["CLUSTER", "NODES"]).expect("CLUSTER NODES"));
    let lines: Vec<&str> = nodes.lines().collect();
    assert_eq!(lines.len(), 9, "{nodes}");
    let masters: BTreeSet<&str> =
        lines.iter().filter(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("master"))).map(|l| &l[..40]).collect();
    assert_eq!(masters.len(), 3, "{nodes}");
    for l in &lines {
        let fields: Vec<&str> = l.split(' ').collect();
        if fields[2].contains("slave") {
            assert!(masters.contains(fields[3]), "a replica of an unknown master: {l}");
        }
        assert_eq!(fields[7], "connected", "{l}");
    }
    // CLUSTER LINKS: a connection to and one from each of the 8 other nodes (the status
    // every node sends every other opens them), named by their CLUSTER NODES ids.
    let me = text(&c.call(&["CLUSTER", "MYID"]).expect("MYID"));
    let others: BTreeSet<String> = lines.iter().map(|l| l[..40].to_string()).filter(|id| *id != me).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let want: BTreeSet<(String, String)> =
        others.iter().flat_map(|id| [("from".to_string(), id.clone()), ("to".to_string(), id.clone())]).collect();
    loop {
        let got = links(fleet.client_addrs()[0]);
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "CLUSTER LINKS {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = text(&c.call(&["CLUSTER", "INFO"]).expect("CLUSTER INFO"));
    assert!(info.contains("cluster_state:ok") && info.contains("cluster_size:3"), "{info}");
    assert!(info.contains("cluster_known_nodes:9"), "{info}");

    // Another shard's key: -MOVED to that shard's leader; keys of two shards: -CROSSSLOT.
    let far = key_in_shard(2, "far");
    let slot = prism_engine::Slot::of_key(far.as_bytes()).get();
    let moved = text(&c.call(&["GET", &far]).expect("GET"));
    assert_eq!(moved, format!("MOVED {slot} {}", fleet.client_addrs()[leaders[2]]));
    let near = key_in_shard(0, "near");
    let cross = text(&c.call(&["MGET", &near, &far]).expect("MGET"));
    assert!(cross.starts_with("CROSSSLOT"), "{cross}");

    // Edges within a shard work, and across shards too (the in-half goes through the
    // outbox: tests/tests/fleet_graph.rs); the out-half is there at once.
    let mut lead = conn(fleet.client_addrs()[leaders[0]]);
    let (a, b) = (format!("{{{near}}}:a"), format!("{{{near}}}:b"));
    let ok = lead.call(&["E.ADD", &a, "follows", &b]).expect("E.ADD");
    assert!(matches!(ok, OwnedFrame::Integer(_) | OwnedFrame::SimpleString(_)), "{ok:?}");
    let across = lead.call(&["E.ADD", &near, "follows", &far]).expect("E.ADD");
    assert_eq!(across, OwnedFrame::Integer(1));
    let count = lead.call(&["E.COUNT", &near, "follows", "OUT"]).expect("E.COUNT");
    assert_eq!(count, OwnedFrame::Integer(1));
}

#[test]
fn cluster_client_writes_everywhere_and_survives_a_leader_kill() {
    let mut fleet = start();
    let leaders = wait_for_leaders(&fleet, Duration::from_secs(60));
    wait_for_agreement(&fleet, &expected_masters(&fleet, &leaders), &[], Duration::from_secs(10));
    let seeds: Vec<String> = fleet.client_addrs().iter().map(|a| format!("redis://{a}/")).collect();
    let client = redis::cluster::ClusterClientBuilder::new(seeds.clone())
        .retries(20)
        .min_retry_wait(50)
        .max_retry_wait(500)
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(6))
        .build()
        .expect("cluster client");
    let mut rc = client.get_connection().expect("cluster connection");

    // 600 keys over all slots: every shard gets some.
    let keys: Vec<String> = (0..600).map(|i| format!("k:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        let _: () = rc.set(k, i).expect("SET");
    }
    let shards_hit: BTreeSet<usize> = keys
        .iter()
        .map(|k| prism_engine::Slot::of_key(k.as_bytes()).get())
        .map(|slot| {
            (0..SHARDS).find(|&s| (shard_slots(s, SHARDS).0..=shard_slots(s, SHARDS).1).contains(&slot)).unwrap()
        })
        .collect();
    assert_eq!(shards_hit.len(), SHARDS);
    for (i, k) in keys.iter().enumerate() {
        let v: i64 = rc.get(k).expect("GET");
        assert_eq!(v, i as i64, "{k}");
    }
    // Hash tags keep multi-key commands in one slot; a same-slot MGET.
    let tagged: Vec<String> = ["name", "email", "age"].iter().map(|f| format!("{{user:7}}:{f}")).collect();
    let _: () = rc.mset(&[(&tagged[0], "ann"), (&tagged[1], "ann@example.com"), (&tagged[2], "33")]).expect("MSET");
    let got: Vec<String> = rc.mget(&tagged).expect("MGET");
    assert_eq!(got, ["ann", "ann@example.com", "33"]);
    // A cluster pipeline over many slots.
    let mut pipe = redis::cluster::cluster_pipe();
    for i in 0..50 {
        pipe.set(format!("p:{i}"), i * 2).ignore();
    }
    for i in 0..50 {
        pipe.get(format!("p:{i}"));
    }
    let piped: Vec<i64> = pipe.query(&mut rc).expect("pipeline");
    assert_eq!(piped, (0..50).map(|i| i * 2).collect::<Vec<i64>>());

    // SIGKILL shard 1's leader, keep writing through the election.
    let victim = leaders[1];
    let victim_id = text(&conn(fleet.client_addrs()[victim]).call(&["CLUSTER", "MYID"]).expect("MYID"));
    let watcher = fleet.client_addrs()[if victim == 0 { 1 } else { 0 }];
    assert!(links(watcher).iter().any(|(_, id)| *id == victim_id), "linked to the victim before");
    fleet.kill(victim);
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..300 {
        let key = format!("after:{i}");
        loop {
            match rc.set::<_, _, ()>(&key, i) {
                Ok(()) => {
                    acknowledged.push((key.clone(), i));
                    break;
                }
                // A write may fail while the shard elects; it is not acknowledged. The
                // crate's sync client retries a refused connection on the same address
                // without refreshing its slot map, so the retry here is a new connection
                // (it reads CLUSTER SLOTS afresh).
                Err(e) => {
                    assert!(Instant::now() < deadline, "no acknowledged write for {key} by the deadline: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    if let Ok(c) = client.get_connection() {
                        rc = c;
                    }
                }
            }
        }
    }
    assert_eq!(acknowledged.len(), 300);
    // The dead node's links are gone from CLUSTER LINKS (both directions).
    let deadline = Instant::now() + Duration::from_secs(20);
    while links(watcher).iter().any(|(_, id)| *id == victim_id) {
        assert!(Instant::now() < deadline, "CLUSTER LINKS still lists {victim_id}: {:?}", links(watcher));
        std::thread::sleep(Duration::from_millis(100));
    }
    let new_leaders = wait_for_leaders_except(&fleet, victim, Duration::from_secs(30));
    assert_ne!(new_leaders[1], victim);
    // Every node still running names the new leader; a fresh client reads every write.
    wait_for_agreement(&fleet, &expected_masters(&fleet, &new_leaders), &[victim], Duration::from_secs(10));
    let fresh = redis::cluster::ClusterClient::new(
        seeds.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, s)| s.clone()).collect::<Vec<_>>(),
    )
    .expect("client");
    let mut fresh = fresh.get_connection().expect("connection");
    for (i, k) in keys.iter().enumerate() {
        let v: i64 = fresh.get(k).expect("GET after failover");
        assert_eq!(v, i as i64, "{k}");
    }
    for (k, v) in &acknowledged {
        let got: i64 = fresh.get(k).expect("GET after failover");
        assert_eq!(got, *v, "{k}");
    }
    // The dead node is reported failing by the others: `fail?` first, then `fail` (which
    // redis-cli's cluster manager reads as failed, and skips).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut suspected = false;
    let survivor = fleet.client_addrs()[(victim + 3) % fleet.len()];
    loop {
        let nodes = text(&conn(survivor).call(&["CLUSTER", "NODES"]).expect("CLUSTER NODES"));
        let port = format!(":{}@", fleet.client_addrs()[victim].port());
        let line = nodes.lines().find(|l| l.contains(&port)).expect("the dead node is still listed").to_string();
        suspected |= line.contains(",fail?") && line.contains("disconnected");
        if line.split(' ').nth(2).is_some_and(|flags| flags.split(',').any(|f| f == "fail")) {
            assert!(line.contains("disconnected"), "{line}");
            // CLUSTER SLOTS leaves a failed replica out, as Redis does.
            let listed = slot_ports(survivor);
            assert!(!listed.contains(&i64::from(fleet.client_addrs()[victim].port())), "{listed:?}\n{line}");
            break;
        }
        assert!(Instant::now() < deadline, "dead node not marked failed (suspected first: {suspected}): {line}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Restarted, it rejoins its shard as a replica and is no longer failing.
    fleet.restart(victim).expect("restart");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = text(&conn(survivor).call(&["CLUSTER", "NODES"]).expect("CLUSTER NODES"));
        let port = format!(":{}@", fleet.client_addrs()[victim].port());
        let line = nodes.lines().find(|l| l.contains(&port)).expect("listed").to_string();
        let back = slot_ports(survivor).contains(&i64::from(fleet.client_addrs()[victim].port()));
        if !line.contains("fail") && line.contains("slave") && back {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node not back as a listed replica (in CLUSTER SLOTS: {back}): {line}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every client port CLUSTER SLOTS of `addr` lists, masters and replicas.
fn slot_ports(addr: SocketAddr) -> BTreeSet<i64> {
    let OwnedFrame::Array(ranges) = conn(addr).call(&["CLUSTER", "SLOTS"]).expect("CLUSTER SLOTS") else {
        panic!("CLUSTER SLOTS is an array")
    };
    let mut ports = BTreeSet::new();
    for range in ranges {
        let OwnedFrame::Array(parts) = range else { continue };
        for node in parts.iter().skip(2) {
            if let OwnedFrame::Array(fields) = node {
                if let Some(OwnedFrame::Integer(port)) = fields.get(1) {
                    ports.insert(*port);
                }
            }
        }
    }
    ports
}

fn wait_for_leaders_except(fleet: &Fleet, dead: usize, timeout: Duration) -> Vec<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let leaders: Vec<Option<usize>> = (0..SHARDS).map(|s| leader_of(fleet, s).filter(|l| *l != dead)).collect();
        if leaders.iter().all(Option::is_some) {
            return leaders.into_iter().flatten().collect();
        }
        assert!(Instant::now() < deadline, "shards without a leader: {leaders:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
