//! Sorted-set commands over a real socket, byte-exact in RESP2 and RESP3: the reply
//! shapes and score text checked literally, Redis's edge cases and error words checked
//! against a real redis-server (the same command to both, identical raw replies), and a
//! randomized model run against redis-server over few keys and a small alphabet.

use prism_tests::redis_server::{same_reply, seed, RealRedis};
use prism_tests::rng::Rng;
use prism_tests::{bulk, RawClient, TestNode};

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

/// Raw text of an array of bulks.
fn array(items: &[&str]) -> String {
    let mut s = format!("*{}\r\n", items.len());
    for i in items {
        s.push_str(&bulk(i));
    }
    s
}

async fn both(p: &mut RawClient, r: &mut RawClient, cases: &[&[&str]]) {
    for args in cases {
        same_reply(p, r, args, 0).await;
    }
}

#[tokio::test]
async fn shapes_and_score_text_resp2_and_resp3() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["ZADD", "z", "1.5", "a", "3", "b", "-inf", "c", "inf", "d"]).await, ":4\r\n");
    assert_eq!(c.cmd(&["ZSCORE", "z", "a"]).await, bulk("1.5"));
    assert_eq!(c.cmd(&["ZSCORE", "z", "b"]).await, bulk("3"));
    assert_eq!(c.cmd(&["ZSCORE", "z", "c"]).await, bulk("-inf"));
    assert_eq!(c.cmd(&["ZSCORE", "z", "nope"]).await, "$-1\r\n");
    assert_eq!(
        c.cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]).await,
        array(&["c", "-inf", "a", "1.5", "b", "3", "d", "inf"])
    );
    // Redis 7.2's d2string: shortest round trip, exponent outside fpconv's plain window.
    assert_eq!(c.cmd(&["ZADD", "f", "0.1", "a", "1e20", "b", "1e-7", "c", "-0", "d"]).await, ":4\r\n");
    assert_eq!(
        c.cmd(&["ZMSCORE", "f", "a", "b", "c", "d", "x"]).await,
        format!("*5\r\n{}{}{}{}$-1\r\n", bulk("0.1"), bulk("1e+20"), bulk("1e-7"), bulk("0"))
    );
    assert_eq!(c.cmd(&["ZPOPMIN", "z"]).await, array(&["c", "-inf"]));
    assert_eq!(c.cmd(&["ZPOPMAX", "z", "2"]).await, array(&["d", "inf", "b", "3"]));
    assert_eq!(c.cmd(&["ZADD", "z", "2", "b", "3", "c"]).await, ":2\r\n");
    assert_eq!(c.cmd(&["ZRANK", "z", "c", "WITHSCORE"]).await, "*2\r\n:2\r\n$1\r\n3\r\n");
    assert_eq!(c.cmd(&["ZREVRANK", "z", "c", "WITHSCORE"]).await, "*2\r\n:0\r\n$1\r\n3\r\n");
    assert_eq!(c.cmd(&["ZRANK", "z", "x", "WITHSCORE"]).await, "*-1\r\n");
    assert_eq!(c.cmd(&["ZRANK", "z", "x"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["ZRANK", "z", "c", "WITHSCORES"]).await, "-ERR syntax error\r\n");
    assert_eq!(
        c.cmd(&["ZRANK", "z", "c", "WITHSCORE", "x"]).await,
        "-ERR wrong number of arguments for 'zrank' command\r\n"
    );
    assert_eq!(c.cmd(&["ZRANDMEMBER", "z", "5", "WITHSCORES"]).await, array(&["a", "1.5", "b", "2", "c", "3"]));

    c.hello3().await;
    assert_eq!(c.cmd(&["ZSCORE", "z", "a"]).await, ",1.5\r\n");
    assert_eq!(c.cmd(&["ZSCORE", "z", "nope"]).await, "_\r\n");
    assert_eq!(c.cmd(&["ZSCORE", "f", "b"]).await, ",1e+20\r\n");
    assert_eq!(c.cmd(&["ZMSCORE", "z", "a", "x"]).await, "*2\r\n,1.5\r\n_\r\n");
    assert_eq!(
        c.cmd(&["ZRANGE", "z", "0", "1", "WITHSCORES"]).await,
        "*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,2\r\n"
    );
    assert_eq!(c.cmd(&["ZRANGE", "z", "0", "1"]).await, array(&["a", "b"]));
    assert_eq!(c.cmd(&["ZRANK", "z", "b", "WITHSCORE"]).await, "*2\r\n:1\r\n,2\r\n");
    assert_eq!(c.cmd(&["ZRANK", "z", "x", "WITHSCORE"]).await, "_\r\n");
    assert_eq!(c.cmd(&["ZINCRBY", "z", "0.5", "a"]).await, ",2\r\n");
    assert_eq!(c.cmd(&["ZADD", "z", "INCR", "1", "a"]).await, ",3\r\n");
    assert_eq!(c.cmd(&["ZADD", "z", "NX", "INCR", "1", "a"]).await, "_\r\n");
    assert_eq!(c.cmd(&["ZRANDMEMBER", "z", "-2", "WITHSCORES"]).await.lines().next(), Some("*2"));
    assert_eq!(c.cmd(&["ZUNION", "2", "z", "f", "WITHSCORES"]).await.lines().next(), Some("*4"));
    // ZPOP: a flat pair without a count, pairs with one.
    assert_eq!(c.cmd(&["ZPOPMIN", "z"]).await, "*2\r\n$1\r\nb\r\n,2\r\n");
    assert_eq!(c.cmd(&["ZPOPMIN", "z", "1"]).await, "*1\r\n*2\r\n$1\r\na\r\n,3\r\n");
    assert_eq!(c.cmd(&["ZPOPMIN", "missing"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["ZMPOP", "2", "missing", "z", "MAX"]).await, "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nc\r\n,3\r\n");
    assert_eq!(c.cmd(&["EXISTS", "z"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["ZMPOP", "1", "z", "MIN"]).await, "_\r\n");
    node.stop().await;
}

#[tokio::test]
async fn zadd_options_and_errors_match_redis() {
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    both(
        &mut p,
        &mut r,
        &[
            &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
            &["ZADD", "z", "CH", "GT", "5", "a", "1", "b", "3", "c", "4", "d"],
            &["ZADD", "z", "CH", "LT", "0", "a", "9", "b"],
            &["ZADD", "z", "XX", "CH", "7", "a", "7", "new"],
            &["ZADD", "z", "NX", "8", "a", "8", "new2"],
            &["ZADD", "z", "GT", "INCR", "-1", "a"],
            &["ZADD", "z", "LT", "INCR", "-1", "a"],
            &["ZADD", "z", "NX", "INCR", "1", "a"],
            &["ZADD", "z", "XX", "INCR", "1", "nope"],
            &["ZADD", "missing", "XX", "1", "a"],
            &["ZADD", "missing", "XX", "INCR", "1", "a"],
            &["EXISTS", "missing"],
            &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            &["ZADD", "z", "NX", "XX", "1", "a"],
            &["ZADD", "z", "GT", "LT", "1", "a"],
            &["ZADD", "z", "NX", "GT", "1", "a"],
            &["ZADD", "z", "INCR", "1", "a", "2", "b"],
            &["ZADD", "z", "1", "a", "2"],
            &["ZADD", "z", "CH"],
            &["ZADD", "z", "x", "a"],
            &["ZADD", "z", "nan", "a"],
            &["ZADD", "z", "1", "a", "bad", "b"],
            &["ZADD", "z", "1e400", "a"],
            &["ZADD", "z", " 1", "a"],
            &["ZADD", "z", "+inf", "i", "-inf", "j", "1e3", "k", "-0", "m"],
            &["ZINCRBY", "z", "-inf", "i"],
            &["ZADD", "z", "INCR", "-inf", "i"],
            &["ZSCORE", "z", "i"],
            &["ZINCRBY", "z", "nx", "a"],
            &["ZINCRBY", "z", "abc", "a"],
            &["ZINCRBY", "z", "2.5", "fresh"],
            &["ZINCRBY", "z", "2", "fresh"],
            &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            &["SET", "s", "v"],
            &["ZADD", "s", "1", "a"],
            &["ZADD", "s", "x", "a"],
            &["ZINCRBY", "s", "1", "a"],
            &["ZREM", "s", "a"],
            &["ZREM", "z", "a", "b", "zz"],
            &["ZREM", "missing", "a"],
            &["ZCARD", "z"],
            &["ZCARD", "s"],
            &["ZADD", "one", "1", "a"],
            &["ZREM", "one", "a"],
            &["EXISTS", "one"],
        ],
    )
    .await;
    p.hello3().await;
    r.hello3().await;
    both(
        &mut p,
        &mut r,
        &[&["ZADD", "z", "INCR", "1", "k"], &["ZINCRBY", "z", "1", "k"], &["ZADD", "z", "XX", "INCR", "1", "q"]],
    )
    .await;
    node.stop().await;
}

#[tokio::test]
async fn ranges_match_redis() {
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    let setup: &[&[&str]] = &[
        &["ZADD", "z", "1", "a", "2", "b", "2", "c", "3.5", "d", "-inf", "e", "inf", "f"],
        &["ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", ""],
        &["SET", "s", "v"],
    ];
    both(&mut p, &mut r, setup).await;
    let cases: &[&[&str]] = &[
        &["ZRANGE", "z", "0", "-1"],
        &["ZRANGE", "z", "-3", "100", "WITHSCORES"],
        &["ZRANGE", "z", "3", "1"],
        &["ZRANGE", "z", "0", "1", "REV", "WITHSCORES"],
        &["ZREVRANGE", "z", "0", "2", "WITHSCORES"],
        &["ZRANGE", "z", "(1", "3.5", "BYSCORE", "WITHSCORES"],
        &["ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "3"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "2", "-1"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "2"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "100", "2"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "0"],
        &["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"],
        &["ZRANGE", "z", "0", "1", "LIMIT", "0", "-1"],
        &["ZRANGE", "z", "0", "1", "LIMIT", "0"],
        &["ZRANGE", "z", "0", "1", "BYSCORE", "BYLEX"],
        &["ZRANGE", "z", "0", "1", "REV", "REV"],
        &["ZRANGE", "z", "a", "1"],
        &["ZRANGE", "z", "x", "1", "BYSCORE"],
        &["ZRANGE", "z", "[a", "x", "BYLEX"],
        &["ZRANGE", "l", "[a", "[c", "BYLEX", "WITHSCORES"],
        &["ZRANGE", "l", "[c", "(a", "BYLEX", "REV"],
        &["ZRANGE", "l", "-", "+", "BYLEX", "LIMIT", "1", "2"],
        &["ZRANGEBYSCORE", "z", "2", "2"],
        &["ZRANGEBYSCORE", "z", "(2", "(3.5"],
        &["ZRANGEBYSCORE", "z", "-inf", "+inf", "WITHSCORES", "LIMIT", "1", "2"],
        &["ZRANGEBYSCORE", "z", "", "5"],
        &["ZRANGEBYSCORE", "z", "(", "5"],
        &["ZRANGEBYSCORE", "z", "1", "5", "REV"],
        &["ZRANGEBYSCORE", "z", "nan", "5"],
        &["ZRANGEBYSCORE", "z", "[1", "5"],
        &["ZREVRANGEBYSCORE", "z", "+inf", "(1", "WITHSCORES"],
        &["ZREVRANGEBYSCORE", "z", "3", "1", "LIMIT", "1", "1"],
        &["ZRANGEBYLEX", "l", "-", "+"],
        &["ZRANGEBYLEX", "l", "(a", "[c"],
        &["ZRANGEBYLEX", "l", "[", "(b"],
        &["ZRANGEBYLEX", "l", "+", "-"],
        &["ZRANGEBYLEX", "l", "a", "+"],
        &["ZRANGEBYLEX", "l", "-", "+a"],
        &["ZRANGEBYLEX", "l", "-", "+", "WITHSCORES"],
        &["ZREVRANGEBYLEX", "l", "+", "-", "LIMIT", "0", "3"],
        &["ZREVRANGEBYLEX", "l", "[d", "(a"],
        &["ZCOUNT", "z", "-inf", "+inf"],
        &["ZCOUNT", "z", "(2", "3.5"],
        &["ZCOUNT", "z", "3", "1"],
        &["ZCOUNT", "z", "x", "1"],
        &["ZLEXCOUNT", "l", "-", "+"],
        &["ZLEXCOUNT", "l", "[b", "(d"],
        &["ZLEXCOUNT", "l", "b", "(d"],
        &["ZRANK", "z", "c"],
        &["ZREVRANK", "z", "c"],
        &["ZRANK", "z", "nope"],
        &["ZRANK", "missing", "a"],
        &["ZRANGE", "missing", "0", "-1"],
        &["ZRANGE", "s", "0", "-1"],
        &["ZRANGE", "s", "x", "-1"],
        &["ZCOUNT", "s", "0", "1"],
        &["ZSCORE", "s", "a"],
        &["ZRANK", "s", "a"],
    ];
    both(&mut p, &mut r, cases).await;
    p.hello3().await;
    r.hello3().await;
    both(&mut p, &mut r, cases).await;
    node.stop().await;
}

#[tokio::test]
async fn removals_stores_and_pops_match_redis() {
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    let cases: &[&[&str]] = &[
        &["ZADD", "{t}a", "1", "x", "2", "y", "3", "z", "4", "w"],
        &["ZADD", "{t}b", "10", "y", "20", "z", "30", "v"],
        &["SADD", "{t}set", "x", "v", "q"],
        &["SET", "{t}str", "v"],
        &["ZUNION", "2", "{t}a", "{t}b", "WITHSCORES"],
        &["ZUNION", "3", "{t}a", "{t}b", "{t}set", "WEIGHTS", "1", "2", "3", "AGGREGATE", "MAX", "WITHSCORES"],
        &["ZINTER", "2", "{t}a", "{t}b", "AGGREGATE", "MIN", "WITHSCORES"],
        &["ZINTER", "2", "{t}a", "{t}missing"],
        &["ZDIFF", "2", "{t}a", "{t}b", "WITHSCORES"],
        &["ZDIFF", "2", "{t}a", "{t}b", "WEIGHTS", "1", "2"],
        &["ZUNION", "0", "{t}a"],
        &["ZUNION", "3", "{t}a", "{t}b"],
        &["ZUNION", "x", "{t}a"],
        &["ZUNION", "2", "{t}a", "{t}str"],
        &["ZUNION", "2", "{t}a", "{t}str", "BOGUS"],
        &["ZUNION", "2", "{t}a", "{t}b", "WEIGHTS", "1", "x"],
        &["ZUNION", "2", "{t}a", "{t}b", "WEIGHTS", "1"],
        &["ZUNION", "2", "{t}a", "{t}b", "AGGREGATE", "AVG"],
        &["ZUNIONSTORE", "{t}dst", "2", "{t}a", "{t}b", "WEIGHTS", "2", "0.5"],
        &["ZRANGE", "{t}dst", "0", "-1", "WITHSCORES"],
        &["ZUNIONSTORE", "{t}dst", "2", "{t}a", "{t}b", "WITHSCORES"],
        &["ZINTERSTORE", "{t}dst", "2", "{t}a", "{t}b"],
        &["ZRANGE", "{t}dst", "0", "-1", "WITHSCORES"],
        &["ZINTERSTORE", "{t}dst", "2", "{t}a", "{t}missing"],
        &["EXISTS", "{t}dst"],
        &["ZDIFFSTORE", "{t}dst", "2", "{t}a", "{t}b"],
        &["ZRANGE", "{t}dst", "0", "-1", "WITHSCORES"],
        &["ZINTERSTORE", "{t}dst", "0", "{t}a"],
        &["ZDIFFSTORE", "{t}str", "1", "{t}a"],
        &["TYPE", "{t}str"],
        &["SET", "{t}str", "v"],
        &["EXPIRE", "{t}dst", "100"],
        &["ZRANGESTORE", "{t}dst", "{t}a", "1", "2"],
        &["TTL", "{t}dst"],
        &["ZRANGE", "{t}dst", "0", "-1", "WITHSCORES"],
        &["ZRANGESTORE", "{t}str", "{t}a", "(1", "+inf", "BYSCORE", "REV", "LIMIT", "0", "2"],
        &["ZRANGE", "{t}str", "0", "-1", "WITHSCORES"],
        &["ZRANGESTORE", "{t}dst", "{t}a", "5", "9"],
        &["EXISTS", "{t}dst"],
        &["ZRANGESTORE", "{t}dst", "{t}missing", "0", "-1"],
        &["SET", "{t}str", "v"],
        &["ZRANGESTORE", "{t}dst", "{t}str", "0", "-1"],
        &["ZRANGESTORE", "{t}dst", "{t}a", "0", "-1", "WITHSCORES"],
        &["ZADD", "{t}r", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e", "6", "f"],
        &["ZREMRANGEBYRANK", "{t}r", "-2", "-1"],
        &["ZREMRANGEBYSCORE", "{t}r", "(1", "2"],
        &["ZREMRANGEBYSCORE", "{t}r", "x", "2"],
        &["ZREMRANGEBYLEX", "{t}r", "x", "+"],
        &["ZRANGE", "{t}r", "0", "-1", "WITHSCORES"],
        &["ZREMRANGEBYRANK", "{t}r", "0", "-1"],
        &["EXISTS", "{t}r"],
        &["ZREMRANGEBYRANK", "{t}str", "0", "-1"],
        &["ZADD", "{t}p", "1", "a", "2", "b", "3", "c"],
        &["ZPOPMIN", "{t}p", "0"],
        &["ZPOPMIN", "{t}p", "-1"],
        &["ZPOPMIN", "{t}p", "x"],
        &["ZPOPMIN", "{t}p", "1", "2"],
        &["ZPOPMAX", "{t}p"],
        &["ZPOPMIN", "{t}p", "10"],
        &["EXISTS", "{t}p"],
        &["ZPOPMIN", "{t}str"],
        &["ZPOPMIN", "{t}str", "0"],
        &["ZADD", "{t}p", "1", "a", "2", "b", "3", "c"],
        &["ZMPOP", "3", "{t}missing", "{t}p", "{t}str", "MAX", "COUNT", "2"],
        &["ZMPOP", "2", "{t}str", "{t}p", "MIN"],
        &["ZMPOP", "0", "{t}p", "MIN"],
        &["ZMPOP", "1", "{t}p", "LEFT"],
        &["ZMPOP", "5", "{t}p", "MIN"],
        &["ZMPOP", "1", "{t}p", "MIN", "COUNT", "0"],
        &["ZMPOP", "1", "{t}p", "MIN", "COUNT"],
        &["ZMPOP", "1", "{t}p", "MIN", "COUNT", "1", "COUNT", "1"],
        &["ZMPOP", "1", "{t}missing", "MIN"],
        &["ZRANDMEMBER", "{t}missing"],
        &["ZRANDMEMBER", "{t}missing", "3"],
        &["ZRANDMEMBER", "{t}p", "0"],
        &["ZRANDMEMBER", "{t}p", "5"],
        &["ZRANDMEMBER", "{t}p", "x"],
        &["ZRANDMEMBER", "{t}p", "1", "bad"],
        &["ZRANDMEMBER", "{t}p", "-9223372036854775808"],
        &["ZRANDMEMBER", "{t}p", "9223372036854775807", "WITHSCORES"],
        &["ZRANDMEMBER", "{t}str"],
        &["ZSCAN", "{t}a", "0"],
        &["ZSCAN", "{t}a", "0", "MATCH", "*z*"],
        &["ZSCAN", "{t}a", "0", "COUNT", "0"],
        &["ZSCAN", "{t}a", "x"],
        &["ZSCAN", "{t}missing", "0"],
        &["ZSCAN", "{t}str", "0"],
    ];
    both(&mut p, &mut r, cases).await;
    p.hello3().await;
    r.hello3().await;
    both(&mut p, &mut r, cases).await;
    node.stop().await;
}

/// ZSCAN over a set too big for Redis's listpack returns every member present for the
/// whole scan, while members are removed between calls.
#[tokio::test]
async fn zscan_completeness_on_a_large_set() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let mut args = vec!["ZADD".to_string(), "big".to_string()];
    for i in 0..500 {
        args.push(i.to_string());
        args.push(format!("m{i}"));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(c.cmd(&argv).await, ":500\r\n");
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    let mut removed = 0;
    loop {
        let reply = c.cmd(&["ZSCAN", "big", &cursor, "COUNT", "20"]).await;
        let lines: Vec<&str> = reply.split("\r\n").collect();
        cursor = lines[2].to_string();
        for pair in lines[4..].chunks(4) {
            if pair.len() == 4 {
                seen.insert(pair[1].to_string());
            }
        }
        for _ in 0..5 {
            c.cmd(&["ZREM", "big", &format!("m{removed}")]).await;
            removed += 1;
        }
        if cursor == "0" {
            break;
        }
    }
    for i in removed..500 {
        assert!(seen.contains(&format!("m{i}")), "m{i} missed");
    }
    node.stop().await;
}

#[tokio::test]
async fn wrongtype_everywhere() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["SET", "s", "v"]).await;
    c.cmd(&["ZADD", "z", "1", "a"]).await;
    for args in [
        &["ZADD", "s", "1", "a"][..],
        &["ZCARD", "s"],
        &["ZMSCORE", "s", "a"],
        &["ZLEXCOUNT", "s", "-", "+"],
        &["ZREVRANGE", "s", "0", "1"],
        &["ZRANGEBYLEX", "s", "-", "+"],
        &["ZREVRANK", "s", "a"],
        &["ZPOPMAX", "s"],
        &["ZMPOP", "1", "s", "MIN"],
        &["ZREMRANGEBYSCORE", "s", "0", "1"],
        &["ZREMRANGEBYLEX", "s", "-", "+"],
        &["ZINTER", "2", "z", "s"],
        &["ZDIFF", "1", "s"],
        &["ZINTERSTORE", "d", "2", "z", "s"],
        &["ZRANGESTORE", "d", "s", "0", "-1"],
        &["ZRANDMEMBER", "s", "2"],
        &["ZSCAN", "s", "0"],
    ] {
        assert_eq!(c.cmd(args).await, WRONGTYPE, "{args:?}");
    }
    assert_eq!(c.cmd(&["HSET", "z", "f", "v"]).await, WRONGTYPE);
    assert_eq!(c.cmd(&["EXISTS", "d"]).await, ":0\r\n");
    node.stop().await;
}

/// A few thousand random commands over few keys and a small alphabet, sent to Prism and
/// to redis-server; every reply must be identical. Scores are integers or halves so the
/// text is exact in any version; lex ranges run on a key whose scores are all 0.
#[tokio::test]
async fn randomized_model_against_redis() {
    let seed = seed();
    let mut rng = Rng::new(seed | 1);
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    let keys = ["{k}a", "{k}b", "{k}c"];
    let members = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let score = |rng: &mut Rng| -> String {
        match rng.below(12) {
            0 => "-inf".into(),
            1 => "+inf".into(),
            n => format!("{}", (n as f64 - 6.0) / 2.0 + rng.below(3) as f64),
        }
    };
    let bound = |rng: &mut Rng| -> String {
        let s = score(rng);
        if rng.below(3) == 0 && !s.contains("inf") {
            format!("({s}")
        } else {
            s
        }
    };
    let lex = |rng: &mut Rng| -> String {
        match rng.below(6) {
            0 => "-".into(),
            1 => "+".into(),
            2 => format!("({}", members[rng.below(8)]),
            _ => format!("[{}", members[rng.below(8)]),
        }
    };
    for step in 0..3000 {
        if step == 1500 {
            p.hello3().await;
            r.hello3().await;
        }
        let k = keys[rng.below(3)].to_string();
        let k2 = keys[rng.below(3)].to_string();
        let m = members[rng.below(8)].to_string();
        let i1 = (rng.below(12) as i64 - 6).to_string();
        let i2 = (rng.below(12) as i64 - 6).to_string();
        let args: Vec<String> = match rng.below(24) {
            0..=3 => {
                let mut a = vec!["ZADD".into(), k.clone()];
                for opt in ["NX", "XX", "GT", "LT", "CH"] {
                    if rng.below(6) == 0 {
                        a.push(opt.into());
                    }
                }
                for _ in 0..1 + rng.below(3) {
                    a.push(score(&mut rng));
                    a.push(members[rng.below(8)].into());
                }
                a
            }
            4 => vec!["ZINCRBY".into(), k, score(&mut rng), m],
            5 => vec!["ZADD".into(), k, "INCR".into(), score(&mut rng), m],
            6 => vec!["ZREM".into(), k, m, members[rng.below(8)].into()],
            7 => vec!["ZRANGE".into(), k, i1, i2, "WITHSCORES".into()],
            8 => {
                let mut a = vec!["ZRANGEBYSCORE".into(), k, bound(&mut rng), bound(&mut rng), "WITHSCORES".into()];
                if rng.below(2) == 0 {
                    a.extend([
                        "LIMIT".into(),
                        (rng.below(4) as i64 - 1).to_string(),
                        (rng.below(4) as i64 - 1).to_string(),
                    ]);
                }
                a
            }
            9 => vec!["ZREVRANGEBYSCORE".into(), k, bound(&mut rng), bound(&mut rng)],
            10 => vec![
                "ZRANGE".into(),
                k,
                bound(&mut rng),
                bound(&mut rng),
                "BYSCORE".into(),
                "REV".into(),
                "LIMIT".into(),
                "1".into(),
                "2".into(),
            ],
            11 => vec!["ZCOUNT".into(), k, bound(&mut rng), bound(&mut rng)],
            12 => vec!["ZRANK".into(), k, m],
            13 => vec!["ZREVRANK".into(), k, m],
            14 => vec!["ZSCORE".into(), k, m],
            15 => vec!["ZPOPMIN".into(), k, rng.below(3).to_string()],
            16 => vec!["ZPOPMAX".into(), k],
            17 => vec!["ZREMRANGEBYRANK".into(), k, i1, i2],
            18 => vec!["ZREMRANGEBYSCORE".into(), k, bound(&mut rng), bound(&mut rng)],
            19 => {
                let cmd = ["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"][rng.below(3)];
                let mut a = vec![cmd.into(), k, "2".into(), k2, keys[rng.below(3)].into()];
                if cmd != "ZDIFFSTORE" && rng.below(2) == 0 {
                    a.extend([
                        "WEIGHTS".into(),
                        "2".into(),
                        "-1".into(),
                        "AGGREGATE".into(),
                        ["SUM", "MIN", "MAX"][rng.below(3)].into(),
                    ]);
                }
                a
            }
            20 => vec!["ZRANGESTORE".into(), k, k2, i1, i2],
            21 => {
                // Lex commands on a key where every score is 0.
                let mut a = vec!["ZADD".into(), "{k}lex".into()];
                for _ in 0..2 {
                    a.push("0".into());
                    a.push(members[rng.below(8)].into());
                }
                a
            }
            22 => {
                let cmd = ["ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZLEXCOUNT", "ZREMRANGEBYLEX"][rng.below(4)];
                vec![cmd.into(), "{k}lex".into(), lex(&mut rng), lex(&mut rng)]
            }
            _ => {
                let cmd = ["ZUNION", "ZINTER", "ZDIFF"][rng.below(3)];
                vec![cmd.into(), "2".into(), k, k2, "WITHSCORES".into()]
            }
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        same_reply(&mut p, &mut r, &argv, seed).await;
        if step % 100 == 0 {
            for k in keys {
                same_reply(&mut p, &mut r, &["ZRANGE", k, "0", "-1", "WITHSCORES"], seed).await;
            }
        }
    }
    node.stop().await;
}
