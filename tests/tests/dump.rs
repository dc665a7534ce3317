//! DUMP, RESTORE and COPY over a real socket: round trips of every value type (big
//! collections and a vertex with edges included), between two nodes as a migration does,
//! RESTORE's options and errors in Redis's order, a seeded damage test (a damaged payload
//! is refused or restores a valid value, and the node keeps serving), and COPY compared
//! byte for byte with a real redis-server.

use prism_engine::clock::Clock;
use prism_tests::redis_server::{same_reply, seed, RealRedis};
use prism_tests::{bulk, RawClient, TestNode};
use redis::aio::MultiplexedConnection;

const BAD_PAYLOAD: &str = "-ERR DUMP payload version or checksum are wrong\r\n";
const BUSY: &str = "-BUSYKEY Target key name already exists.\r\n";

/// A command with binary arguments as RESP bytes.
fn encode_bin(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend(b"\r\n");
    }
    out
}

async fn dump(con: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("DUMP").arg(key).query_async(con).await.expect("dump")
}

/// RESTORE with a binary payload; the raw reply (errors and OK are ASCII).
async fn restore(c: &mut RawClient, key: &str, ttl: &str, payload: &[u8], opts: &[&str]) -> String {
    let mut args: Vec<&[u8]> = vec![b"RESTORE", key.as_bytes(), ttl.as_bytes(), payload];
    args.extend(opts.iter().map(|o| o.as_bytes()));
    c.send(&encode_bin(&args)).await;
    c.reply().await
}

/// Fills one key of every type, big collections included; returns the keys.
async fn fill(con: &mut MultiplexedConnection, c: &mut RawClient) -> Vec<&'static str> {
    let n = 20_000;
    let members: Vec<String> = (0..n).map(|i| format!("member:{i}")).collect();
    let _: () = redis::cmd("SET").arg("str").arg(b"bin\x00\xffary").query_async(con).await.expect("set");
    let _: () = redis::cmd("SADD").arg("set").arg(&members).query_async(con).await.expect("sadd");
    let _: () = redis::cmd("RPUSH").arg("list").arg(&members).arg(-17).arg(123).query_async(con).await.expect("rpush");
    let mut zadd = redis::cmd("ZADD");
    zadd.arg("zset");
    for (i, m) in members.iter().enumerate() {
        zadd.arg(i as f64 / 3.0 - 1000.0).arg(m);
    }
    zadd.arg("-inf").arg("low").arg("+inf").arg("high");
    let _: () = zadd.query_async(con).await.expect("zadd");
    let mut hset = redis::cmd("HSET");
    hset.arg("hash");
    for m in &members[..5000] {
        hset.arg(m).arg(format!("value of {m}"));
    }
    let _: () = hset.query_async(con).await.expect("hset");
    assert_eq!(c.cmd(&["V.SET", "v", "LABEL", "person", "name", "ann"]).await, ":1\r\n");
    for i in 0..200 {
        let other = format!("u{i}");
        assert_eq!(c.cmd(&["E.ADD", "v", "follows", &other, "RANK", &i.to_string()]).await, ":1\r\n");
    }
    assert_eq!(c.cmd(&["E.ADD", "w", "likes", "v", "PROPS", "since", "2020"]).await, ":1\r\n");
    vec!["str", "set", "list", "zset", "hash", "v"]
}

#[tokio::test]
async fn every_type_round_trips_on_one_node_and_across_nodes() {
    let a = TestNode::start().await;
    let b = TestNode::start().await;
    let (mut con_a, mut con_b) = (a.redis().await, b.redis().await);
    let (mut ca, mut cb) = (a.raw().await, b.raw().await);
    let keys = fill(&mut con_a, &mut ca).await;
    for key in &keys {
        let payload = dump(&mut con_a, key).await.expect("present");
        assert_eq!(&payload[..4], b"PRSM");
        // Same node, new key; then the other node, same key.
        let copy = format!("{key}:restored");
        assert_eq!(restore(&mut ca, &copy, "0", &payload, &[]).await, "+OK\r\n", "{key}");
        assert_eq!(dump(&mut con_a, &copy).await.as_ref(), Some(&payload), "{key} re-dumps identically");
        assert_eq!(restore(&mut cb, key, "0", &payload, &[]).await, "+OK\r\n");
        assert_eq!(dump(&mut con_b, key).await.as_ref(), Some(&payload));
        assert_eq!(ca.cmd(&["TYPE", key]).await, ca.cmd(&["TYPE", &copy]).await);
        assert_eq!(cb.cmd(&["PTTL", key]).await, ":-1\r\n");
    }
    assert_eq!(cb.cmd(&["SCARD", "set"]).await, ":20000\r\n");
    assert_eq!(cb.cmd(&["LRANGE", "list", "-2", "-1"]).await, format!("*2\r\n{}{}", bulk("-17"), bulk("123")));
    assert_eq!(cb.cmd(&["ZSCORE", "zset", "member:3"]).await, bulk("-999"));
    assert_eq!(cb.cmd(&["ZRANGE", "zset", "0", "0"]).await, format!("*1\r\n{}", bulk("low")));
    assert_eq!(cb.cmd(&["HGET", "hash", "member:42"]).await, bulk("value of member:42"));
    assert_eq!(cb.cmd(&["STRLEN", "str"]).await, ":8\r\n");
    assert_eq!(cb.cmd(&["V.GET", "v", "name"]).await, format!("*1\r\n{}", bulk("ann")));
    assert_eq!(cb.cmd(&["E.COUNT", "v", "follows"]).await, ":200\r\n");
    a.stop().await;
    b.stop().await;
}

/// The documented vertex rule: RESTORE puts every half back, and an edge shows only
/// while both halves exist, so a migration that moves one endpoint first never shows a
/// one-sided edge, and moving the other brings it back.
#[tokio::test]
async fn restoring_vertices_never_shows_one_sided_edges() {
    let a = TestNode::start().await;
    let b = TestNode::start().await;
    let mut con_a = a.redis().await;
    let (mut ca, mut cb) = (a.raw().await, b.raw().await);
    assert_eq!(ca.cmd(&["E.ADD", "x", "knows", "y", "RANK", "5", "PROPS", "w", "1"]).await, ":1\r\n");
    let (px, py) = (dump(&mut con_a, "x").await.expect("x"), dump(&mut con_a, "y").await.expect("y"));
    assert_eq!(restore(&mut cb, "x", "0", &px, &[]).await, "+OK\r\n");
    let alone = cb.cmd(&["E.RANGE", "x", "knows"]).await;
    assert!(!alone.contains(&bulk("y")), "one-sided edge shown: {alone:?}");
    assert_eq!(cb.cmd(&["E.RANGE", "y", "knows", "IN"]).await, cb.cmd(&["E.RANGE", "nobody", "knows", "IN"]).await);
    assert_eq!(restore(&mut cb, "y", "0", &py, &[]).await, "+OK\r\n");
    assert_eq!(cb.cmd(&["E.RANGE", "x", "knows"]).await, ca.cmd(&["E.RANGE", "x", "knows"]).await);
    assert_eq!(cb.cmd(&["E.RANGE", "y", "knows", "IN"]).await, ca.cmd(&["E.RANGE", "y", "knows", "IN"]).await);
    assert_eq!(cb.cmd(&["E.GET", "x", "knows", "y"]).await, ca.cmd(&["E.GET", "x", "knows", "y"]).await);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn restore_options_and_errors_in_redis_order() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["DUMP", "missing"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    let p = dump(&mut con, "k").await.expect("k");
    // Options first, then BUSYKEY, then the TTL, then the payload.
    assert_eq!(restore(&mut c, "k", "-1", b"junk", &["BOGUS"]).await, "-ERR syntax error\r\n");
    assert_eq!(restore(&mut c, "k", "-1", b"junk", &["IDLETIME"]).await, "-ERR syntax error\r\n");
    assert_eq!(
        restore(&mut c, "k", "0", &p, &["IDLETIME", "-1"]).await,
        "-ERR Invalid IDLETIME value, must be >= 0\r\n"
    );
    assert_eq!(
        restore(&mut c, "k", "0", &p, &["FREQ", "256"]).await,
        "-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n"
    );
    assert_eq!(restore(&mut c, "k", "0", &p, &["FREQ", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(restore(&mut c, "k", "0", &p, &["FREQ", "1", "IDLETIME", "1"]).await, "-ERR syntax error\r\n");
    assert_eq!(restore(&mut c, "k", "-1", b"junk", &[]).await, BUSY);
    assert_eq!(restore(&mut c, "k", "-1", b"junk", &["REPLACE"]).await, "-ERR Invalid TTL value, must be >= 0\r\n");
    assert_eq!(
        restore(&mut c, "k", "x", b"junk", &["REPLACE"]).await,
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(restore(&mut c, "k", "0", b"junk", &["REPLACE"]).await, BAD_PAYLOAD);
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"), "a refused RESTORE changes nothing");
    // A newer format version is refused the same way.
    let mut newer = p.clone();
    newer[4] += 1;
    assert_eq!(restore(&mut c, "n", "0", &newer, &[]).await, BAD_PAYLOAD);
    // TTLs: relative, none, absolute, absolute in the past.
    let now = node.clock.now_ms();
    assert_eq!(restore(&mut c, "t1", "1500", &p, &["IDLETIME", "10"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["PTTL", "t1"]).await, ":1500\r\n");
    let at = (now + 9000).to_string();
    assert_eq!(restore(&mut c, "t2", &at, &p, &["ABSTTL", "FREQ", "5"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["PEXPIRETIME", "t2"]).await, format!(":{at}\r\n"));
    assert_eq!(restore(&mut c, "k", "1", &p, &["ABSTTL", "REPLACE"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["EXISTS", "k"]).await, ":0\r\n", "a passed deadline deletes and stores nothing");
    node.clock.advance_ms(1500);
    assert_eq!(c.cmd(&["EXISTS", "t1", "t2"]).await, ":1\r\n");
    // RESP3: DUMP of a missing key is a null.
    c.hello3().await;
    assert_eq!(c.cmd(&["DUMP", "missing"]).await, "_\r\n");
    node.stop().await;
}

/// A Redis RDB payload is not Prism's: refused, not misread.
#[tokio::test]
async fn a_redis_payload_is_refused() {
    let redis = RealRedis::start().await;
    let client = redis::Client::open(format!("redis://{}", redis.addr)).expect("client");
    let mut rcon = client.get_multiplexed_async_connection().await.expect("connect");
    let _: () = redis::cmd("SET").arg("k").arg("v").query_async(&mut rcon).await.expect("set");
    let rdb = dump(&mut rcon, "k").await.expect("dump");
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(restore(&mut c, "k", "0", &rdb, &[]).await, BAD_PAYLOAD);
    node.stop().await;
}

/// Seeded: random bit flips and truncations of real payloads, sent through RESTORE, are
/// refused with one of the two payload errors or restore a value of a valid type; the
/// node answers every one and keeps serving.
#[tokio::test]
async fn damaged_payloads_are_refused_or_valid() {
    let seed = seed();
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["RPUSH", "l", "1", "two", "-3"]).await, ":3\r\n");
    assert_eq!(c.cmd(&["ZADD", "z", "1.5", "a", "-2", "b"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["HSET", "h", "f", "v", "g", "w"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["SADD", "s", "x", "y"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["E.ADD", "a", "t", "b", "PROPS", "p", "q"]).await, ":1\r\n");
    let mut payloads = Vec::new();
    for k in ["l", "z", "h", "s", "a", "b"] {
        payloads.push(dump(&mut con, k).await.expect("payload"));
    }
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..2000 {
        let mut p = payloads[round % payloads.len()].clone();
        for _ in 0..1 + next() % 3 {
            let i = (next() as usize) % p.len();
            p[i] ^= 1 << (next() % 8);
        }
        if next() % 10 == 0 {
            p.truncate((next() as usize) % p.len());
        }
        let reply = restore(&mut c, "fz", "0", &p, &["REPLACE"]).await;
        match reply.as_str() {
            BAD_PAYLOAD | "-ERR Bad data format\r\n" => {}
            "+OK\r\n" => {
                let t = c.cmd(&["TYPE", "fz"]).await;
                assert!(["+list\r\n", "+zset\r\n", "+hash\r\n", "+set\r\n", "+vertex\r\n"].contains(&t.as_str()));
            }
            other => panic!("unexpected reply {other:?} (seed {seed}, round {round})"),
        }
    }
    assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
    node.stop().await;
}

#[tokio::test]
async fn copy_matches_redis() {
    let seed = seed();
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    let setup: &[&[&str]] = &[
        &["SET", "{k}s", "v"],
        &["RPUSH", "{k}l", "a", "1", "b"],
        &["SADD", "{k}set", "x", "y", "z"],
        &["ZADD", "{k}z", "1", "a", "2", "b"],
        &["HSET", "{k}h", "f", "1", "g", "2"],
    ];
    for args in setup {
        same_reply(&mut p, &mut r, args, seed).await;
    }
    let cases: &[&[&str]] = &[
        &["COPY", "{k}s", "{k}s2"],
        &["GET", "{k}s2"],
        &["COPY", "{k}s", "{k}s2"],
        &["COPY", "{k}l", "{k}s2"],
        &["COPY", "{k}l", "{k}s2", "REPLACE"],
        &["LRANGE", "{k}s2", "0", "-1"],
        &["COPY", "{k}z", "{k}z2", "replace", "DB", "0"],
        &["ZRANGE", "{k}z2", "0", "-1", "WITHSCORES"],
        &["COPY", "{k}h", "{k}h2"],
        &["HGETALL", "{k}h2"],
        &["COPY", "{k}set", "{k}set2"],
        &["SCARD", "{k}set2"],
        &["SISMEMBER", "{k}set2", "y"],
        // The copy is independent of its source.
        &["RPUSH", "{k}l", "c"],
        &["LLEN", "{k}s2"],
        &["COPY", "{k}missing", "{k}x"],
        &["COPY", "{k}missing", "{k}x", "REPLACE"],
        &["EXISTS", "{k}x"],
        &["COPY", "{k}s", "{k}s"],
        &["COPY", "{k}s", "{k}t", "BOGUS"],
        &["COPY", "{k}s", "{k}t", "DB"],
        &["COPY", "{k}s", "{k}t", "DB", "x"],
        &["COPY", "{k}s", "{k}t", "DB", "16"],
        &["COPY", "{k}s", "{k}t", "DB", "-1"],
        &["COPY", "{k}s"],
        &["PTTL", "{k}s2"],
    ];
    for args in cases {
        same_reply(&mut p, &mut r, args, seed).await;
    }
    // Cluster mode: only database 0 (Redis Cluster's words).
    assert_eq!(
        p.cmd(&["COPY", "{k}s", "{k}t", "DB", "1"]).await,
        "-ERR Copying to another database is not allowed in cluster mode\r\n"
    );
    node.stop().await;
}

#[tokio::test]
async fn copy_keeps_the_ttl_and_a_vertex_copy_has_no_edges() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "s", "v", "PX", "5000"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["COPY", "s", "d"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["PTTL", "d"]).await, ":5000\r\n");
    node.clock.advance_ms(5000);
    assert_eq!(c.cmd(&["EXISTS", "d"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["V.SET", "a", "LABEL", "person", "name", "ann"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["E.ADD", "a", "knows", "b"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["COPY", "a", "a2"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["V.GET", "a2"]).await, c.cmd(&["V.GET", "a"]).await);
    assert_eq!(c.cmd(&["E.COUNT", "a2", "knows"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["E.COUNT", "a", "knows"]).await, ":1\r\n");
    node.stop().await;
}
