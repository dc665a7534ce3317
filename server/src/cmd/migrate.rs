//! Moving values between keys and nodes: DUMP, RESTORE and COPY.
//!
//! DUMP's payload is Prism's own format (see `prism_engine::dump`: magic, version, type,
//! body, CRC-64), not Redis's RDB: RESTORE accepts only payloads made by a Prism node.
//!
//! Invariants:
//! - Every argument error is replied before an op exists, in Redis's order (options, then
//!   BUSYKEY, then the TTL, then the payload), so a refused command changes nothing.
//! - RESTORE's deadline is absolute and fixed here from the node's clock (ABSTTL takes it
//!   as given); the op carries the payload as received and apply decodes and validates it,
//!   so the log holds the compact form and a bad payload fails identically everywhere.
//! - IDLETIME and FREQ are validated as Redis does and otherwise ignored: Prism keeps no
//!   per-key LRU clock or LFU counter.
//! - The node is a cluster node with database 0 only: COPY ... DB n answers as Redis
//!   Cluster (`DB index is out of range` outside 0..16, `not allowed in cluster mode` for
//!   any other valid index).

use bytes::Bytes;
use prism_engine::{dump, Op};

use super::{arg_i64, is, CmdError, CmdResult, Ctx};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const ONE_KEY: KeySpec = KeySpec::Range { first: 1, last: 1, step: 1 };
const TWO_KEYS: KeySpec = KeySpec::Range { first: 1, last: 2, step: 1 };
/// Redis's default `databases`: the range COPY's DB argument is checked against.
const DATABASES: i64 = 16;

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "copy",
        arity: -3,
        flags: WRITE | DENYOOM,
        keys: TWO_KEYS,
        group: Group::Generic,
        summary: "Copies the value of a key to a new key.",
        since: "6.2.0",
        complexity: "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
        handler: Handler::Write(copy),
    },
    CommandSpec {
        name: "dump",
        arity: 2,
        flags: READONLY,
        keys: ONE_KEY,
        group: Group::Generic,
        summary: "Returns a serialized representation of the value stored at a key.",
        since: "2.6.0",
        complexity: "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size.",
        handler: Handler::Direct(dump_cmd),
    },
    CommandSpec {
        name: "restore",
        arity: -4,
        flags: WRITE | DENYOOM,
        keys: ONE_KEY,
        group: Group::Generic,
        summary: "Creates a key from the serialized representation of a value.",
        since: "2.6.0",
        complexity: "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size.",
        handler: Handler::Write(restore),
    },
];

fn dump_cmd(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let now = ctx.now_ms();
    let payload = ctx.node.keyspace.get(&args[1], now, |e| e.map(|e| dump::encode(&e.value)));
    ctx.hit(payload.is_some());
    match payload {
        Some(p) => ctx.out.bulk(&p),
        None => ctx.out.null(),
    }
}

pub(super) fn restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let (mut replace, mut absttl, mut idle, mut freq) = (false, false, false, false);
    let mut j = 4;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = &args[j];
        if is(a, "replace") {
            replace = true;
        } else if is(a, "absttl") {
            absttl = true;
        } else if is(a, "idletime") && more && !freq {
            if arg_i64(&args[j + 1])? < 0 {
                return Err(CmdError::msg("ERR Invalid IDLETIME value, must be >= 0"));
            }
            idle = true;
            j += 1;
        } else if is(a, "freq") && more && !idle {
            if !(0..=255).contains(&arg_i64(&args[j + 1])?) {
                return Err(CmdError::msg("ERR Invalid FREQ value, must be >= 0 and <= 255"));
            }
            freq = true;
            j += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    let now = ctx.now_ms();
    let key = &args[1];
    // Checked again in apply (another write may come between); here for Redis's order.
    if !replace && ctx.node.keyspace.get(key, now, |e| e.is_some()) {
        return Err(CmdError::msg("BUSYKEY Target key name already exists."));
    }
    let ttl = arg_i64(&args[2])?;
    if ttl < 0 {
        return Err(CmdError::msg("ERR Invalid TTL value, must be >= 0"));
    }
    let expire_at = match (ttl, absttl) {
        (0, _) => 0,
        (t, true) => t as u64,
        (t, false) => now.saturating_add(t as u64),
    };
    Ok(Op::Restore { key: key.clone(), payload: args[3].clone(), expire_at, replace })
}

fn copy(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    let mut replace = false;
    let mut db = 0;
    let mut j = 3;
    while j < args.len() {
        if is(&args[j], "replace") {
            replace = true;
        } else if is(&args[j], "db") && j + 1 < args.len() {
            // Redis reads the index as a C int.
            db = arg_i64(&args[j + 1]).ok().filter(|n| i32::try_from(*n).is_ok()).ok_or(CmdError::NOT_INTEGER)?;
            if !(0..DATABASES).contains(&db) {
                return Err(CmdError::msg("ERR DB index is out of range"));
            }
            j += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    if db != 0 {
        return Err(CmdError::msg("ERR Copying to another database is not allowed in cluster mode"));
    }
    if args[1] == args[2] {
        return Err(CmdError::msg("ERR source and destination objects are the same"));
    }
    Ok(Op::Copy { src: args[1].clone(), dst: args[2].clone(), replace })
}
