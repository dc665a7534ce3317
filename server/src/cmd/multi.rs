//! Transactions: MULTI EXEC DISCARD WATCH UNWATCH, with Redis 7 semantics.
//!
//! Queueing. After MULTI, `cmd::execute` runs its usual checks (unknown command, arity,
//! auth, routing, OOM) and hands every command that passes to [`queue`], which replies
//! `+QUEUED`; a command refused while queueing marks the transaction failed
//! ([`rejected`]) and EXEC then answers `-EXECABORT`. All keys of a transaction must live
//! in one shard (`-CROSSSLOT` at queue time), so one write can lock them all.
//!
//! EXEC is one write. The write commands of the transaction become the items of one
//! `Op::Multi`, applied through `Node::write_hooked` under one set of slot locks: those of
//! the ops' keys, of every other command's keys and of the WATCHed keys (every slot if a
//! command reads the whole keyspace, e.g. KEYS, or may read undeclared keys, as graph
//! traversals do). The other commands (reads, and commands that write through their own
//! `Node::write`, like HMSET) run from the write's hooks between the items they sit
//! between, so `SET a 1; GET a; INCR a` answers `[OK, "1", 2]`. While the hooks run, this
//! thread's keyspace reads and writes use the held tables (the engine's `keyspace/held.rs`)
//! and every other client waits on those slots: no one sees half a transaction and the
//! transaction sees no one else's writes. The WATCH check runs first under the same locks,
//! and writers tell watchers under their own locks (`Node::write_hooked`), so a write that
//! applied before EXEC is never missed and one after it cannot slip in between.
//!
//! Write handlers build their op when EXEC starts, before any item applies; an argument
//! error becomes that command's entry in the reply array and the others still run, as do
//! ops refused by the engine (WRONGTYPE ...), as in Redis.
//!
//! On a replicated shard, EXEC is one `Op::Guarded` proposed to the group, with WATCH as
//! a guard every member checks and the reads run by the proposing node when it applies
//! the entry: see `multi/replicated.rs`.
//!
//! Invariants:
//! - `conn.multi` is `Some` exactly between MULTI and EXEC / DISCARD / RESET.
//! - Every key in `conn.watching` is registered with `node.watches` under the
//!   connection's one `KeyWatch`; EXEC, DISCARD, RESET, QUIT and disconnect unwatch all.

use std::sync::Arc;

use bytes::Bytes;
use prism_engine::keyspace::{LockScope, WriteHooks};
use prism_engine::{Op, Output, Slot};

use super::{command, CmdError, Ctx};
use crate::conn::{ConnState, TimeoutReply};
use crate::keywatch::KeyWatch;
use crate::node::Node;
use crate::resp::ReplyWriter;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

pub mod replicated;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    since: &'static str,
    complexity: &'static str,
    f: fn(&mut Ctx<'_>, &[Bytes]),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys: KeySpec::None,
        group: Group::Transactions,
        summary,
        since,
        complexity,
        handler: Handler::Direct(f),
    }
}

// Flags as Redis 7.0 reports them.
pub const COMMANDS: &[CommandSpec] = &[
    spec("multi", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, "Starts a transaction.", "1.2.0", "O(1)", multi),
    spec(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG,
        "Executes all commands in a transaction.",
        "1.2.0",
        "Depends on commands in the transaction",
        exec,
    ),
    spec(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        "Discards a transaction.",
        "2.0.0",
        "O(N), when N is the number of queued commands",
        discard,
    ),
    CommandSpec {
        keys: KeySpec::Range { first: 1, last: -1, step: 1 },
        ..spec(
            "watch",
            -2,
            NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
            "Monitors changes to keys to determine the execution of a transaction.",
            "2.2.0",
            "O(1) for every key.",
            watch,
        )
    },
    spec(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        "Forgets about watched keys of a transaction.",
        "2.2.0",
        "O(1)",
        unwatch,
    ),
];

/// The commands queued since MULTI.
#[derive(Default)]
pub struct Transaction {
    queue: Vec<Queued>,
    /// A command was refused while queueing: EXEC aborts.
    failed: bool,
    /// The shard every key so far lives in.
    shard: Option<usize>,
    /// Some queued command may grow memory (EXEC is refused when over maxmemory).
    denyoom: bool,
}

struct Queued {
    spec: &'static CommandSpec,
    name: &'static str,
    args: Vec<Bytes>,
}

/// The keys a connection WATCHes.
#[derive(Default)]
pub struct Watching {
    /// Created on first WATCH, reused after: one per connection.
    watch: Option<Arc<KeyWatch>>,
    /// Each key with its deadline when watched (0: none or absent) and its slot's write
    /// version then. A key that expires after WATCH counts as changed, as in Redis 7.
    keys: Vec<(Bytes, u64, u64)>,
}

/// True for commands that wait for EXEC inside MULTI. The transaction commands act at
/// once, as do QUIT and RESET.
pub fn queues(spec: &CommandSpec) -> bool {
    !matches!(spec.name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset")
}

/// True for WATCH: on a leader it reads slot versions, so it waits for a read fence like
/// other reads (a stale version could only abort the transaction, never let it through).
pub fn reads_versions(spec: &CommandSpec) -> bool {
    spec.name == "watch"
}

/// Redis refuses every command but EXEC, DISCARD, QUIT and RESET while over maxmemory
/// inside MULTI (queueing costs memory), and EXEC if the transaction may grow memory.
pub fn rejects_on_oom(conn: &ConnState, spec: &CommandSpec) -> bool {
    match &conn.multi {
        None => false,
        Some(t) if spec.name == "exec" => t.denyoom,
        Some(_) => !matches!(spec.name, "discard" | "quit" | "reset"),
    }
}

/// A request refused before it ran: inside MULTI the transaction is marked failed; a
/// refused EXEC discards the transaction and says why (Redis's `execCommandAbort`).
pub fn rejected(node: &Node, conn: &mut ConnState, args: &[Bytes], e: CmdError) -> CmdError {
    if let Some(t) = &mut conn.multi {
        t.failed = true;
    }
    if !args[0].eq_ignore_ascii_case(b"exec") {
        return e;
    }
    conn.multi = None;
    unwatch_all(node, conn);
    let why = e.0.strip_prefix("ERR ").unwrap_or(&e.0);
    CmdError::msg(format!("EXECABORT Transaction discarded because of: {why}"))
}

/// Queues a checked command inside MULTI.
pub fn queue(
    node: &Node,
    conn: &mut ConnState,
    out: &mut ReplyWriter,
    spec: &'static CommandSpec,
    name: &'static str,
    args: &[Bytes],
    shard: Option<usize>,
) {
    let Some(t) = conn.multi.as_mut() else { return };
    let replicated = node.replica().is_some();
    let refused = if spec.has(NO_MULTI) {
        Some("ERR Command not allowed inside a transaction")
    } else if replicated && !replicated::supported(spec) {
        Some("ERR Command not supported inside a transaction on a replicated shard")
    } else if matches!((t.shard, shard), (Some(a), Some(b)) if a != b) {
        Some("CROSSSLOT Keys in request don't hash to the same slot")
    } else {
        None
    };
    if let Some(msg) = refused {
        t.failed = true;
        conn.errors += 1;
        return out.error(msg);
    }
    t.shard = t.shard.or(shard);
    t.denyoom |= spec.has(DENYOOM);
    t.queue.push(Queued { spec, name, args: args.to_vec() });
    out.simple("QUEUED");
}

/// Forgets the transaction and every WATCH (RESET, QUIT, disconnect).
pub fn reset(node: &Node, conn: &mut ConnState) {
    conn.multi = None;
    unwatch_all(node, conn);
}

fn unwatch_all(node: &Node, conn: &mut ConnState) {
    let w = &mut conn.watching;
    if let Some(watch) = &w.watch {
        for (k, _, _) in w.keys.drain(..) {
            node.watches.unwatch(&k, watch);
        }
        watch.reset();
    }
}

fn multi(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    if ctx.conn.multi.is_some() {
        return ctx.out.error("ERR MULTI calls can not be nested");
    }
    ctx.conn.multi = Some(Transaction::default());
    ctx.out.ok();
}

fn discard(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    if ctx.conn.multi.take().is_none() {
        return ctx.out.error("ERR DISCARD without MULTI");
    }
    unwatch_all(ctx.node, ctx.conn);
    ctx.out.ok();
}

fn watch(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    if ctx.conn.multi.is_some() {
        return ctx.out.error("ERR WATCH inside MULTI is not allowed");
    }
    let now = ctx.now_ms();
    let w = &mut ctx.conn.watching;
    let watch = w.watch.get_or_insert_with(KeyWatch::new).clone();
    for key in &args[1..] {
        if w.keys.iter().any(|(k, _, _)| k == key) {
            continue;
        }
        // The version first: a write between the two reads then aborts EXEC (it changes
        // the version) rather than slip past with a stale deadline.
        let version = ctx.node.keyspace.slot_version(Slot::of_key(key));
        let deadline = ctx.node.keyspace.get(key, now, |e| e.map_or(0, |e| e.expire_at));
        ctx.node.watches.watch(key.clone(), &watch);
        w.keys.push((key.clone(), deadline, version));
    }
    ctx.out.ok();
}

fn unwatch(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    unwatch_all(ctx.node, ctx.conn);
    ctx.out.ok();
}

/// One queued command's part in EXEC.
enum Step {
    /// Its op is the next item of the `Op::Multi`.
    Write,
    /// Refused while building its op: this is its reply.
    Failed(CmdError),
    /// Runs from the hooks, between the items around it.
    Run,
}

fn exec(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let Some(t) = ctx.conn.multi.take() else {
        return ctx.out.error("ERR EXEC without MULTI");
    };
    if t.failed {
        unwatch_all(ctx.node, ctx.conn);
        ctx.conn.errors += 1;
        return ctx.out.error("EXECABORT Transaction discarded because of previous errors.");
    }
    ctx.conn.commands += t.queue.len() as u64;
    if ctx.node.replica().is_some() {
        return replicated::exec(ctx, t.queue);
    }
    let (ops, steps) = plan(ctx, &t.queue);
    let (all_slots, slots) = lock_set(&t.queue, &ctx.conn.watching);
    let scope = if all_slots { LockScope::All } else { LockScope::With(&slots) };
    let node = ctx.node;
    let mut hooks = ExecHooks {
        node,
        conn: &mut *ctx.conn,
        proto: ctx.out.proto,
        queue: &t.queue,
        steps: &steps,
        next: 0,
        replies: Vec::new(),
    };
    let result = node.write_hooked(Op::Multi(ops), scope, &mut hooks);
    let replies = std::mem::take(&mut hooks.replies);
    unwatch_all(node, ctx.conn);
    let Some(Output::Array(outputs)) = result else {
        // A WATCHed key changed: nothing ran.
        return ctx.out.null_array();
    };
    let mut outputs = outputs.into_iter();
    let mut replies = replies.into_iter();
    ctx.out.array(steps.len());
    for step in &steps {
        match step {
            Step::Write => {
                let o = outputs.next().unwrap_or(Output::Nil);
                if matches!(o, Output::Err(_)) {
                    ctx.conn.errors += 1;
                }
                ctx.out.output(&o);
            }
            Step::Failed(e) => {
                ctx.conn.errors += 1;
                ctx.out.error(&e.0);
            }
            Step::Run => {
                if let Some(r) = replies.next() {
                    ctx.out.buf.extend_from_slice(&r);
                }
            }
        }
    }
}

/// The ops of the write commands, in order, and each command's step.
fn plan(ctx: &mut Ctx<'_>, queue: &[Queued]) -> (Vec<Op>, Vec<Step>) {
    let mut ops = Vec::new();
    let steps = queue
        .iter()
        .map(|q| match q.spec.handler {
            Handler::Write(f) => match f(ctx, &q.args) {
                Ok(op) => {
                    ops.push(op);
                    Step::Write
                }
                Err(e) => Step::Failed(e),
            },
            _ => Step::Run,
        })
        .collect();
    (ops, steps)
}

/// The slots EXEC locks besides its ops' keys: every other command's keys and the
/// WATCHed keys; or all slots (the bool) when a command may read beyond declared keys.
fn lock_set(queue: &[Queued], watching: &Watching) -> (bool, Vec<Slot>) {
    let mut slots: Vec<Slot> = watching.keys.iter().map(|(k, _, _)| Slot::of_key(k)).collect();
    for q in queue {
        let before = slots.len();
        slots.extend(q.spec.key_indexes_in(&q.args).map(|i| Slot::of_key(&q.args[i])));
        let keyless = slots.len() == before;
        let local = matches!(q.spec.group, Group::Connection | Group::Transactions | Group::PubSub);
        if q.spec.group == Group::Graph || (keyless && !local) {
            return (true, Vec::new());
        }
    }
    (false, slots)
}

/// Runs the non-write commands of a transaction between the items of its `Op::Multi`,
/// with the transaction's slots locked.
struct ExecHooks<'a> {
    node: &'a Node,
    conn: &'a mut ConnState,
    proto: crate::resp::Proto,
    queue: &'a [Queued],
    steps: &'a [Step],
    /// The first step not yet run or passed.
    next: usize,
    /// The replies of the `Step::Run` commands, in order.
    replies: Vec<Bytes>,
}

impl WriteHooks for ExecHooks<'_> {
    /// Under the locks: refuse if a WATCHed key was written or has expired since WATCH.
    fn begin(&mut self) -> bool {
        let w = &self.conn.watching;
        let Some(watch) = &w.watch else { return true };
        let now = self.node.now_ms();
        !watch.is_dirty() && !w.keys.iter().any(|&(_, at, _)| at != 0 && at <= now)
    }

    /// Runs the commands up to the next write (item `_i`), or all that are left.
    fn between(&mut self, _i: usize) {
        while let Some(step) = self.steps.get(self.next) {
            self.next += 1;
            match step {
                Step::Write => return,
                Step::Failed(_) => {}
                Step::Run => {
                    let q = &self.queue[self.next - 1];
                    let mut out = ReplyWriter::new(self.proto);
                    run(&mut Ctx { node: self.node, conn: self.conn, out: &mut out }, q);
                    self.replies.push(out.buf.freeze());
                }
            }
        }
    }
}

/// Runs a queued non-write command. A blocking command does not block inside a
/// transaction: it answers as if its timeout had passed, as in Redis.
fn run(ctx: &mut Ctx<'_>, q: &Queued) {
    ctx.conn.handle.touch(q.name, std::time::Instant::now());
    match q.spec.handler {
        Handler::Direct(f) => f(ctx, &q.args),
        Handler::Container(_) => command::all(ctx),
        Handler::Write(_) => {}
    }
    answer_blocked(ctx.conn, ctx.out);
}

/// A command that would block inside a transaction answers its timeout reply at once.
fn answer_blocked(conn: &mut ConnState, out: &mut ReplyWriter) {
    if let Some(b) = conn.blocked.take() {
        match b.on_timeout {
            TimeoutReply::NullArray => out.null_array(),
            TimeoutReply::Null => out.null(),
        }
    }
}
