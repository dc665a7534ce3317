//! EXEC on a replicated shard: one `Op::Guarded` proposed to the group, with WATCH as a
//! guard and the transaction's reads run at apply time on the proposing node.
//!
//! How, for `WATCH k; MULTI; SET a 1; GET a; INCR a; EXEC` on the leader:
//! - WATCH records the version of `k`'s slot (`Keyspace::slot_version`, replicated state)
//!   after a read fence, as any read on the leader.
//! - EXEC aborts at once (null array, nothing proposed) if this node already saw a write
//!   to a watched key (the `KeyWatch`); otherwise it builds the items (SET, INCR) and
//!   proposes them with the guard (`(slot, version)` pairs and the earliest watched
//!   deadline). Every member checks the guard against its own versions before any item
//!   applies (the keyspace does, `engine/src/keyspace.rs` `run`), so all reach the same
//!   verdict; a failed guard applies nothing and EXEC answers a null array, as Redis.
//!   The guard is per slot: a write to another key of a watched slot aborts too (a false
//!   abort; WATCH clients retry).
//! - The reads (GET) are registered here under the op's tag. When this node's state
//!   machine applies the entry ([`apply`], from `Node::apply_committed`), it finds them and
//!   runs them between the items under the write's slot locks, as standalone EXEC does, so
//!   they see exactly the transaction's own writes and no one else's. Other members, and
//!   this node once the client is gone, apply the items alone: reads change nothing, so
//!   the members stay identical.
//! - Commands that write through their own handler (HMSET, SPOP, LMPOP, blocking pops ...)
//!   are run at EXEC time to build their op, which becomes an item rendered by the
//!   handler's own rendering. Known limit: a blocking pop judges whether its keys exist
//!   before the transaction's writes (it answers its timeout reply if none did then).
//!   Commands that write in rounds (graph V.DEL ...) are refused when queued.
//! - Connection commands (PING, CLIENT SETNAME, PUBLISH ...) touch no keys: they run on
//!   the connection when the replies are rendered, in their place.
//!
//! Invariants:
//! - A reply array has exactly one reply per queued command, in order.
//! - Nothing here changes the keyspace outside the op: a read that tried to write (or to
//!   wait) at apply time is answered with an error and its write dropped.
//! - A registration lives until its connection renders or drops the reply ([`Ticket`]),
//!   so the registry holds at most the transactions waiting for the group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use prism_engine::keyspace::{LockScope, NoHooks, WriteHooks};
use prism_engine::op::Guarded;
use prism_engine::{Op, Output, Slot, Write};

use super::{answer_blocked, lock_set, run, unwatch_all, Queued, Watching};
use crate::cmd::{CmdError, Ctx};
use crate::conn::ConnState;
use crate::node::Node;
use crate::pending::{Pending, Render, RenderFn};
use crate::resp::{Proto, ReplyWriter};
use crate::table::{flag, CommandSpec, Group, Handler};

const UNSUPPORTED: &str = "ERR Command not supported inside a transaction on a replicated shard";

/// False for commands EXEC cannot run on a replicated shard: direct handlers that write
/// in several rounds, reading between them (graph writes such as V.DEL).
pub fn supported(spec: &CommandSpec) -> bool {
    !(spec.has(flag::WRITE) && spec.group == Group::Graph && matches!(spec.handler, Handler::Direct(_)))
}

/// How one queued command takes part, as the connection renders the replies.
enum Part {
    /// The next item of the op; rendered by its handler's own rendering, if any.
    Item(Option<RenderFn>),
    /// Answered when EXEC built the op (an argument error, a pop that would block).
    Reply(Bytes),
    /// Refused when EXEC built the op.
    Failed(CmdError),
    /// Runs at apply time; its reply comes from the registration.
    Read,
    /// A connection command: runs while rendering.
    Local(Queued),
}

/// How one queued command takes part at apply time.
enum Step {
    Item,
    Read(Queued),
    Skip,
}

/// The reads of a transaction, as registered for apply time.
pub struct Reads {
    steps: Vec<Step>,
    /// Slots the reads need besides the items' keys, or every slot.
    all_slots: bool,
    slots: Vec<Slot>,
    /// Where the reads run: a copy of the connection's state, off the connection task.
    conn: ConnState,
    proto: Proto,
    /// The replies of the `Step::Read` commands, in order, once applied.
    replies: Vec<Bytes>,
}

enum Registered {
    Waiting(Box<Reads>),
    /// Taken by the apply running now.
    Running,
    Done(Box<Reads>),
}

/// Transactions this node proposed, by tag, until their connection renders them.
pub struct ExecRegistry {
    /// Random per process: a log entry replayed from an earlier run never names a live tag.
    base: u64,
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Registered>>,
}

impl Default for ExecRegistry {
    fn default() -> Self {
        use rand::Rng;
        ExecRegistry { base: rand::rng().random(), next: AtomicU64::new(1), entries: Mutex::default() }
    }
}

impl ExecRegistry {
    fn register(self: &Arc<Self>, reads: Reads) -> Ticket {
        let tag = loop {
            let tag = self.base.wrapping_add(self.next.fetch_add(1, Ordering::Relaxed));
            if tag != 0 {
                break tag;
            }
        };
        self.entries.lock().insert(tag, Registered::Waiting(Box::new(reads)));
        Ticket { registry: self.clone(), tag }
    }

    fn take(&self, tag: u64) -> Option<Box<Reads>> {
        let mut entries = self.entries.lock();
        let slot = entries.get_mut(&tag)?;
        match std::mem::replace(slot, Registered::Running) {
            Registered::Waiting(r) => Some(r),
            other => {
                *slot = other;
                None
            }
        }
    }

    fn done(&self, tag: u64, reads: Box<Reads>) {
        // Gone if the connection dropped its ticket meanwhile.
        if let Some(slot) = self.entries.lock().get_mut(&tag) {
            *slot = Registered::Done(reads);
        }
    }

    /// Number of registered transactions (INFO, tests).
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection's hold on its registration: dropping it (reply rendered, write failed,
/// connection gone) forgets the transaction.
struct Ticket {
    registry: Arc<ExecRegistry>,
    tag: u64,
}

impl Ticket {
    /// The applied reads, if this node applied the entry with them.
    fn finish(self) -> Option<Box<Reads>> {
        match self.registry.entries.lock().remove(&self.tag) {
            Some(Registered::Done(r)) => Some(r),
            _ => None,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.registry.entries.lock().remove(&self.tag);
    }
}

/// EXEC on a replicated node (the transaction was not refused while queueing).
pub(super) fn exec(ctx: &mut Ctx<'_>, queue: Vec<Queued>) {
    let (versions, expires_at, changed) = guard(ctx);
    unwatch_all(ctx.node, ctx.conn);
    if changed {
        // This node saw a watched key change: so will every member's guard.
        return ctx.out.null_array();
    }
    let (all_slots, slots) = lock_set(&queue, &Watching::default());
    let mut ops = Vec::new();
    let mut parts = Vec::with_capacity(queue.len());
    let mut steps = Vec::with_capacity(queue.len());
    let mut first_slot = None;
    for q in queue {
        if first_slot.is_none() {
            first_slot = q.spec.key_indexes_in(&q.args).next().map(|i| Slot::of_key(&q.args[i]));
        }
        let part = part(ctx, &q, &mut ops);
        steps.push(match &part {
            Part::Item(_) => Step::Item,
            Part::Read => Step::Read(q),
            _ => Step::Skip,
        });
        parts.push(part);
    }
    let ticket = steps.iter().any(|s| matches!(s, Step::Read(_))).then(|| {
        let conn = scratch(ctx.conn);
        ctx.node.execs.register(Reads { steps, all_slots, slots, conn, proto: ctx.out.proto, replies: Vec::new() })
    });
    let tag = ticket.as_ref().map_or(0, |t| t.tag);
    let op = Op::Guarded(Box::new(Guarded { tag, versions, expires_at, ops }));
    let write = Write { now_ms: ctx.now_ms(), op };
    let render = move |node: &Node, conn: &mut ConnState, out: &mut ReplyWriter, o: Output| {
        render(node, conn, out, o, parts, ticket)
    };
    ctx.conn.pending.push(Pending { write: Some(write), slot: first_slot, render: Render::WithNode(Box::new(render)) });
}

/// The WATCH guard: each watched slot's version (first seen), the earliest deadline, and
/// whether this node already knows a watched key changed.
fn guard(ctx: &mut Ctx<'_>) -> (Vec<(u16, u64)>, u64, bool) {
    let w = &ctx.conn.watching;
    let Some(watch) = &w.watch else { return (Vec::new(), 0, false) };
    let now = ctx.node.now_ms();
    let mut versions: Vec<(u16, u64)> = Vec::with_capacity(w.keys.len());
    let mut expires_at = 0;
    let mut changed = watch.is_dirty();
    for (k, at, v) in &w.keys {
        let slot = Slot::of_key(k).get();
        if !versions.iter().any(|&(s, _)| s == slot) {
            versions.push((slot, *v));
        }
        if *at != 0 {
            changed |= *at <= now;
            expires_at = if expires_at == 0 { *at } else { expires_at.min(*at) };
        }
    }
    (versions, expires_at, changed)
}

/// Decides how a queued command takes part, adding its op to `ops` if it is an item.
fn part(ctx: &mut Ctx<'_>, q: &Queued, ops: &mut Vec<Op>) -> Part {
    match q.spec.handler {
        Handler::Write(f) => match f(ctx, &q.args) {
            Ok(op) => {
                ops.push(op);
                Part::Item(None)
            }
            Err(e) => Part::Failed(e),
        },
        Handler::Direct(f) if q.spec.has(flag::WRITE) => {
            // Run now to build its op: the op becomes an item, the handler's rendering
            // renders it. The connection has nothing pending here (EXEC is not a write).
            let mut out = ReplyWriter::new(ctx.out.proto);
            f(&mut Ctx { node: ctx.node, conn: ctx.conn, out: &mut out }, &q.args);
            let mut pushed = std::mem::take(&mut ctx.conn.pending);
            match (pushed.pop(), pushed.is_empty()) {
                (Some(Pending { write: Some(w), render: Render::Custom(r), .. }), true) if out.buf.is_empty() => {
                    ops.push(w.op);
                    Part::Item(Some(r))
                }
                (None, _) => {
                    answer_blocked(ctx.conn, &mut out);
                    Part::Reply(out.buf.freeze())
                }
                _ => {
                    ctx.conn.blocked = None;
                    Part::Failed(CmdError::msg(UNSUPPORTED))
                }
            }
        }
        _ if matches!(q.spec.group, Group::Connection | Group::PubSub) => {
            Part::Local(Queued { spec: q.spec, name: q.name, args: q.args.clone() })
        }
        _ => Part::Read,
    }
}

/// A connection state for running reads off the connection task: the client's identity
/// and modes, nothing pending.
fn scratch(conn: &ConnState) -> ConnState {
    ConnState {
        handle: conn.handle.clone(),
        authenticated: conn.authenticated,
        close: false,
        local_ip: conn.local_ip,
        tls: conn.tls,
        readonly: conn.readonly,
        asking: false,
        slot_guard: None,
        subscriber: None,
        blocked: None,
        multi: None,
        watching: Watching::default(),
        commands: 0,
        hits: 0,
        misses: 0,
        errors: 0,
        clock_mark: None,
        read_now: std::cell::Cell::new(0),
        cmd_stats: Default::default(),
        tracking: conn.tracking,
        pending: Vec::new(),
        fenced: true,
        fence_error: None,
        rerun: false,
        last_write_index: 0,
        // Nothing here waits for the spiller.
        memory_waited: true,
        deferred: None,
    }
}

/// Applies a committed transaction on this node (from `Node::apply_committed`): with its
/// reads if this node proposed it and the client still waits, else its items alone.
pub fn apply(node: &Node, w: &Write, g: &Guarded) -> Output {
    let guarded = g.slots();
    let taken = if g.tag == 0 { None } else { node.execs.take(g.tag) };
    let Some(mut reads) = taken else {
        return node.apply_committed_hooked(w, LockScope::With(&guarded), &mut NoHooks).unwrap_or(Output::Nil);
    };
    let mut slots = std::mem::take(&mut reads.slots);
    slots.extend(guarded);
    let scope = if reads.all_slots { LockScope::All } else { LockScope::With(&slots) };
    // The reads are judged at the write's time, as its items are.
    reads.conn.read_now.set(w.now_ms);
    let out = node.apply_committed_hooked(w, scope, &mut ReadHooks { node, reads: &mut reads, next: 0 });
    node.execs.done(g.tag, reads);
    out.unwrap_or(Output::Nil)
}

/// Runs a transaction's reads between its items, under the write's locks.
struct ReadHooks<'a> {
    node: &'a Node,
    reads: &'a mut Reads,
    /// The first step not yet run or passed.
    next: usize,
}

impl WriteHooks for ReadHooks<'_> {
    fn between(&mut self, _i: usize) {
        let r = &mut *self.reads;
        while let Some(step) = r.steps.get(self.next) {
            self.next += 1;
            let q = match step {
                Step::Item => return,
                Step::Skip => continue,
                Step::Read(q) => q,
            };
            let mut out = ReplyWriter::new(r.proto);
            run(&mut Ctx { node: self.node, conn: &mut r.conn, out: &mut out }, q);
            // A read never writes or waits here: its write would apply on this member
            // only. (Every command that writes is an item or refused; this is a net.)
            if !r.conn.pending.is_empty() || r.conn.deferred.is_some() || r.conn.rerun {
                r.conn.pending.clear();
                r.conn.deferred = None;
                r.conn.rerun = false;
                out = ReplyWriter::new(r.proto);
                out.error(UNSUPPORTED);
            }
            r.replies.push(out.buf.freeze());
        }
    }
}

/// Renders EXEC's reply once the group answered: the items' outputs, the reads' replies
/// and the connection commands, in queue order.
fn render(
    node: &Node,
    conn: &mut ConnState,
    out: &mut ReplyWriter,
    o: Output,
    parts: Vec<Part>,
    ticket: Option<Ticket>,
) {
    let outputs = match o {
        Output::Array(outputs) => outputs,
        // The guard failed: nothing applied.
        Output::Nil => return out.null_array(),
        other => return out.output(&other),
    };
    let reads = ticket.and_then(Ticket::finish);
    let mut replies = Vec::new().into_iter();
    if let Some(r) = reads {
        conn.hits += r.conn.hits;
        conn.misses += r.conn.misses;
        conn.errors += r.conn.errors;
        replies = r.replies.into_iter();
    }
    let mut outputs = outputs.into_iter();
    out.array(parts.len());
    for part in parts {
        let mark = out.buf.len();
        match part {
            Part::Item(render) => {
                let o = outputs.next().unwrap_or(Output::Nil);
                match render {
                    Some(render) => {
                        render(conn, out, o);
                        answer_blocked(conn, out);
                    }
                    None => {
                        if matches!(o, Output::Err(_)) {
                            conn.errors += 1;
                        }
                        out.output(&o);
                    }
                }
            }
            Part::Reply(r) => out.buf.extend_from_slice(&r),
            Part::Failed(e) => {
                conn.errors += 1;
                out.error(&e.0);
            }
            Part::Read => match replies.next() {
                Some(r) => out.buf.extend_from_slice(&r),
                // Applied without the reads: the node was going away when it applied.
                None => out.error("ERR transaction read not run (try again)"),
            },
            Part::Local(q) => run(&mut Ctx { node, conn, out }, &q),
        }
        // One reply per command, whatever a rendering did.
        if out.buf.len() == mark {
            out.null();
        }
    }
}
