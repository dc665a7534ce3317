//! The write commands of sorted sets: each builds a `ZSetOp` with every option fixed.
//! ZPOP* and ZMPOP apply through `Node::write` themselves, because their reply shape
//! depends on the protocol and on whether a count was given.

use bytes::Bytes;
use prism_engine::zset::{parse_lex_bound, parse_score, parse_score_bound, AddFlags, Combine, RangeBy, ZSetOp};
use prism_engine::{Op, Output, Slot};

use super::read::{parse_range, Kind};
use super::{parse_combination, write_popped};
use crate::cmd::{arg_i64, is, CmdError, CmdResult, Ctx};

fn zset_op(op: ZSetOp) -> CmdResult<Op> {
    Ok(Op::SortedSets(op))
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`, checked in
/// Redis's order: options, pairing, incompatible options, then every score.
pub(super) fn zadd(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let mut flags = AddFlags::default();
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if is(a, "NX") {
            flags.nx = true;
        } else if is(a, "XX") {
            flags.xx = true;
        } else if is(a, "CH") {
            flags.ch = true;
        } else if is(a, "INCR") {
            flags.incr = true;
        } else if is(a, "GT") {
            flags.gt = true;
        } else if is(a, "LT") {
            flags.lt = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::SYNTAX);
    }
    if flags.nx && flags.xx {
        return Err(CmdError::msg("ERR XX and NX options at the same time are not compatible"));
    }
    if [flags.gt, flags.lt, flags.nx].iter().filter(|&&f| f).count() > 1 {
        return Err(CmdError::msg("ERR GT, LT, and/or NX options at the same time are not compatible"));
    }
    if flags.incr && rest.len() > 2 {
        return Err(CmdError::msg("ERR INCR option supports a single increment-element pair"));
    }
    let pairs = rest
        .chunks_exact(2)
        .map(|c| Ok((parse_score(&c[0]).ok_or(CmdError::NOT_FLOAT)?, c[1].clone())))
        .collect::<CmdResult<Vec<_>>>()?;
    zset_op(ZSetOp::Add { key: args[1].clone(), flags, pairs })
}

/// `ZINCRBY key increment member`: Redis runs it through ZADD's parser, so an option
/// word in the increment's place leaves an odd pairing, a syntax error.
pub(super) fn zincrby(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    if ["NX", "XX", "CH", "INCR", "GT", "LT"].iter().any(|w| is(&args[2], w)) {
        return Err(CmdError::SYNTAX);
    }
    let delta = parse_score(&args[2]).ok_or(CmdError::NOT_FLOAT)?;
    let flags = AddFlags { incr: true, ..AddFlags::default() };
    zset_op(ZSetOp::Add { key: args[1].clone(), flags, pairs: vec![(delta, args[3].clone())] })
}

pub(super) fn zrem(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    zset_op(ZSetOp::Rem { key: args[1].clone(), members: args[2..].to_vec() })
}

fn pop_command(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) {
    if args.len() > 3 {
        return ctx.fail(CmdError::SYNTAX);
    }
    // Redis's getPositiveLongFromObjectOrReply: one message for any bad count.
    let count = match args.get(2).map(|a| arg_i64(a).ok().and_then(|n| usize::try_from(n).ok())) {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => return ctx.fail(CmdError::msg("ERR value is out of range, must be positive")),
    };
    let op = ZSetOp::Pop { key: args[1].clone(), max, count: count.unwrap_or(1) };
    let counted = count.is_some();
    ctx.write_then(Op::SortedSets(op), move |conn, out, o| match o {
        Output::Array(items) => write_popped(out, &items, counted),
        Output::Err(e) => crate::cmd::fail(conn, out, e.into()),
        other => out.output(&other),
    });
}

pub(super) fn zpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    pop_command(ctx, args, false);
}

pub(super) fn zpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    pop_command(ctx, args, true);
}

/// MIN or MAX, as ZMPOP and BZMPOP take it: true for MAX.
pub(crate) fn min_or_max(arg: &[u8]) -> CmdResult<bool> {
    if is(arg, "MIN") {
        Ok(false)
    } else if is(arg, "MAX") {
        Ok(true)
    } else {
        Err(CmdError::SYNTAX)
    }
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`.
pub(super) fn zmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let parsed = super::super::parse_mpop(args, 1, min_or_max).map(|(keys, max, count)| ZSetOp::MPop {
        keys: keys.to_vec(),
        max,
        count,
    });
    let op = match parsed {
        Ok(op) => op,
        Err(e) => return ctx.fail(e),
    };
    ctx.write_then(Op::SortedSets(op), |conn, out, o| match o {
        Output::Nil => out.null_array(),
        Output::Err(e) => crate::cmd::fail(conn, out, e.into()),
        other => out.output(&other),
    });
}

pub(super) fn zremrangebyrank(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let by = RangeBy::Rank { start: arg_i64(&args[2])?, stop: arg_i64(&args[3])? };
    zset_op(ZSetOp::RemRange { key: args[1].clone(), by })
}

pub(super) fn zremrangebyscore(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let by = match (parse_score_bound(&args[2]), parse_score_bound(&args[3])) {
        (Some(min), Some(max)) => RangeBy::Score { min, max },
        _ => return Err(CmdError::msg("ERR min or max is not a float")),
    };
    zset_op(ZSetOp::RemRange { key: args[1].clone(), by })
}

pub(super) fn zremrangebylex(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let by = match (parse_lex_bound(&args[2]), parse_lex_bound(&args[3])) {
        (Some(min), Some(max)) => RangeBy::Lex { min, max },
        _ => return Err(CmdError::msg("ERR min or max not valid string range item")),
    };
    zset_op(ZSetOp::RemRange { key: args[1].clone(), by })
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`.
pub(super) fn zrangestore(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let (range, _) = parse_range(args, 2, Kind::Auto, None, true)?;
    zset_op(ZSetOp::RangeStore { dst: args[1].clone(), src: args[2].clone(), range })
}

fn store_command(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Combine) -> CmdResult<Op> {
    let c = parse_combination(ctx, args, 2, kind, true)?;
    // The table's key spec covers the sources; the destination must be served with them.
    let dst = &args[1];
    {
        let topology = ctx.node.topology.load();
        let dst_route = topology.route(Slot::of_key(dst));
        if c.keys.iter().any(|k| topology.route(Slot::of_key(k)) != dst_route) {
            return Err(CmdError::msg("CROSSSLOT Keys in request don't hash to the same slot"));
        }
    }
    zset_op(ZSetOp::Store { dst: dst.clone(), kind, keys: c.keys, weights: c.weights, aggregate: c.aggregate })
}

pub(super) fn zunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    store_command(ctx, args, Combine::Union)
}

pub(super) fn zinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    store_command(ctx, args, Combine::Inter)
}

pub(super) fn zdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    store_command(ctx, args, Combine::Diff)
}
