//! How long starting a snapshot stalls writes, and what writes cost while its copy runs.
//!
//! Loads N small strings, then measures: the old way (a full clone before writes may go
//! on, which is what the state machine did before copy-on-write), the new start
//! (`begin_snapshot`: the pause a Raft apply now sees), and a background copy
//! (`copy_rest` on another thread) while this thread keeps applying SETs: throughput,
//! the slowest single SET, and how many slots writers copied.
//!
//! `cargo run --release -p prism-engine --example snapshot_stall -- [keys, default 1000000]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prism_engine::{Exists, Keyspace, Op, TtlChange, Write};

fn set(key: &Bytes, value: &'static [u8]) -> Write {
    let op = Op::Set {
        key: key.clone(),
        value: Bytes::from_static(value),
        exists: Exists::Any,
        ttl: TtlChange::Clear,
        get: false,
    };
    Write { now_ms: 1, op }
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let keys: Vec<Bytes> = (0..n).map(|i| Bytes::from(format!("key:{i:012}"))).collect();
    let ks = Arc::new(Keyspace::new());
    for k in &keys {
        ks.apply(&set(k, b"value-of-16-byte"));
    }
    println!("{n} keys, used_memory {} MB", ks.used_memory() / 1_000_000);

    // Starting a snapshot alone, a few times (each copy finished before the next start).
    let mut starts = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let snap = ks.begin_snapshot();
        starts.push(t.elapsed());
        snap.copy_rest(&ks);
    }
    println!("begin_snapshot (the stall now), 5 starts: {starts:?}");

    // After the starts: freeing a million entries makes the allocator's next large
    // allocation slow, which would show up in whatever is timed next.
    let t = Instant::now();
    let full = ks.snapshot_now();
    println!("full synchronous copy (the old stall): {:?} ({} entries)", t.elapsed(), full.len());
    drop(full);

    // The same SETs without a snapshot, as a baseline for their latency on this machine.
    let (base_rate, base) = timed_sets(&ks, &keys, || false, 60_000);
    println!("no snapshot: {base_rate:.0} SETs/s, {}", summary(base));

    let snap = ks.begin_snapshot();
    let copier = {
        let ks = ks.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let img = snap.copy_rest(&ks);
            (t.elapsed(), img.len(), img.copied_by_writers)
        })
    };
    let (rate, during) = timed_sets(&ks, &keys, || copier.is_finished(), usize::MAX);
    let (copy_time, entries, by_writers) = copier.join().expect("copier thread");
    println!(
        "background copy: {copy_time:?} for {entries} entries, {by_writers} of 16384 slots copied by writers; \
         meanwhile {} SETs at {rate:.0}/s, {}",
        during.len(),
        summary(during)
    );
}

/// Applies SETs over `keys` until `stop` says so or `max` were applied: the rate and each
/// SET's latency.
fn timed_sets(ks: &Keyspace, keys: &[Bytes], stop: impl Fn() -> bool, max: usize) -> (f64, Vec<Duration>) {
    let mut lat = Vec::new();
    let mut i = 0usize;
    let t = Instant::now();
    while !stop() && lat.len() < max {
        i = (i + 7919) % keys.len();
        let w = Instant::now();
        ks.apply(&set(&keys[i], b"new-value"));
        lat.push(w.elapsed());
    }
    (lat.len() as f64 / t.elapsed().as_secs_f64(), lat)
}

fn summary(mut lat: Vec<Duration>) -> String {
    lat.sort_unstable();
    let at = |q: f64| lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1))).copied();
    format!("SET latency p50 {:?} p99 {:?} p99.9 {:?} max {:?}", at(0.5), at(0.99), at(0.999), lat.last())
}
