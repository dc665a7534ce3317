//! `RAFT`: the shard group's membership as admin commands (issue 5).
//!
//! - `RAFT MEMBERS`: one row per member: id, client address, peer address, voter or
//!   learner, and whether it leads.
//! - `RAFT ADD <id> <host>:<port>[@<peer port>]`: adds a member. It joins as a learner,
//!   receives the log (or a snapshot), and once caught up becomes a voter. The new node
//!   is started first with `--node-id <id>` and a `--raft-group` naming at least itself
//!   and one existing member with a lower id (so it never initializes a group of its own).
//! - `RAFT REMOVE <id>`: removes a member (a dead one, to replace it: REMOVE, then ADD a
//!   new node under a new id).
//!
//! Invariants:
//! - Only the leader changes membership; elsewhere `-MOVED`-style redirection is not
//!   possible (no key), so members answer `-READONLY` naming the leader, or `-TRYAGAIN`.
//! - Changes go through openraft's joint consensus: a change is committed (durable on a
//!   majority of both the old and the new configuration) before the reply is `+OK`.
//! - The connection waits for the change without blocking any other client.

use std::time::Duration;

use bytes::Bytes;
use prism_replication::types::ChangeMembers;

use super::cluster::sub;
use super::{CmdError, Ctx};
use crate::resp::ReplyWriter;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

/// How long a member change may take (a learner catching up included).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Each change is O(members) plus the learner's catch-up.
const COMPLEXITY: &str = "O(N) where N is the number of members";

const SUBCOMMANDS: &[CommandSpec] = &[
    sub("members", 2, ADMIN | NOSCRIPT, "Lists the members of this node's shard group.", "7.0.0", COMPLEXITY, members),
    sub(
        "add",
        4,
        ADMIN | NOSCRIPT,
        "Adds a member to this node's shard group (learner, then voter).",
        "7.0.0",
        COMPLEXITY,
        add,
    ),
    sub("remove", 3, ADMIN | NOSCRIPT, "Removes a member from this node's shard group.", "7.0.0", COMPLEXITY, remove),
];

pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "raft",
    arity: -2,
    flags: 0,
    keys: KeySpec::None,
    group: Group::Cluster,
    summary: "A container for shard group (Raft) membership commands.",
    since: "7.0.0",
    complexity: "Depends on subcommand.",
    handler: Handler::Container(SUBCOMMANDS),
}];

fn standalone(ctx: &mut Ctx<'_>) {
    ctx.fail(CmdError::msg("ERR this node is not a member of a replicated shard group (no raft-group)"));
}

fn members(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let Some(r) = ctx.node.replica() else { return standalone(ctx) };
    let rows = r.membership();
    ctx.out.array(rows.len());
    for (m, voter) in rows {
        ctx.out.array(5);
        ctx.out.int(m.id as i64);
        ctx.out.bulk(m.client_addr().as_bytes());
        ctx.out.bulk(m.peer_addr().as_bytes());
        ctx.out.bulk(if voter { b"voter" } else { b"learner" });
        ctx.out.int(i64::from(r.group.leadership().leader == Some(m.id)));
    }
}

/// Refuses a change on a member that does not lead.
fn not_leader(ctx: &mut Ctx<'_>) -> bool {
    let Some(r) = ctx.node.replica() else {
        standalone(ctx);
        return true;
    };
    if r.is_leader() {
        return false;
    }
    let e = match r.group.leadership().leader.and_then(|l| r.member(l)) {
        Some(m) => CmdError::msg(format!("READONLY membership changes go to the leader, {}", m.client_addr())),
        None => CmdError::msg("TRYAGAIN The shard has no leader right now; retry shortly."),
    };
    ctx.fail(e);
    true
}

fn add(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    if not_leader(ctx) {
        return;
    }
    let spec = format!("{}@{}", String::from_utf8_lossy(&args[2]), String::from_utf8_lossy(&args[3]));
    let member = match crate::config::parse_group("RAFT ADD", &spec) {
        Ok(mut m) if m.len() == 1 => m.remove(0),
        Ok(_) => return ctx.fail(CmdError::SYNTAX),
        Err(e) => return ctx.fail(CmdError::msg(format!("ERR {e}"))),
    };
    let Some(r) = ctx.node.replica.get().cloned() else { return standalone(ctx) };
    ctx.conn.deferred = Some(Box::pin(async move { reply(r.add_member(&member)).await }));
}

fn remove(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    if not_leader(ctx) {
        return;
    }
    let Some(id) = std::str::from_utf8(&args[2]).ok().and_then(|s| s.parse::<u64>().ok()) else {
        return ctx.fail(CmdError::NOT_INTEGER);
    };
    let Some(r) = ctx.node.replica.get().cloned() else { return standalone(ctx) };
    ctx.conn.deferred = Some(Box::pin(async move { reply(r.change(ChangeMembers::RemoveVoters([id].into()))).await }));
}

/// Waits (bounded) for a membership change and turns its outcome into the reply.
async fn reply(change: impl std::future::Future<Output = Result<(), String>>) -> crate::conn::DeferredReply {
    let result = tokio::time::timeout(CHANGE_TIMEOUT, change)
        .await
        .unwrap_or_else(|_| Err("TIMEOUT the change did not finish in time; see RAFT MEMBERS".into()));
    Box::new(move |out: &mut ReplyWriter| match result {
        Ok(()) => out.ok(),
        Err(e) => out.error(&e),
    })
}
