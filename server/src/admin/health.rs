//! `/readyz`: whether this node can serve its slots now.
//!
//! A standalone node is ready while it runs. A member of a shard group is ready when the
//! group has a leader and the member can answer for it (and, on a voter of the fleet's
//! metadata group, when that group has a leader too):
//! - the leader, while a majority acknowledged it recently (a leader cut off from the
//!   majority keeps its role in openraft until it hears a higher term, but cannot commit);
//! - a follower or learner, when it has applied all but [`READY_APPLY_LAG`] of the log
//!   entries it holds.
//!
//! Limitation: openraft tells a follower neither the leader's last index nor its commit
//! index, so a follower that stopped receiving entries still looks caught up here; the
//! leader's `prism_raft_replica_lag_entries` (and the `PrismReplicationLag` alert) is what
//! watches that.

use prism_replication::{Leadership, ServerState};

use crate::node::Node;

/// Log entries a follower may hold but not have applied and still count as ready.
pub const READY_APPLY_LAG: u64 = 1_000;

/// The answer of `/readyz`, with a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready(String),
    NotReady(String),
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready(_))
    }
}

/// Longest a leader may go without a majority's acknowledgement and still be ready:
/// ten heartbeats (elections time out after four to eight), at least two seconds.
fn quorum_bound_ms(node: &Node) -> u64 {
    node.config.read().raft_heartbeat_ms.saturating_mul(10).max(2_000)
}

pub fn readiness(node: &Node) -> Readiness {
    let Some(r) = node.replica() else {
        return Readiness::Ready("standalone node".into());
    };
    let group = r.group_id;
    let m = r.group.metrics();
    if let Err(e) = &m.running_state {
        return Readiness::NotReady(format!("raft of group {group} stopped: {e}"));
    }
    let Leadership { leader, state, term } = r.group.leadership();
    let Some(leader) = leader else {
        return Readiness::NotReady(format!("group {group} has no leader (term {term}, this member is {state:?})"));
    };
    // A voter of the fleet's metadata group hosts it too (a learner only keeps a copy).
    if let Some(c) = r.catalog.as_ref().filter(|c| c.voters().contains(&r.me)) {
        let l = c.group.leadership();
        if l.leader.is_none() {
            return Readiness::NotReady(format!(
                "metadata group {} has no leader (term {}, this voter is {:?})",
                crate::fleet::catalog::META_GROUP,
                l.term,
                l.state
            ));
        }
    }
    let applied = m.last_applied.map_or(0, |l| l.index);
    if state == ServerState::Leader {
        let voters = m.membership_config.membership().voter_ids().count();
        let bound = quorum_bound_ms(node);
        if let Some(ms) = m.millis_since_quorum_ack.filter(|ms| voters > 1 && *ms > bound) {
            return Readiness::NotReady(format!(
                "leader of group {group} (term {term}) has not heard from a majority for {ms} ms"
            ));
        }
        return Readiness::Ready(format!("leader of group {group} (term {term}), applied index {applied}"));
    }
    let last = m.last_log_index.unwrap_or(0);
    let behind = last.saturating_sub(applied);
    if behind > READY_APPLY_LAG {
        return Readiness::NotReady(format!(
            "group {group}: applied index {applied} is {behind} entries behind this member's log ({last})"
        ));
    }
    Readiness::Ready(format!("group {group} led by node {leader} (term {term}), applied index {applied}"))
}
