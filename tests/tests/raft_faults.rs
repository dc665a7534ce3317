//! Fault tests of a 3-node Raft group of real `prism` processes on loopback: a workload of
//! unique-value SETs and GETs runs while a nemesis kills, pauses or partitions nodes; after
//! healing every key is read once more and the whole history must be linearizable per key
//! (which also proves no acknowledged write was lost). One test injects a bug (reads
//! without read-index) and requires the checker to catch it.
//!
//! The first tests prove the harness itself on independent single nodes, so they run
//! before replication exists: process control, a history that must pass, and one that must
//! fail.
//!
//! Every nemesis is bounded in count and time; fleets run one at a time (a lock), since
//! the machine has two cores. Each test prints its seed (replay with `PRISM_SEED`) and its
//! op counts; the kill test also writes its failover times (leader SIGKILL -> first
//! acknowledged write on another node) to `target/raft-failover-<kills>.txt` for the
//! benchmark page. `PRISM_FAULT_KILLS` sets the number of kills (default 20).

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prism_tests::fleet::{Fleet, FleetOptions, RespConn};
use prism_tests::history::{Workload, WorkloadOptions};
use prism_tests::linearizable::Report;
use prism_tests::redis_server::seed;
use redis_protocol::resp2::types::OwnedFrame;

/// Longest any election, failover or final read may take before the test fails.
const BOUND: Duration = Duration::from_secs(30);

static FLEETS: Mutex<()> = Mutex::new(());

/// One fleet at a time; a test that panicked does not poison the others.
fn one_fleet_at_a_time() -> MutexGuard<'static, ()> {
    FLEETS.lock().unwrap_or_else(|e| e.into_inner())
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn ping(addr: SocketAddr) -> bool {
    RespConn::connect(addr, Duration::from_secs(5))
        .and_then(|mut c| c.call(&["PING"]))
        .is_ok_and(|r| r == OwnedFrame::SimpleString(b"PONG".to_vec()))
}

fn workload(fleet: &Fleet, seed: u64, tweak: impl FnOnce(&mut WorkloadOptions)) -> Workload {
    let mut opts = WorkloadOptions { seed, ..WorkloadOptions::default() };
    tweak(&mut opts);
    Workload::start(fleet.client_addrs(), opts)
}

/// Stops the workload, reads every key once more, checks, and prints the outcome.
fn finish(name: &str, seed: u64, mut w: Workload) -> Report {
    w.final_reads(BOUND).expect("final reads after healing");
    let report = w.check();
    println!("{name}: seed {seed}; {}", w.counts());
    println!("{name}: {report}");
    if !report.is_linearizable() {
        println!("{}", w.explain(&report));
    }
    let unexpected = w.unexpected_replies();
    if !unexpected.is_empty() {
        println!("{name}: replies outside the contract (counted as unknown): {unexpected:?}");
    }
    report
}

fn raft_fleet(proxies: bool, extra: &[&str]) -> Fleet {
    let opts =
        FleetOptions { proxies, extra_args: extra.iter().map(|s| s.to_string()).collect(), ..FleetOptions::default() };
    let fleet = Fleet::start(&opts).expect("fleet starts");
    fleet.wait_for_leader(None, BOUND).expect("a first leader");
    fleet
}

#[test]
fn fleet_kills_pauses_restarts_and_reaps_its_processes() {
    let _serial = one_fleet_at_a_time();
    let opts = FleetOptions { raft: false, proxies: true, ..FleetOptions::default() };
    let mut fleet = Fleet::start(&opts).expect("fleet starts");
    let addrs = fleet.client_addrs();
    let pids: Vec<u32> = (0..fleet.len()).map(|i| fleet.pid(i).expect("running")).collect();

    fleet.kill(0);
    assert!(!alive(pids[0]), "SIGKILLed node still exists");
    assert!(RespConn::connect(addrs[0], Duration::from_secs(5)).is_err(), "a killed node still accepts clients");
    fleet.restart(0).expect("restart");
    assert!(ping(addrs[0]));
    assert_ne!(fleet.pid(0), Some(pids[0]), "restart started a new process");

    // A paused node accepts the connection (the kernel does) but answers nothing until resumed.
    fleet.pause(1);
    let mut conn = RespConn::connect(addrs[1], Duration::from_millis(300)).expect("kernel accepts");
    conn.send(&["PING"]).expect("send");
    assert!(conn.read_reply().is_err(), "a SIGSTOPped node answered");
    fleet.resume(1);
    conn.set_timeout(Duration::from_secs(10)).expect("timeout");
    assert_eq!(conn.read_reply().expect("reply after SIGCONT"), OwnedFrame::SimpleString(b"PONG".to_vec()));

    // Every peer link has its own proxy, and nodes still serve clients while links are cut.
    assert!((0..3).all(|i| (0..3).all(|j| (i == j) == fleet.proxy(i, j).is_none())));
    fleet.partition(2);
    assert!(
        fleet.proxy(0, 2).is_some_and(|p| p.is_partitioned()) && fleet.proxy(2, 1).is_some_and(|p| p.is_partitioned())
    );
    assert!(fleet.proxy(0, 1).is_some_and(|p| !p.is_partitioned()));
    fleet.heal();

    fleet.pause(2);
    let pids: Vec<u32> = (0..fleet.len()).map(|i| fleet.pid(i).expect("running")).collect();
    drop(fleet);
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived its fleet");
    }
}

#[test]
fn history_of_a_single_node_is_linearizable() {
    let _serial = one_fleet_at_a_time();
    let seed = seed();
    let fleet = Fleet::start(&FleetOptions { nodes: 1, raft: false, ..FleetOptions::default() }).expect("fleet");
    let w = workload(&fleet, seed, |o| o.clients = 4);
    sleep_ms(1500);
    let report = finish("single node", seed, w);
    assert!(report.is_linearizable(), "{report}");
    assert!(report.ops > 50, "too few ops to mean anything: {report}");
}

#[test]
fn checker_rejects_three_independent_nodes_posing_as_one() {
    let _serial = one_fleet_at_a_time();
    let seed = seed();
    let fleet = Fleet::start(&FleetOptions { raft: false, ..FleetOptions::default() }).expect("fleet");
    // Every op goes to a random node: writes land on one copy, reads come from another.
    let w = workload(&fleet, seed, |o| o.random_node_percent = 100);
    sleep_ms(1500);
    let report = finish("independent nodes", seed, w);
    assert!(!report.violations.is_empty(), "three unreplicated copies passed as one register: {report}");
}

/// Kills the leader `PRISM_FAULT_KILLS` times (default 20) under load, restarting it after
/// each failover, and records every failover time.
#[test]
fn sigkill_the_leader_repeatedly() {
    let _serial = one_fleet_at_a_time();
    let seed = seed();
    let kills: usize = std::env::var("PRISM_FAULT_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut fleet = raft_fleet(false, &[]);
    let w = workload(&fleet, seed, |_| {});
    let clock = w.clock();
    let (mut failovers_ms, mut elections_ms) = (Vec::new(), Vec::new());
    for _ in 0..kills {
        let leader = fleet.wait_for_leader(None, BOUND).expect("leader");
        sleep_ms(300);
        let killed_at = clock.now_ns();
        fleet.kill(leader);
        // When `INFO raft` first shows another leader (polled every 50 ms): tells an
        // election that is slow from a write path that is slow after it.
        fleet.wait_for_leader(Some(leader), BOUND).expect("a new leader");
        elections_ms.push((clock.now_ns() - killed_at) as f64 / 1e6);
        let deadline = Instant::now() + BOUND;
        let acked = loop {
            if let Some(t) = w.first_ack_after(killed_at, leader) {
                break t;
            }
            assert!(Instant::now() < deadline, "no write acknowledged within {BOUND:?} of killing node {}", leader + 1);
            sleep_ms(10);
        };
        failovers_ms.push((acked - killed_at) as f64 / 1e6);
        fleet.restart(leader).expect("restart the killed leader");
        // Measure failover with two healthy members left: the next kill waits until the
        // restarted node has rejoined and caught up (within 100 entries of the leader),
        // else an election also waits for its start-up, log replay and catch-up.
        let deadline = Instant::now() + BOUND;
        loop {
            let caught_up = match (fleet.raft_info(leader), fleet.leader().and_then(|l| fleet.raft_info(l))) {
                (Some(r), Some(l)) => r.role == "follower" && r.applied_index + 100 >= l.applied_index,
                _ => false,
            };
            if caught_up {
                break;
            }
            assert!(Instant::now() < deadline, "node {} did not catch up within {BOUND:?}", leader + 1);
            sleep_ms(50);
        }
    }
    let report = finish("sigkill leader", seed, w);
    record_failovers(seed, &failovers_ms, &elections_ms);
    assert!(report.is_linearizable(), "{report}");
}

fn record_failovers(seed: u64, failovers_ms: &[f64], elections_ms: &[f64]) {
    let summary = format!(
        "{} kills: failover (kill -> first acknowledged write) ms {}; new leader in INFO raft ms {}",
        failovers_ms.len(),
        distribution(failovers_ms),
        distribution(elections_ms)
    );
    println!("sigkill leader: {summary}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let target = target.canonicalize().unwrap_or(target);
    let file = target.join(format!("raft-failover-{}.txt", failovers_ms.len()));
    let lines: Vec<String> = failovers_ms.iter().zip(elections_ms).map(|(f, e)| format!("{f:.1} {e:.1}")).collect();
    let text = format!(
        "# per kill, ms from leader SIGKILL to (1) the first acknowledged write on another node, \
         (2) a new leader in INFO raft (seed {seed})\n# {summary}\n{}\n",
        lines.join("\n")
    );
    match std::fs::write(&file, text) {
        Ok(()) => println!("sigkill leader: failover times in {}", file.display()),
        Err(e) => println!("sigkill leader: cannot write {}: {e}", file.display()),
    }
}

/// "median m, p90 p, min a, max b" of a non-empty sample.
fn distribution(sample: &[f64]) -> String {
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted.get(((sorted.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(f64::NAN);
    format!("median {:.0}, p90 {:.0}, min {:.0}, max {:.0}", at(0.5), at(0.9), at(0.0), at(1.0))
}

#[test]
fn sigstop_and_sigcont_the_leader() {
    let _serial = one_fleet_at_a_time();
    let seed = seed();
    let mut fleet = raft_fleet(false, &[]);
    let w = workload(&fleet, seed, |_| {});
    for _ in 0..3 {
        let leader = fleet.wait_for_leader(None, BOUND).expect("leader");
        sleep_ms(300);
        fleet.pause(leader);
        fleet.wait_for_leader(Some(leader), BOUND).expect("a new leader while the old one is frozen");
        sleep_ms(500);
        fleet.resume(leader);
        sleep_ms(700);
    }
    let report = finish("sigstop leader", seed, w);
    assert!(report.is_linearizable(), "{report}");
}

#[test]
fn kill_all_three_at_once_and_restart() {
    let _serial = one_fleet_at_a_time();
    let seed = seed();
    let mut fleet = raft_fleet(false, &[]);
    let w = workload(&fleet, seed, |_| {});
    for _ in 0..2 {
        sleep_ms(1000);
        fleet.kill_all();
        for i in 0..fleet.len() {
            fleet.restart(i).expect("restart");
        }
        fleet.wait_for_leader(None, BOUND).expect("a leader after the restart");
    }
    sleep_ms(1000);
    let report = finish("kill all", seed, w);
    assert!(report.is_linearizable(), "{report}");
}

/// Cuts the leader off from its peers `rounds` times; while it is cut off, writes every
/// key through the new leader and then reads every key from the old one.
fn partition_the_leader(name: &str, extra: &[&str], rounds: usize) -> Report {
    let _serial = one_fleet_at_a_time();
    let seed = seed();
    let fleet = raft_fleet(true, extra);
    let keys = WorkloadOptions::default().keys;
    let w = workload(&fleet, seed, |_| {});
    let mut probe = w.client(WorkloadOptions::default().clients + 1);
    for round in 0..rounds {
        let old = fleet.wait_for_leader(None, BOUND).expect("leader");
        sleep_ms(300);
        fleet.partition(old);
        let new = fleet.wait_for_leader(Some(old), BOUND).expect("a leader on the majority side");
        for k in 0..keys {
            probe.prefer(new);
            probe.write(&format!("k{k}"), &format!("probe-{round}-{k}"));
        }
        for k in 0..keys {
            probe.prefer(old);
            probe.read(&format!("k{k}"));
        }
        sleep_ms(500);
        fleet.heal();
        sleep_ms(700);
    }
    finish(name, seed, w)
}

#[test]
fn partition_the_leader_from_its_peers() {
    let report = partition_the_leader("partition leader", &[], 3);
    assert!(report.is_linearizable(), "{report}");
}

/// The injected bug: a leader that answers reads from local state without read-index.
/// A deposed leader behind a partition then serves old values, and the checker must say so.
#[test]
fn checker_catches_stale_reads_from_a_partitioned_leader() {
    let report = partition_the_leader("stale reads", &["--unsafe-stale-reads", "yes"], 2);
    assert!(!report.violations.is_empty(), "stale reads went unnoticed: {report}");
}
