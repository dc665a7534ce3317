//! Edge commands: E.ADD E.DEL E.GET E.RANGE E.COUNT.
//!
//! E.RANGE pages through one (vertex, type, direction) list in rank-descending order. Its
//! cursor is the position of the last row returned, `<rank>:<hex of the neighbour id>`,
//! and the next page seeks strictly past it: inserts and deletes between pages never make
//! a page repeat or skip an edge that stayed in place (an edge whose rank changed moves,
//! as in any keyset pagination). Cursor `0` starts a range and is returned when it ends.
//! Rows are written straight from the vertex's list under its slot's read lock: writes
//! keep both halves of an edge mirrored (`prism_engine::graph::cleanup`), so no read
//! looks at the other end. Unconfirmed (restored, mirror not seen yet) halves are skipped.
//! The one exception is `IN ... WITHPROPS`: an edge's properties live on its out-half, so
//! those rows are copied out and each one's properties read from the other vertex.
//!
//! In a fleet, an edge whose dst is on another shard is written as its out-half plus an
//! outbox entry owing the in-half ([`crosses`]): E.RANGE / E.COUNT OUT on src see it at
//! once, IN on dst once delivered (eventually; docs/fleet.md).

use bytes::Bytes;
use prism_engine::graph::edges::HalfRef;
use prism_engine::graph::traverse::with_vertex;
use prism_engine::graph::{Dir, EdgeHalf, GraphOp};
use prism_engine::num::parse_i64;
use prism_engine::Op;

use super::{op_err, pairs, read_vertex};
use crate::cmd::{arg_i64, is, CmdError, CmdResult, Ctx};
use crate::resp::ReplyWriter;

/// Default and largest E.RANGE LIMIT.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 100_000;

type Props = Vec<(Bytes, Bytes)>;

/// Most entries a shard's cross-shard outbox holds before cross-shard edge writes are
/// refused with `-BUSY` (the destination is down or cut off for long): bounded memory.
pub const OUTBOX_LIMIT: usize = 1_000_000;

/// Whether the edge's in-half lives on another shard (dst's slot takes no writes here):
/// the write then stores the out-half and owes the in-half through the outbox
/// (`prism_engine::graph::outbox`). Outside a fleet every slot is served here.
pub(super) fn crosses(ctx: &Ctx<'_>, dst: &[u8]) -> CmdResult<bool> {
    let meta = &ctx.node.keyspace.meta;
    if meta.accepts_write(prism_engine::Slot::of_key(dst).get(), false) {
        return Ok(false);
    }
    if meta.outbox.lag().0 >= OUTBOX_LIMIT {
        return Err(CmdError::msg(
            "BUSY the cross-shard edge outbox is full (another shard has not taken its edges for long); retry later",
        ));
    }
    Ok(true)
}

/// `E.ADD src type dst [RANK r] [PROPS field value ...]`.
pub(super) fn e_add(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let cross = crosses(ctx, &args[3])?;
    let mut rank = None;
    let mut props = None;
    let mut i = 4;
    while i < args.len() {
        if is(&args[i], "rank") && i + 1 < args.len() {
            rank = Some(arg_i64(&args[i + 1])?);
            i += 2;
        } else if is(&args[i], "props") {
            props = Some(pairs(&args[i + 1..], "e.add")?);
            break;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let (out, inn) = EdgeHalf::pair(&args[1], &args[2], &args[3]);
    Ok(Op::Graph(if cross {
        GraphOp::AddEdgeOut { out, inn, rank, props }
    } else {
        GraphOp::AddEdge { out, inn, rank, props }
    }))
}

pub(super) fn e_del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let cross = crosses(ctx, &args[3])?;
    let (out, inn) = EdgeHalf::pair(&args[1], &args[2], &args[3]);
    Ok(Op::Graph(if cross { GraphOp::DelEdgeOut { out, inn } } else { GraphOp::DelEdge { out, inn } }))
}

fn props_of(h: &HalfRef<'_>) -> Props {
    h.props.map_or_else(Vec::new, |p| {
        p.iter().map(|(f, v)| (Bytes::copy_from_slice(f), Bytes::copy_from_slice(v))).collect()
    })
}

fn write_props(out: &mut ReplyWriter, props: &Props) {
    out.map(props.len());
    for (f, v) in props {
        out.bulk(f);
        out.bulk(v);
    }
}

/// `E.GET src type dst` -> null, or {rank, props}.
pub(super) fn e_get(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let (src, etype, dst) = (&args[1], &args[2], &args[3]);
    let now = ctx.now_ms();
    let found = match with_vertex(&ctx.node.keyspace, src, now, |v| {
        v.list(etype, Dir::Out).and_then(|l| l.get(dst)).filter(|h| h.confirmed).map(|h| (h.rank, props_of(&h)))
    }) {
        Ok(f) => f.flatten(),
        Err(e) => return ctx.fail(op_err(e)),
    };
    ctx.hit(found.is_some());
    let Some((rank, props)) = found else { return ctx.out.null() };
    ctx.out.map(2);
    ctx.out.bulk(b"rank");
    ctx.out.int(rank);
    ctx.out.bulk(b"props");
    write_props(ctx.out, &props);
}

fn parse_dir(arg: &[u8]) -> Option<Dir> {
    if is(arg, "out") {
        Some(Dir::Out)
    } else if is(arg, "in") {
        Some(Dir::In)
    } else {
        None
    }
}

/// `E.COUNT vid type [OUT|IN]`.
pub(super) fn e_count(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let dir = match args.len() {
        3 => Dir::Out,
        4 => match parse_dir(&args[3]) {
            Some(d) => d,
            None => return ctx.fail(CmdError::SYNTAX),
        },
        _ => return ctx.fail(CmdError::SYNTAX),
    };
    let etype = &args[2];
    read_vertex(ctx, &args[1], |out, v| {
        out.int(v.map_or(0, |v| v.degree(etype, dir)) as i64);
        Ok(())
    });
}

struct RangeArgs {
    dir: Dir,
    limit: usize,
    after: Option<(i64, Vec<u8>)>,
    min: i64,
    max: i64,
    with_props: bool,
}

fn parse_cursor(arg: &[u8]) -> CmdResult<Option<(i64, Vec<u8>)>> {
    if arg == b"0" {
        return Ok(None);
    }
    let bad = || CmdError::INVALID_CURSOR;
    let colon = arg.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let rank = parse_i64(&arg[..colon]).ok_or_else(bad)?;
    let hex = &arg[colon + 1..];
    if !hex.len().is_multiple_of(2) {
        return Err(bad());
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let other = hex
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    Ok(Some((rank, other)))
}

fn format_cursor(rank: i64, other: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(21 + 2 * other.len());
    s.push_str(itoa::Buffer::new().format(rank));
    s.push(':');
    for &b in other {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

fn parse_range(args: &[Bytes]) -> CmdResult<RangeArgs> {
    let mut r =
        RangeArgs { dir: Dir::Out, limit: DEFAULT_LIMIT, after: None, min: i64::MIN, max: i64::MAX, with_props: false };
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        let value = args.get(i + 1);
        if let Some(d) = parse_dir(a) {
            r.dir = d;
            i += 1;
            continue;
        }
        if is(a, "withprops") {
            r.with_props = true;
            i += 1;
            continue;
        }
        let Some(value) = value else { return Err(CmdError::SYNTAX) };
        if is(a, "limit") {
            let n = arg_i64(value)?;
            if n < 1 || n as u64 > MAX_LIMIT as u64 {
                return Err(CmdError::msg(format!("ERR LIMIT must be between 1 and {MAX_LIMIT}")));
            }
            r.limit = n as usize;
        } else if is(a, "cursor") {
            r.after = parse_cursor(value)?;
        } else if is(a, "minrank") {
            r.min = arg_i64(value)?;
        } else if is(a, "maxrank") {
            r.max = arg_i64(value)?;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 2;
    }
    Ok(r)
}

/// `E.RANGE vid type [OUT|IN] [LIMIT n] [CURSOR c] [MINRANK a] [MAXRANK b] [WITHPROPS]`
/// -> [next cursor, rows], each row [neighbour, rank] or [neighbour, rank, props].
pub(super) fn e_range(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let r = match parse_range(args) {
        Ok(r) => r,
        Err(e) => return ctx.fail(e),
    };
    if r.dir == Dir::In && r.with_props {
        return e_range_in_props(ctx, args, &r);
    }
    let etype = &args[2];
    read_vertex(ctx, &args[1], |out, v| {
        let list = v.and_then(|v| v.list(etype, r.dir));
        let mut rows: smallvec::SmallVec<[HalfRef<'_>; 16]> = smallvec::SmallVec::new();
        let mut next = None;
        if let Some(list) = list {
            // Halves examined, shown or skipped: bounds the work of one call.
            let mut budget = r.limit.saturating_mul(10).max(1_000);
            let mut last = None;
            let mut it = list
                .iter_from(r.after.as_ref().map(|(rk, o)| (*rk, o.as_slice())), r.max)
                .take_while(|h| h.rank >= r.min);
            for h in it.by_ref() {
                last = Some((h.rank, h.other));
                budget -= 1;
                if h.confirmed {
                    rows.push(h);
                }
                if rows.len() == r.limit || budget == 0 {
                    break;
                }
            }
            if it.next().is_some() {
                next = last.map(|(rk, o)| format_cursor(rk, o));
            }
        }
        out.array(2);
        out.bulk(next.as_deref().unwrap_or("0").as_bytes());
        out.array(rows.len());
        for h in &rows {
            out.array(if r.with_props { 3 } else { 2 });
            out.bulk(h.other);
            out.int(h.rank);
            if r.with_props {
                out.map(h.props.map_or(0, |p| p.len()));
                for (f, val) in h.props.iter().flat_map(|p| p.iter()) {
                    out.bulk(f);
                    out.bulk(val);
                }
            }
        }
        Ok(())
    });
}

/// One IN row with the properties of its edge: neighbour, rank, properties.
type Row = (Bytes, i64, Props);

/// `E.RANGE ... IN WITHPROPS`: the page is copied out of the vertex, then each row's
/// properties are read from its out-half, one slot lock at a time.
fn e_range_in_props(ctx: &mut Ctx<'_>, args: &[Bytes], r: &RangeArgs) {
    let (vid, etype) = (&args[1], &args[2]);
    let now = ctx.now_ms();
    let ks = &ctx.node.keyspace;
    let page = with_vertex(ks, vid, now, |v| {
        let Some(list) = v.list(etype, Dir::In) else { return (Vec::new(), None) };
        let mut budget = r.limit.saturating_mul(10).max(1_000);
        let mut rows = Vec::new();
        let mut last = None;
        let mut it =
            list.iter_from(r.after.as_ref().map(|(rk, o)| (*rk, o.as_slice())), r.max).take_while(|h| h.rank >= r.min);
        for h in it.by_ref() {
            last = Some(format_cursor(h.rank, h.other));
            budget -= 1;
            if h.confirmed {
                rows.push((Bytes::copy_from_slice(h.other), h.rank));
            }
            if rows.len() == r.limit || budget == 0 {
                break;
            }
        }
        let more = it.next().is_some();
        (rows, last.filter(|_| more))
    });
    let (page, next) = match page {
        Ok(Some(p)) => {
            ctx.hit(true);
            p
        }
        Ok(None) => {
            ctx.hit(false);
            (Vec::new(), None)
        }
        Err(e) => return ctx.fail(op_err(e)),
    };
    let rows: Vec<Row> = page
        .into_iter()
        .map(|(other, rank)| {
            let props = with_vertex(ks, &other, now, |v| {
                v.list(etype, Dir::Out).and_then(|l| l.get(vid)).map(|h| props_of(&h))
            })
            .ok()
            .flatten()
            .flatten()
            .unwrap_or_default();
            (other, rank, props)
        })
        .collect();
    let out = &mut *ctx.out;
    out.array(2);
    out.bulk(next.as_deref().unwrap_or("0").as_bytes());
    out.array(rows.len());
    for (other, rank, props) in &rows {
        out.array(3);
        out.bulk(other);
        out.int(*rank);
        write_props(out, props);
    }
}
