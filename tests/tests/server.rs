//! Server and admin commands over a real socket: INFO, CONFIG, CLIENT, TIME, DBSIZE,
//! FLUSHDB/FLUSHALL and WAIT, in RESP2 and RESP3.

use prism_engine::clock::Clock;
use prism_tests::{bulk, RawClient, TestNode};

/// The text of a bulk (RESP2) or verbatim (RESP3) reply.
fn payload(reply: &str) -> &str {
    let body = reply.split_once("\r\n").map(|(_, b)| b).unwrap_or("");
    let body = body.strip_suffix("\r\n").unwrap_or(body);
    body.strip_prefix("txt:").unwrap_or(body)
}

/// The value of `field` in an INFO reply.
fn field(reply: &str, name: &str) -> Option<String> {
    payload(reply).split("\r\n").find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::to_string)
}

fn num(reply: &str, name: &str) -> u64 {
    let v = field(reply, name).unwrap_or_else(|| panic!("INFO has no {name}: {reply}"));
    v.parse().unwrap_or_else(|_| panic!("{name}:{v} is not a number"))
}

/// `key=value` from a CLIENT INFO / CLIENT LIST line.
fn client_field(line: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    line.split(' ').find_map(|kv| kv.strip_prefix(prefix.as_str())).unwrap_or_default().trim_end().to_string()
}

async fn client_addr(c: &mut RawClient) -> String {
    let info = c.cmd(&["CLIENT", "INFO"]).await;
    client_field(payload(&info), "addr")
}

#[tokio::test]
async fn info_sections_in_redis_order() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let all = c.cmd(&["INFO"]).await;
    let headers: Vec<&str> = payload(&all).split("\r\n").filter(|l| l.starts_with('#')).collect();
    let expected = [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Errorstats",
        "# Cluster",
        "# Keyspace",
    ];
    assert_eq!(headers, expected);
    // A blank line separates sections; the last field line ends the reply.
    assert!(payload(&all).contains("\r\n\r\n# Clients\r\n"), "{all}");
    // As Redis 7.0: `default` is the plain INFO; `all` and `everything` add Commandstats
    // and Latencystats.
    let mut with_commandstats = expected.to_vec();
    with_commandstats.insert(7, "# Commandstats");
    // ... Latencystats after Errorstats (Redis 7.0) ...
    let errorstats = with_commandstats.iter().position(|s| *s == "# Errorstats").expect("errorstats");
    with_commandstats.insert(errorstats + 1, "# Latencystats");
    // ... and Prism's cold tier section (docs/tiering.md).
    with_commandstats.push("# Tiering");
    for (arg, want) in [
        ("default", &expected[..]),
        ("all", &with_commandstats[..]),
        ("everything", &with_commandstats[..]),
        ("ALL", &with_commandstats[..]),
    ] {
        let reply = c.cmd(&["INFO", arg]).await;
        let got: Vec<&str> = payload(&reply).split("\r\n").filter(|l| l.starts_with('#')).collect();
        assert_eq!(got, want, "INFO {arg}");
    }
    // Several sections at once, printed in Redis order whatever the request order.
    let two = c.cmd(&["INFO", "cluster", "REPLICATION"]).await;
    let body = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n";
    assert!(payload(&two).starts_with(body), "{two}");
    assert!(payload(&two).ends_with("master_repl_offset:0\r\n\r\n# Cluster\r\ncluster_enabled:1\r\n"), "{two}");
    // Sections Prism does not have add nothing.
    assert_eq!(c.cmd(&["INFO", "nosuchsection"]).await, "$0\r\n\r\n");
    assert_eq!(c.cmd(&["INFO", "keyspace"]).await, bulk("# Keyspace\r\n"));
    node.stop().await;
}

#[tokio::test]
async fn info_reports_real_values() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let mut other = node.raw().await;
    assert_eq!(other.cmd(&["PING"]).await, "+PONG\r\n");

    let server = c.cmd(&["INFO", "server"]).await;
    assert_eq!(field(&server, "redis_version").as_deref(), Some("7.2.4"));
    assert_eq!(field(&server, "prism_version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(field(&server, "redis_mode").as_deref(), Some("cluster"));
    assert_eq!(num(&server, "tcp_port"), node.addr.port() as u64);
    assert_eq!(num(&server, "process_id"), std::process::id() as u64);
    assert_eq!(num(&server, "server_time_usec"), node.clock.now_ms() * 1000);
    assert_eq!(field(&server, "run_id").map(|s| s.len()), Some(40));
    assert_eq!(num(&server, "hz"), 10);

    let clients = c.cmd(&["INFO", "clients"]).await;
    assert_eq!(num(&clients, "connected_clients"), 2);
    assert_eq!(num(&clients, "maxclients"), 10_000);
    drop(other);

    assert_eq!(c.cmd(&["SET", "a", "1"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "b", "2", "EX", "100"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "{a}c", "3"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["INFO", "keyspace"]).await, bulk("# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n"));

    let memory = c.cmd(&["INFO", "memory"]).await;
    let used = num(&memory, "used_memory");
    assert!(used > 0);
    assert!(num(&memory, "used_memory_peak") >= used);
    assert_eq!(num(&memory, "maxmemory"), 0);
    assert_eq!(field(&memory, "maxmemory_human").as_deref(), Some("0B"));
    assert_eq!(field(&memory, "maxmemory_policy").as_deref(), Some("noeviction"));
    assert!(num(&memory, "used_memory_rss") > 0);
    assert_eq!(c.cmd(&["FLUSHALL"]).await, "+OK\r\n");
    let after = c.cmd(&["INFO", "memory"]).await;
    assert!(num(&after, "used_memory") < used);
    assert!(num(&after, "used_memory_peak") >= used, "the peak outlives the flush");

    let cpu = c.cmd(&["INFO", "cpu"]).await;
    assert!(field(&cpu, "used_cpu_user").is_some_and(|v| v.parse::<f64>().is_ok()), "{cpu}");
    assert!(field(&cpu, "used_cpu_sys").is_some_and(|v| v.parse::<f64>().is_ok()), "{cpu}");
    node.stop().await;
}

#[tokio::test]
async fn info_stats_count_commands_hits_and_errors() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"));
    assert_eq!(c.cmd(&["GET", "nope"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["WAIT", "x", "0"]).await, "-ERR value is not an integer or out of range\r\n");
    let stats = c.cmd(&["INFO", "stats"]).await;
    assert_eq!(num(&stats, "total_connections_received"), 1);
    // SET, GET, GET, WAIT; INFO counts once it has run, as in Redis.
    assert_eq!(num(&stats, "total_commands_processed"), 4);
    assert_eq!(num(&stats, "keyspace_hits"), 1);
    assert_eq!(num(&stats, "keyspace_misses"), 1);
    assert_eq!(num(&stats, "total_error_replies"), 1);
    assert_eq!(num(&stats, "rejected_connections"), 0);
    assert!(num(&stats, "total_net_input_bytes") > 0);
    assert!(num(&stats, "total_net_output_bytes") > 0);

    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]).await, "+OK\r\n");
    let stats = c.cmd(&["INFO", "stats"]).await;
    assert_eq!(num(&stats, "total_connections_received"), 0);
    assert_eq!(num(&stats, "total_commands_processed"), 1, "CONFIG RESETSTAT itself");
    assert_eq!(num(&stats, "keyspace_hits"), 0);
    assert_eq!(num(&stats, "keyspace_misses"), 0);
    assert_eq!(num(&stats, "total_error_replies"), 0);
    node.stop().await;
}

#[tokio::test]
async fn info_is_verbatim_in_resp3() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.hello3().await;
    let text = "# Cluster\r\ncluster_enabled:1\r\n";
    assert_eq!(c.cmd(&["INFO", "cluster"]).await, format!("={}\r\ntxt:{text}\r\n", text.len() + 4));
    node.stop().await;
}

#[tokio::test]
async fn config_get_and_set() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["CONFIG", "GET", "maxmemory"]).await, "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "1mb"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["CONFIG", "GET", "MAXMEMORY"]).await, "*2\r\n$9\r\nmaxmemory\r\n$7\r\n1048576\r\n");
    // Globs cover the real keys and the read-only compatibility values, once each.
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "max*", "maxclients"]).await,
        "*6\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n$9\r\nmaxmemory\r\n$7\r\n1048576\r\n\
         $16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n"
    );
    assert_eq!(c.cmd(&["CONFIG", "GET", "nosuch*"]).await, "*0\r\n");
    let dir = c.cmd(&["CONFIG", "GET", "dir"]).await;
    assert!(dir.starts_with("*2\r\n$3\r\ndir\r\n") && dir.contains("data"), "{dir}");
    let all = c.cmd(&["CONFIG", "GET", "*"]).await;
    assert!(all.contains("$7\r\ntimeout\r\n") && all.contains("$15\r\ncluster-enabled\r\n$3\r\nyes\r\n"), "{all}");

    // Several keys at once.
    assert_eq!(c.cmd(&["CONFIG", "SET", "timeout", "30", "hz", "20"]).await, "+OK\r\n");
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "timeout", "hz"]).await,
        "*4\r\n$7\r\ntimeout\r\n$2\r\n30\r\n$2\r\nhz\r\n$2\r\n20\r\n"
    );
    assert_eq!(num(&c.cmd(&["INFO", "server"]).await, "hz"), 20);
    node.stop().await;
}

#[tokio::test]
async fn config_set_errors_change_nothing() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "port", "7000"]).await,
        "-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "dir", "/tmp"]).await,
        "-ERR CONFIG SET failed (possibly related to argument 'dir') - can't set immutable config\r\n"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "nosuch", "1"]).await,
        "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxmemory", "lots"]).await,
        "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - 'lots' is not a size (examples: 1048576, 64mb, 2gb)\r\n"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "hz", "5", "HZ", "6"]).await,
        "-ERR CONFIG SET failed (possibly related to argument 'HZ') - duplicate parameter\r\n"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxclients", "50", "timeout"]).await,
        "-ERR wrong number of arguments for 'config|set' command\r\n"
    );
    // All or nothing: the good first value is not applied when the second is bad.
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxclients", "50", "hz", "0"]).await,
        "-ERR CONFIG SET failed (possibly related to argument 'hz') - must be between 1 and 500\r\n"
    );
    assert_eq!(c.cmd(&["CONFIG", "GET", "maxclients"]).await, "*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n");
    // A compatibility value may be "set" to what it already is, and to nothing else.
    assert_eq!(c.cmd(&["CONFIG", "SET", "save", ""]).await, "+OK\r\n");
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "appendonly", "yes"]).await,
        "-ERR CONFIG SET failed (possibly related to argument 'appendonly') - can't set immutable config\r\n"
    );
    assert_eq!(c.cmd(&["CONFIG", "GET"]).await, "-ERR wrong number of arguments for 'config|get' command\r\n");
    assert_eq!(c.cmd(&["CONFIG", "NOPE"]).await, "-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n");
    let help = c.cmd(&["CONFIG", "HELP"]).await;
    assert!(help.starts_with("*9\r\n+CONFIG <subcommand>"), "{help}");
    node.stop().await;
}

#[tokio::test]
async fn maxmemory_set_at_runtime_refuses_writes() {
    // No cold tier (`cold-store none`): Redis's noeviction. With one, writes over the
    // limit wait for the spiller instead (tests/tests/tier.rs).
    let node = TestNode::start_with(|c| c.cold_store = Some("none".into())).await;
    let mut c = node.raw().await;
    for i in 0..20 {
        let key = format!("key:{i}");
        assert_eq!(c.cmd(&["SET", &key, "some value"]).await, "+OK\r\n");
    }
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "100"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "more", "x"]).await, "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
    assert_eq!(c.cmd(&["GET", "key:1"]).await, bulk("some value"), "reads still work");
    assert_eq!(num(&c.cmd(&["INFO", "memory"]).await, "maxmemory"), 100);
    // Freeing memory lets writes through again; FLUSHALL is not refused under OOM.
    assert_eq!(c.cmd(&["FLUSHALL"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "more", "x"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await, "+OK\r\n");
    node.stop().await;
}

#[tokio::test]
async fn config_get_is_a_map_in_resp3() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.hello3().await;
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxmemory", "hz"]).await,
        "%2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n$2\r\nhz\r\n$2\r\n10\r\n"
    );
    assert_eq!(c.cmd(&["CONFIG", "GET", "nosuch"]).await, "%0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn client_names_and_info() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let id = c.cmd(&["CLIENT", "ID"]).await;
    assert!(id.starts_with(':'), "{id}");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "alice"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, bulk("alice"));
    assert_eq!(
        c.cmd(&["CLIENT", "SETNAME", "a b"]).await,
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, bulk("alice"));

    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "lib-ver", "5.0.1"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "lib-os", "x"]).await, "-ERR Unrecognized option 'lib-os'\r\n");
    assert_eq!(
        c.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "a\nb"]).await,
        "-ERR LIB-NAME cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(c.cmd(&["CLIENT", "NO-EVICT", "on"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["CLIENT", "NO-TOUCH", "maybe"]).await, "-ERR syntax error\r\n");

    let info = c.cmd(&["CLIENT", "INFO"]).await;
    let line = payload(&info);
    assert!(line.ends_with('\n'));
    assert_eq!(format!(":{}\r\n", client_field(line, "id")), id);
    assert_eq!(client_field(line, "name"), "alice");
    assert_eq!(client_field(line, "lib-name"), "redis-py");
    assert_eq!(client_field(line, "lib-ver"), "5.0.1");
    assert_eq!(client_field(line, "flags"), "e");
    assert_eq!(client_field(line, "cmd"), "client|info");
    assert_eq!(client_field(line, "addr"), c.stream.local_addr().expect("addr").to_string());

    // An empty name clears it.
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", ""]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, "$-1\r\n");
    let help = c.cmd(&["CLIENT", "HELP"]).await;
    assert!(help.contains("+CLIENT <subcommand>"), "{help}");
    node.stop().await;
}

#[tokio::test]
async fn client_list_filters() {
    let node = TestNode::start().await;
    let mut a = node.raw().await;
    let mut b = node.raw().await;
    assert_eq!(b.cmd(&["CLIENT", "SETNAME", "bob"]).await, "+OK\r\n");
    let b_id = b.cmd(&["CLIENT", "ID"]).await.trim_start_matches(':').trim_end().to_string();

    let list = a.cmd(&["CLIENT", "LIST"]).await;
    let lines: Vec<&str> = payload(&list).lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines.iter().any(|l| client_field(l, "name") == "bob"));
    assert_eq!(payload(&a.cmd(&["CLIENT", "LIST", "TYPE", "normal"]).await).lines().count(), 2);
    assert_eq!(a.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]).await, "$0\r\n\r\n");
    assert_eq!(a.cmd(&["CLIENT", "LIST", "TYPE", "odd"]).await, "-ERR Unknown client type 'odd'\r\n");
    let only_b = a.cmd(&["CLIENT", "LIST", "ID", &b_id, "999999"]).await;
    assert_eq!(payload(&only_b).lines().count(), 1);
    assert_eq!(client_field(payload(&only_b), "name"), "bob");
    assert_eq!(a.cmd(&["CLIENT", "LIST", "ID", "x"]).await, "-ERR Invalid client ID\r\n");
    assert_eq!(a.cmd(&["CLIENT", "LIST", "NAME"]).await, "-ERR syntax error\r\n");

    a.hello3().await;
    let list = a.cmd(&["CLIENT", "LIST"]).await;
    assert!(list.starts_with('=') && list.contains("\r\ntxt:id="), "{list}");
    node.stop().await;
}

#[tokio::test]
async fn client_kill_closes_connections() {
    let node = TestNode::start().await;
    let mut a = node.raw().await;
    let mut b = node.raw().await;
    let b_addr = client_addr(&mut b).await;

    // Old form: by address, +OK.
    assert_eq!(a.cmd(&["CLIENT", "KILL", &b_addr]).await, "+OK\r\n");
    assert!(b.closed().await, "the killed client sees EOF");
    assert_eq!(a.cmd(&["CLIENT", "KILL", &b_addr]).await, "-ERR No such client\r\n");

    // New form: filters, a count.
    let mut d = node.raw().await;
    let d_id = d.cmd(&["CLIENT", "ID"]).await.trim_start_matches(':').trim_end().to_string();
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ID", &d_id, "TYPE", "normal", "USER", "default"]).await, ":1\r\n");
    assert!(d.closed().await);
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ID", &d_id]).await, ":0\r\n");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ID", "0"]).await, "-ERR client-id should be greater than 0\r\n");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "TYPE", "x"]).await, "-ERR Unknown client type 'x'\r\n");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "USER", "bob"]).await, "-ERR No such user 'bob'\r\n");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "SKIPME", "maybe"]).await, "-ERR syntax error\r\n");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ID", "1", "SKIPME"]).await, "-ERR syntax error\r\n");

    // SKIPME defaults to yes: the caller survives killing every normal client.
    let mut e = node.raw().await;
    assert_eq!(e.cmd(&["PING"]).await, "+PONG\r\n");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "TYPE", "normal"]).await, ":1\r\n");
    assert!(e.closed().await);
    assert_eq!(a.cmd(&["PING"]).await, "+PONG\r\n");

    // Killing yourself: the reply arrives, then the connection closes.
    let a_addr = client_addr(&mut a).await;
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ADDR", &a_addr, "SKIPME", "no"]).await, ":1\r\n");
    assert!(a.closed().await);

    let mut f = node.raw().await;
    let list = f.cmd(&["CLIENT", "LIST"]).await;
    assert_eq!(payload(&list).lines().count(), 1, "killed clients are gone: {list}");
    node.stop().await;
}

#[tokio::test]
async fn time_follows_the_node_clock() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let expect = |ms: u64| {
        let (s, us) = ((ms / 1000).to_string(), ((ms % 1000) * 1000).to_string());
        format!("*2\r\n{}{}", bulk(&s), bulk(&us))
    };
    assert_eq!(c.cmd(&["TIME"]).await, expect(node.clock.now_ms()));
    node.clock.advance_ms(2_345);
    assert_eq!(c.cmd(&["TIME"]).await, expect(node.clock.now_ms()));
    assert_eq!(c.cmd(&["TIME", "x"]).await, "-ERR wrong number of arguments for 'time' command\r\n");
    node.stop().await;
}

#[tokio::test]
async fn dbsize_and_flush() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["DBSIZE"]).await, ":0\r\n");
    for k in ["a", "b", "c"] {
        assert_eq!(c.cmd(&["SET", k, "v"]).await, "+OK\r\n");
    }
    assert_eq!(c.cmd(&["DBSIZE"]).await, ":3\r\n");
    assert_eq!(c.cmd(&["FLUSHDB", "ASYNC"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["SET", "a", "v"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["FLUSHALL", "now"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["FLUSHALL", "SYNC", "ASYNC"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]).await, ":1\r\n", "a bad FLUSHALL changes nothing");
    assert_eq!(c.cmd(&["FLUSHALL", "sync"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["GET", "a"]).await, "$-1\r\n");
    node.stop().await;
}

#[tokio::test]
async fn wait_without_replicas() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["WAIT", "0", "0"]).await, ":0\r\n");
    // No replica can acknowledge, so WAIT answers at once instead of blocking.
    assert_eq!(c.cmd(&["WAIT", "1", "0"]).await, ":0\r\n");
    assert_eq!(c.cmd(&["WAIT", "1", "-1"]).await, "-ERR timeout is negative\r\n");
    assert_eq!(c.cmd(&["WAIT", "1", "x"]).await, "-ERR timeout is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["WAIT", "1"]).await, "-ERR wrong number of arguments for 'wait' command\r\n");
    node.stop().await;
}
