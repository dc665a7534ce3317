//! `linkbench`: the LinkBench-style graph workload against Prism and/or a Redis server,
//! side by side in one invocation (see prism_bench::linkbench for the model).
//!
//! Phases, each target in turn: load (memory per edge from INFO used_memory, and RSS when
//! a pid is given), link-list read throughput (E.RANGE LIMIT 10 vs ZREVRANGE 0 9
//! WITHSCORES), 2-hop latency (G.KHOP vs client-side fan-out), all on identical graphs;
//! then the timed operation mix, split into rounds that alternate between targets so
//! drift on the machine hits both alike. Prints a report and writes an HTML latency plot.
//!
//! bench/scripts/linkbench starts both servers and runs this.
//!
//! Against clusters (`--cluster`: the addresses are seed nodes of a Prism fleet or a Redis
//! Cluster), every phase goes through the slot-aware client, memory and DBSIZE are summed
//! over the masters, and the report adds the client's redirects and retries and the error
//! rate (CROSSSHARD refusals counted apart). `--colocate` keeps each edge inside a hash tag
//! group; `--write-csv DIR` writes the graph as `prism load` input and exits, and
//! `--skip-load` then runs on a graph loaded that way (bench/scripts/fleet-48).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use prism_bench::linkbench::run::{self, histogram, Endpoint, LoadStats, MixConfig, MixStats, RunState};
use prism_bench::linkbench::{export, Graph, Keys, Target, OPS};
use prism_bench::plot::{self, Chart};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum TargetArg {
    Prism,
    Redis,
}

#[derive(Parser, Debug)]
#[command(about = "LinkBench-style graph workload: Prism's graph commands vs the Redis model")]
struct Args {
    /// Targets to run, in order (repeat: --target prism --target redis).
    #[arg(long = "target", value_enum, default_values_t = [TargetArg::Prism, TargetArg::Redis])]
    targets: Vec<TargetArg>,
    #[arg(long, default_value = "127.0.0.1:6379")]
    prism_addr: String,
    #[arg(long, default_value = "127.0.0.1:6380")]
    redis_addr: String,
    /// Pid of the prism server, to report its RSS growth too.
    #[arg(long)]
    prism_pid: Option<u32>,
    #[arg(long)]
    redis_pid: Option<u32>,
    /// Empty each target first (FLUSHALL); without it a non-empty target is refused.
    #[arg(long)]
    flush: bool,
    #[arg(long, default_value_t = 20_000)]
    vertices: u64,
    #[arg(long, default_value_t = 100_000)]
    edges: usize,
    /// Zipf exponent of the degree and id distributions.
    #[arg(long, default_value_t = 0.9)]
    zipf: f64,
    /// Bytes of each vertex's `data` property.
    #[arg(long, default_value_t = 64)]
    node_bytes: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Client connections per target.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Operations pipelined per connection in the mix.
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Commands per pipeline in the load phase.
    #[arg(long, default_value_t = 256)]
    load_batch: usize,
    /// Seconds of the timed mix per target.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Alternating rounds the mix and the read test are split into.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Seconds of the link-list read test per target.
    #[arg(long, default_value_t = 4.0)]
    range_secs: f64,
    /// Pipeline depth of the link-list read test.
    #[arg(long, default_value_t = 16)]
    range_depth: usize,
    /// 2-hop queries per target (start vertices with out-edges, uniform).
    #[arg(long, default_value_t = 300)]
    khop_samples: usize,
    /// Edges followed per vertex in the 2-hop test (0: all).
    #[arg(long, default_value_t = 0)]
    khop_limit: usize,
    /// Where to write the HTML latency plot.
    #[arg(long, default_value = "linkbench.html")]
    html: String,
    /// The addresses are seed nodes of clusters (Prism fleet, Redis Cluster): route by slot.
    #[arg(long)]
    cluster: bool,
    /// Keep every edge inside its source's hash-tag group (see --colocate-groups), so both
    /// halves share a slot: runs on a fleet that refuses cross-shard edges (-CROSSSHARD).
    #[arg(long)]
    colocate: bool,
    /// Hash-tag groups with --colocate (a vertex has at most vertices/groups neighbours).
    #[arg(long, default_value_t = 512)]
    colocate_groups: u64,
    /// Write the graph as `prism load` CSV input (vertices.csv, edges.csv) here and exit.
    #[arg(long)]
    write_csv: Option<PathBuf>,
    /// The graph is already loaded (by `prism load` from --write-csv with the same
    /// generation flags): no emptiness check, no load phase.
    #[arg(long)]
    skip_load: bool,
    /// Print the mix's operations per second every this many seconds (0: never).
    #[arg(long, default_value_t = 0.0)]
    progress: f64,
}

struct TargetRun {
    target: Target,
    ep: Endpoint,
    pid: Option<u32>,
    load: LoadStats,
    rss_growth: Option<i64>,
    range: (u64, f64),
    khop: Histogram<u64>,
    mix: MixStats,
}

fn rss_kb(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn pct(h: &Histogram<u64>, p: f64) -> String {
    if h.is_empty() {
        return "-".into();
    }
    let us = h.value_at_percentile(p);
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}µs")
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    if a.vertices < 2 || a.edges == 0 || a.connections == 0 || a.depth == 0 || a.rounds == 0 || a.zipf <= 0.0 {
        bail!("need --vertices >= 2, --edges, --connections, --depth, --rounds >= 1 and --zipf > 0");
    }
    let mut runs: Vec<TargetRun> = Vec::new();
    for t in &a.targets {
        let (target, addr, pid) = match t {
            TargetArg::Prism => (Target::Prism, a.prism_addr.clone(), a.prism_pid),
            TargetArg::Redis => (Target::Redis, a.redis_addr.clone(), a.redis_pid),
        };
        if runs.iter().any(|r| r.target == target) {
            continue;
        }
        runs.push(TargetRun {
            target,
            ep: Endpoint { addr, cluster: a.cluster },
            pid,
            load: LoadStats::default(),
            rss_growth: None,
            range: (0, 0.0),
            khop: histogram(),
            mix: MixStats::new(),
        });
    }
    if a.colocate && (a.colocate_groups == 0 || a.colocate_groups > a.vertices / 2) {
        bail!("--colocate-groups must be between 1 and vertices / 2");
    }
    let keys = Keys { groups: if a.colocate { a.colocate_groups } else { 0 } };
    eprintln!(
        "generating {} vertices, {} edges (zipf {}, seed {}, co-location groups {})",
        a.vertices, a.edges, a.zipf, a.seed, keys.groups
    );
    let graph = Arc::new(Graph::generate(a.vertices, a.edges, a.zipf, a.node_bytes, a.seed, keys));
    if let Some(dir) = &a.write_csv {
        let (v, e) = export::write_csv(&graph, dir)?;
        println!("{} ({} vertices), {} ({} edges)", v.display(), graph.vertices, e.display(), graph.edges.len());
        return Ok(());
    }

    for r in runs.iter_mut() {
        if a.skip_load {
            break;
        }
        let name = r.target.name();
        if a.flush {
            r.ep.each_node(&["FLUSHALL"]).await.with_context(|| format!("{name} at {}", r.ep.addr))?;
        }
        if r.ep.each_node(&["DBSIZE"]).await.with_context(|| format!("{name} at {}", r.ep.addr))? != 0 {
            bail!("{name} at {} is not empty (pass --flush to empty it)", r.ep.addr);
        }
        eprintln!("{name}: loading");
        let rss0 = r.pid.and_then(rss_kb);
        r.load = run::load(r.target, &r.ep, &graph, a.connections, a.load_batch).await?;
        r.rss_growth = rss0.zip(r.pid.and_then(rss_kb)).map(|(b, e)| (e - b) * 1024);
    }

    let progress = (a.progress > 0.0).then(|| Arc::new(AtomicU64::new(0)));
    let cfg = MixConfig { conns: a.connections, depth: a.depth, zipf_s: a.zipf, seed: a.seed, progress: None };
    let range_cfg = MixConfig { depth: a.range_depth, ..cfg.clone() };
    if a.range_secs > 0.0 {
        eprintln!("link-list read throughput");
        for _ in 0..a.rounds {
            for r in runs.iter_mut() {
                let (n, s) =
                    run::range_reads(r.target, &r.ep, &graph, &range_cfg, a.range_secs / a.rounds as f64).await?;
                r.range.0 += n;
                r.range.1 += s;
            }
        }
    }

    if a.khop_samples > 0 {
        eprintln!("2-hop latency");
    }
    let degrees = graph.out_degrees();
    let starts: Vec<u64> = (1..=graph.vertices).filter(|&v| degrees[v as usize] > 0).collect();
    let mut rng = SmallRng::seed_from_u64(a.seed);
    let mut conns = Vec::new();
    for r in &runs {
        conns.push(r.ep.connect().await?);
    }
    let mut size_mismatches = 0;
    for _ in 0..a.khop_samples {
        let Some(&v) = starts.get(rng.random_range(0..starts.len().max(1))) else { break };
        let mut sizes = Vec::new();
        for (r, c) in runs.iter_mut().zip(conns.iter_mut()) {
            let (lat, size) = run::two_hop(r.target, c, &graph, v, a.khop_limit).await?;
            r.khop.saturating_record(lat.as_micros().max(1) as u64);
            sizes.push(size);
        }
        // Both answer the same question on the same graph (before the mix changes it).
        if a.khop_limit == 0 && sizes.windows(2).any(|w| w[0] != w[1]) {
            size_mismatches += 1;
        }
    }
    drop(conns);

    eprintln!("timed mix: {} s per target in {} alternating rounds", a.duration, a.rounds);
    let states: Vec<Arc<RunState>> = runs.iter().map(|_| Arc::new(RunState::new(&graph))).collect();
    let ticker = progress.clone().map(|p| tokio::spawn(tick(p, a.progress)));
    for round in 0..a.rounds {
        for (i, r) in runs.iter_mut().enumerate() {
            let cfg = MixConfig {
                seed: a.seed.wrapping_add(round as u64 * 1000 + i as u64),
                progress: progress.clone(),
                ..cfg.clone()
            };
            let s =
                run::mix(r.target, &r.ep, graph.clone(), states[i].clone(), &cfg, a.duration / a.rounds as f64).await?;
            r.mix.merge(&s);
        }
    }
    if let Some(t) = ticker {
        t.abort();
    }

    let report = report(&a, &graph, &runs, size_mismatches);
    print!("{report}");
    let mut charts = Vec::new();
    let mut alls: Vec<Histogram<u64>> = Vec::new();
    for r in &runs {
        let mut all = histogram();
        r.mix.hist.iter().for_each(|h| all.add(h).expect("same bounds"));
        alls.push(all);
    }
    charts.push(Chart {
        title: "all operations".into(),
        series: runs.iter().zip(&alls).map(|(r, h)| (r.target.name(), h)).collect(),
    });
    for (i, (_, name, _)) in OPS.iter().enumerate() {
        charts.push(Chart {
            title: name.to_string(),
            series: runs.iter().map(|r| (r.target.name(), &r.mix.hist[i])).collect(),
        });
    }
    charts.push(Chart {
        title: format!(
            "2-hop ({})",
            if a.khop_limit == 0 { "all edges".into() } else { format!("limit {}", a.khop_limit) }
        ),
        series: runs.iter().map(|r| (r.target.name(), &r.khop)).collect(),
    });
    std::fs::write(&a.html, plot::html("LinkBench: Prism vs Redis", &report, &charts))
        .with_context(|| format!("write {}", a.html))?;
    eprintln!("latency plot: {}", a.html);
    Ok(())
}

/// Prints the mix's throughput every `every` seconds (stderr), so a fault's dip shows.
async fn tick(done: Arc<AtomicU64>, every: f64) {
    let start = Instant::now();
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs_f64(every)).await;
        let now = done.load(Ordering::Relaxed);
        eprintln!("progress t={:.0}s ops/s={:.0}", start.elapsed().as_secs_f64(), (now - last) as f64 / every);
        last = now;
    }
}

fn report(a: &Args, graph: &Graph, runs: &[TargetRun], size_mismatches: usize) -> String {
    let mut s = String::new();
    let m = graph.edges.len() as f64;
    let _ = writeln!(
        s,
        "# {} vertices, {} edges, zipf {}, node data {} B; {} connections, depth {}; mix {} s per target in {} rounds",
        graph.vertices,
        graph.edges.len(),
        a.zipf,
        a.node_bytes,
        a.connections,
        a.depth,
        a.duration,
        a.rounds
    );
    if !a.skip_load {
        let _ = writeln!(s, "\n## load and memory");
    }
    for r in runs.iter().filter(|_| !a.skip_load) {
        let l = &r.load;
        let _ = writeln!(
            s,
            "{:<6} vertices {:.2} s ({:.0}/s), edges {:.2} s ({:.0}/s), errors {}; used_memory per edge {:.1} B, \
             per vertex {:.1} B{}",
            r.target.name(),
            l.vertex_secs,
            graph.vertices as f64 / l.vertex_secs,
            l.edge_secs,
            m / l.edge_secs,
            l.errors,
            l.mem_edges.saturating_sub(l.mem_vertices) as f64 / m,
            l.mem_vertices.saturating_sub(l.mem_empty) as f64 / graph.vertices as f64,
            r.rss_growth
                .map(|g| format!(", RSS growth over the load {:.1} B per edge", g as f64 / m))
                .unwrap_or_default()
        );
    }
    if a.range_secs > 0.0 {
        let _ = writeln!(s, "\n## link-list page reads (depth {}, {} connections)", a.range_depth, a.connections);
    }
    for r in runs.iter().filter(|_| a.range_secs > 0.0) {
        let what = if r.target == Target::Prism { "E.RANGE LIMIT 10" } else { "ZREVRANGE 0 9 WITHSCORES" };
        let _ = writeln!(s, "{:<6} {:<26} {:>10.0} reads/s", r.target.name(), what, r.range.0 as f64 / r.range.1);
    }
    if a.khop_samples > 0 {
        let _ = writeln!(s, "\n## 2-hop latency ({} samples, limit {})", a.khop_samples, a.khop_limit);
    }
    for r in runs.iter().filter(|_| a.khop_samples > 0) {
        let what = if r.target == Target::Prism { "G.KHOP 2" } else { "client-side ZREVRANGE fan-out" };
        let h = &r.khop;
        let _ = writeln!(
            s,
            "{:<6} {:<30} p50 {:>8} p99 {:>8} p99.9 {:>8} mean {:.0}µs",
            r.target.name(),
            what,
            pct(h, 50.0),
            pct(h, 99.0),
            pct(h, 99.9),
            h.mean()
        );
    }
    if a.khop_limit == 0 && a.khop_samples > 0 && runs.len() > 1 {
        let _ = writeln!(s, "2-hop layer size mismatches between targets: {size_mismatches}");
    }
    let _ = writeln!(s, "\n## operation mix");
    let _ = writeln!(
        s,
        "{:<14} {:<6} {:>9} {:>10} {:>8} {:>8} {:>8} {:>6}",
        "operation", "target", "ops", "ops/s", "p50", "p99", "p99.9", "errors"
    );
    for (i, (_, name, _)) in OPS.iter().enumerate() {
        for r in runs {
            let h = &r.mix.hist[i];
            let _ = writeln!(
                s,
                "{:<14} {:<6} {:>9} {:>10.0} {:>8} {:>8} {:>8} {:>6}",
                name,
                r.target.name(),
                h.len(),
                h.len() as f64 / r.mix.secs,
                pct(h, 50.0),
                pct(h, 99.0),
                pct(h, 99.9),
                r.mix.errors[i]
            );
        }
    }
    for r in runs {
        let mut all = histogram();
        r.mix.hist.iter().for_each(|h| all.add(h).expect("same bounds"));
        let _ = writeln!(
            s,
            "{:<14} {:<6} {:>9} {:>10.0} {:>8} {:>8} {:>8} {:>6}",
            "ALL",
            r.target.name(),
            all.len(),
            r.mix.total_ops() as f64 / r.mix.secs,
            pct(&all, 50.0),
            pct(&all, 99.0),
            pct(&all, 99.9),
            r.mix.errors.iter().sum::<u64>()
        );
    }
    if a.cluster {
        let _ = writeln!(s, "\n## cluster client (redirects, retries, errors)");
        for r in runs {
            let (m, rs) = (&r.mix, &r.mix.route);
            let total = m.total_ops().max(1) as f64;
            let errors: u64 = m.errors.iter().sum();
            let cross: u64 = m.crossshard.iter().sum();
            let _ = writeln!(
                s,
                "{:<6} ops {} errors {} ({:.4} %) crossshard {} ({:.4} %); MOVED {} ASK {} retries {} \
                 connection errors {} map refreshes {} gave up {}",
                r.target.name(),
                m.total_ops(),
                errors,
                errors as f64 * 100.0 / total,
                cross,
                cross as f64 * 100.0 / total,
                rs.moved,
                rs.ask,
                rs.retries,
                rs.conn_errors,
                rs.refreshes,
                rs.gave_up
            );
            for e in &m.samples {
                let _ = writeln!(s, "{:<6}   error: {e}", r.target.name());
            }
        }
    }
    let find = |t: Target| runs.iter().find(|r| r.target == t);
    if let (Some(p), Some(r)) = (find(Target::Prism), find(Target::Redis)) {
        let mut ph = histogram();
        let mut rh = histogram();
        p.mix.hist.iter().for_each(|h| ph.add(h).expect("same bounds"));
        r.mix.hist.iter().for_each(|h| rh.add(h).expect("same bounds"));
        let _ = writeln!(s, "\n## ratios ({} / {})", p.target.name(), r.target.name());
        let _ = writeln!(
            s,
            "mix throughput {:.2}x; mix p99 {:.2}x (lower is better); link-list reads {:.2}x (target >= 1.2); \
             memory per edge {:.2}x (target <= 0.5); 2-hop p50 speed-up {:.1}x (target >= 5)",
            (p.mix.total_ops() as f64 / p.mix.secs) / (r.mix.total_ops() as f64 / r.mix.secs),
            ph.value_at_percentile(99.0) as f64 / rh.value_at_percentile(99.0).max(1) as f64,
            (p.range.0 as f64 / p.range.1) / (r.range.0 as f64 / r.range.1),
            p.load.mem_edges.saturating_sub(p.load.mem_vertices) as f64
                / r.load.mem_edges.saturating_sub(r.load.mem_vertices).max(1) as f64,
            r.khop.value_at_percentile(50.0) as f64 / p.khop.value_at_percentile(50.0).max(1) as f64,
        );
    }
    s
}
