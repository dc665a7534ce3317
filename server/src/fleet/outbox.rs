//! Delivery of the cross-shard edge outbox (`prism_engine::graph::outbox`): the
//! deliverer on a shard's leader, and the destination side of a delivery.
//!
//! The deliverer sends the outbox's entries strictly in sequence order with one batch in
//! flight: a batch is the longest prefix (at most [`BATCH`] entries) whose halves' slots
//! are all owned by one shard *now* (resolved from `node.topology` at every attempt, so a
//! slot that moved is followed). The destination's leader proposes the halves as one
//! `GraphOp::Inbound` through its own group and answers after commit; the source then
//! commits `ShardOp::OutboxAck` up to the batch's last sequence number. A failure at any
//! step (destination down, no leader, slot not served there any more, ack not committed)
//! retries the same prefix after a backoff: entries are idempotent and strictly ordered,
//! so a redelivery is harmless and no per-destination watermark is kept.
//!
//! Invariants:
//! - Only the source shard's leader delivers, and a new leader waits [`TAKEOVER_WAIT`]
//!   before its first batch, so a deposed leader's last delivery (bounded by the call's
//!   deadline) has landed or failed before entries after it can be sent.
//! - Bounded: batches of at most [`BATCH`] entries, one call deadline [`CALL_TTL`],
//!   backoff capped at [`MAX_BACKOFF`]; the outbox itself is capped by the write path
//!   (`cmd::graph::edge::OUTBOX_LIMIT`, `-BUSY`).
//! - The destination answers `Delivered` only once its log committed the halves.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use prism_engine::graph::{GraphOp, RemoteHalf};
use prism_engine::shard_meta::ShardOp;
use prism_engine::{Op, OpError, Output, Slot, Write};
use prism_replication::types::{GraphRequest, GraphResponse};

use super::fanout::leader_of;
use crate::node::Node;
use crate::replica::Replica;

/// Most entries one delivery carries.
pub const BATCH: usize = 512;
/// Deadline of one delivery call (the destination commits before it answers).
pub const CALL_TTL: Duration = Duration::from_secs(3);
/// How long a new leader waits before its first delivery (module invariants).
pub const TAKEOVER_WAIT: Duration = Duration::from_millis(3500);
/// How often an empty outbox, or a member that does not lead, looks again.
const IDLE: Duration = Duration::from_millis(10);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Delivers this shard's outbox while this member leads. Runs until the node goes.
pub async fn deliver(replica: Weak<Replica>, node: Weak<Node>) {
    let mut leading_since: Option<Instant> = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        let (Some(r), Some(n)) = (replica.upgrade(), node.upgrade()) else { return };
        if !r.is_leader() {
            leading_since = None;
            drop((r, n));
            tokio::time::sleep(IDLE).await;
            continue;
        }
        let since = *leading_since.get_or_insert_with(Instant::now);
        let head = n.keyspace.meta.outbox.head(BATCH);
        if head.is_empty() || since.elapsed() < TAKEOVER_WAIT {
            drop((r, n));
            tokio::time::sleep(IDLE).await;
            continue;
        }
        match deliver_once(&r, &n, head).await {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => {
                tracing::debug!("outbox delivery will be retried: {e}");
                drop((r, n));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One batch: the head's prefix for one destination, delivered then acked.
async fn deliver_once(
    r: &Replica,
    n: &Node,
    head: Vec<prism_engine::graph::outbox::OutboxEntry>,
) -> Result<(), String> {
    let topology = n.topology.load_full();
    let shard_of = |h: &RemoteHalf| topology.shard_of(Slot::of_key(h.holder()));
    let dest = shard_of(&head[0].half);
    let len = head.iter().take_while(|e| shard_of(&e.half) == dest).count();
    let batch = &head[..len];
    let (first_seq, last_seq) = (batch[0].seq, batch[len - 1].seq);
    let halves: Vec<RemoteHalf> = batch.iter().map(|e| e.half.clone()).collect();
    let view = r.fleet.as_ref().ok_or("not in a fleet")?;
    let from = view.my_shard;
    if dest == topology.myself().shard {
        // The slot moved here: the halves are this shard's own to apply.
        commit_inbound(r, n, from, halves).await?;
    } else {
        let (group, leader, peer) = leader_of(r, &topology, dest)?;
        let req = GraphRequest::Deliver { from, first_seq, halves };
        match r.net.graph(group, leader, &peer, req, CALL_TTL).await? {
            GraphResponse::Delivered => {}
            GraphResponse::Refused(line) => return Err(format!("shard {group}: {line}")),
            other => return Err(format!("shard {group}: unexpected answer {other:?}")),
        }
    }
    let ack = Write { now_ms: n.now_ms(), op: Op::Shard(ShardOp::OutboxAck { upto: last_seq }) };
    match r.group.write(vec![ack]).await {
        Ok(c) if matches!(c.outputs.first(), Some(Output::Ok)) => Ok(()),
        Ok(c) => Err(format!("outbox ack answered {:?}", c.outputs.first())),
        Err(e) => Err(format!("outbox ack not committed: {e:?}")),
    }
}

/// Proposes delivered halves through this shard's group; `Ok` once committed.
async fn commit_inbound(r: &Replica, n: &Node, from: u32, halves: Vec<RemoteHalf>) -> Result<(), String> {
    let w = Write { now_ms: n.now_ms(), op: Op::Graph(GraphOp::Inbound { from, halves }) };
    match r.group.write(vec![w]).await {
        Ok(c) => match c.outputs.into_iter().next() {
            Some(Output::Err(OpError::SlotNotServed(slot))) => {
                Err(format!("TRYAGAIN slot {slot} is not served by shard {}; resolve its owner again", r.group_id))
            }
            Some(Output::Err(e)) => Err(format!("ERR {e}")),
            _ => Ok(()),
        },
        Err(e) => Err(format!("TRYAGAIN shard {} did not commit the delivery: {e:?}", r.group_id)),
    }
}

/// The destination side of a delivery: commit, then answer.
pub(super) async fn serve_deliver(
    node: &Arc<Node>,
    group: u32,
    from: u32,
    _first_seq: u64,
    halves: Vec<RemoteHalf>,
) -> GraphResponse {
    let Some(r) = node.replica.get().cloned() else {
        return GraphResponse::Refused("TRYAGAIN not a fleet member".into());
    };
    if group != r.group_id {
        return GraphResponse::Refused(format!("TRYAGAIN this node serves shard {}, not {group}", r.group_id));
    }
    if !r.is_leader() {
        return GraphResponse::Refused(format!("TRYAGAIN node {} does not lead shard {group}", r.me));
    }
    match commit_inbound(&r, node, from, halves).await {
        Ok(()) => GraphResponse::Delivered,
        Err(line) => GraphResponse::Refused(line),
    }
}

/// Outbox lag for INFO and metrics: (entries, age of the oldest in seconds).
pub fn lag(node: &Node) -> (usize, f64) {
    let (entries, oldest) = node.keyspace.meta.outbox.lag();
    let age = oldest.map_or(0.0, |at| node.now_ms().saturating_sub(at) as f64 / 1000.0);
    (entries, age)
}
