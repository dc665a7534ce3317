//! Where a keyed request goes on a fleet node, from this shard's own replicated slot
//! state (`prism_engine::shard_meta`) rather than the gossiped map alone: `-MOVED` for
//! slots another shard owns, and Redis Cluster's `-ASK`/`ASKING` protocol for slots
//! moving between shards.
//!
//! Invariants:
//! - A slot this shard's state says it gave away is never served here, even before the
//!   gossiped map caught up: the request is redirected to the new owner.
//! - In a slot this shard is migrating: a request whose keys are all still here is served
//!   here (a write is proposed guarded by the slot's version, so it fails if any key of
//!   the slot moved in between, and a read is re-checked after it ran); one whose keys are
//!   all gone is sent to the target with `-ASK`; a mix is `-TRYAGAIN`, as in Redis.
//! - An importing slot serves only requests preceded by `ASKING`; others are redirected
//!   to the owner.

use bytes::Bytes;
use prism_engine::shard_meta::{Serving, NO_SHARD};
use prism_engine::Slot;

use super::view::FleetView;
use crate::cmd::CmdError;
use crate::node::Node;
use crate::table::CommandSpec;

/// How a keyed request on a fleet node proceeds.
#[derive(Debug)]
pub enum Decision {
    /// Serve it here.
    Serve,
    /// Serve it here; it touches a migrating slot: guard a write on (slot, version) and
    /// re-check a read against that version after it ran.
    Guard(u16, u64),
}

/// Decides for a request whose keys all hash to `slot` (checked by the caller).
pub fn route(
    node: &Node,
    view: &FleetView,
    spec: &CommandSpec,
    args: &[Bytes],
    slot: Slot,
    asking: bool,
) -> Result<Decision, CmdError> {
    let s = slot.get();
    match node.keyspace.meta.serving(s) {
        Serving::Owned => Ok(Decision::Serve),
        Serving::Importing(_) if asking => Ok(Decision::Serve),
        Serving::Importing(_) => Err(moved(node, view, slot, view.owner_of(s).0)),
        Serving::Elsewhere(owner) => Err(moved(node, view, slot, owner)),
        Serving::Migrating(to) => {
            // The version first: any change after it (a key moved) fails the guard.
            let version = node.keyspace.slot_version(slot);
            let now = node.now_ms();
            let (mut here, mut gone) = (0, 0);
            for i in spec.key_indexes_in(args) {
                // Taken out and on its way: neither here nor surely there yet.
                if node.keyspace.meta.is_outgoing(s, &args[i]) {
                    return Err(try_again(s));
                }
                if node.keyspace.get(&args[i], now, |e| e.is_some()) {
                    here += 1;
                } else {
                    gone += 1;
                }
            }
            match (here, gone) {
                (_, 0) => Ok(Decision::Guard(s, version)),
                (0, _) => match leader_addr(node, view, to) {
                    Some(addr) => Err(CmdError::msg(format!("ASK {s} {addr}"))),
                    None => Err(try_again(s)),
                },
                _ => Err(CmdError::msg("TRYAGAIN Multiple keys request during rehashing of slot")),
            }
        }
    }
}

/// `-MOVED` to the leader of shard `owner`, or `-TRYAGAIN` while none is known.
fn moved(node: &Node, view: &FleetView, slot: Slot, owner: u32) -> CmdError {
    match leader_addr(node, view, owner) {
        Some(addr) => CmdError::msg(format!("MOVED {slot} {addr}")),
        None if owner == NO_SHARD => CmdError::msg("CLUSTERDOWN Hash slot not served"),
        None => try_again(slot.get()),
    }
}

/// The reply to a read in a migrating slot that a write overtook while it ran.
pub fn retry(slot: u16) -> CmdError {
    try_again(slot)
}

fn try_again(slot: u16) -> CmdError {
    CmdError::msg(format!("TRYAGAIN slot {slot} is moving between shards; retry"))
}

/// The client address of shard `shard`'s leader as the topology names it.
pub fn leader_addr(node: &Node, view: &FleetView, shard: u32) -> Option<String> {
    let index = view.spec.shards.iter().position(|s| s.id == shard)?;
    let topology = node.topology.load();
    topology.primary_of(index).map(|n| format!("{}:{}", n.ip, n.port))
}
