//! List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LRANGE LLEN LINDEX LSET LREM LTRIM
//! LINSERT LPOS LMOVE RPOPLPUSH LMPOP.
//!
//! Invariants:
//! - Writes become [`ListOp`]s; the engine deletes a list with its last element, so no
//!   command here ever sees an empty list.
//! - Arguments are checked in Redis's order, because the order decides which error a bad
//!   request gets: options first for most commands, but LINDEX and LSET look the key up
//!   before parsing the index (so a missing key wins over a bad index). A bad request
//!   changes nothing.
//! - Pops with a count and LMPOP answer a missing key with a null *array* (`*-1` in
//!   RESP2), so they render their op's output here instead of through the generic write
//!   path, which knows only the bulk null.
//! - Reads run on the slot's read lock and write their reply while holding it; no reply
//!   is sized by a client number before it is bounded by the list's length.

use bytes::Bytes;
use prism_engine::list::{Elem, End, ListOp, ListValue};
use prism_engine::{Op, Output, Value};

use super::{arg_i64, is, CmdError, CmdResult, Ctx};
use crate::resp::ReplyWriter;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const ONE_KEY: KeySpec = KeySpec::Range { first: 1, last: 1, step: 1 };
const TWO_KEYS: KeySpec = KeySpec::Range { first: 1, last: 2, step: 1 };
const COUNTED_KEYS: KeySpec = KeySpec::Keynum { numkeys_index: 1, first: 2, step: 1 };

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
    CommandSpec { name, arity, flags, keys, group: Group::List, summary, since, complexity, handler }
}

const PUSH_COMPLEXITY: &str =
    "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.";
const POP_COMPLEXITY: &str = "O(N) where N is the number of elements returned";

pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "lpush",
        -3,
        WRITE | DENYOOM | FAST,
        ONE_KEY,
        "Prepends one or more elements to a list. Creates the key if it doesn't exist.",
        "1.0.0",
        PUSH_COMPLEXITY,
        Handler::Write(lpush),
    ),
    spec(
        "rpush",
        -3,
        WRITE | DENYOOM | FAST,
        ONE_KEY,
        "Appends one or more elements to a list. Creates the key if it doesn't exist.",
        "1.0.0",
        PUSH_COMPLEXITY,
        Handler::Write(rpush),
    ),
    spec(
        "lpushx",
        -3,
        WRITE | DENYOOM | FAST,
        ONE_KEY,
        "Prepends one or more elements to a list only when the list exists.",
        "2.2.0",
        PUSH_COMPLEXITY,
        Handler::Write(lpushx),
    ),
    spec(
        "rpushx",
        -3,
        WRITE | DENYOOM | FAST,
        ONE_KEY,
        "Appends an element to a list only when the list exists.",
        "2.2.0",
        PUSH_COMPLEXITY,
        Handler::Write(rpushx),
    ),
    spec(
        "lpop",
        -2,
        WRITE | FAST,
        ONE_KEY,
        "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.",
        "1.0.0",
        POP_COMPLEXITY,
        Handler::Direct(lpop),
    ),
    spec(
        "rpop",
        -2,
        WRITE | FAST,
        ONE_KEY,
        "Returns and removes the last elements of the list. Deletes the list if the last element was popped.",
        "1.0.0",
        POP_COMPLEXITY,
        Handler::Direct(rpop),
    ),
    spec(
        "lrange",
        4,
        READONLY,
        ONE_KEY,
        "Returns a range of elements from a list.",
        "1.0.0",
        "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.",
        Handler::Direct(lrange),
    ),
    spec("llen", 2, READONLY | FAST, ONE_KEY, "Returns the length of a list.", "1.0.0", "O(1)", Handler::Direct(llen)),
    spec(
        "lindex",
        3,
        READONLY,
        ONE_KEY,
        "Returns an element from a list by its index.",
        "1.0.0",
        "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1).",
        Handler::Direct(lindex),
    ),
    spec(
        "lset",
        4,
        WRITE | DENYOOM,
        ONE_KEY,
        "Sets the value of an element in a list by its index.",
        "1.0.0",
        "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).",
        Handler::Direct(lset),
    ),
    spec(
        "lrem",
        4,
        WRITE,
        ONE_KEY,
        "Removes elements from a list. Deletes the list if the last element was removed.",
        "1.0.0",
        "O(N+M) where N is the length of the list and M is the number of elements removed.",
        Handler::Write(lrem),
    ),
    spec(
        "ltrim",
        4,
        WRITE,
        ONE_KEY,
        "Removes elements from both ends a list. Deletes the list if all elements were trimmed.",
        "1.0.0",
        "O(N) where N is the number of elements to be removed by the operation.",
        Handler::Write(ltrim),
    ),
    spec(
        "linsert",
        5,
        WRITE | DENYOOM,
        ONE_KEY,
        "Inserts an element before or after another element in a list.",
        "2.2.0",
        "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).",
        Handler::Write(linsert),
    ),
    spec(
        "lpos",
        -3,
        READONLY,
        ONE_KEY,
        "Returns the index of matching elements in a list.",
        "6.0.6",
        "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.",
        Handler::Direct(lpos),
    ),
    spec(
        "lmove",
        5,
        WRITE | DENYOOM,
        TWO_KEYS,
        "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.",
        "6.2.0",
        "O(1)",
        Handler::Write(lmove),
    ),
    spec(
        "rpoplpush",
        3,
        WRITE | DENYOOM,
        TWO_KEYS,
        "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.",
        "1.2.0",
        "O(1)",
        Handler::Write(rpoplpush),
    ),
    spec(
        "lmpop",
        -4,
        WRITE,
        COUNTED_KEYS,
        "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.",
        "7.0.0",
        "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
        Handler::Direct(lmpop),
    ),
];

fn bulk_elem(out: &mut ReplyWriter, e: Elem<'_>) {
    e.with_bytes(|b| out.bulk(b));
}

/// Applies `op` and renders its output; with `null_array`, a nil output is a null array.
fn write_op(ctx: &mut Ctx<'_>, op: ListOp, null_array: bool) {
    ctx.write_then(Op::Lists(op), move |conn, out, o| match o {
        Output::Err(e) => super::fail(conn, out, e.into()),
        Output::Nil if null_array => out.null_array(),
        o => out.output(&o),
    });
}

/// Runs `f` on the list under `key`, as [`Ctx::read_typed`].
fn read_list(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(&mut ReplyWriter, Option<&ListValue>) -> CmdResult<()>) {
    ctx.read_typed(
        key,
        |v| match v {
            Value::List(x) => Some(&**x),
            _ => None,
        },
        f,
    );
}

/// `LEFT` / `RIGHT`.
fn parse_end(arg: &[u8]) -> CmdResult<End> {
    if is(arg, "LEFT") {
        Ok(End::Left)
    } else if is(arg, "RIGHT") {
        Ok(End::Right)
    } else {
        Err(CmdError::SYNTAX)
    }
}

fn push(args: &[Bytes], end: End, only_if_exists: bool) -> CmdResult<Op> {
    Ok(Op::Lists(ListOp::Push { key: args[1].clone(), end, elements: args[2..].to_vec(), only_if_exists }))
}

fn lpush(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    push(args, End::Left, false)
}

fn rpush(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    push(args, End::Right, false)
}

fn lpushx(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    push(args, End::Left, true)
}

fn rpushx(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    push(args, End::Right, true)
}

fn lpop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    pop(ctx, args, End::Left, "lpop")
}

fn rpop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    pop(ctx, args, End::Right, "rpop")
}

/// `LPOP key [count]`: without a count one element or null; with one an array, and a
/// null array for a missing key (even for count 0, as Redis looks the key up first).
fn pop(ctx: &mut Ctx<'_>, args: &[Bytes], end: End, name: &str) {
    let count = match args {
        [_, _] => None,
        [_, _, c] => match super::arg_at_least(c, 0, "ERR value is out of range, must be positive") {
            Ok(n) => Some(n),
            Err(e) => return ctx.fail(e),
        },
        _ => return ctx.fail(CmdError::msg(format!("ERR wrong number of arguments for '{name}' command"))),
    };
    write_op(ctx, ListOp::Pop { key: args[1].clone(), end, count }, count.is_some());
}

fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let range = arg_i64(&args[2]).and_then(|s| Ok((s, arg_i64(&args[3])?)));
    let (start, stop) = match range {
        Ok(r) => r,
        Err(e) => return ctx.fail(e),
    };
    read_list(ctx, &args[1], |out, l| {
        match l {
            Some(l) => {
                let (from, n) = prism_engine::list::resolve_range(start, stop, l.len());
                out.array(n);
                l.range(from, n).for_each(|e| bulk_elem(out, e));
            }
            None => out.array(0),
        }
        Ok(())
    });
}

fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    read_list(ctx, &args[1], |out, l| {
        out.int(l.map_or(0, ListValue::len) as i64);
        Ok(())
    });
}

/// `LINDEX key index`: Redis looks the key up before parsing the index.
fn lindex(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    read_list(ctx, &args[1], |out, l| {
        let Some(l) = l else {
            out.null();
            return Ok(());
        };
        let index = arg_i64(&args[2])?;
        match prism_engine::list::resolve_index(index, l.len()).and_then(|i| l.get(i)) {
            Some(e) => bulk_elem(out, e),
            None => out.null(),
        }
        Ok(())
    });
}

/// `LSET key index element`. Redis answers a missing key (then a wrong type) before a
/// bad index, so a bad index is judged against the key with a read.
fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match arg_i64(&args[2]) {
        Ok(index) => write_op(ctx, ListOp::Set { key: args[1].clone(), index, element: args[3].clone() }, false),
        Err(e) => read_list(ctx, &args[1], |_, l| match l {
            None => Err(CmdError::msg("ERR no such key")),
            Some(_) => Err(e),
        }),
    }
}

fn lrem(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let count = arg_i64(&args[2])?;
    Ok(Op::Lists(ListOp::Rem { key: args[1].clone(), count, element: args[3].clone() }))
}

fn ltrim(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let (start, stop) = (arg_i64(&args[2])?, arg_i64(&args[3])?);
    Ok(Op::Lists(ListOp::Trim { key: args[1].clone(), start, stop }))
}

fn linsert(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let after = if is(&args[2], "AFTER") {
        true
    } else if is(&args[2], "BEFORE") {
        false
    } else {
        return Err(CmdError::SYNTAX);
    };
    Ok(Op::Lists(ListOp::Insert { key: args[1].clone(), after, pivot: args[3].clone(), element: args[4].clone() }))
}

fn lmove(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let (from, to) = (parse_end(&args[3])?, parse_end(&args[4])?);
    Ok(Op::Lists(ListOp::Move { src: args[1].clone(), dst: args[2].clone(), from, to }))
}

fn rpoplpush(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Lists(ListOp::Move { src: args[1].clone(), dst: args[2].clone(), from: End::Right, to: End::Left }))
}

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`, parsed as Redis does: the
/// count of keys, then the end right after the keys, then options.
fn lmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match parse_lmpop(args) {
        Ok(op) => write_op(ctx, op, true),
        Err(e) => ctx.fail(e),
    }
}

fn parse_lmpop(args: &[Bytes]) -> CmdResult<ListOp> {
    let (keys, end, count) = super::parse_mpop(args, 1, parse_end)?;
    Ok(ListOp::MPop { keys: keys.to_vec(), end, count })
}

/// The options of LPOS, parsed before the key is looked up.
struct PosQuery {
    /// Which match is the first reported: 1 the first from the head, -1 the first from
    /// the tail.
    rank: i64,
    /// `None`: one position or null; `Some(0)`: all matches; `Some(n)`: up to n.
    count: Option<usize>,
    /// Elements compared at most, 0 meaning all.
    maxlen: usize,
}

fn parse_lpos(args: &[Bytes]) -> CmdResult<PosQuery> {
    let mut q = PosQuery { rank: 1, count: None, maxlen: 0 };
    let mut i = 3;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else { return Err(CmdError::SYNTAX) };
        if is(&args[i], "RANK") {
            q.rank = arg_i64(v)?;
            if q.rank == i64::MIN {
                return Err(CmdError::msg(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            if q.rank == 0 {
                return Err(CmdError::msg(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(&args[i], "COUNT") {
            q.count = Some(super::arg_at_least(v, 0, "ERR COUNT can't be negative")?);
        } else if is(&args[i], "MAXLEN") {
            q.maxlen = super::arg_at_least(v, 0, "ERR MAXLEN can't be negative")?;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 2;
    }
    Ok(q)
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`.
fn lpos(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let q = match parse_lpos(args) {
        Ok(q) => q,
        Err(e) => return ctx.fail(e),
    };
    let element = &args[2];
    read_list(ctx, &args[1], |out, l| {
        let Some(l) = l else {
            match q.count {
                Some(_) => out.array(0),
                None => out.null(),
            }
            return Ok(());
        };
        let len = l.len();
        let limit = if q.maxlen == 0 { len } else { q.maxlen.min(len) };
        let skip = usize::try_from(q.rank.unsigned_abs() - 1).unwrap_or(usize::MAX);
        let want = match q.count {
            None => 1,
            Some(0) => usize::MAX,
            Some(n) => n,
        };
        let matches = |it: &mut dyn Iterator<Item = Elem<'_>>| -> Vec<usize> {
            it.take(limit)
                .enumerate()
                .filter(|(_, e)| e.is(element))
                .skip(skip)
                .take(want)
                .map(|(i, _)| if q.rank > 0 { i } else { len - 1 - i })
                .collect()
        };
        let found = if q.rank > 0 { matches(&mut l.iter()) } else { matches(&mut l.iter_rev()) };
        match q.count {
            Some(_) => {
                out.array(found.len());
                found.iter().for_each(|&i| out.int(i as i64));
            }
            None => match found.first() {
                Some(&i) => out.int(i as i64),
                None => out.null(),
            },
        }
        Ok(())
    });
}
