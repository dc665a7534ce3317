//! List commands over a real socket, byte-exact in RESP2 and RESP3: LPUSH RPUSH LPUSHX
//! RPUSHX LPOP RPOP LRANGE LLEN LINDEX LSET LREM LTRIM LINSERT LPOS LMOVE RPOPLPUSH LMPOP;
//! their edge cases (the key goes with its last element, out-of-range and negative
//! indexes, counts 0 / negative / beyond the list, null arrays, same-list LMOVE rotation,
//! negative RANK, WRONGTYPE for every command, TTLs kept across pushes); fixed edge cases
//! and a randomized command stream checked against a real redis-server.

use prism_tests::redis_server::{same_reply, seed, RealRedis};
use prism_tests::rng::Rng;
use prism_tests::{bulk, RawClient, TestNode};

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

fn array(items: &[&str]) -> String {
    let mut s = format!("*{}\r\n", items.len());
    items.iter().for_each(|i| s.push_str(&bulk(i)));
    s
}

fn ints(items: &[i64]) -> String {
    let mut s = format!("*{}\r\n", items.len());
    items.iter().for_each(|i| s.push_str(&format!(":{i}\r\n")));
    s
}

async fn lrange(c: &mut RawClient, key: &str) -> String {
    c.cmd(&["LRANGE", key, "0", "-1"]).await
}

#[tokio::test]
async fn push_len_range_index() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["RPUSH", "l", "b", "c"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["LPUSH", "l", "a", "z"]).await, ":4\r\n");
    assert_eq!(lrange(&mut c, "l").await, array(&["z", "a", "b", "c"]));
    assert_eq!(c.cmd(&["LLEN", "l"]).await, ":4\r\n");
    assert_eq!(c.cmd(&["LLEN", "missing"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["LPUSHX", "missing", "a"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["RPUSHX", "missing", "a", "b"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["EXISTS", "missing"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["LPUSHX", "l", "y", "x"]).await, ":6\r\n");
    assert_eq!(c.cmd(&["RPUSHX", "l", "d"]).await, ":7\r\n");
    assert_eq!(lrange(&mut c, "l").await, array(&["x", "y", "z", "a", "b", "c", "d"]));
    // Ranges: negative indexes count from the tail; out-of-range ends are clamped.
    assert_eq!(c.cmd(&["LRANGE", "l", "1", "2"]).await, array(&["y", "z"]));
    assert_eq!(c.cmd(&["LRANGE", "l", "-2", "-1"]).await, array(&["c", "d"]));
    assert_eq!(c.cmd(&["LRANGE", "l", "-100", "1"]).await, array(&["x", "y"]));
    assert_eq!(c.cmd(&["LRANGE", "l", "5", "100"]).await, array(&["c", "d"]));
    assert_eq!(c.cmd(&["LRANGE", "l", "3", "2"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["LRANGE", "l", "7", "9"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["LRANGE", "l", "0", "-8"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["LRANGE", "missing", "0", "-1"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["LRANGE", "l", "a", "1"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["LINDEX", "l", "0"]).await, bulk("x"));
    assert_eq!(c.cmd(&["LINDEX", "l", "-1"]).await, bulk("d"));
    assert_eq!(c.cmd(&["LINDEX", "l", "7"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["LINDEX", "l", "-8"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["LINDEX", "missing", "x"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["LINDEX", "l", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    // Empty elements are ordinary.
    assert_eq!(c.cmd(&["RPUSH", "e", ""]).await, ":1\r\n");
    assert_eq!(c.cmd(&["LRANGE", "e", "0", "-1"]).await, "*1\r\n$0\r\n\r\n");
    assert_eq!(c.cmd(&["LPUSH", "l"]).await, "-ERR wrong number of arguments for 'lpush' command\r\n");
    c.hello3().await;
    assert_eq!(c.cmd(&["LINDEX", "l", "100"]).await, "_\r\n");
    assert_eq!(c.cmd(&["LRANGE", "l", "0", "0"]).await, array(&["x"]));
    node.stop().await;
}

#[tokio::test]
async fn pops_with_and_without_count() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["RPUSH", "l", "a", "b", "c", "d", "e"]).await;
    assert_eq!(c.cmd(&["LPOP", "l"]).await, bulk("a"));
    assert_eq!(c.cmd(&["RPOP", "l"]).await, bulk("e"));
    assert_eq!(c.cmd(&["LPOP", "l", "2"]).await, array(&["b", "c"]));
    assert_eq!(c.cmd(&["LPOP", "l", "0"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["RPOP", "l", "10"]).await, array(&["d"]));
    // The last pop deleted the key.
    assert_eq!(c.cmd(&["EXISTS", "l"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["LPOP", "l"]).await, "$-1\r\n");
    // With a count, a missing key is a null array, even for count 0.
    assert_eq!(c.cmd(&["LPOP", "l", "1"]).await, "*-1\r\n");
    assert_eq!(c.cmd(&["RPOP", "l", "0"]).await, "*-1\r\n");
    assert_eq!(c.cmd(&["LPOP", "l", "-1"]).await, "-ERR value is out of range, must be positive\r\n");
    assert_eq!(c.cmd(&["LPOP", "l", "x"]).await, "-ERR value is out of range, must be positive\r\n");
    assert_eq!(c.cmd(&["LPOP", "l", "1", "2"]).await, "-ERR wrong number of arguments for 'lpop' command\r\n");
    c.cmd(&["RPUSH", "l", "a", "b", "c"]).await;
    assert_eq!(c.cmd(&["RPOP", "l", "2"]).await, array(&["c", "b"]));
    c.hello3().await;
    assert_eq!(c.cmd(&["LPOP", "missing"]).await, "_\r\n");
    assert_eq!(c.cmd(&["LPOP", "missing", "2"]).await, "_\r\n");
    assert_eq!(c.cmd(&["RPOP", "l", "5"]).await, array(&["a"]));
    node.stop().await;
}

#[tokio::test]
async fn lset_lrem_ltrim_linsert() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["RPUSH", "l", "a", "b", "a", "c", "a"]).await;
    assert_eq!(c.cmd(&["LSET", "l", "1", "B"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["LSET", "l", "-1", "A"]).await, "+OK\r\n");
    assert_eq!(lrange(&mut c, "l").await, array(&["a", "B", "a", "c", "A"]));
    assert_eq!(c.cmd(&["LSET", "l", "5", "x"]).await, "-ERR index out of range\r\n");
    assert_eq!(c.cmd(&["LSET", "l", "-6", "x"]).await, "-ERR index out of range\r\n");
    assert_eq!(c.cmd(&["LSET", "missing", "0", "x"]).await, "-ERR no such key\r\n");
    // A missing key is reported before a bad index, as Redis looks the key up first.
    assert_eq!(c.cmd(&["LSET", "missing", "x", "x"]).await, "-ERR no such key\r\n");
    assert_eq!(c.cmd(&["LSET", "l", "x", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["EXISTS", "missing"]).await, ":0\r\n");

    c.cmd(&["RPUSH", "r", "a", "b", "a", "c", "a", "a"]).await;
    assert_eq!(c.cmd(&["LREM", "r", "1", "a"]).await, ":1\r\n");
    assert_eq!(lrange(&mut c, "r").await, array(&["b", "a", "c", "a", "a"]));
    assert_eq!(c.cmd(&["LREM", "r", "-2", "a"]).await, ":2\r\n");
    assert_eq!(lrange(&mut c, "r").await, array(&["b", "a", "c"]));
    assert_eq!(c.cmd(&["LREM", "r", "0", "zz"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["LREM", "missing", "0", "a"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["LREM", "r", "x", "a"]).await, "-ERR value is not an integer or out of range\r\n");
    c.cmd(&["RPUSH", "r2", "a", "a"]).await;
    assert_eq!(c.cmd(&["LREM", "r2", "0", "a"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["EXISTS", "r2"]).await, ":0\r\n");

    c.cmd(&["RPUSH", "t", "0", "1", "2", "3", "4", "5"]).await;
    assert_eq!(c.cmd(&["LTRIM", "t", "1", "-2"]).await, "+OK\r\n");
    assert_eq!(lrange(&mut c, "t").await, array(&["1", "2", "3", "4"]));
    assert_eq!(c.cmd(&["LTRIM", "t", "-100", "100"]).await, "+OK\r\n");
    assert_eq!(lrange(&mut c, "t").await, array(&["1", "2", "3", "4"]));
    assert_eq!(c.cmd(&["LTRIM", "missing", "0", "1"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["LTRIM", "t", "0", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["LTRIM", "t", "3", "1"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["EXISTS", "t"]).await, ":0\r\n");

    c.cmd(&["RPUSH", "i", "a", "c"]).await;
    assert_eq!(c.cmd(&["LINSERT", "i", "BEFORE", "c", "b"]).await, ":3\r\n");
    assert_eq!(c.cmd(&["LINSERT", "i", "after", "c", "d"]).await, ":4\r\n");
    assert_eq!(c.cmd(&["LINSERT", "i", "AFTER", "zz", "d"]).await, ":-1\r\n");
    assert_eq!(c.cmd(&["LINSERT", "missing", "AFTER", "a", "d"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["LINSERT", "i", "MIDDLE", "a", "d"]).await, "-ERR syntax error\r\n");
    assert_eq!(lrange(&mut c, "i").await, array(&["a", "b", "c", "d"]));
    assert_eq!(c.cmd(&["EXISTS", "missing"]).await, ":0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn lpos_options() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["RPUSH", "l", "a", "b", "c", "1", "2", "3", "c", "c"]).await;
    assert_eq!(c.cmd(&["LPOS", "l", "c"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["LPOS", "l", "c", "RANK", "2"]).await, ":6\r\n");
    assert_eq!(c.cmd(&["LPOS", "l", "c", "RANK", "-1"]).await, ":7\r\n");
    assert_eq!(c.cmd(&["LPOS", "l", "c", "RANK", "-3"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["LPOS", "l", "c", "RANK", "4"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["LPOS", "l", "c", "COUNT", "2"]).await, ints(&[2, 6]));
    assert_eq!(c.cmd(&["LPOS", "l", "c", "COUNT", "0"]).await, ints(&[2, 6, 7]));
    assert_eq!(c.cmd(&["LPOS", "l", "c", "RANK", "-1", "COUNT", "2"]).await, ints(&[7, 6]));
    assert_eq!(c.cmd(&["LPOS", "l", "c", "COUNT", "0", "MAXLEN", "7"]).await, ints(&[2, 6]));
    assert_eq!(c.cmd(&["LPOS", "l", "c", "RANK", "-1", "MAXLEN", "1", "COUNT", "0"]).await, ints(&[7]));
    assert_eq!(c.cmd(&["LPOS", "l", "a", "RANK", "-1", "MAXLEN", "2"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["LPOS", "l", "zz", "COUNT", "1"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["LPOS", "missing", "a"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["LPOS", "missing", "a", "COUNT", "1"]).await, "*0\r\n");
    assert_eq!(
        c.cmd(&["LPOS", "l", "c", "RANK", "0"]).await,
        "-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list\r\n"
    );
    assert_eq!(c.cmd(&["LPOS", "l", "c", "COUNT", "-1"]).await, "-ERR COUNT can't be negative\r\n");
    assert_eq!(c.cmd(&["LPOS", "l", "c", "MAXLEN", "-1"]).await, "-ERR MAXLEN can't be negative\r\n");
    assert_eq!(c.cmd(&["LPOS", "l", "c", "RANK"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["LPOS", "l", "c", "FOO", "1"]).await, "-ERR syntax error\r\n");
    // Options are checked before the key.
    assert_eq!(c.cmd(&["LPOS", "missing", "c", "RANK", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    c.hello3().await;
    assert_eq!(c.cmd(&["LPOS", "l", "zz"]).await, "_\r\n");
    node.stop().await;
}

#[tokio::test]
async fn lmove_rpoplpush_lmpop() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["RPUSH", "{l}a", "1", "2", "3"]).await;
    assert_eq!(c.cmd(&["LMOVE", "{l}a", "{l}b", "LEFT", "RIGHT"]).await, bulk("1"));
    assert_eq!(c.cmd(&["LMOVE", "{l}a", "{l}b", "right", "left"]).await, bulk("3"));
    assert_eq!(lrange(&mut c, "{l}b").await, array(&["3", "1"]));
    assert_eq!(c.cmd(&["RPOPLPUSH", "{l}a", "{l}b"]).await, bulk("2"));
    assert_eq!(c.cmd(&["EXISTS", "{l}a"]).await, ":0\r\n");
    assert_eq!(lrange(&mut c, "{l}b").await, array(&["2", "3", "1"]));
    // Same list: a rotation, both ways.
    assert_eq!(c.cmd(&["RPOPLPUSH", "{l}b", "{l}b"]).await, bulk("1"));
    assert_eq!(lrange(&mut c, "{l}b").await, array(&["1", "2", "3"]));
    assert_eq!(c.cmd(&["LMOVE", "{l}b", "{l}b", "LEFT", "RIGHT"]).await, bulk("1"));
    assert_eq!(lrange(&mut c, "{l}b").await, array(&["2", "3", "1"]));
    assert_eq!(c.cmd(&["LMOVE", "{l}b", "{l}b", "LEFT", "LEFT"]).await, bulk("2"));
    assert_eq!(lrange(&mut c, "{l}b").await, array(&["2", "3", "1"]));
    c.cmd(&["RPUSH", "{l}one", "x"]).await;
    assert_eq!(c.cmd(&["LMOVE", "{l}one", "{l}one", "RIGHT", "LEFT"]).await, bulk("x"));
    assert_eq!(lrange(&mut c, "{l}one").await, array(&["x"]));
    assert_eq!(c.cmd(&["LMOVE", "{l}missing", "{l}b", "LEFT", "LEFT"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["LMOVE", "{l}b", "{l}c", "UP", "LEFT"]).await, "-ERR syntax error\r\n");
    // A wrong-type destination moves nothing.
    c.cmd(&["SET", "{l}s", "v"]).await;
    assert_eq!(c.cmd(&["LMOVE", "{l}b", "{l}s", "LEFT", "LEFT"]).await, WRONGTYPE);
    assert_eq!(c.cmd(&["RPOPLPUSH", "{l}missing", "{l}s"]).await, "$-1\r\n");
    assert_eq!(lrange(&mut c, "{l}b").await, array(&["2", "3", "1"]));

    assert_eq!(
        c.cmd(&["LMPOP", "3", "{l}missing", "{l}b", "{l}one", "LEFT"]).await,
        "*2\r\n$4\r\n{l}b\r\n*1\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        c.cmd(&["LMPOP", "2", "{l}b", "{l}one", "RIGHT", "COUNT", "5"]).await,
        "*2\r\n$4\r\n{l}b\r\n*2\r\n$1\r\n1\r\n$1\r\n3\r\n"
    );
    assert_eq!(c.cmd(&["EXISTS", "{l}b"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["LMPOP", "1", "{l}missing", "LEFT"]).await, "*-1\r\n");
    assert_eq!(c.cmd(&["LMPOP", "2", "{l}missing", "{l}s", "LEFT"]).await, WRONGTYPE);
    assert_eq!(c.cmd(&["LMPOP", "0", "{l}one", "LEFT"]).await, "-ERR numkeys should be greater than 0\r\n");
    assert_eq!(c.cmd(&["LMPOP", "x", "{l}one", "LEFT"]).await, "-ERR numkeys should be greater than 0\r\n");
    assert_eq!(c.cmd(&["LMPOP", "2", "{l}one", "LEFT"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["LMPOP", "1", "{l}one", "UP"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["LMPOP", "1", "{l}one", "LEFT", "COUNT", "0"]).await, "-ERR count should be greater than 0\r\n");
    assert_eq!(c.cmd(&["LMPOP", "1", "{l}one", "LEFT", "COUNT", "1", "COUNT", "1"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["LMPOP", "9223372036854775807", "{l}one", "LEFT"]).await, "-ERR syntax error\r\n");
    c.hello3().await;
    assert_eq!(c.cmd(&["LMPOP", "1", "{l}missing", "LEFT"]).await, "_\r\n");
    assert_eq!(c.cmd(&["LMOVE", "{l}missing", "{l}b", "LEFT", "LEFT"]).await, "_\r\n");
    assert_eq!(c.cmd(&["LMPOP", "1", "{l}one", "LEFT"]).await, "*2\r\n$6\r\n{l}one\r\n*1\r\n$1\r\nx\r\n");
    node.stop().await;
}

/// List commands queue and run inside MULTI/EXEC like any other, pops with their null
/// arrays included.
#[tokio::test]
async fn inside_a_transaction() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["MULTI"]).await, "+OK\r\n");
    for args in [
        &["RPUSH", "l", "a", "b", "c"][..],
        &["LPOP", "l", "2"],
        &["LPOP", "missing", "1"],
        &["LSET", "l", "0", "z"],
        &["LMPOP", "1", "l", "LEFT"],
    ] {
        assert_eq!(c.cmd(args).await, "+QUEUED\r\n");
    }
    assert_eq!(
        c.cmd(&["EXEC"]).await,
        "*5\r\n:3\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*-1\r\n+OK\r\n*2\r\n$1\r\nl\r\n*1\r\n$1\r\nz\r\n"
    );
    assert_eq!(c.cmd(&["EXISTS", "l"]).await, ":0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn wrongtype_for_every_command() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["SET", "{k}s", "v"]).await;
    c.cmd(&["RPUSH", "{k}l", "a"]).await;
    for args in [
        &["LPUSH", "{k}s", "a"][..],
        &["RPUSH", "{k}s", "a"],
        &["LPUSHX", "{k}s", "a"],
        &["RPUSHX", "{k}s", "a"],
        &["LPOP", "{k}s"],
        &["RPOP", "{k}s", "0"],
        &["LRANGE", "{k}s", "0", "-1"],
        &["LLEN", "{k}s"],
        &["LINDEX", "{k}s", "x"],
        &["LSET", "{k}s", "x", "v"],
        &["LSET", "{k}s", "0", "v"],
        &["LREM", "{k}s", "0", "v"],
        &["LTRIM", "{k}s", "0", "1"],
        &["LINSERT", "{k}s", "BEFORE", "a", "b"],
        &["LPOS", "{k}s", "a"],
        &["LMOVE", "{k}s", "{k}l", "LEFT", "LEFT"],
        &["LMOVE", "{k}l", "{k}s", "LEFT", "LEFT"],
        &["RPOPLPUSH", "{k}s", "{k}l"],
        &["LMPOP", "2", "{k}s", "{k}l", "LEFT"],
    ] {
        assert_eq!(c.cmd(args).await, WRONGTYPE, "{args:?}");
    }
    assert_eq!(c.cmd(&["GET", "{k}s"]).await, bulk("v"));
    assert_eq!(lrange(&mut c, "{k}l").await, array(&["a"]));
    // And the other way: string and hash commands on a list.
    assert_eq!(c.cmd(&["GET", "{k}l"]).await, WRONGTYPE);
    assert_eq!(c.cmd(&["HGET", "{k}l", "f"]).await, WRONGTYPE);
    assert_eq!(c.cmd(&["TYPE", "{k}l"]).await, "+list\r\n");
    node.stop().await;
}

#[tokio::test]
async fn ttl_survives_pushes_and_expiry_hides_the_list() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["RPUSH", "l", "a"]).await;
    assert_eq!(c.cmd(&["PEXPIRE", "l", "1000"]).await, ":1\r\n");
    c.cmd(&["RPUSH", "l", "b"]).await;
    c.cmd(&["LPOP", "l"]).await;
    assert_eq!(c.cmd(&["PTTL", "l"]).await, ":1000\r\n");
    node.clock.advance_ms(1000);
    assert_eq!(c.cmd(&["LLEN", "l"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["LPUSHX", "l", "x"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["RPUSH", "l", "c"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["PTTL", "l"]).await, ":-1\r\n");
    node.stop().await;
}

/// A list of many chunks: indexes, ranges, inserts and trims far from both ends.
#[tokio::test]
async fn long_list_spans_chunks() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let items: Vec<String> = (0..5000).map(|i| format!("item-{i:05}")).collect();
    for chunk in items.chunks(500) {
        let mut args = vec!["RPUSH", "big"];
        args.extend(chunk.iter().map(String::as_str));
        c.cmd(&args).await;
    }
    assert_eq!(c.cmd(&["LLEN", "big"]).await, ":5000\r\n");
    assert_eq!(c.cmd(&["LINDEX", "big", "2500"]).await, bulk("item-02500"));
    assert_eq!(c.cmd(&["LINDEX", "big", "-1234"]).await, bulk("item-03766"));
    assert_eq!(
        c.cmd(&["LRANGE", "big", "2998", "3001"]).await,
        array(&["item-02998", "item-02999", "item-03000", "item-03001"])
    );
    assert_eq!(c.cmd(&["LINSERT", "big", "AFTER", "item-03000", "new"]).await, ":5001\r\n");
    assert_eq!(c.cmd(&["LPOS", "big", "new"]).await, ":3001\r\n");
    assert_eq!(c.cmd(&["LSET", "big", "3001", &"x".repeat(20_000)]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["LINDEX", "big", "3002"]).await, bulk("item-03001"));
    assert_eq!(c.cmd(&["LREM", "big", "1", &"x".repeat(20_000)]).await, ":1\r\n");
    assert_eq!(c.cmd(&["LTRIM", "big", "1000", "-1001"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["LLEN", "big"]).await, ":3000\r\n");
    assert_eq!(c.cmd(&["LRANGE", "big", "0", "0"]).await, array(&["item-01000"]));
    assert_eq!(c.cmd(&["LRANGE", "big", "-1", "-1"]).await, array(&["item-03999"]));
    node.stop().await;
}

/// Fixed deterministic edge cases, sent to Prism and to a real redis-server, in RESP2
/// and RESP3: replies must be byte-identical.
#[tokio::test]
async fn edge_cases_match_redis() {
    let redis = RealRedis::start().await;
    let node = TestNode::start().await;
    for resp3 in [false, true] {
        let (mut p, mut r) = (node.raw().await, redis.raw().await);
        if resp3 {
            p.hello3().await;
            r.hello3().await;
        }
        for args in [
            &["FLUSHALL"][..],
            &["SET", "{x}str", "v"],
            &["RPUSH", "{x}l", "a", "b", "c", "a", "b", "c"],
            &["LPOP", "{x}missing"],
            &["LPOP", "{x}missing", "0"],
            &["RPOP", "{x}missing", "3"],
            &["LPOP", "{x}l", "0"],
            &["LPOP", "{x}str", "0"],
            &["LPOP", "{x}l", "-1"],
            &["LPOP", "{x}l", "abc"],
            &["LPOP", "{x}l", "1", "2"],
            &["LPOP"],
            &["LRANGE", "{x}l", "-3", "-100"],
            &["LRANGE", "{x}l", "-9223372036854775808", "9223372036854775807"],
            &["LRANGE", "{x}l", "9223372036854775807", "-9223372036854775808"],
            &["LRANGE", "{x}str", "a", "0"],
            &["LRANGE", "{x}missing", "a", "0"],
            &["LINDEX", "{x}l", "-9223372036854775808"],
            &["LINDEX", "{x}missing", "abc"],
            &["LINDEX", "{x}str", "abc"],
            &["LSET", "{x}missing", "abc", "v"],
            &["LSET", "{x}str", "abc", "v"],
            &["LSET", "{x}l", "abc", "v"],
            &["LSET", "{x}l", "-9223372036854775808", "v"],
            &["LSET", "{x}l", "6", "v"],
            &["LSET", "{x}l", "-6", "first"],
            &["LREM", "{x}l", "-9223372036854775808", "b"],
            &["LREM", "{x}missing", "x", "b"],
            &["LREM", "{x}str", "0", "b"],
            &["LRANGE", "{x}l", "0", "-1"],
            &["LTRIM", "{x}str", "x", "0"],
            &["LTRIM", "{x}missing", "0", "0"],
            &["LINSERT", "{x}str", "UP", "a", "b"],
            &["LINSERT", "{x}missing", "UP", "a", "b"],
            &["LINSERT", "{x}str", "BEFORE", "a", "b"],
            &["LINSERT", "{x}l", "BEFORE", "c", "c"],
            &["LRANGE", "{x}l", "0", "-1"],
            &["LPOS", "{x}l", "c", "RANK", "0"],
            &["LPOS", "{x}l", "c", "RANK", "-9223372036854775807"],
            &["LPOS", "{x}l", "c", "RANK", "abc"],
            &["LPOS", "{x}l", "c", "COUNT", "abc"],
            &["LPOS", "{x}l", "c", "MAXLEN", "abc"],
            &["LPOS", "{x}l", "c", "COUNT"],
            &["LPOS", "{x}l", "c", "RANK", "-2", "COUNT", "0"],
            &["LPOS", "{x}l", "c", "RANK", "2", "MAXLEN", "3"],
            &["LPOS", "{x}l", "c", "COUNT", "9223372036854775807"],
            &["LPOS", "{x}missing", "c", "COUNT", "0"],
            &["LPOS", "{x}str", "c", "COUNT", "0"],
            &["LPOS", "{x}str", "c", "FOO"],
            &["LMOVE", "{x}missing", "{x}str", "LEFT", "LEFT"],
            &["LMOVE", "{x}str", "{x}missing", "LEFT", "LEFT"],
            &["LMOVE", "{x}l", "{x}str", "LEFT", "LEFT"],
            &["LMOVE", "{x}l", "{x}l", "left", "right"],
            &["LMOVE", "{x}l", "{x}new", "RIGHT", "RIGHT"],
            &["LMOVE", "{x}l", "{x}l", "middle", "right"],
            &["RPOPLPUSH", "{x}l", "{x}l"],
            &["RPOPLPUSH", "{x}l"],
            &["LMPOP", "1", "{x}missing", "LEFT"],
            &["LMPOP", "2", "{x}missing", "{x}str", "LEFT"],
            &["LMPOP", "2", "{x}l", "{x}str", "RIGHT", "COUNT", "2"],
            &["LMPOP", "-1", "{x}l", "LEFT"],
            &["LMPOP", "1", "{x}l", "LEFT", "COUNT"],
            &["LMPOP", "1", "{x}l", "LEFT", "COUNT", "-1"],
            &["LMPOP", "1", "{x}l", "LEFT", "FOO", "1"],
            &["LMPOP", "3", "{x}l", "LEFT"],
            &["LMPOP", "1", "{x}l"],
            &["LMPOP", "1", "{x}l", "LEFT", "COUNT", "100"],
            &["EXISTS", "{x}l"],
            &["LRANGE", "{x}new", "0", "-1"],
            &["LPUSHX", "{x}str", "a"],
            &["RPUSHX", "{x}missing", "a"],
            &["LPUSH", "{x}str"],
            &["LLEN", "{x}str"],
        ] {
            same_reply(&mut p, &mut r, args, 0).await;
        }
    }
    node.stop().await;
}

/// A small list index, negative half the time.
fn index(rng: &mut Rng) -> String {
    (rng.below(14) as i64 - 7).to_string()
}

/// The same random stream of list commands, over few keys and a small alphabet so they
/// collide (one element large enough that lists span chunks), goes to Prism and to
/// redis-server; replies must be identical. Half the commands go over RESP3 connections.
/// Every 500 commands the whole state is compared.
#[tokio::test]
async fn model_against_real_redis() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let redis = RealRedis::start().await;
    let node = TestNode::start().await;
    let (mut p2, mut r2) = (node.raw().await, redis.raw().await);
    let (mut p3, mut r3) = (node.raw().await, redis.raw().await);
    p3.hello3().await;
    r3.hello3().await;
    const KEYS: &[&str] = &["{m}0", "{m}1", "{m}2", "{m}str"];
    // A 3 KB element makes lists span several 8 KB chunks.
    let big = "x".repeat(3000);
    // Integers are packed as integers; "007" and 2^63 stay strings.
    let elements: &[&str] =
        &["a", "b", "c", "d", "1", "2", "-7", "007", "9223372036854775808", "", "a-longer-element-of-some-size", &big];
    const ENDS: &[&str] = &["LEFT", "RIGHT"];
    same_reply(&mut p2, &mut r2, &["SET", "{m}str", "v"], seed).await;
    for step in 0..4000 {
        let mut args: Vec<String> = Vec::new();
        let mut push = |s: &str| args.push(s.to_string());
        let key = |rng: &mut Rng| rng.pick(KEYS);
        match rng.below(20) {
            0..=4 => {
                push(rng.pick(&["LPUSH", "RPUSH", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]));
                push(key(&mut rng));
                (0..1 + rng.below(5)).for_each(|_| push(rng.pick(elements)));
            }
            5..=6 => {
                push(rng.pick(&["LPOP", "RPOP"]));
                push(key(&mut rng));
                if rng.below(2) == 0 {
                    push(&rng.below(4).to_string());
                }
            }
            7 => {
                push("LRANGE");
                push(key(&mut rng));
                push(&index(&mut rng));
                push(&index(&mut rng));
            }
            8 => {
                push("LLEN");
                push(key(&mut rng));
            }
            9 if rng.below(2) == 0 => {
                push("LINDEX");
                push(key(&mut rng));
                push(&index(&mut rng));
            }
            9 => {
                push("LSET");
                push(key(&mut rng));
                push(&index(&mut rng));
                push(rng.pick(elements));
            }
            10 => {
                push("LREM");
                push(key(&mut rng));
                push(&(rng.below(5) as i64 - 2).to_string());
                push(rng.pick(elements));
            }
            11 => {
                push("LTRIM");
                push(key(&mut rng));
                push(&rng.below(3).to_string());
                push(&(rng.below(12) as i64 - 3).to_string());
            }
            12 => {
                push("LINSERT");
                push(key(&mut rng));
                push(rng.pick(&["BEFORE", "AFTER"]));
                push(rng.pick(elements));
                push(rng.pick(elements));
            }
            13..=14 => {
                push("LPOS");
                push(key(&mut rng));
                push(rng.pick(elements));
                for _ in 0..rng.below(3) {
                    match rng.below(3) {
                        0 => {
                            push("RANK");
                            push(rng.pick(&["1", "2", "-1", "-2", "3", "-3"]));
                        }
                        1 => {
                            push("COUNT");
                            push(&rng.below(3).to_string());
                        }
                        _ => {
                            push("MAXLEN");
                            push(&rng.below(6).to_string());
                        }
                    }
                }
            }
            15..=16 => {
                if rng.below(4) == 0 {
                    push("RPOPLPUSH");
                    push(key(&mut rng));
                    push(key(&mut rng));
                } else {
                    push("LMOVE");
                    push(key(&mut rng));
                    push(key(&mut rng));
                    push(rng.pick(ENDS));
                    push(rng.pick(ENDS));
                }
            }
            17 => {
                push("LMPOP");
                let n = 1 + rng.below(3);
                push(&n.to_string());
                (0..n).for_each(|_| push(key(&mut rng)));
                push(rng.pick(ENDS));
                if rng.below(2) == 0 {
                    push("COUNT");
                    push(&(1 + rng.below(4)).to_string());
                }
            }
            18 => {
                push(rng.pick(&["EXISTS", "TYPE"]));
                push(key(&mut rng));
            }
            _ => {
                push("DEL");
                push(key(&mut rng));
            }
        }
        // Keep the wrong-type key around most of the time.
        if args[0] == "DEL" && args[1] == "{m}str" {
            args = vec!["SET".into(), "{m}str".into(), "v".into()];
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (p, r) = if rng.below(2) == 0 { (&mut p2, &mut r2) } else { (&mut p3, &mut r3) };
        same_reply(p, r, &argv, seed).await;
        if step % 500 == 499 {
            for k in &KEYS[..3] {
                same_reply(&mut p2, &mut r2, &["LRANGE", k, "0", "-1"], seed).await;
            }
        }
    }
    node.stop().await;
}
