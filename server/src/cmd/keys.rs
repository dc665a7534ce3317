//! Generic key commands: DEL UNLINK EXISTS TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL
//! PTTL PERSIST EXPIRETIME PEXPIRETIME RENAME RENAMENX KEYS SCAN RANDOMKEY TOUCH.

use bytes::Bytes;
use prism_engine::Op;

use super::{CmdResult, Ctx};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const ALL_KEYS: KeySpec = KeySpec::Range { first: 1, last: -1, step: 1 };

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "del",
        arity: -2,
        flags: WRITE,
        keys: ALL_KEYS,
        group: Group::Generic,
        summary: "Deletes one or more keys.",
        since: "1.0.0",
        complexity: "O(N) where N is the number of keys that will be removed.",
        handler: Handler::Write(del),
    },
    CommandSpec {
        name: "exists",
        arity: -2,
        flags: READONLY | FAST,
        keys: ALL_KEYS,
        group: Group::Generic,
        summary: "Determines whether one or more keys exist.",
        since: "1.0.0",
        complexity: "O(N) where N is the number of keys to check.",
        handler: Handler::Direct(exists),
    },
];

fn del(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    Ok(Op::Del { keys: args[1..].to_vec() })
}

fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let now = ctx.now_ms();
    let set = ctx.node.keyspace.read_many(args[1..].iter());
    let n = args[1..].iter().filter(|k| set.get(k, now).is_some()).count();
    ctx.out.int(n as i64);
}
