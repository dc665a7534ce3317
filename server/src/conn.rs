//! One client connection: read requests, execute them as a batch, write the replies.
//!
//! Invariants:
//! - All complete requests in the read buffer run as one batch and their replies leave
//!   in one write; a batch is flushed early once its output passes [`FLUSH_AT`], so a
//!   pipeline's output never sits whole in memory.
//! - The task reads nothing more while it has output to write: a client that does not
//!   read stalls only itself, and the memory it holds is bounded by one batch's output.
//!   `client-output-buffer-limit normal` disconnects it outright (hard limit) or after a
//!   write that stays above the soft limit for its seconds.
//! - After a protocol error the error reply is written and the connection closed.
//! - The task ends on QUIT, CLIENT KILL, EOF, an I/O error, the idle timeout or node
//!   shutdown; dropping its registration frees its `maxclients` place.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::clients::ClientHandle;
use crate::cmd;
use crate::node::Node;
use crate::resp::{Proto, ReplyWriter, RequestParser};

/// Output size at which a batch is written before the rest of it runs.
pub const FLUSH_AT: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Per-connection state that commands read and change.
pub struct ConnState {
    pub handle: Arc<ClientHandle>,
    pub authenticated: bool,
    /// Close after the current batch's replies are written (QUIT, protocol error).
    pub close: bool,
    /// The address this client connected to (what a wildcard-bound node announces).
    pub local_ip: IpAddr,
    /// READONLY: reads may be served by replicas (meaningful once replication exists).
    pub readonly: bool,
    // Batched counters, added to the node's stats once per batch.
    pub commands: u64,
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
}

pub async fn serve(
    node: Arc<Node>,
    mut stream: TcpStream,
    handle: Arc<ClientHandle>,
    mut shutdown: watch::Receiver<bool>,
) {
    let authenticated = !node.requires_auth();
    let mut state = ConnState {
        local_ip: handle.laddr.ip(),
        handle,
        authenticated,
        close: false,
        readonly: false,
        commands: 0,
        hits: 0,
        misses: 0,
        errors: 0,
    };
    let mut parser = RequestParser::new(node.limits.proto_max_bulk_len.load(Ordering::Relaxed), authenticated);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = ReplyWriter::new(Proto::Resp2);
    let mut args: Vec<Bytes> = Vec::with_capacity(8);

    'conn: loop {
        // Run every complete request in the buffer.
        loop {
            match parser.next(&mut rbuf, &mut args) {
                Ok(true) => {
                    cmd::execute(&node, &mut state, &args, &mut out);
                    parser.set_authenticated(state.authenticated);
                    if state.close {
                        break;
                    }
                    if out.buf.len() >= FLUSH_AT && !flush(&node, &mut stream, &mut out).await {
                        break 'conn;
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    node.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    out.error(&e.to_string());
                    state.close = true;
                    break;
                }
            }
        }
        args.clear();
        publish_counts(&node, &mut state);
        if !out.buf.is_empty() && !flush(&node, &mut stream, &mut out).await {
            break;
        }
        if state.close || state.handle.is_killed() {
            break;
        }
        if rbuf.capacity() > 1 << 20 && rbuf.is_empty() {
            rbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        rbuf.reserve(READ_CHUNK);
        parser.set_max_bulk(node.limits.proto_max_bulk_len.load(Ordering::Relaxed));
        let idle = node.limits.timeout_secs.load(Ordering::Relaxed);
        let read = async {
            if idle == 0 {
                stream.read_buf(&mut rbuf).await
            } else {
                match tokio::time::timeout(Duration::from_secs(idle), stream.read_buf(&mut rbuf)).await {
                    Ok(r) => r,
                    Err(_) => Ok(0),
                }
            }
        };
        tokio::select! {
            r = read => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => { node.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed); }
            },
            _ = state.handle.killed() => break,
            _ = shutdown.changed() => break,
        }
    }
    publish_counts(&node, &mut state);
    let _ = stream.shutdown().await;
}

fn publish_counts(node: &Node, state: &mut ConnState) {
    let s = &node.stats;
    if state.commands > 0 {
        s.commands_processed.fetch_add(std::mem::take(&mut state.commands), Ordering::Relaxed);
    }
    if state.hits > 0 {
        s.keyspace_hits.fetch_add(std::mem::take(&mut state.hits), Ordering::Relaxed);
    }
    if state.misses > 0 {
        s.keyspace_misses.fetch_add(std::mem::take(&mut state.misses), Ordering::Relaxed);
    }
    if state.errors > 0 {
        s.error_replies.fetch_add(std::mem::take(&mut state.errors), Ordering::Relaxed);
    }
}

/// Writes the pending output, enforcing the normal-class output buffer limits. Returns
/// false when the connection must close.
async fn flush(node: &Node, stream: &mut TcpStream, out: &mut ReplyWriter) -> bool {
    let limit = node.limits.output.read().normal;
    let pending = out.buf.len() as u64;
    if limit.hard != 0 && pending > limit.hard {
        node.stats.output_buffer_disconnections.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let written = if limit.soft != 0 && pending > limit.soft {
        match tokio::time::timeout(Duration::from_secs(limit.soft_seconds), stream.write_all(&out.buf)).await {
            Ok(r) => r.is_ok(),
            Err(_) => {
                node.stats.output_buffer_disconnections.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    } else {
        stream.write_all(&out.buf).await.is_ok()
    };
    node.stats.net_output_bytes.fetch_add(pending, Ordering::Relaxed);
    if out.buf.capacity() > 1 << 20 {
        out.buf = BytesMut::with_capacity(READ_CHUNK);
    } else {
        out.buf.clear();
    }
    written
}
