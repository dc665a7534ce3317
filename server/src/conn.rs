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
//! - The loop is generic over the [`ClientStream`] and monomorphized per transport: the
//!   plain TCP path is the same code it was before TLS, with no box and no extra flush;
//!   a TLS stream is flushed at the end of every batch, since rustls may hold the tail.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::clients::ClientHandle;
use crate::cmd;
use crate::keywatch::KeyWatch;
use crate::node::Node;
use crate::pending;
use crate::pubsub::{Message, Subscriber};
use crate::resp::{Proto, ReplyWriter, RequestParser};

/// Output size at which a batch is written before the rest of it runs.
pub const FLUSH_AT: usize = 64 * 1024;
/// Read space a connection starts with: most requests are far smaller, and idle
/// connections (a proxy tier holds thousands) should cost little (docs/benchmarks.md,
/// "Abuse").
const READ_FIRST: usize = 1024;
/// Read space a connection grows to, doubling from [`READ_FIRST`] each time a read
/// fills what it had (a pipeline, a large value); it stays grown. A read that filled its
/// space is followed at once by reads of what is already there ([`read_more_now`]), so a
/// pipeline's first batch is as large as it was with 16 KB from the start.
const READ_CHUNK: usize = 16 * 1024;
/// Most bytes of not yet complete requests a client may have the server hold, as Redis's
/// default `client-query-buffer-limit` (1gb).
pub const MAX_QUERY_BUFFER: usize = 1024 * 1024 * 1024;

/// A client's transport: TCP, or TLS over TCP (tls.rs).
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Encrypted: cluster replies name TLS ports, and output may wait in the TLS layer
    /// until the stream is flushed.
    const TLS: bool;
    /// Writes what the transport takes now, without waiting (`WouldBlock`: nothing).
    fn try_write_now(&mut self, buf: &[u8]) -> io::Result<usize>;
}

impl ClientStream for TcpStream {
    const TLS: bool = false;

    fn try_write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.try_write(buf)
    }
}

/// Per-connection state that commands read and change.
pub struct ConnState {
    pub handle: Arc<ClientHandle>,
    pub authenticated: bool,
    /// Close after the current batch's replies are written (QUIT, protocol error).
    pub close: bool,
    /// The address this client connected to (what a wildcard-bound node announces).
    pub local_ip: IpAddr,
    /// Set for a client that came over TLS: cluster replies and redirects name TLS ports.
    pub tls: Option<crate::tls::TlsPorts>,
    /// READONLY: reads may be served by replicas (meaningful once replication exists).
    pub readonly: bool,
    /// `ASKING` was sent: the next command may use a slot this shard is importing.
    pub asking: bool,
    /// Set by routing for a request in a migrating slot: the slot and its version when
    /// the request's keys were found here (fleet/moving.rs).
    pub slot_guard: Option<(u16, u64)>,
    /// Pub/sub subscriptions, once the client subscribed to anything.
    pub subscriber: Option<Subscriber>,
    /// Set by a blocking command (BLPOP, ...) that found nothing to serve: the
    /// connection waits for a write to one of the keys and runs the command again.
    pub blocked: Option<Blocked>,
    /// Commands queued since MULTI (`None` outside a transaction).
    pub multi: Option<cmd::multi::Transaction>,
    /// Keys under WATCH.
    pub watching: cmd::multi::Watching,
    // Batched counters, added to the node's stats once per batch.
    pub commands: u64,
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    /// Per-command figures of this batch (see `stats`).
    /// When the previous command of this batch ended: the next command's start, so timing
    /// a command costs one clock read. Cleared wherever the connection waits.
    pub clock_mark: Option<std::time::Instant>,
    /// The node time reads of this batch are judged at (0: not read yet). See `Ctx::now_ms`.
    pub read_now: std::cell::Cell<u64>,
    pub cmd_stats: crate::stats::ConnStats,
    /// CLIENT TRACKING is on (recorded only: no invalidation messages are sent).
    pub tracking: bool,
    /// Replicated node: writes handed to the shard group at the next commit, and the
    /// replies they owe (see `pending`).
    pub pending: Vec<crate::pending::Pending>,
    /// Replicated node: a read fence completed after this batch's requests arrived.
    pub fenced: bool,
    /// Replicated node: the read fence of this batch failed.
    pub fence_error: Option<prism_replication::WriteError>,
    /// Set by a pending reply's rendering: run the same request again (a command that
    /// works in rounds, each one committed write, such as V.DEL's incremental detach).
    pub rerun: bool,
    /// Replicated node: the log index of this connection's last committed write (WAIT).
    pub last_write_index: u64,
    /// This request waited for the spiller and may not again (the spiller stalled, or
    /// it waited 64 times): over `maxmemory` again, it is refused.
    pub memory_waited: bool,
    /// A reply the command will give once this future resolves (WAIT, RAFT ADD ...): the
    /// connection waits for it, without blocking anyone else, before it runs more.
    pub deferred: Option<Deferred>,
}

/// Writes a deferred reply.
pub type DeferredReply = Box<dyn FnOnce(&mut ReplyWriter) + Send>;
/// A reply still being worked out (see `ConnState::deferred`).
pub type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = DeferredReply> + Send>>;

impl ConnState {
    /// The state of a connection that just registered as `handle`.
    pub fn new(handle: Arc<ClientHandle>, authenticated: bool) -> ConnState {
        ConnState {
            local_ip: handle.laddr.ip(),
            tls: None,
            handle,
            authenticated,
            close: false,
            readonly: false,
            asking: false,
            slot_guard: None,
            subscriber: None,
            blocked: None,
            multi: None,
            watching: Default::default(),
            commands: 0,
            hits: 0,
            misses: 0,
            errors: 0,
            cmd_stats: Default::default(),
            clock_mark: None,
            read_now: std::cell::Cell::new(0),
            tracking: false,
            pending: Vec::new(),
            fenced: false,
            fence_error: None,
            rerun: false,
            last_write_index: 0,
            memory_waited: false,
            deferred: None,
        }
    }

    /// The connection waited (for input, output or a key): the next command reads the
    /// clocks afresh, so no wait is charged to a command and no read sees a stale time.
    pub fn waited(&mut self) {
        self.clock_mark = None;
        self.read_now.set(0);
        // Requests read from now on may be newer than the last read fence.
        self.fenced = false;
        self.fence_error = None;
    }
}

/// [`run`] for the fuzz harness (`fuzz/fuzz_targets/command.rs`), which drives requests
/// without a socket; not an API.
#[doc(hidden)]
pub async fn run_request(node: &Node, state: &mut ConnState, args: &[Bytes], out: &mut ReplyWriter) {
    run(node, state, args, out).await
}

/// Runs one request to the end on a standalone or replicated node: commits pending
/// writes or waits for a read fence when `execute` asks for it, and settles a direct
/// handler's pending reply at once (it may block the connection).
async fn run(node: &Node, state: &mut ConnState, args: &[Bytes], out: &mut ReplyWriter) {
    // A request touching many cold slots loads them one by one; past this it gives up.
    const MAX_LOADS: usize = 64;
    // Waits for the spiller each of which ended with memory under the limit, before a
    // write still over it is refused.
    const MAX_MEMORY_WAITS: usize = 64;
    let (mut loads, mut memory_waits) = (0, 0);
    state.memory_waited = false;
    loop {
        match cmd::execute(node, state, args, out) {
            cmd::Exec::Done => {}
            cmd::Exec::Commit => {
                pending::commit(node, state, out).await;
                continue;
            }
            cmd::Exec::Fence => {
                pending::fence(node, state).await;
                continue;
            }
            cmd::Exec::Load(slot) => {
                // Earlier pending writes keep their place ahead of this request.
                if !state.pending.is_empty() {
                    pending::commit(node, state, out).await;
                }
                loads += 1;
                node.tiering.cold_waits.fetch_add(1, Ordering::Relaxed);
                let result = if loads > MAX_LOADS {
                    Err(cmd::CmdError::msg("TRYAGAIN cold partition unavailable: slots keep changing tier; retry"))
                } else {
                    crate::tier::load(node, slot).await
                };
                state.waited();
                match result {
                    Ok(()) => continue,
                    Err(e) => cmd::fail(state, out, e),
                }
            }
            cmd::Exec::MemoryWait => {
                if !state.pending.is_empty() {
                    pending::commit(node, state, out).await;
                }
                // Memory back under the limit: another writer may take it first, and
                // this one waits again (bounded); a stalled spiller ends the waiting.
                memory_waits += 1;
                let room = crate::tier::wait_for_memory(node).await;
                state.memory_waited = !room || memory_waits >= MAX_MEMORY_WAITS;
                state.waited();
                continue;
            }
        }
        let custom = state.pending.last().is_some_and(|p| matches!(p.render, pending::Render::Custom(_)));
        if custom || state.pending.len() >= pending::MAX_PENDING {
            pending::commit(node, state, out).await;
        }
        if let Some(deferred) = state.deferred.take() {
            let reply = deferred.await;
            state.waited();
            reply(out);
        }
        if !std::mem::take(&mut state.rerun) {
            break;
        }
    }
}

pub async fn serve<S: ClientStream>(
    node: Arc<Node>,
    mut stream: S,
    handle: Arc<ClientHandle>,
    mut shutdown: watch::Receiver<bool>,
) {
    let authenticated = !node.requires_auth();
    let mut state = ConnState::new(handle, authenticated);
    state.tls = S::TLS.then(|| crate::tls::TlsPorts::of(&node));
    let mut parser = RequestParser::new(node.limits.proto_max_bulk_len.load(Ordering::Relaxed), authenticated);
    let mut rbuf = BytesMut::with_capacity(READ_FIRST);
    let mut chunk = READ_FIRST;
    let mut out = ReplyWriter::new(Proto::Resp2);
    let mut args: Vec<Bytes> = Vec::with_capacity(8);

    'conn: loop {
        state.waited();
        // Run every complete request in the buffer.
        loop {
            match parser.next(&mut rbuf, &mut args) {
                Ok(true) => {
                    run(&node, &mut state, &args, &mut out).await;
                    if state.blocked.is_some() {
                        // Nothing after a blocked command runs until it is served (Redis
                        // keeps reading, and so do we, but executes no more).
                        if !flush(&node, &mut stream, &mut out, &state.handle, &mut shutdown, true).await
                            || !wait_unblocked(
                                &node,
                                &mut stream,
                                &mut rbuf,
                                &mut state,
                                &args,
                                &mut out,
                                &mut shutdown,
                            )
                            .await
                        {
                            break 'conn;
                        }
                        state.waited();
                    }
                    parser.set_authenticated(state.authenticated);
                    if state.close {
                        break;
                    }
                    if out.buf.len() >= FLUSH_AT {
                        if !flush(&node, &mut stream, &mut out, &state.handle, &mut shutdown, false).await {
                            break 'conn;
                        }
                        state.waited();
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
        if !state.pending.is_empty() {
            pending::commit(&node, &mut state, &mut out).await;
        }
        publish_counts(&node, &mut state);
        if (S::TLS || !out.buf.is_empty())
            && !flush(&node, &mut stream, &mut out, &state.handle, &mut shutdown, true).await
        {
            break;
        }
        if state.close || state.handle.is_killed() {
            break;
        }
        if rbuf.capacity() > 1 << 20 && rbuf.is_empty() {
            rbuf = BytesMut::with_capacity(chunk);
        }
        let max_bulk = node.limits.proto_max_bulk_len.load(Ordering::Relaxed);
        // What is left is part of one request (all complete ones ran above).
        if rbuf.len() > MAX_QUERY_BUFFER.max(max_bulk.saturating_add(FLUSH_AT as u64) as usize) {
            tracing::warn!(client = state.handle.id, bytes = rbuf.len(), "closing client over the query buffer limit");
            break;
        }
        rbuf.reserve(chunk);
        let room = rbuf.capacity() - rbuf.len();
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
        let filled = tokio::select! {
            r = read => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    node.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    n == room
                }
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
                false
            },
            _ = state.handle.killed() => break,
            _ = shutdown.changed() => break,
        };
        if filled && chunk < READ_CHUNK {
            read_more_now(&node, &mut stream, &mut rbuf, &mut chunk);
        }
    }
    cmd::multi::reset(&node, &mut state);
    publish_counts(&node, &mut state);
    if S::TLS {
        // close_notify waits for room in the socket: a client that stopped reading must
        // not keep this task (and a node shutdown) waiting.
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    } else {
        let _ = stream.shutdown().await;
    }
}

/// After a read that filled its space: grows the read space (doubling, up to
/// [`READ_CHUNK`]) and takes what the transport already holds, without waiting, while
/// each read fills its space. EOF or an error is left for the next real read to find.
fn read_more_now<S: ClientStream>(node: &Node, stream: &mut S, rbuf: &mut BytesMut, chunk: &mut usize) {
    use std::future::Future as _;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while *chunk < READ_CHUNK {
        *chunk *= 2;
        rbuf.reserve(*chunk);
        let room = rbuf.capacity() - rbuf.len();
        // One poll, then the future is dropped: `read_buf` is cancel safe (a poll that
        // returns Pending has taken nothing), and the next real read registers its waker.
        let read = std::pin::pin!(stream.read_buf(rbuf));
        match read.poll(&mut cx) {
            std::task::Poll::Ready(Ok(n)) if n > 0 => {
                node.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                if n < room {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// What a blocked command waits for.
#[derive(Debug)]
pub struct Blocked {
    /// A write to any of these wakes the client, which then runs the command again.
    pub keys: Vec<Bytes>,
    /// When to give up; `None` waits for ever (timeout 0).
    pub deadline: Option<tokio::time::Instant>,
    /// What to answer on timeout.
    pub on_timeout: TimeoutReply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReply {
    /// `*-1` in RESP2 (BLPOP, BZPOPMIN, BLMPOP ...).
    NullArray,
    /// `$-1` in RESP2 (BLMOVE, BRPOPLPUSH).
    Null,
}

/// Waits until the blocked command in `args` can be served, then serves it; or answers
/// its timeout reply. Returns false when the connection must close (EOF, CLIENT KILL,
/// shutdown).
///
/// The watch is registered before the command is retried, and a write fires it even when
/// nobody is waiting yet, so a write landing between the retry and the wait is never
/// missed. Each retry goes through `cmd::execute` again, so a pop is one ordinary write,
/// applied once.
async fn wait_unblocked<S: ClientStream>(
    node: &Node,
    stream: &mut S,
    rbuf: &mut BytesMut,
    state: &mut ConnState,
    args: &[Bytes],
    out: &mut ReplyWriter,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let Some(blocked) = state.blocked.take() else { return true };
    let watch = KeyWatch::new();
    for k in &blocked.keys {
        node.watches.watch(k.clone(), &watch);
    }
    let mut open = true;
    loop {
        watch.reset();
        state.waited();
        run(node, state, args, out).await;
        if state.blocked.take().is_none() {
            break;
        }
        // Wait for a write to a key, the deadline, or the end of the connection.
        let served = loop {
            let timeout = async {
                match blocked.deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = watch.touched() => break false,
                _ = timeout => {
                    match blocked.on_timeout {
                        TimeoutReply::NullArray => out.null_array(),
                        TimeoutReply::Null => out.null(),
                    }
                    break true;
                }
                _ = state.handle.killed() => { open = false; break true; }
                _ = shutdown.changed() => { open = false; break true; }
                r = stream.read_buf(rbuf) => match r {
                    Ok(0) | Err(_) => { open = false; break true; }
                    // Buffered; it runs once the client is served.
                    Ok(n) => {
                        node.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if rbuf.len() > MAX_QUERY_BUFFER { open = false; break true; }
                    }
                },
            }
        };
        if served {
            break;
        }
    }
    for k in &blocked.keys {
        node.watches.unwatch(k, &watch);
    }
    open
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
    node.cmd_stats.publish(&mut state.cmd_stats);
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
async fn flush<S: ClientStream>(
    node: &Node,
    stream: &mut S,
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
    if S::TLS && end_of_batch {
        // What rustls still holds goes out now; the client waits for nothing else.
        let flushed = tokio::select! {
            r = stream.flush() => r.is_ok(),
            _ = handle.killed() => false,
            _ = shutdown.changed() => false,
        };
        if !flushed {
            return false;
        }
    }
    if out.buf.is_empty() && out.buf.capacity() > 1 << 20 {
        out.buf = BytesMut::with_capacity(crate::resp::REPLY_FIRST);
    }
    true
}

/// Writes as much of the pending output as the socket takes without waiting. False on
/// an I/O error.
fn write_ready<S: ClientStream>(node: &Node, stream: &mut S, out: &mut ReplyWriter) -> bool {
    while !out.buf.is_empty() {
        match stream.try_write_now(&out.buf) {
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
