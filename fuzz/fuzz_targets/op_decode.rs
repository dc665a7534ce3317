//! The replicated write decoder: a log entry's writes are bincode `Write`s (the log store
//! and the peer network decode them with `bincode::deserialize`, as here).
//!
//! Asserts: no panic; a decoded write re-encodes to the bytes it was decoded from (the
//! encoding is canonical) and decodes again to an equal encoding; applying it to a
//! keyspace that holds a value of every type never panics, and a refused write (an
//! `Output::Err`) leaves the keyspace as it was.
#![no_main]

use bytes::Bytes;
use prism_engine::op::{Exists, Op, TtlChange, Write};
use prism_engine::Keyspace;

const NOW: u64 = 1_700_000_000_000;

/// A keyspace with one value of each type under the keys the seed corpus uses.
fn populated() -> Keyspace {
    let ks = prism_fuzz::seeds::populated();
    ks.apply(&Write {
        now_ms: NOW,
        op: Op::Set {
            key: Bytes::from_static(b"ttl"),
            value: Bytes::from_static(b"v"),
            exists: Exists::Any,
            ttl: TtlChange::At(NOW + 1000),
            get: false,
        },
    });
    ks
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(write) = bincode::deserialize::<Write>(data) else {
        return;
    };
    let enc = bincode::serialize(&write).expect("a decoded write encodes");
    assert!(data.starts_with(&enc), "re-encoding differs from the decoded bytes");
    let back: Write = bincode::deserialize(&enc).expect("a re-encoded write decodes");
    assert_eq!(bincode::serialize(&back).expect("encodes"), enc);
    let ks = populated();
    // What a client could see, at the write's time, of the setup keys and the op's keys.
    let mut keys: Vec<Bytes> = prism_fuzz::seeds::SETUP_KEYS.iter().map(|k| Bytes::from_static(k.as_bytes())).collect();
    write.op.for_each_key(|k| keys.push(Bytes::copy_from_slice(k)));
    let before = prism_fuzz::seeds::image_of(&ks, &keys, write.now_ms);
    let out = ks.apply(&write);
    if matches!(out, prism_engine::Output::Err(_)) {
        let after = prism_fuzz::seeds::image_of(&ks, &keys, write.now_ms);
        assert!(after == before, "a refused write changed the keyspace: {write:?}");
    }
    // Applying it again to the changed state must not panic either.
    ks.apply(&write);
});
