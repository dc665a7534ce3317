//! Traversal commands: G.KHOP and G.PATH, over `prism_engine::graph::traverse`.
//!
//! Both are bounded by default (visited vertices and wall time, plus depth for G.PATH)
//! and answer a map whose `truncated` entry is null for a complete answer or names the
//! bound that cut it short (`maxvertices`, `timeout`, `maxdepth`). The deadline is real
//! time on this node: it bounds work, it is not data, so it does not use the node clock.
//!
//! In a fleet of several shards both fan out per hop to the shards holding the frontier
//! (`crate::fleet::fanout`), as the connection's deferred reply; the start vertex is a
//! key of this shard (cluster clients route by it) and is checked here first.

use std::time::{Duration, Instant};

use bytes::Bytes;
use prism_engine::graph::traverse::{khop, shortest_path, with_vertex, Bounds, Cut, DirSel, KHop, PathResult};

use super::op_err;
use crate::cmd::{arg_i64, is, CmdError, CmdResult, Ctx};
use crate::fleet::fanout::Fanout;
use crate::resp::ReplyWriter;

pub const DEFAULT_MAX_VERTICES: usize = 100_000;
pub const MAX_MAX_VERTICES: usize = 10_000_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
pub const MAX_TIMEOUT_MS: u64 = 60_000;
pub const MAX_HOPS: usize = 64;
pub const DEFAULT_MAX_DEPTH: usize = 16;

const KEYWORDS: &[&str] = &["type", "dir", "limit", "maxvertices", "timeout", "maxdepth"];

/// An integer option in `1..=max`.
fn bounded(arg: &[u8], name: &str, max: u64) -> CmdResult<u64> {
    let n = arg_i64(arg)?;
    if n < 1 || n as u64 > max {
        return Err(CmdError::msg(format!("ERR {name} must be between 1 and {max}")));
    }
    Ok(n as u64)
}

/// Parses the options after the fixed arguments; `depth` is set only if MAXDEPTH is
/// allowed (G.PATH).
fn parse_bounds(args: &[Bytes], mut depth: Option<&mut usize>) -> CmdResult<Bounds> {
    let mut b = Bounds {
        types: Vec::new(),
        dir: DirSel::Out,
        per_vertex: usize::MAX,
        max_vertices: DEFAULT_MAX_VERTICES,
        deadline: Instant::now(),
    };
    let mut timeout = DEFAULT_TIMEOUT_MS;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let Some(value) = args.get(i + 1) else { return Err(CmdError::SYNTAX) };
        if is(a, "type") {
            // TYPE t [t ...]: every argument up to the next keyword.
            i += 1;
            let start = i;
            while i < args.len() && !KEYWORDS.iter().any(|k| is(&args[i], k)) {
                b.types.push(args[i].clone());
                i += 1;
            }
            if i == start {
                return Err(CmdError::SYNTAX);
            }
            continue;
        }
        if is(a, "dir") {
            b.dir = if is(value, "out") {
                DirSel::Out
            } else if is(value, "in") {
                DirSel::In
            } else if is(value, "both") {
                DirSel::Both
            } else {
                return Err(CmdError::SYNTAX);
            };
        } else if is(a, "limit") {
            b.per_vertex = bounded(value, "LIMIT", i64::MAX as u64)? as usize;
        } else if is(a, "maxvertices") {
            b.max_vertices = bounded(value, "MAXVERTICES", MAX_MAX_VERTICES as u64)? as usize;
        } else if is(a, "timeout") {
            timeout = bounded(value, "TIMEOUT", MAX_TIMEOUT_MS)?;
        } else if let (true, Some(d)) = (is(a, "maxdepth"), depth.as_deref_mut()) {
            *d = bounded(value, "MAXDEPTH", MAX_HOPS as u64)? as usize;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 2;
    }
    b.deadline = Instant::now() + Duration::from_millis(timeout);
    Ok(b)
}

fn write_cut(out: &mut ReplyWriter, cut: Option<Cut>) {
    out.bulk(b"truncated");
    match cut {
        Some(c) => out.bulk(c.name().as_bytes()),
        None => out.null(),
    }
}

/// `G.KHOP vid k [TYPE t ...] [DIR OUT|IN|BOTH] [LIMIT n] [MAXVERTICES n] [TIMEOUT ms]`
/// -> null if vid is not a vertex, else {hops: [[v ...] per hop], truncated}.
pub(super) fn g_khop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let parsed = arg_i64(&args[2]).and_then(|k| {
        if !(0..=MAX_HOPS as i64).contains(&k) {
            return Err(CmdError::msg(format!("ERR k must be between 0 and {MAX_HOPS}")));
        }
        Ok((k as usize, parse_bounds(&args[3..], None)?))
    });
    let (k, bounds) = match parsed {
        Ok(p) => p,
        Err(e) => return ctx.fail(e),
    };
    let now = ctx.now_ms();
    if let Some(fanout) = Fanout::new(ctx.node, ctx.conn.readonly, now) {
        let start = args[1].clone();
        if !start_is_vertex(ctx, &start, now) {
            return;
        }
        ctx.conn.deferred = Some(Box::pin(async move {
            let result = fanout.khop(&start, k, &bounds).await;
            Box::new(move |out: &mut ReplyWriter| match result {
                Ok(r) => write_khop(out, &r),
                Err(e) => out.error(&e.0),
            }) as crate::conn::DeferredReply
        }));
        return;
    }
    let result = match khop(&ctx.node.keyspace, now, &args[1], k, &bounds) {
        Ok(r) => r,
        Err(e) => return ctx.fail(op_err(e)),
    };
    ctx.hit(result.is_some());
    let out = &mut *ctx.out;
    let Some(r) = result else { return out.null() };
    write_khop(out, &r);
}

fn write_khop(out: &mut ReplyWriter, r: &KHop) {
    out.map(2);
    out.bulk(b"hops");
    out.array(r.hops.len());
    for hop in &r.hops {
        out.bulks(hop.iter().map(|v| &v[..]));
    }
    write_cut(out, r.cut);
}

fn write_path(out: &mut ReplyWriter, r: &PathResult) {
    out.map(2);
    out.bulk(b"path");
    match &r.path {
        Some(p) => out.bulks(p.iter().map(|v| &v[..])),
        None => out.null(),
    }
    write_cut(out, r.cut);
}

/// In a fleet: checks the traversal's start (a key of this shard) here, replying null
/// (not a vertex) or WRONGTYPE itself; true when the traversal goes on.
fn start_is_vertex(ctx: &mut Ctx<'_>, start: &[u8], now: u64) -> bool {
    match with_vertex(&ctx.node.keyspace, start, now, |_| ()) {
        Ok(Some(())) => {
            ctx.hit(true);
            true
        }
        Ok(None) => {
            ctx.hit(false);
            ctx.out.null();
            false
        }
        Err(e) => {
            ctx.fail(op_err(e));
            false
        }
    }
}

/// `G.PATH src dst [TYPE t ...] [DIR OUT|IN|BOTH] [MAXDEPTH d] [MAXVERTICES n] [TIMEOUT ms]`
/// -> null if src is not a vertex, else {path: [src ... dst] or null, truncated}.
pub(super) fn g_path(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let mut depth = DEFAULT_MAX_DEPTH;
    let bounds = match parse_bounds(&args[3..], Some(&mut depth)) {
        Ok(b) => b,
        Err(e) => return ctx.fail(e),
    };
    let now = ctx.now_ms();
    if let Some(fanout) = Fanout::new(ctx.node, ctx.conn.readonly, now) {
        let (src, dst) = (args[1].clone(), args[2].clone());
        if !start_is_vertex(ctx, &src, now) {
            return;
        }
        ctx.conn.deferred = Some(Box::pin(async move {
            let result = fanout.path(&src, &dst, depth, &bounds).await;
            Box::new(move |out: &mut ReplyWriter| match result {
                Ok(r) => write_path(out, &r),
                Err(e) => out.error(&e.0),
            }) as crate::conn::DeferredReply
        }));
        return;
    }
    let result = match shortest_path(&ctx.node.keyspace, now, &args[1], &args[2], depth, &bounds) {
        Ok(r) => r,
        Err(e) => return ctx.fail(op_err(e)),
    };
    ctx.hit(result.is_some());
    let out = &mut *ctx.out;
    let Some(r) = result else { return out.null() };
    write_path(out, &r);
}
