//! A fleet of real `prism` processes forming one Raft group on loopback, for fault tests:
//! start N nodes, kill -9, pause (SIGSTOP) and resume, restart on the same data directory,
//! cut peer links through [`LinkProxy`]s, and find the leader through `INFO raft`.
//!
//! Layout: node i (0-based, Raft id i + 1) listens for clients on `client[i]` and for peers
//! on `peer[i]`. Every node gets the same member list, except that in node i's list the peer
//! port of node j is the port of proxy (i, j) when proxies are on, so every directed peer
//! link (the connections i opens to j) can be cut on its own.
//!
//! Invariants:
//! - No process outlives the fleet: drop kills every child (a panicking test included), and
//!   each child is started with a parent-death signal, so it dies with the test process.
//!   The death signal follows the *thread* that spawned the child, so start and restart
//!   nodes from the thread that owns the fleet.
//! - Every wait is bounded and fails with the node's log tail, never hangs.
//! - Logs (stdout and stderr of every run of a node) append to `<tempdir>/node-<id>.log`;
//!   `PRISM_KEEP_FLEET=1` keeps the directory and prints its path. A failing test prints
//!   each node's log tail, then its panic message again (so the output ends with why).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use redis_protocol::resp2::types::OwnedFrame;

use crate::netproxy::LinkProxy;
use crate::prism_bin;

/// Longest a node may take to start answering PING.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How a fleet is started.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub nodes: usize,
    /// Put a [`LinkProxy`] on every directed peer link.
    pub proxies: bool,
    /// Extra flags for every node (e.g. `--unsafe-stale-reads yes`).
    pub extra_args: Vec<String>,
    /// Pass `--node-id` and `--raft-group`; off, the nodes are independent single nodes
    /// (how the harness itself is tested without replication).
    pub raft: bool,
    /// More than 1: a fleet of this many shards (`nodes / shards` members each, slots
    /// split as `prism cluster init` does) from a topology file instead of `--raft-group`.
    /// Node i is in shard i / (nodes / shards). No link proxies in this mode.
    pub shards: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions { nodes: 3, proxies: false, extra_args: Vec::new(), raft: true, shards: 1 }
    }
}

/// One node: its addresses, its arguments, and its process while it runs.
struct Node {
    client: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// What `INFO raft` says about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftInfo {
    pub role: String,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
}

pub struct Fleet {
    nodes: Vec<Node>,
    /// (from, to) -> the proxy node `from` uses to reach node `to`'s peer port.
    proxies: Vec<((usize, usize), LinkProxy)>,
    dir: Option<tempfile::TempDir>,
}

/// A topology file of `shards` shards over the nodes on `client` / `peer` ports, in order,
/// with the slots split as `prism cluster init` splits them.
pub fn topology_file(shards: usize, client: &[u16], peer: &[u16]) -> String {
    let size = client.len() / shards;
    let mut text = String::new();
    for s in 0..shards {
        let (first, last) = shard_slots(s, shards);
        text.push_str(&format!("[[shard]]\nid = {}\nslots = [\"{first}-{last}\"]\nmembers = [\n", s + 1));
        for i in s * size..(s + 1) * size {
            text.push_str(&format!(
                "  {{ id = {}, host = \"127.0.0.1\", port = {}, peer-port = {} }},\n",
                i + 1,
                client[i],
                peer[i]
            ));
        }
        text.push_str("]\n");
    }
    text
}

/// The slot range of shard `s` (0-based) of `shards`: redis-cli's even split.
pub fn shard_slots(s: usize, shards: usize) -> (u16, u16) {
    let end = |s: usize| ((16384.0 * (s + 1) as f64 / shards as f64) - 1.0).round() as u16;
    let first = if s == 0 { 0 } else { end(s - 1) + 1 };
    let last = if s + 1 == shards { 16383 } else { end(s) };
    (first, last)
}

/// A group of three with a slow heartbeat (500 ms) and `extra` flags, and the index of
/// its leader: tests that assume the leader they found stays leader use it, so a loaded CI
/// machine does not trigger spurious elections.
pub fn start_steady_group(extra: &[&str], leader_timeout: Duration) -> (Fleet, usize) {
    let mut extra_args: Vec<String> = vec!["--raft-heartbeat-ms".into(), "500".into()];
    extra_args.extend(extra.iter().map(|a| a.to_string()));
    let opts = FleetOptions { extra_args, ..Default::default() };
    let fleet = Fleet::start(&opts).expect("fleet starts");
    let leader = fleet.wait_for_leader(None, leader_timeout).expect("a leader is elected");
    (fleet, leader)
}

impl Fleet {
    /// Starts every node and waits until each answers PING (not until a leader exists: see
    /// [`Fleet::wait_for_leader`]). Retries with fresh ports if one was taken meanwhile.
    pub fn start(opts: &FleetOptions) -> anyhow::Result<Fleet> {
        crate::keep_panic_messages();
        let mut last = None;
        for _ in 0..3 {
            match Fleet::try_start(opts) {
                Ok(fleet) => return Ok(fleet),
                Err(e) if format!("{e:#}").contains("in use") || format!("{e:#}").contains("cannot listen") => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no attempt made")))
    }

    fn try_start(opts: &FleetOptions) -> anyhow::Result<Fleet> {
        let n = opts.nodes;
        let dir = tempfile::Builder::new().prefix("prism-fleet-").tempdir().context("fleet temp dir")?;
        // Hold every listener until all ports are chosen, so they are distinct.
        let holders: Vec<TcpListener> =
            (0..2 * n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>().context("free ports")?;
        let ports: Vec<u16> = holders.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
        drop(holders);
        let (client_ports, peer_ports) = ports.split_at(n);
        let mut proxies = Vec::new();
        if opts.proxies {
            for from in 0..n {
                for to in (0..n).filter(|&to| to != from) {
                    let target = SocketAddr::from(([127, 0, 0, 1], peer_ports[to]));
                    proxies.push(((from, to), LinkProxy::start(target).context("start a link proxy")?));
                }
            }
        }
        if opts.shards > 1 && (opts.proxies || !n.is_multiple_of(opts.shards)) {
            bail!("a {}-shard fleet needs a multiple of {} nodes and no proxies", opts.shards, opts.shards);
        }
        let topology = dir.path().join("topology.toml");
        if opts.shards > 1 {
            std::fs::write(&topology, topology_file(opts.shards, client_ports, peer_ports))?;
        }
        let mut nodes = Vec::new();
        for i in 0..n {
            let members: Vec<String> = (0..n)
                .map(|j| {
                    let peer = proxies
                        .iter()
                        .find(|(link, _)| *link == (i, j))
                        .map_or(peer_ports[j], |(_, p): &(_, LinkProxy)| p.addr().port());
                    format!("{}@127.0.0.1:{}@{}", j + 1, client_ports[j], peer)
                })
                .collect();
            let data_dir = dir.path().join(format!("node-{}", i + 1));
            let mut args: Vec<String> = vec![
                "--bind".into(),
                "127.0.0.1".into(),
                "--port".into(),
                client_ports[i].to_string(),
                "--data-dir".into(),
                data_dir.to_str().context("utf-8 temp path")?.into(),
            ];
            if opts.raft && opts.shards > 1 {
                let path = topology.to_str().context("utf-8 temp path")?;
                args.extend(["--node-id".into(), (i + 1).to_string(), "--cluster-topology".into(), path.into()]);
            } else if opts.raft {
                args.extend(["--node-id".into(), (i + 1).to_string(), "--raft-group".into(), members.join(",")]);
            }
            args.extend(opts.extra_args.iter().cloned());
            nodes.push(Node {
                client: SocketAddr::from(([127, 0, 0, 1], client_ports[i])),
                args,
                log: dir.path().join(format!("node-{}.log", i + 1)),
                child: None,
                paused: false,
            });
        }
        let mut fleet = Fleet { nodes, proxies, dir: Some(dir) };
        for i in 0..n {
            fleet.spawn(i)?;
        }
        for i in 0..n {
            fleet.wait_serving(i)?;
        }
        Ok(fleet)
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.path().join(format!("node-{}", i + 1)))
    }

    /// The topology file of a fleet started with `shards` > 1.
    pub fn topology_path(&self) -> Option<PathBuf> {
        let path = self.dir.as_ref()?.path().join("topology.toml");
        path.exists().then_some(path)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Client addresses, by node index.
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.client).collect()
    }

    /// The process id of node `i` while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let log = OpenOptions::new().create(true).append(true).open(&node.log).context("node log")?;
        let mut cmd = Command::new(prism_bin());
        cmd.args(&node.args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        node.child = Some(cmd.spawn().context("spawn prism")?);
        node.paused = false;
        Ok(())
    }

    /// Waits until node `i` answers INFO as itself (its pid); fails with its log if it exits
    /// or stays silent.
    fn wait_serving(&mut self, i: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(mut c) = RespConn::connect(self.nodes[i].client, Duration::from_secs(1)) {
                if let Ok(OwnedFrame::BulkString(info)) = c.call(&["INFO", "server"]) {
                    // The port may have been taken by another test's node after it was
                    // chosen: only our own process counts (Fleet::start retries).
                    let ours = format!("process_id:{}\r\n", self.pid(i).unwrap_or(0));
                    if String::from_utf8_lossy(&info).contains(&ours) {
                        return Ok(());
                    }
                    bail!("node {}'s port is in use by another process", i + 1);
                }
            }
            if let Some(child) = self.nodes[i].child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.nodes[i].child = None;
                    bail!("node {} exited ({status}) while starting:\n{}", i + 1, self.log_tail(i, 30));
                }
            }
            if Instant::now() > deadline {
                bail!("node {} did not answer PING within {START_TIMEOUT:?}:\n{}", i + 1, self.log_tail(i, 30));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the node stops at once, with whatever it had not fsynced lost.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nodes[i].paused = false;
    }

    /// SIGKILLs every node before reaping any, so none outlives the others by more than a
    /// few microseconds.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.kill();
            }
        }
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }

    /// Starts a stopped node again on its data directory and waits until it answers PING.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_serving(i)
    }

    /// SIGSTOP: the process freezes with its sockets open, as a long GC pause or a hung VM.
    pub fn pause(&mut self, i: usize) {
        if self.signal(i, libc::SIGSTOP) {
            self.nodes[i].paused = true;
        }
    }

    /// SIGCONT after [`Fleet::pause`].
    pub fn resume(&mut self, i: usize) {
        if self.signal(i, libc::SIGCONT) {
            self.nodes[i].paused = false;
        }
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    fn signal(&self, i: usize, signal: libc::c_int) -> bool {
        let Some(child) = self.nodes[i].child.as_ref() else { return false };
        let Ok(pid) = libc::pid_t::try_from(child.id()) else { return false };
        // SAFETY: kill(2) on a child we have not reaped, so the pid is still ours.
        unsafe { libc::kill(pid, signal) == 0 }
    }

    /// Cuts every peer link to and from node `i` (needs proxies).
    pub fn partition(&self, i: usize) {
        assert!(!self.proxies.is_empty(), "partition needs a fleet started with proxies");
        for ((from, to), proxy) in &self.proxies {
            if *from == i || *to == i {
                proxy.partition();
            }
        }
    }

    /// Restores every peer link.
    pub fn heal(&self) {
        for (_, proxy) in &self.proxies {
            proxy.heal();
        }
    }

    /// The proxy node `from` uses to reach node `to`, if proxies are on.
    pub fn proxy(&self, from: usize, to: usize) -> Option<&LinkProxy> {
        self.proxies.iter().find(|(link, _)| *link == (from, to)).map(|(_, p)| p)
    }

    /// `INFO raft` of a running, unpaused node (None if it does not answer in time).
    pub fn raft_info(&self, i: usize) -> Option<RaftInfo> {
        if !self.is_running(i) || self.is_paused(i) {
            return None;
        }
        let mut conn = RespConn::connect(self.nodes[i].client, Duration::from_secs(1)).ok()?;
        let OwnedFrame::BulkString(text) = conn.call(&["INFO", "raft"]).ok()? else { return None };
        parse_raft_info(&String::from_utf8_lossy(&text))
    }

    /// The node that says it leads with the highest term (a partitioned old leader may still
    /// believe it leads, in a lower term).
    pub fn leader(&self) -> Option<usize> {
        (0..self.len())
            .filter_map(|i| self.raft_info(i).filter(|r| r.role == "leader").map(|r| (r.term, i)))
            .max()
            .map(|(_, i)| i)
    }

    /// Waits (bounded) until a leader exists, optionally one other than `not`.
    pub fn wait_for_leader(&self, not: Option<usize>, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader().filter(|&l| Some(l) != not) {
                return Ok(l);
            }
            if Instant::now() > deadline {
                let roles: Vec<String> =
                    (0..self.len()).map(|i| format!("node {}: {:?}", i + 1, self.raft_info(i))).collect();
                bail!("no leader (other than {not:?}) within {timeout:?}; {}", roles.join("; "));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of node `i`'s log, over all its runs.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.nodes[i].log) {
            let _ = f.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            let mut err = std::io::stderr().lock();
            for i in 0..self.nodes.len() {
                let _ = writeln!(err, "--- node {} log (tail) ---\n{}", i + 1, self.log_tail(i, 40));
            }
            if let Some(message) = crate::last_panic() {
                let _ = writeln!(err, "--- the test failed (repeated from above) ---\n{message}");
            }
        }
        if std::env::var_os("PRISM_KEEP_FLEET").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("fleet kept in {}", dir.keep().display());
            }
        }
    }
}

pub fn parse_raft_info(text: &str) -> Option<RaftInfo> {
    let field =
        |name: &str| text.lines().find_map(|l| l.trim_end().strip_prefix(name).and_then(|rest| rest.strip_prefix(':')));
    Some(RaftInfo {
        role: field("role")?.to_string(),
        leader_id: field("leader_id").and_then(|v| v.parse().ok()),
        term: field("term")?.parse().ok()?,
        commit_index: field("commit_index").and_then(|v| v.parse().ok()).unwrap_or(0),
        applied_index: field("applied_index").and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

/// A blocking RESP2 connection with timeouts, for test drivers running on plain threads.
pub struct RespConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Largest reply a test driver accepts (its keys hold short values).
const MAX_REPLY: usize = 16 << 20;

impl RespConn {
    /// Connects with `timeout` for the connect and for every later read and write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<RespConn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RespConn { stream, buf: Vec::new() })
    }

    pub fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))?;
        self.stream.set_write_timeout(Some(timeout))
    }

    /// Sends the command. An error means the bytes may or may not have reached the server.
    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        self.stream.write_all(&crate::encode(args))
    }

    /// Reads exactly one reply (an error reply is `Ok(OwnedFrame::Error)`).
    pub fn read_reply(&mut self) -> std::io::Result<OwnedFrame> {
        use std::io::{Error, ErrorKind};
        loop {
            match redis_protocol::resp2::decode::decode(&self.buf) {
                Ok(Some((frame, n))) => {
                    self.buf.drain(..n);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => return Err(Error::new(ErrorKind::InvalidData, format!("malformed reply: {e:?}"))),
            }
            if self.buf.len() > MAX_REPLY {
                return Err(Error::new(ErrorKind::InvalidData, "reply too large"));
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn call(&mut self, args: &[&str]) -> std::io::Result<OwnedFrame> {
        self.send(args)?;
        self.read_reply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_info_is_parsed_from_the_info_section() {
        let text = "# Raft\r\nrole:follower\r\nleader_id:2\r\nterm:7\r\ncommit_index:41\r\napplied_index:40\r\n";
        let info = parse_raft_info(text).expect("parsed");
        assert_eq!(
            info,
            RaftInfo { role: "follower".into(), leader_id: Some(2), term: 7, commit_index: 41, applied_index: 40 }
        );
        let candidate = parse_raft_info("role:candidate\nleader_id:\nterm:8\n").expect("parsed");
        assert_eq!(candidate.leader_id, None);
        assert!(parse_raft_info("# Raft\r\n").is_none(), "a section without a role is not raft info");
    }
}
