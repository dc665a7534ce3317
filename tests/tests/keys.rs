//! Generic key commands over a real socket, byte-exact: DEL UNLINK EXISTS TYPE, the
//! EXPIRE family with NX/XX/GT/LT, TTL PTTL EXPIRETIME PEXPIRETIME PERSIST, RENAME
//! RENAMENX, KEYS, SCAN (completeness, MATCH, TYPE), RANDOMKEY, TOUCH. Expiry moves with
//! the node's manual clock.

use std::collections::HashSet;

use prism_engine::clock::Clock;
use prism_tests::{bulk, RawClient, TestNode};

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

/// A SCAN-shaped reply: the cursor and the items.
fn scan_reply(reply: &str) -> (String, Vec<String>) {
    let rest = reply.strip_prefix("*2\r\n").unwrap_or_else(|| panic!("scan reply {reply:?}"));
    let mut lines = rest.splitn(3, "\r\n");
    assert!(lines.next().is_some_and(|l| l.starts_with('$')));
    let cursor = lines.next().expect("cursor").to_string();
    (cursor, bulks(lines.next().expect("items")))
}

/// Runs a whole SCAN with `options`, returning every key it returned (with repeats) and
/// the number of calls.
async fn full_scan(c: &mut RawClient, options: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut all = Vec::new();
    let mut calls = 0;
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(options);
        let (next, items) = scan_reply(&c.cmd(&args).await);
        all.extend(items);
        calls += 1;
        assert!(calls < 100_000, "SCAN did not terminate");
        if next == "0" {
            return (all, calls);
        }
        cursor = next;
    }
}

#[tokio::test]
async fn del_unlink_exists_touch_type() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "{t}a", "1"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "{t}b", "2"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["HSET", "{t}h", "f", "v"]).await, ":1\r\n");
    // A key named twice is counted twice.
    assert_eq!(c.cmd(&["EXISTS", "{t}a", "{t}a", "{t}b", "{t}nope"]).await, ":3\r\n");
    assert_eq!(c.cmd(&["TOUCH", "{t}a", "{t}a", "{t}nope"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["TYPE", "{t}a"]).await, "+string\r\n");
    assert_eq!(c.cmd(&["TYPE", "{t}h"]).await, "+hash\r\n");
    assert_eq!(c.cmd(&["TYPE", "{t}nope"]).await, "+none\r\n");
    assert_eq!(c.cmd(&["DEL", "{t}a", "{t}nope", "{t}a"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["UNLINK", "{t}b", "{t}h"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["EXISTS", "{t}a", "{t}b", "{t}h"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["DEL"]).await, "-ERR wrong number of arguments for 'del' command\r\n");
    assert_eq!(c.cmd(&["TYPE", "a", "b"]).await, "-ERR wrong number of arguments for 'type' command\r\n");
    node.stop().await;
}

#[tokio::test]
async fn ttl_follows_the_clock() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":-2\r\n");
    assert_eq!(c.cmd(&["PTTL", "k"]).await, ":-2\r\n");
    assert_eq!(c.cmd(&["EXPIRETIME", "k"]).await, ":-2\r\n");
    assert_eq!(c.cmd(&["PEXPIRETIME", "k"]).await, ":-2\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "10"]).await, ":0\r\n");
    c.cmd(&["SET", "k", "v"]).await;
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":-1\r\n");
    assert_eq!(c.cmd(&["PTTL", "k"]).await, ":-1\r\n");
    assert_eq!(c.cmd(&["EXPIRETIME", "k"]).await, ":-1\r\n");
    assert_eq!(c.cmd(&["PEXPIRETIME", "k"]).await, ":-1\r\n");

    let start = node.clock.now_ms();
    assert_eq!(c.cmd(&["EXPIRE", "k", "100"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":100\r\n");
    assert_eq!(c.cmd(&["PTTL", "k"]).await, ":100000\r\n");
    assert_eq!(c.cmd(&["PEXPIRETIME", "k"]).await, format!(":{}\r\n", start + 100_000));
    assert_eq!(c.cmd(&["EXPIRETIME", "k"]).await, format!(":{}\r\n", (start + 100_000 + 500) / 1000));
    // Seconds round to the nearest, as Redis.
    node.clock.advance_ms(400);
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":100\r\n");
    node.clock.advance_ms(200);
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":99\r\n");
    assert_eq!(c.cmd(&["PTTL", "k"]).await, ":99400\r\n");
    node.clock.advance_ms(99_399);
    assert_eq!(c.cmd(&["PTTL", "k"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":0\r\n");
    node.clock.advance_ms(1);
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":-2\r\n");
    assert_eq!(c.cmd(&["GET", "k"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["EXISTS", "k"]).await, ":0\r\n");

    c.cmd(&["SET", "p", "v"]).await;
    assert_eq!(c.cmd(&["PEXPIRE", "p", "1500"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["PTTL", "p"]).await, ":1500\r\n");
    assert_eq!(c.cmd(&["TTL", "p"]).await, ":2\r\n");
    let now = node.clock.now_ms();
    assert_eq!(c.cmd(&["PEXPIREAT", "p", &(now + 7).to_string()]).await, ":1\r\n");
    assert_eq!(c.cmd(&["PTTL", "p"]).await, ":7\r\n");
    let secs = now / 1000 + 50;
    assert_eq!(c.cmd(&["EXPIREAT", "p", &secs.to_string()]).await, ":1\r\n");
    assert_eq!(c.cmd(&["PEXPIRETIME", "p"]).await, format!(":{}\r\n", secs * 1000));
    assert_eq!(c.cmd(&["EXPIRETIME", "p"]).await, format!(":{secs}\r\n"));
    node.stop().await;
}

#[tokio::test]
async fn expire_in_the_past_deletes() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    for (cmd, when) in [("EXPIRE", "-1".to_string()), ("PEXPIRE", "0".to_string())] {
        c.cmd(&["SET", "k", "v"]).await;
        assert_eq!(c.cmd(&[cmd, "k", &when]).await, ":1\r\n", "{cmd}");
        assert_eq!(c.cmd(&["EXISTS", "k"]).await, ":0\r\n", "{cmd}");
    }
    c.cmd(&["SET", "k", "v"]).await;
    assert_eq!(c.cmd(&["EXPIREAT", "k", "1"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["GET", "k"]).await, "$-1\r\n");
    c.cmd(&["HSET", "h", "f", "v"]).await;
    let now = node.clock.now_ms().to_string();
    assert_eq!(c.cmd(&["PEXPIREAT", "h", &now]).await, ":1\r\n");
    assert_eq!(c.cmd(&["TYPE", "h"]).await, "+none\r\n");
    node.stop().await;
}

#[tokio::test]
async fn expire_conditions() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["SET", "k", "v"]).await;
    // Without a TTL: XX and GT refuse, LT accepts (no TTL counts as infinite).
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "XX"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "GT"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "XX", "GT"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "xx", "lt"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":-1\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "LT"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":100\r\n");
    c.cmd(&["PERSIST", "k"]).await;
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "NX"]).await, ":1\r\n");
    // With a TTL of 100 s.
    assert_eq!(c.cmd(&["EXPIRE", "k", "50", "NX"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "50", "GT"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "GT"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "200", "GT"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":200\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "300", "LT"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "150", "XX", "LT"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":150\r\n");
    assert_eq!(c.cmd(&["PEXPIRE", "k", "120000", "XX"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":120\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "missing", "10", "LT"]).await, ":0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn expire_argument_errors_change_nothing() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["SET", "k", "v"]).await;
    let nx_err = "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n";
    assert_eq!(c.cmd(&["EXPIRE", "k", "10", "NX", "XX"]).await, nx_err);
    assert_eq!(c.cmd(&["EXPIRE", "k", "10", "NX", "GT"]).await, nx_err);
    assert_eq!(c.cmd(&["PEXPIRE", "k", "10", "LT", "NX"]).await, nx_err);
    assert_eq!(
        c.cmd(&["EXPIRE", "k", "10", "GT", "LT"]).await,
        "-ERR GT and LT options at the same time are not compatible\r\n"
    );
    assert_eq!(c.cmd(&["EXPIRE", "k", "10", "fOo"]).await, "-ERR Unsupported option fOo\r\n");
    // Options are checked before the time, as Redis does.
    assert_eq!(c.cmd(&["EXPIRE", "k", "abc", "NX", "XX"]).await, nx_err);
    assert_eq!(c.cmd(&["EXPIRE", "k", "abc"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["EXPIRE", "k", "1.5"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(
        c.cmd(&["EXPIRE", "k", "9223372036854775807"]).await,
        "-ERR invalid expire time in 'expire' command\r\n"
    );
    assert_eq!(
        c.cmd(&["PEXPIRE", "k", "9223372036854775807"]).await,
        "-ERR invalid expire time in 'pexpire' command\r\n"
    );
    assert_eq!(
        c.cmd(&["EXPIREAT", "k", "9223372036854776"]).await,
        "-ERR invalid expire time in 'expireat' command\r\n"
    );
    assert_eq!(c.cmd(&["EXPIRE", "k"]).await, "-ERR wrong number of arguments for 'expire' command\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":-1\r\n");
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"));
    // The largest absolute deadlines that fit are accepted.
    assert_eq!(c.cmd(&["PEXPIREAT", "k", "9223372036854775807"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["PEXPIRETIME", "k"]).await, ":9223372036854775807\r\n");
    assert_eq!(c.cmd(&["EXPIREAT", "k", "9223372036854775"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["PEXPIRETIME", "k"]).await, ":9223372036854775000\r\n");
    node.stop().await;
}

#[tokio::test]
async fn persist() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["PERSIST", "k"]).await, ":0\r\n");
    c.cmd(&["SET", "k", "v"]).await;
    assert_eq!(c.cmd(&["PERSIST", "k"]).await, ":0\r\n");
    c.cmd(&["EXPIRE", "k", "10"]).await;
    assert_eq!(c.cmd(&["PERSIST", "k"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":-1\r\n");
    node.clock.advance_ms(20_000);
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"));
    node.stop().await;
}

#[tokio::test]
async fn rename_and_renamenx() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["RENAME", "{t}nope", "{t}x"]).await, "-ERR no such key\r\n");
    assert_eq!(c.cmd(&["RENAMENX", "{t}nope", "{t}x"]).await, "-ERR no such key\r\n");
    c.cmd(&["SET", "{t}a", "1"]).await;
    c.cmd(&["EXPIRE", "{t}a", "100"]).await;
    // The TTL travels with the value.
    assert_eq!(c.cmd(&["RENAME", "{t}a", "{t}b"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["EXISTS", "{t}a"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["GET", "{t}b"]).await, bulk("1"));
    assert_eq!(c.cmd(&["TTL", "{t}b"]).await, ":100\r\n");
    // Onto itself: nothing changes.
    assert_eq!(c.cmd(&["RENAME", "{t}b", "{t}b"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["RENAMENX", "{t}b", "{t}b"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["GET", "{t}b"]).await, bulk("1"));
    assert_eq!(c.cmd(&["TTL", "{t}b"]).await, ":100\r\n");
    // RENAME overwrites a destination of any type, TTL included.
    c.cmd(&["HSET", "{t}h", "f", "v"]).await;
    c.cmd(&["EXPIRE", "{t}h", "5"]).await;
    assert_eq!(c.cmd(&["RENAMENX", "{t}b", "{t}h"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["TYPE", "{t}h"]).await, "+hash\r\n");
    c.cmd(&["PERSIST", "{t}b"]).await;
    assert_eq!(c.cmd(&["RENAME", "{t}b", "{t}h"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["GET", "{t}h"]).await, bulk("1"));
    assert_eq!(c.cmd(&["TTL", "{t}h"]).await, ":-1\r\n");
    assert_eq!(c.cmd(&["RENAMENX", "{t}h", "{t}new"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["GET", "{t}new"]).await, bulk("1"));
    // An expired source is missing.
    c.cmd(&["SET", "{t}old", "x", "PX", "10"]).await;
    node.clock.advance_ms(10);
    assert_eq!(c.cmd(&["RENAME", "{t}old", "{t}y"]).await, "-ERR no such key\r\n");
    node.stop().await;
}

#[tokio::test]
async fn keys_matches_globs_and_skips_expired() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["KEYS", "*"]).await, "*0\r\n");
    for k in ["hello", "hallo", "hxllo", "hllo", "heeeello", "other"] {
        c.cmd(&["SET", k, "v"]).await;
    }
    c.cmd(&["SET", "hzllo", "v", "PX", "5"]).await;
    node.clock.advance_ms(5);
    let sorted = |r: String| {
        let mut v = bulks(&r);
        v.sort();
        v
    };
    assert_eq!(sorted(c.cmd(&["KEYS", "*"]).await), ["hallo", "heeeello", "hello", "hllo", "hxllo", "other"]);
    assert_eq!(sorted(c.cmd(&["KEYS", "h?llo"]).await), ["hallo", "hello", "hxllo"]);
    assert_eq!(sorted(c.cmd(&["KEYS", "h*llo"]).await), ["hallo", "heeeello", "hello", "hllo", "hxllo"]);
    assert_eq!(sorted(c.cmd(&["KEYS", "h[ae]llo"]).await), ["hallo", "hello"]);
    assert_eq!(sorted(c.cmd(&["KEYS", "h[^e]llo"]).await), ["hallo", "hxllo"]);
    assert_eq!(c.cmd(&["KEYS", "oth?r"]).await, format!("*1\r\n{}", bulk("other")));
    assert_eq!(c.cmd(&["KEYS", "nomatch*"]).await, "*0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn scan_returns_every_key_and_terminates() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SCAN", "0"]).await, "*2\r\n$1\r\n0\r\n*0\r\n");
    let keys: Vec<String> = (0..3000).map(|i| format!("key:{i}")).collect();
    for chunk in keys.chunks(500) {
        let mut args = vec!["MSET"];
        for k in chunk {
            args.push(k);
            args.push("v");
        }
        assert_eq!(c.cmd(&args).await, "+OK\r\n");
    }
    let expected: HashSet<String> = keys.iter().cloned().collect();
    for options in [&[][..], &["COUNT", "100"][..], &["COUNT", "1"][..], &["count", "100000"][..]] {
        let (seen, calls) = full_scan(&mut c, options).await;
        let set: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(set, expected, "options {options:?}");
        assert!(seen.len() >= expected.len());
        if options == ["COUNT", "1"] {
            assert!(calls > 100, "COUNT bounds each call");
        }
    }
    node.stop().await;
}

#[tokio::test]
async fn scan_small_keyspace_in_one_call() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    for k in ["a", "b", "c", "d", "e"] {
        c.cmd(&["SET", k, "v"]).await;
    }
    // Empty slots cost nothing, so a handful of keys come back at once with cursor 0.
    let (cursor, mut keys) = scan_reply(&c.cmd(&["SCAN", "0"]).await);
    keys.sort();
    assert_eq!((cursor.as_str(), keys), ("0", vec!["a", "b", "c", "d", "e"].into_iter().map(String::from).collect()));
    node.stop().await;
}

#[tokio::test]
async fn scan_while_deleting_keeps_untouched_keys() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    for i in 0..2000 {
        c.cmd(&["SET", &format!("k{i}"), "v"]).await;
    }
    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut deleted = 0;
    loop {
        let (next, items) = scan_reply(&c.cmd(&["SCAN", &cursor, "COUNT", "50"]).await);
        seen.extend(items);
        // Delete keys the scan may not have reached, and add new ones.
        for _ in 0..10 {
            if deleted < 1000 {
                c.cmd(&["DEL", &format!("k{}", deleted * 2)]).await;
                c.cmd(&["SET", &format!("new{deleted}"), "v"]).await;
                deleted += 1;
            }
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    for i in (1..2000).step_by(2) {
        assert!(seen.contains(&format!("k{i}")), "k{i} was never returned");
    }
    node.stop().await;
}

#[tokio::test]
async fn scan_match_and_type() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    for i in 0..300 {
        c.cmd(&["SET", &format!("user:{i}"), "v"]).await;
        c.cmd(&["HSET", &format!("hash:{i}"), "f", "v"]).await;
    }
    c.cmd(&["SET", "user:expiring", "v", "PX", "1"]).await;
    node.clock.advance_ms(1);
    let set = |v: Vec<String>| v.into_iter().collect::<HashSet<_>>();
    let users: HashSet<String> = (0..300).map(|i| format!("user:{i}")).collect();
    let hashes: HashSet<String> = (0..300).map(|i| format!("hash:{i}")).collect();
    assert_eq!(set(full_scan(&mut c, &["MATCH", "user:*"]).await.0), users);
    assert_eq!(set(full_scan(&mut c, &["TYPE", "hash"]).await.0), hashes);
    assert_eq!(set(full_scan(&mut c, &["TYPE", "STRING", "COUNT", "7"]).await.0), users);
    assert_eq!(set(full_scan(&mut c, &["MATCH", "hash:1?", "TYPE", "hash"]).await.0).len(), 10);
    assert_eq!(set(full_scan(&mut c, &["MATCH", "hash:*", "TYPE", "string"]).await.0).len(), 0);
    // A type no key has matches nothing (Redis 7), and the scan still completes.
    assert_eq!(full_scan(&mut c, &["TYPE", "zset"]).await.0.len(), 0);
    node.stop().await;
}

#[tokio::test]
async fn scan_argument_errors() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SCAN", "abc"]).await, "-ERR invalid cursor\r\n");
    assert_eq!(c.cmd(&["SCAN", "-1"]).await, "-ERR invalid cursor\r\n");
    assert_eq!(c.cmd(&["SCAN", "18446744073709551616"]).await, "-ERR invalid cursor\r\n");
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT", "0"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT", "-5"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["SCAN", "0", "MATCH"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["SCAN", "0", "FOO", "bar"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["SCAN"]).await, "-ERR wrong number of arguments for 'scan' command\r\n");
    node.stop().await;
}

#[tokio::test]
async fn randomkey() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["RANDOMKEY"]).await, "$-1\r\n");
    c.cmd(&["SET", "only", "v"]).await;
    assert_eq!(c.cmd(&["RANDOMKEY"]).await, bulk("only"));
    for k in ["a", "b", "c"] {
        c.cmd(&["SET", k, "v"]).await;
    }
    for _ in 0..20 {
        let r = c.cmd(&["RANDOMKEY"]).await;
        assert!(["only", "a", "b", "c"].iter().any(|k| r == bulk(k)), "{r:?}");
    }
    c.cmd(&["DEL", "only", "a", "b", "c"]).await;
    c.hello3().await;
    assert_eq!(c.cmd(&["RANDOMKEY"]).await, "_\r\n");
    // Expired keys are never returned.
    c.cmd(&["SET", "gone", "v", "PX", "1"]).await;
    node.clock.advance_ms(1);
    assert_eq!(c.cmd(&["RANDOMKEY"]).await, "_\r\n");
    node.stop().await;
}

#[tokio::test]
async fn resp3_shapes() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.hello3().await;
    c.cmd(&["SET", "k", "v"]).await;
    assert_eq!(c.cmd(&["TYPE", "k"]).await, "+string\r\n");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":-1\r\n");
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT", "100000"]).await, format!("*2\r\n$1\r\n0\r\n*1\r\n{}", bulk("k")));
    assert_eq!(c.cmd(&["KEYS", "k"]).await, format!("*1\r\n{}", bulk("k")));
    assert_eq!(c.cmd(&["RENAME", "nope", "x"]).await, "-ERR no such key\r\n");
    node.stop().await;
}
