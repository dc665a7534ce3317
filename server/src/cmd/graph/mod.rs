//! Graph commands: V.SET V.GET V.DEL V.EXISTS (here), E.ADD E.DEL E.GET E.RANGE E.COUNT
//! ([`edge`]), G.KHOP G.PATH ([`traverse`]). Data model and reply shapes: docs/graph.md.
//!
//! Invariants:
//! - Only the first vertex argument is a declared key (first=1, last=1), so cluster
//!   clients route by it; E.ADD's dst and traversal targets are not keys.
//! - Writes become `Op::Graph`; reads run under one slot read lock at a time and answer
//!   from the vertex's halves as stored: writes keep both halves of an edge mirrored
//!   (see `prism_engine::graph::cleanup`), so a read never looks at the other end, and
//!   never holds two slot locks.
//! - V.DEL removes a vertex's edges in ops of at most `DETACH_BATCH` neighbours, the last
//!   of which removes the vertex: a vertex with a million edges costs many small ops that
//!   other clients interleave with, never one long one.
//! - Every traversal and range is bounded by default; a bound that cut a reply short is
//!   named in the reply.

pub mod edge;
pub mod traverse;

use std::collections::HashSet;

use bytes::Bytes;
use prism_engine::graph::traverse::with_vertex;
use prism_engine::graph::{GraphOp, Vertex, DETACH_BATCH};
use prism_engine::{Op, OpError, Output, Value};

use super::{is, CmdError, CmdResult, Ctx};
use crate::resp::ReplyWriter;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const ONE_KEY: KeySpec = KeySpec::Range { first: 1, last: 1, step: 1 };

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    complexity: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec { name, arity, flags, keys: ONE_KEY, group: Group::Graph, summary, since: "0.1.0", complexity, handler }
}

pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "v.set",
        -4,
        WRITE | DENYOOM | FAST,
        "Creates a vertex or sets its label and properties.",
        "O(N) where N is the number of properties set.",
        Handler::Write(v_set),
    ),
    spec(
        "v.get",
        -2,
        READONLY | FAST,
        "Returns a vertex's label and properties, or the values of the given properties.",
        "O(N) where N is the number of properties returned.",
        Handler::Direct(v_get),
    ),
    spec(
        "v.del",
        2,
        WRITE,
        "Deletes a vertex and all its edges, in bounded steps.",
        "O(E log E) where E is the number of edges of the vertex, in steps of bounded size.",
        Handler::Direct(v_del),
    ),
    spec(
        "v.exists",
        -2,
        READONLY | FAST,
        "Counts how many of the given ids are vertices.",
        "O(N) where N is the number of ids.",
        Handler::Direct(v_exists),
    ),
    spec(
        "e.add",
        -4,
        WRITE | DENYOOM | FAST,
        "Adds an edge, or updates its rank and properties; creates missing endpoints.",
        "O(log N) where N is the degree of the endpoints.",
        Handler::Write(edge::e_add),
    ),
    spec(
        "e.del",
        4,
        WRITE | FAST,
        "Deletes an edge (both halves).",
        "O(log N) where N is the degree of the endpoints.",
        Handler::Write(edge::e_del),
    ),
    spec(
        "e.get",
        4,
        READONLY | FAST,
        "Returns an edge's rank and properties.",
        "O(log N) where N is the degree of the vertex.",
        Handler::Direct(edge::e_get),
    ),
    spec(
        "e.range",
        -3,
        READONLY,
        "Returns a page of a vertex's edges of one type, newest (highest rank) first, with a cursor.",
        "O(log N + M) where M is the number of edges returned.",
        Handler::Direct(edge::e_range),
    ),
    spec(
        "e.count",
        -3,
        READONLY | FAST,
        "Returns the number of edges of one type and direction of a vertex.",
        "O(1)",
        Handler::Direct(edge::e_count),
    ),
    spec(
        "g.khop",
        -3,
        READONLY,
        "Returns the vertices at each hop up to k hops from a vertex (bounded).",
        "O(V + E) over the visited part of the graph, bounded by MAXVERTICES and TIMEOUT.",
        Handler::Direct(traverse::g_khop),
    ),
    spec(
        "g.path",
        -3,
        READONLY,
        "Returns one shortest path between two vertices (bidirectional BFS, bounded).",
        "O(V + E) over the visited part of the graph, bounded by MAXDEPTH, MAXVERTICES and TIMEOUT.",
        Handler::Direct(traverse::g_path),
    ),
];

/// Runs `f` on the vertex under `key` (`None` if absent) with the reply writer, under the
/// slot's read lock. `f` writes the whole reply or returns an error having written
/// nothing. Another type is WRONGTYPE. Counts the lookup as a hit or miss.
pub(crate) fn read_vertex(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&mut ReplyWriter, Option<&Vertex>) -> CmdResult<()>,
) {
    let now = ctx.now_ms();
    let out = &mut *ctx.out;
    let (seen, result) = ctx.node.keyspace.get(key, now, |e| match e.map(|e| &e.value) {
        None => (false, f(out, None)),
        Some(Value::Vertex(v)) => (true, f(out, Some(v))),
        Some(_) => (true, Err(CmdError::WRONGTYPE)),
    });
    ctx.hit(seen);
    if let Err(e) = result {
        ctx.fail(e);
    }
}

fn arity_error(cmd: &str) -> CmdError {
    CmdError::msg(format!("ERR wrong number of arguments for '{cmd}' command"))
}

/// `field value ...` pairs; an odd count is an arity error.
pub(crate) fn pairs(args: &[Bytes], cmd: &str) -> CmdResult<Vec<(Bytes, Bytes)>> {
    if !args.len().is_multiple_of(2) {
        return Err(arity_error(cmd));
    }
    Ok(args.chunks_exact(2).map(|c| (c[0].clone(), c[1].clone())).collect())
}

/// `V.SET vid [LABEL l] field value ...`: LABEL is a keyword only right after the id.
fn v_set(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let (label, rest) = if is(&args[2], "label") { (Some(args[3].clone()), &args[4..]) } else { (None, &args[2..]) };
    let props = pairs(rest, "v.set")?;
    if label.is_none() && props.is_empty() {
        return Err(arity_error("v.set"));
    }
    Ok(Op::Graph(GraphOp::SetVertex { vid: args[1].clone(), label, props }))
}

fn v_get(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let fields = &args[2..];
    read_vertex(ctx, &args[1], |out, v| {
        let Some(v) = v else {
            out.null();
            return Ok(());
        };
        if !fields.is_empty() {
            out.array(fields.len());
            for f in fields {
                match v.props.get(f) {
                    Some(val) => out.bulk(val),
                    None => out.null(),
                }
            }
            return Ok(());
        }
        out.map(2);
        out.bulk(b"label");
        match &v.label {
            Some(l) => out.bulk(l),
            None => out.null(),
        }
        out.bulk(b"props");
        out.map(v.props.len());
        for (f, val) in v.props.iter() {
            out.bulk(f);
            out.bulk(val);
        }
        Ok(())
    });
}

fn v_exists(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let now = ctx.now_ms();
    let ks = &ctx.node.keyspace;
    let n = args[1..].iter().filter(|k| matches!(with_vertex(ks, k, now, |_| ()), Ok(Some(())))).count();
    ctx.out.int(n as i64);
}

/// The next batch of distinct neighbours of `vid` (at most `DETACH_BATCH`), and whether
/// it holds all of them.
fn next_neighbours(v: &Vertex) -> (Vec<Bytes>, bool) {
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut batch = Vec::new();
    for t in v.types() {
        for list in [&t.out, &t.inn] {
            for h in list.iter() {
                if seen.insert(h.other) {
                    if batch.len() == DETACH_BATCH {
                        return (batch, false);
                    }
                    batch.push(Bytes::copy_from_slice(h.other));
                }
            }
        }
    }
    (batch, true)
}

/// V.DEL: detaches the vertex from its neighbours in bounded ops, removing it with the
/// last one. Other writes may interleave; a vertex that keeps gaining edges is removed
/// after a bounded number of rounds anyway (the halves it still holds then go to that
/// write's cleanup, which removes their other ends).
fn v_del(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let vid = &args[1];
    let mut rounds = None;
    loop {
        let now = ctx.now_ms();
        let (neighbours, last, degree) =
            match with_vertex(&ctx.node.keyspace, vid, now, |v| (next_neighbours(v), v.total_degree())) {
                Ok(Some(((n, last), degree))) => (n, last, degree),
                Ok(None) => return ctx.out.int(0),
                Err(e) => return ctx.fail(e.into()),
            };
        let left = rounds.get_or_insert(4 * (degree / DETACH_BATCH) + 16);
        *left -= 1;
        let done = last || *left == 0;
        // Neighbours on other shards: their halves' removal goes through the outbox.
        let meta = &ctx.node.keyspace.meta;
        let (local, remote): (Vec<Bytes>, Vec<Bytes>) =
            neighbours.into_iter().partition(|n| meta.accepts_write(prism_engine::Slot::of_key(n).get(), false));
        let op = match (remote.is_empty(), done) {
            (true, true) => GraphOp::DelVertex { vid: vid.clone(), neighbours: local },
            (true, false) => GraphOp::Detach { vid: vid.clone(), neighbours: local },
            (false, delete) => GraphOp::DetachAcross { vid: vid.clone(), local, remote, delete },
        };
        if ctx.node.replica().is_some() {
            // Replicated: one round per committed write; the connection runs V.DEL again
            // after each detach round until the vertex itself is deleted.
            return ctx.write_then(Op::Graph(op), move |conn, out, o| match o {
                Output::Err(e) => crate::cmd::fail(conn, out, CmdError::from(e)),
                o if done => out.output(&o),
                _ => conn.rerun = true,
            });
        }
        match ctx.node.write(Op::Graph(op)) {
            Output::Err(e) => return ctx.fail(CmdError::from(e)),
            out if done => return ctx.out.output(&out),
            _ => {}
        }
    }
}

/// An engine error as a command error.
pub(crate) fn op_err(e: OpError) -> CmdError {
    CmdError::from(e)
}
