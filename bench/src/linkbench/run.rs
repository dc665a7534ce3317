//! The phases of a LinkBench run against one target: the load (with memory measured
//! around it), the timed operation mix, the link-list read throughput test and the 2-hop
//! latency test. Each phase drives many connections, each writing a pipeline of commands
//! with one write and reading the replies in order; an operation's latency runs from the
//! write of its pipeline to the reply that completes it (so at depth > 1 it includes the
//! wait behind the other commands of the pipeline, as redis-benchmark's does).
//!
//! Every phase talks to an [`Endpoint`]: one node, or a cluster through the slot-aware
//! [`ClusterClient`](crate::cluster::ClusterClient), which follows redirects and retries
//! transient refusals itself; an error reply that survives that is counted against its
//! operation (CROSSSHARD refusals apart), never fatal to the run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use super::{add_edge, delete_node_followup, load_vertex, op_commands, Graph, OpArgs, OpKind, Target, EDGE_TYPE, OPS};
use crate::client::{Client, Reply};
use crate::cluster::{data_nodes, Conn, RouteStats};

/// Where a target listens: one node, or any node of a cluster (`cluster`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: String,
    pub cluster: bool,
}

impl Endpoint {
    pub async fn connect(&self) -> Result<Conn> {
        Conn::connect(&self.addr, self.cluster).await
    }

    /// Sum of `used_memory` over the nodes that hold the data (a cluster's masters).
    pub async fn used_memory(&self) -> Result<u64> {
        let mut total = 0;
        for addr in data_nodes(&self.addr, self.cluster).await? {
            total += Client::connect(&addr).await?.used_memory().await?;
        }
        Ok(total)
    }

    /// Sends a keyless command (FLUSHALL, DBSIZE) to every data node; integer replies summed.
    pub async fn each_node(&self, args: &[&str]) -> Result<i64> {
        let mut total = 0;
        for addr in data_nodes(&self.addr, self.cluster).await? {
            match Client::connect(&addr).await?.call(args).await? {
                Reply::Int(n) => total += n,
                Reply::Error(e) => bail!("{addr}: {}: {e}", args.join(" ")),
                _ => {}
            }
        }
        Ok(total)
    }
}

/// Microsecond histogram up to a minute, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// What the load phase measured.
#[derive(Debug, Default, Clone)]
pub struct LoadStats {
    pub vertex_secs: f64,
    pub edge_secs: f64,
    pub mem_empty: u64,
    pub mem_vertices: u64,
    pub mem_edges: u64,
    pub errors: u64,
}

/// Sends `cmds` over `conns` connections in pipelines of `batch`; returns error replies.
async fn pipelined(ep: &Endpoint, cmds: Vec<Vec<String>>, conns: usize, batch: usize) -> Result<u64> {
    let cmds = Arc::new(cmds);
    let per = cmds.len().div_ceil(conns.max(1)).max(1);
    let mut tasks = Vec::new();
    for start in (0..cmds.len()).step_by(per) {
        let (cmds, ep) = (cmds.clone(), ep.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = ep.connect().await?;
            let mut errors = 0u64;
            let end = (start + per).min(cmds.len());
            for chunk in cmds[start..end].chunks(batch) {
                chunk.iter().for_each(|cmd| c.push(cmd));
                c.flush().await?;
                for _ in chunk {
                    if let Reply::Error(_) = c.read().await? {
                        errors += 1;
                    }
                }
            }
            Ok::<u64, anyhow::Error>(errors)
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await??;
    }
    Ok(errors)
}

/// Loads `graph` into an empty target and measures `used_memory` around each half.
pub async fn load(target: Target, ep: &Endpoint, graph: &Graph, conns: usize, batch: usize) -> Result<LoadStats> {
    let mut s = LoadStats { mem_empty: ep.used_memory().await?, ..LoadStats::default() };
    let keys = graph.keys;
    let vertices: Vec<Vec<String>> =
        (1..=graph.vertices).flat_map(|id| load_vertex(target, keys, id, &graph.payload)).collect();
    let t = Instant::now();
    s.errors += pipelined(ep, vertices, conns, batch).await?;
    s.vertex_secs = t.elapsed().as_secs_f64();
    s.mem_vertices = ep.used_memory().await?;
    let edges: Vec<Vec<String>> =
        graph.edges.iter().enumerate().flat_map(|(i, &(a, b))| add_edge(target, keys, a, b, i as i64 + 1)).collect();
    let t = Instant::now();
    s.errors += pipelined(ep, edges, conns, batch).await?;
    s.edge_secs = t.elapsed().as_secs_f64();
    s.mem_edges = ep.used_memory().await?;
    Ok(s)
}

/// Per-target state that persists across the alternating rounds of a run.
pub struct RunState {
    pub next_id: AtomicU64,
    pub next_rank: AtomicI64,
}

impl RunState {
    pub fn new(graph: &Graph) -> RunState {
        RunState {
            next_id: AtomicU64::new(graph.vertices + 1),
            next_rank: AtomicI64::new(graph.edges.len() as i64 + 1),
        }
    }
}

/// Per-operation histograms and counts of one target's run.
pub struct MixStats {
    pub hist: Vec<Histogram<u64>>,
    /// Operations answered with an error (CROSSSHARD refusals not included).
    pub errors: Vec<u64>,
    /// Operations refused with -CROSSSHARD (edges across shards, before the outbox).
    pub crossshard: Vec<u64>,
    /// A sample of the error texts (the first few distinct ones).
    pub samples: Vec<String>,
    pub route: RouteStats,
    pub secs: f64,
}

impl MixStats {
    pub fn new() -> MixStats {
        MixStats {
            hist: OPS.iter().map(|_| histogram()).collect(),
            errors: vec![0; OPS.len()],
            crossshard: vec![0; OPS.len()],
            samples: Vec::new(),
            route: RouteStats::default(),
            secs: 0.0,
        }
    }

    pub fn merge(&mut self, other: &MixStats) {
        for (h, o) in self.hist.iter_mut().zip(&other.hist) {
            h.add(o).expect("same bounds");
        }
        for (e, o) in self.errors.iter_mut().zip(&other.errors) {
            *e += o;
        }
        for (e, o) in self.crossshard.iter_mut().zip(&other.crossshard) {
            *e += o;
        }
        for s in &other.samples {
            self.sample(s);
        }
        self.route.merge(&other.route);
        self.secs += other.secs;
    }

    fn sample(&mut self, err: &str) {
        let short: String = err.chars().take(120).collect();
        if self.samples.len() < 8 && !self.samples.contains(&short) {
            self.samples.push(short);
        }
    }

    /// Counts an operation's error reply.
    fn error(&mut self, op: OpKind, err: &str) {
        if err.starts_with("CROSSSHARD") {
            self.crossshard[op.index()] += 1;
        } else {
            self.errors[op.index()] += 1;
            self.sample(err);
        }
    }

    pub fn total_ops(&self) -> u64 {
        self.hist.iter().map(|h| h.len()).sum()
    }
}

impl Default for MixStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Settings of the timed mix.
#[derive(Clone)]
pub struct MixConfig {
    pub conns: usize,
    pub depth: usize,
    pub zipf_s: f64,
    pub seed: u64,
    /// Operations completed so far, for a progress ticker.
    pub progress: Option<Arc<AtomicU64>>,
}

/// Runs the LinkBench mix against one target for `secs`.
pub async fn mix(
    target: Target,
    ep: &Endpoint,
    graph: Arc<Graph>,
    state: Arc<RunState>,
    cfg: &MixConfig,
    secs: f64,
) -> Result<MixStats> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..cfg.conns {
        let (graph, state, ep, cfg) = (graph.clone(), state.clone(), ep.clone(), cfg.clone());
        let seed =
            cfg.seed ^ (w as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ state.next_rank.load(Ordering::Relaxed) as u64;
        tasks.push(tokio::spawn(async move { mix_worker(target, &ep, &graph, &state, &cfg, deadline, seed).await }));
    }
    let mut total = MixStats::new();
    for t in tasks {
        total.merge(&t.await??);
    }
    total.secs = started.elapsed().as_secs_f64();
    Ok(total)
}

async fn mix_worker(
    target: Target,
    ep: &Endpoint,
    graph: &Graph,
    state: &RunState,
    cfg: &MixConfig,
    deadline: Instant,
    seed: u64,
) -> Result<MixStats> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let zipf = Zipf::new(graph.vertices as f64, cfg.zipf_s)?;
    let mut c = ep.connect().await?;
    let mut stats = MixStats::new();
    let keys = graph.keys;
    // A cluster without co-location has a vertex's three Redis keys in three slots.
    let split_del = ep.cluster && keys.groups == 0;
    while Instant::now() < deadline {
        // (op, its Zipf id, number of first-round replies)
        let mut batch: Vec<(OpKind, u64, usize)> = Vec::with_capacity(cfg.depth);
        for _ in 0..cfg.depth {
            let op = OpKind::pick(&mut rng);
            let (ls, ld) = graph.edges[rng.random_range(0..graph.edges.len())];
            let x = OpArgs {
                a: zipf.sample(&mut rng) as u64,
                b: rng.random_range(1..=graph.vertices),
                ls,
                ld,
                new_id: if op == OpKind::AddNode { state.next_id.fetch_add(1, Ordering::Relaxed) } else { 0 },
                rank: state.next_rank.fetch_add(1, Ordering::Relaxed),
                payload: &graph.payload,
            };
            let x = OpArgs { b: keys.colocate(x.a, x.b, graph.vertices), ..x };
            let cmds = op_commands(target, keys, op, &x);
            cmds.iter().for_each(|cmd| c.push(cmd));
            batch.push((op, x.a, cmds.len()));
        }
        let start = Instant::now();
        c.flush().await?;
        let mut done = Vec::with_capacity(batch.len());
        let mut followups: Vec<(usize, usize)> = Vec::new(); // (op index in batch, replies)
        for (i, &(op, a, n)) in batch.iter().enumerate() {
            let mut replies = Vec::with_capacity(n);
            for _ in 0..n {
                replies.push(c.read().await?);
            }
            if let Some(Reply::Error(e)) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
                stats.error(op, e);
            }
            if op == OpKind::DeleteNode && target == Target::Redis {
                let (mut outs, mut ins) = (Vec::new(), Vec::new());
                replies[0].bulks(&mut outs);
                replies[1].bulks(&mut ins);
                let cmds = delete_node_followup(keys, a, &outs, &ins, split_del);
                cmds.iter().for_each(|cmd| c.push(cmd));
                followups.push((i, cmds.len()));
            }
            done.push(Instant::now());
        }
        if !followups.is_empty() {
            c.flush().await?;
            for (i, n) in followups {
                let mut failed = None;
                for _ in 0..n {
                    if let Reply::Error(e) = c.read().await? {
                        failed = Some(e);
                    }
                }
                if let Some(e) = failed {
                    stats.error(batch[i].0, &e);
                }
                done[i] = Instant::now();
            }
        }
        for ((op, _, _), t) in batch.iter().zip(done) {
            stats.hist[op.index()].saturating_record(t.duration_since(start).as_micros().max(1) as u64);
        }
        if let Some(p) = &cfg.progress {
            p.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }
    stats.route = c.route_stats();
    Ok(stats)
}

/// Link-list page reads (E.RANGE LIMIT 10 / ZREVRANGE 0 9 WITHSCORES) on Zipf ids for
/// `secs`: returns (reads, seconds).
pub async fn range_reads(
    target: Target,
    ep: &Endpoint,
    graph: &Graph,
    cfg: &MixConfig,
    secs: f64,
) -> Result<(u64, f64)> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..cfg.conns {
        let (ep, cfg, n, keys) = (ep.clone(), cfg.clone(), graph.vertices, graph.keys);
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(cfg.seed.wrapping_add(w as u64));
            let zipf = Zipf::new(n as f64, cfg.zipf_s)?;
            let mut c = ep.connect().await?;
            let mut reads = 0u64;
            while Instant::now() < deadline {
                for _ in 0..cfg.depth {
                    let a = zipf.sample(&mut rng) as u64;
                    match target {
                        Target::Prism => c.push(&["E.RANGE", &keys.vid(a), EDGE_TYPE, "LIMIT", "10"]),
                        Target::Redis => c.push(&["ZREVRANGE", &keys.set("o", a), "0", "9", "WITHSCORES"]),
                    }
                }
                c.flush().await?;
                for _ in 0..cfg.depth {
                    if let Reply::Error(e) = c.read().await? {
                        bail!("{}: {e}", target.name());
                    }
                }
                reads += cfg.depth as u64;
            }
            Ok::<u64, anyhow::Error>(reads)
        }));
    }
    let mut reads = 0;
    for t in tasks {
        reads += t.await??;
    }
    Ok((reads, started.elapsed().as_secs_f64()))
}

/// One 2-hop query from `a` on one connection: returns (latency, size of the 2-hop layer).
/// Prism: `G.KHOP v:a 2 [LIMIT n]`. Redis, client-side: the out-set of `a`, then the
/// out-sets of all its neighbours in one pipeline, then the union minus `a` and hop 1.
pub async fn two_hop(target: Target, c: &mut Conn, graph: &Graph, a: u64, limit: usize) -> Result<(Duration, usize)> {
    let keys = graph.keys;
    let start = Instant::now();
    let size = match target {
        Target::Prism => {
            let mut args = vec!["G.KHOP".to_string(), keys.vid(a), "2".into()];
            if limit > 0 {
                args.extend(["LIMIT".to_string(), limit.to_string()]);
            }
            match c.call(&args).await? {
                Reply::Array(map) => match map.get(1) {
                    Some(Reply::Array(hops)) => match hops.get(1) {
                        Some(Reply::Array(layer)) => layer.len(),
                        _ => 0,
                    },
                    _ => bail!("G.KHOP: unexpected reply shape"),
                },
                Reply::Error(e) => bail!("G.KHOP: {e}"),
                _ => 0,
            }
        }
        Target::Redis => {
            let stop = if limit > 0 { (limit - 1).to_string() } else { "-1".into() };
            let mut hop1 = Vec::new();
            c.call(&["ZREVRANGE", &keys.set("o", a), "0", &stop]).await?.bulks(&mut hop1);
            hop1.retain(|m| super::Keys::id_of(m).is_some());
            for id in hop1.iter().filter_map(|m| super::Keys::id_of(m)) {
                c.push(&["ZREVRANGE", &keys.set("o", id), "0", &stop]);
            }
            c.flush().await?;
            let seen: HashSet<Vec<u8>> = hop1.iter().cloned().chain([keys.vid(a).into_bytes()]).collect();
            let mut hop2 = HashSet::new();
            for _ in 0..hop1.len() {
                let mut ms = Vec::new();
                c.read().await?.bulks(&mut ms);
                hop2.extend(ms.into_iter().filter(|m| !seen.contains(m)));
            }
            hop2.len()
        }
    };
    Ok((start.elapsed(), size))
}
