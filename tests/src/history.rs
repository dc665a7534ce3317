//! The workload of the fault tests: client threads doing SET (a value unique per key) and
//! GET over a few keys against a Raft group, recording every operation with its window
//! and outcome for the [`crate::linearizable`] checker.
//!
//! Outcome rules (the contract of the replicated server):
//! - `+OK` is an acknowledged write; a value or nil is a completed read.
//! - `-MOVED` (a replica), `-TRYAGAIN` (no leader) and a refused connect mean the attempt was
//!   not applied: the client retries the same value elsewhere until the op's deadline, and
//!   a write whose attempts all ended that way is recorded as failed.
//! - `-TIMEOUT`, a dropped connection, a read timeout, a failed send or any other reply
//!   leave a write's outcome unknown; a read that ends so is simply not recorded.
//!
//! An op's window opens before its first attempt and closes when its outcome is seen, so
//! attempts that were not applied only widen it, which never hides a violation.
//! Clients mostly stay with the node that last served them, but now and then pick a random
//! one, as clients with a stale view of the cluster do; that is what sends reads to a
//! deposed leader.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis_protocol::resp2::types::OwnedFrame;

use crate::fleet::RespConn;
use crate::linearizable::{self, Action, Op};
use crate::rng::Rng;

/// One time base for the workload and the nemesis, in ns since the workload started.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant, std::time::SystemTime);

impl Clock {
    /// Wall-clock time (UTC, as the nodes' logs print it) of `ns` on this clock.
    pub fn wall(&self, ns: u64) -> String {
        let t = self.1 + Duration::from_nanos(ns);
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let day = since.as_secs() % 86_400;
        format!("{:02}:{:02}:{:02}.{:03}", day / 3600, day / 60 % 60, day % 60, since.subsec_millis())
    }

    pub fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// A recorded op and the node that gave its outcome (None if none did).
#[derive(Debug, Clone)]
pub struct Record {
    pub op: Op,
    pub node: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    pub clients: usize,
    pub keys: usize,
    pub read_percent: usize,
    /// Chance, per op, that a client picks a random node instead of its last one.
    pub random_node_percent: usize,
    /// How long one op may keep retrying (and wait for one reply) before giving up.
    pub op_timeout: Duration,
    /// Upper bound of a random pause between ops, so the clients do not starve the nodes
    /// of the two shared cores.
    pub think: Duration,
    pub seed: u64,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            clients: 4,
            keys: 4,
            read_percent: 50,
            random_node_percent: 20,
            op_timeout: Duration::from_secs(5),
            think: Duration::from_millis(5),
            seed: 1,
        }
    }
}

/// Ops by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub writes_ok: usize,
    pub writes_failed: usize,
    pub writes_unknown: usize,
    pub reads_ok: usize,
    pub reads_failed: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "writes ok {} / failed {} / unknown {}, reads ok {} / failed {}",
            self.writes_ok, self.writes_failed, self.writes_unknown, self.reads_ok, self.reads_failed
        )
    }
}

struct Shared {
    clock: Clock,
    addrs: Vec<SocketAddr>,
    records: Mutex<Vec<Record>>,
    reads_failed: AtomicU64,
    /// Replies that fit no rule above, kept (a few) for the report.
    unexpected: Mutex<Vec<String>>,
}

/// One client: its connections, its preferred node, its sequence of unique values.
pub struct Client {
    id: usize,
    shared: Arc<Shared>,
    conns: Vec<Option<RespConn>>,
    preferred: usize,
    op_timeout: Duration,
    rng: Rng,
}

enum Attempt {
    /// The server certainly did not apply it; try again at this node.
    Retry(usize),
    Done(OwnedFrame),
    Unknown,
}

impl Client {
    /// Makes node `i` the next one tried.
    pub fn prefer(&mut self, i: usize) {
        self.preferred = i % self.shared.addrs.len();
    }

    /// SET key value, recorded.
    pub fn write(&mut self, key: &str, value: &str) -> Record {
        let invoke = self.shared.clock.now_ns();
        let (outcome, node) = self.run(&["SET", key, value]);
        let action = match outcome {
            Some(Some(OwnedFrame::SimpleString(s))) if s == b"OK" => Action::WriteOk(value.into()),
            Some(Some(_)) | Some(None) => Action::WriteUnknown(value.into()),
            None => Action::WriteFailed(value.into()),
        };
        let op = Op { client: self.id, key: key.into(), action, invoke, complete: self.shared.clock.now_ns() };
        self.keep(Record { op, node })
    }

    /// GET key, recorded if it completed.
    pub fn read(&mut self, key: &str) -> Option<Record> {
        let invoke = self.shared.clock.now_ns();
        let (outcome, node) = self.run(&["GET", key]);
        let value = match outcome {
            Some(Some(OwnedFrame::BulkString(v))) => Some(String::from_utf8_lossy(&v).into_owned()),
            Some(Some(OwnedFrame::Null)) => None,
            _ => {
                self.shared.reads_failed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let op = Op {
            client: self.id,
            key: key.into(),
            action: Action::Read(value),
            invoke,
            complete: self.shared.clock.now_ns(),
        };
        Some(self.keep(Record { op, node }))
    }

    fn keep(&self, record: Record) -> Record {
        self.shared.records.lock().expect("records").push(record.clone());
        record
    }

    /// Runs one command to an outcome: None = certainly not applied (deadline passed while
    /// retrying), Some(None) = unknown, Some(Some(reply)) = the reply; plus who answered.
    fn run(&mut self, args: &[&str]) -> (Option<Option<OwnedFrame>>, Option<usize>) {
        let deadline = Instant::now() + self.op_timeout;
        while Instant::now() < deadline {
            let node = self.preferred;
            match self.attempt(node, args) {
                Attempt::Done(reply) => return (Some(Some(reply)), Some(node)),
                Attempt::Unknown => {
                    self.conns[node] = None;
                    self.preferred = self.rng.below(self.shared.addrs.len());
                    return (Some(None), None);
                }
                Attempt::Retry(next) => {
                    if next == node {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    self.preferred = next;
                }
            }
        }
        (None, None)
    }

    fn attempt(&mut self, node: usize, args: &[&str]) -> Attempt {
        self.attempt_on(node, args, false)
    }

    /// One try at `node`; `asking`: after an `-ASK`, the command goes behind `ASKING`.
    fn attempt_on(&mut self, node: usize, args: &[&str], asking: bool) -> Attempt {
        let n = self.shared.addrs.len();
        // Some other node (the same one when there is only one).
        let other = (node + 1 + self.rng.below(n - 1)) % n;
        if self.conns[node].is_none() {
            match RespConn::connect(self.shared.addrs[node], self.op_timeout) {
                Ok(c) => self.conns[node] = Some(c),
                // Nothing was sent: try another node, after a pause, since a connect to a
                // dead node fails at once and every node may be down.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    return Attempt::Retry(other);
                }
            }
        }
        let Some(conn) = self.conns[node].as_mut() else { return Attempt::Retry(other) };
        if asking && !matches!(conn.call(&["ASKING"]), Ok(OwnedFrame::SimpleString(_))) {
            // Nothing of the command was sent.
            self.conns[node] = None;
            return Attempt::Retry(other);
        }
        let reply = match conn.call(args) {
            Ok(reply) => reply,
            Err(_) => return Attempt::Unknown,
        };
        let OwnedFrame::Error(e) = &reply else { return Attempt::Done(reply) };
        let mut words = e.split_whitespace();
        match words.next() {
            Some("MOVED") => {
                let to = words.nth(1).and_then(|a| a.parse::<SocketAddr>().ok());
                match to.and_then(|a| self.shared.addrs.iter().position(|&x| x == a)) {
                    Some(leader) => Attempt::Retry(leader),
                    None => Attempt::Retry(other),
                }
            }
            // Resharding: this key moved on; ask the target once, behind ASKING.
            Some("ASK") if !asking => {
                let to = words.nth(1).and_then(|a| a.parse::<SocketAddr>().ok());
                match to.and_then(|a| self.shared.addrs.iter().position(|&x| x == a)) {
                    Some(target) => self.attempt_on(target, args, true),
                    None => Attempt::Retry(other),
                }
            }
            Some("TRYAGAIN") => {
                std::thread::sleep(Duration::from_millis(30));
                Attempt::Retry(if self.rng.below(2) == 0 { node } else { other })
            }
            Some("TIMEOUT") => Attempt::Unknown,
            _ => {
                let mut unexpected = self.shared.unexpected.lock().expect("unexpected");
                if unexpected.len() < 20 {
                    unexpected.push(format!("{args:?} -> -{e}"));
                }
                Attempt::Unknown
            }
        }
    }
}

/// Client threads running until stopped, and everything they recorded.
pub struct Workload {
    shared: Arc<Shared>,
    opts: WorkloadOptions,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Starts `opts.clients` threads against the nodes at `addrs` (index = node index).
    pub fn start(addrs: Vec<SocketAddr>, opts: WorkloadOptions) -> Workload {
        let shared = Arc::new(Shared {
            clock: Clock(Instant::now(), std::time::SystemTime::now()),
            addrs,
            records: Mutex::new(Vec::new()),
            reads_failed: AtomicU64::new(0),
            unexpected: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut w = Workload { shared, opts, stop, threads: Vec::new() };
        for id in 0..w.opts.clients {
            let mut client = w.client(id);
            let stop = w.stop.clone();
            let (keys, read_percent, random_node, think) =
                (w.opts.keys, w.opts.read_percent, w.opts.random_node_percent, w.opts.think);
            w.threads.push(std::thread::spawn(move || {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k{}", client.rng.below(keys));
                    if client.rng.below(100) < random_node {
                        let n = client.shared.addrs.len();
                        client.preferred = client.rng.below(n);
                    }
                    if client.rng.below(100) < read_percent {
                        client.read(&key);
                    } else {
                        seq += 1;
                        client.write(&key, &format!("c{id}-{seq}"));
                    }
                    let pause = client.rng.below(think.as_micros() as usize + 1);
                    std::thread::sleep(Duration::from_micros(pause as u64));
                }
            }));
        }
        w
    }

    /// A client sharing this workload's record, for a nemesis's own ops (use an `id` no
    /// worker uses, i.e. >= `clients`, so its values stay unique).
    pub fn client(&self, id: usize) -> Client {
        let seed = self.opts.seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = Rng::new(seed);
        let n = self.shared.addrs.len();
        Client {
            id,
            shared: self.shared.clone(),
            conns: (0..n).map(|_| None).collect(),
            preferred: rng.below(n),
            op_timeout: self.opts.op_timeout,
            rng,
        }
    }

    pub fn clock(&self) -> Clock {
        self.shared.clock
    }

    /// The completion time of the first acknowledged write that completed after `t_ns` on a
    /// node other than `not_node` (the failover probe after killing `not_node`).
    pub fn first_ack_after(&self, t_ns: u64, not_node: usize) -> Option<u64> {
        let records = self.shared.records.lock().expect("records");
        records
            .iter()
            .filter(|r| matches!(r.op.action, Action::WriteOk(_)) && r.op.complete > t_ns && r.node != Some(not_node))
            .map(|r| r.op.complete)
            .min()
    }

    /// Stops the client threads and waits for their last ops (each bounded by the op timeout).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// After [`Workload::stop`] and healing: reads every key once more (retrying up to
    /// `timeout`), so a lost acknowledged write shows up as a read the checker rejects.
    pub fn final_reads(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.stop();
        let mut reader = self.client(self.opts.clients + 1000);
        reader.op_timeout = Duration::from_secs(5);
        for k in 0..self.opts.keys {
            let key = format!("k{k}");
            let deadline = Instant::now() + timeout;
            while reader.read(&key).is_none() {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the final read of {key} did not complete within {timeout:?}"
                );
            }
        }
        Ok(())
    }

    pub fn records(&self) -> Vec<Record> {
        self.shared.records.lock().expect("records").clone()
    }

    pub fn counts(&self) -> Counts {
        let mut c =
            Counts { reads_failed: self.shared.reads_failed.load(Ordering::Relaxed) as usize, ..Counts::default() };
        for r in self.shared.records.lock().expect("records").iter() {
            match r.op.action {
                Action::WriteOk(_) => c.writes_ok += 1,
                Action::WriteFailed(_) => c.writes_failed += 1,
                Action::WriteUnknown(_) => c.writes_unknown += 1,
                Action::Read(_) => c.reads_ok += 1,
            }
        }
        c
    }

    /// Replies outside the contract (at most 20), each counted as an unknown outcome.
    pub fn unexpected_replies(&self) -> Vec<String> {
        self.shared.unexpected.lock().expect("unexpected").clone()
    }

    /// For a failed check: every recorded op on each violated key, in invoke order, with
    /// the node that answered and wall-clock times to match against the nodes' logs.
    pub fn explain(&self, report: &linearizable::Report) -> String {
        let records = self.records();
        let clock = self.shared.clock;
        let mut out = String::new();
        for v in &report.violations {
            let mut ops: Vec<&Record> = records.iter().filter(|r| r.op.key == v.key).collect();
            ops.sort_by_key(|r| r.op.invoke);
            out.push_str(&format!("history of {:?} (node = index of the answering node):\n", v.key));
            for r in ops {
                let node = r.node.map_or("-".to_string(), |n| n.to_string());
                let at = format!("{}..{}", clock.wall(r.op.invoke), clock.wall(r.op.complete));
                out.push_str(&format!("  {at} node {node}: {}\n", r.op));
            }
        }
        out
    }

    /// Checks the whole record for per-key linearizability.
    pub fn check(&self) -> linearizable::Report {
        let ops: Vec<Op> = self.records().into_iter().map(|r| r.op).collect();
        linearizable::check(&ops, linearizable::DEFAULT_MAX_STEPS)
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop();
    }
}
