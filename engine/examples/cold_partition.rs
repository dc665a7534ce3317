//! Benchmark (not a test): time to spill one partition (encode + put) and to load it back
//! (get + verify + decode + restore) through the local object store, for partitions of
//! 1, 10 and 100 MB of 1 KiB strings, and of small hashes. Figures in docs/benchmarks.md.
//!
//! `cargo run --release -p prism-engine --example cold_partition [-- SIZES_MB...]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use prism_engine::tier::{load_into, spill_slot, ColdStore, RestoreTarget};
use prism_engine::value::HashValue;
use prism_engine::{dump, Keyspace, Slot, Value};

fn fill(ks: &Keyspace, mb: usize, hashes: bool) {
    let target = mb << 20;
    let (mut bytes, mut i) = (0usize, 0u64);
    while bytes < target {
        let value = if hashes {
            let mut h = HashValue::default();
            for f in 0..16 {
                h.insert(format!("field{f}").as_bytes(), format!("value-{i}-{f}-{:032}", 0).as_bytes());
            }
            Value::Hash(Box::new(h))
        } else {
            Value::Str(vec![b'a' + (i % 26) as u8; 1024].into())
        };
        let payload = dump::encode(&value);
        bytes += payload.len();
        ks.restore(Bytes::from(format!("{{b}}key:{i}")), 0, Bytes::from(payload)).expect("fill");
        i += 1;
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1, 10, 100] } else { sizes };
    let dir = std::env::temp_dir().join(format!("prism-cold-bench-{}", std::process::id()));
    let store = ColdStore::open(dir.to_str().expect("utf8"), None).expect("open store");
    let slot = Slot::of_key(b"{b}");
    println!("| values | partition | object | encode | put | spill total | get+verify | decode+restore | load total | runs |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for hashes in [false, true] {
        for &mb in &sizes {
            let ks = Keyspace::new();
            fill(&ks, mb, hashes);
            let runs = if mb >= 100 { 3 } else { 7 };
            let (mut enc, mut put, mut get, mut load) = (vec![], vec![], vec![], vec![]);
            let mut object = 0;
            for run in 0..runs {
                let t = Instant::now();
                let (obj, stats) = spill_slot(&ks, slot).expect("spill");
                enc.push(t.elapsed());
                object = stats.object_bytes;
                let t = Instant::now();
                let r = store.put(&format!("bench/slot-{}/v{run}", slot.get()), obj.bytes).await.expect("put");
                put.push(t.elapsed());
                let t = Instant::now();
                let bytes = store.get(&r.key).await.expect("get");
                get.push(t.elapsed());
                let back = Keyspace::new();
                let t = Instant::now();
                load_into(&back, bytes).expect("load");
                load.push(t.elapsed());
                assert_eq!(back.key_count(), ks.key_count());
                // Dropping a 100 MB keyspace is not part of a load.
                drop(back);
                store.delete(&r.key).await.expect("delete");
            }
            let (e, p, g, l) = (median(enc), median(put), median(get), median(load));
            println!(
                "| {} | {mb} MB | {:.1} MB | {e:.1} ms | {p:.1} ms | {:.1} ms | {g:.1} ms | {l:.1} ms | {:.1} ms | {runs} |",
                if hashes { "hashes (16 fields)" } else { "1 KiB strings" },
                object as f64 / (1 << 20) as f64,
                e + p,
                g + l,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
