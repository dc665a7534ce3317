//! MULTI/EXEC with reads and WATCH on a shard group of three real `prism` processes:
//! reads see the transaction's own writes, WATCH aborts apply nothing on any member, the
//! replies match standalone Prism and redis-server, a real client's atomic pipeline works,
//! and a member that installed a snapshot decides WATCH guards as the others do.

use std::time::{Duration, Instant};

use prism_tests::fleet::{start_steady_group, Fleet};
use prism_tests::redis_server::RealRedis;
use prism_tests::{bulk, RawClient, TestNode};

const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
const NULL_ARRAY: &str = "*-1\r\n";

fn start_with(extra: &[&str]) -> (Fleet, usize) {
    start_steady_group(extra, LEADER_TIMEOUT)
}

async fn client(fleet: &Fleet, i: usize) -> RawClient {
    RawClient::connect(fleet.client_addrs()[i]).await
}

/// A READONLY connection to every member.
async fn readers(fleet: &Fleet) -> Vec<RawClient> {
    let mut all = Vec::new();
    for i in 0..3 {
        let mut c = client(fleet, i).await;
        assert_eq!(c.cmd(&["READONLY"]).await, "+OK\r\n");
        all.push(c);
    }
    all
}

/// Polls `f` until it returns true, at most 20 s.
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

/// Waits until every member applied the leader's log up to a marker write made now, so
/// what a member does not hold afterwards was never applied there.
async fn settle(fleet: &Fleet, leader: usize, marker: &str) {
    let mut l = client(fleet, leader).await;
    assert_eq!(l.cmd(&["SET", marker, "done"]).await, "+OK\r\n");
    for mut r in readers(fleet).await {
        eventually("members apply the marker", async || r.cmd(&["GET", marker]).await == bulk("done")).await;
    }
}

/// Runs `script` as one transaction and returns every reply (the QUEUED ones included).
async fn transaction(c: &mut RawClient, script: &[&[&str]]) -> Vec<String> {
    let mut replies = vec![c.cmd(&["MULTI"]).await];
    for args in script {
        replies.push(c.cmd(args).await);
    }
    replies.push(c.cmd(&["EXEC"]).await);
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_inside_multi_see_the_transactions_own_writes() {
    let (fleet, leader) = start_with(&[]);
    let mut l = client(&fleet, leader).await;
    assert_eq!(l.cmd(&["MULTI"]).await, "+OK\r\n");
    for args in [&["SET", "a", "1"][..], &["GET", "a"], &["INCR", "a"], &["GET", "a"]] {
        assert_eq!(l.cmd(args).await, "+QUEUED\r\n");
    }
    assert_eq!(l.cmd(&["EXEC"]).await, "*4\r\n+OK\r\n$1\r\n1\r\n:2\r\n$1\r\n2\r\n");
    // Nothing is left registered, and every member holds the writes.
    for mut r in readers(&fleet).await {
        eventually("members apply the transaction", async || r.cmd(&["GET", "a"]).await == bulk("2")).await;
    }
}

/// The same script gives the same replies on a replicated leader, a standalone Prism and
/// redis-server: reads between writes, a direct-reply write (HMSET), a pop with a count,
/// a blocking pop (answers at once), errors at queue time and at run time, PING, ECHO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_transaction_replies_as_standalone_and_redis() {
    let (fleet, leader) = start_with(&[]);
    let standalone = TestNode::start().await;
    let redis = RealRedis::start().await;
    let script: &[&[&str]] = &[
        &["SET", "{m}s", "10"],
        &["GET", "{m}s"],
        &["INCRBY", "{m}s", "5"],
        &["HMSET", "{m}h", "f", "v", "g", "w"],
        &["HGET", "{m}h", "g"],
        &["HLEN", "{m}h"],
        &["RPUSH", "{m}l", "x", "y", "z"],
        &["LPOP", "{m}l", "2"],
        &["LRANGE", "{m}l", "0", "-1"],
        &["BLPOP", "{m}empty", "0"],
        &["LPUSH", "{m}s", "wrong"],
        &["PING"],
        &["ECHO", "hi"],
        &["EXISTS", "{m}s", "{m}h", "{m}nope"],
        &["DEL", "{m}s"],
        &["GET", "{m}s"],
    ];
    let mut p = client(&fleet, leader).await;
    let replicated = transaction(&mut p, script).await;
    let alone = transaction(&mut standalone.raw().await, script).await;
    let real = transaction(&mut redis.raw().await, script).await;
    assert_eq!(replicated, real, "replicated leader vs redis-server");
    assert_eq!(alone, real, "standalone vs redis-server");
    // A command refused while queueing aborts the whole transaction, as in Redis.
    let bad: &[&[&str]] = &[&["SET", "{m}k", "v"], &["GET"]];
    let replicated = transaction(&mut p, bad).await;
    let real = transaction(&mut redis.raw().await, bad).await;
    assert_eq!(replicated, real);
    settle(&fleet, leader, "{m}marker").await;
    for mut r in readers(&fleet).await {
        assert_eq!(r.cmd(&["GET", "{m}k"]).await, "$-1\r\n", "an aborted transaction applied nothing");
        assert_eq!(r.cmd(&["HGET", "{m}h", "f"]).await, bulk("v"));
        assert_eq!(r.cmd(&["LRANGE", "{m}l", "0", "-1"]).await, "*1\r\n$1\r\nz\r\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_aborts_when_another_client_writes_and_applies_nothing_anywhere() {
    let (fleet, leader) = start_with(&[]);
    let mut a = client(&fleet, leader).await;
    let mut b = client(&fleet, leader).await;
    assert_eq!(a.cmd(&["SET", "{w}k", "0"]).await, "+OK\r\n");

    // The key itself written by another client between WATCH and EXEC.
    assert_eq!(a.cmd(&["WATCH", "{w}k"]).await, "+OK\r\n");
    assert_eq!(b.cmd(&["SET", "{w}k", "theirs"]).await, "+OK\r\n");
    let replies = transaction(&mut a, &[&["SET", "{w}k", "mine"], &["SET", "{w}other", "1"]]).await;
    assert_eq!(replies.last().map(String::as_str), Some(NULL_ARRAY));

    // Another key of the watched slot: the guard, checked on every member against the
    // replicated slot versions, aborts (a false abort WATCH clients retry).
    assert_eq!(a.cmd(&["WATCH", "{w}k"]).await, "+OK\r\n");
    assert_eq!(b.cmd(&["SET", "{w}neighbour", "x"]).await, "+OK\r\n");
    let replies = transaction(&mut a, &[&["GET", "{w}k"], &["SET", "{w}k", "mine2"], &["SET", "{w}other", "2"]]).await;
    assert_eq!(replies.last().map(String::as_str), Some(NULL_ARRAY));

    settle(&fleet, leader, "{w}marker").await;
    for mut r in readers(&fleet).await {
        assert_eq!(r.cmd(&["GET", "{w}k"]).await, bulk("theirs"));
        assert_eq!(r.cmd(&["GET", "{w}other"]).await, "$-1\r\n");
    }
    // EXEC forgot the WATCH: the next transaction runs.
    let replies = transaction(&mut a, &[&["SET", "{w}k", "after"]]).await;
    assert_eq!(replies.last().map(String::as_str), Some("*1\r\n+OK\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_succeeds_when_nothing_changed() {
    let (fleet, leader) = start_with(&[]);
    let mut a = client(&fleet, leader).await;
    let mut b = client(&fleet, leader).await;
    assert_eq!(a.cmd(&["SET", "{v}n", "41"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "{v}n", "{v}absent"]).await, "+OK\r\n");
    // A write to another slot does not disturb the guard.
    assert_eq!(b.cmd(&["SET", "elsewhere", "1"]).await, "+OK\r\n");
    let replies = transaction(&mut a, &[&["GET", "{v}n"], &["INCR", "{v}n"], &["GET", "{v}absent"]]).await;
    assert_eq!(replies.last().map(String::as_str), Some("*3\r\n$2\r\n41\r\n:42\r\n$-1\r\n"));
    for mut r in readers(&fleet).await {
        eventually("members apply the transaction", async || r.cmd(&["GET", "{v}n"]).await == bulk("42")).await;
    }
}

/// A real client's atomic pipeline (MULTI/EXEC with reads, as redis-py's default
/// `pipeline()`), with a WATCH retry loop, against the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_client_atomic_pipeline_with_reads_and_watch() {
    let (fleet, leader) = start_with(&[]);
    let addr = fleet.client_addrs()[leader];
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    let mut con = client.get_multiplexed_async_connection().await.expect("connect");
    let (set, got, incr, len): (String, String, i64, i64) = redis::pipe()
        .atomic()
        .set("{p}a", "7")
        .get("{p}a")
        .incr("{p}a", 3)
        .rpush("{p}l", &["x", "y"])
        .query_async(&mut con)
        .await
        .expect("atomic pipeline");
    assert_eq!((set.as_str(), got.as_str(), incr, len), ("OK", "7", 10, 2));

    // Optimistic locking as redis-py's `transaction()` helper does it: WATCH, read,
    // MULTI ... EXEC, retried on a null reply (bounded).
    let mut watch_con = client.get_multiplexed_async_connection().await.expect("connect");
    let mut done = None;
    for _ in 0..5 {
        let _: () = redis::cmd("WATCH").arg("{p}a").query_async(&mut watch_con).await.expect("watch");
        let current: i64 = redis::cmd("GET").arg("{p}a").query_async(&mut watch_con).await.expect("get");
        let result: Option<(i64,)> = redis::pipe()
            .atomic()
            .set("{p}a", current * 2)
            .ignore()
            .get("{p}a")
            .query_async(&mut watch_con)
            .await
            .expect("exec");
        if let Some((v,)) = result {
            done = Some(v);
            break;
        }
    }
    assert_eq!(done, Some(20));
}

/// A member that installed a snapshot holds the same slot versions as the others, so it
/// decides a WATCH guard the same way: a transaction that passed on the leader applies
/// there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_installed_member_agrees_on_watch_guards() {
    let (mut fleet, leader) = start_with(&["--raft-snapshot-entries", "20"]);
    let behind = (leader + 1) % 3;
    fleet.kill(behind);
    let mut l = client(&fleet, leader).await;
    for i in 0..120 {
        assert_eq!(l.cmd(&["SET", &format!("{{g}}s:{i}"), &format!("{i}")]).await, "+OK\r\n");
    }
    eventually("the leader snapshots and purges its log", async || {
        let info = l.cmd(&["INFO", "raft"]).await;
        !info.contains("snapshot_index:0\r\n") && !info.contains("purged_index:0\r\n")
    })
    .await;
    fleet.restart(behind).expect("restart the member that was down");
    let mut b = client(&fleet, behind).await;
    assert_eq!(b.cmd(&["READONLY"]).await, "+OK\r\n");
    eventually("the member catches up", async || b.cmd(&["GET", "{g}s:119"]).await == bulk("119")).await;
    let info = b.cmd(&["INFO", "raft"]).await;
    assert!(!info.contains("snapshot_index:0\r\n"), "the member installed a snapshot: {info}");

    // The watched slot was written 120 times before the snapshot: its version is not 0.
    assert_eq!(l.cmd(&["WATCH", "{g}s:1"]).await, "+OK\r\n");
    let replies = transaction(&mut l, &[&["GET", "{g}s:1"], &["SET", "{g}s:1", "guarded"]]).await;
    assert_eq!(replies.last().map(String::as_str), Some("*2\r\n$1\r\n1\r\n+OK\r\n"));
    settle(&fleet, leader, "{g}marker").await;
    for mut r in readers(&fleet).await {
        assert_eq!(r.cmd(&["GET", "{g}s:1"]).await, bulk("guarded"));
    }
}
