//! Hash commands: HSET HSETNX HGET HMGET HMSET HGETALL HDEL HLEN HEXISTS HINCRBY
//! HINCRBYFLOAT HKEYS HVALS HSTRLEN HSCAN HRANDFIELD.
//!
//! Invariants:
//! - Writes become `Op::HSet` / `HDel` / `HIncrBy` / `HIncrByFloat`; the engine removes a
//!   hash together with its last field, so no command here ever sees an empty hash.
//! - Reads (HRANDFIELD included: choosing fields at random changes nothing) run on the
//!   slot's read lock and write their reply while holding it, so a reply is one state.
//! - `HSCAN` walks field positions from the end towards the start and its cursor is the
//!   number of positions still to visit (`prism_engine::keyspace::scan_positions`): a
//!   field present for the whole scan is returned at least once, despite the hash's
//!   swap-removal. A hash small enough to be a listpack in Redis (at most 128 fields of
//!   at most 64 bytes) is returned whole with cursor 0, as Redis does.
//! - HRANDFIELD with a negative count (repeats allowed) is bounded at
//!   [`MAX_RANDOM_REPEATS`] elements so one request cannot build an unbounded reply;
//!   beyond it Prism answers `ERR value is out of range` where Redis would try to serve.

use bytes::Bytes;
use prism_engine::keyspace::scan_positions;
use prism_engine::{HashValue, Op, Output, Value};
use rand::Rng;

use super::keys::{empty_scan, parse_collection_scan, parse_cursor};
use super::{arg_f64, arg_i64, is, CmdError, CmdResult, Ctx};
use crate::resp::ReplyWriter;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const ONE_KEY: KeySpec = KeySpec::Range { first: 1, last: 1, step: 1 };

/// Redis's `hash-max-listpack-entries` and `hash-max-listpack-value` defaults: hashes
/// within both are scanned in one call.
const LISTPACK_MAX_ENTRIES: usize = 128;
const LISTPACK_MAX_VALUE: usize = 64;
/// Default `HSCAN` COUNT, as Redis.
/// Most elements HRANDFIELD returns for a negative count.
pub const MAX_RANDOM_REPEATS: u64 = 1 << 20;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    since: &'static str,
    complexity: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec { name, arity, flags, keys: ONE_KEY, group: Group::Hash, summary, since, complexity, handler }
}

pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "hset",
        -4,
        WRITE | DENYOOM | FAST,
        "Creates or modifies the value of a field in a hash.",
        "2.0.0",
        "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.",
        Handler::Write(hset),
    ),
    spec(
        "hsetnx",
        4,
        WRITE | DENYOOM | FAST,
        "Sets the value of a field in a hash only when the field doesn't exist.",
        "2.0.0",
        "O(1)",
        Handler::Write(hsetnx),
    ),
    spec("hget", 3, READONLY | FAST, "Returns the value of a field in a hash.", "2.0.0", "O(1)", Handler::Direct(hget)),
    spec(
        "hmget",
        -3,
        READONLY | FAST,
        "Returns the values of all fields in a hash.",
        "2.0.0",
        "O(N) where N is the number of fields being requested.",
        Handler::Direct(hmget),
    ),
    spec(
        "hmset",
        -4,
        WRITE | DENYOOM | FAST,
        "Sets the values of multiple fields.",
        "2.0.0",
        "O(N) where N is the number of fields being set.",
        Handler::Direct(hmset),
    ),
    spec(
        "hgetall",
        2,
        READONLY,
        "Returns all fields and values in a hash.",
        "2.0.0",
        "O(N) where N is the size of the hash.",
        Handler::Direct(hgetall),
    ),
    spec(
        "hdel",
        -3,
        WRITE | FAST,
        "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
        "2.0.0",
        "O(N) where N is the number of fields to be removed.",
        Handler::Write(hdel),
    ),
    spec("hlen", 2, READONLY | FAST, "Returns the number of fields in a hash.", "2.0.0", "O(1)", Handler::Direct(hlen)),
    spec(
        "hexists",
        3,
        READONLY | FAST,
        "Determines whether a field exists in a hash.",
        "2.0.0",
        "O(1)",
        Handler::Direct(hexists),
    ),
    spec(
        "hincrby",
        4,
        WRITE | DENYOOM | FAST,
        "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
        "2.0.0",
        "O(1)",
        Handler::Write(hincrby),
    ),
    spec(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
        "2.6.0",
        "O(1)",
        Handler::Write(hincrbyfloat),
    ),
    spec(
        "hkeys",
        2,
        READONLY,
        "Returns all fields in a hash.",
        "2.0.0",
        "O(N) where N is the size of the hash.",
        Handler::Direct(hkeys),
    ),
    spec(
        "hvals",
        2,
        READONLY,
        "Returns all values in a hash.",
        "2.0.0",
        "O(N) where N is the size of the hash.",
        Handler::Direct(hvals),
    ),
    spec(
        "hstrlen",
        3,
        READONLY | FAST,
        "Returns the length of the value of a field.",
        "3.2.0",
        "O(1)",
        Handler::Direct(hstrlen),
    ),
    spec(
        "hscan",
        -3,
        READONLY,
        "Iterates over fields and values of a hash.",
        "2.8.0",
        "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        Handler::Direct(hscan),
    ),
    spec(
        "hrandfield",
        -2,
        READONLY,
        "Returns one or more random fields from a hash.",
        "6.2.0",
        "O(N) where N is the number of fields returned",
        Handler::Direct(hrandfield),
    ),
];

/// Runs `f` on the hash under `key`, as [`Ctx::read_typed`].
fn read_hash(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(&mut ReplyWriter, Option<&HashValue>) -> CmdResult<()>) {
    ctx.read_typed(
        key,
        |v| match v {
            Value::Hash(x) => Some(&**x),
            _ => None,
        },
        f,
    );
}

/// The field/value pairs of HSET and HMSET; an odd count is an arity error.
fn pairs(args: &[Bytes], cmd: &str) -> CmdResult<Vec<(Bytes, Bytes)>> {
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::msg(format!("ERR wrong number of arguments for '{cmd}' command")));
    }
    Ok(args[2..].chunks_exact(2).map(|c| (c[0].clone(), c[1].clone())).collect())
}

fn hset(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::HSet { key: args[1].clone(), pairs: pairs(args, "hset")?, nx: false })
}

fn hsetnx(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::HSet { key: args[1].clone(), pairs: vec![(args[2].clone(), args[3].clone())], nx: true })
}

/// HMSET is HSET answering OK; it applies through the same write seam.
fn hmset(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let op = match pairs(args, "hmset") {
        Ok(pairs) => Op::HSet { key: args[1].clone(), pairs, nx: false },
        Err(e) => return ctx.fail(e),
    };
    ctx.write_then(op, |conn, out, o| match o {
        Output::Err(e) => super::fail(conn, out, CmdError::from(e)),
        _ => out.ok(),
    });
}

fn hdel(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::HDel { key: args[1].clone(), fields: args[2..].to_vec() })
}

fn hincrby(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let delta = arg_i64(&args[3])?;
    Ok(Op::HIncrBy { key: args[1].clone(), field: args[2].clone(), delta })
}

fn hincrbyfloat(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let delta = arg_f64(&args[3])?;
    if !delta.is_finite() {
        return Err(CmdError::msg("ERR value is NaN or Infinity"));
    }
    Ok(Op::HIncrByFloat { key: args[1].clone(), field: args[2].clone(), delta })
}

fn hget(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let field = &args[2];
    read_hash(ctx, &args[1], |out, h| {
        match h.and_then(|h| h.get(field)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
        Ok(())
    });
}

fn hmget(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let fields = &args[2..];
    read_hash(ctx, &args[1], |out, h| {
        out.array(fields.len());
        for f in fields {
            match h.and_then(|h| h.get(f)) {
                Some(v) => out.bulk(v),
                None => out.null(),
            }
        }
        Ok(())
    });
}

fn hgetall(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    read_hash(ctx, &args[1], |out, h| {
        let Some(h) = h else {
            out.map(0);
            return Ok(());
        };
        out.map(h.len());
        for (f, v) in h.iter() {
            out.bulk(f);
            out.bulk(v);
        }
        Ok(())
    });
}

fn hkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    read_hash(ctx, &args[1], |out, h| {
        match h {
            Some(h) => out.bulks(h.iter().map(|(f, _)| f)),
            None => out.array(0),
        }
        Ok(())
    });
}

fn hvals(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    read_hash(ctx, &args[1], |out, h| {
        match h {
            Some(h) => out.bulks(h.iter().map(|(_, v)| v)),
            None => out.array(0),
        }
        Ok(())
    });
}

fn hlen(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    read_hash(ctx, &args[1], |out, h| {
        out.int(h.map_or(0, |h| h.len()) as i64);
        Ok(())
    });
}

fn hexists(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let field = &args[2];
    read_hash(ctx, &args[1], |out, h| {
        out.int(h.is_some_and(|h| h.contains(field)) as i64);
        Ok(())
    });
}

fn hstrlen(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let field = &args[2];
    read_hash(ctx, &args[1], |out, h| {
        out.int(h.and_then(|h| h.get(field)).map_or(0, |v| v.len()) as i64);
        Ok(())
    });
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]`. As in Redis, the cursor
/// is checked first, a missing key answers an empty scan before options are read, then
/// the type and the options are checked.
fn hscan(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let cursor = match parse_cursor(&args[2]) {
        Ok(c) => c,
        Err(e) => return ctx.fail(e),
    };
    read_hash(ctx, &args[1], |out, h| {
        let Some(h) = h else {
            empty_scan(out);
            return Ok(());
        };
        let opts = parse_collection_scan(args, true)?;
        let novalues = opts.novalues;
        let mut found: Vec<(&[u8], &[u8])> = Vec::new();
        let mut visit = |pos: usize| {
            if let Some((f, v)) = h.get_index(pos) {
                if opts.keeps(f) {
                    found.push((f, v));
                }
            }
        };
        let small =
            h.len() <= LISTPACK_MAX_ENTRIES && h.iter().all(|(f, v)| f.len().max(v.len()) <= LISTPACK_MAX_VALUE);
        let next = if small {
            (0..h.len()).for_each(&mut visit);
            0
        } else {
            scan_positions(h.len(), cursor, opts.count, visit)
        };
        out.array(2);
        out.bulk(itoa::Buffer::new().format(next).as_bytes());
        out.array(if novalues { found.len() } else { 2 * found.len() });
        for (f, v) in found {
            out.bulk(f);
            if !novalues {
                out.bulk(v);
            }
        }
        Ok(())
    });
}

/// `HRANDFIELD key [count [WITHVALUES]]`, with Redis's argument checks and shapes:
/// no count answers one field (or null); a positive count distinct fields (the whole
/// hash when it asks for at least as many); a negative count that many, repeats allowed.
fn hrandfield(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let key = &args[1];
    if args.len() == 2 {
        return read_hash(ctx, key, |out, h| {
            match h {
                Some(h) => {
                    let i = rand::rng().random_range(0..h.len().max(1));
                    match h.get_index(i) {
                        Some((f, _)) => out.bulk(f),
                        None => out.null(),
                    }
                }
                None => out.null(),
            }
            Ok(())
        });
    }
    let request = match parse_random_count(args) {
        Ok(r) => r,
        Err(e) => return ctx.fail(e),
    };
    read_hash(ctx, key, |out, h| {
        let Some(h) = h else {
            out.array(0);
            return Ok(());
        };
        let (count, withvalues) = request;
        let size = h.len();
        let mut rng = rand::rng();
        if count < 0 {
            // Bounded by MAX_RANDOM_REPEATS in parse_random_count.
            let n = count.unsigned_abs() as usize;
            write_fields(out, h, (0..n).map(|_| rng.random_range(0..size.max(1))), n, withvalues);
        } else if count as u64 >= size as u64 {
            write_fields(out, h, 0..size, size, withvalues);
        } else {
            let n = count as usize;
            let picked = rand::seq::index::sample(&mut rng, size, n);
            write_fields(out, h, picked.iter(), n, withvalues);
        }
        Ok(())
    });
}

/// The count and WITHVALUES of HRANDFIELD, checked before the key is looked up.
fn parse_random_count(args: &[Bytes]) -> CmdResult<(i64, bool)> {
    let count = arg_i64(&args[2])?;
    if count == i64::MIN {
        return Err(CmdError::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let withvalues = match &args[3..] {
        [] => false,
        [w] if is(w, "WITHVALUES") => true,
        _ => return Err(CmdError::SYNTAX),
    };
    // Redis refuses what would overflow count * 2; Prism also bounds repeats.
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(CmdError::msg("ERR value is out of range"));
    }
    if count < 0 && count.unsigned_abs() > MAX_RANDOM_REPEATS {
        return Err(CmdError::msg("ERR value is out of range"));
    }
    Ok((count, withvalues))
}

/// Writes `n` fields at `positions`, with values if asked: a flat array in RESP2, an
/// array of [field, value] pairs in RESP3.
fn write_fields(
    out: &mut ReplyWriter,
    h: &HashValue,
    positions: impl Iterator<Item = usize>,
    n: usize,
    withvalues: bool,
) {
    let pairs = withvalues && out.is_resp3();
    out.array(if withvalues && !pairs { 2 * n } else { n });
    for pos in positions.take(n) {
        let (f, v) = h.get_index(pos).unwrap_or((&[], &[]));
        if pairs {
            out.array(2);
        }
        out.bulk(f);
        if withvalues {
            out.bulk(v);
        }
    }
}
