//! Hash commands over a real socket, byte-exact in RESP2 and RESP3: HSET HSETNX HGET
//! HMGET HMSET HGETALL HDEL HLEN HEXISTS HINCRBY HINCRBYFLOAT HKEYS HVALS HSTRLEN HSCAN
//! HRANDFIELD, with their edge cases (the key goes with its last field, WRONGTYPE both
//! ways, overflow, HSCAN completeness while fields are deleted).

use std::collections::HashSet;

use prism_tests::{bulk, RawClient, TestNode};

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

/// The items of a flat array-of-bulks reply.
fn bulks(reply: &str) -> Vec<String> {
    let mut lines = reply.split("\r\n");
    let n: usize = lines.next().and_then(|h| h.strip_prefix('*')).and_then(|n| n.parse().ok()).expect("array header");
    (0..n)
        .map(|_| {
            assert!(lines.next().is_some_and(|l| l.starts_with('$')), "bulk header in {reply:?}");
            lines.next().expect("bulk body").to_string()
        })
        .collect()
}

/// An HSCAN reply: the cursor and the flat items.
fn scan_reply(reply: &str) -> (String, Vec<String>) {
    let rest = reply.strip_prefix("*2\r\n").unwrap_or_else(|| panic!("scan reply {reply:?}"));
    let mut lines = rest.splitn(3, "\r\n");
    assert!(lines.next().is_some_and(|l| l.starts_with('$')));
    let cursor = lines.next().expect("cursor").to_string();
    (cursor, bulks(lines.next().expect("items")))
}

/// Raw text of an array of bulks.
fn array(items: &[&str]) -> String {
    let mut s = format!("*{}\r\n", items.len());
    for i in items {
        s.push_str(&bulk(i));
    }
    s
}

/// Creates `key` with fields `f0..f{n-1}`, each valued `v{i}`, in a few HSET calls.
async fn fill(c: &mut RawClient, key: &str, n: usize) {
    let pairs: Vec<String> = (0..n).flat_map(|i| [format!("f{i}"), format!("v{i}")]).collect();
    for chunk in pairs.chunks(400) {
        let mut args = vec!["HSET", key];
        args.extend(chunk.iter().map(String::as_str));
        let reply = c.cmd(&args).await;
        assert_eq!(reply, format!(":{}\r\n", chunk.len() / 2));
    }
}

#[tokio::test]
async fn hset_hget_hlen_hsetnx() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["HSET", "h", "f1", "v1", "f2", "v2"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["HSET", "h", "f1", "x", "f3", "v3"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["HGET", "h", "f1"]).await, bulk("x"));
    assert_eq!(c.cmd(&["HGET", "h", "nope"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["HGET", "missing", "f"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["HLEN", "h"]).await, ":3\r\n");
    assert_eq!(c.cmd(&["HLEN", "missing"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["HSET", "h", "f"]).await, "-ERR wrong number of arguments for 'hset' command\r\n");
    assert_eq!(c.cmd(&["HSET", "h", "a", "1", "b"]).await, "-ERR wrong number of arguments for 'hset' command\r\n");
    assert_eq!(c.cmd(&["HLEN", "h"]).await, ":3\r\n");
    assert_eq!(c.cmd(&["HSETNX", "h", "f1", "y"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["HGET", "h", "f1"]).await, bulk("x"));
    assert_eq!(c.cmd(&["HSETNX", "h", "f4", "v4"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["HSETNX", "new", "f", "v"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["HGET", "new", "f"]).await, bulk("v"));
    // Empty field names and values are ordinary.
    assert_eq!(c.cmd(&["HSET", "h", "", ""]).await, ":1\r\n");
    assert_eq!(c.cmd(&["HGET", "h", ""]).await, "$0\r\n\r\n");
    c.hello3().await;
    assert_eq!(c.cmd(&["HGET", "h", "nope"]).await, "_\r\n");
    node.stop().await;
}

#[tokio::test]
async fn hmget_hmset() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["HMSET", "h", "a", "1", "b", "2"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["HMSET", "h", "a", "1", "b"]).await, "-ERR wrong number of arguments for 'hmset' command\r\n");
    assert_eq!(c.cmd(&["HMGET", "h", "a", "nope", "b"]).await, format!("*3\r\n{}$-1\r\n{}", bulk("1"), bulk("2")));
    assert_eq!(c.cmd(&["HMGET", "missing", "a", "b"]).await, "*2\r\n$-1\r\n$-1\r\n");
    c.cmd(&["SET", "s", "v"]).await;
    assert_eq!(c.cmd(&["HMSET", "s", "a", "1"]).await, WRONGTYPE);
    c.hello3().await;
    assert_eq!(c.cmd(&["HMGET", "h", "nope", "a"]).await, format!("*2\r\n_\r\n{}", bulk("1")));
    node.stop().await;
}

#[tokio::test]
async fn hgetall_hkeys_hvals_shapes() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["HSET", "h", "a", "1", "b", "2"]).await;
    assert_eq!(c.cmd(&["HGETALL", "h"]).await, array(&["a", "1", "b", "2"]));
    assert_eq!(c.cmd(&["HKEYS", "h"]).await, array(&["a", "b"]));
    assert_eq!(c.cmd(&["HVALS", "h"]).await, array(&["1", "2"]));
    assert_eq!(c.cmd(&["HGETALL", "missing"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["HKEYS", "missing"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["HVALS", "missing"]).await, "*0\r\n");
    c.hello3().await;
    assert_eq!(c.cmd(&["HGETALL", "h"]).await, format!("%2\r\n{}{}{}{}", bulk("a"), bulk("1"), bulk("b"), bulk("2")));
    assert_eq!(c.cmd(&["HGETALL", "missing"]).await, "%0\r\n");
    assert_eq!(c.cmd(&["HKEYS", "h"]).await, array(&["a", "b"]));
    node.stop().await;
}

#[tokio::test]
async fn hdel_removes_the_key_with_its_last_field() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["HSET", "h", "a", "1", "b", "2", "c", "3"]).await;
    assert_eq!(c.cmd(&["HDEL", "h", "a", "nope", "a"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["HLEN", "h"]).await, ":2\r\n");
    c.cmd(&["EXPIRE", "h", "100"]).await;
    assert_eq!(c.cmd(&["HDEL", "h", "b", "c"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["EXISTS", "h"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["TYPE", "h"]).await, "+none\r\n");
    assert_eq!(c.cmd(&["TTL", "h"]).await, ":-2\r\n");
    assert_eq!(c.cmd(&["HDEL", "h", "a"]).await, ":0\r\n");
    // A new hash under the same name starts without the old TTL.
    c.cmd(&["HSET", "h", "x", "1"]).await;
    assert_eq!(c.cmd(&["TTL", "h"]).await, ":-1\r\n");
    assert_eq!(c.cmd(&["HDEL", "h"]).await, "-ERR wrong number of arguments for 'hdel' command\r\n");
    node.stop().await;
}

#[tokio::test]
async fn hexists_hstrlen() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["HSET", "h", "f", "hello"]).await;
    assert_eq!(c.cmd(&["HEXISTS", "h", "f"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["HEXISTS", "h", "g"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["HEXISTS", "missing", "f"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["HSTRLEN", "h", "f"]).await, ":5\r\n");
    assert_eq!(c.cmd(&["HSTRLEN", "h", "g"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["HSTRLEN", "missing", "f"]).await, ":0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn hincrby() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["HINCRBY", "h", "n", "5"]).await, ":5\r\n");
    assert_eq!(c.cmd(&["HINCRBY", "h", "n", "-7"]).await, ":-2\r\n");
    assert_eq!(c.cmd(&["HGET", "h", "n"]).await, bulk("-2"));
    assert_eq!(c.cmd(&["HINCRBY", "h", "n", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["HINCRBY", "h", "n", "1.5"]).await, "-ERR value is not an integer or out of range\r\n");
    c.cmd(&["HSET", "h", "s", "abc", "big", "9223372036854775807", "small", "-9223372036854775808"]).await;
    assert_eq!(c.cmd(&["HINCRBY", "h", "s", "1"]).await, "-ERR hash value is not an integer\r\n");
    assert_eq!(c.cmd(&["HINCRBY", "h", "big", "1"]).await, "-ERR increment or decrement would overflow\r\n");
    assert_eq!(c.cmd(&["HINCRBY", "h", "small", "-1"]).await, "-ERR increment or decrement would overflow\r\n");
    assert_eq!(c.cmd(&["HGET", "h", "big"]).await, bulk("9223372036854775807"));
    assert_eq!(c.cmd(&["HINCRBY", "h", "big", "-1"]).await, ":9223372036854775806\r\n");
    // A refused increment on a missing key leaves no key behind.
    assert_eq!(c.cmd(&["HINCRBY", "other", "n", "abc"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["EXISTS", "other"]).await, ":0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn hincrbyfloat() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["HINCRBYFLOAT", "h", "f", "10.5"]).await, bulk("10.5"));
    assert_eq!(c.cmd(&["HINCRBYFLOAT", "h", "f", "0.1"]).await, bulk("10.6"));
    assert_eq!(c.cmd(&["HINCRBYFLOAT", "h", "f", "-5.6"]).await, bulk("5"));
    assert_eq!(c.cmd(&["HINCRBYFLOAT", "h", "g", "5.0e3"]).await, bulk("5000"));
    c.cmd(&["HSET", "h", "s", "abc"]).await;
    assert_eq!(c.cmd(&["HINCRBYFLOAT", "h", "s", "1"]).await, "-ERR hash value is not a float\r\n");
    assert_eq!(c.cmd(&["HGET", "h", "s"]).await, bulk("abc"));
    assert_eq!(c.cmd(&["HINCRBYFLOAT", "h", "f", "abc"]).await, "-ERR value is not a valid float\r\n");
    assert_eq!(c.cmd(&["HINCRBYFLOAT", "h", "f", "inf"]).await, "-ERR value is NaN or Infinity\r\n");
    assert_eq!(c.cmd(&["HGET", "h", "f"]).await, bulk("5"));
    c.hello3().await;
    // The reply is a bulk string in RESP3 too.
    assert_eq!(c.cmd(&["HINCRBYFLOAT", "h", "f", "1.25"]).await, bulk("6.25"));
    node.stop().await;
}

#[tokio::test]
async fn wrongtype_both_ways() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["SET", "s", "v"]).await;
    for args in [
        &["HSET", "s", "f", "v"][..],
        &["HSETNX", "s", "f", "v"],
        &["HGET", "s", "f"],
        &["HMGET", "s", "f"],
        &["HGETALL", "s"],
        &["HDEL", "s", "f"],
        &["HLEN", "s"],
        &["HEXISTS", "s", "f"],
        &["HINCRBY", "s", "f", "1"],
        &["HINCRBYFLOAT", "s", "f", "1"],
        &["HKEYS", "s"],
        &["HVALS", "s"],
        &["HSTRLEN", "s", "f"],
        &["HSCAN", "s", "0"],
        &["HRANDFIELD", "s"],
        &["HRANDFIELD", "s", "2"],
    ] {
        assert_eq!(c.cmd(args).await, WRONGTYPE, "{args:?}");
    }
    assert_eq!(c.cmd(&["GET", "s"]).await, bulk("v"));
    c.cmd(&["HSET", "h", "f", "v"]).await;
    for args in [&["GET", "h"][..], &["INCR", "h"], &["APPEND", "h", "x"], &["STRLEN", "h"]] {
        assert_eq!(c.cmd(args).await, WRONGTYPE, "{args:?}");
    }
    assert_eq!(c.cmd(&["HGETALL", "h"]).await, array(&["f", "v"]));
    node.stop().await;
}

#[tokio::test]
async fn hscan_small_hash_and_options() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["HSCAN", "missing", "0"]).await, "*2\r\n$1\r\n0\r\n*0\r\n");
    // As Redis: a missing key answers before its options are read.
    assert_eq!(c.cmd(&["HSCAN", "missing", "0", "BAD"]).await, "*2\r\n$1\r\n0\r\n*0\r\n");
    c.cmd(&["HSET", "h", "a1", "1", "a2", "2", "b1", "3"]).await;
    // A small hash comes back whole, whatever COUNT says.
    assert_eq!(
        c.cmd(&["HSCAN", "h", "0", "COUNT", "1"]).await,
        format!("*2\r\n$1\r\n0\r\n{}", array(&["a1", "1", "a2", "2", "b1", "3"]))
    );
    assert_eq!(
        c.cmd(&["HSCAN", "h", "0", "MATCH", "a*"]).await,
        format!("*2\r\n$1\r\n0\r\n{}", array(&["a1", "1", "a2", "2"]))
    );
    assert_eq!(
        c.cmd(&["HSCAN", "h", "0", "NOVALUES", "MATCH", "*1"]).await,
        format!("*2\r\n$1\r\n0\r\n{}", array(&["a1", "b1"]))
    );
    assert_eq!(c.cmd(&["HSCAN", "h", "x"]).await, "-ERR invalid cursor\r\n");
    assert_eq!(c.cmd(&["HSCAN", "missing", "x"]).await, "-ERR invalid cursor\r\n");
    assert_eq!(c.cmd(&["HSCAN", "h", "0", "COUNT", "0"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["HSCAN", "h", "0", "COUNT", "z"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["HSCAN", "h", "0", "TYPE", "string"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["HSCAN", "h", "0", "MATCH"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["HSCAN", "h"]).await, "-ERR wrong number of arguments for 'hscan' command\r\n");
    c.hello3().await;
    // HSCAN stays a flat array in RESP3.
    assert_eq!(c.cmd(&["HSCAN", "h", "0", "MATCH", "b*"]).await, format!("*2\r\n$1\r\n0\r\n{}", array(&["b1", "3"])));
    node.stop().await;
}

#[tokio::test]
async fn hscan_big_hash_returns_every_field() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    fill(&mut c, "h", 1000).await;
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let (next, items) = scan_reply(&c.cmd(&["HSCAN", "h", &cursor, "COUNT", "20"]).await);
        assert!(items.len() <= 40, "COUNT bounds a call on a big hash");
        for pair in items.chunks(2) {
            assert_eq!(pair[1], format!("v{}", &pair[0][1..]));
            seen.push(pair[0].clone());
        }
        calls += 1;
        assert!(calls <= 1000, "HSCAN did not terminate");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let expected: HashSet<String> = (0..1000).map(|i| format!("f{i}")).collect();
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    assert!(calls >= 50);
    node.stop().await;
}

#[tokio::test]
async fn hscan_while_deleting_keeps_untouched_fields() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    fill(&mut c, "h", 1000).await;
    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut next_doomed = 0;
    let mut added = 0;
    loop {
        let (next, items) = scan_reply(&c.cmd(&["HSCAN", "h", &cursor, "COUNT", "15", "NOVALUES"]).await);
        seen.extend(items);
        // Delete fields from the start (the part the walk reaches last, so the last fields
        // get swapped into the holes) and add new ones.
        let doomed: Vec<String> = (0..6).map(|j| format!("f{}", (next_doomed + j) * 3)).collect();
        next_doomed += 6;
        let mut args = vec!["HDEL", "h"];
        args.extend(doomed.iter().map(String::as_str));
        c.cmd(&args).await;
        c.cmd(&["HSET", "h", &format!("new{added}"), "x"]).await;
        added += 1;
        if next == "0" {
            break;
        }
        cursor = next;
    }
    for i in 0..1000 {
        let untouched = i % 3 != 0 || i / 3 >= next_doomed;
        if untouched {
            assert!(seen.contains(&format!("f{i}")), "f{i} was never returned");
        }
    }
    for f in &seen {
        assert!(f.starts_with('f') || f.starts_with("new"), "unexpected field {f}");
    }
    node.stop().await;
}

#[tokio::test]
async fn hrandfield_counts_and_shapes() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["HRANDFIELD", "missing"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["HRANDFIELD", "missing", "3"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["HRANDFIELD", "missing", "-3", "WITHVALUES"]).await, "*0\r\n");
    c.cmd(&["HSET", "one", "f", "v"]).await;
    assert_eq!(c.cmd(&["HRANDFIELD", "one"]).await, bulk("f"));
    assert_eq!(c.cmd(&["HRANDFIELD", "one", "0"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["HRANDFIELD", "one", "1", "WITHVALUES"]).await, array(&["f", "v"]));
    assert_eq!(c.cmd(&["HRANDFIELD", "one", "-3"]).await, array(&["f", "f", "f"]));
    assert_eq!(c.cmd(&["HRANDFIELD", "one", "-2", "withvalues"]).await, array(&["f", "v", "f", "v"]));

    c.cmd(&["HSET", "h", "a", "1", "b", "2", "c", "3"]).await;
    let fields = ["a", "b", "c"];
    for _ in 0..10 {
        let r = c.cmd(&["HRANDFIELD", "h"]).await;
        assert!(fields.iter().any(|f| r == bulk(f)), "{r:?}");
    }
    // A count at least the size returns the whole hash.
    assert_eq!(c.cmd(&["HRANDFIELD", "h", "5"]).await, array(&["a", "b", "c"]));
    assert_eq!(c.cmd(&["HRANDFIELD", "h", "3", "WITHVALUES"]).await, array(&["a", "1", "b", "2", "c", "3"]));
    for _ in 0..10 {
        let two = bulks(&c.cmd(&["HRANDFIELD", "h", "2"]).await);
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1], "a positive count gives distinct fields");
        assert!(two.iter().all(|f| fields.contains(&f.as_str())));
        let many = bulks(&c.cmd(&["HRANDFIELD", "h", "-10"]).await);
        assert_eq!(many.len(), 10);
        assert!(many.iter().all(|f| fields.contains(&f.as_str())));
        let pairs = bulks(&c.cmd(&["HRANDFIELD", "h", "-4", "WITHVALUES"]).await);
        assert_eq!(pairs.len(), 8);
        for p in pairs.chunks(2) {
            let expected = match p[0].as_str() {
                "a" => "1",
                "b" => "2",
                "c" => "3",
                other => panic!("unexpected field {other}"),
            };
            assert_eq!(p[1], expected);
        }
    }
    node.stop().await;
}

#[tokio::test]
async fn hrandfield_resp3_and_errors() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["HSET", "one", "f", "v"]).await;
    assert_eq!(c.cmd(&["HRANDFIELD", "one", "1", "FOO"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["HRANDFIELD", "one", "1", "WITHVALUES", "x"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["HRANDFIELD", "one", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(
        c.cmd(&["HRANDFIELD", "one", "-9223372036854775808"]).await,
        "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n"
    );
    assert_eq!(
        c.cmd(&["HRANDFIELD", "one", "-9223372036854770000", "WITHVALUES"]).await,
        "-ERR value is out of range\r\n"
    );
    // Argument errors come before the key is looked up.
    assert_eq!(c.cmd(&["HRANDFIELD", "missing", "1", "FOO"]).await, "-ERR syntax error\r\n");
    c.hello3().await;
    assert_eq!(c.cmd(&["HRANDFIELD", "missing"]).await, "_\r\n");
    assert_eq!(c.cmd(&["HRANDFIELD", "one", "1"]).await, array(&["f"]));
    // RESP3 WITHVALUES: an array of [field, value] pairs.
    assert_eq!(
        c.cmd(&["HRANDFIELD", "one", "1", "WITHVALUES"]).await,
        format!("*1\r\n*2\r\n{}{}", bulk("f"), bulk("v"))
    );
    assert_eq!(
        c.cmd(&["HRANDFIELD", "one", "-2", "WITHVALUES"]).await,
        format!("*2\r\n*2\r\n{}{}*2\r\n{}{}", bulk("f"), bulk("v"), bulk("f"), bulk("v"))
    );
    node.stop().await;
}
