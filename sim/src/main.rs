//! The long run and the one-seed re-run of the simulation.
//!
//! `SIM_SEED=n` runs seed n and prints its whole trace; otherwise `SIM_SEEDS` seeds
//! (default 10 000) from `SIM_FROM` (default 0) run on `SIM_THREADS` threads (default 2)
//! and a summary is printed. `SIM_BROKEN=1` runs the deliberately broken disk (appends
//! acknowledged before they are synced), which the checks must catch.
//! Exit status 1 if any seed failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prism_sim::{failure_report, run_seed, DiskFault, Options};

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

fn main() {
    let fault = if env_u64("SIM_BROKEN", 0) == 1 { DiskFault::AckBeforeSync } else { DiskFault::None };
    let opts = Options { fault };
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed.parse().expect("SIM_SEED must be a number");
        let o = run_seed(seed, opts);
        for line in &o.trace {
            println!("{line}");
        }
        println!(
            "seed {seed}: trace hash {:016x}, {} attempts, {} acked, faults {:?}, {} ms simulated",
            o.trace_hash, o.attempts, o.acked, o.faults, o.sim_ms
        );
        if o.violations.is_empty() {
            println!("seed {seed}: ok");
            return;
        }
        print!("{}", failure_report(&o, fault));
        std::process::exit(1);
    }
    let from = env_u64("SIM_FROM", 0);
    let count = env_u64("SIM_SEEDS", 10_000);
    let threads = env_u64("SIM_THREADS", 2).max(1);
    let next = Arc::new(AtomicU64::new(from));
    let totals = Arc::new(Mutex::new((0u64, 0u64, 0u64, std::collections::BTreeMap::<&str, u64>::new(), 0u128)));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, totals, failed) = (next.clone(), totals.clone(), failed.clone());
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= from + count {
                    return;
                }
                let o = run_seed(seed, opts);
                let mut t = totals.lock().expect("totals");
                t.0 += 1;
                t.1 += o.attempts as u64;
                t.2 += o.acked as u64;
                for (k, n) in &o.faults {
                    *t.3.entry(k).or_default() += n;
                }
                t.4 += o.sim_ms;
                if t.0 % 500 == 0 {
                    eprintln!("{} seeds done, {:.0} s", t.0, started.elapsed().as_secs_f64());
                }
                drop(t);
                if !o.violations.is_empty() {
                    eprint!("{}", failure_report(&o, fault));
                    failed.lock().expect("failed").push(seed);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let wall = started.elapsed().as_secs_f64();
    let t = totals.lock().expect("totals");
    let failed = failed.lock().expect("failed");
    println!(
        "{} seeds ({from}..{}) on {threads} threads: {:.1} s wall, {:.2} seeds/s; {} write attempts, {} acked; \
         {:.0} s simulated; faults {:?}; {} failed {:?}",
        t.0,
        from + count,
        wall,
        t.0 as f64 / wall,
        t.1,
        t.2,
        t.4 as f64 / 1000.0,
        t.3,
        failed.len(),
        &failed[..failed.len().min(50)]
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
