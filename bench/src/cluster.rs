//! A slot-aware pipelined client for benchmarks against a Redis Cluster (Prism's fleet or
//! redis-server processes), with the same push / flush / read shape as [`Client`], so a
//! workload runs unchanged against one node or a fleet ([`Conn`] picks at connect time).
//!
//! Routing: `CLUSTER SLOTS` at start maps every slot to its master; a command goes to the
//! master of the slot of its first argument (`args[1]`: the key of every command the
//! workloads send; a keyless command goes to the first master). Each master gets one
//! connection, opened on first use; a pipeline is split per master and each part written
//! with one write on [`ClusterClient::flush`]; replies are handed back in push order.
//!
//! Faults are answered, never fatal (a benchmark counts errors, it does not stop on them):
//! - `-MOVED slot addr`: the slot is pointed at `addr` at once, the whole map re-read from
//!   `CLUSTER SLOTS` (at most every [`REFRESH_GAP`]), the command re-sent there;
//! - `-ASK slot addr`: `ASKING` + the command to `addr`, the map unchanged;
//! - `-TRYAGAIN`, `-CLUSTERDOWN`, `-LOADING`, a refused or broken connection: back off
//!   (doubling from [`BACKOFF_START`]), re-read the map, re-send.
//!
//! A re-sent command goes over a side connection per address that never has anything in
//! flight, so a retry never waits behind (or mixes with) a pipeline. Retries of one command
//! are bounded by [`MAX_ATTEMPTS`]; after that its last error is its reply (a connection
//! failure becomes `-CONNERR ...`). Invariant: every pushed command gets exactly one reply,
//! in push order. A command whose connection broke after it was written is re-sent, so it
//! may run twice (the workloads' writes are idempotent or counted as such).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use prism_engine::Slot;

use crate::client::{Client, Reply};

pub const SLOTS: usize = 16384;
/// Tries of one command, the first included.
pub const MAX_ATTEMPTS: u32 = 8;
pub const BACKOFF_START: Duration = Duration::from_millis(5);
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Shortest time between two full map refreshes caused by redirects.
pub const REFRESH_GAP: Duration = Duration::from_millis(100);

/// The slot of a key, hash tags included (the same CRC16 the servers use).
pub fn key_slot(key: &[u8]) -> u16 {
    Slot::of_key(key).get()
}

/// A redirect or a transient refusal in an error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    Moved {
        slot: u16,
        addr: String,
    },
    Ask {
        slot: u16,
        addr: String,
    },
    /// TRYAGAIN, CLUSTERDOWN, LOADING (and a failed connection): wait and re-send.
    Retry,
}

/// Classifies an error reply's text (without the leading `-`); `None`: a final error.
pub fn redirect(err: &str) -> Option<Redirect> {
    let mut words = err.split_ascii_whitespace();
    let kind = words.next()?;
    let mut target = || -> Option<(u16, String)> {
        let slot = words.next()?.parse::<u16>().ok().filter(|s| (*s as usize) < SLOTS)?;
        let addr = words.next()?;
        addr.rsplit_once(':')?.1.parse::<u16>().ok()?;
        Some((slot, addr.to_string()))
    };
    match kind {
        "MOVED" => target().map(|(slot, addr)| Redirect::Moved { slot, addr }),
        "ASK" => target().map(|(slot, addr)| Redirect::Ask { slot, addr }),
        "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" => Some(Redirect::Retry),
        _ => None,
    }
}

/// Slot ranges and master addresses from a `CLUSTER SLOTS` reply. An empty host means
/// "the host you asked" (`asked_host`), as Redis 7 allows.
pub fn parse_slots(reply: &Reply, asked_host: &str) -> Result<Vec<(u16, u16, String)>> {
    let Reply::Array(ranges) = reply else { bail!("CLUSTER SLOTS: {reply:?}") };
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let Reply::Array(f) = r else { bail!("CLUSTER SLOTS: a range is not an array") };
        let (Some(Reply::Int(a)), Some(Reply::Int(b)), Some(Reply::Array(master))) = (f.first(), f.get(1), f.get(2))
        else {
            bail!("CLUSTER SLOTS: bad range entry")
        };
        let (Some(Reply::Bulk(host)), Some(Reply::Int(port))) = (master.first(), master.get(1)) else {
            bail!("CLUSTER SLOTS: bad master entry")
        };
        if !(0..SLOTS as i64).contains(a) || !(*a..SLOTS as i64).contains(b) || !(1..=65535).contains(port) {
            bail!("CLUSTER SLOTS: range {a}-{b} port {port} out of bounds");
        }
        let host = if host.is_empty() { asked_host.to_string() } else { String::from_utf8_lossy(host).into_owned() };
        out.push((*a as u16, *b as u16, format!("{host}:{port}")));
    }
    Ok(out)
}

/// Counters of what the client did besides sending each command once.
#[derive(Debug, Default, Clone, Copy)]
pub struct RouteStats {
    pub moved: u64,
    pub ask: u64,
    pub retries: u64,
    pub conn_errors: u64,
    pub refreshes: u64,
    /// Commands that still failed after [`MAX_ATTEMPTS`] (their reply is an error).
    pub gave_up: u64,
}

impl RouteStats {
    pub fn merge(&mut self, o: &RouteStats) {
        self.moved += o.moved;
        self.ask += o.ask;
        self.retries += o.retries;
        self.conn_errors += o.conn_errors;
        self.refreshes += o.refreshes;
        self.gave_up += o.gave_up;
    }
}

struct Node {
    addr: String,
    conn: Option<Client>,
    /// Bumped when the connection is dropped: commands written on an older one are lost.
    generation: u64,
}

struct Pending {
    node: usize,
    generation: u64,
    args: Vec<Vec<u8>>,
    /// Written to `node` (false: still to write at the next flush, or the write failed).
    sent: bool,
}

pub struct ClusterClient {
    seeds: Vec<String>,
    nodes: Vec<Node>,
    /// slot -> index into `nodes`
    map: Vec<usize>,
    queue: VecDeque<Pending>,
    side: HashMap<String, Client>,
    last_refresh: Option<Instant>,
    pub stats: RouteStats,
}

impl ClusterClient {
    /// Reads the slot map from `seed`; fails if no node answers or a slot has no master.
    pub async fn connect(seed: &str) -> Result<ClusterClient> {
        let mut c = ClusterClient {
            seeds: vec![seed.to_string()],
            nodes: Vec::new(),
            map: vec![usize::MAX; SLOTS],
            queue: VecDeque::new(),
            side: HashMap::new(),
            last_refresh: None,
            stats: RouteStats::default(),
        };
        c.refresh().await?;
        if let Some(slot) = c.map.iter().position(|&n| n == usize::MAX) {
            bail!("{seed}: slot {slot} has no master in CLUSTER SLOTS");
        }
        Ok(c)
    }

    /// The masters' addresses, as of the last map.
    pub fn masters(&self) -> Vec<String> {
        let mut used: Vec<usize> = self.map.iter().copied().filter(|&n| n != usize::MAX).collect();
        used.sort_unstable();
        used.dedup();
        used.into_iter().map(|n| self.nodes[n].addr.clone()).collect()
    }

    fn node_index(&mut self, addr: &str) -> usize {
        if let Some(i) = self.nodes.iter().position(|n| n.addr == addr) {
            return i;
        }
        self.nodes.push(Node { addr: addr.to_string(), conn: None, generation: 0 });
        self.nodes.len() - 1
    }

    /// Re-reads `CLUSTER SLOTS` from the first node that answers (known masters, then seeds).
    pub async fn refresh(&mut self) -> Result<()> {
        self.last_refresh = Some(Instant::now());
        self.stats.refreshes += 1;
        let mut asked: Vec<String> = self.masters();
        asked.extend(self.seeds.iter().cloned());
        let mut last = anyhow!("no node to ask");
        for addr in asked {
            let host = addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h).to_string();
            let reply = match self.side_call(&addr, &[b"CLUSTER".to_vec(), b"SLOTS".to_vec()]).await {
                Ok(r) => r,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match parse_slots(&reply, &host) {
                Ok(ranges) if !ranges.is_empty() => {
                    for (a, b, master) in ranges {
                        let n = self.node_index(&master);
                        self.map[a as usize..=b as usize].iter_mut().for_each(|m| *m = n);
                    }
                    return Ok(());
                }
                Ok(_) => last = anyhow!("{addr}: CLUSTER SLOTS is empty"),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One command on the side connection to `addr` (opened if needed, dropped on failure).
    async fn side_call(&mut self, addr: &str, args: &[Vec<u8>]) -> Result<Reply> {
        if !self.side.contains_key(addr) {
            let c = tokio::time::timeout(Duration::from_secs(2), Client::connect(addr))
                .await
                .map_err(|_| anyhow!("connect {addr}: timed out"))??;
            self.side.insert(addr.to_string(), c);
        }
        let c = self.side.get_mut(addr).ok_or_else(|| anyhow!("side connection vanished"))?;
        match tokio::time::timeout(Duration::from_secs(10), c.call(args)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.side.remove(addr);
                Err(e)
            }
            Err(_) => {
                self.side.remove(addr);
                bail!("{addr}: no reply within 10 s")
            }
        }
    }

    fn route(&self, args: &[Vec<u8>]) -> usize {
        let slot = args.get(1).map_or(0, |k| key_slot(k));
        self.map[slot as usize]
    }

    pub fn push<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_ref().to_vec()).collect();
        let node = self.route(&args);
        self.queue.push_back(Pending { node, generation: 0, args, sent: false });
    }

    /// Writes every unsent command, one write per master.
    pub async fn flush(&mut self) -> Result<()> {
        let mut touched = Vec::new();
        for i in 0..self.queue.len() {
            if self.queue[i].sent {
                continue;
            }
            let n = self.queue[i].node;
            if self.nodes[n].conn.is_none() {
                match tokio::time::timeout(Duration::from_secs(2), Client::connect(&self.nodes[n].addr)).await {
                    Ok(Ok(c)) => self.nodes[n].conn = Some(c),
                    _ => {
                        // Unreachable now: left unsent; read() retries it.
                        self.stats.conn_errors += 1;
                        continue;
                    }
                }
            }
            let node = &mut self.nodes[n];
            if let Some(c) = node.conn.as_mut() {
                c.push(&self.queue[i].args);
                self.queue[i].sent = true;
                self.queue[i].generation = node.generation;
                if !touched.contains(&n) {
                    touched.push(n);
                }
            }
        }
        for n in touched {
            let node = &mut self.nodes[n];
            if let Some(c) = node.conn.as_mut() {
                if c.flush().await.is_err() {
                    self.stats.conn_errors += 1;
                    drop_conn(node);
                }
            }
        }
        Ok(())
    }

    /// The reply to the oldest command pushed and not yet read.
    pub async fn read(&mut self) -> Result<Reply> {
        let Some(p) = self.queue.pop_front() else { bail!("read with no command pending") };
        let node = &mut self.nodes[p.node];
        let first = match node.conn.as_mut() {
            Some(c) if p.sent && node.generation == p.generation => {
                match tokio::time::timeout(Duration::from_secs(30), c.read()).await {
                    Ok(Ok(r)) => Some(r),
                    _ => {
                        self.stats.conn_errors += 1;
                        drop_conn(node);
                        None
                    }
                }
            }
            _ => None,
        };
        let redirect = match &first {
            Some(Reply::Error(e)) => redirect(e),
            Some(_) => None,
            None => Some(Redirect::Retry),
        };
        match redirect {
            None => first.ok_or_else(|| anyhow!("unreachable: no reply and no redirect")),
            Some(r) => Ok(self.resend(p.args, r, first).await),
        }
    }

    /// Sends one command and returns its reply (through the pipeline path).
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply> {
        self.push(args);
        self.flush().await?;
        self.read().await
    }

    /// Follows redirects and retries for one command; bounded by [`MAX_ATTEMPTS`].
    async fn resend(&mut self, args: Vec<Vec<u8>>, mut why: Redirect, mut last: Option<Reply>) -> Reply {
        let mut backoff = BACKOFF_START;
        for _ in 1..MAX_ATTEMPTS {
            let (addr, asking) = match &why {
                Redirect::Moved { slot, addr } => {
                    self.stats.moved += 1;
                    let n = self.node_index(addr);
                    self.map[*slot as usize] = n;
                    if self.last_refresh.is_none_or(|t| t.elapsed() >= REFRESH_GAP) {
                        let _ = self.refresh().await;
                    }
                    (addr.clone(), false)
                }
                Redirect::Ask { addr, .. } => {
                    self.stats.ask += 1;
                    (addr.clone(), true)
                }
                Redirect::Retry => {
                    self.stats.retries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    let _ = self.refresh().await;
                    let n = self.route(&args);
                    (self.nodes[n].addr.clone(), false)
                }
            };
            if asking && self.side_call(&addr, &[b"ASKING".to_vec()]).await.is_err() {
                self.stats.conn_errors += 1;
                why = Redirect::Retry;
                continue;
            }
            match self.side_call(&addr, &args).await {
                Ok(Reply::Error(e)) => match redirect(&e) {
                    Some(r) => {
                        why = r;
                        last = Some(Reply::Error(e));
                    }
                    None => return Reply::Error(e),
                },
                Ok(r) => return r,
                Err(e) => {
                    self.stats.conn_errors += 1;
                    why = Redirect::Retry;
                    last = Some(Reply::Error(format!("CONNERR {e}")));
                }
            }
        }
        self.stats.gave_up += 1;
        last.unwrap_or_else(|| Reply::Error("CONNERR no reply".into()))
    }
}

fn drop_conn(node: &mut Node) {
    node.conn = None;
    node.generation += 1;
}

/// One node or a cluster behind one interface, so a workload is written once.
pub enum Conn {
    Single(Client),
    Cluster(Box<ClusterClient>),
}

impl Conn {
    /// `cluster`: `addr` is a seed node of a cluster (routed by slot); else one node.
    pub async fn connect(addr: &str, cluster: bool) -> Result<Conn> {
        Ok(if cluster {
            Conn::Cluster(Box::new(ClusterClient::connect(addr).await?))
        } else {
            Conn::Single(Client::connect(addr).await?)
        })
    }

    pub fn push<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        match self {
            Conn::Single(c) => c.push(args),
            Conn::Cluster(c) => c.push(args),
        }
    }

    pub async fn flush(&mut self) -> Result<()> {
        match self {
            Conn::Single(c) => c.flush().await,
            Conn::Cluster(c) => c.flush().await,
        }
    }

    pub async fn read(&mut self) -> Result<Reply> {
        match self {
            Conn::Single(c) => c.read().await,
            Conn::Cluster(c) => c.read().await,
        }
    }

    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply> {
        self.push(args);
        self.flush().await?;
        self.read().await
    }

    pub fn route_stats(&self) -> RouteStats {
        match self {
            Conn::Single(_) => RouteStats::default(),
            Conn::Cluster(c) => c.stats,
        }
    }
}

/// The addresses that hold the data: the masters of a cluster, or the one node.
pub async fn data_nodes(addr: &str, cluster: bool) -> Result<Vec<String>> {
    if !cluster {
        return Ok(vec![addr.to_string()]);
    }
    Ok(ClusterClient::connect(addr).await?.masters())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from Redis's CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b"123456789"), 12739);
        // Hash tags: only the tag is hashed; an empty tag hashes the whole key.
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"{user1000}.following"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn redirects_are_parsed() {
        assert_eq!(
            redirect("MOVED 3999 127.0.0.1:6381"),
            Some(Redirect::Moved { slot: 3999, addr: "127.0.0.1:6381".into() })
        );
        assert_eq!(redirect("ASK 12 10.0.0.2:7002"), Some(Redirect::Ask { slot: 12, addr: "10.0.0.2:7002".into() }));
        assert_eq!(redirect("TRYAGAIN The shard has no leader right now; retry shortly."), Some(Redirect::Retry));
        assert_eq!(redirect("CLUSTERDOWN Hash slot not served"), Some(Redirect::Retry));
        // Final errors and malformed redirects are not followed.
        assert_eq!(redirect("CROSSSHARD the edge's endpoints are served by different shards"), None);
        assert_eq!(redirect("MOVED 16384 127.0.0.1:1"), None);
        assert_eq!(redirect("MOVED x 127.0.0.1:1"), None);
        assert_eq!(redirect("MOVED 1 nowhere"), None);
        assert_eq!(redirect("MOVED 1"), None);
        assert_eq!(redirect(""), None);
        assert_eq!(redirect("ERR wrong number of arguments"), None);
    }

    #[test]
    fn cluster_slots_reply_is_parsed() {
        let node =
            |h: &str, p: i64| Reply::Array(vec![Reply::Bulk(h.into()), Reply::Int(p), Reply::Bulk(b"id".to_vec())]);
        let reply = Reply::Array(vec![
            Reply::Array(vec![Reply::Int(0), Reply::Int(5460), node("127.0.0.1", 7000), node("127.0.0.1", 7003)]),
            Reply::Array(vec![Reply::Int(5461), Reply::Int(16383), node("", 7001)]),
        ]);
        assert_eq!(
            parse_slots(&reply, "10.1.1.1").unwrap(),
            vec![(0, 5460, "127.0.0.1:7000".into()), (5461, 16383, "10.1.1.1:7001".into())]
        );
        let bad = Reply::Array(vec![Reply::Array(vec![Reply::Int(5), Reply::Int(99999), node("h", 1)])]);
        assert!(parse_slots(&bad, "h").is_err());
        assert!(parse_slots(&Reply::Error("ERR This instance has cluster support disabled".into()), "h").is_err());
    }
}
