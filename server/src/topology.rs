//! Which node serves which slots: the node's view of the cluster.
//!
//! Today a node is a one-node cluster owning all 16384 slots; the fleet issue replaces
//! the contents with a Raft-replicated topology. The shape is already the fleet's: slots
//! map to shards, shards to member nodes, and routing asks [`Topology::route`] so that
//! `-MOVED` and `-CROSSSLOT` come from one place.

use prism_engine::{Slot, SLOT_COUNT};

/// A node as the cluster protocol describes it.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// 40 lower-case hex characters, stable across restarts.
    pub id: String,
    /// Announced IP; empty means "the address the client connected to".
    pub ip: String,
    pub port: u16,
    /// The cluster bus port (client port + 10000).
    pub cport: u16,
    pub shard: usize,
    pub primary: bool,
    pub config_epoch: u64,
    /// Availability zone, when the fleet's topology names one (CLUSTER SHARDS, HELLO).
    pub zone: Option<String>,
    /// Not heard from lately (CLUSTER NODES `fail?`, link `disconnected`).
    pub suspect: bool,
    /// Not heard from for long (CLUSTER NODES `fail` instead of `fail?`).
    pub failed: bool,
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub nodes: Vec<ClusterNode>,
    /// Per shard: its id (40 hex) and its slot ranges, inclusive.
    pub shards: Vec<(String, Vec<(u16, u16)>)>,
    /// Index into `shards` per slot.
    slot_shard: Vec<u16>,
    /// Index of this node in `nodes`.
    pub myself: usize,
    pub current_epoch: u64,
}

/// Where a command on a slot must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This node serves the slot; the shard index lets callers detect cross-shard keys.
    Local(usize),
    /// Another shard serves it: redirect to its primary.
    Moved(usize),
    /// No shard serves it (`-CLUSTERDOWN`).
    Unassigned,
}

/// `slot_shard` of a slot no shard serves.
const UNASSIGNED: u16 = u16::MAX;

impl Topology {
    /// The embedded default: one node, one shard, every slot.
    pub fn single(id: String, ip: String, port: u16) -> Topology {
        let shard_id = format!("{:0>40}", &id[..id.len().min(40)]);
        Topology {
            nodes: vec![ClusterNode {
                id,
                ip,
                port,
                cport: port.wrapping_add(10000),
                shard: 0,
                primary: true,
                config_epoch: 1,
                zone: None,
                suspect: false,
                failed: false,
            }],
            shards: vec![(shard_id, vec![(0, SLOT_COUNT as u16 - 1)])],
            slot_shard: vec![0; SLOT_COUNT],
            myself: 0,
            current_epoch: 1,
        }
    }

    /// One shard owning every slot, served by `nodes` (a replicated group; the primary,
    /// if any, is the group's current leader).
    pub fn group(nodes: Vec<ClusterNode>, myself: usize, epoch: u64) -> Topology {
        Topology::new(vec![(format!("{:040x}", 1), vec![(0, SLOT_COUNT as u16 - 1)])], nodes, myself, epoch)
    }

    /// Shards (id, inclusive slot ranges) served by `nodes` (each naming its shard's
    /// index in `shards`). Slots no shard lists are unassigned.
    pub fn new(shards: Vec<(String, Vec<(u16, u16)>)>, nodes: Vec<ClusterNode>, myself: usize, epoch: u64) -> Topology {
        let mut slot_shard = vec![UNASSIGNED; SLOT_COUNT];
        for (index, (_, ranges)) in shards.iter().enumerate() {
            for &(a, b) in ranges {
                for slot in a..=b.min(SLOT_COUNT as u16 - 1) {
                    slot_shard[slot as usize] = index as u16;
                }
            }
        }
        Topology { nodes, shards, slot_shard, myself, current_epoch: epoch }
    }

    pub fn myself(&self) -> &ClusterNode {
        &self.nodes[self.myself]
    }

    pub fn shard_of(&self, slot: Slot) -> usize {
        self.slot_shard[slot.index()] as usize
    }

    pub fn route(&self, slot: Slot) -> Route {
        let shard = self.shard_of(slot);
        if shard == UNASSIGNED as usize {
            return Route::Unassigned;
        }
        if shard == self.myself().shard {
            Route::Local(shard)
        } else {
            Route::Moved(shard)
        }
    }

    /// The primary node of a shard.
    pub fn primary_of(&self, shard: usize) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.shard == shard && n.primary)
    }

    /// Members of a shard, primary first.
    pub fn members_of(&self, shard: usize) -> impl Iterator<Item = &ClusterNode> {
        let primary = self.nodes.iter().filter(move |n| n.shard == shard && n.primary);
        let replicas = self.nodes.iter().filter(move |n| n.shard == shard && !n.primary);
        primary.chain(replicas)
    }

    /// Slots some shard serves (whether or not its primary is known).
    pub fn slots_assigned(&self) -> usize {
        self.shards.iter().flat_map(|(_, r)| r).map(|(a, b)| (*b - *a) as usize + 1).sum()
    }
}
