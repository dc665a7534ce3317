//! The server surface clients and tools probe, over a real socket: OBJECT, MEMORY,
//! SLOWLOG, LATENCY, INFO commandstats / errorstats and CLIENT TRACKING, in RESP2 and
//! RESP3. Where Redis 7.0 (the installed redis-server) answers the same, the replies are
//! compared byte for byte with it.

use prism_engine::clock::Clock;
use prism_tests::redis_server::{same_reply, RealRedis};
use prism_tests::{bulk, RawClient, TestNode};
use redis::Value;

/// The text of a bulk (RESP2) or verbatim (RESP3) reply.
fn payload(reply: &str) -> &str {
    let body = reply.split_once("\r\n").map(|(_, b)| b).unwrap_or("");
    let body = body.strip_suffix("\r\n").unwrap_or(body);
    body.strip_prefix("txt:").unwrap_or(body)
}

/// `key=value` pairs of one INFO line `prefix:k=v,k=v`, or `None` without such a line.
fn info_line(info: &str, prefix: &str) -> Option<Vec<(String, String)>> {
    let line = payload(info).split("\r\n").find_map(|l| l.strip_prefix(prefix)?.strip_prefix(':'))?;
    Some(line.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// `(calls, rejected_calls, failed_calls)` of a command in INFO commandstats.
fn cmdstat(info: &str, name: &str) -> Option<(u64, u64, u64)> {
    let fields = info_line(info, &format!("cmdstat_{name}"))?;
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).and_then(|(_, v)| v.parse().ok()).expect(k);
    Some((get("calls"), get("rejected_calls"), get("failed_calls")))
}

fn errorstat(info: &str, code: &str) -> Option<u64> {
    info_line(info, &format!("errorstat_{code}"))?.first()?.1.parse().ok()
}

async fn encoding(c: &mut RawClient, key: &str) -> String {
    c.cmd(&["OBJECT", "ENCODING", key]).await
}

#[tokio::test]
async fn object_matches_redis_for_strings_hashes_zsets_and_intsets() {
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    let long = "x".repeat(45);
    let at_embstr = "y".repeat(44);
    for (k, v) in [
        ("i", "12345"),
        ("small", "7"),
        ("neg", "-5"),
        ("zero", "0"),
        ("lead", "0123"),
        ("max", "9223372036854775807"),
        ("over", "9223372036854775808"),
        ("e", at_embstr.as_str()),
        ("raw", long.as_str()),
    ] {
        same_reply(&mut p, &mut r, &["SET", k, v], 0).await;
        same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", k], 0).await;
        same_reply(&mut p, &mut r, &["OBJECT", "REFCOUNT", k], 0).await;
        same_reply(&mut p, &mut r, &["OBJECT", "FREQ", k], 0).await;
    }
    for sub in ["ENCODING", "FREQ", "IDLETIME", "REFCOUNT"] {
        same_reply(&mut p, &mut r, &["OBJECT", sub, "missing"], 0).await;
    }
    for args in [
        &["OBJECT", "HELP"][..],
        &["OBJECT"],
        &["OBJECT", "ENCODING"],
        &["OBJECT", "ENCODING", "i", "extra"],
        &["OBJECT", "NOPE", "i"],
        &["MEMORY", "HELP"],
        &["SLOWLOG", "HELP"],
        &["SLOWLOG", "LEN", "x"],
        &["SLOWLOG", "GET", "-2"],
        &["SLOWLOG", "GET", "x"],
        &["SLOWLOG", "GET", "1", "2"],
        &["LATENCY", "HISTORY"],
        &["LATENCY", "LATEST"],
        &["LATENCY", "HISTORY", "command"],
        &["LATENCY", "RESET"],
        &["LATENCY", "RESET", "command", "other"],
        &["MEMORY", "USAGE", "missing"],
        &["MEMORY", "USAGE", "i", "SAMPLES"],
        &["MEMORY", "USAGE", "i", "SAMPLES", "-1"],
        &["MEMORY", "USAGE", "i", "SAMPLES", "x"],
        &["MEMORY", "USAGE", "i", "FOO", "1"],
        &["MEMORY", "PURGE"],
        &["CONFIG", "GET", "hash-max-listpack-entries"],
        &["CONFIG", "GET", "zset-max-listpack-entries"],
        &["CONFIG", "GET", "zset-max-listpack-value"],
        &["CONFIG", "GET", "set-max-intset-entries"],
        &["CONFIG", "GET", "list-max-listpack-size"],
    ] {
        same_reply(&mut p, &mut r, args, 0).await;
    }

    // Hashes: listpack up to 512 fields (redis-server's built-in default; the sample
    // redis.conf says 128) of at most 64 bytes, then hashtable.
    for i in 0..512 {
        same_reply(&mut p, &mut r, &["HSET", "h", &format!("f{i}"), "v"], 0).await;
    }
    assert_eq!(same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", "h"], 0).await, bulk("listpack"));
    same_reply(&mut p, &mut r, &["HSET", "h", "f512", "v"], 0).await;
    assert_eq!(same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", "h"], 0).await, bulk("hashtable"));
    same_reply(&mut p, &mut r, &["HSET", "h2", "f", &"v".repeat(64)], 0).await;
    assert_eq!(same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", "h2"], 0).await, bulk("listpack"));
    same_reply(&mut p, &mut r, &["HSET", "h2", "g", &"v".repeat(65)], 0).await;
    assert_eq!(same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", "h2"], 0).await, bulk("hashtable"));

    // Sorted sets: listpack up to 128 members of at most 64 bytes, then skiplist.
    for i in 0..128 {
        same_reply(&mut p, &mut r, &["ZADD", "z", &i.to_string(), &format!("m{i}")], 0).await;
    }
    assert_eq!(same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", "z"], 0).await, bulk("listpack"));
    same_reply(&mut p, &mut r, &["ZADD", "z", "1000", "m128"], 0).await;
    assert_eq!(same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", "z"], 0).await, bulk("skiplist"));
    same_reply(&mut p, &mut r, &["ZADD", "z2", "1", &"m".repeat(65)], 0).await;
    assert_eq!(same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", "z2"], 0).await, bulk("skiplist"));

    // Sets of integers: intset up to 512 members, then hashtable.
    for i in 0..512 {
        same_reply(&mut p, &mut r, &["SADD", "s", &i.to_string()], 0).await;
    }
    assert_eq!(same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", "s"], 0).await, bulk("intset"));
    same_reply(&mut p, &mut r, &["SADD", "s", "512"], 0).await;
    assert_eq!(same_reply(&mut p, &mut r, &["OBJECT", "ENCODING", "s"], 0).await, bulk("hashtable"));
    for k in ["h", "z", "s", "i"] {
        same_reply(&mut p, &mut r, &["OBJECT", "REFCOUNT", k], 0).await;
        same_reply(&mut p, &mut r, &["OBJECT", "FREQ", k], 0).await;
    }
}

/// Encodings Redis 7.2 has and the installed 7.0 does not (listpack sets and lists), and
/// graph vertices.
#[tokio::test]
async fn object_encoding_of_sets_lists_and_vertices() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["SADD", "s", "1", "2", "a"]).await;
    assert_eq!(encoding(&mut c, "s").await, bulk("listpack"));
    for i in 0..125 {
        c.cmd(&["SADD", "s", &format!("m{i}")]).await;
    }
    assert_eq!(c.cmd(&["SCARD", "s"]).await, ":128\r\n");
    assert_eq!(encoding(&mut c, "s").await, bulk("listpack"));
    c.cmd(&["SADD", "s", "one-more"]).await;
    assert_eq!(encoding(&mut c, "s").await, bulk("hashtable"));
    c.cmd(&["SADD", "s2", &"m".repeat(65)]).await;
    assert_eq!(encoding(&mut c, "s2").await, bulk("hashtable"));
    c.cmd(&["SADD", "s3", "1", "2"]).await;
    assert_eq!(encoding(&mut c, "s3").await, bulk("intset"));

    // A list stays one listpack while its entries fit 8 KB: 10-byte strings take 12
    // bytes each, so 682 of them (8191 bytes with the header) fit and 683 do not.
    let items: Vec<String> = (0..682).map(|i| format!("item{i:06}")).collect();
    let mut push = vec!["RPUSH", "l"];
    push.extend(items.iter().map(String::as_str));
    assert_eq!(c.cmd(&push).await, ":682\r\n");
    assert_eq!(encoding(&mut c, "l").await, bulk("listpack"));
    c.cmd(&["RPUSH", "l", "item999999"]).await;
    assert_eq!(encoding(&mut c, "l").await, bulk("quicklist"));
    c.cmd(&["RPUSH", "big", &"b".repeat(9000)]).await;
    assert_eq!(encoding(&mut c, "big").await, bulk("quicklist"));

    c.cmd(&["V.SET", "user:1", "name", "ann"]).await;
    assert_eq!(encoding(&mut c, "user:1").await, bulk("adjacency"));
    assert_eq!(c.cmd(&["OBJECT", "REFCOUNT", "user:1"]).await, ":1\r\n");
    let idle = c.cmd(&["OBJECT", "IDLETIME", "user:1"]).await;
    assert_eq!(idle, "-ERR Prism does not track key access times, idle time not available.\r\n");

    // RESP3: a missing key is null.
    c.hello3().await;
    assert_eq!(encoding(&mut c, "missing").await, "_\r\n");
    assert_eq!(c.cmd(&["MEMORY", "USAGE", "missing"]).await, "_\r\n");
    assert_eq!(encoding(&mut c, "l").await, bulk("quicklist"));
}

fn usage(reply: &str) -> u64 {
    reply.strip_prefix(':').and_then(|r| r.trim_end().parse().ok()).unwrap_or_else(|| panic!("not a usage: {reply}"))
}

#[tokio::test]
async fn memory_usage_grows_with_the_value_and_stats_are_measured() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.cmd(&["SET", "k", "short"]).await;
    let small = usage(&c.cmd(&["MEMORY", "USAGE", "k"]).await);
    c.cmd(&["SET", "k", &"v".repeat(1000)]).await;
    let big = usage(&c.cmd(&["MEMORY", "USAGE", "k", "SAMPLES", "0"]).await);
    assert!(big >= small + 995, "{small} -> {big}");
    c.cmd(&["HSET", "h", "f", "v"]).await;
    let mut last = usage(&c.cmd(&["MEMORY", "USAGE", "h"]).await);
    for i in 0..5 {
        c.cmd(&["HSET", "h", &format!("field{i}"), "value"]).await;
        let now = usage(&c.cmd(&["MEMORY", "USAGE", "h", "SAMPLES", "5"]).await);
        assert!(now > last, "{last} -> {now}");
        last = now;
    }
    // The figures INFO's used_memory sums: with only these two keys, they add up to it.
    let info = c.cmd(&["INFO", "memory"]).await;
    let used: u64 =
        payload(&info).split("\r\n").find_map(|l| l.strip_prefix("used_memory:")?.parse().ok()).expect("used_memory");
    assert_eq!(used, big + last);

    // MEMORY STATS: nine fields, db.0 a nested map; RESP2 flattens them.
    let stats = c.cmd(&["MEMORY", "STATS"]).await;
    assert!(stats.starts_with("*18\r\n$14\r\npeak.allocated\r\n:"), "{stats}");
    assert!(stats.contains(&format!("$15\r\ntotal.allocated\r\n:{used}\r\n")), "{stats}");
    let overhead = 2 * prism_engine::value::ENTRY_OVERHEAD;
    assert!(
        stats.contains(&format!("$4\r\ndb.0\r\n*4\r\n$23\r\noverhead.hashtable.main\r\n:{overhead}\r\n")),
        "{stats}"
    );
    assert!(stats.contains("$10\r\nkeys.count\r\n:2\r\n"), "{stats}");
    assert!(stats.contains("$18\r\ndataset.percentage\r\n$"), "{stats}");
    let doctor = c.cmd(&["MEMORY", "DOCTOR"]).await;
    assert!(payload(&doctor).starts_with("Hi Sam, this instance is empty or is using very little memory"), "{doctor}");
    c.hello3().await;
    let stats = c.cmd(&["MEMORY", "STATS"]).await;
    assert!(stats.starts_with("%9\r\n$14\r\npeak.allocated\r\n:"), "{stats}");
    assert!(stats.contains("$4\r\ndb.0\r\n%2\r\n"), "{stats}");
    assert!(stats.contains("$18\r\ndataset.percentage\r\n,"), "{stats}");
    assert!(c.cmd(&["MEMORY", "DOCTOR"]).await.starts_with("=272\r\ntxt:Hi Sam"));
    assert_eq!(
        c.cmd(&["MEMORY", "MALLOC-STATS"]).await,
        "=49\r\ntxt:Stats not supported for the current allocator\r\n"
    );
}

#[tokio::test]
async fn commandstats_and_errorstats_count_calls_rejections_and_failures() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let mut other = node.raw().await;
    for _ in 0..3 {
        assert_eq!(c.cmd(&["SET", "a", "x"]).await, "+OK\r\n");
    }
    c.cmd(&["GET", "a"]).await;
    c.cmd(&["GET", "a"]).await;
    assert!(c.cmd(&["GET"]).await.starts_with("-ERR wrong number of arguments"));
    assert!(c.cmd(&["INCR", "a"]).await.starts_with("-ERR value is not an integer"));
    assert!(c.cmd(&["HSET", "a", "f", "v"]).await.starts_with("-WRONGTYPE"));
    assert!(c.cmd(&["NOSUCHCOMMAND"]).await.starts_with("-ERR unknown command"));
    assert!(c.cmd(&["CLIENT", "NOSUCH"]).await.starts_with("-ERR unknown subcommand"));
    c.cmd(&["CLIENT", "ID"]).await;
    // Another connection's commands are published before their replies leave.
    other.cmd(&["SET", "b", "1"]).await;

    let info = c.cmd(&["INFO", "commandstats"]).await;
    assert!(payload(&info).starts_with("# Commandstats\r\n"), "{info}");
    assert!(!payload(&info).contains("# Errorstats"), "{info}");
    assert_eq!(cmdstat(&info, "set"), Some((4, 0, 0)), "{info}");
    assert_eq!(cmdstat(&info, "get"), Some((2, 1, 0)), "{info}");
    assert_eq!(cmdstat(&info, "incr"), Some((1, 0, 1)), "{info}");
    assert_eq!(cmdstat(&info, "hset"), Some((1, 0, 1)), "{info}");
    assert_eq!(cmdstat(&info, "client|id"), Some((1, 0, 0)), "{info}");
    assert_eq!(cmdstat(&info, "client"), None, "{info}");
    assert_eq!(cmdstat(&info, "info"), None, "INFO counts once it ran: {info}");
    let fields = info_line(&info, "cmdstat_set").expect("set line");
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["calls", "usec", "usec_per_call", "rejected_calls", "failed_calls"]);
    assert!(fields[2].1.split_once('.').is_some_and(|(_, d)| d.len() == 2), "{info}");

    let errors = c.cmd(&["INFO", "errorstats"]).await;
    // Arity, INCR, unknown command, unknown subcommand: ERR; HSET: WRONGTYPE.
    assert_eq!(errorstat(&errors, "ERR"), Some(4), "{errors}");
    assert_eq!(errorstat(&errors, "WRONGTYPE"), Some(1), "{errors}");
    let total = c.cmd(&["INFO", "stats"]).await;
    assert!(payload(&total).contains("total_error_replies:5\r\n"), "{total}");

    // Default INFO has errorstats and not commandstats; `all` has both.
    let default = c.cmd(&["INFO"]).await;
    assert!(payload(&default).contains("# Errorstats\r\nerrorstat_ERR:count=4\r\n"), "{default}");
    assert!(!payload(&default).contains("# Commandstats"), "{default}");
    let all = c.cmd(&["INFO", "all"]).await;
    let headers: Vec<&str> = payload(&all).split("\r\n").filter(|l| l.starts_with('#')).collect();
    let tail = ["# CPU", "# Commandstats", "# Errorstats", "# Latencystats", "# Cluster", "# Keyspace", "# Tiering"];
    assert_eq!(&headers[6..], tail);
    assert_eq!(cmdstat(&all, "info"), Some((4, 0, 0)), "{all}");

    // RESETSTAT clears both; it counts itself, as in Redis.
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]).await, "+OK\r\n");
    let info = c.cmd(&["INFO", "commandstats", "errorstats"]).await;
    assert_eq!(
        payload(&info).split("\r\n").filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        ["# Commandstats", &info_line_text(&info, "cmdstat_config|resetstat"), "# Errorstats"],
        "{info}"
    );
    assert_eq!(cmdstat(&info, "config|resetstat"), Some((1, 0, 0)));

    // RESP3: the same text as a verbatim string.
    c.hello3().await;
    let info = c.cmd(&["INFO", "errorstats"]).await;
    assert_eq!(info, "=18\r\ntxt:# Errorstats\r\n\r\n");
}

fn info_line_text(info: &str, prefix: &str) -> String {
    payload(info).split("\r\n").find(|l| l.starts_with(prefix)).unwrap_or_default().to_string()
}

/// The entries of SLOWLOG GET as `(id, time, args, addr, name)`.
fn slow_entries(v: &Value) -> Vec<(i64, i64, Vec<String>, String, String)> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk: {other:?}"),
    };
    let int = |v: &Value| match v {
        Value::Int(n) => *n,
        other => panic!("not an int: {other:?}"),
    };
    let Value::Array(entries) = v else { panic!("not an array: {v:?}") };
    entries
        .iter()
        .map(|e| {
            let Value::Array(f) = e else { panic!("entry not an array: {e:?}") };
            assert_eq!(f.len(), 6, "{f:?}");
            assert!(int(&f[2]) >= 0);
            let Value::Array(args) = &f[3] else { panic!("args not an array: {f:?}") };
            (int(&f[0]), int(&f[1]), args.iter().map(text).collect(), text(&f[4]), text(&f[5]))
        })
        .collect()
}

async fn slowlog(
    con: &mut redis::aio::MultiplexedConnection,
    count: &str,
) -> Vec<(i64, i64, Vec<String>, String, String)> {
    let v: Value = redis::cmd("SLOWLOG").arg("GET").arg(count).query_async(con).await.expect("slowlog get");
    slow_entries(&v)
}

#[tokio::test]
async fn slowlog_records_commands_cut_as_redis_cuts_them() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "slowlog-*"]).await,
        c_get(&[("slowlog-log-slower-than", "10000"), ("slowlog-max-len", "128")])
    );
    let mut con = node.redis().await;
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("slowlog-log-slower-than").arg("0").query_async(&mut con).await.unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query_async(&mut con).await.unwrap();
    let _: () = redis::cmd("CLIENT").arg("SETNAME").arg("probe").query_async(&mut con).await.unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v".repeat(200)).query_async(&mut con).await.unwrap();
    let many: Vec<String> = (0..39).map(|i| format!("e{i}")).collect();
    let _: i64 = redis::cmd("RPUSH").arg("l").arg(&many).query_async(&mut con).await.unwrap();
    // Refused (no password is set), but it ran, so it is logged, password redacted.
    let _ = redis::cmd("AUTH").arg("secret").query_async::<Value>(&mut con).await;
    let info: String = redis::cmd("CLIENT").arg("INFO").query_async(&mut con).await.unwrap();
    let addr = info.split(' ').find_map(|kv| kv.strip_prefix("addr=")).unwrap().to_string();

    let entries = slowlog(&mut con, "-1").await;
    // Newest first: CLIENT INFO, AUTH, RPUSH, SET, CLIENT SETNAME, SLOWLOG RESET.
    let names: Vec<&str> = entries.iter().map(|e| e.2[0].as_str()).collect();
    assert_eq!(names, ["CLIENT", "AUTH", "RPUSH", "SET", "CLIENT", "SLOWLOG"]);
    let ids: Vec<i64> = entries.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1] + 1), "{ids:?}");
    let now_s = (node.clock.now_ms() / 1000) as i64;
    assert!(entries.iter().all(|e| e.1 == now_s && e.3 == addr));
    assert_eq!(entries[0].4, "probe");
    assert_eq!(entries[5].4, "", "no name yet when SLOWLOG RESET ran");
    assert_eq!(entries[1].2, ["AUTH", "(redacted)"]);
    let rpush = &entries[2].2;
    assert_eq!(rpush.len(), 32);
    assert_eq!(rpush[..3], ["RPUSH", "l", "e0"]);
    assert_eq!(rpush[30], "e28");
    assert_eq!(rpush[31], "... (10 more arguments)");
    assert_eq!(entries[3].2, ["SET".to_string(), "k".into(), format!("{}... (72 more bytes)", "v".repeat(128))]);

    // GET's count, LEN, RESET; ids keep counting after a reset.
    assert_eq!(slowlog(&mut con, "2").await.len(), 2);
    assert_eq!(slowlog(&mut con, "0").await.len(), 0);
    let len: i64 = redis::cmd("SLOWLOG").arg("LEN").query_async(&mut con).await.unwrap();
    assert_eq!(len, 9);
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query_async(&mut con).await.unwrap();
    let after = slowlog(&mut con, "10").await;
    assert_eq!(after.len(), 1, "only the RESET itself: {after:?}");
    assert_eq!(after[0].2, ["SLOWLOG", "RESET"]);
    assert!(after[0].0 > ids[0]);

    // slowlog-max-len trims on the next entry; a negative threshold logs nothing.
    c.cmd(&["CONFIG", "SET", "slowlog-max-len", "2"]).await;
    for _ in 0..5 {
        c.cmd(&["PING"]).await;
    }
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]).await, ":2\r\n");
    c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "-1", "slowlog-max-len", "128"]).await;
    c.cmd(&["SLOWLOG", "RESET"]).await;
    c.cmd(&["PING"]).await;
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["SLOWLOG", "GET"]).await, "*0\r\n");
    c.hello3().await;
    assert_eq!(c.cmd(&["SLOWLOG", "GET"]).await, "*0\r\n");
}

fn c_get(pairs: &[(&str, &str)]) -> String {
    let mut s = format!("*{}\r\n", pairs.len() * 2);
    for (k, v) in pairs {
        s.push_str(&bulk(k));
        s.push_str(&bulk(v));
    }
    s
}

/// SLOWLOG LEN after the same commands, and the same config replies, as Redis.
#[tokio::test]
async fn slowlog_counts_like_redis() {
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    for args in [
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"][..],
        &["SLOWLOG", "RESET"],
        &["SET", "a", "b"],
        &["SLOWLOG", "LEN"],
        &["EXEC"],
        &["SLOWLOG", "LEN"],
        &["CONFIG", "GET", "slowlog-log-slower-than"],
        &["CONFIG", "SET", "slowlog-max-len", "3"],
        &["PING"],
        &["PING"],
        &["SLOWLOG", "LEN"],
        &["CONFIG", "GET", "latency-monitor-threshold"],
        &["CONFIG", "SET", "latency-monitor-threshold", "100"],
        &["CONFIG", "GET", "latency-monitor-threshold"],
    ] {
        same_reply(&mut p, &mut r, args, 0).await;
    }
}

#[tokio::test]
async fn latency_monitor_shapes() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["LATENCY", "HISTORY", "command"]).await, "*0\r\n");
    assert_eq!(c.cmd(&["LATENCY", "RESET"]).await, ":0\r\n");
    let help = c.cmd(&["LATENCY", "HELP"]).await;
    assert!(help.starts_with("*13\r\n+LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"), "{help}");
    assert!(help.ends_with("+HELP\r\n+    Prints this help.\r\n"), "{help}");
    c.hello3().await;
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]).await, "*0\r\n");
}

/// `LATENCY HISTOGRAM` of one command: its name, calls and `(bound, cumulative count)`s.
type CommandHistogram = (String, i64, Vec<(i64, i64)>);

/// `LATENCY HISTOGRAM set get` as a map of command -> (calls, [(bound, cumulative)]),
/// checked for the shape Redis 7 gives it: `calls` and `histogram_usec`, bounds ascending,
/// only buckets that hold calls (so counts rise at each), ending at `calls`. Prism's
/// bounds are powers of two; Redis's HDR iterator sometimes reports a bucket's highest
/// value instead (33 for 32), so `powers_of_two` is for Prism only.
async fn latency_histogram(c: &mut redis::aio::MultiplexedConnection, powers_of_two: bool) -> Vec<CommandHistogram> {
    let reply: Value =
        redis::cmd("LATENCY").arg("HISTOGRAM").arg("set").arg("GET").query_async(c).await.expect("reply");
    let Value::Array(flat) = reply else { panic!("RESP2 map is a flat array: {reply:?}") };
    let mut out = Vec::new();
    for pair in flat.chunks(2) {
        let [Value::BulkString(name), Value::Array(body)] = pair else { panic!("{pair:?}") };
        let [Value::BulkString(k1), Value::Int(calls), Value::BulkString(k2), Value::Array(h)] = &body[..] else {
            panic!("{body:?}")
        };
        assert_eq!((k1.as_slice(), k2.as_slice()), (&b"calls"[..], &b"histogram_usec"[..]));
        let h: Vec<(i64, i64)> = h
            .chunks(2)
            .map(|b| match b {
                [Value::Int(bound), Value::Int(n)] => (*bound, *n),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(h.iter().all(|(b, _)| *b > 0 && (!powers_of_two || (*b as u64).is_power_of_two())), "{h:?}");
        assert!(h.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{h:?}");
        assert_eq!(h.last().map(|b| b.1), Some(*calls), "{h:?}");
        out.push((String::from_utf8_lossy(name).into_owned(), *calls, h));
    }
    out.sort();
    out
}

#[tokio::test]
async fn latency_histograms_and_latencystats_by_command() {
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let mut p = node.redis().await;
    let mut r = redis.redis().await;
    for c in [&mut p, &mut r] {
        for i in 0..5 {
            let _: () = redis::cmd("SET").arg(format!("k{i}")).arg("v").query_async(c).await.expect("SET");
        }
        let _: Option<String> = redis::cmd("GET").arg("k1").query_async(c).await.expect("GET");
    }
    // Same commands, calls and shape as redis-server; the buckets are timings.
    let (ph, rh) = (latency_histogram(&mut p, true).await, latency_histogram(&mut r, false).await);
    let calls = |h: &[CommandHistogram]| h.iter().map(|(n, c, _)| (n.clone(), *c)).collect::<Vec<_>>();
    assert_eq!(calls(&ph), vec![("get".to_string(), 1), ("set".to_string(), 5)]);
    assert_eq!(calls(&ph), calls(&rh));

    let mut raw = node.raw().await;
    let info = raw.cmd(&["INFO", "latencystats"]).await;
    assert!(payload(&info).starts_with("# Latencystats\r\n"), "{info}");
    let fields = info_line(&info, "latency_percentiles_usec_set").expect("a line for SET");
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["p50", "p99", "p99.9"]);
    let values: Vec<f64> = fields.iter().map(|(_, v)| v.parse().expect("a number")).collect();
    assert!(values[0] >= 1.0 && values[0] <= values[1] && values[1] <= values[2], "{values:?}");
    // Not in the default INFO (as in Redis 7), in INFO all.
    assert!(!payload(&raw.cmd(&["INFO"]).await).contains("# Latencystats"));
    assert!(payload(&raw.cmd(&["INFO", "all"]).await).contains("latency_percentiles_usec_get:"));
    // CONFIG RESETSTAT forgets them, as in Redis.
    assert_eq!(raw.cmd(&["CONFIG", "RESETSTAT"]).await, "+OK\r\n");
    assert!(info_line(&raw.cmd(&["INFO", "latencystats"]).await, "latency_percentiles_usec_set").is_none());
    assert_eq!(latency_histogram(&mut p, true).await, Vec::new());
    // An unknown command name is left out, not an error.
    assert_eq!(raw.cmd(&["LATENCY", "HISTOGRAM", "nosuchcommand"]).await, "*0\r\n");
}

#[tokio::test]
async fn client_tracking_is_recorded_as_redis_reports_it() {
    let node = TestNode::start().await;
    let redis = RealRedis::start().await;
    let (mut p, mut r) = (node.raw().await, redis.raw().await);
    let script: &[&[&str]] = &[
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "TRACKING", "on"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "TRACKING", "foo"],
        &["CLIENT", "TRACKING", "off", "x"],
        &["CLIENT", "TRACKING", "on", "PREFIX"],
        &["CLIENT", "TRACKING"],
        &["CLIENT", "TRACKING", "OFF"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "TRACKINGINFO"],
    ];
    for args in script {
        same_reply(&mut p, &mut r, args, 0).await;
    }
    let unsupported = p.cmd(&["CLIENT", "TRACKING", "on", "BCAST"]).await;
    assert_eq!(unsupported, "-ERR Prism does not support the CLIENT TRACKING option BCAST\r\n");
    assert_eq!(p.cmd(&["CLIENT", "GETREDIR"]).await, ":-1\r\n", "a refused TRACKING changes nothing");
    p.hello3().await;
    r.hello3().await;
    for args in script {
        same_reply(&mut p, &mut r, args, 0).await;
    }
}
