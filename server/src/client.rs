//! A small RESP client, for `prism load` and `prism cluster` and for a node talking to
//! another node's client port (the resharding mover): commands encoded as RESP
//! multibulks, and a decoder for the replies a node sends back (RESP2, plus the RESP3 types a node may use, so a reply
//! is never misread as the start of the next one).
//!
//! The decoder keeps values only where the loader looks at them (error text, CLUSTER
//! SLOTS); the bytes of a reply are consumed exactly, so the n-th reply read always
//! belongs to the n-th command written on that connection.
//!
//! With [`Credentials`] every connection sends `AUTH` before anything else and is given
//! to the loader only once the node accepted it; the password is read from a file
//! (invariant 7) and never printed.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Nesting deeper than this is not something the loader's commands get back.
const MAX_DEPTH: usize = 32;

/// One decoded reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok(Vec<u8>),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
    /// A RESP3 double, boolean, map, set, ... the loader never inspects.
    Other,
}

/// Appends `args` as one RESP multibulk command.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Who the loader authenticates as.
pub struct Credentials {
    /// `None`: `AUTH password` (the default user).
    pub user: Option<Vec<u8>>,
    pub password: Vec<u8>,
}

impl Credentials {
    /// Reads the password from `path`: the whole file less one trailing newline (as the
    /// node reads its `requirepass-file`).
    pub fn from_file(path: &std::path::Path, user: Option<String>) -> Result<Credentials, String> {
        let text = std::fs::read(path).map_err(|e| format!("password file {}: {e}", path.display()))?;
        let pass = text.strip_suffix(b"\n").unwrap_or(&text);
        let pass = pass.strip_suffix(b"\r").unwrap_or(pass);
        if pass.is_empty() {
            return Err(format!("password file {}: the file is empty", path.display()));
        }
        Ok(Credentials { user: user.map(String::into_bytes), password: pass.to_vec() })
    }
}

/// A connection to one node: write many commands at once, read their replies in order.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    pub async fn connect(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: BytesMut::with_capacity(64 * 1024) })
    }

    /// Connects and, with credentials, authenticates; the error says which step failed.
    pub async fn open(addr: &str, credentials: Option<&Credentials>) -> Result<Conn, String> {
        let mut conn = Conn::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let Some(c) = credentials else { return Ok(conn) };
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        args.extend(c.user.as_deref());
        args.push(&c.password);
        match conn.call(&args).await {
            Ok(Reply::Ok(_)) => Ok(conn),
            Ok(Reply::Error(e)) => Err(format!("{addr}: authentication failed: {e}")),
            Ok(other) => Err(format!("{addr}: authentication failed: unexpected reply {other:?}")),
            Err(e) => Err(format!("{addr}: authentication failed: {e}")),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub async fn reply(&mut self) -> std::io::Result<Reply> {
        loop {
            match parse(&self.buf, 0) {
                Ok(Some((reply, n))) => {
                    self.buf.advance(n);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    pub async fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let mut out = Vec::new();
        encode(&mut out, args);
        self.send(&out).await?;
        self.reply().await
    }
}

/// The line starting at `at` (without CRLF) and the offset after its CRLF.
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

fn int(text: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad length or integer in reply: {:?}", String::from_utf8_lossy(text)))
}

/// Decodes one reply starting at `at`: `Ok(None)` if more bytes are needed, else the reply
/// and the offset just past it.
pub fn parse(buf: &[u8], at: usize) -> Result<Option<(Reply, usize)>, String> {
    parse_depth(buf, at, 0)
}

fn parse_depth(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("reply nested too deeply".into());
    }
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    let Some((text, next)) = line(buf, at + 1) else { return Ok(None) };
    match kind {
        b'+' => Ok(Some((Reply::Ok(text.to_vec()), next))),
        b'-' => Ok(Some((Reply::Error(String::from_utf8_lossy(text).into_owned()), next))),
        b':' => Ok(Some((Reply::Int(int(text)?), next))),
        b'_' => Ok(Some((Reply::Nil, next))),
        b',' | b'#' | b'(' => Ok(Some((Reply::Other, next))),
        b'$' | b'!' | b'=' => {
            let len = int(text)?;
            if len < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            let end = next + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            let body = buf[next..end].to_vec();
            let reply = match kind {
                b'!' => Reply::Error(String::from_utf8_lossy(&body).into_owned()),
                _ => Reply::Bulk(body),
            };
            Ok(Some((reply, end + 2)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let len = int(text)?;
            if len < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            // Maps and attributes hold two frames per entry.
            let frames = if matches!(kind, b'%' | b'|') { len as usize * 2 } else { len as usize };
            let mut items = Vec::with_capacity(frames.min(1024));
            let mut pos = next;
            for _ in 0..frames {
                match parse_depth(buf, pos, depth + 1)? {
                    Some((item, n)) => {
                        items.push(item);
                        pos = n;
                    }
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // An attribute precedes the reply it annotates.
                return parse_depth(buf, pos, depth + 1);
            }
            let reply = if kind == b'*' { Reply::Array(items) } else { Reply::Other };
            Ok(Some((reply, pos)))
        }
        other => Err(format!("unexpected reply type byte {:?}", other as char)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_and_partial_replies() {
        let buf = b"*2\r\n:1\r\n$3\r\nabc\r\n-ERR bad\r\n";
        let (r, n) = parse(buf, 0).unwrap().unwrap();
        assert_eq!(r, Reply::Array(vec![Reply::Int(1), Reply::Bulk(b"abc".to_vec())]));
        let (r, m) = parse(buf, n).unwrap().unwrap();
        assert_eq!(r, Reply::Error("ERR bad".into()));
        assert_eq!(m, buf.len());
        for cut in 0..n {
            assert_eq!(parse(&buf[..cut], 0).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(parse(b"%1\r\n+a\r\n_\r\n", 0).unwrap(), Some((Reply::Other, 11)));
        assert!(parse(b"?\r\n", 0).is_err());
    }

    #[test]
    fn encodes_multibulk() {
        let mut out = Vec::new();
        encode(&mut out, &[b"V.SET", b"a"]);
        assert_eq!(out, b"*2\r\n$5\r\nV.SET\r\n$1\r\na\r\n");
    }
}
