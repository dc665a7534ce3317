//! One seed's run: draw the scenario from the seed, build the turmoil world, inject faults
//! during the fault window, heal everything, let the group settle, then check.
//!
//! Reproducibility: everything random comes from the seed, through four generators that
//! all run on the runner's thread in a fixed order: the runner's scenario RNG, turmoil's
//! (latencies, message loss, and — under `--cfg tokio_unstable` — each host runtime's
//! `select!` order), openraft's election timeouts ([`seed_thread_rng`]), and the
//! per-member fsync delays and per-client choices (seeded from the seed and the id).
//! So a seed always replays the same event trace (`tests/seeds.rs` proves it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use parking_lot::Mutex;
use prism_replication::runtime::seed_thread_rng;
use prism_replication::{GroupOptions, NodeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::check;
use crate::client::{self, Membership, Writer};
use crate::disk::{Disk, DiskFault};
use crate::net::host_name;
use crate::node::{self, peer_node, NodeSpec};
use crate::observe::{Observed, Shared};

/// How a run is set up beyond its seed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub fault: DiskFault,
}

/// What a run found.
pub struct Outcome {
    pub seed: u64,
    pub trace_hash: u64,
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    pub faults: BTreeMap<&'static str, u64>,
    pub attempts: usize,
    pub acked: usize,
    pub sim_ms: u128,
}

/// Simulated time the clients get to finish before the run counts as stuck.
const CLIENT_LIMIT: Duration = Duration::from_secs(400);
/// Simulated time the healed group gets to converge.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

enum Heal {
    Repair(String, String),
    RepairOneway(String, String),
    Release(String, String),
    Bounce(String),
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

thread_local! {
    static FIRST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs one seed; a panic anywhere in it (openraft, the engine, the simulation) is a
/// failure of that seed, not of the runner.
pub fn run_seed(seed: u64, opts: Options) -> Outcome {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        // Keep each thread's first panic (where it happened): the runtime's own panic
        // ("a spawned task panicked") follows and says nothing.
        std::panic::set_hook(Box::new(|info| {
            FIRST_PANIC.with(|p| {
                p.borrow_mut().get_or_insert_with(|| info.to_string());
            })
        }));
    });
    FIRST_PANIC.with(|p| p.borrow_mut().take());
    let observed: Shared = Arc::new(Mutex::new(Observed::default()));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed, opts, observed.clone()))) {
        Ok(outcome) => outcome,
        Err(_) => {
            let msg = FIRST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            let mut o = observed.lock();
            o.violations.push(format!("panic: {msg}"));
            outcome(seed, &o, o.violations.clone(), 0)
        }
    }
}

fn outcome(seed: u64, o: &Observed, violations: Vec<String>, sim_ms: u128) -> Outcome {
    Outcome {
        seed,
        trace_hash: o.trace_hash(),
        trace: o.trace.clone(),
        violations,
        faults: o.faults.clone(),
        attempts: o.attempts.len(),
        acked: o.attempts.values().filter(|a| a.acked.is_some()).count(),
        sim_ms,
    }
}

fn run(seed: u64, opts: Options, observed: Shared) -> Outcome {
    seed_thread_rng(seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let membership = rng.random_bool(0.3);
    let nodes: Vec<NodeId> = if membership { (1..=5).collect() } else { (1..=3).collect() };
    let clients = rng.random_range(1..=3u32);
    let writes = rng.random_range(20..=50u32);
    let keys = rng.random_range(1..=3u32);
    let min_latency = rng.random_range(0..=2u64);
    let max_latency = min_latency + rng.random_range(1..=20u64);
    let window = ms(rng.random_range(2000..=8000));
    let lossy = rng.random_bool(0.3);

    let mut builder = turmoil::Builder::new();
    builder
        .simulation_duration(Duration::from_secs(3600))
        .tick_duration(ms(1))
        .min_message_latency(ms(min_latency))
        .max_message_latency(ms(max_latency))
        .rng_seed(seed);
    if lossy {
        builder.fail_rate(rng.random_range(0.001..0.02)).repair_rate(rng.random_range(0.2..0.9));
    }
    let mut sim = builder.build();

    // The real raft config, with a 50 ms heartbeat (elections after 200-400 ms) to keep
    // simulated time short, and no snapshots (see docs/simulation.md, "Not covered").
    let options = GroupOptions { heartbeat: ms(50), snapshot_every: 1 << 40, ..GroupOptions::default() };
    let config = Arc::new(options.raft_config(1).expect("valid raft config"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let initial: BTreeMap<NodeId, _> = (1..=3).map(|id| (id, peer_node(id))).collect();
    let mut disks: BTreeMap<NodeId, Disk> = BTreeMap::new();
    for &id in &nodes {
        let disk = Disk::default();
        disks.insert(id, disk.clone());
        let spec = Arc::new(NodeSpec {
            id,
            disk,
            snapshot_dir: tmp.path().join(format!("n{id}")),
            config: config.clone(),
            observed: observed.clone(),
            seed,
            fault: opts.fault,
            init: (id == 1).then(|| initial.clone()),
        });
        sim.host(host_name(id), move || node::run(spec.clone()));
    }
    let mut endpoints: Vec<String> = nodes.iter().map(|&id| host_name(id)).collect();
    for c in 1..=clients {
        let pause = window.mul_f64(2.0 / f64::from(writes));
        let w = Writer { client: c, writes, keys, nodes: nodes.clone(), pause, seed };
        sim.client(format!("c{c}"), client::write(w, observed.clone()));
        endpoints.push(format!("c{c}"));
    }
    if membership {
        let m = Membership {
            start: ms(rng.random_range(300..window.as_millis() as u64)),
            voters: (1..=3).collect(),
            joiner: 4,
            leaver: rng.random_range(1..=3),
            grow: rng.random_bool(0.5).then_some(5),
            nodes: nodes.clone(),
            seed,
        };
        sim.client("ctl", client::change_membership(m, observed.clone()));
    }

    let mut heals: Vec<(Duration, Heal)> = Vec::new();
    let mut next_fault = ms(rng.random_range(100..1500));
    let mut failed = None;
    loop {
        let now = sim.elapsed();
        heals.sort_by_key(|h| std::cmp::Reverse(h.0));
        while heals.last().is_some_and(|h| h.0 <= now) {
            if let Some((_, heal)) = heals.pop() {
                apply_heal(&mut sim, heal, &observed, now);
            }
        }
        if now >= next_fault && now < window {
            inject(&mut sim, &mut rng, &nodes, &endpoints, &observed, &mut heals, now);
            next_fault = now + ms(rng.random_range(100..1500));
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                failed = Some(format!("a host failed: {e}"));
                break;
            }
        }
        if now > CLIENT_LIMIT {
            failed = Some(format!("clients did not finish within {CLIENT_LIMIT:?} of simulated time"));
            break;
        }
    }

    // Heal everything: links, held messages, crashed members.
    sim.set_fail_rate(0.0);
    let now = sim.elapsed();
    for (_, heal) in heals.drain(..) {
        apply_heal(&mut sim, heal, &observed, now);
    }
    for (i, a) in endpoints.iter().enumerate() {
        for b in &endpoints[i + 1..] {
            sim.release(a.as_str(), b.as_str());
            sim.repair(a.as_str(), b.as_str());
        }
    }
    let members = if failed.is_none() { settle(&mut sim, &nodes, &observed, &disks) } else { Err(String::new()) };

    let mut violations = observed.lock().violations.clone();
    match (failed, members) {
        (Some(f), _) => violations.push(f),
        (None, Err(e)) => violations.push(e),
        (None, Ok(members)) => violations.extend(check::all(&observed.lock(), &disks, &members, keys)),
    }
    let sim_ms = sim.elapsed().as_millis();
    drop(sim);
    let o = observed.lock();
    outcome(seed, &o, violations, sim_ms)
}

/// The running leader of the highest term, if any.
fn leader(sim: &mut turmoil::Sim<'_>, nodes: &[NodeId], observed: &Shared) -> Option<NodeId> {
    let running: Vec<NodeId> = nodes.iter().copied().filter(|&id| sim.is_host_running(host_name(id))).collect();
    let o = observed.lock();
    running
        .into_iter()
        .filter_map(|id| o.live.get(&id).map(|l| (id, l.raft.metrics().borrow().clone())))
        .filter(|(_, m)| m.state == ServerState::Leader)
        .max_by_key(|(_, m)| m.current_term)
        .map(|(id, _)| id)
}

fn inject(
    sim: &mut turmoil::Sim<'_>,
    rng: &mut StdRng,
    nodes: &[NodeId],
    endpoints: &[String],
    observed: &Shared,
    heals: &mut Vec<(Duration, Heal)>,
    now: Duration,
) {
    let pick = |rng: &mut StdRng| host_name(nodes[rng.random_range(0..nodes.len())]);
    let until = now + ms(rng.random_range(200..3000));
    let mut o = observed.lock();
    match rng.random_range(0..6) {
        0 | 1 => {
            let (a, b) = (pick(rng), pick(rng));
            if a != b {
                o.fault("partition", now, format!("partition {a} {b} until {until:?}"));
                sim.partition(a.as_str(), b.as_str());
                heals.push((until, Heal::Repair(a, b)));
            }
        }
        2 => {
            let (a, b) = (pick(rng), pick(rng));
            if a != b {
                o.fault("oneway", now, format!("partition {a} -> {b} until {until:?}"));
                sim.partition_oneway(a.as_str(), b.as_str());
                heals.push((until, Heal::RepairOneway(a, b)));
            }
        }
        3 => {
            let (a, b) = (pick(rng), endpoints[rng.random_range(0..endpoints.len())].clone());
            if a != b {
                o.fault("hold", now, format!("hold {a} {b} until {until:?}"));
                sim.hold(a.as_str(), b.as_str());
                heals.push((until, Heal::Release(a, b)));
            }
        }
        4 => {
            let a = pick(rng);
            o.fault("isolate", now, format!("isolate {a} until {until:?}"));
            for b in endpoints.iter().filter(|b| **b != a) {
                sim.partition(a.as_str(), b.as_str());
                heals.push((until, Heal::Repair(a.clone(), b.clone())));
            }
        }
        _ => {
            drop(o);
            let target = match rng.random_bool(0.5) {
                true => leader(sim, nodes, observed).map(host_name).unwrap_or_else(|| pick(rng)),
                false => pick(rng),
            };
            let mut o = observed.lock();
            if sim.is_host_running(target.as_str()) {
                o.fault("crash", now, format!("crash {target} until {until:?}"));
                sim.crash(target.as_str());
                heals.push((until, Heal::Bounce(target)));
            }
        }
    }
}

fn apply_heal(sim: &mut turmoil::Sim<'_>, heal: Heal, observed: &Shared, now: Duration) {
    match heal {
        Heal::Repair(a, b) => sim.repair(a.as_str(), b.as_str()),
        Heal::RepairOneway(a, b) => sim.repair_oneway(a.as_str(), b.as_str()),
        Heal::Release(a, b) => sim.release(a.as_str(), b.as_str()),
        Heal::Bounce(a) => {
            if !sim.is_host_running(a.as_str()) {
                observed.lock().trace.push(format!("{} restart {a}", now.as_millis()));
                sim.bounce(a.as_str());
            }
        }
    }
}

/// Steps the healed world until a leader has applied its whole log and every member of
/// its membership applied the same and synced it; returns those members.
fn settle(
    sim: &mut turmoil::Sim<'_>,
    nodes: &[NodeId],
    observed: &Shared,
    disks: &BTreeMap<NodeId, Disk>,
) -> Result<BTreeSet<NodeId>, String> {
    let start = sim.elapsed();
    let mut last = String::from("no leader");
    while sim.elapsed() < start + SETTLE_LIMIT {
        for _ in 0..50 {
            if let Err(e) = sim.step() {
                return Err(format!("a host failed while settling: {e}"));
            }
        }
        let Some(l) = leader(sim, nodes, observed) else { continue };
        let o = observed.lock();
        let m = o.live[&l].raft.metrics().borrow().clone();
        let members: BTreeSet<NodeId> = m.membership_config.nodes().map(|(id, _)| *id).collect();
        let target = m.last_applied;
        if target.map(|t| t.index) != m.last_log_index {
            last = format!("leader n{l} applied {target:?} of {:?}", m.last_log_index);
            continue;
        }
        let behind: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|id| {
                let applied = o.live.get(id).map(|l| l.raft.metrics().borrow().last_applied);
                let synced = disks.get(id).and_then(|d| d.lock().image.entries.values().next_back().map(|e| e.log_id));
                applied != Some(target) || synced != target
            })
            .collect();
        if behind.is_empty() {
            return Ok(members);
        }
        last = format!("leader n{l} at {target:?}; behind: {behind:?}");
    }
    Err(format!("no convergence within {SETTLE_LIMIT:?} after healing: {last}"))
}
