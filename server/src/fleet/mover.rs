//! The resharding mover: on a shard's leader, moves the keys of every slot the shard is
//! migrating to the target shard, then hands the slot over. It runs on every fleet node
//! and acts only while its node leads, so a migration survives leader changes: the next
//! leader finds the same replicated state (`prism_engine::shard_meta`) and carries on.
//!
//! One round, for the slots migrating to one target (at most [`SLOTS_PER_ROUND`]):
//! 1. read fence (this node leads, and has applied everything committed before);
//! 2. keys already taken out (`outgoing`, replicated) are sent to the target's leader as
//!    `RESTORE-ASKING key deadline payload REPLACE ABSTTL`, pipelined; once every reply is
//!    OK the shard proposes `MovedOut`, which drops them here;
//! 3. otherwise up to [`KEYS_PER_SLOT`] live keys of each slot are taken out with one
//!    `MoveOut` per slot (one log entry for all), and the next round sends them;
//! 4. a slot with no keys and nothing outgoing is handed over: `CLUSTER SETSLOT <slot> NODE
//!    <target> EPOCH <e>` on the target (which then owns it), then `Assign` here.
//!
//! Invariants:
//! - A key is in exactly one place a client can reach: in this keyspace, in `outgoing`
//!   (every request for it answers `-TRYAGAIN`), or on the target. `MoveOut` takes the
//!   value a key has when it applies, and every member takes the same one, so nothing
//!   written here before is left behind. A key leaves `outgoing` only once the target
//!   committed it (`MovedOut` names the keys confirmed), and it is sent by one sender at
//!   a time ([`SENDING`]); a new leader waits [`SETTLE`] before re-sending what its
//!   predecessor may have sent, so a late copy never overwrites a newer write.
//! - The target owns the slot before this shard gives it up, and this shard gives it up
//!   only when it holds none of its keys (see `cmd/reshard.rs`); the epoch is above every
//!   claim this node knows and the slot's own, so the new claim wins everywhere.
//! - Bounded: per round at most SLOTS_PER_ROUND slots and KEYS_PER_SLOT keys per slot;
//!   every network call has a deadline; failures back off and retry.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use prism_engine::shard_meta::ShardOp;
use prism_engine::{Op, Output, Slot, Write};

use super::moving::leader_addr;
use super::view::FleetView;
use crate::client::{encode, Conn, Credentials, Reply};
use crate::node::Node;
use crate::replica::{cluster_id, Replica};

/// Slots handled in one round.
pub const SLOTS_PER_ROUND: usize = 128;
/// Keys of one slot taken out in one round.
pub const KEYS_PER_SLOT: usize = 256;
/// Pause between rounds while nothing migrates (and after a failure, doubled up to 2 s).
const IDLE: Duration = Duration::from_millis(100);
/// Deadline of one exchange with the target.
const CALL_TTL: Duration = Duration::from_secs(10);

/// How long a new leader waits before sending keys: a batch the previous leader sent
/// just before it was deposed has landed on the target by then, so it cannot overwrite
/// a newer write there (the same rule as the graph outbox's deliverer).
const SETTLE: Duration = Duration::from_millis(3500);

/// Senders of migrating keys on this node (the mover and `MIGRATE`) take turns, so two
/// never send the same outgoing key (a late second copy could overwrite a newer write on
/// the target once the first was confirmed).
pub static SENDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs until the node goes away.
pub async fn run(node: Weak<Node>, replica: Weak<Replica>) {
    let mut link: Option<(String, Conn)> = None;
    let mut pause = IDLE;
    let mut leading_since: Option<(u64, std::time::Instant)> = None;
    loop {
        tokio::time::sleep(pause).await;
        let (Some(node), Some(replica)) = (node.upgrade(), replica.upgrade()) else { return };
        let Some(view) = replica.fleet.clone() else { return };
        if !replica.is_leader() {
            leading_since = None;
            pause = IDLE;
            continue;
        }
        let term = replica.group.leadership().term;
        let since = match leading_since {
            Some((t, at)) if t == term => at,
            _ => leading_since.insert((term, std::time::Instant::now())).1,
        };
        // Nothing to wait for when nothing is on its way out.
        let outgoing = node.keyspace.meta.has_outgoing();
        if outgoing && since.elapsed() < SETTLE {
            pause = IDLE;
            continue;
        }
        match round(&node, &replica, &view, &mut link).await {
            Ok(true) => pause = Duration::ZERO,
            Ok(false) => pause = IDLE,
            Err(e) => {
                tracing::warn!("resharding: {e}; retrying");
                link = None;
                pause = (pause * 2).clamp(IDLE, Duration::from_secs(2));
            }
        }
    }
}

/// One round; `Ok(true)` when it did something (so the next one starts at once).
async fn round(
    node: &Arc<Node>,
    replica: &Replica,
    view: &FleetView,
    link: &mut Option<(String, Conn)>,
) -> Result<bool, String> {
    let meta = &node.keyspace.meta;
    let mut by_target: BTreeMap<u32, Vec<u16>> = BTreeMap::new();
    for (slot, to) in meta.migrating() {
        by_target.entry(to).or_default().push(slot);
    }
    let Some((&to, slots)) = by_target.iter().next() else { return Ok(false) };
    let slots: Vec<u16> = slots.iter().copied().take(SLOTS_PER_ROUND).collect();
    replica.group.read_fence().await.map_err(|e| format!("read fence: {e}"))?;
    let addr = leader_addr(node, view, to).ok_or_else(|| format!("no known leader for shard {to}"))?;
    let conn = connect(node, link, &addr).await?;

    // 2. Send what was taken out.
    let sending: Vec<(u16, Vec<prism_engine::shard_meta::Outgoing>)> =
        slots.iter().map(|&s| (s, meta.outgoing(s))).filter(|(_, o)| !o.is_empty()).collect();
    if !sending.is_empty() {
        let slots: Vec<u16> = sending.iter().map(|(s, _)| *s).collect();
        send_outgoing(replica, &node.keyspace, &slots, conn, &addr, node.now_ms()).await?;
        return Ok(true);
    }

    // 3. Take keys out.
    let now = node.now_ms();
    let mut take = Vec::new();
    let mut empty = Vec::new();
    for &s in &slots {
        let Some(slot) = Slot::new(u64::from(s)) else { continue };
        let table = node.keyspace.slot(slot);
        let keys: Vec<bytes::Bytes> = (0..table.len())
            .rev()
            .filter_map(|i| table.get_index(i))
            .filter(|(_, e)| e.expire_at == 0 || e.expire_at > now)
            .take(KEYS_PER_SLOT)
            .map(|(k, _)| bytes::Bytes::copy_from_slice(k))
            .collect();
        let left = table.len();
        drop(table);
        if !keys.is_empty() {
            take.push(Op::Shard(ShardOp::MoveOut { slot: s, keys }));
        } else if left == 0 {
            empty.push(s);
        }
        // Only expired keys left: the next expiry pass removes them.
    }
    if !take.is_empty() {
        propose(node, replica, take).await?;
        return Ok(true);
    }
    if empty.is_empty() {
        return Ok(false);
    }

    // 4. Hand the empty slots over: the target first.
    let epoch = empty.iter().map(|&s| meta.owner(s).1).max().unwrap_or(0).max(view.max_epoch()) + 1;
    let target_id = view
        .spec
        .shards
        .iter()
        .find(|s| s.id == to)
        .and_then(|s| s.members.first())
        .map(|m| cluster_id(m.id))
        .ok_or_else(|| format!("shard {to} is not in the topology"))?;
    let epoch_text = epoch.to_string();
    let mut out = Vec::new();
    for &s in &empty {
        let slot = s.to_string();
        encode(
            &mut out,
            &[b"CLUSTER", b"SETSLOT", slot.as_bytes(), b"NODE", target_id.as_bytes(), b"EPOCH", epoch_text.as_bytes()],
        );
    }
    exchange(conn, &out, empty.len(), &addr).await?;
    propose(node, replica, vec![Op::Shard(ShardOp::Assign { slots: empty.clone(), owner: to, epoch })]).await?;
    tracing::info!(slots = empty.len(), to, epoch, "resharding: slots handed over");
    Ok(true)
}

/// Sends the outgoing keys of `slots` to the target at `addr` and, once it committed
/// them, drops them here (`MovedOut` naming exactly the keys sent). One sender at a time
/// ([`SENDING`]). The number of keys sent.
pub async fn send_outgoing(
    replica: &Replica,
    keyspace: &prism_engine::Keyspace,
    slots: &[u16],
    conn: &mut Conn,
    addr: &str,
    now_ms: u64,
) -> Result<usize, String> {
    let _turn = SENDING.lock().await;
    // Read under the turn: another sender may have confirmed some meanwhile.
    let sending: Vec<(u16, Vec<prism_engine::shard_meta::Outgoing>)> =
        slots.iter().map(|&s| (s, keyspace.meta.outgoing(s))).filter(|(_, o)| !o.is_empty()).collect();
    let mut out = Vec::new();
    let mut count = 0;
    for (_, keys) in &sending {
        for (key, deadline, payload) in keys {
            let deadline = deadline.to_string();
            encode(&mut out, &[b"RESTORE-ASKING", key, deadline.as_bytes(), payload, b"REPLACE", b"ABSTTL"]);
            count += 1;
        }
    }
    if count == 0 {
        return Ok(0);
    }
    exchange(conn, &out, count, addr).await?;
    let done = sending
        .iter()
        .map(|(slot, keys)| {
            let keys = keys.iter().map(|(k, _, _)| k.clone()).collect();
            Op::Shard(ShardOp::MovedOut { slot: *slot, keys })
        })
        .collect();
    propose_at(replica, now_ms, done).await?;
    Ok(count)
}

/// The connection to `addr`, reusing the last one when it goes there.
async fn connect<'a>(node: &Node, link: &'a mut Option<(String, Conn)>, addr: &str) -> Result<&'a mut Conn, String> {
    if link.as_ref().is_none_or(|(a, _)| a != addr) {
        let credentials = node.password.read().clone().map(|password| Credentials { user: None, password });
        *link = Some((addr.to_string(), open(addr, credentials.as_ref()).await?));
    }
    link.as_mut().map(|(_, c)| c).ok_or_else(|| "no connection".to_string())
}

/// A connection to another node's client port, authenticated with `credentials`.
pub async fn open(addr: &str, credentials: Option<&Credentials>) -> Result<Conn, String> {
    tokio::time::timeout(CALL_TTL, Conn::open(addr, credentials))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
}

/// Writes a pipeline of `count` commands and checks that every reply is a success.
async fn exchange(conn: &mut Conn, bytes: &[u8], count: usize, addr: &str) -> Result<(), String> {
    let work = async {
        conn.send(bytes).await.map_err(|e| format!("{addr}: {e}"))?;
        let mut first_error = None;
        for _ in 0..count {
            if let Reply::Error(e) = conn.reply().await.map_err(|e| format!("{addr}: {e}"))? {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(format!("{addr} answered: {e}")),
            None => Ok(()),
        }
    };
    tokio::time::timeout(CALL_TTL, work).await.map_err(|_| format!("{addr}: no answer in time"))?
}

/// Proposes `ops` through this shard's group (one log entry) and checks each applied.
async fn propose(node: &Node, replica: &Replica, ops: Vec<Op>) -> Result<(), String> {
    propose_at(replica, node.now_ms(), ops).await
}

/// [`propose`] with the write time given.
pub async fn propose_at(replica: &Replica, now_ms: u64, ops: Vec<Op>) -> Result<(), String> {
    let writes = ops.into_iter().map(|op| Write { now_ms, op }).collect();
    let committed = replica.group.write(writes).await.map_err(|e| format!("proposing: {e}"))?;
    match committed.outputs.iter().find(|o| matches!(o, Output::Err(_))) {
        Some(e) => Err(format!("applying: {e:?}")),
        None => Ok(()),
    }
}
