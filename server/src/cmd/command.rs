//! The COMMAND family (bare COMMAND, COUNT, INFO, DOCS, LIST, GETKEYS, GETKEYSANDFLAGS,
//! HELP), generated from the command table.
//!
//! Cluster clients (redis-py's `CommandsParser`, Jedis, ioredis) read `COMMAND` on connect
//! to learn key positions, so every reply here has Redis 7's exact shape: the per-command
//! entry is the 10-element array of `addReplyCommandInfo` (name, arity, flags, first key,
//! last key, step, ACL categories, tips, key specifications, subcommands), sets and maps
//! degrade to arrays in RESP2, and a command without subcommands reports an empty *set*
//! there, as Redis does. Nothing here knows about a particular command: names, flags and
//! key positions all come from [`crate::table`], so a new command shows up by being
//! registered.

use bytes::Bytes;

use super::{is, CmdError, CmdResult, Ctx};
use crate::resp::ReplyWriter;
use crate::table::{self, flag, flag::*, CommandSpec, Group, Handler, KeySpec};

const fn sub(
    name: &'static str,
    arity: i32,
    summary: &'static str,
    since: &'static str,
    complexity: &'static str,
    f: fn(&mut Ctx<'_>, &[Bytes]),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags: LOADING | STALE,
        keys: KeySpec::None,
        group: Group::Server,
        summary,
        since,
        complexity,
        handler: Handler::Direct(f),
    }
}

const SUBCOMMANDS: &[CommandSpec] = &[
    sub("count", 2, "Returns a count of commands.", "2.8.13", "O(1)", count),
    sub(
        "docs",
        -2,
        "Returns documentary information about one, multiple or all commands.",
        "7.0.0",
        "O(N) where N is the number of commands to look up",
        docs,
    ),
    sub(
        "getkeys",
        -3,
        "Extracts the key names from an arbitrary command.",
        "2.8.13",
        "O(N) where N is the number of arguments to the command",
        getkeys,
    ),
    sub(
        "getkeysandflags",
        -3,
        "Extracts the key names and access flags for an arbitrary command.",
        "7.0.0",
        "O(N) where N is the number of arguments to the command",
        getkeysandflags,
    ),
    sub("help", 2, "Returns helpful text about the different subcommands.", "5.0.0", "O(1)", help),
    sub(
        "info",
        -2,
        "Returns information about one, multiple or all commands.",
        "2.8.13",
        "O(N) where N is the number of commands to look up",
        info,
    ),
    sub(
        "list",
        -2,
        "Returns a list of command names.",
        "7.0.0",
        "O(N) where N is the total number of Redis commands",
        list,
    ),
];

pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "command",
    arity: -1,
    flags: LOADING | STALE,
    keys: KeySpec::None,
    group: Group::Server,
    summary: "Returns detailed information about all commands.",
    since: "2.8.13",
    complexity: "O(N) where N is the total number of Redis commands",
    handler: Handler::Container(SUBCOMMANDS),
}];

/// ACL categories in the order Redis reports them (`ACLCommandCategories`).
const ACL_ORDER: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// `COMMAND` with no subcommand: every command's entry. The dispatcher calls this for a
/// bare `COMMAND`, the one container whose arity allows no subcommand.
pub fn all(ctx: &mut Ctx<'_>) {
    let out = &mut *ctx.out;
    out.array(table::all().count());
    for c in table::all() {
        write_info(out, c, c.name);
    }
}

fn count(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.out.int(table::all().count() as i64);
}

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    if args.len() == 2 {
        return all(ctx);
    }
    let out = &mut *ctx.out;
    out.array(args.len() - 2);
    for name in &args[2..] {
        match find(name) {
            Some((spec, full)) => write_info(out, spec, &full),
            None => out.null(),
        }
    }
}

fn docs(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let out = &mut *ctx.out;
    if args.len() == 2 {
        out.map(table::all().count());
        for c in table::all() {
            out.bulk(c.name.as_bytes());
            write_docs(out, c, c.name);
        }
        return;
    }
    // Unknown names are left out, so the map's length is known only after lookup.
    let found: Vec<_> = args[2..].iter().filter_map(|n| find(n)).collect();
    out.map(found.len());
    for (spec, full) in &found {
        out.bulk(full.as_bytes());
        write_docs(out, spec, full);
    }
}

fn list(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let mut filter: Option<(&[u8], Vec<u8>)> = None;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "FILTERBY") && args.len() - 1 - i == 2 {
            let kind = &args[i + 1][..];
            if !(is(kind, "MODULE") || is(kind, "ACLCAT") || is(kind, "PATTERN")) {
                return ctx.out.error(&CmdError::SYNTAX.0);
            }
            filter = Some((kind, args[i + 2].to_ascii_lowercase()));
            i += 3;
        } else {
            return ctx.out.error(&CmdError::SYNTAX.0);
        }
    }
    let keep = |spec: &CommandSpec, full: &str| match &filter {
        None => true,
        // No modules are loaded, so no command belongs to one.
        Some((kind, _)) if is(kind, "MODULE") => false,
        Some((kind, cat)) if is(kind, "ACLCAT") => categories(spec).iter().any(|c| c.as_bytes()[1..] == cat[..]),
        Some((_, pattern)) => prism_engine::glob::glob_match(pattern, full.as_bytes()),
    };
    let mut names = Vec::new();
    for c in table::all() {
        if keep(c, c.name) {
            names.push(c.name.to_string());
        }
        for s in c.subcommands() {
            let full = format!("{}|{}", c.name, s.name);
            if keep(s, &full) {
                names.push(full);
            }
        }
    }
    ctx.out.bulks(names.iter().map(|n| n.as_bytes()));
}

fn getkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match keys_of(args) {
        Ok((_, keys)) => ctx.out.bulks(keys.iter().map(|k| &k[..])),
        Err(e) => ctx.out.error(&e.0),
    }
}

fn getkeysandflags(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match keys_of(args) {
        Ok((spec, keys)) => {
            let out = &mut *ctx.out;
            out.array(keys.len());
            for k in &keys {
                out.array(2);
                out.bulk(k);
                write_simple_set(out, key_flags(spec));
            }
        }
        Err(e) => ctx.out.error(&e.0),
    }
}

fn help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    const LINES: &[&str] = &[
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all Redis commands.",
        "COUNT",
        "    Return the total number of commands in this Redis server.",
        "LIST",
        "    Return a list of all commands in this Redis server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "GETKEYS <full-command>",
        "    Return the keys from a full Redis command.",
        "GETKEYSANDFLAGS <full-command>",
        "    Return the keys and the access flags from a full Redis command.",
        "HELP",
        "    Print this help.",
    ];
    write_help(ctx.out, LINES);
}

/// Writes a HELP reply: one simple string per line, as Redis's `addReplyHelp`.
pub fn write_help(out: &mut ReplyWriter, lines: &[&str]) {
    out.array(lines.len());
    for l in lines {
        out.simple(l);
    }
}

/// Looks a command up by its full name: `get`, or `container|sub` for a subcommand.
/// Returns the spec and its lower-case full name.
fn find(name: &[u8]) -> Option<(&'static CommandSpec, String)> {
    match name.iter().position(|&b| b == b'|') {
        None => table::lookup(name).map(|c| (c, c.name.to_string())),
        Some(bar) => {
            let (base, rest) = (&name[..bar], &name[bar + 1..]);
            let container = table::lookup(base)?;
            let sub = table::lookup_sub(container, rest)?;
            Some((sub, format!("{}|{}", container.name, sub.name)))
        }
    }
}

/// Resolves `COMMAND GETKEYS <command> <args>...` to the command's spec and its key
/// arguments, with Redis's checks in Redis's order.
fn keys_of(args: &[Bytes]) -> CmdResult<(&'static CommandSpec, Vec<Bytes>)> {
    let cmd = &args[2..];
    let invalid = || CmdError::msg("ERR Invalid command specified");
    let base = table::lookup(&cmd[0]).ok_or_else(invalid)?;
    let spec = match cmd.get(1) {
        Some(name) if !base.subcommands().is_empty() => table::lookup_sub(base, name).ok_or_else(invalid)?,
        _ => base,
    };
    if spec.keys == KeySpec::None {
        return Err(CmdError::msg("ERR The command has no key arguments"));
    }
    if !spec.arity_ok(cmd.len()) {
        return Err(CmdError::msg("ERR Invalid number of arguments specified for command"));
    }
    let keys: Vec<Bytes> = spec.key_indexes_in(cmd).filter_map(|i| cmd.get(i).cloned()).collect();
    if keys.is_empty() {
        return Err(CmdError::msg("ERR Invalid arguments specified for command"));
    }
    Ok((spec, keys))
}

/// One command's 10-element `COMMAND INFO` entry.
fn write_info(out: &mut ReplyWriter, spec: &CommandSpec, full: &str) {
    out.array(10);
    out.bulk(full.as_bytes());
    out.int(spec.arity as i64);
    let mut flags: Vec<&str> = flag::NAMES.iter().filter(|(f, _)| spec.has(*f)).map(|(_, n)| *n).collect();
    if spec.movable_keys() {
        flags.push("movablekeys");
    }
    write_simple_set(out, &flags);
    let (first, last, step) = spec.key_positions();
    out.int(first);
    out.int(last);
    out.int(step);
    write_simple_set(out, &categories(spec));
    out.set(0); // tips
                // Key specifications, then subcommands: an empty *set* when there are none, as Redis.
    write_key_specs(out, spec);
    let subs = spec.subcommands();
    if subs.is_empty() {
        out.set(0);
    } else {
        out.array(subs.len());
        for s in subs {
            write_info(out, s, &format!("{full}|{}", s.name));
        }
    }
}

/// The key specification Redis 7 derives from a legacy (first, last, step) range: an
/// index begin-search and a range find-keys whose `lastkey` counts from the first key.
///
/// Redis sends the list as a RESP3 *set* of maps; strict RESP3 decoders reject that (a
/// map cannot be a set member), so it goes out as an array, which every client that
/// reads Redis's set (redis-py turns sets into lists for this reason) reads the same.
fn write_key_specs(out: &mut ReplyWriter, spec: &CommandSpec) {
    match spec.keys {
        KeySpec::None => out.array(0),
        KeySpec::Range { first, last, step } => {
            let lastkey = if last < 0 { last as i64 } else { last as i64 - first as i64 };
            let find = [("lastkey", lastkey), ("keystep", step as i64), ("limit", 0)];
            write_key_spec(out, spec, first as i64, "range", &find);
        }
        // A count at `numkeys_index`, then the keys: Redis's "keynum" find-keys spec, whose
        // positions are relative to the begin-search index.
        KeySpec::Keynum { numkeys_index, first, step } => {
            let find =
                [("keynumidx", 0), ("firstkey", first.saturating_sub(numkeys_index) as i64), ("keystep", step as i64)];
            write_key_spec(out, spec, numkeys_index as i64, "keynum", &find);
        }
    }
}

/// One key specification: an index begin-search at `index` and a find-keys of `kind`
/// with the fields of `find`.
fn write_key_spec(out: &mut ReplyWriter, spec: &CommandSpec, index: i64, kind: &str, find: &[(&str, i64)]) {
    out.array(1);
    out.map(3);
    out.bulk(b"flags");
    write_simple_set(out, key_flags(spec));
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"index");
    out.bulk(b"spec");
    out.map(1);
    out.bulk(b"index");
    out.int(index);
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    out.bulk(kind.as_bytes());
    out.bulk(b"spec");
    out.map(find.len());
    for (name, value) in find {
        out.bulk(name.as_bytes());
        out.int(*value);
    }
}

/// Key access flags, derived from the command's flags (the table keeps none per key).
fn key_flags(spec: &CommandSpec) -> &'static [&'static str] {
    if spec.has(WRITE) {
        &["RW", "update"]
    } else if spec.has(READONLY) {
        &["RO", "access"]
    } else {
        &["RW", "access"]
    }
}

/// ACL categories as Redis computes them: the group's category plus the implicit ones
/// from the flags (`setImplicitACLCategories`), in Redis's order. `@admin` comes only
/// from the ADMIN flag, so that e.g. CLUSTER KEYSLOT is `@slow` alone, as in Redis.
fn categories(spec: &CommandSpec) -> Vec<&'static str> {
    let mut cats: Vec<&'static str> = Vec::with_capacity(4);
    let group = spec.group.category();
    if group != "@admin" {
        cats.push(group);
    }
    for (f, c) in [(WRITE, "@write"), (READONLY, "@read"), (ADMIN, "@admin"), (ADMIN, "@dangerous")] {
        if spec.has(f) {
            cats.push(c);
        }
    }
    for (f, c) in [(PUBSUB, "@pubsub"), (FAST, "@fast"), (BLOCKING, "@blocking")] {
        if spec.has(f) {
            cats.push(c);
        }
    }
    if !spec.has(FAST) {
        cats.push("@slow");
    }
    let rank = |c: &str| ACL_ORDER.iter().position(|o| c.get(1..) == Some(*o)).unwrap_or(ACL_ORDER.len());
    cats.sort_by_key(|c| rank(c));
    cats.dedup();
    cats
}

fn write_docs(out: &mut ReplyWriter, spec: &CommandSpec, full: &str) {
    let subs = spec.subcommands();
    out.map(3 + usize::from(!spec.complexity.is_empty()) + usize::from(!subs.is_empty()));
    out.bulk(b"summary");
    out.bulk(spec.summary.as_bytes());
    out.bulk(b"since");
    out.bulk(spec.since.as_bytes());
    out.bulk(b"group");
    out.bulk(spec.group.name().as_bytes());
    if !spec.complexity.is_empty() {
        out.bulk(b"complexity");
        out.bulk(spec.complexity.as_bytes());
    }
    if !subs.is_empty() {
        out.bulk(b"subcommands");
        out.map(subs.len());
        for s in subs {
            let name = format!("{full}|{}", s.name);
            out.bulk(name.as_bytes());
            write_docs(out, s, &name);
        }
    }
}

fn write_simple_set(out: &mut ReplyWriter, items: &[&str]) {
    out.set(items.len());
    for i in items {
        out.simple(i);
    }
}
