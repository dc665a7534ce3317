//! A shard group of three real `prism` processes, through real sockets: what a client
//! sees of the leader and of the other members, a pipeline's replies, transactions and
//! blocking pops through the log, a leader killed, a member restarted, leadership handed
//! over on demand (RAFT TRANSFER, CLUSTER FAILOVER). (Faults under load, with the
//! linearizability checker, are in raft_faults.rs.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prism_tests::fleet::{start_steady_group, Fleet, FleetOptions};
use prism_tests::{bulk, encode, free_port, raft_cli, Outsider, RawClient};

const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

fn start() -> (Fleet, usize) {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> (Fleet, usize) {
    start_steady_group(extra, LEADER_TIMEOUT)
}

async fn client(fleet: &Fleet, i: usize) -> RawClient {
    RawClient::connect(fleet.client_addrs()[i]).await
}

/// Polls `f` until it returns true, at most 20 s (replication to a follower is
/// asynchronous from the client's point of view).
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 20 s");
}

fn moved_to(slot_of: &str, leader: SocketAddr) -> String {
    let slot = prism_engine::Slot::of_key(slot_of.as_bytes());
    format!("-MOVED {slot} {leader}\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_serves_and_followers_redirect_or_read_after_readonly() {
    let (fleet, leader) = start();
    let addrs = fleet.client_addrs();
    let follower = (leader + 1) % 3;
    let mut l = client(&fleet, leader).await;
    assert_eq!(l.cmd(&["SET", "k", "v1"]).await, "+OK\r\n");
    assert_eq!(l.cmd(&["GET", "k"]).await, bulk("v1"));
    // Acknowledged means on a majority: one other member at once, both within the timeout.
    let held = l.cmd(&["WAIT", "1", "0"]).await;
    assert!(held == ":1\r\n" || held == ":2\r\n", "WAIT 1 0 answered {held:?}");
    assert_eq!(l.cmd(&["WAIT", "2", "10000"]).await, ":2\r\n");

    let mut f = client(&fleet, follower).await;
    // Reads and writes on a follower go to the leader, as on a Redis Cluster replica.
    assert_eq!(f.cmd(&["GET", "k"]).await, moved_to("k", addrs[leader]));
    assert_eq!(f.cmd(&["SET", "k", "v2"]).await, moved_to("k", addrs[leader]));
    assert!(f.cmd(&["FLUSHALL"]).await.starts_with("-READONLY"), "keyless write on a follower");
    assert_eq!(f.cmd(&["WAIT", "1", "100"]).await, ":0\r\n", "a follower has no replicas");
    // After READONLY the follower serves its own (possibly stale) state.
    assert_eq!(f.cmd(&["READONLY"]).await, "+OK\r\n");
    eventually("follower applies the write", async || f.cmd(&["GET", "k"]).await == bulk("v1")).await;
    assert_eq!(f.cmd(&["SET", "k", "v2"]).await, moved_to("k", addrs[leader]), "READONLY never allows writes");

    // The cluster view names the leader as master on every member.
    let nodes = f.cmd(&["CLUSTER", "NODES"]).await;
    let master_line = nodes.lines().find(|l| l.contains("master")).expect("a master line").to_string();
    assert!(master_line.contains(&addrs[leader].to_string()), "{nodes}");
    assert_eq!(nodes.lines().filter(|l| l.contains(" slave ") || l.contains(",slave ")).count(), 2, "{nodes}");
    let info = f.cmd(&["INFO", "replication"]).await;
    assert!(info.contains("role:slave") && info.contains(&format!("master_port:{}", addrs[leader].port())), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_reads_and_errors_answer_in_order() {
    let (fleet, leader) = start();
    let mut l = client(&fleet, leader).await;
    let mut pipeline = Vec::new();
    for args in [
        &["SET", "a", "1"][..],
        &["INCR", "a"],
        &["GET", "a"],
        &["INCR", "nope", "extra"],
        &["LPUSH", "a", "x"],
        &["NOSUCHCOMMAND"],
        &["RPUSH", "l", "x", "y"],
        &["INCRBY", "a", "10"],
        &["LRANGE", "l", "0", "-1"],
        &["DEL", "a"],
        &["GET", "a"],
    ] {
        pipeline.extend(encode(args));
    }
    l.send(&pipeline).await;
    let mut replies = Vec::new();
    for _ in 0..11 {
        replies.push(l.reply().await);
    }
    assert_eq!(
        replies,
        [
            "+OK\r\n",
            ":2\r\n",
            "$1\r\n2\r\n",
            "-ERR wrong number of arguments for 'incr' command\r\n",
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            "-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: \r\n",
            ":2\r\n",
            ":12\r\n",
            "*2\r\n$1\r\nx\r\n$1\r\ny\r\n",
            ":1\r\n",
            "$-1\r\n",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_and_blocking_pops_go_through_the_log() {
    let (fleet, leader) = start();
    let mut l = client(&fleet, leader).await;
    assert_eq!(l.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(l.cmd(&["SET", "{t}a", "1"]).await, "+QUEUED\r\n");
    assert_eq!(l.cmd(&["INCRBY", "{t}a", "4"]).await, "+QUEUED\r\n");
    assert_eq!(l.cmd(&["RPUSH", "{t}l", "p"]).await, "+QUEUED\r\n");
    assert_eq!(l.cmd(&["EXEC"]).await, "*3\r\n+OK\r\n:5\r\n:1\r\n");

    // A client blocked on the leader is woken by a push that committed.
    let mut blocked = client(&fleet, leader).await;
    blocked.send(&encode(&["BLPOP", "{t}q", "10"])).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(l.cmd(&["RPUSH", "{t}q", "job"]).await, ":1\r\n");
    assert_eq!(blocked.reply().await, "*2\r\n$4\r\n{t}q\r\n$3\r\njob\r\n");

    // Followers hold the transaction's effects and the pop. The marker is written after
    // the pop committed, so a follower that has it has applied the pop too (waiting for
    // the transaction's key alone raced with the push and the pop being applied).
    assert_eq!(l.cmd(&["SET", "{t}marker", "after-pop"]).await, "+OK\r\n");
    let mut f = client(&fleet, (leader + 1) % 3).await;
    assert_eq!(f.cmd(&["READONLY"]).await, "+OK\r\n");
    eventually("marker replicated", async || f.cmd(&["GET", "{t}marker"]).await == bulk("after-pop")).await;
    assert_eq!(f.cmd(&["GET", "{t}a"]).await, bulk("5"));
    assert_eq!(f.cmd(&["LRANGE", "{t}l", "0", "-1"]).await, "*1\r\n$1\r\np\r\n");
    assert_eq!(f.cmd(&["LLEN", "{t}q"]).await, ":0\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_leader_kill_and_a_restarted_member_catches_up() {
    let (mut fleet, leader) = start();
    let addrs = fleet.client_addrs();
    let mut l = client(&fleet, leader).await;
    let mut pipeline = Vec::new();
    for i in 0..200 {
        pipeline.extend(encode(&["SET", &format!("key:{i}"), &format!("v{i}")]));
    }
    l.send(&pipeline).await;
    for _ in 0..200 {
        assert_eq!(l.reply().await, "+OK\r\n");
    }
    drop(l);

    fleet.kill(leader);
    let next = fleet.wait_for_leader(Some(leader), LEADER_TIMEOUT).expect("a new leader");
    assert_ne!(next, leader);
    let mut n = client(&fleet, next).await;
    for i in 0..200 {
        assert_eq!(n.cmd(&["GET", &format!("key:{i}")]).await, bulk(&format!("v{i}")), "key:{i} after failover");
    }
    assert_eq!(n.cmd(&["SET", "after", "failover"]).await, "+OK\r\n");

    fleet.restart(leader).expect("restart the old leader");
    let mut old = client(&fleet, leader).await;
    // It rejoins as a follower, redirects to the new leader and catches up.
    eventually("old leader redirects to the new one", async || {
        old.cmd(&["GET", "after"]).await == moved_to("after", addrs[next])
    })
    .await;
    assert_eq!(old.cmd(&["READONLY"]).await, "+OK\r\n");
    eventually("old leader catches up", async || old.cmd(&["GET", "after"]).await == bulk("failover")).await;
    assert_eq!(old.cmd(&["GET", "key:199"]).await, bulk("v199"));
    let info = old.cmd(&["INFO", "raft"]).await;
    assert!(info.contains("role:follower") && info.contains(&format!("leader_id:{}", next + 1)), "{info}");
}

/// A member that was down while the leader snapshotted and purged its log catches up by
/// receiving the snapshot (streamed in chunks) and then the log after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_the_purged_log_installs_a_snapshot() {
    let (mut fleet, leader) = start_with(&["--raft-snapshot-entries", "20"]);
    let behind = (leader + 1) % 3;
    fleet.kill(behind);
    let mut l = client(&fleet, leader).await;
    // One entry per write (each waits for its reply): well past the snapshot interval
    // and the two entries of log kept after it.
    for i in 0..120 {
        assert_eq!(l.cmd(&["SET", &format!("s:{i}"), &format!("{i}")]).await, "+OK\r\n");
    }
    assert_eq!(l.cmd(&["HSET", "h", "f", "v"]).await, ":1\r\n");
    // Snapshots are built and the log purged in the background, soon after.
    eventually("the leader snapshots and purges its log", async || {
        let info = l.cmd(&["INFO", "raft"]).await;
        !info.contains("snapshot_index:0\r\n") && !info.contains("purged_index:0\r\n")
    })
    .await;

    fleet.restart(behind).expect("restart the member that was down");
    let mut b = client(&fleet, behind).await;
    assert_eq!(b.cmd(&["READONLY"]).await, "+OK\r\n");
    eventually("the member catches up", async || b.cmd(&["HGET", "h", "f"]).await == bulk("v")).await;
    for i in 0..120 {
        assert_eq!(b.cmd(&["GET", &format!("s:{i}")]).await, bulk(&format!("{i}")), "s:{i}");
    }
    let info = b.cmd(&["INFO", "raft"]).await;
    assert!(!info.contains("snapshot_index:0\r\n"), "the member installed a snapshot: {info}");
}

/// Starts node 4 outside the fleet with a group of itself and `member`
/// (`<id>@<client addr>@<peer port>`, a lower id, so it never starts a group alone);
/// returns it once it listens, with its client address and the address RAFT ADD takes.
async fn node_four(member: &str) -> (Outsider, SocketAddr, String) {
    let (port, peer) = (free_port(), free_port());
    let group = format!("{member},4@127.0.0.1:{port}@{peer}");
    let four = Outsider::start(&[
        "--port",
        &port.to_string(),
        "--node-id",
        "4",
        "--raft-group",
        &group,
        "--raft-heartbeat-ms",
        "500",
    ]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    eventually("node 4 listens", async || tokio::net::TcpStream::connect(addr).await.is_ok()).await;
    (four, addr, format!("127.0.0.1:{port}@{peer}"))
}

/// `RAFT MEMBERS` as (id, client address, peer address, role) rows.
fn parse_members(reply: &str) -> Vec<(u64, String, String, String)> {
    let lines: Vec<&str> = reply.split("\r\n").collect();
    let mut rows = Vec::new();
    let mut i = 1;
    while i + 8 < lines.len() && lines[i] == "*5" {
        let id = lines[i + 1].trim_start_matches(':').parse().expect("member id");
        rows.push((id, lines[i + 3].to_string(), lines[i + 5].to_string(), lines[i + 7].to_string()));
        i += 9;
    }
    rows
}

/// RAFT ADD brings a fourth node in (learner, caught up, then voter); RAFT REMOVE takes a
/// dead member out, and the group keeps committing writes with its new majority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_and_a_dead_one_replaced() {
    let (mut fleet, leader) = start();
    let mut l = client(&fleet, leader).await;
    for i in 0..50 {
        assert_eq!(l.cmd(&["SET", &format!("m:{i}"), "x"]).await, "+OK\r\n");
    }
    let members = parse_members(&l.cmd(&["RAFT", "MEMBERS"]).await);
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|m| m.3 == "voter"));
    let (one_client, one_peer) = members.iter().find(|m| m.0 == 1).map(|m| (m.1.clone(), m.2.clone())).expect("1");
    let one_peer_port = one_peer.rsplit_once(':').expect("peer addr").1;

    let (_four, four_addr, four_peer) = node_four(&format!("1@{one_client}@{one_peer_port}")).await;
    let mut four = RawClient::connect(four_addr).await;

    // A member that does not lead refuses membership changes. Leadership may move on a
    // loaded machine, so the member asked is one that does not lead at that moment.
    let three = fleet.client_addrs();
    let refused = refused_off_the_leader(&three, &["RAFT", "REMOVE", "4"]).await;
    assert!(refused.starts_with("-READONLY"), "change on a follower answered {refused:?}");
    assert!(on_leader(&three, &["RAFT", "ADD", "x", "127.0.0.1:1"]).await.starts_with("-ERR"), "bad id");

    assert_eq!(on_leader(&three, &["RAFT", "ADD", "4", &four_peer]).await, "+OK\r\n");
    let members = parse_members(&on_leader(&three, &["RAFT", "MEMBERS"]).await);
    assert_eq!(members.iter().filter(|m| m.3 == "voter").count(), 4, "{members:?}");
    assert_eq!(four.cmd(&["READONLY"]).await, "+OK\r\n");
    eventually("node 4 holds the data", async || four.cmd(&["GET", "m:49"]).await == bulk("x")).await;
    // Node 4 learns the membership from the log it applies: wait until its view has it.
    eventually("node 4 lists 4 nodes", async || {
        four.cmd(&["CLUSTER", "NODES"]).await.lines().filter(|l| l.contains("connected")).count() == 4
    })
    .await;

    // Replace a dead follower: remove it; writes keep committing on the other three
    // (node 4 among them, which may by now lead).
    let mut all = three.clone();
    all.push(four_addr);
    let leader = leader_among(&all).await;
    let dead = (0..3).find(|&i| three[i] != leader).expect("a member of the first three that does not lead");
    fleet.kill(dead);
    let live: Vec<SocketAddr> = all.iter().copied().filter(|a| *a != three[dead]).collect();
    let removed = (dead as u64 + 1).to_string();
    assert_eq!(on_leader(&live, &["RAFT", "REMOVE", &removed]).await, "+OK\r\n");
    let members = parse_members(&on_leader(&live, &["RAFT", "MEMBERS"]).await);
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|m| m.0 != dead as u64 + 1));
    assert_eq!(on_leader(&live, &["SET", "after", "replace"]).await, "+OK\r\n");
    eventually("node 4 follows", async || four.cmd(&["GET", "after"]).await == bulk("replace")).await;
    assert_eq!(on_leader(&live, &["WAIT", "2", "10000"]).await, ":2\r\n");
}

/// Two of three members lost for good (killed, their data deleted): the survivor, whose
/// log was purged up to a snapshot, is made the only voter offline with `prism raft
/// force-single-voter`, leads alone with every acknowledged write, and takes a new member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_of_a_lost_majority_is_forced_to_lead_alone_and_takes_a_new_member() {
    let (mut fleet, leader) = start_with(&["--raft-snapshot-entries", "20"]);
    let survivor = (leader + 1) % 3;
    let mut l = client(&fleet, leader).await;
    for i in 0..60 {
        assert_eq!(l.cmd(&["SET", &format!("f:{i}"), &format!("{i}")]).await, "+OK\r\n");
    }
    assert_eq!(l.cmd(&["WAIT", "2", "10000"]).await, ":2\r\n");
    drop(l);
    let mut s = client(&fleet, survivor).await;
    // The survivor's own log is purged past the membership entry: it is read from the snapshot.
    eventually("the survivor snapshots and purges its log", async || {
        let info = s.cmd(&["INFO", "raft"]).await;
        !info.contains("snapshot_index:0\r\n") && !info.contains("purged_index:0\r\n")
    })
    .await;
    drop(s);
    let data = fleet.data_dir(survivor).expect("data dir");
    let data = data.to_str().expect("utf-8 path");
    let (code, _, err) = raft_cli(&["show", "--data-dir", data]);
    assert_eq!(code, 2, "a running node's log is refused: {err}");
    assert!(err.contains("stop it first"), "{err}");

    for lost in [leader, (leader + 2) % 3] {
        fleet.kill(lost);
        std::fs::remove_dir_all(fleet.data_dir(lost).expect("data dir")).expect("delete a lost member's data");
    }
    fleet.kill(survivor);
    let (code, out, err) = raft_cli(&["show", "--data-dir", data]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("group 0\n") && out.contains("  voters: 1,2,3\n"), "{out}");
    assert!(!out.contains("  purged: none"), "{out}");
    let me = (survivor + 1).to_string();
    let (code, _, err) = raft_cli(&["force-single-voter", "--data-dir", data, "--node-id", "7", "--group", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("node 7 is not a voter of group 0 (voters: 1,2,3)"), "{err}");
    let (code, _, err) = raft_cli(&["force-single-voter", "--data-dir", data, "--node-id", &me, "--group", "x"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = raft_cli(&["force-single-voter", "--data-dir", data, "--node-id", &me, "--group", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("node {me} is now its only voter")), "{out}");
    let (_, out, _) = raft_cli(&["show", "--data-dir", data]);
    assert!(out.contains(&format!("  voters: {me}\n")) && out.contains(&format!("node={me} committed")), "{out}");

    fleet.restart(survivor).expect("restart the survivor");
    let mut s = client(&fleet, survivor).await;
    eventually("the survivor leads alone", async || s.cmd(&["INFO", "raft"]).await.contains("role:leader")).await;
    for i in 0..60 {
        assert_eq!(s.cmd(&["GET", &format!("f:{i}")]).await, bulk(&i.to_string()), "f:{i} after the recovery");
    }
    assert_eq!(s.cmd(&["SET", "after", "recovery"]).await, "+OK\r\n");
    let members = parse_members(&s.cmd(&["RAFT", "MEMBERS"]).await);
    assert_eq!(members.iter().map(|m| (m.0, m.3.as_str())).collect::<Vec<_>>(), [(survivor as u64 + 1, "voter")]);

    // A new member under a new id (never a lost one's) joins and receives everything.
    let survivor_addr = fleet.client_addrs()[survivor];
    let survivor_peer = members[0].2.rsplit_once(':').expect("peer addr").1.to_string();
    let (_four, four_addr, four_peer) = node_four(&format!("{me}@{survivor_addr}@{survivor_peer}")).await;
    assert_eq!(s.cmd(&["RAFT", "ADD", "4", &four_peer]).await, "+OK\r\n");
    let mut four = RawClient::connect(four_addr).await;
    assert_eq!(four.cmd(&["READONLY"]).await, "+OK\r\n");
    eventually("node 4 holds the data", async || four.cmd(&["GET", "after"]).await == bulk("recovery")).await;
    assert_eq!(four.cmd(&["GET", "f:59"]).await, bulk("59"));
    assert_eq!(s.cmd(&["SET", "two", "voters"]).await, "+OK\r\n");
    assert_eq!(s.cmd(&["WAIT", "1", "10000"]).await, ":1\r\n");
}

/// The member of `addrs` that answers `role:leader` with the highest term (bounded wait).
async fn leader_among(addrs: &[SocketAddr]) -> SocketAddr {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let mut best: Option<(u64, SocketAddr)> = None;
        for addr in addrs {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
            else {
                continue;
            };
            drop(stream);
            let info = RawClient::connect(*addr).await.cmd(&["INFO", "raft"]).await;
            let term = info.lines().find_map(|l| l.strip_prefix("term:")).and_then(|t| t.trim().parse().ok());
            if let (true, Some(term)) = (info.contains("role:leader"), term) {
                best = best.max(Some((term, *addr)));
            }
        }
        if let Some((_, addr)) = best {
            return addr;
        }
        assert!(Instant::now() < deadline, "no leader among {addrs:?} within {LEADER_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `args` to whichever member of `addrs` leads, again (bounded) while the answer
/// says leadership moved (`-READONLY`, `-MOVED`, `-TRYAGAIN`); returns the answer.
async fn on_leader(addrs: &[SocketAddr], args: &[&str]) -> String {
    let mut reply = String::new();
    for _ in 0..10 {
        reply = RawClient::connect(leader_among(addrs).await).await.cmd(args).await;
        if !["-READONLY", "-MOVED", "-TRYAGAIN"].iter().any(|p| reply.starts_with(p)) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    reply
}

/// Sends `args` to a member of `addrs` that does not lead, and returns its answer unless
/// leadership moved meanwhile or the member did not know the leader yet (then asks
/// again, bounded).
async fn refused_off_the_leader(addrs: &[SocketAddr], args: &[&str]) -> String {
    let mut reply = String::new();
    for _ in 0..10 {
        let leader = leader_among(addrs).await;
        let other = *addrs.iter().find(|a| **a != leader).expect("a member that does not lead");
        reply = RawClient::connect(other).await.cmd(args).await;
        if reply.starts_with("-TRYAGAIN") {
            // Just elected: the member has not heard from the leader yet.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if leader_among(addrs).await == leader {
            return reply;
        }
    }
    reply
}

/// A fleet with a 200 ms heartbeat: a transfer waits out the voters' leader lease (8x the
/// heartbeat), so a shorter heartbeat keeps these tests short.
fn start_for_transfers() -> (Fleet, usize) {
    let extra_args = vec!["--raft-heartbeat-ms".to_string(), "200".to_string()];
    let fleet = Fleet::start(&FleetOptions { extra_args, ..Default::default() }).expect("fleet starts");
    let leader = fleet.wait_for_leader(None, LEADER_TIMEOUT).expect("a leader is elected");
    (fleet, leader)
}

/// Writes `w:<i> = i` for i = 0, 1, ... through whichever member leads (following
/// `-MOVED`, retrying `-TRYAGAIN`) until `stop`; returns the acknowledged i and how many
/// answered `-TIMEOUT` (unknown outcome). Bounded: 100,000 writes or 120 s.
async fn write_until(addrs: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> (Vec<u64>, usize) {
    let mut conns: Vec<Option<RawClient>> = addrs.iter().map(|_| None).collect();
    let (mut at, mut i, mut unknown) = (0, 0u64, 0);
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && i < 100_000 {
        if conns[at].is_none() {
            conns[at] = Some(RawClient::connect(addrs[at]).await);
        }
        let c = conns[at].as_mut().expect("connected");
        let reply = c.cmd(&["SET", &format!("w:{i}"), &i.to_string()]).await;
        if reply == "+OK\r\n" {
            acked.push(i);
            i += 1;
        } else if reply.starts_with("-MOVED") {
            // Certainly not applied: the same write again, at the leader named.
            let to = reply.trim_end().rsplit(' ').next().and_then(|a| a.parse::<SocketAddr>().ok());
            at = to.and_then(|to| addrs.iter().position(|a| *a == to)).unwrap_or((at + 1) % addrs.len());
        } else if reply.starts_with("-TRYAGAIN") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else if reply.starts_with("-TIMEOUT") {
            unknown += 1;
            i += 1;
        } else {
            panic!("SET w:{i} answered {reply:?}");
        }
    }
    (acked, unknown)
}

async fn raft_role(fleet: &Fleet, i: usize) -> String {
    client(fleet, i).await.cmd(&["INFO", "raft"]).await
}

/// Waits until member `i` knows `leader` leads (a member learns it from the first append).
async fn knows_leader(fleet: &Fleet, i: usize, leader: usize) {
    let line = format!("leader_id:{}\r\n", leader + 1);
    eventually("the member knows the leader", async || raft_role(fleet, i).await.contains(&line)).await;
}

/// RAFT TRANSFER hands leadership to each member in turn while a writer runs: each
/// transfer answers +OK once the target leads, INFO raft on every member names it, and
/// every acknowledged write is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_transfer_to_each_member_under_a_running_writer() {
    let (fleet, first) = start_for_transfers();
    let addrs = fleet.client_addrs();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(addrs.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut leader = first;
    for target in [(first + 1) % 3, (first + 2) % 3, first] {
        let id = (target + 1).to_string();
        let mut l = client(&fleet, leader).await;
        assert_eq!(l.cmd(&["RAFT", "TRANSFER", &id]).await, "+OK\r\n", "transfer from node {} to {id}", leader + 1);
        assert!(raft_role(&fleet, target).await.contains("role:leader"), "node {id} leads after the transfer");
        for other in (0..3).filter(|o| *o != target) {
            eventually("every member names the new leader", async || {
                let info = raft_role(&fleet, other).await;
                info.contains("role:follower") && info.contains(&format!("leader_id:{id}\r\n"))
            })
            .await;
        }
        leader = target;
        // The writer keeps going under the new leader before the next transfer.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (acked, unknown) = writer.await.expect("writer");
    assert!(acked.len() > 20, "too few writes to mean anything: {} acknowledged, {unknown} unknown", acked.len());
    let mut l = client(&fleet, leader).await;
    let mut pipeline = Vec::new();
    for i in &acked {
        pipeline.extend(encode(&["GET", &format!("w:{i}")]));
    }
    l.send(&pipeline).await;
    for i in &acked {
        assert_eq!(l.reply().await, bulk(&i.to_string()), "acknowledged write w:{i} after three transfers");
    }
}

/// CLUSTER FAILOVER on a replica makes it the master (as a Redis Cluster replica does);
/// FORCE does the same with the master down; on the master it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_on_a_replica_makes_it_master() {
    let (mut fleet, leader) = start_for_transfers();
    let addrs = fleet.client_addrs();
    let mut l = client(&fleet, leader).await;
    assert_eq!(l.cmd(&["SET", "before", "failover"]).await, "+OK\r\n");
    assert_eq!(l.cmd(&["CLUSTER", "FAILOVER"]).await, "-ERR You should send CLUSTER FAILOVER to a replica\r\n");

    let replica = (leader + 1) % 3;
    knows_leader(&fleet, replica, leader).await;
    let mut r = client(&fleet, replica).await;
    assert_eq!(r.cmd(&["CLUSTER", "FAILOVER", "SOON"]).await, "-ERR syntax error\r\n");
    assert_eq!(r.cmd(&["CLUSTER", "FAILOVER", "FORCE", "NOW"]).await, "-ERR syntax error\r\n");
    assert!(raft_role(&fleet, leader).await.contains("role:leader"), "bad arguments changed nothing");

    assert_eq!(r.cmd(&["CLUSTER", "FAILOVER"]).await, "+OK\r\n");
    let nodes = r.cmd(&["CLUSTER", "NODES"]).await;
    let myself = nodes.lines().find(|l| l.contains("myself")).expect("a myself line").to_string();
    assert!(myself.contains("master") && myself.contains(&addrs[replica].to_string()), "{nodes}");
    assert!(r.cmd(&["INFO", "replication"]).await.contains("role:master"));
    assert_eq!(r.cmd(&["GET", "before"]).await, bulk("failover"));
    assert_eq!(r.cmd(&["SET", "after", "failover"]).await, "+OK\r\n");
    eventually("the old leader turns replica", async || {
        l.cmd(&["SET", "k", "v"]).await == moved_to("k", addrs[replica])
    })
    .await;

    // FORCE with the master down: the third member campaigns by itself and wins (its log
    // is up to date) as soon as the surviving voter's lease runs out.
    let third = (leader + 2) % 3;
    knows_leader(&fleet, third, replica).await;
    let mut t = client(&fleet, third).await;
    fleet.kill(replica);
    assert_eq!(t.cmd(&["CLUSTER", "FAILOVER", "FORCE"]).await, "+OK\r\n");
    assert!(raft_role(&fleet, third).await.contains("role:leader"));
    assert_eq!(t.cmd(&["GET", "after"]).await, bulk("failover"));
}

/// Refused transfers answer an error and change nothing: a follower, a bad or unknown id,
/// wrong arity, a standalone node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transfers_are_refused_and_change_nothing() {
    let (fleet, leader) = start_for_transfers();
    let addrs = fleet.client_addrs();
    let mut l = client(&fleet, leader).await;
    let term = |info: &str| info.lines().find(|l| l.starts_with("term:")).map(str::to_string);
    let before = term(&raft_role(&fleet, leader).await);
    assert_eq!(l.cmd(&["RAFT", "TRANSFER", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(l.cmd(&["RAFT", "TRANSFER", "9"]).await, "-ERR Unknown node 9\r\n");
    assert!(l.cmd(&["RAFT", "TRANSFER"]).await.starts_with("-ERR wrong number of arguments"));
    assert!(l.cmd(&["RAFT", "TRANSFER", "1", "2"]).await.starts_with("-ERR wrong number of arguments"));
    // To itself: nothing to do.
    assert_eq!(l.cmd(&["RAFT", "TRANSFER", &(leader + 1).to_string()]).await, "+OK\r\n");
    knows_leader(&fleet, (leader + 1) % 3, leader).await;
    let mut f = client(&fleet, (leader + 1) % 3).await;
    assert_eq!(
        f.cmd(&["RAFT", "TRANSFER", "1"]).await,
        format!("-ERR not the leader, ask {}\r\n", addrs[leader]),
        "a transfer sent to a follower"
    );
    let after = raft_role(&fleet, leader).await;
    assert!(after.contains("role:leader") && term(&after) == before, "refusals changed leadership: {after}");
    assert_eq!(l.cmd(&["SET", "still", "writable"]).await, "+OK\r\n");
    assert_eq!(l.cmd(&["GET", "still"]).await, bulk("writable"));

    // A node outside any group has no leadership to hand over.
    let single = Fleet::start(&FleetOptions { nodes: 1, raft: false, ..Default::default() }).expect("single node");
    let mut s = RawClient::connect(single.client_addrs()[0]).await;
    assert!(s.cmd(&["RAFT", "TRANSFER", "2"]).await.starts_with("-ERR this node is not a member"));
    assert_eq!(s.cmd(&["CLUSTER", "FAILOVER"]).await, "-ERR You should send CLUSTER FAILOVER to a replica\r\n");
}
