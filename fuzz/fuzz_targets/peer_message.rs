//! The peer network's decoder (`replication/src/network.rs`): a connection's bytes as
//! length-prefixed frames, each decoded as the listener and the dialer decode them (a
//! `Frame`), and the whole input as each handshake message.
//!
//! Asserts: no panic; whatever decodes re-encodes, and that encoding decodes and
//! re-encodes to the same bytes (a round trip through the wire format is stable).
#![no_main]

use prism_replication::network::{decode_message, encode_message, Challenge, Frame, Hello, Proof, Verdict};
use serde::{de::DeserializeOwned, Serialize};

fn round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    let Ok(value) = decode_message::<T>(bytes) else {
        return;
    };
    let enc = encode_message(&value).expect("a decoded message encodes");
    let back: T = decode_message(&enc).expect("a re-encoded message decodes");
    assert_eq!(encode_message(&back).expect("encodes"), enc, "peer message round trip is not stable");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    round_trip::<Hello>(data);
    round_trip::<Challenge>(data);
    round_trip::<Proof>(data);
    round_trip::<Verdict>(data);
    // Frames as `read_frame` cuts them: u32 little-endian length, then the body (a length
    // past the input takes the rest, as a short read would end the connection).
    let mut rest = data;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = &rest[4..];
        let (frame, next) = body.split_at(len.min(body.len()));
        round_trip::<Frame>(frame);
        rest = next;
    }
});
