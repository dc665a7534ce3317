//! The read commands of sorted sets, and the ZRANGE argument parser shared with
//! ZRANGESTORE.

use bytes::Bytes;
use prism_engine::keyspace::scan_positions;
use prism_engine::zset::{combine, parse_lex_bound, parse_score_bound, Combine, Range, RangeBy, Source, ZSetValue};
use prism_engine::{Entry, Value};
use rand::Rng;

use super::{parse_combination, read_zset, write_members};
use crate::cmd::hash::MAX_RANDOM_REPEATS;
use crate::cmd::keys::{empty_scan, parse_collection_scan, parse_cursor};
use crate::cmd::{arg_i64, is, CmdError, CmdResult, Ctx};

/// Redis's `zset-max-listpack-entries` / `-value` defaults: such sets scan in one call.
const LISTPACK_MAX_ENTRIES: usize = 128;
const LISTPACK_MAX_VALUE: usize = 64;

const NOT_FLOAT: &str = "ERR min or max is not a float";
const NOT_LEX: &str = "ERR min or max not valid string range item";

/// Which kind of range a ZRANGE-family command reads (`Auto`: ZRANGE's BYSCORE / BYLEX
/// decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Auto,
    Rank,
    Score,
    Lex,
}

/// Parses `key min max [options]` from `args[key_index]` on, as Redis's
/// `zrangeGenericCommand`: `rev` is `None` where REV is allowed, `store` refuses
/// WITHSCORES. Returns the range and WITHSCORES.
pub(super) fn parse_range(
    args: &[Bytes],
    key_index: usize,
    mut kind: Kind,
    mut rev: Option<bool>,
    store: bool,
) -> CmdResult<(Range, bool)> {
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = key_index + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if !store && is(a, "WITHSCORES") {
            withscores = true;
        } else if is(a, "LIMIT") && left >= 2 {
            offset = arg_i64(&args[j + 1])?;
            limit = arg_i64(&args[j + 2])?;
            j += 2;
        } else if rev.is_none() && is(a, "REV") {
            rev = Some(true);
        } else if kind == Kind::Auto && is(a, "BYLEX") {
            kind = Kind::Lex;
        } else if kind == Kind::Auto && is(a, "BYSCORE") {
            kind = Kind::Score;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if kind == Kind::Auto {
        kind = Kind::Rank;
    }
    if limit != -1 && kind == Kind::Rank {
        return Err(CmdError::msg(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == Kind::Lex {
        return Err(CmdError::msg("ERR syntax error, WITHSCORES not supported in combination with BYLEX"));
    }
    let (mut lo, mut hi) = (&args[key_index + 1], &args[key_index + 2]);
    if rev && kind != Kind::Rank {
        // Reverse score and lex ranges are written max first.
        std::mem::swap(&mut lo, &mut hi);
    }
    let by = match kind {
        Kind::Score => RangeBy::Score {
            min: parse_score_bound(lo).ok_or(CmdError::msg(NOT_FLOAT))?,
            max: parse_score_bound(hi).ok_or(CmdError::msg(NOT_FLOAT))?,
        },
        Kind::Lex => RangeBy::Lex {
            min: parse_lex_bound(lo).ok_or(CmdError::msg(NOT_LEX))?,
            max: parse_lex_bound(hi).ok_or(CmdError::msg(NOT_LEX))?,
        },
        Kind::Rank | Kind::Auto => RangeBy::Rank { start: arg_i64(lo)?, stop: arg_i64(hi)? },
    };
    Ok((Range { by, rev, offset, limit }, withscores))
}

fn range_command(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind, rev: Option<bool>) {
    let (range, withscores) = match parse_range(args, 1, kind, rev, false) {
        Ok(r) => r,
        Err(e) => return ctx.fail(e),
    };
    read_zset(ctx, &args[1], |out, z| {
        let items: Vec<(&[u8], f64)> = z.map(|z| z.range(&range).collect()).unwrap_or_default();
        write_members(out, &items, withscores);
        Ok(())
    });
}

pub(super) fn zrange(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    range_command(ctx, args, Kind::Auto, None);
}

pub(super) fn zrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    range_command(ctx, args, Kind::Rank, Some(true));
}

pub(super) fn zrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    range_command(ctx, args, Kind::Score, Some(false));
}

pub(super) fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    range_command(ctx, args, Kind::Score, Some(true));
}

pub(super) fn zrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    range_command(ctx, args, Kind::Lex, Some(false));
}

pub(super) fn zrevrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    range_command(ctx, args, Kind::Lex, Some(true));
}

pub(super) fn zscore(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let member = &args[2];
    read_zset(ctx, &args[1], |out, z| {
        match z.and_then(|z| z.score(member)) {
            Some(s) => out.double(s),
            None => out.null(),
        }
        Ok(())
    });
}

pub(super) fn zmscore(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let members = &args[2..];
    read_zset(ctx, &args[1], |out, z| {
        out.array(members.len());
        for m in members {
            match z.and_then(|z| z.score(m)) {
                Some(s) => out.double(s),
                None => out.null(),
            }
        }
        Ok(())
    });
}

pub(super) fn zcard(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    read_zset(ctx, &args[1], |out, z| {
        out.int(z.map_or(0, ZSetValue::len) as i64);
        Ok(())
    });
}

pub(super) fn zcount(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let by = match (parse_score_bound(&args[2]), parse_score_bound(&args[3])) {
        (Some(min), Some(max)) => RangeBy::Score { min, max },
        _ => return ctx.fail(CmdError::msg(NOT_FLOAT)),
    };
    read_zset(ctx, &args[1], |out, z| {
        out.int(z.map_or(0, |z| z.count(&by)) as i64);
        Ok(())
    });
}

pub(super) fn zlexcount(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let by = match (parse_lex_bound(&args[2]), parse_lex_bound(&args[3])) {
        (Some(min), Some(max)) => RangeBy::Lex { min, max },
        _ => return ctx.fail(CmdError::msg(NOT_LEX)),
    };
    read_zset(ctx, &args[1], |out, z| {
        out.int(z.map_or(0, |z| z.count(&by)) as i64);
        Ok(())
    });
}

fn rank_command(ctx: &mut Ctx<'_>, args: &[Bytes], rev: bool) {
    if args.len() > 4 {
        let name = super::text_lower(&args[0]);
        return ctx.fail(CmdError::msg(format!("ERR wrong number of arguments for '{name}' command")));
    }
    let withscore = match args.get(3) {
        None => false,
        Some(a) if is(a, "WITHSCORE") => true,
        Some(_) => return ctx.fail(CmdError::SYNTAX),
    };
    let member = &args[2];
    read_zset(ctx, &args[1], |out, z| {
        match z.and_then(|z| Some((z.rank(member, rev)?, z.score(member)?))) {
            Some((rank, score)) if withscore => {
                out.array(2);
                out.int(rank as i64);
                out.double(score);
            }
            Some((rank, _)) => out.int(rank as i64),
            None if withscore => out.null_array(),
            None => out.null(),
        }
        Ok(())
    });
}

pub(super) fn zrank(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    rank_command(ctx, args, false);
}

pub(super) fn zrevrank(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    rank_command(ctx, args, true);
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`: no count answers one member (or null); a
/// positive count distinct members (the whole set, in order, when it asks for at least as
/// many); a negative count that many, repeats allowed (bounded, as HRANDFIELD).
pub(super) fn zrandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    if args.len() == 2 {
        return read_zset(ctx, &args[1], |out, z| {
            match z.and_then(|z| z.get_index(rand::rng().random_range(0..z.len().max(1)))) {
                Some((m, _)) => out.bulk(m),
                None => out.null(),
            }
            Ok(())
        });
    }
    let parsed = (|| {
        let count = arg_i64(&args[2])?;
        if count == i64::MIN {
            return Err(CmdError::msg(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ));
        }
        let withscores = match &args[3..] {
            [] => false,
            [w] if is(w, "WITHSCORES") => true,
            _ => return Err(CmdError::SYNTAX),
        };
        if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
            return Err(CmdError::msg("ERR value is out of range"));
        }
        if count < 0 && count.unsigned_abs() > MAX_RANDOM_REPEATS {
            return Err(CmdError::msg("ERR value is out of range"));
        }
        Ok((count, withscores))
    })();
    let (count, withscores) = match parsed {
        Ok(p) => p,
        Err(e) => return ctx.fail(e),
    };
    read_zset(ctx, &args[1], |out, z| {
        let Some(z) = z else {
            out.array(0);
            return Ok(());
        };
        let mut rng = rand::rng();
        let size = z.len();
        let items: Vec<(&[u8], f64)> = if count < 0 {
            let n = count.unsigned_abs() as usize;
            (0..n).filter_map(|_| z.get_index(rng.random_range(0..size.max(1)))).collect()
        } else if count as u64 >= size as u64 {
            z.iter().collect()
        } else {
            let picked = rand::seq::index::sample(&mut rng, size, count as usize);
            picked.iter().filter_map(|i| z.get_index(i)).collect()
        };
        write_members(out, &items, withscores);
        Ok(())
    });
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`. A set small enough to be a listpack
/// in Redis is returned whole, in score order, with cursor 0, as Redis does; larger ones
/// walk storage positions from the end (`scan_positions`).
pub(super) fn zscan(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let cursor = match parse_cursor(&args[2]) {
        Ok(c) => c,
        Err(e) => return ctx.fail(e),
    };
    read_zset(ctx, &args[1], |out, z| {
        let Some(z) = z else {
            empty_scan(out);
            return Ok(());
        };
        let opts = parse_collection_scan(args, false)?;
        let keep = |m: &[u8]| opts.keeps(m);
        let mut found: Vec<(&[u8], f64)> = Vec::new();
        let small = z.len() <= LISTPACK_MAX_ENTRIES && z.iter().all(|(m, _)| m.len() <= LISTPACK_MAX_VALUE);
        let next = if small {
            found.extend(z.iter().filter(|(m, _)| keep(m)));
            0
        } else {
            scan_positions(z.len(), cursor, opts.count, |pos| {
                if let Some((m, s)) = z.get_index(pos) {
                    if keep(m) {
                        found.push((m, s));
                    }
                }
            })
        };
        out.array(2);
        out.bulk(itoa::Buffer::new().format(next).as_bytes());
        out.array(2 * found.len());
        for (m, s) in found {
            out.bulk(m);
            out.bulk(crate::resp::reply::format_double(s).as_bytes());
        }
        Ok(())
    });
}

fn combine_command(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Combine) {
    let c = match parse_combination(ctx, args, 1, kind, false) {
        Ok(c) => c,
        Err(e) => return ctx.fail(e),
    };
    let now = ctx.now_ms();
    let result = {
        let tables = ctx.node.keyspace.read_many(&c.keys);
        let sources: Vec<Option<Source<'_>>> = c
            .keys
            .iter()
            .map(|k| match tables.get(k, now) {
                None => Some(Source::Missing),
                Some(Entry { value: Value::ZSet(z), .. }) => Some(Source::ZSet(z)),
                Some(Entry { value: Value::Set(s), .. }) => Some(Source::Set(s)),
                Some(_) => None,
            })
            .collect();
        let Some(sources) = sources.into_iter().collect::<Option<Vec<_>>>() else {
            return ctx.fail(CmdError::WRONGTYPE);
        };
        combine(kind, &c.weights, c.aggregate, sources.len(), |i, f| f(sources[i]))
    };
    let items: Vec<(&[u8], f64)> = result.iter().collect();
    write_members(ctx.out, &items, c.withscores);
}

pub(super) fn zunion(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    combine_command(ctx, args, Combine::Union);
}

pub(super) fn zinter(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    combine_command(ctx, args, Combine::Inter);
}

pub(super) fn zdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    combine_command(ctx, args, Combine::Diff);
}
