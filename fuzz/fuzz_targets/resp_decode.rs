//! The server's request parser (`server/src/resp/request.rs`) on any bytes.
//!
//! Asserts: no panic; fed in pieces (split where the input says) it yields the same
//! requests and the same verdict as fed whole; a request that came as canonical
//! multibulk is exactly the bytes it consumed; re-encoding a request as multibulk and
//! parsing that gives the same arguments.
#![no_main]

use bytes::{Bytes, BytesMut};
use prism_server::resp::{ProtocolError, RequestParser};

type Parsed = (Vec<Vec<Bytes>>, Option<ProtocolError>);

/// The multibulk encoding of `args`, and the positions of each bulk's closing CRLF: the
/// parser skips those two bytes without looking at them, as Redis does.
fn multibulk(args: &[Bytes]) -> (Vec<u8>, Vec<usize>) {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    let mut skipped = Vec::new();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        skipped.extend([out.len(), out.len() + 1]);
        out.extend_from_slice(b"\r\n");
    }
    (out, skipped)
}

/// Feeds `input` in the given chunk sizes (the rest at once), parsing after each chunk
/// as a connection does; stops at the first protocol error, as a connection closes.
fn parse(input: &[u8], chunks: &[usize], max_bulk: u64, authenticated: bool) -> Parsed {
    let mut parser = RequestParser::new(max_bulk, authenticated);
    let mut buf = BytesMut::new();
    let mut args = Vec::new();
    let mut requests = Vec::new();
    let mut fed = 0;
    let mut sizes = chunks.iter().copied().chain(std::iter::once(usize::MAX));
    while fed < input.len() {
        let n = sizes.next().unwrap_or(usize::MAX).min(input.len() - fed).max(1);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            let before = buf.clone();
            match parser.next(&mut buf, &mut args) {
                Ok(true) => {
                    let consumed = &before[..before.len() - buf.len()];
                    check_request(consumed, &args);
                    requests.push(args.clone());
                }
                Ok(false) => break,
                Err(e) => return (requests, Some(e)),
            }
        }
    }
    (requests, None)
}

fn check_request(consumed: &[u8], args: &[Bytes]) {
    assert!(!args.is_empty(), "an empty request was returned");
    let (enc, skipped) = multibulk(args);
    // A consumed request that starts with a positive count is one canonical multibulk
    // request (empty ones before it start with `*0` or a negative count).
    if consumed.first() == Some(&b'*') && matches!(consumed.get(1), Some(b'1'..=b'9')) {
        assert_eq!(consumed.len(), enc.len(), "multibulk request does not re-encode to its bytes");
        for (i, (c, e)) in consumed.iter().zip(&enc).enumerate() {
            assert!(c == e || skipped.contains(&i), "multibulk request does not re-encode to its bytes at {i}");
        }
    }
    let mut p = RequestParser::new(u64::MAX, true);
    let mut buf = BytesMut::from(&enc[..]);
    let mut again = Vec::new();
    assert_eq!(p.next(&mut buf, &mut again), Ok(true));
    assert_eq!(again, args);
    assert!(buf.is_empty());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let authenticated = mode & 1 == 0;
    // A small proto-max-bulk-len sometimes, so its limit is reached too.
    let max_bulk = if mode & 2 == 0 { 512 * 1024 * 1024 } else { 64 };
    let whole = parse(rest, &[], max_bulk, authenticated);
    // Chunk sizes from the input itself: cuts land inside headers, CRLFs and bulks.
    let chunks: Vec<usize> = rest.iter().map(|&b| 1 + (b as usize % 7)).collect();
    let pieces = parse(rest, &chunks, max_bulk, authenticated);
    assert_eq!(whole, pieces, "parsing in pieces differs from parsing whole");
});
