//! A real `redis-server` (Debian's, installed by `scripts/test`) started on a free
//! loopback port, for model tests: the same command stream goes to Prism and to Redis
//! and the replies must be identical.
//!
//! The server runs without persistence, in cluster mode off, and is killed on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, RawClient};

pub struct RealRedis {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RealRedis {
    /// Starts redis-server; panics with a clear message if it is not installed.
    pub async fn start() -> RealRedis {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for model tests (scripts/test installs it: apt-get install redis-server)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on {addr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        RealRedis { addr, child, _dir: dir }
    }

    pub async fn raw(&self) -> RawClient {
        RawClient::connect(self.addr).await
    }

    /// A `redis` crate connection, for replies compared as values rather than bytes.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://{}/", self.addr)).expect("client");
        client.get_multiplexed_async_connection().await.expect("connect to redis-server")
    }
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `args` to both and asserts the raw replies are identical.
pub async fn same_reply(prism: &mut RawClient, redis: &mut RawClient, args: &[&str], seed: u64) -> String {
    let p = prism.cmd(args).await;
    let r = redis.cmd(args).await;
    assert_eq!(p, r, "replies differ for {args:?} (seed {seed})");
    p
}

/// A seed from `PRISM_SEED` (to replay a run) or a fresh random one; printed either way.
pub fn seed() -> u64 {
    let seed = std::env::var("PRISM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
    });
    println!("seed {seed} (replay with PRISM_SEED={seed})");
    seed
}
