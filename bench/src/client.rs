//! A pipelined RESP client for benchmarks: commands are appended to a write buffer, sent
//! with one write, and their replies read back in order. Replies are decoded into
//! [`Reply`] values (RESP2; the workloads never switch to RESP3), borrowing nothing, so a
//! reply can outlive the read buffer.

use anyhow::{anyhow, bail, Result};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(Vec<u8>),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    /// The bulk strings of an array reply (nested arrays flattened), e.g. ZREVRANGE members.
    pub fn bulks(&self, out: &mut Vec<Vec<u8>>) {
        match self {
            Reply::Bulk(b) => out.push(b.clone()),
            Reply::Array(items) => items.iter().for_each(|i| i.bulks(out)),
            _ => {}
        }
    }
}

pub struct Client {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    pending: usize,
}

impl Client {
    pub async fn connect(addr: &str) -> Result<Client> {
        let stream = TcpStream::connect(addr).await.map_err(|e| anyhow!("connect {addr}: {e}"))?;
        stream.set_nodelay(true)?;
        Ok(Client { stream, rbuf: BytesMut::with_capacity(64 * 1024), wbuf: Vec::with_capacity(64 * 1024), pending: 0 })
    }

    /// Queues one command; nothing is sent until [`Client::flush`].
    pub fn push<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let w = &mut self.wbuf;
        w.push(b'*');
        w.extend_from_slice(args.len().to_string().as_bytes());
        w.extend_from_slice(b"\r\n");
        for a in args {
            let a = a.as_ref();
            w.push(b'$');
            w.extend_from_slice(a.len().to_string().as_bytes());
            w.extend_from_slice(b"\r\n");
            w.extend_from_slice(a);
            w.extend_from_slice(b"\r\n");
        }
        self.pending += 1;
    }

    pub async fn flush(&mut self) -> Result<()> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Ok(())
    }

    /// Reads the next reply (of the commands flushed, in order).
    pub async fn read(&mut self) -> Result<Reply> {
        if self.pending == 0 {
            bail!("read with no command pending");
        }
        loop {
            if let Some((reply, n)) = parse(&self.rbuf, 0)? {
                self.rbuf.advance(n);
                self.pending -= 1;
                return Ok(reply);
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                bail!("server closed the connection");
            }
        }
    }

    /// Sends one command and returns its reply.
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply> {
        self.push(args);
        self.flush().await?;
        self.read().await
    }

    /// `INFO memory` used_memory, in bytes.
    pub async fn used_memory(&mut self) -> Result<u64> {
        let Reply::Bulk(text) = self.call(&["INFO", "memory"]).await? else { bail!("INFO memory: not a bulk reply") };
        let text = String::from_utf8_lossy(&text);
        text.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow!("INFO memory has no used_memory"))
    }
}

fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

fn int(text: &[u8]) -> Result<i64> {
    std::str::from_utf8(text).ok().and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("bad integer in reply"))
}

/// One reply from `at`: `None` if incomplete, else the reply and the offset past it.
pub fn parse(buf: &[u8], at: usize) -> Result<Option<(Reply, usize)>> {
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    let Some((text, next)) = line(buf, at + 1) else { return Ok(None) };
    Ok(Some(match kind {
        b'+' => (Reply::Status(text.to_vec()), next),
        b'-' => (Reply::Error(String::from_utf8_lossy(text).into_owned()), next),
        b':' => (Reply::Int(int(text)?), next),
        b'$' => {
            let len = int(text)?;
            if len < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            let end = next + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            (Reply::Bulk(buf[next..end].to_vec()), end + 2)
        }
        b'*' => {
            let len = int(text)?;
            if len < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            let mut items = Vec::with_capacity((len as usize).min(4096));
            let mut pos = next;
            for _ in 0..len {
                let Some((item, n)) = parse(buf, pos)? else { return Ok(None) };
                items.push(item);
                pos = n;
            }
            (Reply::Array(items), pos)
        }
        other => bail!("unexpected RESP2 type byte {:?}", other as char),
    }))
}
