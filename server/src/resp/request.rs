//! Incremental parser for client requests: RESP multibulk (`*N\r\n$len\r\narg\r\n...`)
//! and inline commands (`PING\r\n`, as typed into telnet).
//!
//! Invariants:
//! - Every length is checked against its limit before anything is reserved for it: a
//!   multibulk count above [`MAX_MULTIBULK`], a bulk above `proto-max-bulk-len`, a header
//!   or inline line longer than [`MAX_INLINE`] is a [`ProtocolError`] — after which the
//!   connection replies with the error and closes, as Redis does.
//! - A declared bulk length is a claim, not a reservation: room for a large argument is
//!   reserved in steps that never exceed what the client has already sent (plus 1 MiB),
//!   so headers alone cannot make the server allocate.
//! - Before a client authenticates the limits are far lower (10 arguments, 16 KiB per
//!   argument), so an unauthenticated peer cannot make the server buffer much.
//! - Parsing a partly received request resumes where it stopped; nothing is rescanned.
//! - Arguments are zero-copy slices of one frozen buffer per request.

use bytes::{Bytes, BytesMut};

/// Longest inline request and longest `*`/`$` header line, as Redis's PROTO_INLINE_MAX_SIZE.
pub const MAX_INLINE: usize = 64 * 1024;
/// Most arguments in one request.
pub const MAX_MULTIBULK: i64 = 1024 * 1024;
const UNAUTH_MAX_MULTIBULK: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16 * 1024;
/// Most room reserved ahead of a large argument's bytes before any of them arrived.
const BULK_PREALLOC: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ERR Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// Where a partly received multibulk request stands.
#[derive(Debug)]
struct Progress {
    argc: usize,
    /// Byte ranges of the arguments seen so far, relative to the buffer start.
    spans: Vec<(usize, usize)>,
    /// Where the next argument's header starts.
    pos: usize,
}

#[derive(Debug)]
pub struct RequestParser {
    max_bulk: i64,
    authenticated: bool,
    progress: Option<Progress>,
}

impl RequestParser {
    pub fn new(max_bulk: u64, authenticated: bool) -> Self {
        RequestParser { max_bulk: max_bulk.min(i64::MAX as u64) as i64, authenticated, progress: None }
    }

    pub fn set_max_bulk(&mut self, max_bulk: u64) {
        self.max_bulk = max_bulk.min(i64::MAX as u64) as i64;
    }

    pub fn set_authenticated(&mut self, yes: bool) {
        self.authenticated = yes;
    }

    /// Parses the next complete request at the start of `buf` into `args` (cleared
    /// first). Returns `Ok(false)` when `buf` holds no complete request yet; consumed
    /// bytes are removed from `buf`. Empty requests are skipped.
    pub fn next(&mut self, buf: &mut BytesMut, args: &mut Vec<Bytes>) -> Result<bool, ProtocolError> {
        args.clear();
        loop {
            if self.progress.is_none() {
                match buf.first() {
                    None => return Ok(false),
                    Some(b'*') => {
                        let Some(line_end) = find_crlf(buf, 1, MAX_INLINE) else {
                            return if buf.len() > MAX_INLINE { err("too big mbulk count string") } else { Ok(false) };
                        };
                        // Checked in Redis's order, so a count both over the protocol's
                        // range and unauthenticated gets Redis's word for it.
                        match parse_len(&buf[1..line_end]) {
                            Some(n) if n > i32::MAX as i64 => return err("invalid multibulk length"),
                            Some(n) if n > UNAUTH_MAX_MULTIBULK && !self.authenticated => {
                                return err("unauthenticated multibulk length")
                            }
                            Some(n) if n > MAX_MULTIBULK => return err("invalid multibulk length"),
                            Some(n) if n <= 0 => {
                                let _ = buf.split_to(line_end + 2);
                                continue;
                            }
                            Some(n) => {
                                self.progress = Some(Progress {
                                    argc: n as usize,
                                    spans: Vec::with_capacity((n as usize).min(64)),
                                    pos: line_end + 2,
                                });
                            }
                            None => return err("invalid multibulk length"),
                        }
                    }
                    Some(_) => match self.inline(buf, args)? {
                        Some(true) => return Ok(true),
                        Some(false) => continue,
                        None => return Ok(false),
                    },
                }
            }
            return self.multibulk(buf, args);
        }
    }

    fn multibulk(&mut self, buf: &mut BytesMut, args: &mut Vec<Bytes>) -> Result<bool, ProtocolError> {
        let p = self.progress.as_mut().expect("called with progress");
        while p.spans.len() < p.argc {
            let Some(&first) = buf.get(p.pos) else {
                return Ok(false);
            };
            if first != b'$' {
                return err(format!("expected '$', got '{}'", first as char));
            }
            let Some(line_end) = find_crlf(buf, p.pos + 1, MAX_INLINE) else {
                return if buf.len() - p.pos > MAX_INLINE { err("too big bulk count string") } else { Ok(false) };
            };
            // Redis's order: out of range first, then the unauthenticated limit.
            let len = match parse_len(&buf[p.pos + 1..line_end]) {
                Some(n) if n < 0 || n > self.max_bulk => return err("invalid bulk length"),
                Some(n) if n > UNAUTH_MAX_BULK && !self.authenticated => return err("unauthenticated bulk length"),
                Some(n) => n as usize,
                None => return err("invalid bulk length"),
            };
            let start = line_end + 2;
            let end = start + len;
            if buf.len() < end + 2 {
                // Large arguments: make room in few steps rather than many, but never
                // reserve more than the client has actually sent (plus a little): the
                // declared length is only a claim, and reserving it outright would let
                // a few headers allocate gigabytes.
                let missing = end + 2 - buf.len();
                buf.reserve(missing.min(buf.len().max(BULK_PREALLOC)));
                return Ok(false);
            }
            p.spans.push((start, end));
            p.pos = end + 2;
        }
        let p = self.progress.take().expect("checked");
        let frame = buf.split_to(p.pos).freeze();
        args.extend(p.spans.iter().map(|&(s, e)| frame.slice(s..e)));
        Ok(true)
    }

    /// An inline request. `Some(true)`: parsed into `args`; `Some(false)`: an empty line
    /// was skipped; `None`: incomplete.
    fn inline(&mut self, buf: &mut BytesMut, args: &mut Vec<Bytes>) -> Result<Option<bool>, ProtocolError> {
        let Some(nl) = buf.iter().take(MAX_INLINE + 1).position(|&b| b == b'\n') else {
            return if buf.len() > MAX_INLINE { err("too big inline request") } else { Ok(None) };
        };
        let line = buf.split_to(nl + 1);
        let mut text = &line[..nl];
        if text.last() == Some(&b'\r') {
            text = &text[..text.len() - 1];
        }
        match split_args(text) {
            Some(parts) if parts.is_empty() => Ok(Some(false)),
            Some(parts) => {
                if !self.authenticated && parts.len() as i64 > UNAUTH_MAX_MULTIBULK {
                    return err("unauthenticated multibulk length");
                }
                args.extend(parts.into_iter().map(Bytes::from));
                Ok(Some(true))
            }
            None => err("unbalanced quotes in request"),
        }
    }
}

/// Position of the `\r` of the first `\r\n` at or after `from`, looking at most `max`
/// bytes ahead.
fn find_crlf(buf: &[u8], from: usize, max: usize) -> Option<usize> {
    let end = buf.len().min(from.saturating_add(max));
    let window = buf.get(from..end)?;
    window.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

/// A length in a `*` or `$` header: an optionally negative decimal, read as Redis's
/// `string2ll` reads it (no sign but `-`, no leading zeros, no `-0`).
fn parse_len(s: &[u8]) -> Option<i64> {
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    if neg {
        // -9223372036854775808 is the one magnitude that fits only negated.
        (v <= i64::MAX as u64 + 1).then(|| (v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// Splits an inline command line as Redis's `sdssplitargs`: whitespace separates
/// arguments; "double quotes" allow `\n \r \t \b \a \\ \" \xHH` escapes; 'single quotes'
/// allow `\'`. A closing quote must be followed by whitespace or the end. `None` on
/// unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            let c = line.get(i).copied();
            if in_dq {
                match c {
                    None => return None,
                    Some(b'\\')
                        if i + 3 < line.len() && line[i + 1] == b'x' && is_hex_pair(line[i + 2], line[i + 3]) =>
                    {
                        cur.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                        i += 3;
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(c) => cur.push(c),
                }
            } else if in_sq {
                match c {
                    None => return None,
                    Some(b'\\') if i + 1 < line.len() && line[i + 1] == b'\'' => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(c) => cur.push(c),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(c) => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

fn is_hex_pair(a: u8, b: u8) -> bool {
    a.is_ascii_hexdigit() && b.is_ascii_hexdigit()
}

fn hex_val(c: u8) -> u8 {
    (c as char).to_digit(16).unwrap_or(0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], authenticated: bool) -> (Vec<Vec<Vec<u8>>>, Result<(), ProtocolError>, usize) {
        let mut p = RequestParser::new(512 * 1024 * 1024, authenticated);
        let mut buf = BytesMut::from(input);
        let mut args = Vec::new();
        let mut cmds = Vec::new();
        loop {
            match p.next(&mut buf, &mut args) {
                Ok(true) => cmds.push(args.iter().map(|a| a.to_vec()).collect()),
                Ok(false) => return (cmds, Ok(()), buf.len()),
                Err(e) => return (cmds, Err(e), buf.len()),
            }
        }
    }

    #[test]
    fn multibulk_and_pipeline() {
        let (cmds, res, left) =
            parse_all(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*2\r\n$3\r\nGET", true);
        assert!(res.is_ok());
        assert_eq!(cmds, vec![vec![b"PING".to_vec()], vec![b"SET".to_vec(), b"k".to_vec(), b"".to_vec()]]);
        assert_eq!(left, "*2\r\n$3\r\nGET".len());
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let input = b"*2\r\n$4\r\nECHO\r\n$12\r\nhello\r\nworld\r\nPING\r\n*0\r\n\r\n";
        let mut p = RequestParser::new(1 << 20, true);
        let mut buf = BytesMut::new();
        let mut args = Vec::new();
        let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while p.next(&mut buf, &mut args).unwrap() {
                cmds.push(args.iter().map(|a| a.to_vec()).collect());
            }
        }
        assert_eq!(cmds, vec![vec![b"ECHO".to_vec(), b"hello\r\nworld".to_vec()], vec![b"PING".to_vec()]]);
        assert!(buf.is_empty());
    }

    #[test]
    fn limits_are_checked_before_buffering() {
        let (_, res, _) = parse_all(b"*1\r\n$999999999999\r\n", true);
        assert_eq!(res.unwrap_err().0, "invalid bulk length");
        let (_, res, _) = parse_all(b"*99999999\r\n", true);
        assert_eq!(res.unwrap_err().0, "invalid multibulk length");
        let (_, res, _) = parse_all(b"*1\r\n$-5\r\n", true);
        assert_eq!(res.unwrap_err().0, "invalid bulk length");
        let (_, res, _) = parse_all(b"*1\r\n*1\r\n", true);
        assert_eq!(res.unwrap_err().0, "expected '$', got '*'");
        let (_, res, _) = parse_all(b"*x\r\n", true);
        assert_eq!(res.unwrap_err().0, "invalid multibulk length");
        let (_, res, _) = parse_all(b"*20\r\n", false);
        assert_eq!(res.unwrap_err().0, "unauthenticated multibulk length");
        let (_, res, _) = parse_all(b"*1\r\n$100000\r\n", false);
        assert_eq!(res.unwrap_err().0, "unauthenticated bulk length");
        let (_, res, _) = parse_all(&vec![b'a'; MAX_INLINE + 10], true);
        assert_eq!(res.unwrap_err().0, "too big inline request");
    }

    #[test]
    fn lengths_read_as_redis_string2ll() {
        for bad in ["*01\r\n", "*+1\r\n", "*-0\r\n", "*\r\n", "*1 \r\n", "*99999999999999999999\r\n"] {
            let (_, res, _) = parse_all(bad.as_bytes(), true);
            assert_eq!(res.unwrap_err().0, "invalid multibulk length", "{bad:?}");
        }
        // Any count <= 0 is an empty request and skipped, as Redis skips it.
        let (cmds, res, left) = parse_all(b"*-9223372036854775808\r\n*-1\r\n*0\r\nPING\r\n", true);
        assert_eq!((cmds, res, left), (vec![vec![b"PING".to_vec()]], Ok(()), 0));
        for bad in ["*1\r\n$01\r\n", "*1\r\n$-0\r\n", "*1\r\n$x\r\n", "*1\r\n$9223372036854775808\r\n"] {
            let (_, res, _) = parse_all(bad.as_bytes(), true);
            assert_eq!(res.unwrap_err().0, "invalid bulk length", "{bad:?}");
        }
    }

    #[test]
    fn unauthenticated_limits_come_after_range_checks() {
        // Redis reports an out-of-range length as invalid even before AUTH.
        let (_, res, _) = parse_all(b"*3000000000\r\n", false);
        assert_eq!(res.unwrap_err().0, "invalid multibulk length");
        let mut p = RequestParser::new(1 << 20, false);
        let mut args = Vec::new();
        let res = p.next(&mut BytesMut::from(&b"*1\r\n$2000000\r\n"[..]), &mut args);
        assert_eq!(res.unwrap_err().0, "invalid bulk length");
        let (_, res, _) = parse_all(b"*1\r\n$16385\r\n", false);
        assert_eq!(res.unwrap_err().0, "unauthenticated bulk length");
        let (cmds, res, _) = parse_all(b"*1\r\n$16384\r\n", false);
        assert_eq!((cmds.len(), res), (0, Ok(())));
    }

    #[test]
    fn a_declared_length_does_not_reserve_memory() {
        let mut p = RequestParser::new(512 * 1024 * 1024, true);
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$536870912\r\n"[..]);
        let mut args = Vec::new();
        assert_eq!(p.next(&mut buf, &mut args), Ok(false));
        assert!(buf.capacity() <= 2 * BULK_PREALLOC, "reserved {} bytes on a header", buf.capacity());
    }

    #[test]
    fn inline_commands() {
        let (cmds, res, _) = parse_all(b"SET k \"a b\\x41\\n\"\r\n\r\n  GET   'it\\'s'\n", true);
        assert!(res.is_ok());
        assert_eq!(cmds[0], vec![b"SET".to_vec(), b"k".to_vec(), b"a bA\n".to_vec()]);
        assert_eq!(cmds[1], vec![b"GET".to_vec(), b"it's".to_vec()]);
        let (_, res, _) = parse_all(b"SET k \"abc\r\n", true);
        assert_eq!(res.unwrap_err().0, "unbalanced quotes in request");
    }
}
