//! Shared support for the integration tests: a node started in-process on a free
//! loopback port with a clock the test controls, and a raw RESP client that sends bytes
//! and reads back exactly one reply frame at a time.
//!
//! Frame boundaries are found with the `redis-protocol` crate's decoders, an
//! implementation independent of the server's own reply writer, so a malformed reply
//! fails the test instead of being read the way it was written.

pub mod backups;
pub mod cold_model;
pub mod fleet;
pub mod history;
pub mod linearizable;
pub mod moto;
pub mod netproxy;
pub mod redis_server;
pub mod rng;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use prism_engine::clock::ManualClock;
use prism_server::{Config, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for any single reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A node running inside the test process.
pub struct TestNode {
    pub addr: SocketAddr,
    pub clock: ManualClock,
    handle: Option<ServerHandle>,
    _dir: tempfile::TempDir,
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(|_| {}).await
    }

    /// Starts a node on 127.0.0.1 with a free port and a fresh data directory, after
    /// `tweak` adjusted its config.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config { data_dir: dir.path().join("data"), ..Config::default() };
        tweak(&mut config);
        // Port 0: the OS picks a free port (the binary refuses 0 without a tls-port, start does not).
        config.port = 0;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
        let clock = ManualClock::new(now);
        let handle = prism_server::start(config, Arc::new(clock.clone())).await.expect("node starts");
        TestNode { addr: handle.addr, clock, handle: Some(handle), _dir: dir }
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("running")
    }

    pub async fn raw(&self) -> RawClient {
        RawClient::connect(self.addr).await
    }

    /// A `redis` crate connection (RESP2).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://{}/", self.addr)).expect("client");
        client.get_multiplexed_async_connection().await.expect("connect")
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

/// Which decoder frames replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resp {
    V2,
    V3,
}

/// A client speaking raw bytes.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    pub resp: Resp,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient { stream, buf: BytesMut::new(), resp: Resp::V2 }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Sends a command as a RESP multibulk and returns its reply, raw.
    pub async fn cmd(&mut self, args: &[&str]) -> String {
        self.send(&encode(args)).await;
        self.reply().await
    }

    /// Sends `HELLO 3` and switches the reply decoder to RESP3.
    pub async fn hello3(&mut self) -> String {
        self.resp = Resp::V3;
        self.cmd(&["HELLO", "3"]).await
    }

    /// Reads exactly one reply frame and returns its raw text.
    pub async fn reply(&mut self) -> String {
        tokio::time::timeout(REPLY_TIMEOUT, self.read_frame()).await.expect("reply within timeout")
    }

    async fn read_frame(&mut self) -> String {
        loop {
            let decoded = match self.resp {
                Resp::V2 => redis_protocol::resp2::decode::decode(&self.buf).map(|o| o.map(|(_, n)| n)),
                Resp::V3 => redis_protocol::resp3::decode::complete::decode(&self.buf).map(|o| o.map(|(_, n)| n)),
            };
            match decoded {
                Ok(Some(n)) => {
                    let frame = self.buf.split_to(n);
                    return String::from_utf8_lossy(&frame).into_owned();
                }
                Ok(None) => {}
                Err(e) => panic!("server sent a malformed frame ({e:?}): {:?}", String::from_utf8_lossy(&self.buf)),
            }
            let n = self.stream.read_buf(&mut self.buf).await.expect("read");
            assert!(
                n > 0,
                "connection closed while waiting for a reply; have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// True if the server closes the connection (after any bytes still buffered).
    pub async fn closed(&mut self) -> bool {
        let mut scratch = [0u8; 4096];
        loop {
            match tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// A command as RESP multibulk bytes.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n", a.len()).as_bytes());
        out.extend(a.as_bytes());
        out.extend(b"\r\n");
    }
    out
}

/// A bulk string reply as raw text: `$3\r\nfoo\r\n`.
pub fn bulk(s: &str) -> String {
    format!("${}\r\n{}\r\n", s.len(), s)
}

/// Runs `prism raft <args>` (the offline Raft tools): exit code, stdout and stderr.
pub fn raft_cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(prism_bin()).arg("raft").args(args).output().expect("run prism raft");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    eprintln!("prism raft {args:?}: {}\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once per process) a panic hook that, besides printing as usual, keeps each
/// thread's last panic message for [`last_panic`]. The guards that print node logs when a
/// test fails ([`fleet::Fleet`], [`Outsider`]) repeat the message after those logs, so
/// the end of a failed test's output (what a CI summary shows) says why it failed.
pub fn keep_panic_messages() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info.to_string();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
            default(info);
        }));
    });
}

/// This thread's last panic message, with its location (see [`keep_panic_messages`]).
pub fn last_panic() -> Option<String> {
    LAST_PANIC.with(|p| p.borrow().clone())
}

/// A `prism` process a test starts outside any [`fleet::Fleet`] (a node joining one, say),
/// with a temporary directory of its own for its data and log; killed on drop.
pub struct Outsider {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Outsider {
    /// Starts `prism <args> --data-dir <its dir>/data`, logging to `<its dir>/node.log`.
    pub fn start(args: &[&str]) -> Outsider {
        keep_panic_messages();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("node.log")).expect("log file");
        let child = std::process::Command::new(prism_bin())
            .args(args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start prism");
        Outsider { child, dir }
    }

    /// Its temporary directory (files a test writes for it can go here too).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Outsider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- outsider log (tail) ---\n{}", self.log_tail(40));
            if let Some(message) = last_panic() {
                eprintln!("--- the test failed (repeated from above) ---\n{message}");
            }
        }
    }
}

/// A free loopback port (free when this returns; a test binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// The `prism` binary the process tests run: `PRISM_BIN` when set (scripts/test sets it to
/// the binary it just built), else the binary of this test's profile, built first so a
/// stale one is never tested.
pub fn prism_bin() -> &'static std::path::Path {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("PRISM_BIN") {
            return std::path::PathBuf::from(path);
        }
        // target/<profile>/deps/process-<hash> -> target/<profile>/prism
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe.parent().and_then(std::path::Path::parent).expect("target/<profile>/deps");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", "prism-server", "--bin", "prism", "--profile", profile])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the prism binary failed");
        profile_dir.join("prism")
    })
}
