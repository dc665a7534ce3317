//! The cold-object decoder (`engine/src/tier/format.rs`): an Arrow IPC file of a spilled
//! slot. The seed corpus holds real objects, so mutations of valid objects are explored
//! as well as arbitrary bytes.
//!
//! Asserts: no panic (the decoder's own `catch_unwind` does not hide one here: libFuzzer
//! aborts on any panic); `decode_verified` with the right checksum agrees with `decode`
//! and refuses a wrong one; a decoded partition is valid (every row's key in the
//! object's slot, no key twice, every payload's DUMP envelope and head intact) and, when
//! every payload also decodes in full, encoding its rows again gives an object that
//! decodes to the same rows. (`decode` does not build collections: a body that only a
//! full decode refuses, such as a repeated hash field under a correct CRC-64, is the
//! restore's to refuse, before it stores anything.)
#![no_main]

use bytes::Bytes;
use prism_engine::keyspace::Entry;
use prism_engine::tier::format::{checksum, decode, decode_verified, PartitionEncoder};
use prism_engine::Slot;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let crc = checksum(data);
    assert!(decode_verified(bytes.clone(), crc ^ 1, data.len() as u64).is_err(), "a wrong checksum was accepted");
    let verified = decode_verified(bytes.clone(), crc, data.len() as u64);
    let Ok(partition) = decode(bytes) else {
        assert!(verified.is_err(), "decode_verified accepted what decode refused");
        return;
    };
    let verified = verified.expect("decode_verified refused what decode accepted");
    assert_eq!(verified.rows, partition.rows);
    let mut seen = std::collections::HashSet::new();
    let mut enc = PartitionEncoder::new(partition.slot);
    for row in &partition.rows {
        assert_eq!(Slot::of_key(&row.key), partition.slot, "a row outside the object's slot");
        assert!(seen.insert(row.key.clone()), "a key twice");
        assert!(prism_engine::dump::inspect(&row.payload).is_ok(), "a decoded row holds an intact payload");
        let Ok(value) = prism_engine::dump::decode(&row.payload) else {
            // The restore refuses the whole partition (module header of tier::format).
            return;
        };
        let mut entry = Entry::new(value);
        entry.expire_at = row.expire_at;
        enc.push(&row.key, &entry).expect("a decoded row encodes");
    }
    let again = enc.finish().expect("an object of decoded rows encodes");
    let back = decode(again.bytes).expect("a re-encoded object decodes");
    assert_eq!(back.slot, partition.slot);
    assert_eq!(back.rows, partition.rows, "rows differ after re-encoding");
});
