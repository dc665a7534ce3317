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
//! - `RAFT TRANSFER <id>`: hands leadership to another voter (prism_replication::election):
//!   writes answer `-TRYAGAIN` meanwhile, reads wait; `+OK` once `<id>` leads.
//! - `RAFT METADATA MEMBERS`: the fleet's metadata group (fleet/catalog.rs), as `RAFT
//!   MEMBERS` shows a shard.
//! - `RAFT METADATA VOTERS <id> [<id> ...]`, on the metadata leader: makes exactly these
//!   members the metadata group's voters (each must already be a member: every node of
//!   the fleet is a learner), and each new voter heard from in the last seconds and within
//!   64 entries of the leader's log; voters left out stay learners. How a dead voter is replaced.
//! - `CLUSTER FAILOVER [FORCE|TAKEOVER]` (its CLUSTER entry calls [`failover`]): on a
//!   replica, asks the leader to transfer to it; with FORCE or TAKEOVER, when no leader
//!   is known or it cannot be reached, the replica campaigns by itself (a leader that is
//!   down). Unlike Redis, which answers `+OK` at once, the
//!   reply comes when the failover ended: `+OK` once this node leads, else why not.
//!
//! Invariants:
//! - Only the leader changes membership; elsewhere `-MOVED`-style redirection is not
//!   possible (no key), so members answer `-READONLY` naming the leader, or `-TRYAGAIN`.
//! - Changes go through openraft's joint consensus: a change is committed (durable on a
//!   majority of both the old and the new configuration) before the reply is `+OK`.
//! - The connection waits for the change without blocking any other client.
//! - A transfer or failover is bounded (the leader lease plus 5 s) and refused arguments
//!   (unknown id, a learner, not the leader) change nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prism_replication::types::ChangeMembers;
use prism_replication::{ServerState, TransferError};

use super::cluster::sub;
use super::{CmdError, Ctx};
use crate::resp::ReplyWriter;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

/// How long a member change may take (a learner catching up included).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// How far behind the metadata leader's log a learner may be to be made a voter.
const MAX_VOTER_LAG: u64 = 64;

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
    sub(
        "metadata",
        -3,
        ADMIN | NOSCRIPT,
        "Lists the fleet's metadata group, or replaces its voters (MEMBERS | VOTERS id [id ...]).",
        "7.0.0",
        COMPLEXITY,
        metadata,
    ),
    sub(
        "transfer",
        3,
        ADMIN | NOSCRIPT,
        "Hands this shard group's leadership to another voter.",
        "7.0.0",
        "O(1)",
        transfer,
    ),
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

/// `RAFT METADATA MEMBERS` | `RAFT METADATA VOTERS <id> [<id> ...]`.
fn metadata(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let Some(catalog) = ctx.node.replica().and_then(|r| r.catalog.clone()) else {
        return ctx.fail(CmdError::msg("ERR this node is not a member of a fleet (no metadata group)"));
    };
    let leader = catalog.group.leadership().leader;
    let members = catalog.members();
    if args[2].eq_ignore_ascii_case(b"members") {
        if args.len() != 3 {
            return ctx.fail(CmdError::msg("ERR wrong number of arguments for 'raft|metadata|members' command"));
        }
        ctx.out.array(members.len());
        for (id, node, voter) in &members {
            ctx.out.array(5);
            ctx.out.int(*id as i64);
            ctx.out.bulk(node.client_addr.as_bytes());
            ctx.out.bulk(node.peer_addr.as_bytes());
            ctx.out.bulk(if *voter { b"voter" } else { b"learner" });
            ctx.out.int(i64::from(leader == Some(*id)));
        }
        return;
    }
    if !args[2].eq_ignore_ascii_case(b"voters") {
        return ctx.fail(CmdError::SYNTAX);
    }
    if args.len() < 4 {
        return ctx.fail(CmdError::msg("ERR wrong number of arguments for 'raft|metadata|voters' command"));
    }
    let mut voters = std::collections::BTreeSet::new();
    for a in &args[3..] {
        let Some(id) = std::str::from_utf8(a).ok().and_then(|s| s.parse::<u64>().ok()) else {
            return ctx.fail(CmdError::NOT_INTEGER);
        };
        if !voters.insert(id) {
            return ctx.fail(CmdError::msg(format!("ERR node {id} is named twice")));
        }
        if !members.iter().any(|(m, _, _)| *m == id) {
            return ctx.fail(CmdError::msg(format!("ERR Unknown node {id}: not a member of the metadata group")));
        }
    }
    if !catalog.group.is_leader() {
        let at = leader.and_then(|l| members.iter().find(|(m, _, _)| *m == l)).map(|(_, n, _)| n.client_addr.clone());
        return ctx.fail(CmdError::msg(match at {
            Some(addr) => format!("READONLY metadata changes go to the metadata leader, {addr}"),
            None => "TRYAGAIN The metadata group has no leader right now; retry shortly.".into(),
        }));
    }
    // A new voter must be up and caught up: were a majority of the new voters unable to
    // answer, the joint configuration could never commit and the group would stall.
    let m = catalog.group.metrics();
    let last = m.last_log_index.unwrap_or(0);
    let current: std::collections::BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
    let view = ctx.node.replica().and_then(|r| r.fleet.clone());
    for id in voters.iter().filter(|id| !current.contains(id)) {
        if view.as_ref().is_some_and(|v| v.is_suspect(*id)) {
            return ctx.fail(CmdError::msg(format!("ERR node {id} has not been heard from for seconds; is it up?")));
        }
        let matched = m.replication.as_ref().and_then(|r| r.get(id).copied().flatten()).map_or(0, |l| l.index);
        if last.saturating_sub(matched) > MAX_VOTER_LAG {
            return ctx.fail(CmdError::msg(format!(
                "ERR node {id} is {} entries behind the metadata leader; is it up?",
                last - matched
            )));
        }
    }
    ctx.conn.deferred = Some(Box::pin(async move {
        // Voters left out stay learners (retain): they keep their copy of the catalog.
        let change = catalog.group.raft().change_membership(ChangeMembers::ReplaceAllVoters(voters), true);
        reply(async move { change.await.map(|_| ()).map_err(|e| one_line(&format!("ERR {e}"))) }).await
    }));
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

fn transfer(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let Some(r) = ctx.node.replica.get().cloned() else { return standalone(ctx) };
    let Some(id) = std::str::from_utf8(&args[2]).ok().and_then(|s| s.parse::<u64>().ok()) else {
        return ctx.fail(CmdError::NOT_INTEGER);
    };
    if !r.is_leader() {
        let leader = r.group.leadership().leader.filter(|l| *l != r.me);
        return ctx.fail(CmdError::msg(transfer_error(&r, TransferError::NotLeader(leader))));
    }
    ctx.conn.deferred = Some(Box::pin(async move {
        let text = match r.group.transfer(id).await {
            Ok(l) if l == id => None,
            Ok(l) => Some(format!("ERR leadership went to node {l}, not {id}")),
            Err(e) => Some(transfer_error(&r, e)),
        };
        answer(text)
    }));
}

/// `CLUSTER FAILOVER [FORCE|TAKEOVER]` (see the module docs).
pub(super) fn failover(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let force = match args.get(2) {
        _ if args.len() > 3 => return ctx.fail(CmdError::SYNTAX),
        None => false,
        Some(a) if a.eq_ignore_ascii_case(b"force") || a.eq_ignore_ascii_case(b"takeover") => true,
        Some(_) => return ctx.fail(CmdError::SYNTAX),
    };
    let to_replica = "ERR You should send CLUSTER FAILOVER to a replica";
    let Some(r) = ctx.node.replica.get().cloned() else { return ctx.fail(CmdError::msg(to_replica)) };
    if r.is_leader() {
        return ctx.fail(CmdError::msg(to_replica));
    }
    if !r.membership().iter().any(|(m, voter)| m.id == r.me && *voter) {
        return ctx.fail(CmdError::msg(transfer_error(&r, TransferError::NotVoter(r.me))));
    }
    let leader = r.group.leadership().leader.filter(|l| *l != r.me).and_then(|l| r.member(l));
    if leader.is_none() && !force {
        return ctx.fail(CmdError::msg("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE"));
    }
    ctx.conn.deferred = Some(Box::pin(async move {
        // A leader that answers hands over (FORCE too: it is the fastest safe way); without
        // one, FORCE campaigns here.
        let text = match leader {
            Some(leader) => {
                let node = leader.peer_node();
                match r.group.elections().ask_leader(leader.id, &node).await {
                    Ok(l) if l == r.me => None,
                    Ok(l) => Some(format!("ERR leadership went to node {l}")),
                    Err(TransferError::Target { .. }) if force => campaign_here(&r).await,
                    Err(e) => Some(transfer_error(&r, e)),
                }
            }
            None => campaign_here(&r).await,
        };
        answer(text)
    }));
}

/// `CLUSTER FAILOVER FORCE` without a leader to ask: campaigns until this node leads or
/// another does, at most a transfer's bound; the error line if it is not this node.
async fn campaign_here(r: &Arc<crate::replica::Replica>) -> Option<String> {
    let bound = r.group.elections().transfer_bound();
    if let Err(e) = r.group.elections().campaign(Duration::ZERO, bound, 0) {
        return Some(one_line(&format!("ERR {e}")));
    }
    match until_leading(r, bound).await {
        Some(l) if l == r.me => None,
        Some(l) => Some(format!("ERR leadership went to node {l}")),
        None => Some("TIMEOUT this node did not win an election in time; see INFO raft".to_string()),
    }
}

/// Waits until some member leads in a term after the current one (this node, hopefully),
/// at most `bound`; who leads then.
async fn until_leading(r: &Arc<crate::replica::Replica>, bound: Duration) -> Option<u64> {
    let mut watch = r.group.watch_leadership();
    let term = watch.borrow().term;
    let won = |l: &prism_replication::Leadership| {
        l.term > term && (l.leader.is_some_and(|id| id != r.me) || l.state == ServerState::Leader)
    };
    let l = tokio::time::timeout(bound, watch.wait_for(won)).await.ok()?.ok()?.clone();
    l.leader
}

/// The error line for a transfer that did not happen.
fn transfer_error(r: &crate::replica::Replica, e: TransferError) -> String {
    let addr = |id: u64| r.member(id).map(|m| m.client_addr()).unwrap_or_else(|| format!("node {id}"));
    let text = match e {
        TransferError::NotLeader(Some(l)) => format!("ERR not the leader, ask {}", addr(l)),
        TransferError::NotLeader(None) => "TRYAGAIN The shard has no leader right now; retry shortly.".into(),
        TransferError::Unknown(id) => format!("ERR Unknown node {id}"),
        TransferError::NotVoter(id) => format!("ERR node {id} is a learner, not a voter"),
        TransferError::Busy => "ERR a leadership transfer is already in progress".into(),
        TransferError::Timeout { target, leader } => format!(
            "TIMEOUT the transfer to node {target} did not finish in time; {}",
            leader.map_or("no leader is known".into(), |l| format!("node {l} leads"))
        ),
        e @ TransferError::Target { .. } => format!("ERR {e}"),
    };
    one_line(&text)
}

fn answer(error: Option<String>) -> crate::conn::DeferredReply {
    Box::new(move |out: &mut ReplyWriter| match error {
        None => out.ok(),
        Some(e) => out.error(&e),
    })
}

/// An error text fit for a RESP error line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
