//! Set commands: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE
//! SINTER SINTERCARD SUNION SDIFF SINTERSTORE SUNIONSTORE SDIFFSTORE SSCAN.
//!
//! Invariants:
//! - Writes become `Op::Sets(SetOp::..)`; the engine removes a set with its last member,
//!   so no command here ever sees an empty set. SPOP's random choice is a seed drawn here
//!   and carried in the op, so apply stays deterministic.
//! - Reads (SRANDMEMBER included: choosing members at random changes nothing) run under
//!   the read locks of their keys' slots and write their reply while holding them, so a
//!   reply reflects one state; multi-key reads lock all their slots at once.
//! - Shapes follow Redis 7: SMEMBERS, SINTER, SUNION, SDIFF and SPOP with a count reply a
//!   RESP3 set; SRANDMEMBER and SMISMEMBER an array.
//! - `SSCAN` walks member positions from the end towards the start and its cursor is the
//!   number of positions still to visit (`prism_engine::keyspace::scan_positions`), so a
//!   member present for the whole scan is returned at least once. A set small enough to
//!   be an intset or a listpack in Redis is returned whole with cursor 0, as Redis does.
//! - SRANDMEMBER with a negative count is bounded at [`MAX_RANDOM_REPEATS`] elements,
//!   as HRANDFIELD: beyond it Prism answers `ERR value is out of range`.

use bytes::Bytes;
use prism_engine::keyspace::scan_positions;
use prism_engine::num::parse_i64;
use prism_engine::set::{combine, inter_card, Algebra, SetOp, SetValue};
use prism_engine::{Entry, Op, Output, Value};
use rand::Rng;

use super::hash::MAX_RANDOM_REPEATS;
use super::keys::{empty_scan, parse_collection_scan, parse_cursor};
use super::{arg_i64, is, CmdError, CmdResult, Ctx};
use crate::resp::ReplyWriter;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const ONE_KEY: KeySpec = KeySpec::Range { first: 1, last: 1, step: 1 };
const TWO_KEYS: KeySpec = KeySpec::Range { first: 1, last: 2, step: 1 };
const ALL_KEYS: KeySpec = KeySpec::Range { first: 1, last: -1, step: 1 };
const COUNTED_KEYS: KeySpec = KeySpec::Keynum { numkeys_index: 1, first: 2, step: 1 };

/// Redis's `set-max-intset-entries`: a set of at most this many integers is an intset.
const INTSET_MAX_ENTRIES: usize = 512;
/// Redis 7.2's `set-max-listpack-entries` and `set-max-listpack-value` defaults.
const LISTPACK_MAX_ENTRIES: usize = 128;
const LISTPACK_MAX_VALUE: usize = 64;

const INTER: &str = "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.";
const ALL_SETS: &str = "O(N) where N is the total number of elements in all given sets.";
const RANDOM: &str =
    "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.";

#[allow(clippy::too_many_arguments)]
const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    summary: &'static str,
    since: &'static str,
    complexity: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec { name, arity, flags, keys, group: Group::Set, summary, since, complexity, handler }
}

pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "sadd",
        -3,
        WRITE | DENYOOM | FAST,
        ONE_KEY,
        "Adds one or more members to a set. Creates the key if it doesn't exist.",
        "1.0.0",
        "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        Handler::Write(sadd),
    ),
    spec(
        "srem",
        -3,
        WRITE | FAST,
        ONE_KEY,
        "Removes one or more members from a set. Deletes the set if the last member was removed.",
        "1.0.0",
        "O(N) where N is the number of members to be removed.",
        Handler::Write(srem),
    ),
    spec(
        "smembers",
        2,
        READONLY,
        ONE_KEY,
        "Returns all members of a set.",
        "1.0.0",
        "O(N) where N is the set cardinality.",
        Handler::Direct(smembers),
    ),
    spec(
        "sismember",
        3,
        READONLY | FAST,
        ONE_KEY,
        "Determines whether a member belongs to a set.",
        "1.0.0",
        "O(1)",
        Handler::Direct(sismember),
    ),
    spec(
        "smismember",
        -3,
        READONLY | FAST,
        ONE_KEY,
        "Determines whether multiple members belong to a set.",
        "6.2.0",
        "O(N) where N is the number of elements being checked for membership",
        Handler::Direct(smismember),
    ),
    spec("scard", 2, READONLY | FAST, ONE_KEY, "Returns the number of members in a set.", "1.0.0", "O(1)", Handler::Direct(scard)),
    spec(
        "spop",
        -2,
        WRITE | FAST,
        ONE_KEY,
        "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.",
        "1.0.0",
        "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.",
        Handler::Direct(spop),
    ),
    spec(
        "srandmember",
        -2,
        READONLY,
        ONE_KEY,
        "Get one or multiple random members from a set",
        "1.0.0",
        RANDOM,
        Handler::Direct(srandmember),
    ),
    spec(
        "smove",
        4,
        WRITE | FAST,
        TWO_KEYS,
        "Moves a member from one set to another.",
        "1.0.0",
        "O(1)",
        Handler::Write(smove),
    ),
    spec("sinter", -2, READONLY, ALL_KEYS, "Returns the intersect of multiple sets.", "1.0.0", INTER, Handler::Direct(sinter)),
    spec(
        "sintercard",
        -3,
        READONLY,
        COUNTED_KEYS,
        "Returns the number of members of the intersect of multiple sets.",
        "7.0.0",
        INTER,
        Handler::Direct(sintercard),
    ),
    spec(
        "sinterstore",
        -3,
        WRITE | DENYOOM,
        ALL_KEYS,
        "Stores the intersect of multiple sets in a key.",
        "1.0.0",
        INTER,
        Handler::Write(sinterstore),
    ),
    spec("sunion", -2, READONLY, ALL_KEYS, "Returns the union of multiple sets.", "1.0.0", ALL_SETS, Handler::Direct(sunion)),
    spec(
        "sunionstore",
        -3,
        WRITE | DENYOOM,
        ALL_KEYS,
        "Stores the union of multiple sets in a key.",
        "1.0.0",
        ALL_SETS,
        Handler::Write(sunionstore),
    ),
    spec("sdiff", -2, READONLY, ALL_KEYS, "Returns the difference of multiple sets.", "1.0.0", ALL_SETS, Handler::Direct(sdiff)),
    spec(
        "sdiffstore",
        -3,
        WRITE | DENYOOM,
        ALL_KEYS,
        "Stores the difference of multiple sets in a key.",
        "1.0.0",
        ALL_SETS,
        Handler::Write(sdiffstore),
    ),
    spec(
        "sscan",
        -3,
        READONLY,
        ONE_KEY,
        "Iterates over members of a set.",
        "2.8.0",
        "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        Handler::Direct(sscan),
    ),
];

/// Runs `f` on the set under `key`, as [`Ctx::read_typed`].
fn read_set(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(&mut ReplyWriter, Option<&SetValue>) -> CmdResult<()>) {
    ctx.read_typed(
        key,
        |v| match v {
            Value::Set(x) => Some(&**x),
            _ => None,
        },
        f,
    );
}

/// Runs `f` on the sets under `keys` (in order; `None` for a missing key), all read under
/// one set of slot locks. Any key of another type is WRONGTYPE and `f` does not run.
fn read_sets(ctx: &mut Ctx<'_>, keys: &[Bytes], f: impl FnOnce(&mut ReplyWriter, &[Option<&SetValue>])) {
    let now = ctx.now_ms();
    let out = &mut *ctx.out;
    let locked = ctx.node.keyspace.read_many(keys.iter());
    let mut sets = Vec::with_capacity(keys.len());
    let mut wrongtype = false;
    for k in keys {
        match locked.get(k, now) {
            None => sets.push(None),
            Some(Entry { value: Value::Set(s), .. }) => sets.push(Some(&**s)),
            Some(_) => {
                wrongtype = true;
                break;
            }
        }
    }
    if !wrongtype {
        f(out, &sets);
    }
    let hits = sets.iter().filter(|s| s.is_some()).count() + wrongtype as usize;
    let misses = sets.len() + wrongtype as usize - hits;
    drop(locked);
    ctx.conn.hits += hits as u64;
    ctx.conn.misses += misses as u64;
    if wrongtype {
        ctx.fail(CmdError::WRONGTYPE);
    }
}

fn sadd(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Sets(SetOp::Add { key: args[1].clone(), members: args[2..].to_vec() }))
}

fn srem(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Sets(SetOp::Rem { key: args[1].clone(), members: args[2..].to_vec() }))
}

fn smove(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Sets(SetOp::Move { src: args[1].clone(), dst: args[2].clone(), member: args[3].clone() }))
}

fn store(algebra: Algebra, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Sets(SetOp::Store { algebra, dst: args[1].clone(), keys: args[2..].to_vec() }))
}

fn sinterstore(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    store(Algebra::Inter, args)
}

fn sunionstore(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    store(Algebra::Union, args)
}

fn sdiffstore(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    store(Algebra::Diff, args)
}

/// `SPOP key [count]`. A direct handler rather than a plain write because the reply with
/// a count is a RESP3 *set*, a shape an op's output does not carry.
fn spop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let count = match args.len() {
        2 => None,
        // Redis's getPositiveLong: one message for a non-integer and a negative count.
        3 => match parse_i64(&args[2]).and_then(|n| u64::try_from(n).ok()) {
            Some(n) => Some(n),
            None => return ctx.fail(CmdError::msg("ERR value is out of range, must be positive")),
        },
        _ => return ctx.fail(CmdError::SYNTAX),
    };
    let seed = rand::rng().random();
    ctx.write_then(Op::Sets(SetOp::Pop { key: args[1].clone(), count, seed }), |conn, out, o| match o {
        Output::Err(e) => super::fail(conn, out, e.into()),
        Output::Array(items) => {
            out.set(items.len());
            items.iter().for_each(|i| out.output(i));
        }
        other => out.output(&other),
    });
}

fn smembers(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    read_set(ctx, &args[1], |out, s| {
        write_members(out, s.into_iter().flat_map(|s| s.iter()), s.map_or(0, SetValue::len));
        Ok(())
    });
}

fn write_members<'a>(out: &mut ReplyWriter, members: impl Iterator<Item = &'a [u8]>, len: usize) {
    out.set(len);
    members.for_each(|m| out.bulk(m));
}

fn sismember(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let member = &args[2];
    read_set(ctx, &args[1], |out, s| {
        out.int(s.is_some_and(|s| s.contains(member)) as i64);
        Ok(())
    });
}

fn smismember(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let members = &args[2..];
    read_set(ctx, &args[1], |out, s| {
        out.array(members.len());
        for m in members {
            out.int(s.is_some_and(|s| s.contains(m)) as i64);
        }
        Ok(())
    });
}

fn scard(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    read_set(ctx, &args[1], |out, s| {
        out.int(s.map_or(0, SetValue::len) as i64);
        Ok(())
    });
}

fn algebra_read(ctx: &mut Ctx<'_>, algebra: Algebra, keys: &[Bytes]) {
    read_sets(ctx, keys, |out, sets| {
        let members = combine(algebra, sets);
        write_members(out, members.iter().copied(), members.len());
    });
}

fn sinter(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    algebra_read(ctx, Algebra::Inter, &args[1..]);
}

fn sunion(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    algebra_read(ctx, Algebra::Union, &args[1..]);
}

fn sdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    algebra_read(ctx, Algebra::Diff, &args[1..]);
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`, with Redis's checks in Redis's order.
fn sintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match parse_sintercard(args) {
        Ok((keys, limit)) => read_sets(ctx, keys, |out, sets| out.int(inter_card(sets, limit) as i64)),
        Err(e) => ctx.fail(e),
    }
}

fn parse_sintercard(args: &[Bytes]) -> CmdResult<(&[Bytes], usize)> {
    let numkeys =
        parse_i64(&args[1]).filter(|&n| n > 0).ok_or_else(|| CmdError::msg("ERR numkeys should be greater than 0"))?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > args.len() - 2 {
        return Err(CmdError::msg("ERR Number of keys can't be greater than number of args"));
    }
    let keys = &args[2..2 + numkeys];
    let mut limit = 0;
    let mut i = 2 + numkeys;
    while i < args.len() {
        match args.get(i + 1) {
            Some(v) if is(&args[i], "LIMIT") => {
                let n = parse_i64(v).filter(|&n| n >= 0).ok_or_else(|| CmdError::msg("ERR LIMIT can't be negative"))?;
                limit = usize::try_from(n).unwrap_or(usize::MAX);
            }
            _ => return Err(CmdError::SYNTAX),
        }
        i += 2;
    }
    Ok((keys, limit))
}

/// `SRANDMEMBER key [count]`, with Redis's argument checks and shapes: no count answers
/// one member (or null); a positive count distinct members (the whole set when it asks
/// for at least as many); a negative count that many, repeats allowed.
fn srandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let key = &args[1];
    let count = match args.len() {
        2 => {
            return read_set(ctx, key, |out, s| {
                match s.and_then(|s| s.get_index(rand::rng().random_range(0..s.len().max(1)))) {
                    Some(m) => out.bulk(m),
                    None => out.null(),
                }
                Ok(())
            })
        }
        3 => match parse_random_count(&args[2]) {
            Ok(c) => c,
            Err(e) => return ctx.fail(e),
        },
        _ => return ctx.fail(CmdError::SYNTAX),
    };
    read_set(ctx, key, |out, s| {
        let Some(s) = s else {
            out.array(0);
            return Ok(());
        };
        let size = s.len();
        let mut rng = rand::rng();
        let member = |i: usize| s.get_index(i).unwrap_or_default();
        if count < 0 {
            // Bounded by MAX_RANDOM_REPEATS in parse_random_count.
            let n = count.unsigned_abs() as usize;
            out.array(n);
            (0..n).for_each(|_| out.bulk(member(rng.random_range(0..size.max(1)))));
        } else if count as u64 >= size as u64 {
            out.array(size);
            s.iter().for_each(|m| out.bulk(m));
        } else {
            let picked = rand::seq::index::sample(&mut rng, size, count as usize);
            out.array(picked.len());
            picked.iter().for_each(|i| out.bulk(member(i)));
        }
        Ok(())
    });
}

/// SRANDMEMBER's count, checked before the key is looked up.
fn parse_random_count(arg: &[u8]) -> CmdResult<i64> {
    let count = arg_i64(arg)?;
    if count == i64::MIN {
        return Err(CmdError::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if count < 0 && count.unsigned_abs() > MAX_RANDOM_REPEATS {
        return Err(CmdError::msg("ERR value is out of range"));
    }
    Ok(count)
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`. As in Redis, the cursor is checked
/// first, a missing key answers an empty scan before options are read, then the type and
/// the options are checked.
fn sscan(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let cursor = match parse_cursor(&args[2]) {
        Ok(c) => c,
        Err(e) => return ctx.fail(e),
    };
    read_set(ctx, &args[1], |out, s| {
        let Some(s) = s else {
            empty_scan(out);
            return Ok(());
        };
        let opts = parse_collection_scan(args, false)?;
        let mut found: Vec<&[u8]> = Vec::new();
        let mut visit = |pos: usize| {
            if let Some(m) = s.get_index(pos) {
                if opts.keeps(m) {
                    found.push(m);
                }
            }
        };
        let next = if compact_in_redis(s) {
            (0..s.len()).for_each(&mut visit);
            0
        } else {
            scan_positions(s.len(), cursor, opts.count, visit)
        };
        out.array(2);
        out.bulk(itoa::Buffer::new().format(next).as_bytes());
        out.bulks(found.into_iter());
        Ok(())
    });
}

/// True when Redis would hold this set as an intset or a listpack, which it scans whole.
fn compact_in_redis(s: &SetValue) -> bool {
    let len = s.len();
    (len <= INTSET_MAX_ENTRIES && s.iter().all(|m| parse_i64(m).is_some()))
        || (len <= LISTPACK_MAX_ENTRIES && s.iter().all(|m| m.len() <= LISTPACK_MAX_VALUE))
}
