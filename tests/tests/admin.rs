//! The admin HTTP port (`admin-port`) through real sockets: `/healthz`, `/readyz` and
//! `/metrics` on a standalone node and on every member of a three-node shard group, and
//! bad requests (unknown paths, other methods, oversized heads, too many connections)
//! that leave both the admin port and the client port serving.
//!
//! The HTTP client is a plain TcpStream writing HTTP/1.1 by hand (`Connection: close`,
//! read to EOF), so the server's framing is checked by an independent reader.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prism_server::config::AdminPort;
use prism_tests::fleet::{Fleet, FleetOptions};
use prism_tests::{RawClient, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP exchange: the status code, the headers (lower-case names) and the body.
struct HttpReply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// Sends `request` as is and reads the reply to EOF (the request asks to close).
async fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<HttpReply> {
    let mut s = tokio::time::timeout(HTTP_TIMEOUT, TcpStream::connect(addr)).await??;
    s.write_all(request).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(HTTP_TIMEOUT, s.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpReply { status, headers, body: body.to_string() })
}

async fn request(addr: SocketAddr, method: &str, path: &str) -> HttpReply {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: prism\r\nConnection: close\r\n\r\n");
    exchange(addr, req.as_bytes()).await.unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

async fn get(addr: SocketAddr, path: &str) -> HttpReply {
    request(addr, "GET", path).await
}

/// One sample of an OpenMetrics / Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses the exposition strictly enough to fail on a malformed line: every line is a
/// `#` comment (HELP, TYPE, UNIT, EOF) or `name{label="value",...} number`.
fn parse_metrics(text: &str) -> Vec<Sample> {
    assert!(text.trim_end().ends_with("# EOF"), "an OpenMetrics body ends with # EOF:\n{text}");
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let word = comment.split(' ').next().unwrap_or("");
            assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&word), "unexpected comment line: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"))),
            None => (series, ""),
        };
        assert!(
            name.starts_with("prism_") && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "bad metric name: {line}"
        );
        let mut map = HashMap::new();
        // Label values here never hold commas or quotes (ids, command names, codes).
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("bad label: {line}"));
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or_else(|| panic!("{line}"));
            map.insert(k.to_string(), v.to_string());
        }
        samples.push(Sample { name: name.to_string(), labels: map, value });
    }
    samples
}

/// The value of the one sample named `name` whose labels include `with`.
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    assert!(found.len() <= 1, "{name} {with:?} matches {} samples", found.len());
    found.first().map(|s| s.value)
}

async fn metrics(addr: SocketAddr) -> Vec<Sample> {
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ct = r.headers.get("content-type").cloned().unwrap_or_default();
    assert!(ct.starts_with("application/openmetrics-text"), "content-type {ct}");
    parse_metrics(&r.body)
}

async fn admin_node() -> (TestNode, SocketAddr) {
    let node = TestNode::start_with(|c| c.admin_port = AdminPort::Any).await;
    let admin = node.handle().admin_addr.expect("admin-port any listens");
    (node, admin)
}

#[tokio::test]
async fn standalone_node_is_healthy_ready_and_counts_commands() {
    let (node, admin) = admin_node().await;
    let health = get(admin, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(admin, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.starts_with("ready: standalone"), "{}", ready.body);
    // HEAD answers like GET, without a body.
    assert_eq!(request(admin, "HEAD", "/healthz").await.status, 200);

    let before = metrics(admin).await;
    let set_before = value(&before, "prism_commands_total", &[("command", "set")]).unwrap_or(0.0);
    let mut c = node.raw().await;
    for i in 0..7 {
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), "v"]).await, "+OK\r\n");
    }
    assert_eq!(c.cmd(&["GET", "k1"]).await, "$1\r\nv\r\n");
    assert_eq!(c.cmd(&["GET", "missing"]).await, "$-1\r\n");
    assert!(c.cmd(&["INCR", "k1"]).await.starts_with("-ERR"));
    let after = metrics(admin).await;
    let v =
        |name: &str, with: &[(&str, &str)]| value(&after, name, with).unwrap_or_else(|| panic!("no {name} {with:?}"));
    assert_eq!(v("prism_commands_total", &[("command", "set")]) - set_before, 7.0);
    assert_eq!(v("prism_commands_total", &[("command", "get")]), 2.0);
    assert_eq!(v("prism_commands_failed_total", &[("command", "incr")]), 1.0);
    assert_eq!(v("prism_errors_total", &[("kind", "ERR")]), 1.0);
    assert_eq!(v("prism_keys", &[]), 7.0);
    assert_eq!(v("prism_keyspace_hits_total", &[]), 1.0);
    assert_eq!(v("prism_keyspace_misses_total", &[]), 1.0);
    assert_eq!(v("prism_connected_clients", &[]), 1.0);
    assert!(v("prism_memory_used_bytes", &[]) > 0.0);
    assert_eq!(v("prism_maxmemory_bytes", &[]), 0.0);
    assert!(v("prism_command_duration_seconds_total", &[("command", "set")]) >= 0.0);
    // The latency histogram per command: cumulative buckets ending in +Inf = every call.
    let get_buckets: Vec<(f64, f64)> = after
        .iter()
        .filter(|s| {
            s.name == "prism_command_latency_seconds_bucket"
                && s.labels.get("command").map(String::as_str) == Some("get")
        })
        .map(|s| (s.labels["le"].parse::<f64>().unwrap_or(f64::INFINITY), s.value))
        .collect();
    assert_eq!(get_buckets.len(), 26, "le = 2^0..2^24 us and +Inf: {get_buckets:?}");
    assert!(get_buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "cumulative: {get_buckets:?}");
    assert_eq!(get_buckets.last().map(|b| b.1), Some(2.0));
    assert_eq!(v("prism_command_latency_seconds_count", &[("command", "get")]), 2.0);
    assert_eq!(v("prism_command_latency_seconds_count", &[("command", "set")]) - set_before, 7.0);
    // A standalone node commits nothing through Raft.
    assert!(after.iter().all(|s| !s.name.starts_with("prism_write_commit")));
    // Every series names the node, as CLUSTER MYID does.
    let myid = c.cmd(&["CLUSTER", "MYID"]).await;
    let myid = myid.lines().nth(1).unwrap_or_default().to_string();
    assert!(after.iter().all(|s| s.labels.get("node") == Some(&myid)), "node label is not {myid}");
    // No Raft series on a standalone node.
    assert!(after.iter().all(|s| !s.name.starts_with("prism_raft_")));
    // CONFIG GET names the port in use.
    let cfg = c.cmd(&["CONFIG", "GET", "admin-port"]).await;
    assert!(cfg.ends_with(&format!("\r\n{}\r\n", admin.port())), "{cfg}");
    node.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_the_node_keeps_serving() {
    let (node, admin) = admin_node().await;
    assert_eq!(get(admin, "/nope").await.status, 404);
    assert_eq!(get(admin, "/metrics/../healthz").await.status, 404);
    let post = request(admin, "POST", "/healthz").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.headers.get("allow").map(String::as_str), Some("GET, HEAD"));
    // Not HTTP at all.
    let junk = exchange(admin, b"\x00\x01 hello\r\n\r\n").await.expect("junk exchange");
    assert_eq!(junk.status, 400);
    // A request head over the 16 KiB bound: refused (431) or cut, never buffered whole.
    let big = format!("GET /healthz HTTP/1.1\r\nHost: prism\r\nX-Big: {}\r\n\r\n", "a".repeat(256 * 1024));
    match exchange(admin, big.as_bytes()).await {
        Ok(r) => assert!(r.status == 431 || r.status == 0, "oversized head answered {}", r.status),
        Err(e) => assert!(
            matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
            "oversized head: {e}"
        ),
    }
    // More idle connections than the bound: the extra ones are closed, and once they are
    // gone the port serves again.
    let mut idle = Vec::new();
    for _ in 0..prism_server::admin::MAX_CONNECTIONS + 8 {
        idle.push(TcpStream::connect(admin).await.expect("connect"));
    }
    let mut extra = idle.pop().expect("one");
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(HTTP_TIMEOUT, extra.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(closed, Ok(0) | Err(_)), "a connection over the bound is closed: {closed:?}");
    drop(idle);
    let mut served = false;
    for _ in 0..100 {
        if let Ok(r) = exchange(admin, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").await {
            if r.status == 200 {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the admin port serves again after the idle connections left");
    assert_eq!(get(admin, "/readyz").await.status, 200);
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
    node.stop().await;
}

#[tokio::test]
async fn admin_port_off_and_a_taken_port_fails_the_start() {
    let off = TestNode::start_with(|c| c.admin_port = AdminPort::Off).await;
    assert!(off.handle().admin_addr.is_none());
    // The default (auto) is off for a node whose client port the OS picks.
    let auto = TestNode::start().await;
    assert!(auto.handle().admin_addr.is_none());
    let (taken_node, taken) = admin_node().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = prism_server::Config { data_dir: dir.path().join("d"), ..Default::default() };
    config.port = 0;
    config.admin_port = AdminPort::Port(taken.port());
    let clock = std::sync::Arc::new(prism_engine::clock::ManualClock::new(0));
    let err = prism_server::start(config, clock).await.err().expect("a taken admin port fails the start");
    assert!(err.to_string().contains(&taken.port().to_string()), "{err}");
    for n in [off, auto, taken_node] {
        n.stop().await;
    }
}

/// Reads `CONFIG GET admin-port` from a node's client port.
async fn admin_port_of(client: SocketAddr) -> SocketAddr {
    let mut c = RawClient::connect(client).await;
    let reply = c.cmd(&["CONFIG", "GET", "admin-port"]).await;
    let port: u16 = reply.trim_end().rsplit("\r\n").next().and_then(|p| p.parse().ok()).unwrap_or(0);
    assert_ne!(port, 0, "admin port of {client}: {reply}");
    SocketAddr::new(client.ip(), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_of_a_group_is_ready_once_it_has_a_leader() {
    let extra_args = ["--raft-heartbeat-ms", "200", "--admin-port", "any"].map(String::from).to_vec();
    let fleet = Fleet::start(&FleetOptions { extra_args, ..Default::default() }).expect("fleet starts");
    let leader = fleet.wait_for_leader(None, Duration::from_secs(30)).expect("a leader is elected");
    let mut admins = Vec::new();
    for addr in fleet.client_addrs() {
        admins.push(admin_port_of(addr).await);
    }
    // Members learn of the leader by its heartbeats: poll, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, admin) in admins.iter().enumerate() {
        loop {
            let r = get(*admin, "/readyz").await;
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 503, "{}", r.body);
            assert!(r.body.starts_with("not ready: "), "{}", r.body);
            assert!(Instant::now() < deadline, "member {i} not ready within 20 s: {}", r.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(get(*admin, "/healthz").await.status, 200);
    }
    // A write through the leader shows in the Raft series of the leader and of each member.
    let mut c = RawClient::connect(fleet.client_addrs()[leader]).await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    let m = metrics(admins[leader]).await;
    let g = [("group", "0")];
    assert_eq!(value(&m, "prism_raft_is_leader", &g), Some(1.0));
    assert_eq!(value(&m, "prism_raft_leader_id", &g), Some((leader + 1) as f64));
    assert_eq!(value(&m, "prism_raft_ready", &g), Some(1.0));
    assert!(value(&m, "prism_raft_term", &g).unwrap_or(0.0) >= 1.0);
    // The SET's wait for its commit is in the write-commit histogram.
    assert!(value(&m, "prism_write_commit_seconds_count", &[]).unwrap_or(0.0) >= 1.0);
    assert!(value(&m, "prism_write_commit_seconds_sum", &[]).unwrap_or(0.0) > 0.0);
    let applied = value(&m, "prism_raft_applied_index", &g).expect("applied index");
    assert!(applied >= 1.0);
    let replicas: Vec<&Sample> = m.iter().filter(|s| s.name == "prism_raft_replica_lag_entries").collect();
    assert_eq!(replicas.len(), 2, "the leader reports both other members");
    for (i, admin) in admins.iter().enumerate().filter(|(i, _)| *i != leader) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = metrics(*admin).await;
            assert_eq!(value(&m, "prism_raft_is_leader", &g), Some(0.0));
            assert_eq!(value(&m, "prism_raft_leader_id", &g), Some((leader + 1) as f64));
            if value(&m, "prism_raft_applied_index", &g).unwrap_or(0.0) >= applied {
                break;
            }
            assert!(Instant::now() < deadline, "member {i} did not apply index {applied} within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every `prism_*` series the shipped alert rules and Grafana dashboard query is one a
/// node exposes (a leader of a three-member group with a cold store: Raft, replica and
/// tiering series included), so neither silently watches a name that does not exist.
#[tokio::test]
async fn shipped_alerts_and_dashboard_query_only_series_nodes_expose() {
    let cold = tempfile::tempdir().expect("tempdir");
    let store = cold.path().display().to_string();
    let extra_args = ["--admin-port", "any", "--cold-store", &store].map(String::from).to_vec();
    let fleet = Fleet::start(&FleetOptions { extra_args, ..Default::default() }).expect("fleet starts");
    let leader = fleet.wait_for_leader(None, Duration::from_secs(30)).expect("a leader is elected");
    let mut c = RawClient::connect(fleet.client_addrs()[leader]).await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    // prism_errors_total has a series once an error was answered.
    assert!(c.cmd(&["INCR", "k"]).await.starts_with("-ERR"));
    let mut exposed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // The leader's replica series appear once it has heard from both members: bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let admin = admin_port_of(fleet.client_addrs()[leader]).await;
    loop {
        let m = metrics(admin).await;
        exposed.extend(m.iter().map(|s| s.name.clone()));
        if m.iter().filter(|s| s.name == "prism_raft_replica_lag_entries").count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no replica series on the leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in ["deploy/prometheus/alerts.yml", "deploy/grafana/prism.json"] {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        let mut used: Vec<&str> = Vec::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("prism_") {
            let name = &rest[at..];
            let end = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(name.len());
            used.push(&name[..end]);
            rest = &name[end..];
        }
        assert!(used.len() > 5, "{file} queries prism series");
        let missing: Vec<&&str> = used.iter().filter(|n| !exposed.contains(**n)).collect();
        assert!(missing.is_empty(), "{file} queries series no node exposes: {missing:?}");
    }
}
