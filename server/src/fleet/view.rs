//! A fleet node's view of the other shards: who leads each, who is alive, and the
//! topology clients see, rebuilt from the topology file, this node's own group and the
//! statuses other nodes send.
//!
//! Every node tells every other node its [`NodeStatus`] (its group, term, the leader it
//! knows and its group's membership) about once a second and at once when its group's
//! leader changes, over the peer network. Each receiver keeps, per shard, the leader
//! named in the highest term and the membership with the highest log index.
//!
//! Invariants:
//! - Leader hints never decide correctness: a member serves writes and linearizable
//!   reads only while its own Raft says it leads, so a stale hint costs a client one
//!   more `-MOVED`. A hint only moves forward (a higher term), so a late, older status
//!   cannot bring back a deposed leader.
//! - This node's own shard is described from its own Raft (membership and leader), never
//!   from hearsay.
//! - A shard whose leader was never heard of lists its first member as primary, so
//!   every assigned slot has a node to ask (that node redirects or says TRYAGAIN).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prism_engine::Keyspace;
use prism_replication::{NodeStatus, PeerNetwork};
use tokio::sync::Notify;

use super::FleetSpec;
use crate::config::GroupMember;
use crate::node::Node;
use crate::replica::{cluster_id, Replica};
use crate::topology::{ClusterNode, Topology};

/// How often a node tells the others its status.
const EVERY: Duration = Duration::from_millis(1000);
/// A node not heard from for this long is suspect (`fail?` in CLUSTER NODES)...
const SUSPECT_AFTER: Duration = Duration::from_millis(3500);
/// ... and for this long, failed (`fail`: where Redis marks a node once a majority of
/// masters agree it is down; here, once it has been silent well past suspicion).
const FAIL_AFTER: Duration = Duration::from_secs(10);
/// How long one status delivery may take.
const SEND_TTL: Duration = Duration::from_millis(800);

/// What a shard's group is known to look like.
#[derive(Debug, Clone, Default)]
struct ShardHint {
    /// (term, leader) of the newest leader heard of.
    leader: Option<(u64, u64)>,
    /// (membership log index, members with their voter flag), newest heard of.
    members: Option<(u64, Vec<(GroupMember, bool)>)>,
}

pub struct FleetView {
    pub spec: FleetSpec,
    pub me: u64,
    pub my_shard: u32,
    /// This node's keyspace: its shard's slot claims are read from it.
    keyspace: Arc<Keyspace>,
    /// Per slot, the owning shard and the epoch of that claim: the topology file's shard
    /// at epoch 0, then the highest-epoch claim heard (module header).
    owners: Mutex<Vec<(u32, u64)>>,
    started: Instant,
    hints: Mutex<HashMap<u32, ShardHint>>,
    heard: Mutex<HashMap<u64, Instant>>,
    /// Signalled when a status changed a hint: the topology is rebuilt.
    changed: Notify,
}

impl FleetView {
    pub fn new(spec: FleetSpec, me: u64, keyspace: Arc<Keyspace>) -> Result<FleetView, String> {
        let my_shard =
            spec.shard_of_node(me).map(|s| s.id).ok_or_else(|| format!("node-id {me} is not in any shard"))?;
        let owners = spec.base_owners().into_iter().map(|o| (o, 0)).collect();
        Ok(FleetView {
            spec,
            me,
            my_shard,
            keyspace,
            owners: Mutex::new(owners),
            started: Instant::now(),
            hints: Mutex::default(),
            heard: Mutex::default(),
            changed: Notify::new(),
        })
    }

    /// Takes in a status another node sent.
    pub fn noted(&self, status: NodeStatus) {
        self.heard.lock().insert(status.node, Instant::now());
        if self.claims_heard(&status.claims) {
            self.changed.notify_one();
        }
        if status.group == self.my_shard || self.spec.shards.iter().all(|s| s.id != status.group) {
            return;
        }
        if self.hint(status.group, status.term, status.leader, status.membership_index, &status.members) {
            self.changed.notify_one();
        }
    }

    /// Takes in slot claims (this node's or another's); true when an owner changed.
    /// Per slot the highest epoch wins; equal epochs name the same move, hence the same
    /// owner.
    fn claims_heard(&self, claims: &[(u16, u16, u32, u64)]) -> bool {
        let mut owners = self.owners.lock();
        let mut changed = false;
        for &(first, last, owner, epoch) in claims {
            for slot in first..=last {
                if let Some(o) = owners.get_mut(slot as usize) {
                    if epoch > o.1 {
                        changed |= o.0 != owner;
                        *o = (owner, epoch);
                    }
                }
            }
        }
        changed
    }

    /// The shard that owns `slot` as this node knows it, and the claim's epoch.
    pub fn owner_of(&self, slot: u16) -> (u32, u64) {
        self.owners.lock().get(slot as usize).copied().unwrap_or((prism_engine::shard_meta::NO_SHARD, 0))
    }

    /// The highest claim epoch known (a new move's epoch is above it).
    pub fn max_epoch(&self) -> u64 {
        self.owners.lock().iter().map(|o| o.1).max().unwrap_or(0)
    }

    /// Takes in claims from the metadata catalog (or anywhere else), as a status does.
    pub fn note_claims(&self, claims: &[(u16, u16, u32, u64)]) {
        if self.claims_heard(claims) {
            self.changed.notify_one();
        }
    }

    /// Takes in another shard's membership at `index` (this node's own shard is always
    /// described from its own Raft).
    pub fn note_members(&self, shard: u32, index: u64, members: &[(u64, prism_replication::PeerNode, bool)]) {
        if shard != self.my_shard
            && self.spec.shards.iter().any(|s| s.id == shard)
            && self.hint(shard, 0, None, index, members)
        {
            self.changed.notify_one();
        }
    }

    /// What this node knows of the fleet, for the metadata catalog: per slot the newest
    /// claim, per shard the newest membership (its own from its Raft).
    pub fn known(&self, replica: &Replica) -> super::catalog::Known {
        let own = self.status(replica);
        self.claims_heard(&own.claims);
        let mut members: std::collections::BTreeMap<u32, (u64, super::catalog::Members)> = self
            .hints
            .lock()
            .iter()
            .filter(|(shard, _)| **shard != self.my_shard)
            .filter_map(|(shard, h)| {
                let (index, list) = h.members.as_ref()?;
                let list = list.iter().map(|(m, voter)| (m.id, m.peer_node(), *voter)).collect();
                Some((*shard, (*index, list)))
            })
            .collect();
        // (A group's first membership is at index 0.)
        members.insert(self.my_shard, (own.membership_index, own.members));
        super::catalog::Known { owners: self.owners.lock().clone(), members }
    }

    /// Records what is known of `group`; true when that changed anything.
    fn hint(
        &self,
        group: u32,
        term: u64,
        leader: Option<u64>,
        index: u64,
        members: &[(u64, prism_replication::PeerNode, bool)],
    ) -> bool {
        let mut hints = self.hints.lock();
        let hint = hints.entry(group).or_default();
        let mut changed = false;
        if let Some(l) = leader {
            if hint.leader.is_none_or(|(t, old)| term > t || (term == t && old != l)) {
                hint.leader = Some((term, l));
                changed = true;
            }
        }
        if !members.is_empty() && hint.members.as_ref().is_none_or(|(i, _)| index > *i) {
            let list = members
                .iter()
                .filter_map(|(id, n, voter)| crate::replica::member_of(*id, n).map(|m| (m, *voter)))
                .collect();
            hint.members = Some((index, list));
            changed = true;
        }
        changed
    }

    /// This node's status, from its group's Raft.
    fn status(&self, replica: &Replica) -> NodeStatus {
        let leadership = replica.group.leadership();
        let m = replica.group.metrics();
        let index = m.membership_config.log_id().map_or(0, |l| l.index);
        let members = replica.membership().into_iter().map(|(g, voter)| (g.id, g.peer_node(), voter)).collect();
        NodeStatus {
            node: self.me,
            group: self.my_shard,
            term: leadership.term,
            leader: leadership.leader,
            membership_index: index,
            members,
            claims: self.keyspace.meta.claim_ranges(),
        }
    }

    /// How long `node` has not been heard from (since this node started, if never).
    fn silent_for(&self, node: u64) -> Duration {
        if node == self.me {
            return Duration::ZERO;
        }
        self.heard.lock().get(&node).unwrap_or(&self.started).elapsed()
    }

    /// True when `node` has been silent long enough to be suspect (`fail?`).
    pub fn is_suspect(&self, node: u64) -> bool {
        self.silent_for(node) > SUSPECT_AFTER
    }

    /// The cluster as clients see it: every shard of the file, this shard from its own
    /// Raft, the others from the newest hints.
    pub fn topology(&self, replica: &Replica) -> Topology {
        let own = self.status(replica);
        // Our own leader, when known, is the best hint for our shard too.
        self.hint(self.my_shard, own.term, own.leader, 0, &[]);
        self.claims_heard(&own.claims);
        let ranges = self.slot_ranges();
        let hints = self.hints.lock().clone();
        let mut shards = Vec::with_capacity(self.spec.shards.len());
        let mut nodes = Vec::new();
        let mut myself = 0;
        let mut epoch = 0;
        for (index, shard) in self.spec.shards.iter().enumerate() {
            shards.push((format!("{:040x}", shard.id), ranges.get(&shard.id).cloned().unwrap_or_default()));
            let hint = hints.get(&shard.id).cloned().unwrap_or_default();
            let members: Vec<GroupMember> = if shard.id == self.my_shard {
                replica.membership().into_iter().map(|(m, _)| m).collect()
            } else {
                match hint.members {
                    Some((_, list)) => list.into_iter().map(|(m, _)| m).collect(),
                    None => shard.members.iter().map(|m| m.as_group_member()).collect(),
                }
            };
            let (term, leader) = hint.leader.unwrap_or((0, 0));
            let leader =
                if members.iter().any(|m| m.id == leader) { leader } else { members.first().map_or(0, |m| m.id) };
            epoch = epoch.max(term);
            for m in members {
                if m.id == self.me {
                    myself = nodes.len();
                }
                let zone = self.spec.members().find(|(_, s)| s.id == m.id).and_then(|(_, s)| s.zone.clone());
                let silent = self.silent_for(m.id);
                nodes.push(ClusterNode {
                    id: cluster_id(m.id),
                    ip: m.host.clone(),
                    port: m.port,
                    cport: m.peer_port,
                    shard: index,
                    primary: m.id == leader,
                    config_epoch: term,
                    zone,
                    suspect: silent > SUSPECT_AFTER,
                    failed: silent > FAIL_AFTER,
                });
            }
        }
        Topology::new(shards, nodes, myself, epoch.max(1))
    }

    /// Each shard's slots as ranges, from the owners map.
    fn slot_ranges(&self) -> HashMap<u32, Vec<(u16, u16)>> {
        let owners = self.owners.lock();
        let mut out: HashMap<u32, Vec<(u16, u16)>> = HashMap::new();
        let mut start = 0usize;
        for i in 1..=owners.len() {
            if i == owners.len() || owners[i].0 != owners[start].0 {
                out.entry(owners[start].0).or_default().push((start as u16, (i - 1) as u16));
                start = i;
            }
        }
        out
    }

    /// Signals that this node's own group changed (leader, term or membership): its
    /// status goes out at once instead of at the next tick.
    pub fn local_change(&self) {
        self.changed.notify_one();
    }
}

/// Tells every other node of the fleet this node's status, every [`EVERY`] and at once
/// on a change, and keeps `node.topology` rebuilt. Runs until the node or replica goes.
pub async fn gossip(view: Arc<FleetView>, replica: Weak<Replica>, node: Weak<Node>, net: PeerNetwork) {
    let peers: Vec<u64> = view.spec.members().map(|(_, m)| m.id).filter(|id| *id != view.me).collect();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent: Option<NodeStatus> = None;
    loop {
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            _ = view.changed.notified() => false,
        };
        let (Some(replica), Some(node)) = (replica.upgrade(), node.upgrade()) else { return };
        let status = view.status(&replica);
        node.topology.store(Arc::new(view.topology(&replica)));
        // On a notification, send only when our own status moved (a hint from another
        // node needs no echo); on the tick, always.
        let due = ticked || last_sent.as_ref() != Some(&status);
        drop((replica, node));
        if !due {
            continue;
        }
        for &peer in &peers {
            let (net, status) = (net.clone(), status.clone());
            tokio::spawn(async move {
                if let Err(e) = net.tell(peer, status, SEND_TTL).await {
                    tracing::trace!(peer, "status not delivered: {e}");
                }
            });
        }
        last_sent = Some(status);
        tick.reset();
    }
}
