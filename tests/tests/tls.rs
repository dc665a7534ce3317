//! TLS end to end with the real binary and real clients: `redis-cli --tls` and redis-py
//! (`ssl=True`) on the TLS port, a plain-text client refused there (and counted), client
//! certificates under `tls-auth-clients yes`, TLS only with `port 0`, cluster replies
//! naming the TLS port to TLS clients, startup errors naming the key and path, and a
//! three-node group whose peers speak mutual TLS while a peer without a certificate from
//! the fleet's CA is refused and counted.
//!
//! Certificates are made per test with the `openssl` CLI (a throwaway CA, a node
//! certificate for localhost / 127.0.0.1 usable as server and client, and a "rogue"
//! certificate from another CA). Every wait is bounded; every process is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prism_tests::fleet::{Fleet, FleetOptions, RespConn};
use prism_tests::{free_port, prism_bin};
use redis_protocol::resp2::types::OwnedFrame;

const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The openssl config the certificates are made from: a CA profile and a leaf profile
/// usable as both server and client (peers are both).
const OPENSSL_CNF: &str = "[req]
distinguished_name = dn
prompt = no
[dn]
CN = Prism Test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier = keyid
";

/// Throwaway PKI in a temp dir: `ca`, `node` (signed by `ca`), `rogue` (signed by
/// another CA). Each name has `<name>.crt` and `<name>.key`.
struct Certs {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("run openssl (is it installed?)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("cnf"), OPENSSL_CNF).expect("write cnf");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "rogue-ca"] {
            let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &crt, "-days", "2", "-config", "cnf", "-extensions", "ca"]);
            args.extend(["-subj", "/CN=Prism Test CA"]);
            openssl(d, &args);
        }
        for (leaf, ca) in [("node", "ca"), ("rogue", "rogue-ca")] {
            let (key, csr, crt) = (format!("{leaf}.key"), format!("{leaf}.csr"), format!("{leaf}.crt"));
            let mut args = vec!["req", "-new"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &csr, "-config", "cnf", "-subj", "/CN=localhost"]);
            openssl(d, &args);
            let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_crt,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "2",
                    "-extfile",
                    "cnf",
                    "-extensions",
                    "leaf",
                ],
            );
        }
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().expect("utf-8 temp path").to_string()
    }

    /// The flags of a node serving `node.crt`, checking peers against `ca.crt`.
    fn node_flags(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (flag, file) in
            [("--tls-cert-file", "node.crt"), ("--tls-key-file", "node.key"), ("--tls-ca-cert-file", "ca.crt")]
        {
            v.push(flag.to_string());
            v.push(self.path(file));
        }
        v
    }
}

/// A prism process; killed on drop.
struct Prism {
    child: Child,
    _data: tempfile::TempDir,
}

impl Prism {
    /// Starts prism with `args` plus a fresh data dir and waits for its ready line.
    fn start(args: &[String]) -> Result<Prism, String> {
        let data = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(prism_bin())
            .args(args)
            .args(["--data-dir", data.path().to_str().expect("utf-8")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prism");
        let pipe = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel::<Result<(), String>>();
        std::thread::spawn(move || {
            let mut log = String::new();
            let mut ready = false;
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if !ready && line.contains("serving on ") {
                    ready = true;
                    let _ = tx.send(Ok(()));
                }
                log.push_str(&line);
                log.push('\n');
            }
            let _ = tx.send(Err(log));
        });
        match rx.recv_timeout(PROCESS_TIMEOUT) {
            Ok(Ok(())) => Ok(Prism { child, _data: data }),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                Err(match other {
                    Ok(Err(log)) => log,
                    _ => "no ready line in time".into(),
                })
            }
        }
    }

    /// Starts prism with a plain port and a TLS port (both free), plus `extra`.
    fn with_tls(certs: &Certs, extra: &[&str]) -> (Prism, u16, u16) {
        let mut last = String::new();
        for _ in 0..5 {
            let (port, tls) = (free_port(), free_port());
            let mut args: Vec<String> = vec!["--bind".into(), "127.0.0.1".into(), "--port".into(), port.to_string()];
            args.extend(["--tls-port".into(), tls.to_string()]);
            args.extend(certs.node_flags());
            args.extend(extra.iter().map(|s| s.to_string()));
            match Prism::start(&args) {
                Ok(p) => return (p, port, tls),
                Err(e) if e.contains("cannot listen") => last = e,
                Err(e) => panic!("prism did not start: {e}"),
            }
        }
        panic!("no free ports: {last}");
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client command, killed if it takes longer than [`PROCESS_TIMEOUT`].
fn run_bounded(cmd: &mut Command) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("client output")
}

/// `redis-cli --tls` against `port` with `tls_args`, one command; stdout and stderr.
fn cli_tls(port: u16, tls_args: &[String], cmd: &[&str]) -> String {
    let mut c = Command::new("redis-cli");
    c.args(["--tls", "-h", "127.0.0.1", "-p", &port.to_string()]).args(tls_args).args(cmd);
    let out = run_bounded(&mut c);
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn cli_plain(port: u16, cmd: &[&str]) -> String {
    let out = run_bounded(Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(cmd));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn info_field(port: u16, field: &str) -> u64 {
    let info = cli_plain(port, &["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{field}:")).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no {field} in INFO stats: {info}"))
}

/// A plain-text client sends PING to `port`: it must get no PONG, and the connection
/// must end (bounded wait).
fn assert_plain_text_refused(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(PROCESS_TIMEOUT)).expect("timeout");
    s.write_all(b"PING\r\n").expect("send");
    let mut answer = Vec::new();
    let r = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.contains("PONG"), "a plain-text client was answered on the TLS port: {text:?}");
    // Ends with EOF or a reset, never with our read timing out.
    if let Err(e) = r {
        assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the TLS port kept a plain-text client open"
        );
    }
}

fn ca_args(certs: &Certs) -> Vec<String> {
    vec!["--cacert".into(), certs.path("ca.crt")]
}

#[test]
fn redis_cli_over_tls_and_a_plain_text_client_is_refused() {
    let certs = Certs::new();
    let (_node, port, tls) = Prism::with_tls(&certs, &["--tls-auth-clients", "no"]);
    let ca = ca_args(&certs);
    assert_eq!(cli_tls(tls, &ca, &["PING"]).trim(), "PONG");
    assert_eq!(cli_tls(tls, &ca, &["SET", "k", "over-tls"]).trim(), "OK");
    assert_eq!(cli_tls(tls, &ca, &["GET", "k"]).trim(), "over-tls");
    // The same node's plain port sees the same data.
    assert_eq!(cli_plain(port, &["GET", "k"]).trim(), "over-tls");

    let rejected = info_field(port, "rejected_connections");
    assert_plain_text_refused(tls);
    // The refusal is counted once its task has run; bounded wait for it.
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while info_field(port, "rejected_connections") <= rejected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(port, "rejected_connections"), rejected + 1, "the refused client is counted");

    // Cluster replies name the port of the client's own kind (Redis 7.2).
    let over_tls = cli_tls(tls, &ca, &["CLUSTER", "SLOTS"]);
    assert!(over_tls.lines().any(|l| l.trim() == tls.to_string()), "TLS port in {over_tls}");
    let plain = cli_plain(port, &["CLUSTER", "SLOTS"]);
    assert!(plain.lines().any(|l| l.trim() == port.to_string()), "plain port in {plain}");
    let nodes = cli_tls(tls, &ca, &["CLUSTER", "NODES"]);
    assert!(nodes.contains(&format!(":{tls}@")), "{nodes}");
    let shards = cli_plain(port, &["CLUSTER", "SHARDS"]);
    assert!(shards.contains("tls-port") && shards.contains(&tls.to_string()), "{shards}");
}

#[test]
fn tls_auth_clients_yes_needs_a_certificate_from_the_ca() {
    let certs = Certs::new();
    let (_node, port, tls) = Prism::with_tls(&certs, &["--tls-auth-clients", "yes"]);
    let ca = ca_args(&certs);
    let without = cli_tls(tls, &ca, &["PING"]);
    assert!(!without.contains("PONG"), "a client without a certificate was served: {without}");
    let mut rogue = ca.clone();
    rogue.extend(["--cert".into(), certs.path("rogue.crt"), "--key".into(), certs.path("rogue.key")]);
    let with_rogue = cli_tls(tls, &rogue, &["PING"]);
    assert!(!with_rogue.contains("PONG"), "a certificate from another CA was accepted: {with_rogue}");
    let mut good = ca.clone();
    good.extend(["--cert".into(), certs.path("node.crt"), "--key".into(), certs.path("node.key")]);
    assert_eq!(cli_tls(tls, &good, &["SET", "k", "v"]).trim(), "OK");
    assert_eq!(cli_tls(tls, &good, &["GET", "k"]).trim(), "v");
    assert!(info_field(port, "rejected_connections") >= 2);
}

#[test]
fn redis_py_with_ssl() {
    let certs = Certs::new();
    let (_node, _port, tls) = Prism::with_tls(&certs, &["--tls-auth-clients", "optional"]);
    let python = std::env::var("PRISM_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!(
        "import redis\n\
         r = redis.Redis(host='127.0.0.1', port={tls}, ssl=True, ssl_ca_certs={ca:?}, \
         ssl_certfile={crt:?}, ssl_keyfile={key:?}, socket_timeout=10)\n\
         assert r.set('py', 'tls')\n\
         print(r.get('py').decode())\n\
         r2 = redis.Redis(host='127.0.0.1', port={tls}, ssl=True, ssl_ca_certs={ca:?}, socket_timeout=10)\n\
         print(r2.ping())\n",
        ca = certs.path("ca.crt"),
        crt = certs.path("node.crt"),
        key = certs.path("node.key"),
    );
    let out = run_bounded(Command::new(&python).args(["-c", &script]));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "redis-py over TLS failed: {stdout}{stderr}");
    // With a certificate, and (tls-auth-clients optional) without one.
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["tls", "True"], "{stderr}");
}

#[test]
fn port_0_serves_tls_only() {
    let certs = Certs::new();
    let tls = free_port();
    let mut args: Vec<String> = ["--bind", "127.0.0.1", "--port", "0", "--tls-auth-clients", "no", "--tls-port"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(tls.to_string());
    args.extend(certs.node_flags());
    let _node = Prism::start(&args).expect("prism starts TLS only");
    assert_eq!(cli_tls(tls, &ca_args(&certs), &["CONFIG", "GET", "port"]).trim(), "port\n0");
    assert_plain_text_refused(tls);
}

/// Asserts prism refuses to start with `args` and names every needle on stderr.
fn assert_refused(args: &[String], needles: &[&str]) {
    match Prism::start(args) {
        Ok(_) => panic!("prism {args:?} started"),
        Err(log) => {
            for n in needles {
                assert!(log.contains(n), "stderr of prism {args:?} does not mention {n:?}: {log}");
            }
        }
    }
}

#[test]
fn bad_tls_settings_are_startup_errors_naming_key_and_path() {
    let certs = Certs::new();
    let tls = free_port().to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> =
            ["--bind", "127.0.0.1", "--port", &free_port().to_string(), "--tls-port", &tls].map(String::from).to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let missing = certs.path("absent.crt");
    let (crt, key, rogue_key, ca) =
        (certs.path("node.crt"), certs.path("node.key"), certs.path("rogue.key"), certs.path("ca.crt"));
    assert_refused(
        &base(&["--tls-cert-file", &missing, "--tls-key-file", &key, "--tls-auth-clients", "no"]),
        &["tls-cert-file", &missing],
    );
    assert_refused(&base(&["--tls-key-file", &key, "--tls-auth-clients", "no"]), &["tls-cert-file is not set"]);
    // A key file holding no key (a certificate).
    assert_refused(
        &base(&["--tls-cert-file", &crt, "--tls-key-file", &ca, "--tls-auth-clients", "no"]),
        &["tls-key-file", &ca],
    );
    assert_refused(
        &base(&["--tls-cert-file", &crt, "--tls-key-file", &rogue_key, "--tls-auth-clients", "no"]),
        &["tls-key-file", &rogue_key],
    );
    // tls-auth-clients defaults to yes, which needs the CA.
    assert_refused(&base(&["--tls-cert-file", &crt, "--tls-key-file", &key]), &["tls-ca-cert-file"]);
    assert_refused(&["--port", "0"].map(String::from), &["port 0 is not allowed without a tls-port"]);
    assert_refused(
        &["--bind", "127.0.0.1", "--port", &free_port().to_string(), "--tls-cluster", "yes"].map(String::from),
        &["tls-cert-file"],
    );
}

fn admin_metric(admin: u16, name: &str) -> u64 {
    let mut s = TcpStream::connect(("127.0.0.1", admin)).expect("admin port");
    s.set_read_timeout(Some(PROCESS_TIMEOUT)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("metrics");
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or_else(|| panic!("no {name} in {body}"), |v| v as u64)
}

#[test]
fn a_peer_group_over_mutual_tls_elects_replicates_and_refuses_strangers() {
    let certs = Certs::new();
    let mut extra: Vec<String> = vec!["--raft-heartbeat-ms".into(), "500".into(), "--tls-cluster".into(), "yes".into()];
    extra.extend(certs.node_flags());
    let fleet = Fleet::start(&FleetOptions { extra_args: extra, ..Default::default() }).expect("fleet starts");
    let leader = fleet.wait_for_leader(None, PROCESS_TIMEOUT).expect("a leader is elected over TLS");
    let addrs = fleet.client_addrs();
    let mut l = RespConn::connect(addrs[leader], PROCESS_TIMEOUT).expect("leader");
    assert_eq!(l.call(&["SET", "k", "replicated"]).expect("SET"), OwnedFrame::SimpleString(b"OK".to_vec()));
    assert_eq!(l.call(&["WAIT", "2", "20000"]).expect("WAIT"), OwnedFrame::Integer(2), "both replicas have it");
    for (i, addr) in addrs.iter().enumerate().filter(|(i, _)| *i != leader) {
        let mut c = RespConn::connect(*addr, PROCESS_TIMEOUT).expect("replica");
        c.call(&["READONLY"]).expect("READONLY");
        // Durable there (WAIT), applied once the follower hears the commit index.
        let want = OwnedFrame::BulkString(b"replicated".to_vec());
        let mut got = None;
        for _ in 0..200 {
            got = c.call(&["GET", "k"]).ok();
            if got.as_ref() == Some(&want) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(got, Some(want), "node {} applies the write", i + 1);
    }
    drop(fleet);

    // A one-node group with an admin port, to watch its refusals: a stranger without a
    // certificate, one with a certificate from another CA, and a plain-text peer.
    let (port, peer, admin) = (free_port(), free_port(), free_port());
    let mut args: Vec<String> =
        ["--bind", "127.0.0.1", "--node-id", "1", "--tls-cluster", "yes"].map(String::from).to_vec();
    args.extend(["--port".into(), port.to_string(), "--admin-port".into(), admin.to_string()]);
    args.extend(["--raft-group".into(), format!("1@127.0.0.1:{port}@{peer}")]);
    args.extend(certs.node_flags());
    let _node = Prism::start(&args).expect("a one-node TLS group starts");
    let failures = "prism_peer_auth_failures_total";
    assert_eq!(admin_metric(admin, failures), 0);
    let peer_addr = format!("127.0.0.1:{peer}");
    let s_client = |extra: &[String]| {
        let mut c = Command::new("openssl");
        c.args(["s_client", "-connect", &peer_addr, "-CAfile", &certs.path("ca.crt")]).args(extra);
        let out = run_bounded(&mut c);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    s_client(&[]);
    s_client(&["-cert".into(), certs.path("rogue.crt"), "-key".into(), certs.path("rogue.key")]);
    assert_plain_text_refused(peer);
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while admin_metric(admin, failures) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(admin_metric(admin, failures), 3, "each stranger is refused and counted");
    // The node still serves (its one-member group elects itself).
    let client: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut c = RespConn::connect(client, PROCESS_TIMEOUT).expect("client");
    let mut ok = false;
    for _ in 0..200 {
        if c.call(&["SET", "x", "1"]).ok() == Some(OwnedFrame::SimpleString(b"OK".to_vec())) {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok, "the node serves writes after refusing strangers");
}
