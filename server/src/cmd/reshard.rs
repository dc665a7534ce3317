//! Resharding commands, as Redis Cluster names them: `ASKING`, `RESTORE-ASKING` and
//! `CLUSTER SETSLOT <slot> IMPORTING|MIGRATING|NODE|STABLE`. Each SETSLOT becomes a
//! [`ShardOp`] proposed through this node's shard group, so the whole group agrees on it
//! and it survives restarts (`prism_engine::shard_meta` has the rules; the keys move in
//! `crate::fleet::mover`).
//!
//! Prism extensions: the slot may be a range `first-last`, and `NODE <id> EPOCH <n>`
//! fixes the epoch of the new claim (the mover passes the source's so that the target's
//! claim outranks every older one; without it the node takes one above every epoch it
//! has heard of).
//!
//! Invariants:
//! - Only a fleet shard's leader accepts SETSLOT; a refused SETSLOT changes nothing.
//! - `NODE` on the shard giving a slot away is refused while the slot still holds keys
//!   (Redis's rule), and on the receiving shard unless it imports (or owns) the slot, so
//!   no shard claims a slot whose keys are elsewhere.

use bytes::Bytes;
use prism_engine::shard_meta::{Serving, ShardOp};
use prism_engine::{Op, Output, Slot};

use super::{arg_i64, is, CmdError, Ctx};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "asking",
        arity: 1,
        flags: FAST,
        keys: KeySpec::None,
        group: Group::Cluster,
        summary: "Signals that a cluster client is following an -ASK redirect.",
        since: "3.0.0",
        complexity: "O(1)",
        handler: Handler::Direct(asking),
    },
    CommandSpec {
        name: "restore-asking",
        arity: -4,
        flags: WRITE | DENYOOM,
        keys: KeySpec::Range { first: 1, last: 1, step: 1 },
        group: Group::Server,
        summary: "An internal command for migrating keys in a cluster.",
        since: "3.0.0",
        complexity: "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size.",
        handler: Handler::Write(super::migrate::restore),
    },
];

fn asking(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.conn.asking = true;
    ctx.out.ok();
}

/// `CLUSTER SETSLOT <slot> IMPORTING <node-id> | MIGRATING <node-id> | NODE <node-id> | STABLE`.
pub fn setslot(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match setslot_op(ctx, args) {
        Ok(Some(op)) => ctx.write_then(op, |conn, out, o| match o {
            Output::Ok => out.ok(),
            Output::Err(e) => {
                conn.errors += 1;
                out.error(&format!("ERR {}", e.to_string().trim_start_matches("TRYAGAIN ")));
            }
            other => out.output(&other),
        }),
        Ok(None) => ctx.out.ok(),
        Err(e) => ctx.fail(e),
    }
}

/// The op a SETSLOT proposes (`None`: nothing to change, answered OK).
fn setslot_op(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Option<Op>, CmdError> {
    let Some(replica) = ctx.node.replica() else {
        return Err(CmdError::msg("ERR This instance has cluster support disabled"));
    };
    let Some(view) = replica.fleet.as_ref() else {
        return Err(CmdError::msg("ERR CLUSTER SETSLOT needs a fleet node (cluster-topology)"));
    };
    if !replica.is_leader() {
        return Err(replica.redirect(None, replica.group.leadership().leader));
    }
    let slots = slot_range(&args[2])?;
    let me = view.my_shard;
    let meta = &ctx.node.keyspace.meta;
    let sub = &args[3];
    let node_shard = |i: usize| -> Result<u32, CmdError> {
        let id = args.get(i).ok_or(CmdError::SYNTAX)?;
        view.spec
            .members()
            .find(|(_, m)| crate::replica::cluster_id(m.id).as_bytes().eq_ignore_ascii_case(id))
            .map(|(s, _)| s.id)
            .ok_or_else(|| CmdError::msg(format!("ERR I don't know about node {}", String::from_utf8_lossy(id))))
    };
    if is(sub, "stable") {
        return match args.len() {
            4 => Ok(Some(Op::Shard(ShardOp::Stable { slots }))),
            _ => Err(CmdError::SYNTAX),
        };
    }
    if is(sub, "importing") && args.len() == 5 {
        let from = node_shard(4)?;
        if from == me {
            return Err(CmdError::msg("ERR I'm already the owner of hash slot"));
        }
        if let Some(&s) = slots.iter().find(|&&s| meta.serving(s) == Serving::Owned) {
            return Err(CmdError::msg(format!("ERR I'm already the owner of hash slot {s}")));
        }
        return Ok(Some(Op::Shard(ShardOp::Import { slots, from })));
    }
    if is(sub, "migrating") && args.len() == 5 {
        let to = node_shard(4)?;
        if to == me {
            return Err(CmdError::msg("ERR Can't migrate a slot to the node that owns it"));
        }
        if let Some(&s) = slots.iter().find(|&&s| !matches!(meta.serving(s), Serving::Owned | Serving::Migrating(_))) {
            return Err(CmdError::msg(format!("ERR I'm not the owner of hash slot {s}")));
        }
        return Ok(Some(Op::Shard(ShardOp::Migrate { slots, to })));
    }
    if is(sub, "node") && (args.len() == 5 || args.len() == 7) {
        let owner = node_shard(4)?;
        let epoch = match args.len() {
            7 if is(&args[5], "epoch") => {
                u64::try_from(arg_i64(&args[6])?).map_err(|_| CmdError::msg("ERR Invalid epoch"))?
            }
            7 => return Err(CmdError::SYNTAX),
            _ => slots.iter().map(|&s| meta.owner(s).1).max().unwrap_or(0).max(view.max_epoch()) + 1,
        };
        if owner == me {
            // Taking the slot: only one this shard imports (its keys came here).
            let mut take = Vec::new();
            for &s in &slots {
                match meta.serving(s) {
                    Serving::Importing(_) => take.push(s),
                    Serving::Owned => {}
                    _ => {
                        return Err(CmdError::msg(format!(
                            "ERR hash slot {s} is not being imported here: SETSLOT IMPORTING first"
                        )))
                    }
                }
            }
            return Ok((!take.is_empty()).then(|| Op::Shard(ShardOp::Assign { slots: take, owner, epoch })));
        }
        // Giving the slot away: only when none of its keys is left here.
        let mut give = Vec::new();
        for &s in &slots {
            let held = Slot::new(u64::from(s)).map_or(0, |slot| ctx.node.keyspace.slot(slot).len());
            match meta.serving(s) {
                Serving::Owned | Serving::Migrating(_) if held > 0 || !meta.outgoing(s).is_empty() => {
                    return Err(CmdError::msg(format!(
                        "ERR Can't assign hashslot {s} to a different node while I still hold keys for this hash slot."
                    )))
                }
                Serving::Migrating(to) if to == owner => give.push(s),
                // Handing a slot to a shard that does not import it would leave it unserved.
                Serving::Owned | Serving::Migrating(_) => {
                    return Err(CmdError::msg(format!(
                        "ERR hash slot {s} is not migrating to that node: SETSLOT MIGRATING first"
                    )))
                }
                // Neither ours nor ours to give: the owner's claim reaches us by gossip.
                Serving::Importing(_) | Serving::Elsewhere(_) => {}
            }
        }
        return Ok((!give.is_empty()).then(|| Op::Shard(ShardOp::Assign { slots: give, owner, epoch })));
    }
    Err(CmdError::SYNTAX)
}

/// A slot or an inclusive range `first-last`.
fn slot_range(arg: &[u8]) -> Result<Vec<u16>, CmdError> {
    let bad = || CmdError::msg("ERR Invalid or out of range slot");
    let one = |a: &[u8]| -> Result<u16, CmdError> {
        let n = arg_i64(a).map_err(|_| bad())?;
        u64::try_from(n).ok().and_then(Slot::new).map(|s| s.get()).ok_or_else(bad)
    };
    match arg.iter().position(|&b| b == b'-') {
        Some(i) if i > 0 => {
            let (first, last) = (one(&arg[..i])?, one(&arg[i + 1..])?);
            if first > last {
                return Err(bad());
            }
            Ok((first..=last).collect())
        }
        _ => Ok(vec![one(arg)?]),
    }
}
