//! One client connection: read requests, execute them as a batch, write the replies.
//!
//! Invariants:
//! - All complete requests in the read buffer run as one batch and their replies leave
//!   in one write; a batch is flushed early once its output passes [`FLUSH_AT`], so a
//!   pipeline's output never sits whole in memory.
//! - Output the kernel does not take at once is the client's output buffer. With no
//!   `client-output-buffer-limit normal` hard limit (the default) the task then waits
//!   for the client to read before running more: a client that does not read stalls
//!   only itself and holds about one batch's output ([`FLUSH_AT`] plus one reply). With
//!   a hard limit the batch goes on, as in Redis, and the client is disconnected as soon
//!   as its unsent output passes the limit; a soft limit disconnects it when a write
//!   stays above the soft size for its seconds.
//! - The read buffer never holds more than [`MAX_QUERY_BUFFER`] (or one largest allowed
//!   argument, if bigger): a client past it is closed, as Redis does with
//!   `client-query-buffer-limit`.
//! - A write that waits for the client still gives way to CLIENT KILL and node shutdown,
//!   so a client that never reads cannot hold up either.
//! - After a protocol error the error reply is written and the connection closed.
//! - The task ends on QUIT, CLIENT KILL, EOF, an I/O error, the idle timeout or node
//!   shutdown; dropping its registration frees its `maxclients` place.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::clients::ClientHandle;
use crate::cmd;
use crate::node::Node;
use crate::pubsub::{Message, Subscriber};
use crate::resp::{Proto, ReplyWriter, RequestParser};

/// Output size at which a batch is written before the rest of it runs.
pub const FLUSH_AT: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// Most bytes of not yet complete requests a client may have the server hold, as Redis's
/// default `client-query-buffer-limit` (1gb).
pub const MAX_QUERY_BUFFER: usize = 1024 * 1024 * 1024;

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
    /// Pub/sub subscriptions, once the client subscribed to anything.
    pub subscriber: Option<Subscriber>,
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
        subscriber: None,
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
                    if out.buf.len() >= FLUSH_AT
                        && !flush(&node, &mut stream, &mut out, &state.handle, &mut shutdown, false).await
                    {
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
        if !out.buf.is_empty() && !flush(&node, &mut stream, &mut out, &state.handle, &mut shutdown, true).await {
            break;
        }
        if state.close || state.handle.is_killed() {
            break;
        }
        if rbuf.capacity() > 1 << 20 && rbuf.is_empty() {
            rbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        let max_bulk = node.limits.proto_max_bulk_len.load(Ordering::Relaxed);
        // What is left is part of one request (all complete ones ran above).
        if rbuf.len() > MAX_QUERY_BUFFER.max(max_bulk.saturating_add(FLUSH_AT as u64) as usize) {
            tracing::warn!(client = state.handle.id, bytes = rbuf.len(), "closing client over the query buffer limit");
            break;
        }
        rbuf.reserve(READ_CHUNK);
        parser.set_max_bulk(max_bulk);
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
            msg = next_message(&mut state.subscriber) => {
                if let Some(msg) = msg {
                    write_message(&mut out, &msg);
                    // Drain what else is queued so one write carries it.
                    while out.buf.len() < FLUSH_AT {
                        match state.subscriber.as_mut().and_then(Subscriber::try_recv) {
                            Some(m) => write_message(&mut out, &m),
                            None => break,
                        }
                    }
                }
            },
            _ = state.handle.killed() => break,
            _ = shutdown.changed() => break,
        }
    }
    publish_counts(&node, &mut state);
    let _ = stream.shutdown().await;
}

/// The next pub/sub message, or never when the client subscribes to nothing.
async fn next_message(sub: &mut Option<Subscriber>) -> Option<Message> {
    match sub {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// A pub/sub message as Redis sends it: a push in RESP3, an array in RESP2.
pub fn write_message(out: &mut ReplyWriter, msg: &Message) {
    match msg {
        Message::Channel { channel, payload } => {
            out.push(3);
            out.bulk(b"message");
            out.bulk(channel);
            out.bulk(payload);
        }
        Message::Pattern { pattern, channel, payload } => {
            out.push(4);
            out.bulk(b"pmessage");
            out.bulk(pattern);
            out.bulk(channel);
            out.bulk(payload);
        }
        Message::Shard { channel, payload } => {
            out.push(3);
            out.bulk(b"smessage");
            out.bulk(channel);
            out.bulk(payload);
        }
    }
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

/// Hands the pending output to the socket, enforcing the normal-class output buffer
/// limits (see the module invariants). `end_of_batch`: nothing more will run before the
/// next read, so the output is written out in full. Returns false when the connection
/// must close.
async fn flush(
    node: &Node,
    stream: &mut TcpStream,
    out: &mut ReplyWriter,
    handle: &ClientHandle,
    shutdown: &mut watch::Receiver<bool>,
    end_of_batch: bool,
) -> bool {
    let limit = node.limits.output.read().normal;
    // First what the kernel takes now; only what is left counts against the limits.
    if !write_ready(node, stream, out) {
        return false;
    }
    let pending = out.buf.len() as u64;
    if limit.hard != 0 && pending > limit.hard {
        node.stats.output_buffer_disconnections.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    // With a hard limit, a batch keeps running while the client is behind: the check
    // above bounds what accumulates. Without one, wait here for the client to read.
    if pending > 0 && (end_of_batch || limit.hard == 0) {
        let soft = limit.soft != 0 && pending > limit.soft;
        let write = async {
            if soft {
                match tokio::time::timeout(Duration::from_secs(limit.soft_seconds), stream.write_all(&out.buf)).await {
                    Ok(r) => r.is_ok(),
                    Err(_) => {
                        node.stats.output_buffer_disconnections.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                }
            } else {
                stream.write_all(&out.buf).await.is_ok()
            }
        };
        let written = tokio::select! {
            w = write => w,
            _ = handle.killed() => false,
            _ = shutdown.changed() => false,
        };
        if !written {
            return false;
        }
        node.stats.net_output_bytes.fetch_add(pending, Ordering::Relaxed);
        out.buf.clear();
    }
    if out.buf.is_empty() && out.buf.capacity() > 1 << 20 {
        out.buf = BytesMut::with_capacity(READ_CHUNK);
    }
    true
}

/// Writes as much of the pending output as the socket takes without waiting. False on
/// an I/O error.
fn write_ready(node: &Node, stream: &TcpStream, out: &mut ReplyWriter) -> bool {
    while !out.buf.is_empty() {
        match stream.try_write(&out.buf) {
            Ok(0) => return false,
            Ok(n) => {
                node.stats.net_output_bytes.fetch_add(n as u64, Ordering::Relaxed);
                out.buf.advance(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => return false,
        }
    }
    true
}
