//! The cluster surface clients read on connect: CLUSTER KEYSLOT/INFO/MYID/SLOTS/SHARDS/
//! NODES/COUNTKEYSINSLOT/GETKEYSINSLOT and the COMMAND family, byte-exact in RESP2 and
//! RESP3, and the `redis` crate's cluster client working unchanged against one node.

use prism_tests::{bulk, RawClient, TestNode};
use redis::{AsyncCommands, Value};

/// A RESP3 verbatim text reply.
fn verbatim(text: &str) -> String {
    format!("={}\r\ntxt:{}\r\n", text.len() + 4, text)
}

/// The node's id, read with CLUSTER MYID.
async fn my_id(c: &mut RawClient) -> String {
    let reply = c.cmd(&["CLUSTER", "MYID"]).await;
    let id = reply.strip_prefix("$40\r\n").and_then(|r| r.strip_suffix("\r\n")).expect("a 40-byte bulk id");
    assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
    id.to_string()
}

#[tokio::test]
async fn keyslot_matches_redis() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["CLUSTER", "KEYSLOT", "foo"]).await, ":12182\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "KEYSLOT", "somekey"]).await, ":11058\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "KEYSLOT", "{user1000}.following"]).await, ":3443\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "KEYSLOT", "{user1000}.followers"]).await, ":3443\r\n");
    assert_eq!(c.cmd(&["cluster", "keyslot", "user1000"]).await, ":3443\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "KEYSLOT", "foo{}{bar}"]).await, ":8363\r\n");
    assert_eq!(
        c.cmd(&["CLUSTER", "KEYSLOT"]).await,
        "-ERR wrong number of arguments for 'cluster|keyslot' command\r\n"
    );
    assert_eq!(c.cmd(&["CLUSTER", "NOPE"]).await, "-ERR unknown subcommand 'NOPE'. Try CLUSTER HELP.\r\n");
    node.stop().await;
}

#[tokio::test]
async fn info_in_both_protocols() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let text = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
                cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:1\r\ncluster_size:1\r\n\
                cluster_current_epoch:1\r\ncluster_my_epoch:1\r\ncluster_stats_messages_sent:0\r\n\
                cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n";
    assert_eq!(c.cmd(&["CLUSTER", "INFO"]).await, bulk(text));
    c.hello3().await;
    assert_eq!(c.cmd(&["CLUSTER", "INFO"]).await, verbatim(text));
    node.stop().await;
}

#[tokio::test]
async fn myid_is_stable_and_matches_nodes_slots_shards() {
    let node = TestNode::start().await;
    let port = node.addr.port();
    let cport = port.wrapping_add(10000);
    let mut c = node.raw().await;
    let id = my_id(&mut c).await;
    let mut other = node.raw().await;
    assert_eq!(my_id(&mut other).await, id, "the id is the node's, not the connection's");
    let shard_id = c.cmd(&["CLUSTER", "MYSHARDID"]).await;
    assert!(shard_id.starts_with("$40\r\n"), "{shard_id}");

    let line = format!("{id} 127.0.0.1:{port}@{cport} myself,master - 0 0 1 connected 0-16383\n");
    assert_eq!(c.cmd(&["CLUSTER", "NODES"]).await, bulk(&line));

    let slots = format!("*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$40\r\n{id}\r\n*0\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "SLOTS"]).await, slots);

    let shard_node = |map: &str| {
        format!(
            "{map}\r\n$2\r\nid\r\n$40\r\n{id}\r\n$4\r\nport\r\n:{port}\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n\
             $8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
             $18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
        )
    };
    let shards2 =
        format!("*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n{}", shard_node("*14"));
    assert_eq!(c.cmd(&["CLUSTER", "SHARDS"]).await, shards2);

    c.hello3().await;
    assert_eq!(c.cmd(&["CLUSTER", "NODES"]).await, verbatim(&line));
    // RESP3 keeps SLOTS an array and its networking metadata an (empty) map.
    assert_eq!(c.cmd(&["CLUSTER", "SLOTS"]).await, slots.replace("*0\r\n", "%0\r\n"));
    let shards3 = format!("*1\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n{}", shard_node("%7"));
    assert_eq!(c.cmd(&["CLUSTER", "SHARDS"]).await, shards3);
    assert_eq!(c.cmd(&["CLUSTER", "MYID"]).await, bulk(&id));
    node.stop().await;
}

#[tokio::test]
async fn wildcard_bound_node_reports_the_address_the_client_used() {
    let node = TestNode::start_with(|c| c.bind = "0.0.0.0".parse().expect("ip")).await;
    let port = node.addr.port();
    let mut c = RawClient::connect(([127, 0, 0, 1], port).into()).await;
    let id = my_id(&mut c).await;
    let slots = format!("*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$40\r\n{id}\r\n*0\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "SLOTS"]).await, slots);
    let nodes = c.cmd(&["CLUSTER", "NODES"]).await;
    assert!(nodes.contains(&format!(" 127.0.0.1:{port}@")), "{nodes}");
    node.stop().await;
}

#[tokio::test]
async fn keys_in_slot_after_writes() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let slot = c.cmd(&["CLUSTER", "KEYSLOT", "t"]).await;
    let slot = slot.trim_start_matches(':').trim_end().to_string();
    assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot]).await, ":0\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot, "10"]).await, "*0\r\n");
    for k in ["{t}a", "{t}b", "{t}c"] {
        assert_eq!(c.cmd(&["SET", k, "v"]).await, "+OK\r\n");
    }
    assert_eq!(c.cmd(&["SET", "elsewhere", "v"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot]).await, ":3\r\n");
    let all = format!("*3\r\n{}{}{}", bulk("{t}a"), bulk("{t}b"), bulk("{t}c"));
    assert_eq!(c.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot, "10"]).await, all);
    assert_eq!(
        c.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot, "2"]).await,
        format!("*2\r\n{}{}", bulk("{t}a"), bulk("{t}b"))
    );
    assert_eq!(c.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot, "0"]).await, "*0\r\n");
    // A huge count is fine: only what exists is returned.
    assert_eq!(c.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot, "9223372036854775807"]).await, all);

    assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]).await, "-ERR Invalid slot\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "-1"]).await, "-ERR Invalid slot\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "x"]).await, "-ERR value is not an integer or out of range\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "GETKEYSINSLOT", "16384", "1"]).await, "-ERR Invalid slot or number of keys\r\n");
    assert_eq!(c.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot, "-1"]).await, "-ERR Invalid slot or number of keys\r\n");
    assert_eq!(
        c.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot, "many"]).await,
        "-ERR value is not an integer or out of range\r\n"
    );
    node.stop().await;
}

#[tokio::test]
async fn help_lists_subcommands() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let help = c.cmd(&["CLUSTER", "HELP"]).await;
    assert!(help.starts_with("*25\r\n+CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"), "{help}");
    assert!(help.ends_with("+HELP\r\n+    Print this help.\r\n"), "{help}");
    let help = c.cmd(&["COMMAND", "HELP"]).await;
    assert!(help.starts_with("*21\r\n+COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"), "{help}");
    node.stop().await;
}

#[tokio::test]
async fn command_count_and_list_follow_the_table() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let n = prism_server::table::all().count();
    assert_eq!(c.cmd(&["COMMAND", "COUNT"]).await, format!(":{n}\r\n"));
    let everything = c.cmd(&["COMMAND"]).await;
    assert!(everything.starts_with(&format!("*{n}\r\n*10\r\n")), "{}", &everything[..40]);

    let subs: usize = prism_server::table::all().map(|c| c.subcommands().len()).sum();
    let list = c.cmd(&["COMMAND", "LIST"]).await;
    assert!(list.starts_with(&format!("*{}\r\n", n + subs)), "{list}");
    for name in ["get", "command", "command|info", "cluster|slots"] {
        assert!(list.contains(&bulk(name)), "{name} missing from {list}");
    }
    let cluster = c.cmd(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "CLUSTER|S*"]).await;
    let expected = ["cluster|setslot", "cluster|shards", "cluster|slaves", "cluster|slots"].map(bulk).concat();
    assert_eq!(cluster, format!("*4\r\n{expected}"));
    assert_eq!(c.cmd(&["COMMAND", "LIST", "FILTERBY", "MODULE", "graph"]).await, "*0\r\n");
    let read = c.cmd(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "read"]).await;
    assert!(read.contains(&bulk("get")) && !read.contains(&bulk("set")), "{read}");
    assert_eq!(c.cmd(&["COMMAND", "LIST", "FILTERBY", "NOPE", "x"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["COMMAND", "LIST", "FILTERBY"]).await, "-ERR syntax error\r\n");
    // RESP3 through a strict decoder: every set holds only simple strings.
    c.hello3().await;
    assert!(c.cmd(&["COMMAND"]).await.starts_with(&format!("*{n}\r\n*10\r\n")));
    node.stop().await;
}

#[tokio::test]
async fn command_info_entries() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let keyslot =
        "*10\r\n$15\r\ncluster|keyslot\r\n:3\r\n*1\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n";
    assert_eq!(c.cmd(&["COMMAND", "INFO", "cluster|keyslot", "nope"]).await, format!("*2\r\n{keyslot}$-1\r\n"));

    let get = c.cmd(&["COMMAND", "INFO", "get"]).await;
    let key_spec = "*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n\
                    $12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n\
                    $9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n\
                    *6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n";
    let expected = format!(
        "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
         *3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n{key_spec}*0\r\n"
    );
    assert_eq!(get, expected);

    let mset = c.cmd(&["COMMAND", "INFO", "MSET"]).await;
    assert!(mset.contains(":1\r\n:-1\r\n:2\r\n"), "{mset}");
    assert!(mset.contains("$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n"), "{mset}");

    // A container lists its subcommands as full entries named container|sub.
    let cluster = c.cmd(&["COMMAND", "INFO", "cluster"]).await;
    assert!(cluster.starts_with("*1\r\n*10\r\n$7\r\ncluster\r\n:-2\r\n"), "{cluster}");
    assert!(cluster.contains("*10\r\n$15\r\ncluster|keyslot\r\n"), "{cluster}");

    c.hello3().await;
    let keyslot3 =
        "*10\r\n$15\r\ncluster|keyslot\r\n:3\r\n~1\r\n+stale\r\n:0\r\n:0\r\n:0\r\n~1\r\n+@slow\r\n~0\r\n*0\r\n~0\r\n";
    assert_eq!(c.cmd(&["COMMAND", "INFO", "CLUSTER|KEYSLOT", "nope"]).await, format!("*2\r\n{keyslot3}_\r\n"));
    let get3 = c.cmd(&["COMMAND", "INFO", "get"]).await;
    assert!(get3.contains("*1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n"), "{get3}");
    node.stop().await;
}

#[tokio::test]
async fn command_getkeys() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let ab = format!("*2\r\n{}{}", bulk("a"), bulk("b"));
    assert_eq!(c.cmd(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]).await, ab);
    assert_eq!(c.cmd(&["COMMAND", "GETKEYS", "get", "k"]).await, format!("*1\r\n{}", bulk("k")));
    assert_eq!(c.cmd(&["COMMAND", "GETKEYS", "NOPE", "a"]).await, "-ERR Invalid command specified\r\n");
    assert_eq!(c.cmd(&["COMMAND", "GETKEYS", "CLUSTER", "NOPE"]).await, "-ERR Invalid command specified\r\n");
    assert_eq!(
        c.cmd(&["COMMAND", "GETKEYS", "GET", "a", "b"]).await,
        "-ERR Invalid number of arguments specified for command\r\n"
    );
    assert_eq!(c.cmd(&["COMMAND", "GETKEYS", "PING"]).await, "-ERR The command has no key arguments\r\n");
    assert_eq!(
        c.cmd(&["COMMAND", "GETKEYS", "CLUSTER", "KEYSLOT", "x"]).await,
        "-ERR The command has no key arguments\r\n"
    );
    assert_eq!(
        c.cmd(&["COMMAND", "GETKEYS"]).await,
        "-ERR wrong number of arguments for 'command|getkeys' command\r\n"
    );
    assert_eq!(
        c.cmd(&["COMMAND", "GETKEYSANDFLAGS", "GET", "k"]).await,
        format!("*1\r\n*2\r\n{}*2\r\n+RO\r\n+access\r\n", bulk("k"))
    );
    node.stop().await;
}

#[tokio::test]
async fn command_docs() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    let keyslot = format!(
        "{}*8\r\n{}{}{}{}{}{}{}{}",
        bulk("cluster|keyslot"),
        bulk("summary"),
        bulk("Returns the hash slot for a key."),
        bulk("since"),
        bulk("3.0.0"),
        bulk("group"),
        bulk("cluster"),
        bulk("complexity"),
        bulk("O(N) where N is the number of bytes in the key"),
    );
    assert_eq!(c.cmd(&["COMMAND", "DOCS", "cluster|keyslot", "nope"]).await, format!("*2\r\n{keyslot}"));
    assert_eq!(c.cmd(&["COMMAND", "DOCS", "nope"]).await, "*0\r\n");
    let cluster = c.cmd(&["COMMAND", "DOCS", "cluster"]).await;
    // summary, since, group, complexity and the map of its 15 subcommands.
    assert!(cluster.starts_with(&format!("*2\r\n{}*10\r\n", bulk("cluster"))), "{cluster}");
    assert!(cluster.contains(&format!("{}*30\r\n", bulk("subcommands"))), "{cluster}");
    assert!(cluster.contains(&keyslot), "{cluster}");
    c.hello3().await;
    assert_eq!(c.cmd(&["COMMAND", "DOCS", "nope"]).await, "%0\r\n");
    assert!(c.cmd(&["COMMAND", "DOCS", "cluster|keyslot"]).await.starts_with("%1\r\n$15\r\ncluster|keyslot\r\n%4\r\n"));
    node.stop().await;
}

/// Every command's docs, parsed by a real client in both protocols: a map from name to a
/// map holding at least summary, since and group, containers with their subcommands.
#[tokio::test]
async fn command_docs_and_info_parse_in_a_real_client() {
    let node = TestNode::start().await;
    for protocol in ["resp2", "resp3"] {
        let client = redis::Client::open(format!("redis://{}/?protocol={protocol}", node.addr)).expect("client");
        let mut con = client.get_multiplexed_async_connection().await.expect("connect");

        let docs: Value = redis::cmd("COMMAND").arg("DOCS").query_async(&mut con).await.expect("docs");
        let docs = pairs(docs);
        assert_eq!(docs.len(), prism_server::table::all().count());
        for (name, doc) in docs {
            let fields: Vec<String> = pairs(doc).into_iter().map(|(k, _)| text(k)).collect();
            assert!(fields.starts_with(&["summary".into(), "since".into(), "group".into()]), "{name:?}: {fields:?}");
        }

        let all: Value = redis::cmd("COMMAND").query_async(&mut con).await.expect("command");
        let Value::Array(all) = all else { panic!("COMMAND is an array") };
        assert_eq!(all.len(), prism_server::table::all().count());
        for entry in all {
            let Value::Array(entry) = entry else { panic!("an entry is an array") };
            assert_eq!(entry.len(), 10);
        }
    }
    node.stop().await;
}

fn text(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b).expect("utf8"),
        Value::SimpleString(s) => s,
        other => panic!("not a string: {other:?}"),
    }
}

/// The pairs of a map, whether RESP3 sent a map or RESP2 a flat array.
fn pairs(v: Value) -> Vec<(Value, Value)> {
    match v {
        Value::Map(m) => m,
        Value::Array(items) => {
            assert!(items.len().is_multiple_of(2), "a flattened map has an even length");
            let mut it = items.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        other => panic!("not a map: {other:?}"),
    }
}

/// The `redis` crate's async cluster client, unchanged, against the single node: it reads
/// CLUSTER SLOTS, routes by slot, and everything lands on this node.
#[tokio::test]
async fn redis_cluster_client_works_unchanged() {
    let node = TestNode::start().await;
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}/", node.addr)]).expect("client");
    let mut con = client.get_async_connection().await.expect("cluster connect");

    for i in 0..200 {
        let _: () = con.set(format!("key:{i}"), i).await.expect("set");
    }
    for i in 0..200 {
        let v: i64 = con.get(format!("key:{i}")).await.expect("get");
        assert_eq!(v, i);
    }

    let _: () = con.set("{user1000}.following", "a").await.expect("set");
    let _: () = con.set("{user1000}.followers", "b").await.expect("set");
    let both: Vec<String> = con.mget(&["{user1000}.following", "{user1000}.followers"]).await.expect("mget");
    assert_eq!(both, vec!["a", "b"]);

    let (x, y): (i64, Option<String>) = redis::pipe()
        .cmd("INCR")
        .arg("{p}counter")
        .ignore()
        .cmd("INCR")
        .arg("{p}counter")
        .cmd("GET")
        .arg("{p}missing")
        .query_async(&mut con)
        .await
        .expect("pipeline");
    assert_eq!((x, y), (2, None));

    // Graph commands, routed by their first argument (the vertex id, the declared key).
    for i in 0..20 {
        let added: i64 = redis::cmd("E.ADD")
            .arg(format!("g:{i}"))
            .arg("next")
            .arg(format!("g:{}", i + 1))
            .arg("RANK")
            .arg(i)
            .query_async(&mut con)
            .await
            .expect("E.ADD");
        assert_eq!(added, 1);
    }
    for i in 1..=20 {
        let count: i64 = redis::cmd("E.COUNT")
            .arg(format!("g:{i}"))
            .arg("next")
            .arg("IN")
            .query_async(&mut con)
            .await
            .expect("count");
        assert_eq!(count, 1, "g:{i}");
    }
    let (cursor, rows): (String, Vec<(String, i64)>) =
        redis::cmd("E.RANGE").arg("g:7").arg("next").query_async(&mut con).await.expect("E.RANGE");
    assert_eq!((cursor.as_str(), rows), ("0", vec![("g:8".to_string(), 7)]));
    let khop: Vec<redis::Value> = redis::cmd("G.KHOP").arg("g:0").arg(2).query_async(&mut con).await.expect("G.KHOP");
    assert_eq!(khop.len(), 4, "{khop:?}");

    let mut raw = node.raw().await;
    assert_eq!(raw.cmd(&["GET", "key:199"]).await, bulk("199"));
    node.stop().await;
}
