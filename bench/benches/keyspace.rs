//! Micro-benchmarks of the hot path's pieces: slot hashing, request parsing, keyspace
//! reads and applied writes. Run with `cargo bench -p prism-bench`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prism_engine::{Exists, Keyspace, Op, Slot, TtlChange, Write};
use prism_server::resp::RequestParser;
use std::hint::black_box;

fn slots(c: &mut Criterion) {
    c.bench_function("slot_of_key/16B", |b| b.iter(|| Slot::of_key(black_box(b"user:1234567:prof"))));
    c.bench_function("slot_of_key/tagged", |b| b.iter(|| Slot::of_key(black_box(b"{user:42}:followers"))));
}

fn parse(c: &mut Criterion) {
    let one = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000001\r\n$3\r\nxxx\r\n";
    let pipeline: Vec<u8> = one.iter().copied().cycle().take(one.len() * 16).collect();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(16));
    g.bench_function("set_pipeline_16", |b| {
        let mut parser = RequestParser::new(512 << 20, true);
        let mut args = Vec::with_capacity(8);
        b.iter_batched(
            || BytesMut::from(&pipeline[..]),
            |mut buf| {
                while parser.next(&mut buf, &mut args).unwrap() {
                    black_box(&args);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A plain `SET key value` write at `now_ms`.
fn set(key: &Bytes, value: &'static [u8], now_ms: u64) -> Write {
    let op = Op::Set {
        key: key.clone(),
        value: Bytes::from_static(value),
        exists: Exists::Any,
        ttl: TtlChange::Clear,
        get: false,
    };
    Write { now_ms, op }
}

fn keyspace(c: &mut Criterion) {
    let ks = Keyspace::new();
    let keys: Vec<Bytes> = (0..100_000).map(|i| Bytes::from(format!("key:{i:012}"))).collect();
    for k in &keys {
        ks.apply(&set(k, b"xxx", 1));
    }
    let mut i = 0usize;
    c.bench_function("keyspace/get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            ks.get(&keys[i], 2, |e| black_box(e.is_some()))
        })
    });
    c.bench_function("keyspace/apply_set", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(ks.apply(&set(&keys[i], b"yyy", 2)))
        })
    });
    // Two threads applying at once, as a standalone node's connections do: what the
    // shared write paths (the write gate, the counters) cost when both cores write.
    // Wall time per write with both writing: half of `apply_set` if they scaled perfectly.
    c.bench_function("keyspace/apply_set_2_threads", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(2);
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for t in 0..2usize {
                    let (ks, keys) = (&ks, &keys);
                    s.spawn(move || {
                        let mut i = t * 50_000;
                        for _ in 0..per_thread {
                            i = (i + 7919) % keys.len();
                            black_box(ks.apply(&set(&keys[i], b"zzz", 3)));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
}

criterion_group!(benches, slots, parse, keyspace);
criterion_main!(benches);
