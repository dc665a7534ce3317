//! Benchmark (not a test): time to spill one partition (encode + put) and to load it back
//! through the local object store, for partitions of 1, 10 and 100 MB (or the sizes given)
//! of 1 KiB strings and of 16-field hashes. Figures in docs/benchmarks.md.
//!
//! The load is timed the way a node does it (`server/src/tier.rs`): `ColdStore::get`
//! (read + CRC-32C), `format::decode` (Arrow structure and every row validated), then
//! the apply of `TierOp::Loaded` into a keyspace whose manifest names the object. The
//! older `load_into` path (decode, then one `Op::Restore` per row) is timed too, as the
//! first table in docs/benchmarks.md measured it.
//!
//! `cargo run --release -p prism-engine --example cold_partition [-- SIZES_MB...] [--strings|--hashes] [--no-restore] [--store URL [--credentials FILE]]`
//!
//! `--store` times another store (`s3://bucket/prefix` with a credentials TOML, as a
//! node's `cold-store`); the default is a fresh local directory under the temp dir.

use std::time::{Duration, Instant};

use bytes::Bytes;
use prism_engine::op::{Op, Output, Write};
use prism_engine::tier::manifest::TierOp;
use prism_engine::tier::{format, load_into, spill_slot, ColdStore, RestoreTarget};
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
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// A keyspace whose manifest names `object` for `slot` (as on a node before a load).
fn cold_keyspace(slot: Slot, object: &str, crc32c: u32, bytes: u64) -> Keyspace {
    let ks = Keyspace::new();
    let op = TierOp::Spilled { slot: slot.get(), object: object.into(), crc32c, rows: 0, bytes, slot_version: 0 };
    assert_eq!(ks.apply(&Write { now_ms: 0, op: Op::Tier(op) }), Output::Int(1));
    ks
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (store_url, credentials) = (flag("--store"), flag("--credentials"));
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1, 10, 100] } else { sizes };
    let kinds: Vec<bool> = match (args.iter().any(|a| a == "--strings"), args.iter().any(|a| a == "--hashes")) {
        (true, false) => vec![false],
        (false, true) => vec![true],
        _ => vec![false, true],
    };
    let restore_path = !args.iter().any(|a| a == "--no-restore");
    let dir = std::env::temp_dir().join(format!("prism-cold-bench-{}", std::process::id()));
    let url = store_url.unwrap_or_else(|| dir.to_str().expect("utf8").to_string());
    let store = ColdStore::open(&url, credentials.as_deref().map(std::path::Path::new)).expect("open store");
    println!("store: {}", store.url());
    let slot = Slot::of_key(b"{b}");
    println!(
        "| values | partition | object | encode | put | get+verify | decode+validate | apply Loaded | load total | load_into (old path) | runs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &hashes in &kinds {
        for &mb in &sizes {
            let ks = Keyspace::new();
            let t = Instant::now();
            fill(&ks, mb, hashes);
            eprintln!("filled {mb} MB in {:.1} s", t.elapsed().as_secs_f64());
            let runs = if mb >= 1000 {
                3
            } else if mb >= 100 {
                5
            } else {
                9
            };
            let (mut enc, mut put, mut get, mut dec, mut apply, mut old) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            let mut object = 0;
            for run in 0..runs {
                let t = Instant::now();
                let (obj, stats) = spill_slot(&ks, slot).expect("spill");
                enc.push(t.elapsed());
                object = stats.object_bytes;
                let t = Instant::now();
                let r = store.put(&format!("bench/slot-{}/v{run}", slot.get()), obj.bytes).await.expect("put");
                put.push(t.elapsed());
                let back = cold_keyspace(slot, &r.key, r.crc32c, r.len);
                let t = Instant::now();
                let bytes = store.get(&r.key).await.expect("get");
                get.push(t.elapsed());
                let t = Instant::now();
                let partition = format::decode(bytes.clone()).expect("decode");
                let rows = partition.rows.into_iter().map(|r| (r.key, r.expire_at, r.payload)).collect();
                dec.push(t.elapsed());
                let t = Instant::now();
                let op = Op::Tier(TierOp::Loaded { slot: slot.get(), object: r.key.clone(), rows });
                assert_eq!(back.apply(&Write { now_ms: 0, op }), Output::Int(1));
                apply.push(t.elapsed());
                assert_eq!(back.key_count(), ks.key_count());
                // Dropping a 100 MB keyspace is not part of a load.
                drop(back);
                if restore_path && mb < 1000 {
                    let back = Keyspace::new();
                    let t = Instant::now();
                    load_into(&back, bytes).expect("load");
                    old.push(t.elapsed());
                    assert_eq!(back.key_count(), ks.key_count());
                }
                store.delete(&r.key).await.expect("delete");
            }
            let (e, p, g, d, a, o) = (median(enc), median(put), median(get), median(dec), median(apply), median(old));
            println!(
                "| {} | {mb} MB | {:.1} MB | {e:.1} ms | {p:.1} ms | {g:.1} ms | {d:.1} ms | {a:.1} ms | {:.1} ms | {o:.1} ms | {runs} |",
                if hashes { "hashes (16 fields)" } else { "1 KiB strings" },
                object as f64 / (1 << 20) as f64,
                g + d + a,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
