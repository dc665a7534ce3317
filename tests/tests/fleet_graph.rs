//! The graph across shards, in a fleet of 2 shards x 3 members (6 real `prism`
//! processes): edges whose endpoints are on different shards (the in-half delivered
//! through the source shard's outbox), traversals that fan out to the other shard per
//! hop with their bounds honoured, and faults between the two halves (the destination's
//! leader SIGKILLed while edges are added, the whole destination shard SIGSTOPped) after
//! which every out-edge has its in-edge and the degree counts agree on both sides.
//!
//! Waits are bounded loops that poll for the state a user would see; nothing is timed.

use std::time::{Duration, Instant};

use prism_engine::Slot;
use prism_tests::fleet::{shard_slots, Fleet, FleetOptions, RespConn};
use redis_protocol::resp2::types::OwnedFrame;

const SHARDS: usize = 2;
const MEMBERS: usize = 3;

fn shard_of(key: &str) -> usize {
    let slot = Slot::of_key(key.as_bytes()).get();
    (0..SHARDS).find(|&s| (shard_slots(s, SHARDS).0..=shard_slots(s, SHARDS).1).contains(&slot)).unwrap()
}

/// `n` vertex ids of shard `s`, named `stem<i>`.
fn ids_on(s: usize, stem: &str, n: usize) -> Vec<String> {
    (0..).map(|i| format!("{stem}{i}")).filter(|k| shard_of(k) == s).take(n).collect()
}

fn leader_of(fleet: &Fleet, s: usize) -> Option<usize> {
    (s * MEMBERS..(s + 1) * MEMBERS)
        .find(|&i| fleet.is_running(i) && !fleet.is_paused(i) && fleet.raft_info(i).is_some_and(|r| r.role == "leader"))
}

fn text(f: &OwnedFrame) -> String {
    match f {
        OwnedFrame::SimpleString(s) | OwnedFrame::BulkString(s) => String::from_utf8_lossy(s).into_owned(),
        OwnedFrame::Error(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// Runs a command on the leader of shard `s`, retrying (bounded) while that shard has no
/// leader or redirects: the answer a cluster client would end up with.
fn call(fleet: &Fleet, s: usize, args: &[&str]) -> OwnedFrame {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(i) = leader_of(fleet, s) {
            let reply =
                RespConn::connect(fleet.client_addrs()[i], Duration::from_secs(10)).and_then(|mut c| c.call(args));
            match reply {
                Ok(OwnedFrame::Error(e)) if e.starts_with("MOVED") || e.starts_with("TRYAGAIN") => {}
                Ok(f) => return f,
                Err(_) => {}
            }
        }
        assert!(Instant::now() < deadline, "shard {s} did not answer {args:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn int(f: &OwnedFrame) -> i64 {
    match f {
        OwnedFrame::Integer(n) => *n,
        other => panic!("expected an integer, got {}", text(other)),
    }
}

/// E.COUNT of `v` on its own shard.
fn count(fleet: &Fleet, v: &str, etype: &str, dir: &str) -> i64 {
    int(&call(fleet, shard_of(v), &["E.COUNT", v, etype, dir]))
}

/// The outbox entries shard `s`'s leader reports in INFO cluster.
fn outbox(fleet: &Fleet, s: usize) -> u64 {
    let info = text(&call(fleet, s, &["INFO", "cluster"]));
    info.lines()
        .find_map(|l| l.strip_prefix("outbox_entries:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no outbox_entries in {info}"))
}

/// Polls `ok` until it holds (at most `limit`), then asserts it.
fn eventually(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "not reached within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A G.KHOP / G.PATH reply map (RESP2: flat array) as (first value, truncated).
fn map2(f: &OwnedFrame) -> (&OwnedFrame, Option<String>) {
    let OwnedFrame::Array(items) = f else { panic!("not a map: {}", text(f)) };
    let truncated = match &items[3] {
        OwnedFrame::Null => None,
        t => Some(text(t)),
    };
    (&items[1], truncated)
}

fn strings(f: &OwnedFrame) -> Vec<String> {
    match f {
        OwnedFrame::Array(a) => a.iter().map(text).collect(),
        other => panic!("not an array: {}", text(other)),
    }
}

fn hops(f: &OwnedFrame) -> (Vec<Vec<String>>, Option<String>) {
    let (h, truncated) = map2(f);
    let OwnedFrame::Array(layers) = h else { panic!("hops: {}", text(h)) };
    let layers = layers
        .iter()
        .map(|l| {
            let mut v = strings(l);
            v.sort();
            v
        })
        .collect();
    (layers, truncated)
}

fn sorted(v: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Every listed edge (src on shard 0, dst on shard 1, type `t`) has both halves and the
/// degrees agree on both sides.
fn mirrored(fleet: &Fleet, edges: &[(String, String)], etype: &str) -> bool {
    edges.iter().all(|(s, d)| count(fleet, s, etype, "OUT") == 1 && count(fleet, d, etype, "IN") == 1)
}

#[test]
fn cross_shard_edges_traversals_and_faults() {
    let opts = FleetOptions { nodes: SHARDS * MEMBERS, shards: SHARDS, ..FleetOptions::default() };
    let mut fleet = Fleet::start(&opts).expect("start a 6-node fleet");
    eventually("every shard has a leader", Duration::from_secs(60), || {
        (0..SHARDS).all(|s| leader_of(&fleet, s).is_some())
    });

    // A chain a1 -> b1 -> a2 -> b2 alternating shards, and a1 -> a3 within shard 0.
    let a = ids_on(0, "a", 3);
    let b = ids_on(1, "b", 2);
    for (s, d) in [(&a[0], &b[0]), (&b[0], &a[1]), (&a[1], &b[1]), (&a[0], &a[2])] {
        let reply = call(&fleet, shard_of(s), &["E.ADD", s, "f", d]);
        assert_eq!(int(&reply), 1, "E.ADD {s} f {d}");
    }
    // The out-half is there at once; the in-half once delivered.
    assert_eq!(count(&fleet, &a[0], "f", "OUT"), 2);
    eventually("in-halves delivered", Duration::from_secs(30), || {
        count(&fleet, &b[0], "f", "IN") == 1 && count(&fleet, &a[1], "f", "IN") == 1
    });
    eventually("outboxes drained", Duration::from_secs(30), || outbox(&fleet, 0) == 0 && outbox(&fleet, 1) == 0);
    let range = call(&fleet, 1, &["E.RANGE", &b[1], "f", "IN"]);
    let OwnedFrame::Array(page) = &range else { panic!("{}", text(&range)) };
    let OwnedFrame::Array(rows) = &page[1] else { panic!("{}", text(&range)) };
    assert_eq!(strings(&rows[0])[0], a[1]);

    // K-hop across shards, both directions, and its bounds.
    let (layers, truncated) = hops(&call(&fleet, 0, &["G.KHOP", &a[0], "3"]));
    assert_eq!(layers, vec![sorted(&[&b[0], &a[2]]), vec![a[1].clone()], vec![b[1].clone()]]);
    assert_eq!(truncated, None);
    let (layers, _) = hops(&call(&fleet, 1, &["G.KHOP", &b[1], "3", "DIR", "IN"]));
    assert_eq!(layers, vec![vec![a[1].clone()], vec![b[0].clone()], vec![a[0].clone()]]);
    let (layers, truncated) = hops(&call(&fleet, 0, &["G.KHOP", &a[0], "3", "MAXVERTICES", "3"]));
    assert_eq!(truncated.as_deref(), Some("maxvertices"));
    assert_eq!(layers.iter().map(Vec::len).sum::<usize>(), 2, "{layers:?}");
    let (layers, _) = hops(&call(&fleet, 0, &["G.KHOP", &a[0], "2", "LIMIT", "1"]));
    // One half followed per vertex, newest first: a1 -> a3 was added last.
    assert_eq!(layers, vec![vec![a[2].clone()], vec![]]);

    // Shortest path across shards, and MAXDEPTH.
    let reply = call(&fleet, 0, &["G.PATH", &a[0], &b[1]]);
    let (path, truncated) = map2(&reply);
    assert_eq!(strings(path), vec![a[0].clone(), b[0].clone(), a[1].clone(), b[1].clone()]);
    assert_eq!(truncated, None);
    let reply = call(&fleet, 0, &["G.PATH", &a[0], &b[1], "MAXDEPTH", "2"]);
    let (path, truncated) = map2(&reply);
    assert_eq!((path, truncated.as_deref()), (&OwnedFrame::Null, Some("maxdepth")));
    let reply = call(&fleet, 1, &["G.PATH", &b[1], &a[0]]);
    assert_eq!(map2(&reply), (&OwnedFrame::Null, None), "no path against the edges");

    // E.DEL across shards removes the in-half too; V.DEL removes the remote halves.
    assert_eq!(int(&call(&fleet, 0, &["E.DEL", &a[0], "f", &b[0]])), 1);
    eventually("in-half removed", Duration::from_secs(30), || count(&fleet, &b[0], "f", "IN") == 0);
    assert_eq!(int(&call(&fleet, 0, &["V.DEL", &a[1]])), 1);
    eventually("V.DEL reached the other shard", Duration::from_secs(30), || {
        count(&fleet, &b[0], "f", "OUT") == 0 && count(&fleet, &b[1], "f", "IN") == 0
    });

    // Fault 1: SIGKILL the destination shard's leader while edges are added.
    let srcs = ids_on(0, "src", 40);
    let dsts = ids_on(1, "dst", 40);
    let edges: Vec<(String, String)> = srcs.iter().cloned().zip(dsts.iter().cloned()).collect();
    let victim = leader_of(&fleet, 1).expect("shard 1 leader");
    for (i, (s, d)) in edges.iter().enumerate() {
        if i == 10 {
            fleet.kill(victim);
        }
        // Writes go to the source shard, which keeps serving: every one is acknowledged.
        assert_eq!(int(&call(&fleet, 0, &["E.ADD", s, "k", d])), 1, "E.ADD {s} k {d}");
    }
    fleet.restart(victim).expect("restart the killed leader");
    eventually("every killed-leader edge mirrored", Duration::from_secs(90), || mirrored(&fleet, &edges, "k"));

    // Fault 2: the whole destination shard frozen (SIGSTOP), then thawed.
    for i in MEMBERS..2 * MEMBERS {
        fleet.pause(i);
    }
    let srcs = ids_on(0, "p", 30);
    let dsts = ids_on(1, "q", 30);
    let frozen: Vec<(String, String)> = srcs.iter().cloned().zip(dsts.iter().cloned()).collect();
    for (s, d) in &frozen {
        assert_eq!(int(&call(&fleet, 0, &["E.ADD", s, "z", d])), 1);
    }
    assert!(outbox(&fleet, 0) > 0, "the in-halves wait in the outbox while the destination is frozen");
    for i in MEMBERS..2 * MEMBERS {
        fleet.resume(i);
    }
    eventually("every frozen-shard edge mirrored", Duration::from_secs(90), || mirrored(&fleet, &frozen, "z"));
    eventually("outbox drained after healing", Duration::from_secs(30), || outbox(&fleet, 0) == 0);
    fleet.kill_all();
}
