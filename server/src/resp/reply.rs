//! Writing replies straight into a connection's output buffer, in the shape of the
//! connection's protocol (RESP2 or RESP3, switched by `HELLO`).
//!
//! RESP3-only types degrade as Redis degrades them for RESP2: maps and sets become flat
//! arrays, doubles become bulk strings, booleans become integers, verbatim strings become
//! bulk strings and null becomes `$-1` (or `*-1` for a null array).

use bytes::{BufMut, BytesMut};

use prism_engine::Output;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Resp2,
    Resp3,
}

pub struct ReplyWriter {
    pub buf: BytesMut,
    pub proto: Proto,
}

/// Reply space a writer starts with; `BytesMut` doubles it as replies need, and a
/// connection keeps what it grew to (under 1 MB: `conn.rs`).
pub const REPLY_FIRST: usize = 1024;

impl ReplyWriter {
    pub fn new(proto: Proto) -> Self {
        ReplyWriter { buf: BytesMut::with_capacity(REPLY_FIRST), proto }
    }

    pub fn is_resp3(&self) -> bool {
        self.proto == Proto::Resp3
    }

    fn header(&mut self, prefix: u8, n: i64) {
        self.buf.put_u8(prefix);
        self.buf.put_slice(itoa::Buffer::new().format(n).as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.put_slice(b"+OK\r\n");
    }

    /// A simple string; must not contain CR or LF.
    pub fn simple(&mut self, s: &str) {
        self.buf.put_u8(b'+');
        self.buf.put_slice(s.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    /// An error reply. `msg` starts with its code (`ERR ...`, `WRONGTYPE ...`); CR and LF
    /// in it are replaced by spaces, as Redis does, so the reply stays one line.
    pub fn error(&mut self, msg: &str) {
        self.buf.put_u8(b'-');
        for &b in msg.as_bytes() {
            self.buf.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.put_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    pub fn bulk(&mut self, s: &[u8]) {
        self.header(b'$', s.len() as i64);
        self.buf.put_slice(s);
        self.buf.put_slice(b"\r\n");
    }

    /// The null reply (a missing value).
    pub fn null(&mut self) {
        match self.proto {
            Proto::Resp2 => self.buf.put_slice(b"$-1\r\n"),
            Proto::Resp3 => self.buf.put_slice(b"_\r\n"),
        }
    }

    /// The null reply where RESP2 uses a null array (e.g. an aborted EXEC).
    pub fn null_array(&mut self) {
        match self.proto {
            Proto::Resp2 => self.buf.put_slice(b"*-1\r\n"),
            Proto::Resp3 => self.buf.put_slice(b"_\r\n"),
        }
    }

    pub fn array(&mut self, len: usize) {
        self.header(b'*', len as i64);
    }

    /// A map of `len` pairs; the caller writes 2 x `len` elements.
    pub fn map(&mut self, len: usize) {
        match self.proto {
            Proto::Resp2 => self.header(b'*', 2 * len as i64),
            Proto::Resp3 => self.header(b'%', len as i64),
        }
    }

    pub fn set(&mut self, len: usize) {
        match self.proto {
            Proto::Resp2 => self.header(b'*', len as i64),
            Proto::Resp3 => self.header(b'~', len as i64),
        }
    }

    /// An out-of-band push (pub/sub messages); an array in RESP2.
    pub fn push(&mut self, len: usize) {
        match self.proto {
            Proto::Resp2 => self.header(b'*', len as i64),
            Proto::Resp3 => self.header(b'>', len as i64),
        }
    }

    pub fn double(&mut self, v: f64) {
        let text = format_double(v);
        match self.proto {
            Proto::Resp2 => self.bulk(text.as_bytes()),
            Proto::Resp3 => {
                self.buf.put_u8(b',');
                self.buf.put_slice(text.as_bytes());
                self.buf.put_slice(b"\r\n");
            }
        }
    }

    pub fn boolean(&mut self, v: bool) {
        match self.proto {
            Proto::Resp2 => self.int(v as i64),
            Proto::Resp3 => self.buf.put_slice(if v { b"#t\r\n" } else { b"#f\r\n" }),
        }
    }

    /// Text meant for humans (INFO, CLUSTER NODES): a verbatim string in RESP3.
    pub fn verbatim(&mut self, text: &str) {
        match self.proto {
            Proto::Resp2 => self.bulk(text.as_bytes()),
            Proto::Resp3 => {
                self.header(b'=', text.len() as i64 + 4);
                self.buf.put_slice(b"txt:");
                self.buf.put_slice(text.as_bytes());
                self.buf.put_slice(b"\r\n");
            }
        }
    }

    pub fn bulks<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a [u8]>) {
        self.array(items.len());
        for i in items {
            self.bulk(i);
        }
    }

    /// Renders the result of an applied write.
    pub fn output(&mut self, out: &Output) {
        match out {
            Output::Ok => self.ok(),
            Output::Nil => self.null(),
            Output::Int(n) => self.int(*n),
            Output::Bulk(b) => self.bulk(b),
            Output::Double(d) => self.double(*d),
            Output::Map(pairs) => {
                self.map(pairs.len());
                for (k, v) in pairs {
                    self.output(k);
                    self.output(v);
                }
            }
            Output::Array(items) => {
                self.array(items.len());
                items.iter().for_each(|i| self.output(i));
            }
            Output::Err(e) => self.error(&e.to_string()),
        }
    }
}

/// Doubles as Redis 7.2 prints them (`util.c:d2string`): `inf`/`-inf`/`nan`, a signed
/// zero as `0`/`-0`, integral values within +-2^62 as integers, anything else as the
/// shortest round-trip digits laid out by fpconv's rules (plain up to a few leading or
/// trailing zeros, else `1.5e+20` / `1e-7`).
pub fn format_double(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Redis's double2ll window: (double)(LLONG_MAX / 2) either side.
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if (-LIMIT..=LIMIT).contains(&v) && v.trunc() == v {
        return (v as i64).to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde<exp>".
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;
    let k = exp - (n - 1);
    let abs_exp = exp.abs();
    let mut out = String::with_capacity(26);
    if v < 0.0 {
        out.push('-');
    }
    if k >= 0 && abs_exp < n + 7 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', k as usize));
    } else if k < 0 && (k > -7 || abs_exp < 4) {
        let offset = n + k;
        if offset <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-offset) as usize));
            out.push_str(&digits);
        } else {
            out.push_str(&digits[..offset as usize]);
            out.push('.');
            out.push_str(&digits[offset as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&abs_exp.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(proto: Proto, f: impl FnOnce(&mut ReplyWriter)) -> String {
        let mut w = ReplyWriter::new(proto);
        f(&mut w);
        String::from_utf8(w.buf.to_vec()).unwrap()
    }

    #[test]
    fn shapes_per_protocol() {
        assert_eq!(render(Proto::Resp2, |w| w.null()), "$-1\r\n");
        assert_eq!(render(Proto::Resp3, |w| w.null()), "_\r\n");
        assert_eq!(render(Proto::Resp2, |w| w.map(1)), "*2\r\n");
        assert_eq!(render(Proto::Resp3, |w| w.map(1)), "%1\r\n");
        assert_eq!(render(Proto::Resp2, |w| w.double(1.5)), "$3\r\n1.5\r\n");
        assert_eq!(render(Proto::Resp3, |w| w.double(2.0)), ",2\r\n");
        assert_eq!(render(Proto::Resp3, |w| w.verbatim("a")), "=5\r\ntxt:a\r\n");
        assert_eq!(render(Proto::Resp2, |w| w.error("ERR a\r\nb")), "-ERR a  b\r\n");
        assert_eq!(render(Proto::Resp3, |w| w.boolean(true)), "#t\r\n");
    }

    #[test]
    fn doubles_as_redis_d2string() {
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (3.0, "3"),
            (-3.0, "-3"),
            (0.1, "0.1"),
            (-0.0, "-0"),
            (0.0, "0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (1e8, "100000000"),
            (1e19, "1e+19"),
            (1.5e300, "1.5e+300"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123.456, "123.456"),
            (-0.5, "-0.5"),
            (4611686018427387904.0, "4611686018427387904"),
            (12345678901234567890.0, "12345678901234567000"),
        ];
        for (v, want) in cases {
            assert_eq!(format_double(*v), *want, "{v:?}");
        }
    }
}
