//! Transactions over a real socket, byte-exact in RESP2 and RESP3: MULTI EXEC DISCARD
//! WATCH UNWATCH. The error paths are checked against a real redis-server with the same
//! command stream; atomicity and isolation with concurrent clients; the `redis` crate's
//! atomic pipeline.

use prism_tests::redis_server::{same_reply, seed, RealRedis};
use prism_tests::{bulk, TestNode};

/// Every path of queueing and EXEC that a standalone Redis shares with Prism, replayed
/// on both: the replies must be identical bytes.
#[tokio::test]
async fn transaction_paths_match_redis() {
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    let script: &[&[&str]] = &[
        // Reads see the transaction's own earlier writes.
        &["MULTI"],
        &["SET", "a", "1"],
        &["GET", "a"],
        &["INCR", "a"],
        &["GET", "a"],
        &["EXEC"],
        // Nested MULTI is refused without failing the transaction.
        &["MULTI"],
        &["MULTI"],
        &["EXEC"],
        &["EXEC"],
        &["DISCARD"],
        // Unknown command and wrong arity while queueing: EXECABORT.
        &["MULTI"],
        &["FOO", "bar"],
        &["SET", "never", "1"],
        &["EXEC"],
        &["EXISTS", "never"],
        &["MULTI"],
        &["GET"],
        &["EXEC"],
        // A refused EXEC aborts the transaction and says why.
        &["MULTI"],
        &["SET", "never", "1"],
        &["EXEC", "now"],
        &["EXEC"],
        &["EXEC", "now"],
        &["EXISTS", "never"],
        // Errors at EXEC time stay in the array; the other commands apply.
        &["HSET", "h", "f", "v"],
        &["MULTI"],
        &["SET", "s", "x"],
        &["INCR", "h"],
        &["INCR", "s"],
        &["SET", "b", "2", "BADOPT"],
        &["APPEND", "s", "y"],
        &["HGET", "h", "f"],
        &["GET", "s"],
        &["EXEC"],
        // WATCH inside MULTI; DISCARD; UNWATCH queued; an empty transaction.
        &["MULTI"],
        &["WATCH", "a"],
        &["UNWATCH"],
        &["DISCARD"],
        &["MULTI"],
        &["EXEC"],
        // HMSET writes through its own path; DEL and a read of what it removed.
        &["MULTI"],
        &["HMSET", "h2", "a", "1", "b", "2"],
        &["HGETALL", "h2"],
        &["DEL", "h2", "a"],
        &["HLEN", "h2"],
        &["EXEC"],
        // Keyspace-wide reads inside a transaction.
        &["MULTI"],
        &["SET", "k1", "v"],
        &["KEYS", "k*"],
        &["DBSIZE"],
        &["FLUSHALL"],
        &["DBSIZE"],
        &["SET", "after", "1"],
        &["EXEC"],
        &["KEYS", "*"],
    ];
    let s = seed();
    for args in script {
        same_reply(&mut p, &mut r, args, s).await;
    }
    assert_eq!(p.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(p.cmd(&["SET", "a", "1"]).await, "+QUEUED\r\n");
    assert_eq!(p.cmd(&["GET", "a"]).await, "+QUEUED\r\n");
    assert_eq!(p.cmd(&["INCR", "a"]).await, "+QUEUED\r\n");
    assert_eq!(p.cmd(&["EXEC"]).await, format!("*3\r\n+OK\r\n{}:2\r\n", bulk("1")));
}

#[tokio::test]
async fn error_words() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["EXEC"]).await, "-ERR EXEC without MULTI\r\n");
    assert_eq!(c.cmd(&["DISCARD"]).await, "-ERR DISCARD without MULTI\r\n");
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["MULTI"]).await, "-ERR MULTI calls can not be nested\r\n");
    assert_eq!(c.cmd(&["WATCH", "k"]).await, "-ERR WATCH inside MULTI is not allowed\r\n");
    assert_eq!(c.cmd(&["INCR", "k"]).await, "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]).await, "*1\r\n:1\r\n");
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["NOPE"]).await, "-ERR unknown command 'NOPE', with args beginning with: \r\n");
    assert_eq!(c.cmd(&["INCR", "k"]).await, "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]).await, "-EXECABORT Transaction discarded because of previous errors.\r\n");
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("1"));
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["INCR", "k"]).await, "+QUEUED\r\n");
    assert_eq!(c.cmd(&["DISCARD"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("1"));
}

#[tokio::test]
async fn watch_sees_another_clients_write() {
    let node = TestNode::start().await;
    let (mut a, mut b) = (node.raw().await, node.raw().await);
    assert_eq!(a.cmd(&["SET", "k", "1"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "k", "other"]).await, "+OK\r\n");
    assert_eq!(b.cmd(&["SET", "k", "2"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["SET", "k", "3"]).await, "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]).await, "*-1\r\n");
    assert_eq!(a.cmd(&["GET", "k"]).await, bulk("2"));
    // EXEC unwatched everything: the next transaction runs.
    assert_eq!(b.cmd(&["SET", "k", "4"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["SET", "k", "3"]).await, "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]).await, "*1\r\n+OK\r\n");
    // An untouched watch lets EXEC run; a write to another key does not count.
    assert_eq!(a.cmd(&["WATCH", "k"]).await, "+OK\r\n");
    assert_eq!(b.cmd(&["SET", "unrelated", "1"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["GET", "k"]).await, "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]).await, format!("*1\r\n{}", bulk("3")));
}

#[tokio::test]
async fn watch_then_own_write_aborts_as_in_redis() {
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    let s = seed();
    for args in [
        &["WATCH", "k"][..],
        &["SET", "k", "mine"],
        &["MULTI"],
        &["GET", "k"],
        &["EXEC"],
        // UNWATCH forgets the write.
        &["WATCH", "k"],
        &["SET", "k", "again"],
        &["UNWATCH"],
        &["MULTI"],
        &["GET", "k"],
        &["EXEC"],
        // DISCARD unwatches too.
        &["WATCH", "k"],
        &["MULTI"],
        &["DISCARD"],
        &["SET", "k", "third"],
        &["MULTI"],
        &["GET", "k"],
        &["EXEC"],
        // Watching a missing key that another command leaves missing.
        &["WATCH", "missing"],
        &["GET", "missing"],
        &["MULTI"],
        &["SET", "missing", "1"],
        &["EXEC"],
    ] {
        same_reply(&mut p, &mut r, args, s).await;
    }
}

#[tokio::test]
async fn watched_key_that_expires_aborts() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v", "PX", "100"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["WATCH", "k"]).await, "+OK\r\n");
    node.clock.advance_ms(200);
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "x", "1"]).await, "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]).await, "*-1\r\n");
    assert_eq!(c.cmd(&["EXISTS", "x"]).await, ":0\r\n");
}

#[tokio::test]
async fn reset_and_quit_forget_the_transaction_and_watches() {
    let node = TestNode::start().await;
    let (mut a, mut b) = (node.raw().await, node.raw().await);
    assert_eq!(a.cmd(&["WATCH", "k"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["SET", "x", "1"]).await, "+QUEUED\r\n");
    assert_eq!(a.cmd(&["RESET"]).await, "+RESET\r\n");
    assert_eq!(a.cmd(&["EXEC"]).await, "-ERR EXEC without MULTI\r\n");
    assert_eq!(b.cmd(&["SET", "k", "1"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["SET", "x", "1"]).await, "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]).await, "*1\r\n+OK\r\n");
    // A client that watched and left costs writers nothing afterwards.
    assert_eq!(a.cmd(&["WATCH", "k"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["QUIT"]).await, "+OK\r\n");
    assert!(a.closed().await);
    assert_eq!(b.cmd(&["SET", "k", "2"]).await, "+OK\r\n");
}

#[tokio::test]
async fn resp3_shapes() {
    let node = TestNode::start().await;
    let (mut a, mut b) = (node.raw().await, node.raw().await);
    a.hello3().await;
    assert_eq!(a.cmd(&["HSET", "h", "f", "v"]).await, ":1\r\n");
    assert_eq!(a.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["HGETALL", "h"]).await, "+QUEUED\r\n");
    assert_eq!(a.cmd(&["GET", "missing"]).await, "+QUEUED\r\n");
    assert_eq!(a.cmd(&["INCR", "h"]).await, "+QUEUED\r\n");
    assert_eq!(
        a.cmd(&["EXEC"]).await,
        format!(
            "*3\r\n%1\r\n{}{}_\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            bulk("f"),
            bulk("v")
        )
    );
    assert_eq!(a.cmd(&["WATCH", "h"]).await, "+OK\r\n");
    assert_eq!(b.cmd(&["HSET", "h", "g", "w"]).await, ":1\r\n");
    assert_eq!(a.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(a.cmd(&["HLEN", "h"]).await, "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]).await, "_\r\n");
}

#[tokio::test]
async fn oom_while_queueing_aborts() {
    // No cold tier: over maxmemory, writes are refused at once (with one, they would wait
    // for the spiller to make room).
    let node = TestNode::start_with(|c| c.cold_store = Some("none".into())).await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "fill", &"x".repeat(4096)]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "1"]).await, "+OK\r\n");
    let oom = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    // Inside MULTI even reads are refused when over maxmemory, as in Redis.
    assert_eq!(c.cmd(&["GET", "fill"]).await, oom);
    assert_eq!(c.cmd(&["EXEC"]).await, "-EXECABORT Transaction discarded because of previous errors.\r\n");
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "a", "1"]).await, "+QUEUED\r\n");
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "1"]).await, "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]).await, "*2\r\n+OK\r\n+OK\r\n");
    // Now over maxmemory: MULTI itself may run, the commands after it may not.
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "b", "1"]).await, oom);
    assert_eq!(c.cmd(&["DISCARD"]).await, "+OK\r\n");
    // A transaction that may grow memory is refused at EXEC, and discarded.
    let mut admin = node.raw().await;
    assert_eq!(admin.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "b", "1"]).await, "+QUEUED\r\n");
    assert_eq!(admin.cmd(&["CONFIG", "SET", "maxmemory", "1"]).await, "+OK\r\n");
    assert_eq!(
        c.cmd(&["EXEC"]).await,
        "-EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    assert_eq!(c.cmd(&["EXEC"]).await, "-ERR EXEC without MULTI\r\n");
    assert_eq!(admin.cmd(&["EXISTS", "b"]).await, ":0\r\n");
}

/// Concurrent INCRs never land inside a transaction: the reads of each EXEC see exactly
/// the transaction's own increments. A keyspace-wide read (KEYS) in the transaction
/// holds every slot while another client writes keys of several slots at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactions_are_isolated_from_concurrent_writers() {
    let node = TestNode::start().await;
    let mut writer = node.raw().await;
    let mut other = node.raw().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let hammer = tokio::spawn(async move {
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            assert!(writer.cmd(&["INCR", "c"]).await.starts_with(':'));
            assert_eq!(writer.cmd(&["MSET", "x", "1", "c2", "1", "y", "1"]).await, "+OK\r\n");
            n += 1;
        }
        n
    });
    for round in 0..200 {
        let keys = round % 10 == 0;
        assert_eq!(other.cmd(&["MULTI"]).await, "+OK\r\n");
        for args in [&["INCR", "c"][..], &["GET", "c"], &["INCR", "c"], &["GET", "c"]] {
            assert_eq!(other.cmd(args).await, "+QUEUED\r\n");
        }
        if keys {
            assert_eq!(other.cmd(&["KEYS", "c*"]).await, "+QUEUED\r\n");
        }
        let reply = other.cmd(&["EXEC"]).await;
        let lines: Vec<&str> = reply.split("\r\n").collect();
        let first: i64 = lines[1][1..].parse().expect("int");
        assert_eq!(lines[3], first.to_string(), "read after own INCR: {reply:?}");
        assert_eq!(lines[4], format!(":{}", first + 1), "second INCR follows the first: {reply:?}");
        assert_eq!(lines[6], (first + 1).to_string(), "{reply:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(hammer.await.expect("writer") > 0);
}

#[tokio::test]
async fn redis_crate_atomic_pipeline() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    let (set, incr, get, len): (String, i64, String, i64) = redis::pipe()
        .atomic()
        .set("p", 41)
        .incr("p", 1)
        .get("p")
        .cmd("STRLEN")
        .arg("p")
        .query_async(&mut con)
        .await
        .expect("atomic pipeline");
    assert_eq!((set.as_str(), incr, get.as_str(), len), ("OK", 42, "42", 2));
    // WATCH through the crate: a write by another client makes EXEC return nil.
    let mut other = node.redis().await;
    let _: () = redis::cmd("WATCH").arg("p").query_async(&mut con).await.expect("watch");
    let _: () = redis::cmd("SET").arg("p").arg(0).query_async(&mut other).await.expect("set");
    let aborted: Option<(i64,)> =
        redis::pipe().atomic().incr("p", 1).query_async(&mut con).await.expect("exec answers nil");
    assert_eq!(aborted, None);
}
