//! Generic key commands: DEL UNLINK EXISTS TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL
//! PTTL PERSIST EXPIRETIME PEXPIRETIME RENAME RENAMENX KEYS SCAN RANDOMKEY TOUCH.
//!
//! Invariants:
//! - Expiry deadlines are absolute and fixed here, from the node's clock, before the op
//!   exists; applying an `Op::Expire` never reads a clock.
//! - Every argument error (options, overflow, cursor) is replied before any op is built,
//!   so a refused command changes nothing.
//! - `SCAN` cursors are the keyspace's own (slot + positions still to visit, see
//!   `prism_engine::keyspace`): a key present for the whole scan is returned at least once.

use bytes::Bytes;
use prism_engine::glob::glob_match;
use prism_engine::{Entry, ExpireCond, Op, ValueKind};
use rand::Rng;

use super::{arg_i64, is, text, CmdError, CmdResult, Ctx};
use crate::resp::ReplyWriter;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const ONE_KEY: KeySpec = KeySpec::Range { first: 1, last: 1, step: 1 };
const TWO_KEYS: KeySpec = KeySpec::Range { first: 1, last: 2, step: 1 };
const ALL_KEYS: KeySpec = KeySpec::Range { first: 1, last: -1, step: 1 };

/// Default COUNT of SCAN, HSCAN, SSCAN and ZSCAN, as Redis.
pub const SCAN_DEFAULT_COUNT: usize = 10;

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
    CommandSpec { name, arity, flags, keys, group: Group::Generic, summary, since, complexity, handler }
}

pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "del",
        -2,
        WRITE,
        ALL_KEYS,
        "Deletes one or more keys.",
        "1.0.0",
        "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).",
        Handler::Write(del),
    ),
    spec(
        "unlink",
        -2,
        WRITE | FAST,
        ALL_KEYS,
        "Asynchronously deletes one or more keys.",
        "4.0.0",
        "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.",
        Handler::Write(del),
    ),
    spec(
        "exists",
        -2,
        READONLY | FAST,
        ALL_KEYS,
        "Determines whether one or more keys exist.",
        "1.0.0",
        "O(N) where N is the number of keys to check.",
        Handler::Direct(exists),
    ),
    spec(
        "type",
        2,
        READONLY | FAST,
        ONE_KEY,
        "Determines the type of value stored at a key.",
        "1.0.0",
        "O(1)",
        Handler::Direct(type_cmd),
    ),
    spec(
        "expire",
        -3,
        WRITE | FAST,
        ONE_KEY,
        "Sets the expiration time of a key in seconds.",
        "1.0.0",
        "O(1)",
        Handler::Write(expire),
    ),
    spec(
        "pexpire",
        -3,
        WRITE | FAST,
        ONE_KEY,
        "Sets the expiration time of a key in milliseconds.",
        "2.6.0",
        "O(1)",
        Handler::Write(pexpire),
    ),
    spec(
        "expireat",
        -3,
        WRITE | FAST,
        ONE_KEY,
        "Sets the expiration time of a key to a Unix timestamp.",
        "1.2.0",
        "O(1)",
        Handler::Write(expireat),
    ),
    spec(
        "pexpireat",
        -3,
        WRITE | FAST,
        ONE_KEY,
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        "2.6.0",
        "O(1)",
        Handler::Write(pexpireat),
    ),
    spec(
        "ttl",
        2,
        READONLY | FAST,
        ONE_KEY,
        "Returns the expiration time in seconds of a key.",
        "1.0.0",
        "O(1)",
        Handler::Direct(ttl),
    ),
    spec(
        "pttl",
        2,
        READONLY | FAST,
        ONE_KEY,
        "Returns the expiration time in milliseconds of a key.",
        "2.6.0",
        "O(1)",
        Handler::Direct(pttl),
    ),
    spec(
        "expiretime",
        2,
        READONLY | FAST,
        ONE_KEY,
        "Returns the expiration time of a key as a Unix timestamp.",
        "7.0.0",
        "O(1)",
        Handler::Direct(expiretime),
    ),
    spec(
        "pexpiretime",
        2,
        READONLY | FAST,
        ONE_KEY,
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        "7.0.0",
        "O(1)",
        Handler::Direct(pexpiretime),
    ),
    spec(
        "persist",
        2,
        WRITE | FAST,
        ONE_KEY,
        "Removes the expiration time of a key.",
        "2.2.0",
        "O(1)",
        Handler::Write(persist),
    ),
    spec(
        "rename",
        3,
        WRITE,
        TWO_KEYS,
        "Renames a key and overwrites the destination.",
        "1.0.0",
        "O(1)",
        Handler::Write(rename),
    ),
    spec(
        "renamenx",
        3,
        WRITE | FAST,
        TWO_KEYS,
        "Renames a key only when the target key name doesn't exist.",
        "1.0.0",
        "O(1)",
        Handler::Write(renamenx),
    ),
    spec(
        "keys",
        2,
        READONLY,
        KeySpec::None,
        "Returns all key names that match a pattern.",
        "1.0.0",
        "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.",
        Handler::Direct(keys),
    ),
    spec(
        "scan",
        -2,
        READONLY,
        KeySpec::None,
        "Iterates over the key names in the database.",
        "2.8.0",
        "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        Handler::Direct(scan),
    ),
    spec(
        "randomkey",
        1,
        READONLY,
        KeySpec::None,
        "Returns a random key name from the database.",
        "1.0.0",
        "O(1)",
        Handler::Direct(randomkey),
    ),
    spec(
        "touch",
        -2,
        READONLY | FAST,
        ALL_KEYS,
        "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        "3.2.1",
        "O(N) where N is the number of keys that will be touched.",
        Handler::Direct(exists),
    ),
];

/// Writes an error reply and counts it, as the write path does for refused ops.
fn del(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Del { keys: args[1..].to_vec() })
}

/// EXISTS and TOUCH: the number of keys given that exist, a key named twice counted twice.
/// (Prism keeps no access times, so TOUCH has nothing else to do.)
fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let now = ctx.now_ms();
    let set = ctx.node.keyspace.read_many(args[1..].iter());
    let n = args[1..].iter().filter(|k| set.get(k, now).is_some()).count();
    drop(set);
    ctx.conn.hits += n as u64;
    ctx.conn.misses += (args.len() - 1 - n) as u64;
    ctx.out.int(n as i64);
}

fn type_cmd(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let now = ctx.now_ms();
    let kind = ctx.node.keyspace.get(&args[1], now, |e| e.map(|e| e.value.kind()));
    ctx.hit(kind.is_some());
    ctx.out.simple(kind.map_or("none", ValueKind::name));
}

fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    expire_generic(ctx, args, 1000, false, "expire")
}

fn pexpire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    expire_generic(ctx, args, 1, false, "pexpire")
}

fn expireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    expire_generic(ctx, args, 1000, true, "expireat")
}

fn pexpireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    expire_generic(ctx, args, 1, true, "pexpireat")
}

/// The EXPIRE family, checked in Redis's order: options, then the time, then overflow.
/// Negative and past times are valid: the op deletes the key.
fn expire_generic(ctx: &mut Ctx<'_>, args: &[Bytes], unit_ms: i64, absolute: bool, cmd: &str) -> CmdResult<Op> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if is(a, "NX") {
            nx = true;
        } else if is(a, "XX") {
            xx = true;
        } else if is(a, "GT") {
            gt = true;
        } else if is(a, "LT") {
            lt = true;
        } else {
            return Err(CmdError::msg(format!("ERR Unsupported option {}", text(a))));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::msg("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(CmdError::msg("ERR GT and LT options at the same time are not compatible"));
    }
    let invalid = || CmdError::msg(format!("ERR invalid expire time in '{cmd}' command"));
    let when = arg_i64(&args[2])?.checked_mul(unit_ms).ok_or_else(invalid)?;
    let base = if absolute { 0 } else { ctx.now_ms() as i64 };
    let at_ms = when.checked_add(base).ok_or_else(invalid)?;
    let key = args[1].clone();
    let cond = match (nx, xx, gt, lt) {
        (true, ..) => ExpireCond::Nx,
        // GT already refuses a key without TTL (its TTL counts as infinite), so XX adds
        // nothing to it.
        (_, _, true, _) => ExpireCond::Gt,
        (_, true, _, true) => ExpireCond::XxLt,
        (_, true, ..) => ExpireCond::Xx,
        (.., true) => ExpireCond::Lt,
        _ => ExpireCond::Always,
    };
    Ok(Op::Expire { key, at_ms, cond })
}

/// TTL family: -2 for a missing key, -1 for a key without TTL. `absolute` reports the
/// deadline itself (EXPIRETIME); seconds are rounded to the nearest, as Redis does.
fn ttl_generic(ctx: &mut Ctx<'_>, key: &[u8], ms: bool, absolute: bool) {
    let now = ctx.now_ms();
    let deadline = ctx.node.keyspace.get(key, now, |e| e.map(|e| e.expire_at));
    ctx.hit(deadline.is_some());
    let reply = match deadline {
        None => -2,
        Some(0) => -1,
        Some(at) => {
            let v = if absolute { at } else { at.saturating_sub(now) };
            let v = i64::try_from(v).unwrap_or(i64::MAX);
            if ms {
                v
            } else {
                v.saturating_add(500) / 1000
            }
        }
    };
    ctx.out.int(reply);
}

fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    ttl_generic(ctx, &args[1], false, false);
}

fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    ttl_generic(ctx, &args[1], true, false);
}

fn expiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    ttl_generic(ctx, &args[1], false, true);
}

fn pexpiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    ttl_generic(ctx, &args[1], true, true);
}

fn persist(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Persist { key: args[1].clone() })
}

fn rename(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Rename { src: args[1].clone(), dst: args[2].clone(), nx: false })
}

fn renamenx(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Rename { src: args[1].clone(), dst: args[2].clone(), nx: true })
}

/// A pattern worth matching: `*` matches everything and is skipped, as Redis does.
fn pattern_of(arg: &Bytes) -> Option<Bytes> {
    (&arg[..] != b"*").then(|| arg.clone())
}

fn keys(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let now = ctx.now_ms();
    let pattern = pattern_of(&args[1]);
    let mut found = Vec::new();
    // One scan step with an unbounded count walks every slot and returns cursor 0; it
    // holds one slot's lock at a time.
    ctx.node.keyspace.scan(0, usize::MAX, now, |k, _| pattern.as_ref().is_none_or(|p| glob_match(p, k)), &mut found);
    ctx.out.bulks(found.iter().map(|k| &k[..]));
}

/// A cursor argument: an unsigned decimal number.
pub fn parse_cursor(arg: &[u8]) -> CmdResult<u64> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(CmdError::INVALID_CURSOR)
}

/// A `COUNT` option value: an integer of at least 1 (below 1 is a syntax error, as Redis).
pub fn parse_count(arg: &[u8]) -> CmdResult<usize> {
    let n = arg_i64(arg)?;
    if n < 1 {
        return Err(CmdError::SYNTAX);
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// The options of HSCAN, SSCAN and ZSCAN: `[MATCH pattern] [COUNT count]` (and, where
/// allowed, HSCAN's `[NOVALUES]`) after the key and cursor.
pub struct CollectionScan<'a> {
    /// `None` when every element matches (no MATCH, or MATCH `*`).
    pub pattern: Option<&'a [u8]>,
    pub count: usize,
    pub novalues: bool,
}

impl CollectionScan<'_> {
    /// True when `element` passes MATCH.
    pub fn keeps(&self, element: &[u8]) -> bool {
        self.pattern.is_none_or(|p| glob_match(p, element))
    }
}

/// Parses the options of a collection scan from `args[3..]`.
pub fn parse_collection_scan(args: &[Bytes], allow_novalues: bool) -> CmdResult<CollectionScan<'_>> {
    let mut scan = CollectionScan { pattern: None, count: SCAN_DEFAULT_COUNT, novalues: false };
    let mut i = 3;
    while i < args.len() {
        match args.get(i + 1) {
            Some(v) if is(&args[i], "COUNT") => scan.count = parse_count(v)?,
            Some(v) if is(&args[i], "MATCH") => scan.pattern = (&v[..] != b"*").then_some(&v[..]),
            _ if allow_novalues && is(&args[i], "NOVALUES") => {
                scan.novalues = true;
                i += 1;
                continue;
            }
            _ => return Err(CmdError::SYNTAX),
        }
        i += 2;
    }
    Ok(scan)
}

/// The reply to a collection scan of a missing key: cursor 0, nothing found.
pub fn empty_scan(out: &mut ReplyWriter) {
    out.array(2);
    out.bulk(b"0");
    out.array(0);
}

struct ScanArgs {
    cursor: u64,
    pattern: Option<Bytes>,
    count: usize,
    /// `Some(None)`: a TYPE no value has (Redis 7 then returns no keys, not an error).
    kind: Option<Option<ValueKind>>,
}

fn parse_scan(args: &[Bytes]) -> CmdResult<ScanArgs> {
    let mut s = ScanArgs { cursor: parse_cursor(&args[1])?, pattern: None, count: SCAN_DEFAULT_COUNT, kind: None };
    let mut i = 2;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else {
            return Err(CmdError::SYNTAX);
        };
        if is(&args[i], "COUNT") {
            s.count = parse_count(v)?;
        } else if is(&args[i], "MATCH") {
            s.pattern = pattern_of(v);
        } else if is(&args[i], "TYPE") {
            s.kind = Some(ValueKind::from_name(v));
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 2;
    }
    Ok(s)
}

fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let s = match parse_scan(args) {
        Ok(s) => s,
        Err(e) => return ctx.fail(e),
    };
    let now = ctx.now_ms();
    let mut found = Vec::new();
    let keep = |k: &[u8], e: &Entry| {
        let type_ok = match s.kind {
            None => true,
            Some(kind) => kind == Some(e.value.kind()),
        };
        type_ok && s.pattern.as_ref().is_none_or(|p| glob_match(p, k))
    };
    let next = ctx.node.keyspace.scan(s.cursor, s.count, now, keep, &mut found);
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.bulks(found.iter().map(|k| &k[..]));
}

fn randomkey(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let now = ctx.now_ms();
    let mut rng = rand::rng();
    match ctx.node.keyspace.random_key(now, |n| rng.random_range(0..n.max(1))) {
        Some(k) => ctx.out.bulk(&k),
        None => ctx.out.null(),
    }
}
