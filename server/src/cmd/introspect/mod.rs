//! What clients and tools probe a server with: OBJECT, MEMORY, SLOWLOG and LATENCY, and
//! CLIENT TRACKING / GETREDIR / TRACKINGINFO (registered in `server.rs`'s CLIENT table).
//!
//! Invariants:
//! - Nothing here is made up. OBJECT ENCODING names the encoding Redis 7.2 would use for
//!   a value of this size and content under its default thresholds ([`encoding`]);
//!   MEMORY USAGE is the engine's own per-entry accounting (the figure `used_memory`
//!   sums); MEMORY STATS prints only figures the node measures. What Prism does not track
//!   is answered with an error, not a guess: OBJECT FREQ (no LFU policy, as Redis) and
//!   OBJECT IDLETIME (no per-key access time).
//! - Every walk over a collection is bounded by the thresholds it checks (at most 512
//!   members, or 8 KB of list entries), so OBJECT ENCODING is O(1) on large values.
//! - The slow log and latency figures come from `stats`; these handlers only read and
//!   reset them.

mod logs;
mod object;

use bytes::Bytes;

use super::{is, text, CmdError, Ctx};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};
use logs::*;
use object::*;

pub use object::encoding;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    summary: &'static str,
    since: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec { name, arity, flags, keys, group: Group::Server, summary, since, complexity: "O(1)", handler }
}

/// OBJECT's subcommands are in Redis's `generic` group.
const fn generic(spec: CommandSpec) -> CommandSpec {
    CommandSpec { group: Group::Generic, ..spec }
}

const KEY: KeySpec = KeySpec::Range { first: 2, last: 2, step: 1 };
const NO_KEYS: KeySpec = KeySpec::None;
const ADMIN_FLAGS: u32 = ADMIN | NOSCRIPT | LOADING | STALE;
const HELP_FLAGS: u32 = LOADING | STALE;

const OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    generic(spec(
        "encoding",
        3,
        READONLY,
        KEY,
        "Returns the internal encoding of a Redis object.",
        "2.2.3",
        Handler::Direct(object_encoding),
    )),
    generic(spec(
        "freq",
        3,
        READONLY,
        KEY,
        "Returns the logarithmic access frequency counter of a Redis object.",
        "4.0.0",
        Handler::Direct(object_freq),
    )),
    generic(spec(
        "idletime",
        3,
        READONLY,
        KEY,
        "Returns the time since the last access to a Redis object.",
        "2.2.3",
        Handler::Direct(object_idletime),
    )),
    generic(spec(
        "refcount",
        3,
        READONLY,
        KEY,
        "Returns the reference count of a value of a key.",
        "2.2.3",
        Handler::Direct(object_refcount),
    )),
    generic(spec(
        "help",
        2,
        HELP_FLAGS,
        NO_KEYS,
        "Returns helpful text about the different subcommands.",
        "6.2.0",
        Handler::Direct(object_help),
    )),
];

const MEMORY_SUBCOMMANDS: &[CommandSpec] = &[
    spec("doctor", 2, 0, NO_KEYS, "Outputs a memory problems report.", "4.0.0", Handler::Direct(memory_doctor)),
    spec(
        "malloc-stats",
        2,
        0,
        NO_KEYS,
        "Returns the allocator statistics.",
        "4.0.0",
        Handler::Direct(memory_malloc_stats),
    ),
    spec("purge", 2, 0, NO_KEYS, "Asks the allocator to release memory.", "4.0.0", Handler::Direct(memory_purge)),
    spec("stats", 2, 0, NO_KEYS, "Returns details about memory usage.", "4.0.0", Handler::Direct(memory_stats)),
    spec("usage", -3, READONLY, KEY, "Estimates the memory usage of a key.", "4.0.0", Handler::Direct(memory_usage)),
    spec(
        "help",
        2,
        HELP_FLAGS,
        NO_KEYS,
        "Returns helpful text about the different subcommands.",
        "4.0.0",
        Handler::Direct(memory_help),
    ),
];

const SLOWLOG_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "get",
        -2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        "Returns the slow log's entries.",
        "2.2.12",
        Handler::Direct(slowlog_get),
    ),
    spec(
        "len",
        2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        "Returns the number of entries in the slow log.",
        "2.2.12",
        Handler::Direct(slowlog_len),
    ),
    spec(
        "reset",
        2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        "Clears all entries from the slow log.",
        "2.2.12",
        Handler::Direct(slowlog_reset),
    ),
    spec(
        "help",
        2,
        HELP_FLAGS,
        NO_KEYS,
        "Show helpful text about the different subcommands",
        "6.2.0",
        Handler::Direct(slowlog_help),
    ),
];

const LATENCY_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "histogram",
        -2,
        ADMIN_FLAGS,
        NO_KEYS,
        "Returns the cumulative distribution of latencies of a subset or all commands.",
        "7.0.0",
        Handler::Direct(latency_histogram),
    ),
    spec(
        "latest",
        2,
        ADMIN_FLAGS,
        NO_KEYS,
        "Returns the latest latency samples for all events.",
        "2.8.13",
        Handler::Direct(latency_latest),
    ),
    spec(
        "history",
        3,
        ADMIN_FLAGS,
        NO_KEYS,
        "Returns timestamp-latency samples for an event.",
        "2.8.13",
        Handler::Direct(latency_history),
    ),
    spec(
        "reset",
        -2,
        ADMIN_FLAGS,
        NO_KEYS,
        "Resets the latency data for one or more events.",
        "2.8.13",
        Handler::Direct(latency_reset),
    ),
    spec(
        "help",
        2,
        HELP_FLAGS,
        NO_KEYS,
        "Returns helpful text about the different subcommands.",
        "2.8.13",
        Handler::Direct(latency_help),
    ),
];

const fn container(
    name: &'static str,
    group: Group,
    summary: &'static str,
    since: &'static str,
    subs: &'static [CommandSpec],
) -> CommandSpec {
    CommandSpec {
        name,
        arity: -2,
        flags: 0,
        keys: KeySpec::None,
        group,
        summary,
        since,
        complexity: "Depends on subcommand.",
        handler: Handler::Container(subs),
    }
}

pub const COMMANDS: &[CommandSpec] = &[
    container("object", Group::Generic, "A container for object introspection commands.", "2.2.3", OBJECT_SUBCOMMANDS),
    container("memory", Group::Server, "A container for memory diagnostics commands.", "4.0.0", MEMORY_SUBCOMMANDS),
    container("slowlog", Group::Server, "A container for slow log commands.", "2.2.12", SLOWLOG_SUBCOMMANDS),
    container("latency", Group::Server, "A container for latency diagnostics commands.", "2.8.13", LATENCY_SUBCOMMANDS),
];

/// Writes an error reply and counts it for INFO's total_error_replies.
pub(super) fn error(ctx: &mut Ctx<'_>, msg: &str) {
    ctx.conn.errors += 1;
    ctx.out.error(msg);
}

/// Writes a HELP reply in Redis's shape: a header, the lines, then HELP itself.
pub(super) fn help(ctx: &mut Ctx<'_>, container: &str, lines: &[&str]) {
    ctx.out.array(lines.len() + 3);
    ctx.out.simple(&format!("{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"));
    for l in lines {
        ctx.out.simple(l);
    }
    ctx.out.simple("HELP");
    ctx.out.simple("    Prints this help.");
}

// ---- CLIENT TRACKING --------------------------------------------------------------

/// CLIENT TRACKING ON|OFF: recorded only. Server-assisted caching needs invalidation
/// messages, which Prism does not send, so every option that shapes them (REDIRECT,
/// BCAST, PREFIX, OPTIN, OPTOUT, NOLOOP) is refused rather than silently ignored.
pub fn client_tracking(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    // Options first, as Redis parses them before ON/OFF.
    let mut unsupported = None;
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = &args[j];
        if (is(a, "redirect") || is(a, "prefix")) && more {
            j += 1;
        } else if !(is(a, "bcast") || is(a, "optin") || is(a, "optout") || is(a, "noloop")) {
            return error(ctx, &CmdError::SYNTAX.0);
        }
        unsupported.get_or_insert_with(|| text(a).to_ascii_uppercase());
        j += 1;
    }
    let on = if is(&args[2], "on") {
        true
    } else if is(&args[2], "off") {
        false
    } else {
        return error(ctx, &CmdError::SYNTAX.0);
    };
    if let Some(opt) = unsupported {
        return error(ctx, &format!("ERR Prism does not support the CLIENT TRACKING option {opt}"));
    }
    ctx.conn.tracking = on;
    ctx.out.ok();
}

pub fn client_getredir(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    // 0: tracking without redirection; -1: tracking off.
    ctx.out.int(if ctx.conn.tracking { 0 } else { -1 });
}

pub fn client_trackinginfo(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let on = ctx.conn.tracking;
    let out = &mut *ctx.out;
    out.map(3);
    out.bulk(b"flags");
    out.set(1);
    out.bulk(if on { b"on" } else { b"off" });
    out.bulk(b"redirect");
    out.int(if on { 0 } else { -1 });
    out.bulk(b"prefixes");
    out.array(0);
}
