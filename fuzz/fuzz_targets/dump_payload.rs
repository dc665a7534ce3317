//! The DUMP payload decoder (`engine/src/dump`), which RESTORE runs on client bytes.
//! The input is a payload body; the harness wraps it in a valid envelope (magic, version,
//! the type tag from the first byte, CRC-64) so the fuzzer explores the body decoder
//! instead of the checksum. Real payloads (the seed corpus) are used as they are.
//!
//! Asserts: no panic; a payload that decodes re-encodes to a payload that decodes to an
//! equal value, and RESTORE of it into a keyspace works and DUMPs back the same bytes.
#![no_main]

use bytes::Bytes;
use prism_engine::op::{Op, Output, Write};
use prism_engine::{dump, Keyspace};

const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

fn check(payload: &[u8]) {
    let Ok(value) = dump::decode(payload) else {
        return;
    };
    let enc = dump::encode(&value);
    let again = dump::decode(&enc).expect("a re-encoded payload decodes");
    assert_eq!(dump::encode(&again), enc, "payload round trip is not stable");
    let ks = Keyspace::new();
    let op =
        Op::Restore { key: Bytes::from_static(b"k"), payload: Bytes::from(enc.clone()), expire_at: 0, replace: false };
    let out = ks.apply(&Write { now_ms: 1_700_000_000_000, op });
    assert_eq!(out, Output::Ok, "RESTORE refused a valid payload");
    let stored = ks.get(b"k", 1_700_000_000_000, |e| e.map(|e| dump::encode(&e.value)));
    assert_eq!(stored.as_deref(), Some(&enc[..]), "DUMP after RESTORE differs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"PRSM") {
        check(data);
        return;
    }
    let Some((&tag, body)) = data.split_first() else {
        return;
    };
    let mut payload = b"PRSM\x01".to_vec();
    payload.push(tag % 7);
    payload.extend_from_slice(body);
    let crc = CRC64.checksum(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    check(&payload);
});
