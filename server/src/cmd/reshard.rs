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
        name: "migrate",
        arity: -6,
        flags: WRITE,
        keys: KeySpec::None,
        group: Group::Generic,
        summary: "Atomically transfers a key from one Redis instance to another.",
        since: "2.6.0",
        complexity: "This command actually executes a DUMP+DEL in the source instance, and a RESTORE in the target instance.",
        handler: Handler::Direct(migrate),
    },
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

/// `MIGRATE host port key|"" 0 timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS k ...]`,
/// as `redis-cli --cluster reshard` uses it: on a shard's leader, for keys of one slot
/// that migrates to the shard `host:port` belongs to. The keys are taken out, sent to that
/// shard's leader and dropped here once it committed them, exactly as the mover does
/// (`crate::fleet::mover`); `+NOKEY` when none of them is here. Always replaces on the
/// target (the slot is being imported there: only this shard's keys arrive); `COPY`
/// would leave a key in two shards and is refused.
fn migrate(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match migrate_plan(ctx, args) {
        Ok(None) => ctx.out.simple("NOKEY"),
        Ok(Some(plan)) => {
            ctx.conn.deferred = Some(Box::pin(async move {
                let result = plan.run().await;
                Box::new(move |out: &mut crate::resp::ReplyWriter| match result {
                    Ok(()) => out.ok(),
                    Err(e) => out.error(&format!("IOERR error or timeout migrating to the target instance: {e}")),
                }) as crate::conn::DeferredReply
            }));
        }
        Err(e) => ctx.fail(e),
    }
}

/// What a MIGRATE will do once the connection runs it.
struct MigratePlan {
    replica: std::sync::Arc<crate::replica::Replica>,
    keyspace: std::sync::Arc<prism_engine::Keyspace>,
    slot: u16,
    keys: Vec<Bytes>,
    addr: String,
    credentials: Option<crate::client::Credentials>,
    now_ms: u64,
}

impl MigratePlan {
    async fn run(self) -> Result<(), String> {
        use crate::fleet::mover;
        let take = Op::Shard(ShardOp::MoveOut { slot: self.slot, keys: self.keys });
        mover::propose_at(&self.replica, self.now_ms, vec![take]).await?;
        let mut conn = mover::open(&self.addr, self.credentials.as_ref()).await?;
        mover::send_outgoing(&self.replica, &self.keyspace, &[self.slot], &mut conn, &self.addr, self.now_ms).await?;
        Ok(())
    }
}

fn migrate_plan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Option<MigratePlan>, CmdError> {
    let mut keys: Vec<Bytes> = Vec::new();
    let mut credentials = None;
    let mut j = 6;
    while j < args.len() {
        let a = &args[j];
        if is(a, "copy") {
            return Err(CmdError::msg("ERR MIGRATE COPY is not supported: a key would live in two shards"));
        } else if is(a, "replace") {
            j += 1;
        } else if is(a, "auth") && j + 1 < args.len() {
            credentials = Some(crate::client::Credentials { user: None, password: args[j + 1].to_vec() });
            j += 2;
        } else if is(a, "auth2") && j + 2 < args.len() {
            let (user, password) = (args[j + 1].to_vec(), args[j + 2].to_vec());
            credentials = Some(crate::client::Credentials { user: Some(user), password });
            j += 3;
        } else if is(a, "keys") {
            if !args[3].is_empty() {
                return Err(CmdError::msg(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            keys.extend(args[j + 1..].iter().cloned());
            j = args.len();
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    if !args[3].is_empty() {
        keys.push(args[3].clone());
    }
    let port = arg_i64(&args[2]).ok().filter(|p| (1..=65535).contains(p)).ok_or(CmdError::msg("ERR Invalid port"))?;
    if arg_i64(&args[4])? != 0 {
        return Err(CmdError::msg("ERR Target database must be 0 in cluster mode"));
    }
    if arg_i64(&args[5])? < 0 {
        return Err(CmdError::msg("ERR Invalid timeout"));
    }
    let Some(replica) = ctx.node.replica.get().cloned() else {
        return Err(CmdError::msg("ERR MIGRATE needs a fleet node: it moves keys of a migrating slot"));
    };
    let Some(view) = replica.fleet.clone() else {
        return Err(CmdError::msg("ERR MIGRATE needs a fleet node: it moves keys of a migrating slot"));
    };
    if !replica.is_leader() {
        return Err(replica.redirect(None, replica.group.leadership().leader));
    }
    let Some(first) = keys.first() else { return Ok(None) };
    let slot = Slot::of_key(first);
    if keys.iter().any(|k| Slot::of_key(k) != slot) {
        return Err(CmdError::msg("CROSSSLOT Keys in request don't hash to the same slot"));
    }
    let meta = &ctx.node.keyspace.meta;
    let Serving::Migrating(to) = meta.serving(slot.get()) else {
        return Err(CmdError::msg(format!(
            "ERR hash slot {slot} is not migrating: CLUSTER SETSLOT {slot} MIGRATING <target> first"
        )));
    };
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    let target = view
        .spec
        .members()
        .find(|(_, m)| i64::from(m.port) == port && (m.host == host || host_is_local(&host, &m.host)));
    if target.is_none_or(|(s, _)| s.id != to) {
        return Err(CmdError::msg(format!(
            "ERR {host}:{port} is not a node of the shard hash slot {slot} migrates to"
        )));
    }
    let now = ctx.now_ms();
    let keys: Vec<Bytes> = keys.into_iter().filter(|k| ctx.node.keyspace.get(k, now, |e| e.is_some())).collect();
    if keys.is_empty() && meta.outgoing(slot.get()).is_empty() {
        return Ok(None);
    }
    let addr = crate::fleet::moving::leader_addr(ctx.node, &view, to).unwrap_or(format!("{host}:{port}"));
    let credentials = credentials.or_else(|| {
        ctx.node.password.read().clone().map(|password| crate::client::Credentials { user: None, password })
    });
    Ok(Some(MigratePlan {
        replica,
        keyspace: ctx.node.keyspace.clone(),
        slot: slot.get(),
        keys,
        addr,
        credentials,
        now_ms: now,
    }))
}

/// `localhost` and loopback spellings name the same node.
fn host_is_local(a: &str, b: &str) -> bool {
    let local = |h: &str| h == "localhost" || h.starts_with("127.") || h == "::1";
    local(a) && local(b)
}

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
            let held = Slot::new(u64::from(s)).map_or(0, |slot| super::cluster::keys_held(ctx.node, slot));
            match meta.serving(s) {
                Serving::Owned | Serving::Migrating(_) if held > 0 => {
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
pub(super) fn slot_range(arg: &[u8]) -> Result<Vec<u16>, CmdError> {
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
