//! `tierbench`: the cold tier under load (issue 7's benchmarks), against one node.
//!
//! - `zipf`: N keys of V bytes are written slot by slot (so a slot is written once, then
//!   spills as a whole), then GETs drawn from a Zipf distribution over the keys run for a
//!   while at depth 1. With N x V ten times the node's `maxmemory`, most of the data is
//!   cold and every read of a cold slot waits for its load. Reports latency percentiles,
//!   the node's loads and spills meanwhile, and checks every value read (a wrong value is
//!   counted and makes the run fail: a cold tier that answers fast and wrong is no cold tier).
//! - `hot`: a reader on a small hot set (K keys under a few hash tags) measured alone, then
//!   while a writer pours new keys at full speed so the node keeps spilling; the rounds
//!   alternate. Reports each phase's percentiles and the spills during the writing ones.
//!
//! - `writes`: the same keys, then Zipf SETs of whole new values at depth 1. A plain SET
//!   to a cold key goes to its slot's delta without a load; with `--xx` every SET is
//!   `SET ... XX`, which must read the key first and so loads a cold slot (the path every
//!   write to a cold key took before deltas): the two runs side by side are the gain.
//!   A Zipf read pass afterwards checks the values.
//!
//! Against redis-server the same commands run; INFO `tiering` is absent there, so loads
//! and spills read as zero. bench/scripts/tier-bench starts the servers and runs this.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use prism_bench::client::{Client, Reply};
use prism_bench::cluster::key_slot;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

#[derive(Parser, Debug)]
#[command(about = "Cold-tier benchmarks: Zipf reads over mostly cold data, hot reads while spilling")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// A label for the report (e.g. "prism" or "redis").
    #[arg(long, default_value = "target")]
    label: String,
    /// A missing key is not an error (redis-server with an eviction policy).
    #[arg(long)]
    allow_missing: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Zipf GETs over N keys, most of them cold.
    Zipf(ZipfArgs),
    /// Zipf SETs over N keys, most of them cold (module header).
    Writes {
        #[command(flatten)]
        zipf: ZipfArgs,
        /// `SET key value XX`: a write that reads the key first (loads a cold slot).
        #[arg(long)]
        xx: bool,
    },
    /// Hot-set reads alone, then while a writer makes the node spill.
    Hot {
        #[arg(long, default_value_t = 10_000)]
        hot_keys: u64,
        /// Hash tags the hot keys are spread over (one slot each).
        #[arg(long, default_value_t = 16)]
        hot_tags: u64,
        #[arg(long, default_value_t = 1024)]
        value_bytes: usize,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Seconds of each phase.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Quiet/writing round pairs.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// The keys written slot by slot and the Zipf draw over them (`zipf` and `writes`).
#[derive(clap::Args, Debug)]
struct ZipfArgs {
    #[arg(long, default_value_t = 600_000)]
    keys: u64,
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    #[arg(long, default_value_t = 0.99)]
    zipf: f64,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Keys already written by an earlier run with the same --keys and --value-bytes.
    #[arg(long)]
    skip_load: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl ZipfArgs {
    /// Checks the arguments and writes the keys unless `--skip-load`.
    async fn prepare(&self, addr: &str) -> Result<()> {
        if self.keys == 0 || self.zipf.is_nan() || self.zipf <= 0.0 {
            bail!("--keys must be positive and --zipf above 0");
        }
        if !self.skip_load {
            let t = Instant::now();
            load_slot_by_slot(addr, self.keys, self.value_bytes).await?;
            println!("loaded {} keys of {} B in {:.1} s", self.keys, self.value_bytes, t.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("# machine: {} cores, {}", num_cpus(), load_average());
    match args.mode {
        Mode::Zipf(z) => {
            z.prepare(&args.addr).await?;
            let ZipfArgs { keys, value_bytes, zipf, connections, seconds, seed, .. } = z;
            let before = tiering(&args.addr).await?;
            let run = zipf_reads(&args.addr, keys, value_bytes, zipf, connections, seconds, seed).await?;
            let after = tiering(&args.addr).await?;
            report(&args.label, "zipf GET", &run, seconds);
            println!(
                "{}: node meanwhile: {} loads, {} spills, {} load failures; {} of {} reads waited for a load at most ({:.2} %); used_memory {} MB",
                args.label,
                after.loads - before.loads,
                after.spills - before.spills,
                after.load_failures - before.load_failures,
                after.loads - before.loads,
                run.hist.len(),
                100.0 * (after.loads - before.loads) as f64 / run.hist.len().max(1) as f64,
                after.used_memory >> 20,
            );
            run.verdict(args.allow_missing)?;
        }
        Mode::Writes { zipf: z, xx } => {
            z.prepare(&args.addr).await?;
            let ZipfArgs { keys, value_bytes, zipf, connections, seconds, seed, .. } = z;
            let before = tiering(&args.addr).await?;
            let run = zipf_writes(&args.addr, keys, value_bytes, zipf, connections, seconds, xx, seed).await?;
            let after = tiering(&args.addr).await?;
            report(&args.label, if xx { "zipf SET XX" } else { "zipf SET" }, &run, seconds);
            println!(
                "{}: node meanwhile: {} loads, {} spills, {} compactions, {} load failures; delta keys {}; used_memory {} MB",
                args.label,
                after.loads - before.loads,
                after.spills - before.spills,
                after.compactions - before.compactions,
                after.load_failures - before.load_failures,
                after.delta_keys,
                after.used_memory >> 20,
            );
            if let Some(e) = &run.first_error {
                bail!("{} writes answered an error, the first {e}", run.errors);
            }
            let check = zipf_reads(&args.addr, keys, value_bytes, zipf, connections, 3.0, seed ^ 1).await?;
            report(&args.label, "check: zipf GET", &check, 3.0);
            check.verdict(args.allow_missing)?;
        }
        Mode::Hot { hot_keys, hot_tags, value_bytes, connections, seconds, rounds, seed } => {
            if hot_keys == 0 || hot_tags == 0 {
                bail!("--hot-keys and --hot-tags must be positive");
            }
            let hot = |i: u64| format!("{{hot{}}}:{i}", i % hot_tags);
            let mut c = Client::connect(&args.addr).await?;
            for chunk in (0..hot_keys).collect::<Vec<_>>().chunks(256) {
                for &i in chunk {
                    c.push(&[b"SET".to_vec(), hot(i).into_bytes(), value(i, value_bytes)]);
                }
                c.flush().await?;
                for _ in chunk {
                    expect_ok(c.read().await?)?;
                }
            }
            let mut next_key = 0u64;
            for round in 0..rounds {
                for writing in [false, true] {
                    let before = tiering(&args.addr).await?;
                    let stop = Arc::new(AtomicBool::new(false));
                    let writer = writing.then(|| {
                        let (addr, stop) = (args.addr.clone(), stop.clone());
                        let start = next_key;
                        tokio::spawn(async move { pour(&addr, start, value_bytes, &stop).await })
                    });
                    let run =
                        hot_reads(&args.addr, hot_keys, hot_tags, value_bytes, connections, seconds, seed).await?;
                    stop.store(true, Ordering::Relaxed);
                    if let Some(w) = writer {
                        next_key += w.await??;
                    }
                    let after = tiering(&args.addr).await?;
                    let phase = if writing { "hot GET, writer spilling" } else { "hot GET, quiet" };
                    report(&args.label, &format!("round {round}: {phase}"), &run, seconds);
                    println!(
                        "{}: round {round}: {} spills, {} loads meanwhile; {next_key} keys written so far; used_memory {} MB",
                        args.label,
                        after.spills - before.spills,
                        after.loads - before.loads,
                        after.used_memory >> 20
                    );
                    run.verdict(args.allow_missing)?;
                }
            }
        }
    }
    Ok(())
}

/// The value of key `i`: its number, then filler, `len` bytes in all (at least the number).
fn value(i: u64, len: usize) -> Vec<u8> {
    let mut v = format!("{i:012}:").into_bytes();
    let fill = b"abcdefghijklmnopqrstuvwxyz";
    while v.len() < len {
        v.push(fill[(v.len() + i as usize) % fill.len()]);
    }
    v
}

fn zkey(i: u64) -> String {
    format!("t:{i}")
}

/// Writes keys `t:0..n` grouped by slot, 256 per pipeline.
async fn load_slot_by_slot(addr: &str, n: u64, len: usize) -> Result<()> {
    let mut order: Vec<(u16, u64)> = (0..n).map(|i| (key_slot(zkey(i).as_bytes()), i)).collect();
    order.sort_unstable();
    let mut c = Client::connect(addr).await?;
    let mut done = 0usize;
    let mut last = Instant::now();
    for chunk in order.chunks(256) {
        for &(_, i) in chunk {
            c.push(&[b"SET".to_vec(), zkey(i).into_bytes(), value(i, len)]);
        }
        c.flush().await?;
        for &(_, i) in chunk {
            let r = c.read().await?;
            // A write to a slot that spilled meanwhile waits for its load; a TRYAGAIN
            // (the store busy) is retried once, by itself.
            if let Reply::Error(e) = &r {
                if !e.starts_with("TRYAGAIN") {
                    bail!("SET {}: {e}", zkey(i));
                }
                expect_ok(c.call(&[b"SET".to_vec(), zkey(i).into_bytes(), value(i, len)]).await?)?;
            } else {
                expect_ok(r)?;
            }
        }
        done += chunk.len();
        if last.elapsed() > Duration::from_secs(10) {
            eprintln!("loaded {done}/{n}");
            last = Instant::now();
        }
    }
    Ok(())
}

struct Run {
    hist: Histogram<u64>,
    errors: u64,
    /// The first error reply, for the report.
    first_error: Option<String>,
    missing: u64,
    wrong: u64,
}

impl Run {
    fn new() -> Run {
        Run { hist: histogram(), errors: 0, first_error: None, missing: 0, wrong: 0 }
    }

    fn count(&mut self, r: &Reply, i: u64, len: usize) {
        match r {
            Reply::Bulk(b) if b.len() == len && b.starts_with(format!("{i:012}:").as_bytes()) => {}
            Reply::Error(_) => self.errors += 1,
            Reply::Nil => self.missing += 1,
            _ => self.wrong += 1,
        }
    }

    /// Fails on a wrong value, and on a missing key unless that is allowed.
    fn verdict(&self, allow_missing: bool) -> Result<()> {
        if self.wrong > 0 {
            bail!("{} reads returned a wrong value", self.wrong);
        }
        if self.missing > 0 && !allow_missing {
            bail!("{} reads found no value", self.missing);
        }
        Ok(())
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Runs `conns` connections for `secs` seconds, each sending the command `cmd(i, n)`
/// for key ranks drawn from Zipf(`s`) over `n` keys (its `n`-th request) at depth 1, and
/// recording each reply's latency and `check(run, reply, i)`.
#[allow(clippy::too_many_arguments)]
async fn zipf_clients(
    addr: &str,
    n: u64,
    s: f64,
    conns: usize,
    secs: f64,
    seed: u64,
    cmd: impl Fn(u64, u64) -> Vec<Vec<u8>> + Clone + Send + 'static,
    check: impl Fn(&mut Run, Reply, u64) + Clone + Send + 'static,
) -> Result<Run> {
    let zipf = Zipf::new(n as f64, s).context("zipf parameters")?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (addr, cmd, check) = (addr.to_string(), cmd.clone(), check.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut cl = Client::connect(&addr).await?;
            let mut run = Run::new();
            let mut sent = 0u64;
            while Instant::now() < deadline {
                // Zipf ranks start at 1; rank r is key r-1, so the hottest keys are spread
                // over slots by the key hash like any others.
                let i = zipf.sample(&mut rng) as u64 - 1;
                sent += 1;
                let command = cmd(i, sent);
                let t = Instant::now();
                let r = cl.call(&command).await?;
                run.hist.record(t.elapsed().as_micros().max(1) as u64)?;
                check(&mut run, r, i);
            }
            anyhow::Ok(run)
        }));
    }
    merge(tasks).await
}

async fn zipf_reads(addr: &str, n: u64, len: usize, s: f64, conns: usize, secs: f64, seed: u64) -> Result<Run> {
    let get = |i: u64, _| vec![b"GET".to_vec(), zkey(i).into_bytes()];
    zipf_clients(addr, n, s, conns, secs, seed, get, move |run, r, i| run.count(&r, i, len)).await
}

/// Zipf SETs (module header): key `i` gets a new value of the same shape, so the reads
/// that check afterwards still recognize it.
#[allow(clippy::too_many_arguments)]
async fn zipf_writes(
    addr: &str,
    n: u64,
    len: usize,
    s: f64,
    conns: usize,
    secs: f64,
    xx: bool,
    seed: u64,
) -> Result<Run> {
    let set = move |i: u64, round: u64| {
        let mut v = value(i, len);
        // A different tail each time: a real overwrite, the same prefix and length.
        let tail = format!("{round:08}");
        let at = v.len().saturating_sub(tail.len()).max(13);
        v.truncate(at);
        v.extend_from_slice(&tail.as_bytes()[..len.saturating_sub(at).min(tail.len())]);
        let mut cmd = vec![b"SET".to_vec(), zkey(i).into_bytes(), v];
        if xx {
            cmd.push(b"XX".to_vec());
        }
        cmd
    };
    let check = |run: &mut Run, r: Reply, _| match r {
        Reply::Status(_) => {}
        Reply::Nil => run.missing += 1,
        other => {
            run.errors += 1;
            run.first_error.get_or_insert_with(|| format!("{other:?}"));
        }
    };
    zipf_clients(addr, n, s, conns, secs, seed, set, check).await
}

async fn hot_reads(addr: &str, n: u64, tags: u64, len: usize, conns: usize, secs: f64, seed: u64) -> Result<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut cl = Client::connect(&addr).await?;
            let mut run = Run::new();
            while Instant::now() < deadline {
                let i = rng.random_range(0..n);
                let t = Instant::now();
                let r = cl.call(&[b"GET".to_vec(), format!("{{hot{}}}:{i}", i % tags).into_bytes()]).await?;
                run.hist.record(t.elapsed().as_micros().max(1) as u64)?;
                run.count(&r, i, len);
            }
            anyhow::Ok(run)
        }));
    }
    merge(tasks).await
}

/// Writes new keys `w:<start>..` (64 per pipeline) until `stop`; returns how many.
async fn pour(addr: &str, start: u64, len: usize, stop: &AtomicBool) -> Result<u64> {
    let mut c = Client::connect(addr).await?;
    let mut i = start;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            c.push(&[b"SET".to_vec(), format!("w:{i}").into_bytes(), value(i, len)]);
            i += 1;
        }
        c.flush().await?;
        for _ in 0..64 {
            // Errors (TRYAGAIN while the store is slow) are not this phase's measure.
            c.read().await?;
        }
    }
    Ok(i - start)
}

async fn merge(tasks: Vec<tokio::task::JoinHandle<Result<Run>>>) -> Result<Run> {
    let mut all = Run::new();
    for t in tasks {
        let r = t.await??;
        all.hist.add(&r.hist)?;
        all.errors += r.errors;
        all.first_error = all.first_error.or(r.first_error);
        all.missing += r.missing;
        all.wrong += r.wrong;
    }
    Ok(all)
}

fn report(label: &str, what: &str, run: &Run, secs: f64) {
    let h = &run.hist;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{label}: {what}: {} requests, {:.0}/s, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.1} ms, errors {}, missing {}, wrong values {}",
        h.len(),
        h.len() as f64 / secs,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
        run.errors,
        run.missing,
        run.wrong,
    );
}

#[derive(Default)]
struct Tiering {
    loads: u64,
    spills: u64,
    compactions: u64,
    delta_keys: u64,
    load_failures: u64,
    used_memory: u64,
}

/// INFO `tiering` and `memory` counters (zero where the server has none, as redis-server).
async fn tiering(addr: &str) -> Result<Tiering> {
    let mut c = Client::connect(addr).await?;
    let Reply::Bulk(text) = c.call(&["INFO", "everything"]).await? else { bail!("INFO: not a bulk reply") };
    let text = String::from_utf8_lossy(&text);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(Tiering {
        loads: field("loads"),
        spills: field("spills"),
        compactions: field("compactions"),
        delta_keys: field("delta_keys"),
        load_failures: field("load_failures"),
        used_memory: field("used_memory"),
    })
}

fn expect_ok(r: Reply) -> Result<()> {
    match r {
        Reply::Status(_) => Ok(()),
        other => bail!("expected OK, got {other:?}"),
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| format!("load average {}", s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")))
        .unwrap_or_default()
}
