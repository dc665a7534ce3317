//! String commands: GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX
//! INCR DECR INCRBY DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SETRANGE.

use bytes::Bytes;
use prism_engine::{Entry, Exists, Op, TtlChange, Value, MAX_STRING_LEN};

use super::{arg_f64, arg_i64, is, CmdError, CmdResult, Ctx};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const ONE_KEY: KeySpec = KeySpec::Range { first: 1, last: 1, step: 1 };

const fn read(
    name: &'static str,
    arity: i32,
    keys: KeySpec,
    summary: &'static str,
    f: fn(&mut Ctx<'_>, &[Bytes]),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags: READONLY | FAST,
        keys,
        group: Group::String,
        summary,
        since: "1.0.0",
        complexity: "O(1)",
        handler: Handler::Direct(f),
    }
}

const fn write(
    name: &'static str,
    arity: i32,
    keys: KeySpec,
    summary: &'static str,
    f: fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult<Op>,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags: WRITE | DENYOOM,
        keys,
        group: Group::String,
        summary,
        since: "1.0.0",
        complexity: "O(1)",
        handler: Handler::Write(f),
    }
}

pub const COMMANDS: &[CommandSpec] = &[
    read("get", 2, ONE_KEY, "Returns the string value of a key.", get),
    write(
        "set",
        -3,
        ONE_KEY,
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        set,
    ),
    write("setnx", 3, ONE_KEY, "Set the string value of a key only when the key doesn't exist.", setnx),
    write(
        "setex",
        4,
        ONE_KEY,
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
        setex,
    ),
    write(
        "psetex",
        4,
        ONE_KEY,
        "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
        psetex,
    ),
    write("getset", 3, ONE_KEY, "Returns the previous string value of a key after setting it to a new value.", getset),
    write("getdel", 2, ONE_KEY, "Returns the string value of a key after deleting the key.", getdel),
    write("getex", -2, ONE_KEY, "Returns the string value of a key after setting its expiration time.", getex),
    read(
        "mget",
        -2,
        KeySpec::Range { first: 1, last: -1, step: 1 },
        "Atomically returns the string values of one or more keys.",
        mget,
    ),
    write(
        "mset",
        -3,
        KeySpec::Range { first: 1, last: -1, step: 2 },
        "Atomically creates or modifies the string values of one or more keys.",
        mset,
    ),
    write(
        "msetnx",
        -3,
        KeySpec::Range { first: 1, last: -1, step: 2 },
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        msetnx,
    ),
    write(
        "incr",
        2,
        ONE_KEY,
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        incr,
    ),
    write(
        "decr",
        2,
        ONE_KEY,
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        decr,
    ),
    write(
        "incrby",
        3,
        ONE_KEY,
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        incrby,
    ),
    write(
        "decrby",
        3,
        ONE_KEY,
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        decrby,
    ),
    write(
        "incrbyfloat",
        3,
        ONE_KEY,
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        incrbyfloat,
    ),
    write("append", 3, ONE_KEY, "Appends a string to the value of a key. Creates the key if it doesn't exist.", append),
    read("strlen", 2, ONE_KEY, "Returns the length of a string value.", strlen),
    read("getrange", 4, ONE_KEY, "Returns a substring of the string stored at a key.", getrange),
    write(
        "setrange",
        4,
        ONE_KEY,
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        setrange,
    ),
];

/// Runs `f` on the string under `key`: `Ok(None)` if absent, WRONGTYPE if not a string.
fn with_str<R>(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> CmdResult<R> {
    let now = ctx.now_ms();
    ctx.node.keyspace.get(key, now, |e| match e {
        None => Ok(f(None)),
        Some(Entry { value: Value::Str(s), .. }) => Ok(f(Some(s))),
        Some(_) => Err(CmdError::WRONGTYPE),
    })
}

fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let now = ctx.now_ms();
    let out = &mut *ctx.out;
    let found = ctx.node.keyspace.get(&args[1], now, |e| match e {
        None => {
            out.null();
            Some(false)
        }
        Some(Entry { value: Value::Str(s), .. }) => {
            out.bulk(s);
            Some(true)
        }
        Some(_) => None,
    });
    match found {
        Some(hit) => ctx.hit(hit),
        None => ctx.out.error(&CmdError::WRONGTYPE.0),
    }
}

/// An absolute deadline from a relative or absolute expire argument. `unit_ms` is 1000
/// for seconds; `absolute` for EXAT/PXAT. Non-positive or overflowing times are refused
/// with Redis's message for `cmd`.
pub fn deadline(ctx: &Ctx<'_>, arg: &[u8], unit_ms: i64, absolute: bool, cmd: &str) -> CmdResult<u64> {
    let invalid = || CmdError::msg(format!("ERR invalid expire time in '{cmd}' command"));
    let n = arg_i64(arg)?;
    if n <= 0 {
        return Err(invalid());
    }
    let ms = n.checked_mul(unit_ms).ok_or_else(invalid)?;
    let at = if absolute { ms } else { ms.checked_add(ctx.now_ms() as i64).ok_or_else(invalid)? };
    Ok(at as u64)
}

fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let mut exists = Exists::Any;
    let mut ttl = TtlChange::Clear;
    let mut get = false;
    let mut ttl_given = false;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        if is(a, "NX") && exists == Exists::Any {
            exists = Exists::Absent;
        } else if is(a, "XX") && exists == Exists::Any {
            exists = Exists::Present;
        } else if is(a, "GET") {
            get = true;
        } else if is(a, "KEEPTTL") && !ttl_given {
            ttl = TtlChange::Keep;
            ttl_given = true;
        } else if !ttl_given && next.is_some() && ["EX", "PX", "EXAT", "PXAT"].iter().any(|w| is(a, w)) {
            let (unit, absolute) = match a.to_ascii_uppercase().as_slice() {
                b"EX" => (1000, false),
                b"PX" => (1, false),
                b"EXAT" => (1000, true),
                _ => (1, true),
            };
            if let Some(v) = next {
                ttl = TtlChange::At(deadline(ctx, v, unit, absolute, "set")?);
            }
            ttl_given = true;
            i += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 1;
    }
    Ok(Op::Set { key: args[1].clone(), value: args[2].clone(), exists, ttl, get })
}

fn setnx(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    // SETNX answers 1/0, MSETNX-style.
    Ok(Op::MSet { pairs: vec![(args[1].clone(), args[2].clone())], nx: true })
}

fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let at = deadline(ctx, &args[2], 1000, false, "setex")?;
    Ok(Op::Set {
        key: args[1].clone(),
        value: args[3].clone(),
        exists: Exists::Any,
        ttl: TtlChange::At(at),
        get: false,
    })
}

fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let at = deadline(ctx, &args[2], 1, false, "psetex")?;
    Ok(Op::Set {
        key: args[1].clone(),
        value: args[3].clone(),
        exists: Exists::Any,
        ttl: TtlChange::At(at),
        get: false,
    })
}

fn getset(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Set { key: args[1].clone(), value: args[2].clone(), exists: Exists::Any, ttl: TtlChange::Clear, get: true })
}

fn getdel(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::GetDel { key: args[1].clone() })
}

fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let ttl = match &args[2..] {
        [] => TtlChange::Keep,
        [w] if is(w, "PERSIST") => TtlChange::Clear,
        [w, v] => {
            let (unit, absolute) = match w.to_ascii_uppercase().as_slice() {
                b"EX" => (1000, false),
                b"PX" => (1, false),
                b"EXAT" => (1000, true),
                b"PXAT" => (1, true),
                _ => return Err(CmdError::SYNTAX),
            };
            TtlChange::At(deadline(ctx, v, unit, absolute, "getex")?)
        }
        _ => return Err(CmdError::SYNTAX),
    };
    Ok(Op::GetEx { key: args[1].clone(), ttl })
}

fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let now = ctx.now_ms();
    let keys = &args[1..];
    let set = ctx.node.keyspace.read_many(keys.iter());
    ctx.out.array(keys.len());
    let (mut hits, mut misses) = (0, 0);
    for k in keys {
        match set.get(k, now) {
            Some(Entry { value: Value::Str(s), .. }) => {
                hits += 1;
                ctx.out.bulk(s);
            }
            _ => {
                misses += 1;
                ctx.out.null();
            }
        }
    }
    ctx.conn.hits += hits;
    ctx.conn.misses += misses;
}

fn pairs(args: &[Bytes], cmd: &str) -> CmdResult<Vec<(Bytes, Bytes)>> {
    if !(args.len() - 1).is_multiple_of(2) {
        return Err(CmdError::msg(format!("ERR wrong number of arguments for '{cmd}' command")));
    }
    Ok(args[1..].chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect())
}

fn mset(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::MSet { pairs: pairs(args, "mset")?, nx: false })
}

fn msetnx(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::MSet { pairs: pairs(args, "msetnx")?, nx: true })
}

fn incr(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::IncrBy { key: args[1].clone(), delta: 1 })
}

fn decr(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::IncrBy { key: args[1].clone(), delta: -1 })
}

fn incrby(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::IncrBy { key: args[1].clone(), delta: arg_i64(&args[2])? })
}

fn decrby(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let n = arg_i64(&args[2])?;
    let delta = n.checked_neg().ok_or_else(|| CmdError::msg("ERR decrement would overflow"))?;
    Ok(Op::IncrBy { key: args[1].clone(), delta })
}

fn incrbyfloat(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let delta = arg_f64(&args[2])?;
    if !delta.is_finite() {
        return Err(CmdError::msg("ERR increment would produce NaN or Infinity"));
    }
    Ok(Op::IncrByFloat { key: args[1].clone(), delta })
}

fn append(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Append { key: args[1].clone(), value: args[2].clone() })
}

fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match with_str(ctx, &args[1], |s| s.map_or(0, |s| s.len())) {
        Ok(n) => ctx.out.int(n as i64),
        Err(e) => ctx.out.error(&e.0),
    }
}

fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let (start, end) = match (arg_i64(&args[2]), arg_i64(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return ctx.out.error(&CmdError::NOT_INTEGER.0),
    };
    let r = with_str(ctx, &args[1], |s| {
        let s = s.unwrap_or(&[]);
        let len = s.len() as i64;
        if start < 0 && end < 0 && start > end {
            return Bytes::new();
        }
        let mut start = if start < 0 { len + start } else { start };
        let mut end = if end < 0 { len + end } else { end };
        start = start.max(0);
        end = end.max(0);
        if end >= len {
            end = len - 1;
        }
        if len == 0 || start > end {
            return Bytes::new();
        }
        Bytes::copy_from_slice(&s[start as usize..=end as usize])
    });
    match r {
        Ok(b) => ctx.out.bulk(&b),
        Err(e) => ctx.out.error(&e.0),
    }
}

fn setrange(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let offset = arg_i64(&args[2])?;
    if offset < 0 {
        return Err(CmdError::msg("ERR offset is out of range"));
    }
    if offset as u64 + args[3].len() as u64 > MAX_STRING_LEN as u64 {
        return Err(CmdError::msg("ERR string exceeds maximum allowed size (proto-max-bulk-len)"));
    }
    Ok(Op::SetRange { key: args[1].clone(), offset: offset as usize, value: args[3].clone() })
}
