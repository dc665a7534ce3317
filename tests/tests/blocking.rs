//! Blocking commands through real sockets: served at once when data is there, woken by a
//! write from another client, timeouts, several waiters, pipelined commands behind a
//! blocked one, MULTI, errors, and cleanup on disconnect.
//!
//! Timeouts are real time (the node's deadline is a tokio timer); each is short and every
//! wait is bounded by the harness's reply timeout.

use std::time::{Duration, Instant};

use prism_tests::{bulk, encode, TestNode};

/// Gives a blocked client time to register before the test writes (the result does not
/// depend on it: a write before the client blocks is served at once).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn served_at_once_when_data_is_there() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["RPUSH", "l", "a", "b"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["BLPOP", "empty", "l", "0"]).await, "*2\r\n$1\r\nl\r\n$1\r\na\r\n");
    assert_eq!(c.cmd(&["BRPOP", "l", "0"]).await, "*2\r\n$1\r\nl\r\n$1\r\nb\r\n");
    assert_eq!(c.cmd(&["EXISTS", "l"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["ZADD", "z", "1", "a", "2", "b"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["BZPOPMAX", "z", "0"]).await, "*3\r\n$1\r\nz\r\n$1\r\nb\r\n$1\r\n2\r\n");
    assert_eq!(c.cmd(&["BZPOPMIN", "z", "0"]).await, "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n");
    node.stop().await;
}

#[tokio::test]
async fn a_push_wakes_a_blocked_client_once() {
    let node = TestNode::start().await;
    let mut waiter = node.raw().await;
    let mut other = node.raw().await;
    waiter.send(&encode(&["BLPOP", "jobs", "0"])).await;
    settle().await;
    // The node keeps serving everyone else.
    assert_eq!(other.cmd(&["PING"]).await, "+PONG\r\n");
    assert_eq!(other.cmd(&["LPUSH", "jobs", "j1"]).await, ":1\r\n");
    assert_eq!(waiter.reply().await, "*2\r\n$4\r\njobs\r\n$2\r\nj1\r\n");
    assert_eq!(other.cmd(&["LLEN", "jobs"]).await, ":0\r\n", "the element was popped exactly once");
    node.stop().await;
}

#[tokio::test]
async fn each_element_goes_to_one_waiter() {
    let node = TestNode::start().await;
    let mut a = node.raw().await;
    let mut b = node.raw().await;
    let mut pusher = node.raw().await;
    a.send(&encode(&["BRPOP", "q", "0"])).await;
    b.send(&encode(&["BRPOP", "q", "0"])).await;
    settle().await;
    assert_eq!(pusher.cmd(&["RPUSH", "q", "x"]).await, ":1\r\n");
    assert_eq!(pusher.cmd(&["RPUSH", "q", "y"]).await, ":1\r\n");
    let mut got = vec![a.reply().await, b.reply().await];
    got.sort();
    assert_eq!(got, vec!["*2\r\n$1\r\nq\r\n$1\r\nx\r\n".to_string(), "*2\r\n$1\r\nq\r\n$1\r\ny\r\n".to_string()]);
    assert_eq!(pusher.cmd(&["EXISTS", "q"]).await, ":0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn timeouts_answer_null() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let start = Instant::now();
    assert_eq!(c.cmd(&["BLPOP", "nothing", "0.1"]).await, "*-1\r\n");
    assert!(start.elapsed() >= Duration::from_millis(100), "waited for the timeout");
    assert_eq!(c.cmd(&["BLMOVE", "nothing", "dst", "LEFT", "RIGHT", "0.05"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["BZPOPMIN", "nothing", "0.05"]).await, "*-1\r\n");
    assert_eq!(c.cmd(&["BLMPOP", "0.05", "2", "a", "b", "LEFT"]).await, "*-1\r\n");
    c.hello3().await;
    assert_eq!(c.cmd(&["BRPOP", "nothing", "0.05"]).await, "_\r\n");
    node.stop().await;
}

#[tokio::test]
async fn commands_behind_a_blocked_one_wait_for_it() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let mut pusher = node.raw().await;
    let mut pipeline = encode(&["BLPOP", "l", "0"]);
    pipeline.extend(encode(&["LLEN", "l"]));
    pipeline.extend(encode(&["PING"]));
    c.send(&pipeline).await;
    settle().await;
    assert_eq!(pusher.cmd(&["RPUSH", "l", "a", "b"]).await, ":2\r\n");
    assert_eq!(c.reply().await, "*2\r\n$1\r\nl\r\n$1\r\na\r\n");
    assert_eq!(c.reply().await, ":1\r\n", "LLEN ran after the pop");
    assert_eq!(c.reply().await, "+PONG\r\n");
    node.stop().await;
}

#[tokio::test]
async fn blmove_zadd_and_blmpop_wake_too() {
    let node = TestNode::start().await;
    let mut mover = node.raw().await;
    let mut zwaiter = node.raw().await;
    let mut mwaiter = node.raw().await;
    let mut w = node.raw().await;
    mover.send(&encode(&["BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"])).await;
    zwaiter.send(&encode(&["BZPOPMIN", "z1", "z2", "0"])).await;
    mwaiter.send(&encode(&["BLMPOP", "0", "2", "m1", "m2", "RIGHT", "COUNT", "2"])).await;
    settle().await;
    assert_eq!(w.cmd(&["RPUSH", "src", "e"]).await, ":1\r\n");
    assert_eq!(mover.reply().await, bulk("e"));
    assert_eq!(w.cmd(&["LRANGE", "dst", "0", "-1"]).await, "*1\r\n$1\r\ne\r\n");
    assert_eq!(w.cmd(&["ZADD", "z2", "5", "m"]).await, ":1\r\n");
    assert_eq!(zwaiter.reply().await, "*3\r\n$2\r\nz2\r\n$1\r\nm\r\n$1\r\n5\r\n");
    assert_eq!(w.cmd(&["RPUSH", "m2", "a", "b", "c"]).await, ":3\r\n");
    assert_eq!(mwaiter.reply().await, "*2\r\n$2\r\nm2\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
    node.stop().await;
}

#[tokio::test]
async fn errors_and_multi() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["BLPOP", "l", "-1"]).await, "-ERR timeout is negative\r\n");
    assert_eq!(c.cmd(&["BLPOP", "l", "soon"]).await, "-ERR timeout is not a float or out of range\r\n");
    assert_eq!(c.cmd(&["BLMOVE", "a", "b", "UP", "LEFT", "0"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["SET", "s", "v"]).await, "+OK\r\n");
    assert_eq!(
        c.cmd(&["BLPOP", "s", "0"]).await,
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    // Inside MULTI a blocking command does not block: it answers its timeout reply.
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["BLPOP", "l", "0"]).await, "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]).await, "*1\r\n*-1\r\n");
    node.stop().await;
}

#[tokio::test]
async fn disconnecting_while_blocked_leaves_nothing_behind() {
    let node = TestNode::start().await;
    {
        let mut c = node.raw().await;
        c.send(&encode(&["BLPOP", "gone", "0"])).await;
        settle().await;
        assert!(!node.handle().node.watches.is_empty(), "the blocked client is registered");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !node.handle().node.watches.is_empty() {
        assert!(Instant::now() < deadline, "the closed client's watch was not removed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["RPUSH", "gone", "x"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["LLEN", "gone"]).await, ":1\r\n", "nobody popped it");
    node.stop().await;
}
