//! The real `prism` binary as an operator runs it: startup errors that name the problem
//! and exit non-zero, a config file that is honoured, flags that win over it, a clean exit
//! on SIGTERM, and `--requirepass-file`.
//!
//! The binary belongs to prism-server, which this crate cannot depend on as an artifact,
//! so it is found beside this test's own executable (`target/<profile>/prism`). `PRISM_BIN`
//! names it explicitly (scripts/test sets it after building the whole workspace);
//! without it, the first test in the process runs `cargo build -p prism-server --bin prism`
//! for the same profile, so a stale binary is never tested.
//!
//! Every wait is bounded (a failure, never a measurement): a process that does not start,
//! does not exit, or keeps running after a startup error fails the test and is killed.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prism_tests::{free_port, prism_bin, RawClient, REPLY_TIMEOUT};

/// Longest a process may take to start serving or to exit.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs prism with `args` and waits for it to exit on its own; fails if it keeps running.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(prism_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prism");
    let status = wait_bounded(&mut child).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("prism {args:?} kept running instead of refusing to start");
    });
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    (status, stderr)
}

fn wait_bounded(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Asserts a startup failure: a non-zero exit, and stderr naming every `needle`.
fn assert_refused(args: &[&str], needles: &[&str]) {
    let (status, stderr) = run_to_exit(args);
    assert!(!status.success(), "prism {args:?} exited {status}; stderr: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr of prism {args:?} does not mention {needle:?}: {stderr}");
    }
}

/// A prism process serving clients; killed on drop if still running.
struct Prism {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Prism {
    /// Starts prism with `args` (which must choose the port) and waits until it serves.
    fn start(args: &[&str]) -> Result<Prism, String> {
        let mut child = Command::new(prism_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prism");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        let pipe = child.stderr.take().expect("stderr");
        let log = stderr.clone();
        // Drains stderr for the whole life of the process so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("serving on ").nth(1) {
                    let _ = ready_tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
                let mut log = log.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let ready = ready_rx.recv_timeout(PROCESS_TIMEOUT);
        if let Ok(Ok(addr)) = ready.as_ref().map(|a| a.parse()) {
            return Ok(Prism { child, addr, stderr });
        }
        let _ = child.kill();
        let _ = child.wait();
        // The reader thread may still be appending the last lines.
        std::thread::sleep(Duration::from_millis(50));
        let text = stderr.lock().expect("log").clone();
        match ready {
            Ok(addr) => Err(format!("bad address {addr:?} in the ready line: {text}")),
            Err(_) => Err(text),
        }
    }

    /// Starts prism on a free port, retrying if another process took the port first.
    fn start_on_free_port(extra: &[&str]) -> Prism {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port().to_string();
            let mut args = vec!["--port", port.as_str()];
            args.extend_from_slice(extra);
            match Prism::start(&args) {
                Ok(p) => return p,
                Err(e) if e.contains("cannot listen") => last = e,
                Err(e) => panic!("prism did not start: {e}"),
            }
        }
        panic!("prism found no free port: {last}");
    }

    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("sh").args(["-c", "kill -TERM \"$1\"", "sh", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        wait_bounded(&mut self.child).unwrap_or_else(|| {
            panic!("prism did not exit within {PROCESS_TIMEOUT:?} of SIGTERM; stderr: {}", self.stderr())
        })
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("log").clone()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn unknown_key_in_config_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("prism.toml");
    std::fs::write(&file, "maxclients = 100\nnosuch-key = 1\n").expect("write config");
    assert_refused(&["--config", path_str(&file)], &[path_str(&file), "unknown config key 'nosuch-key'"]);
}

#[test]
fn malformed_config_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("prism.toml");
    std::fs::write(&file, "port = \n").expect("write config");
    assert_refused(&["--config", path_str(&file)], &[path_str(&file)]);
    let missing = dir.path().join("absent.toml");
    assert_refused(&["--config", path_str(&missing)], &["cannot read config file", path_str(&missing)]);
}

#[test]
fn bad_flag_values_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = path_str(&data);
    assert_refused(&["--data-dir", data, "--maxmemory", "lots"], &["maxmemory", "'lots'"]);
    assert_refused(&["--data-dir", data, "--port", "0"], &["--port", "port 0 is not allowed"]);
    assert_refused(&["--data-dir", data, "--port", "70000"], &["--port", "'70000'"]);
    assert!(!data_dir_has_node_id(dir.path()), "a refused start must not leave state behind");
}

fn data_dir_has_node_id(dir: &Path) -> bool {
    dir.join("data").join("node.id").exists()
}

#[test]
fn port_in_use_names_the_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let data = dir.path().join("data");
    assert_refused(&["--port", &port, "--data-dir", path_str(&data)], &[&format!("cannot listen on 127.0.0.1:{port}")]);
}

#[test]
fn unreadable_password_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = path_str(&data);
    let missing = dir.path().join("no-such-password");
    assert_refused(
        &["--port", &free_port().to_string(), "--data-dir", data, "--requirepass-file", path_str(&missing)],
        &["requirepass-file", path_str(&missing)],
    );
    // A directory cannot be read as a file, even by root (for whom chmod 000 is no bar).
    assert_refused(
        &["--port", &free_port().to_string(), "--data-dir", data, "--requirepass-file", path_str(dir.path())],
        &["requirepass-file", path_str(dir.path())],
    );
    let empty = dir.path().join("empty-password");
    std::fs::write(&empty, "\n").expect("write");
    assert_refused(
        &["--port", &free_port().to_string(), "--data-dir", data, "--requirepass-file", path_str(&empty)],
        &["requirepass-file", path_str(&empty), "empty"],
    );
}

#[tokio::test]
async fn config_file_is_honoured_and_flags_win_over_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("prism.toml");
    let data = dir.path().join("from-file");
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let toml =
            format!("port = {port}\nbind = \"127.0.0.1\"\ndata-dir = \"{}\"\nmaxclients = 50\n", path_str(&data));
        std::fs::write(&file, toml).expect("write config");
        let mut prism = match Prism::start(&["--config", path_str(&file)]) {
            Ok(p) => p,
            Err(e) if e.contains("cannot listen") => {
                last = e;
                continue;
            }
            Err(e) => panic!("prism did not start from its config file: {e}"),
        };
        assert_eq!(prism.addr, SocketAddr::from(([127, 0, 0, 1], port)));
        let mut c = RawClient::connect(prism.addr).await;
        assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
        assert!(data.join("node.id").exists(), "data-dir from the file is used");
        drop(c);
        assert!(prism.terminate().success());

        // The same file with --port: the flag wins.
        let mut prism = Prism::start_on_free_port(&["--config", path_str(&file)]);
        assert_ne!(prism.addr.port(), port);
        let mut c = RawClient::connect(prism.addr).await;
        assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
        drop(c);
        assert!(prism.terminate().success());
        return;
    }
    panic!("prism found no free port: {last}");
}

#[tokio::test]
async fn sigterm_closes_clients_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut prism = Prism::start_on_free_port(&["--data-dir", path_str(&data)]);
    let mut c = RawClient::connect(prism.addr).await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    let status = prism.terminate();
    assert_eq!(status.code(), Some(0), "exit status {status}; stderr: {}", prism.stderr());
    assert!(c.closed().await, "an open client connection is closed by shutdown");
    assert!(
        tokio::time::timeout(REPLY_TIMEOUT, tokio::net::TcpStream::connect(prism.addr)).await.is_ok_and(|r| r.is_err()),
        "nothing listens after shutdown"
    );
}

/// Slow commands and server-side failures are logged with a request id
/// (`<CLIENT ID>-<command number on the connection>`), and nothing of their arguments.
#[tokio::test]
async fn slow_and_failed_commands_are_logged_with_a_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // No cold tier: over maxmemory a write is refused at once (a tier would spill).
    let mut prism = Prism::start_on_free_port(&["--data-dir", path_str(&data), "--cold-store", "none"]);
    let mut c = RawClient::connect(prism.addr).await;
    let id = c.cmd(&["CLIENT", "ID"]).await; // command 1
    let id: u64 = id.trim().trim_start_matches(':').parse().expect("CLIENT ID");
    assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]).await, "+OK\r\n"); // 2
    assert_eq!(c.cmd(&["SET", "secret-key", "secret-value"]).await, "+OK\r\n"); // 3
    assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "10000000"]).await, "+OK\r\n"); // 4
                                                                                                   // Over maxmemory: SET is refused with OOM, a server-side failure.
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "1"]).await, "+OK\r\n"); // 5
    let oom = c.cmd(&["SET", "secret-key", "other-secret"]).await; // 6
    assert!(oom.starts_with("-OOM "), "{oom}");
    // A client's own mistake is not a server failure: not logged.
    assert!(c.cmd(&["LPOP", "secret-key"]).await.starts_with("-WRONGTYPE")); // 7
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await, "+OK\r\n");
    let status = prism.terminate();
    assert_eq!(status.code(), Some(0));
    // The reader thread may still be appending the last lines.
    std::thread::sleep(Duration::from_millis(100));
    let log = prism.stderr();
    let line = |needle: &str| log.lines().find(|l| l.contains(needle)).map(str::to_string);
    let slow = line(&format!("request_id={id}-3")).unwrap_or_else(|| panic!("no line for request 3: {log}"));
    assert!(slow.contains("slow command") && slow.contains("command=set") && slow.contains("usec="), "{slow}");
    let failed = line(&format!("request_id={id}-6")).unwrap_or_else(|| panic!("no line for request 6: {log}"));
    assert!(failed.contains("command failed") && failed.contains("command=set") && failed.contains("OOM"), "{failed}");
    assert!(line(&format!("request_id={id}-7")).is_none(), "a client error is not logged: {log}");
    assert!(!log.contains("secret-value") && !log.contains("other-secret"), "arguments leaked into the log: {log}");
}

#[tokio::test]
async fn shutdown_command_stops_the_node_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut prism = Prism::start_on_free_port(&["--data-dir", path_str(&data)]);
    let mut c = RawClient::connect(prism.addr).await;
    assert_eq!(c.cmd(&["SHUTDOWN", "BOGUS"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["SHUTDOWN", "ABORT"]).await, "-ERR No shutdown in progress.\r\n");
    c.send(&prism_tests::encode(&["SHUTDOWN", "NOSAVE"])).await;
    assert!(c.closed().await, "SHUTDOWN closes the connection, as Redis does");
    let status = wait_bounded(&mut prism.child).expect("prism exits after SHUTDOWN");
    assert_eq!(status.code(), Some(0), "exit status {status}; stderr: {}", prism.stderr());
}

#[tokio::test]
async fn requirepass_file_gates_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let pass = dir.path().join("password");
    // A trailing newline (as `echo` writes) is not part of the password.
    std::fs::write(&pass, "s3cret pass\n").expect("write password");
    let prism = Prism::start_on_free_port(&["--data-dir", path_str(&data), "--requirepass-file", path_str(&pass)]);

    let mut c = RawClient::connect(prism.addr).await;
    assert_eq!(c.cmd(&["PING"]).await, "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd(&["AUTH", "wrong"]).await, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_eq!(
        c.cmd(&["AUTH", "s3cret pass\n"]).await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.cmd(&["GET", "k"]).await, "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd(&["AUTH", "s3cret pass"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");

    // AUTH with the default user's name, on a second connection.
    let mut d = RawClient::connect(prism.addr).await;
    assert_eq!(d.cmd(&["GET", "k"]).await, "-NOAUTH Authentication required.\r\n");
    assert_eq!(
        d.cmd(&["AUTH", "default", "wrong"]).await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(d.cmd(&["AUTH", "default", "s3cret pass"]).await, "+OK\r\n");
    assert_eq!(d.cmd(&["GET", "k"]).await, "$1\r\nv\r\n");
}

#[test]
fn bad_cluster_topology_is_refused_with_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = path_str(&data);
    let file = dir.path().join("topology.toml");
    let member = |id: u16| format!("{{ id = {id}, host = \"127.0.0.1\", port = {} }}", 7000 + id);
    // Slots 8000-16383 belong to no shard.
    std::fs::write(&file, format!("[[shard]]\nid = 1\nslots = [\"0-7999\"]\nmembers = [{}]\n", member(1)))
        .expect("write");
    let topo = path_str(&file);
    assert_refused(
        &["--data-dir", data, "--node-id", "1", "--cluster-topology", topo],
        &[topo, "slots 8000-16383 belong to no shard"],
    );
    std::fs::write(&file, format!("[[shard]]\nid = 1\nslots = [\"0-16383\"]\nmembers = [{}]\n", member(1)))
        .expect("write");
    // A node id the file does not list; no node id; both ways of naming the group.
    assert_refused(&["--data-dir", data, "--node-id", "9", "--cluster-topology", topo], &["node-id 9"]);
    assert_refused(&["--data-dir", data, "--cluster-topology", topo], &["node-id"]);
    assert_refused(
        &["--data-dir", data, "--node-id", "1", "--cluster-topology", topo, "--raft-group", "1@127.0.0.1:7001"],
        &["raft-group", "cluster-topology"],
    );
    let missing = dir.path().join("absent.toml");
    assert_refused(
        &["--data-dir", data, "--node-id", "1", "--cluster-topology", path_str(&missing)],
        &["cannot read", path_str(&missing)],
    );
}

#[test]
fn cluster_init_lays_out_shards_in_distinct_zones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("topology.toml");
    let nodes: Vec<String> = (0..6).map(|i| format!("10.0.0.{}:6379", i + 1)).collect();
    let status = Command::new(prism_bin())
        .args(["cluster", "init", "--replicas", "2", "--nodes", &nodes.join(","), "--zones", "a,a,b,b,c,c", "--out"])
        .arg(&out)
        .status()
        .expect("run prism cluster init");
    assert!(status.success());
    let text = std::fs::read_to_string(&out).expect("topology written");
    assert_eq!(text.matches("[[shard]]").count(), 2, "{text}");
    assert!(text.contains("slots = [\"0-8191\"]") && text.contains("slots = [\"8192-16383\"]"), "{text}");
    for shard in text.split("[[shard]]").skip(1) {
        let zones: Vec<&str> = shard.split("zone = \"").skip(1).map(|z| &z[..1]).collect();
        let mut distinct = zones.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(zones.len(), 3, "{shard}");
        assert_eq!(distinct.len(), 3, "a shard has two members in one zone: {shard}");
    }
    // Too few zones for three distinct ones per shard: an error, nothing written.
    let bad = dir.path().join("bad.toml");
    let (status, stderr) = run_to_exit(&[
        "cluster",
        "init",
        "--nodes",
        &nodes.join(","),
        "--zones",
        "a,a,a,b,b,b",
        "--out",
        path_str(&bad),
    ]);
    assert!(!status.success() && stderr.contains("distinct zones"), "{stderr}");
    assert!(!bad.exists());
}

#[test]
fn bad_security_settings_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = path_str(&data);
    let empty = dir.path().join("empty-secret");
    std::fs::write(&empty, " \n").expect("write");
    let port = free_port().to_string();
    assert_refused(
        &["--port", &port, "--data-dir", data, "--cluster-secret-file", path_str(&empty)],
        &["cluster-secret-file", path_str(&empty), "empty"],
    );
    let missing = dir.path().join("no-such-secret");
    assert_refused(
        &["--port", &port, "--data-dir", data, "--cluster-secret-file", path_str(&missing)],
        &["cluster-secret-file", path_str(&missing)],
    );
    assert_refused(&["--port", &port, "--data-dir", data, "--protected-mode", "maybe"], &["protected-mode"]);
    assert_refused(&["--port", &port, "--data-dir", data, "--tls-auth-clients", "always"], &["tls-auth-clients"]);
    // A TLS port without a certificate: named, never served in plain text.
    assert_refused(&["--port", &port, "--data-dir", data, "--tls-port", "6380"], &["tls-port", "tls-cert-file"]);
    let acl = dir.path().join("users.acl");
    std::fs::write(&acl, "user bob on +nosuchcommand\n").expect("write");
    assert_refused(
        &["--port", &port, "--data-dir", data, "--aclfile", path_str(&acl)],
        &["aclfile", ":1:", "+nosuchcommand"],
    );
}
