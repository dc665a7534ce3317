//! Command execution: one module per command family, all the same shape.
//!
//! [`execute`] is the one place every request passes: table lookup, arity, auth,
//! subcommand resolution, routing (`-MOVED`, `-CROSSSLOT`), the memory check (`-OOM`),
//! then the handler. Handlers parse their arguments with the helpers here and either
//! write a reply (reads) or return an [`Op`] (writes), never both. Errors become replies
//! in one place, [`CmdError`], with Redis's words.

pub mod acl;
pub mod blocking;
pub mod cluster;
pub mod command;
pub mod connection;
pub mod graph;
pub mod hash;
pub mod introspect;
pub mod keys;
pub mod list;
pub mod migrate;
pub mod multi;
pub mod pubsub;
pub mod raft;
pub mod reshard;
pub mod server;
pub mod set;
pub mod sort;
pub mod string;
pub mod zset;

use std::borrow::Cow;

use bytes::Bytes;
use prism_engine::{Op, Output, Slot, Write};

use crate::conn::ConnState;
use crate::node::Node;
use crate::pending::{Pending, Render};
use crate::resp::ReplyWriter;
use crate::table::{self, flag, CommandSpec, Handler};
use crate::topology::Route;

/// The context a handler runs in.
pub struct Ctx<'a> {
    pub node: &'a Node,
    pub conn: &'a mut ConnState,
    pub out: &'a mut ReplyWriter,
}

impl Ctx<'_> {
    /// The time reads are judged at: read once per batch of pipelined commands (as Redis
    /// caches its clock per event-loop pass) and again after the connection waited.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match self.conn.read_now.get() {
            0 => {
                let now = self.node.now_ms();
                self.conn.read_now.set(now);
                now
            }
            now => now,
        }
    }

    /// Applies `op` and renders its output with `render`: now on a standalone node; on a
    /// replicated one once the shard group committed it (the connection runs `render`
    /// then, in request order). For direct handlers whose reply is not the plain rendering
    /// of the output; they must write nothing to the reply after calling this.
    pub fn write_then(
        &mut self,
        op: Op,
        render: impl FnOnce(&mut ConnState, &mut crate::resp::ReplyWriter, Output) + Send + 'static,
    ) {
        let now_ms = self.now_ms();
        if self.node.replica().is_none() {
            let output = self.node.write_at(op, now_ms);
            return render(self.conn, self.out, output);
        }
        let mut slot = None;
        op.for_each_key(|k| {
            slot.get_or_insert_with(|| Slot::of_key(k));
        });
        let (op, render) = match self.conn.slot_guard.take() {
            Some(guard) => (guarded(op, guard), unwrap_guarded(Box::new(render))),
            None => (op, Box::new(render) as crate::pending::RenderFn),
        };
        self.conn.pending.push(Pending { write: Some(Write { now_ms, op }), slot, render: Render::Custom(render) });
    }

    /// Replies an error and counts it for INFO.
    pub fn fail(&mut self, e: CmdError) {
        fail(self.conn, self.out, e);
    }

    /// Runs `f` on the value under `key` that `pick` accepts (`None` if there is no key),
    /// with the reply writer, under the slot's read lock. `f` writes the whole reply or
    /// returns an error having written nothing; a key that `pick` refuses is WRONGTYPE.
    /// Counts the lookup as a hit or a miss.
    pub fn read_typed<T: ?Sized>(
        &mut self,
        key: &[u8],
        pick: impl for<'v> FnOnce(&'v prism_engine::Value) -> Option<&'v T>,
        f: impl FnOnce(&mut ReplyWriter, Option<&T>) -> CmdResult<()>,
    ) {
        let now = self.now_ms();
        let out = &mut *self.out;
        let (found, result) = self.node.keyspace.get(key, now, |e| match e {
            None => (false, f(out, None)),
            Some(entry) => match pick(&entry.value) {
                Some(v) => (true, f(out, Some(v))),
                None => (true, Err(CmdError::WRONGTYPE)),
            },
        });
        self.hit(found);
        if let Err(e) = result {
            self.fail(e);
        }
    }

    /// Counts a keyspace lookup for INFO's keyspace_hits / keyspace_misses.
    #[inline]
    pub fn hit(&mut self, found: bool) {
        if found {
            self.conn.hits += 1;
        } else {
            self.conn.misses += 1;
        }
    }
}

/// An error reply, with its code: `ERR ...`, `WRONGTYPE ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError(pub Cow<'static, str>);

pub type CmdResult<T> = Result<T, CmdError>;

impl CmdError {
    pub const SYNTAX: CmdError = CmdError(Cow::Borrowed("ERR syntax error"));
    pub const NOT_INTEGER: CmdError = CmdError(Cow::Borrowed("ERR value is not an integer or out of range"));
    pub const NOT_FLOAT: CmdError = CmdError(Cow::Borrowed("ERR value is not a valid float"));
    pub const WRONGTYPE: CmdError =
        CmdError(Cow::Borrowed("WRONGTYPE Operation against a key holding the wrong kind of value"));
    pub const INVALID_CURSOR: CmdError = CmdError(Cow::Borrowed("ERR invalid cursor"));

    pub fn msg(text: impl Into<Cow<'static, str>>) -> CmdError {
        CmdError(text.into())
    }
}

impl From<prism_engine::OpError> for CmdError {
    fn from(e: prism_engine::OpError) -> Self {
        CmdError(Cow::Owned(e.to_string()))
    }
}

/// What a request needs before it can run on a replicated node (see [`execute`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Exec {
    /// It ran (or was refused, or its write is pending with the group).
    Done,
    /// Writes handed to the group must commit and render first: run those, then this
    /// request again.
    Commit,
    /// A linearizable read: wait for a read fence, then run this request again.
    Fence,
    /// A key is in this cold slot: load it (`tier::load`), then run this request again.
    Load(u16),
    /// A write over `maxmemory` on a node that spills: wait for the spiller to make room
    /// (`tier::wait_for_memory`, bounded), then run this request again; again while each
    /// wait ends with room made (other writers may take it first), at most 64 times.
    MemoryWait,
}

/// Runs one request and writes its reply, or says what must happen first.
///
/// On a replicated node, writes are not applied here: they join the connection's pending
/// writes, which the connection hands to the shard group in one proposal. Replies stay
/// in request order: while writes are pending, only further plain writes run (their
/// errors are queued behind them too); anything else first waits for the pending writes
/// ([`Exec::Commit`]). Reads on the leader wait for a read fence ([`Exec::Fence`]).
pub fn execute(node: &Node, conn: &mut ConnState, args: &[Bytes], out: &mut ReplyWriter) -> Exec {
    let spec = table::lookup(&args[0]);
    if !conn.pending.is_empty() && !spec.is_some_and(|s| matches!(s.handler, Handler::Write(_))) {
        return Exec::Commit;
    }
    conn.commands += 1;
    let exec = match spec {
        Some(spec) => execute_checked(node, conn, args, out, spec).unwrap_or(Exec::Done),
        None => {
            reject(node, conn, out, args, unknown_command(args));
            Exec::Done
        }
    };
    // ASKING covers the one next command, whether it runs or is refused (as in Redis): a
    // flag left over from a refused request would let a later one read a slot this shard
    // is still importing. Inside MULTI it covers the transaction.
    if matches!(exec, Exec::Done) && spec.is_none_or(|s| s.name != "asking") && conn.multi.is_none() {
        conn.asking = false;
    }
    exec
}

/// [`execute`] past the lookup; `None` when the request was refused (reply written).
fn execute_checked(
    node: &Node,
    conn: &mut ConnState,
    args: &[Bytes],
    out: &mut ReplyWriter,
    spec: &'static CommandSpec,
) -> Option<Exec> {
    if !spec.arity_ok(args.len()) {
        let e = CmdError::msg(format!("ERR wrong number of arguments for '{}' command", spec.name));
        return refused(node, conn, out, args, e);
    }
    if !conn.authenticated && !spec.has(flag::NO_AUTH) {
        return refused(node, conn, out, args, CmdError::msg("NOAUTH Authentication required."));
    }
    if conn.subscriber.is_some()
        && out.proto == crate::resp::Proto::Resp2
        && !pubsub::allowed_while_subscribed(spec.name)
    {
        let msg = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        );
        return refused(node, conn, out, args, CmdError::msg(msg));
    }
    let (spec, full_name) = match spec.handler {
        Handler::Container(_) if args.len() < 2 => (spec, spec.name),
        Handler::Container(_) => match table::lookup_sub(spec, &args[1]) {
            Some(sub) if sub.arity_ok(args.len()) => (sub, sub_name(spec, sub)),
            Some(sub) => {
                let e =
                    CmdError::msg(format!("ERR wrong number of arguments for '{}|{}' command", spec.name, sub.name));
                return refused(node, conn, out, args, e);
            }
            None => {
                let msg = format!(
                    "ERR unknown subcommand '{}'. Try {} HELP.",
                    truncated(&args[1], 128),
                    spec.name.to_ascii_uppercase()
                );
                return refused(node, conn, out, args, CmdError::msg(msg));
            }
        },
        _ => (spec, spec.name),
    };
    // ACL: one flag test for a user who may do everything (the default user).
    if conn.handle.acl.restricted() && !spec.has(flag::NO_AUTH) {
        if let Err(e) = crate::acl::permit(node, conn, spec, args) {
            return refused(node, conn, out, args, e);
        }
    }
    conn.slot_guard = None;
    let shard = match route(node, spec, args, conn) {
        Ok(shard) => shard,
        Err(e) => return refused(node, conn, out, args, e),
    };
    // The cold tier (tier.rs): a key in a cold slot is loaded first. `tier_mark` tells
    // below whether a slot changed tier while this request read.
    let tier_mark = node.keyspace.tier.transitions();
    if let Some(slot) = cold_key(node, conn, spec, args).or_else(|| cold_slot_arg(node, full_name, args)) {
        return Some(Exec::Load(slot));
    }
    if let Some(r) = node.replica() {
        // A keyless write (FLUSHALL ...) on a member that does not lead.
        if shard.is_none() && spec.has(flag::WRITE) && !r.is_leader() {
            let e = r.redirect(None, r.group.leadership().leader);
            return refused(node, conn, out, args, e);
        }
    }
    if (spec.has(flag::DENYOOM) || multi::rejects_on_oom(conn, spec)) && node.over_maxmemory() {
        // With a cold tier, memory is made by spilling, as Redis makes it by evicting
        // before a write: the write waits for the spiller once before it is refused.
        if !conn.memory_waited && crate::tier::spills_here(node) {
            return Some(Exec::MemoryWait);
        }
        let e = CmdError::msg("OOM command not allowed when used memory > 'maxmemory'.");
        return refused(node, conn, out, args, e);
    }
    if spec.has(flag::ADMIN) || (spec.has(flag::WRITE) && spec.keys == table::KeySpec::None) {
        crate::acl::audit(conn, full_name, args);
    }
    // Inside MULTI, a command that passed the checks above waits for EXEC.
    if conn.multi.is_some() && multi::queues(spec) {
        multi::queue(node, conn, out, spec, full_name, args, shard);
        return None;
    }
    if let Some(r) = node.replica() {
        // Reads on the leader are linearizable: one read fence per batch of requests.
        let reads = spec.has(flag::READONLY) || multi::reads_versions(spec);
        if reads && r.is_leader() && !r.stale_reads && !conn.fenced {
            match &conn.fence_error {
                Some(e) => {
                    let slot = spec.key_indexes_in(args).next().map(|i| Slot::of_key(&args[i]));
                    let e = r.read_error(e, slot);
                    return refused(node, conn, out, args, e);
                }
                None => return Some(Exec::Fence),
            }
        }
    }
    if matches!(spec.name, "reset" | "quit") {
        multi::reset(node, conn);
    }
    let (started, mark) = (conn.clock_mark.take().unwrap_or_else(std::time::Instant::now), out.buf.len());
    conn.handle.touch(full_name, started);
    let mut ctx = Ctx { node, conn, out };
    match spec.handler {
        Handler::Direct(f) => {
            f(&mut ctx, args);
            // A read that raced a spill may have seen an emptied table: run it again.
            if node.keyspace.tier.transitions() != tier_mark
                && !spec.has(flag::WRITE)
                && ctx.conn.pending.is_empty()
                && ctx.conn.deferred.is_none()
            {
                if let Some(first) = spec.key_indexes_in(args).next() {
                    ctx.out.buf.truncate(mark);
                    return Some(Exec::Load(Slot::of_key(&args[first]).get()));
                }
            }
            // A read in a migrating slot: a key may have moved while it ran (fleet/moving.rs).
            if let Some((slot, version)) = ctx.conn.slot_guard.take() {
                if !spec.has(flag::WRITE) && ctx.conn.pending.is_empty() && moved_meanwhile(node, slot, version) {
                    ctx.out.buf.truncate(mark);
                    ctx.fail(crate::fleet::moving::retry(slot));
                }
            }
        }
        Handler::Write(f) => match f(&mut ctx, args) {
            Ok(op) if node.replica().is_some() => {
                let slot = spec.key_indexes_in(args).next().map(|i| Slot::of_key(&args[i]));
                let (op, render) = match ctx.conn.slot_guard.take() {
                    Some(guard) => {
                        let plain: crate::pending::RenderFn = Box::new(|conn, out, o| {
                            if matches!(o, Output::Err(_)) {
                                conn.errors += 1;
                            }
                            out.output(&o)
                        });
                        (guarded(op, guard), Render::Custom(unwrap_guarded(plain)))
                    }
                    None => (op, Render::Output),
                };
                let write = Write { now_ms: ctx.now_ms(), op };
                ctx.conn.pending.push(Pending { write: Some(write), slot, render });
            }
            Ok(op) => {
                let result = node.write_at(op, ctx.now_ms());
                // Spilled between the check above and the apply: nothing applied.
                if let Output::Err(prism_engine::OpError::Cold(slot)) = result {
                    return Some(Exec::Load(slot));
                }
                if matches!(result, prism_engine::Output::Err(_)) {
                    ctx.conn.errors += 1;
                }
                ctx.out.output(&result);
            }
            Err(e) => fail(ctx.conn, ctx.out, e),
        },
        // A bare container: only COMMAND's arity (-1) lets one through, and it lists
        // every command.
        Handler::Container(_) => command::all(&mut ctx),
    }
    crate::stats::ran(node, ctx.conn, ctx.out, spec, args, mark, started);
    Some(Exec::Done)
}

/// The slot of the request's first key in a cold slot, if the request needs that slot
/// loaded; records the access of every key's slot for the spiller (one load each, and a
/// store when the tick moved).
///
/// A cold slot's table is its delta (docs/tiering.md): a write that replaces whole values
/// without reading them goes there (the engine agrees, `Op::overwrites_blindly`), and a
/// read whose keys in cold slots the delta all decides is answered from it. Inside MULTI
/// everything loads: EXEC applies as one op, which the engine refuses on a cold slot.
#[inline]
fn cold_key(node: &Node, conn: &ConnState, spec: &CommandSpec, args: &[Bytes]) -> Option<u16> {
    let tier = &node.keyspace.tier;
    let tick = node.tiering.tick();
    let mut cold = None;
    for i in spec.key_indexes_in(args) {
        let slot = Slot::of_key(&args[i]).get();
        tier.touch(slot, tick);
        if cold.is_none() && tier.is_cold(slot) {
            cold = Some(slot);
        }
    }
    let slot = cold?;
    if conn.multi.is_some() {
        return Some(slot);
    }
    let delta_decides = if spec.has(flag::WRITE) {
        overwrites_blindly(spec.name, args)
    } else {
        spec.key_indexes_in(args).all(|i| !tier.is_cold(Slot::of_key(&args[i]).get()) || node.keyspace.holds(&args[i]))
    };
    (!delta_decides).then_some(slot)
}

/// Whether the command replaces whole string values and answers without reading them:
/// SET with no NX / XX / GET / KEEPTTL, SETEX, PSETEX, MSET. Whatever this accepts
/// parses to an op `Op::overwrites_blindly` accepts (a write the engine refused on a
/// cold slot would answer `-TRYAGAIN` on a replicated shard).
fn overwrites_blindly(name: &str, args: &[Bytes]) -> bool {
    match name {
        "setex" | "psetex" | "mset" => true,
        "set" => !args
            .iter()
            .skip(3)
            .any(|a| [&b"nx"[..], b"xx", b"get", b"keepttl"].iter().any(|o| a.eq_ignore_ascii_case(o))),
        _ => false,
    }
}

/// A cold slot named by a slot argument that needs the slot's keys in memory (docs/tiering.md):
/// `CLUSTER GETKEYSINSLOT <slot>` lists them, and `CLUSTER SETSLOT <slots> MIGRATING`
/// starts moving them, which they do through the slot's table (the engine refuses to
/// migrate a cold slot, keyspace.rs).
fn cold_slot_arg(node: &Node, full_name: &str, args: &[Bytes]) -> Option<u16> {
    let slots = match full_name {
        "cluster|getkeysinslot" => vec![std::str::from_utf8(&args[2]).ok()?.parse::<u16>().ok()?],
        "cluster|setslot" if args.get(3).is_some_and(|a| a.eq_ignore_ascii_case(b"migrating")) => {
            reshard::slot_range(&args[2]).ok()?
        }
        _ => return None,
    };
    // A member that does not lead answers as it would for a hot slot (a redirect, or
    // its own view), without trying a load only the leader can do.
    if node.replica().is_some_and(|r| !r.is_leader()) {
        return None;
    }
    slots.into_iter().find(|&s| node.keyspace.tier.is_cold(s))
}

/// A write to a migrating slot, guarded on the slot's version when its keys were seen
/// here (fleet/moving.rs): it applies only if none of the slot's keys moved since.
fn guarded(op: Op, (slot, version): (u16, u64)) -> Op {
    Op::Guarded(Box::new(prism_engine::op::Guarded {
        tag: 0,
        versions: vec![(slot, version)],
        expires_at: 0,
        ops: vec![op],
    }))
}

/// Renders a [`guarded`] write's output as the plain write's: its single item, or
/// `-TRYAGAIN` when the guard failed (a key moved; the client retries and is sent on).
fn unwrap_guarded(render: crate::pending::RenderFn) -> crate::pending::RenderFn {
    Box::new(move |conn, out, o| match o {
        Output::Array(mut items) if items.len() == 1 => render(conn, out, items.pop().unwrap_or(Output::Nil)),
        Output::Err(e) => {
            conn.errors += 1;
            out.error(&e.to_string());
        }
        _ => {
            conn.errors += 1;
            out.error("TRYAGAIN a key of the slot moved to another shard meanwhile; retry");
        }
    })
}

/// True when a write touched `slot` since `version` (a read there may have missed a key
/// that moved).
fn moved_meanwhile(node: &Node, slot: u16, version: u64) -> bool {
    Slot::new(u64::from(slot)).is_some_and(|s| node.keyspace.slot_version(s) != version)
}

/// [`reject`] for `execute_checked`, which answers `None` for a refused request.
fn refused(node: &Node, conn: &mut ConnState, out: &mut ReplyWriter, args: &[Bytes], e: CmdError) -> Option<Exec> {
    reject(node, conn, out, args, e);
    None
}

/// A request refused before it ran. Inside MULTI this marks the transaction failed, and a
/// refused EXEC aborts it (see `multi::rejected`).
fn reject(node: &Node, conn: &mut ConnState, out: &mut ReplyWriter, args: &[Bytes], e: CmdError) {
    let e = multi::rejected(node, conn, args, e);
    crate::stats::rejected(node, conn, args, &e.0);
    fail(conn, out, e)
}

/// Replies an error; behind pending writes, it waits its turn with them.
pub(crate) fn fail(conn: &mut ConnState, out: &mut ReplyWriter, e: CmdError) {
    conn.errors += 1;
    let e = match &conn.tls {
        Some(ports) => ports.redirect(e),
        None => e,
    };
    if conn.pending.is_empty() {
        out.error(&e.0);
    } else {
        conn.pending.push(Pending { write: None, slot: None, render: Render::Error(e) });
    }
}

/// `container|sub` as a static string, for CLIENT LIST's `cmd=`.
fn sub_name(container: &'static CommandSpec, sub: &'static CommandSpec) -> &'static str {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static NAMES: OnceLock<HashMap<(usize, usize), &'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        table::all()
            .flat_map(|c| c.subcommands().iter().map(move |s| (c, s)))
            .map(|(c, s)| {
                (
                    (c as *const _ as usize, s as *const _ as usize),
                    &*Box::leak(format!("{}|{}", c.name, s.name).into_boxed_str()),
                )
            })
            .collect()
    });
    names.get(&(container as *const _ as usize, sub as *const _ as usize)).copied().unwrap_or(container.name)
}

/// Checks that every key of the request is served here and that all of them live in one
/// shard; returns that shard (`None` for a keyless request). In a fleet of several shards
/// the keys must share one slot, as Redis Cluster requires (so a request never spans a
/// slot that may move to another shard); a node serving every slot allows any keys.
fn route(node: &Node, spec: &CommandSpec, args: &[Bytes], conn: &mut ConnState) -> CmdResult<Option<usize>> {
    let readonly = conn.readonly;
    let mut keys = spec.key_indexes_in(args);
    let Some(first) = keys.next() else {
        return Ok(None);
    };
    let topology = node.topology.load();
    let first_slot = Slot::of_key(&args[first]);
    let first_route = topology.route(first_slot);
    let one_slot = topology.shards.len() > 1;
    for i in keys {
        let slot = Slot::of_key(&args[i]);
        if one_slot && slot != first_slot {
            return Err(CmdError::msg("CROSSSLOT Keys in request don't hash to the same slot"));
        }
        let r = topology.route(slot);
        let same = match (r, first_route) {
            (Route::Local(a), Route::Local(b)) | (Route::Moved(a), Route::Moved(b)) => a == b,
            (Route::Unassigned, Route::Unassigned) => true,
            _ => false,
        };
        if !same {
            return Err(CmdError::msg("CROSSSLOT Keys in request don't hash to the same slot"));
        }
    }
    // A fleet node decides from its shard's own slot state (slots moving, or moved
    // before the map caught up): fleet/moving.rs.
    let fleet = node.replica().and_then(|r| r.fleet.as_ref());
    let asking = conn.asking || spec.name == "restore-asking";
    let first_route = match fleet {
        Some(view) => match crate::fleet::moving::route(node, view, spec, args, first_slot, asking)? {
            crate::fleet::moving::Decision::Serve => Route::Local(topology.myself().shard),
            crate::fleet::moving::Decision::Guard(slot, version) => {
                conn.slot_guard = Some((slot, version));
                Route::Local(topology.myself().shard)
            }
        },
        None => first_route,
    };
    match first_route {
        Route::Local(shard) => {
            // A member that does not lead serves only READONLY reads itself.
            if let Some(r) = node.replica() {
                if (spec.has(flag::WRITE) || !readonly) && !r.is_leader() {
                    return Err(r.redirect(Some(first_slot), r.group.leadership().leader));
                }
            }
            Ok(Some(shard))
        }
        Route::Moved(shard) => {
            let target = topology.primary_of(shard).map(|n| format!("{}:{}", n.ip, n.port));
            match target {
                Some(addr) => Err(CmdError::msg(format!("MOVED {first_slot} {addr}"))),
                None => Err(CmdError::msg("CLUSTERDOWN Hash slot not served")),
            }
        }
        Route::Unassigned => Err(CmdError::msg("CLUSTERDOWN Hash slot not served")),
    }
}

fn unknown_command(args: &[Bytes]) -> CmdError {
    // Redis's cut-offs: the name at 128 bytes; arguments are listed while the list is
    // under 128 bytes, each cut to the room left.
    let mut list = Vec::new();
    for a in &args[1..] {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        list.push(b'\'');
        list.extend_from_slice(&a[..a.len().min(room)]);
        list.extend_from_slice(b"' ");
    }
    CmdError::msg(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        truncated(&args[0], 128),
        String::from_utf8_lossy(&list)
    ))
}

fn truncated(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

// ---- argument helpers -------------------------------------------------------------

/// An i64 argument with Redis's strict rules.
pub fn arg_i64(arg: &[u8]) -> CmdResult<i64> {
    prism_engine::num::parse_i64(arg).ok_or(CmdError::NOT_INTEGER)
}

/// A non-negative count or index argument.
pub fn arg_usize(arg: &[u8]) -> CmdResult<usize> {
    let n = arg_i64(arg)?;
    usize::try_from(n).map_err(|_| CmdError::msg("ERR value is out of range, must be positive"))
}

pub fn arg_f64(arg: &[u8]) -> CmdResult<f64> {
    prism_engine::num::parse_f64(arg).ok_or(CmdError::NOT_FLOAT)
}

/// An integer argument of at least `min`; anything else (not an integer included) is
/// refused with `msg`, as Redis's `getRangeLongFromObjectOrReply`.
pub fn arg_at_least(arg: &[u8], min: i64, msg: &'static str) -> CmdResult<usize> {
    match prism_engine::num::parse_i64(arg) {
        Some(n) if n >= min => usize::try_from(n).map_err(|_| CmdError::msg(msg)),
        _ => Err(CmdError::msg(msg)),
    }
}

/// The arguments LMPOP, ZMPOP, BLMPOP and BZMPOP share, from `args[numkeys_at]`:
/// `numkeys key [key ...] <where> [COUNT count]`, checked in Redis's order and words.
/// `side` parses `<where>` (LEFT|RIGHT or MIN|MAX). Returns the keys, the side and the count.
pub fn parse_mpop<W>(
    args: &[Bytes],
    numkeys_at: usize,
    side: impl Fn(&[u8]) -> CmdResult<W>,
) -> CmdResult<(&[Bytes], W, usize)> {
    let numkeys = arg_at_least(&args[numkeys_at], 1, "ERR numkeys should be greater than 0")?;
    let where_at = numkeys.checked_add(numkeys_at + 1).filter(|&i| i < args.len()).ok_or(CmdError::SYNTAX)?;
    let side = side(&args[where_at])?;
    let mut count = None;
    let mut i = where_at + 1;
    while i < args.len() {
        match args.get(i + 1) {
            Some(v) if count.is_none() && is(&args[i], "COUNT") => {
                count = Some(arg_at_least(v, 1, "ERR count should be greater than 0")?);
            }
            _ => return Err(CmdError::SYNTAX),
        }
        i += 2;
    }
    Ok((&args[numkeys_at + 1..where_at], side, count.unwrap_or(1)))
}

/// True when `arg` equals `word`, ignoring ASCII case.
#[inline]
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Text of an argument for messages.
pub fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// Writes HELP for a container command from the table.
pub fn container_help(ctx: &mut Ctx<'_>, container: &str) {
    let Some(spec) = table::lookup(container.as_bytes()) else {
        return;
    };
    let subs = spec.subcommands();
    let mut lines =
        vec![format!("{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", container.to_ascii_uppercase())];
    for s in subs {
        lines.push(s.name.to_ascii_uppercase());
        lines.push(format!("    {}", s.summary));
    }
    ctx.out.array(lines.len());
    for l in &lines {
        ctx.out.simple(l);
    }
}
