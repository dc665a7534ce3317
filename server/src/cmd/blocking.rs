//! Blocking commands: BZPOPMIN BZPOPMAX BZMPOP (and, with lists, BLPOP BRPOP BLMOVE
//! BRPOPLPUSH BLMPOP).
//!
//! A blocking command first tries to serve itself like its non-blocking form. When every
//! key is empty it sets `conn.blocked` (keys, deadline, timeout reply) and writes nothing;
//! the connection (`conn.rs`) then waits for a write to one of the keys and runs the
//! command again, or answers the timeout reply. Inside EXEC, `multi.rs` answers the
//! timeout reply at once, as Redis does.
//!
//! Invariants:
//! - A pop is one ordinary write, so the element a woken client receives was removed
//!   exactly once.
//! - A retry writes only after a read saw one of its keys exist (collections are never
//!   stored empty): writes wake watchers of their keys, so blocked clients retrying with
//!   no-op writes would wake each other for ever.

use std::time::Duration;

use bytes::Bytes;
use prism_engine::list::{End, ListOp};
use prism_engine::zset::ZSetOp;
use prism_engine::{Op, Output};

use super::{arg_f64, is, parse_mpop, CmdError, CmdResult, Ctx};
use crate::conn::{Blocked, ConnState, TimeoutReply};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const fn blocking(
    name: &'static str,
    arity: i32,
    keys: KeySpec,
    group: Group,
    summary: &'static str,
    since: &'static str,
    f: fn(&mut Ctx<'_>, &[Bytes]),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags: WRITE | BLOCKING,
        keys,
        group,
        summary,
        since,
        complexity: "O(log(N)) with N being the number of elements in the sorted set.",
        handler: Handler::Direct(f),
    }
}

/// All arguments but the command name and the trailing timeout are keys.
const KEYS_THEN_TIMEOUT: KeySpec = KeySpec::Range { first: 1, last: -2, step: 1 };

pub const COMMANDS: &[CommandSpec] = &[
    blocking("blpop", -3, KEYS_THEN_TIMEOUT, Group::List, "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", "2.0.0", blpop),
    blocking("brpop", -3, KEYS_THEN_TIMEOUT, Group::List, "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", "2.0.0", brpop),
    blocking("blmove", 6, KeySpec::Range { first: 1, last: 2, step: 1 }, Group::List, "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", "6.2.0", blmove),
    blocking("brpoplpush", 4, KeySpec::Range { first: 1, last: 2, step: 1 }, Group::List, "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", "2.2.0", brpoplpush),
    blocking("blmpop", -5, KeySpec::Keynum { numkeys_index: 2, first: 3, step: 1 }, Group::List, "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", "7.0.0", blmpop),
    blocking(
        "bzpopmin",
        -3,
        KEYS_THEN_TIMEOUT,
        Group::SortedSet,
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
        "5.0.0",
        bzpopmin,
    ),
    blocking(
        "bzpopmax",
        -3,
        KEYS_THEN_TIMEOUT,
        Group::SortedSet,
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.",
        "5.0.0",
        bzpopmax,
    ),
    blocking(
        "bzmpop",
        -5,
        KeySpec::Keynum { numkeys_index: 2, first: 3, step: 1 },
        Group::SortedSet,
        "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last member was popped.",
        "7.0.0",
        bzmpop,
    ),
];

/// A timeout argument in seconds (fractions allowed); `None` waits for ever.
pub fn parse_timeout(arg: &[u8]) -> CmdResult<Option<tokio::time::Instant>> {
    let secs = arg_f64(arg).map_err(|_| CmdError::msg("ERR timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    if secs == 0.0 {
        return Ok(None);
    }
    let d = Duration::try_from_secs_f64(secs).map_err(|_| CmdError::msg("ERR timeout is out of range"))?;
    Ok(tokio::time::Instant::now().checked_add(d))
}

/// True if any key exists: collections are never stored empty, so an existing key either
/// has something to pop or is of the wrong type (which the pop then reports).
pub fn any_exists(ctx: &Ctx<'_>, keys: &[Bytes]) -> bool {
    let now = ctx.now_ms();
    keys.iter().any(|k| ctx.node.keyspace.get(k, now, |e| e.is_some()))
}

/// Marks the connection blocked on `keys`.
pub fn block(conn: &mut ConnState, keys: &[Bytes], deadline: Option<tokio::time::Instant>, on_timeout: TimeoutReply) {
    conn.blocked = Some(Blocked { keys: keys.to_vec(), deadline, on_timeout });
}

fn bzpop(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) {
    let deadline = match parse_timeout(&args[args.len() - 1]) {
        Ok(d) => d,
        Err(e) => return ctx.out.error(&e.0),
    };
    let keys = &args[1..args.len() - 1];
    if !any_exists(ctx, keys) {
        return block(ctx.conn, keys, deadline, TimeoutReply::NullArray);
    }
    let keys = keys.to_vec();
    let op = Op::SortedSets(ZSetOp::MPop { keys: keys.clone(), max, count: 1 });
    ctx.write_then(op, move |conn, out, o| match o {
        // [key, [[member, score]]] -> [key, member, score]
        Output::Array(kv) => match kv.as_slice() {
            [key, Output::Array(items)] => match items.first() {
                Some(Output::Array(pair)) if pair.len() == 2 => {
                    out.array(3);
                    out.output(key);
                    out.output(&pair[0]);
                    out.output(&pair[1]);
                }
                _ => block(conn, &keys, deadline, TimeoutReply::NullArray),
            },
            _ => block(conn, &keys, deadline, TimeoutReply::NullArray),
        },
        Output::Err(e) => out.error(&e.to_string()),
        // Emptied by someone else between the read and the write: wait again.
        _ => block(conn, &keys, deadline, TimeoutReply::NullArray),
    });
}

fn bzpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    bzpop(ctx, args, false);
}

fn bzpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    bzpop(ctx, args, true);
}

/// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`.
fn bzmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let parsed = parse_timeout(&args[1]).and_then(|deadline| {
        let (keys, max, count) = parse_mpop(args, 2, super::zset::min_or_max)?;
        Ok((deadline, keys.to_vec(), max, count))
    });
    let (deadline, keys, max, count) = match parsed {
        Ok(p) => p,
        Err(e) => return ctx.out.error(&e.0),
    };
    if !any_exists(ctx, &keys) {
        return block(ctx.conn, &keys, deadline, TimeoutReply::NullArray);
    }
    ctx.write_then(Op::SortedSets(ZSetOp::MPop { keys: keys.clone(), max, count }), move |conn, out, o| match o {
        Output::Nil => block(conn, &keys, deadline, TimeoutReply::NullArray),
        o => out.output(&o),
    });
}

fn bpop(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) {
    let deadline = match parse_timeout(&args[args.len() - 1]) {
        Ok(d) => d,
        Err(e) => return ctx.out.error(&e.0),
    };
    let keys = &args[1..args.len() - 1];
    if !any_exists(ctx, keys) {
        return block(ctx.conn, keys, deadline, TimeoutReply::NullArray);
    }
    let keys = keys.to_vec();
    ctx.write_then(Op::Lists(ListOp::MPop { keys: keys.clone(), end, count: 1 }), move |conn, out, o| match o {
        // [key, [element]] -> [key, element]
        Output::Array(kv) => match kv.as_slice() {
            [key, Output::Array(items)] if items.len() == 1 => {
                out.array(2);
                out.output(key);
                out.output(&items[0]);
            }
            _ => block(conn, &keys, deadline, TimeoutReply::NullArray),
        },
        Output::Err(e) => out.error(&e.to_string()),
        _ => block(conn, &keys, deadline, TimeoutReply::NullArray),
    });
}

fn blpop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    bpop(ctx, args, End::Left);
}

fn brpop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    bpop(ctx, args, End::Right);
}

fn end_of(arg: &[u8]) -> CmdResult<End> {
    if is(arg, "LEFT") {
        Ok(End::Left)
    } else if is(arg, "RIGHT") {
        Ok(End::Right)
    } else {
        Err(CmdError::SYNTAX)
    }
}

fn bmove(ctx: &mut Ctx<'_>, src: &Bytes, dst: &Bytes, from: End, to: End, timeout: &[u8]) {
    let deadline = match parse_timeout(timeout) {
        Ok(d) => d,
        Err(e) => return ctx.out.error(&e.0),
    };
    let keys = [src.clone()];
    if !any_exists(ctx, &keys) {
        return block(ctx.conn, &keys, deadline, TimeoutReply::Null);
    }
    ctx.write_then(
        Op::Lists(ListOp::Move { src: src.clone(), dst: dst.clone(), from, to }),
        move |conn, out, o| match o {
            Output::Nil => block(conn, &keys, deadline, TimeoutReply::Null),
            o => out.output(&o),
        },
    );
}

fn blmove(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match (end_of(&args[3]), end_of(&args[4])) {
        (Ok(from), Ok(to)) => bmove(ctx, &args[1], &args[2], from, to, &args[5]),
        _ => ctx.out.error(&CmdError::SYNTAX.0),
    }
}

fn brpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    bmove(ctx, &args[1], &args[2], End::Right, End::Left, &args[3]);
}

/// `BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]`.
fn blmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let parsed = parse_timeout(&args[1]).and_then(|deadline| {
        let (keys, end, count) = parse_mpop(args, 2, end_of)?;
        Ok((deadline, keys.to_vec(), end, count))
    });
    let (deadline, keys, end, count) = match parsed {
        Ok(p) => p,
        Err(e) => return ctx.out.error(&e.0),
    };
    if !any_exists(ctx, &keys) {
        return block(ctx.conn, &keys, deadline, TimeoutReply::NullArray);
    }
    ctx.write_then(Op::Lists(ListOp::MPop { keys: keys.clone(), end, count }), move |conn, out, o| match o {
        Output::Nil => block(conn, &keys, deadline, TimeoutReply::NullArray),
        o => out.output(&o),
    });
}
