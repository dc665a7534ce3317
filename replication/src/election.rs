//! Elections of a shard group as this member takes part in them, on top of openraft's own
//! election timer: a failover that does not waste rounds, and leadership transfer on demand.
//!
//! Why openraft's timer alone is slow after a leader dies (measured; docs/benchmarks.md,
//! "Failover"): a follower campaigns only `lease + election timeout` (12x-16x the heartbeat)
//! after the last heartbeat; the timeout is drawn once per process, not per round; a member
//! whose campaign was refused for a shorter log keeps a flag that adds 2x the lease to its
//! *next* election, even one long after it caught up; and at the same term the candidate
//! with the higher node id refuses a lower one's request. So when the first survivor to
//! campaign is the one with the shorter log (typically a member restarted moments ago),
//! the round is lost, the better survivor waits for its own timer, and often collides.
//! Three rules here make the better survivor campaign at once instead:
//! - **Quiet leader.** A voter that has heard nothing from a leader for `lease + 2 x
//!   heartbeat`, plus half a heartbeat per voter with a lower id, campaigns (its own timer,
//!   independent of openraft's flags). The stagger makes survivors ask one after the other:
//!   the later one hears the first's request before its own timer (and grants it, or
//!   campaigns at once if its log is longer), rather than both bumping the term together.
//! - **Refused a shorter log.** A voter that refuses a campaign because its own log is
//!   longer, and has not heard from a leader for a lease, campaigns itself.
//! - **Refused by a rival with a shorter log.** A candidate refused by another candidate
//!   (a member that voted for itself) whose log is shorter campaigns again, at a higher term
//!   the rival grants.
//!
//! Transfer (`RAFT TRANSFER`, `CLUSTER FAILOVER`): the leader stops proposing (new writes
//! answer `-TRYAGAIN`), lets the entry in flight finish, holds read-index rounds (reads
//! wait), waits until the target's log matches its own, stops heartbeats, and asks the
//! target to campaign once the voters' leases ran out; the target's log is as long as any,
//! so it wins. However the transfer ends, proposals, reads and heartbeats come back.
//!
//! Invariants:
//! - Nothing here decides who leads: members only *ask* (openraft's `trigger().elect()`);
//!   Raft's vote rules (an up-to-date log, one vote per term, the voters' leader lease)
//!   decide, so safety is openraft's. Reads stay behind read-index, which a deposed leader
//!   cannot pass; the lease is never used to serve reads.
//! - A transfer is bounded (`lease + 5 s`) and one at a time; a drop guard restores the
//!   proposer, the read fence and heartbeats even if the waiting future is dropped.
//! - Campaign hints are rate-limited: at most one per term this member is in, unless half
//!   a heartbeat passed (a campaign that never started).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use openraft::raft::{VoteRequest, VoteResponse};
use openraft::{Raft, RaftMetrics, ServerState};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};

use crate::network::PeerNetwork;
use crate::types::{GroupId, NodeId, PeerNode, TypeConfig};

/// Why a leadership transfer did not happen (it changed nothing), or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TransferError {
    /// Only the leader transfers; the leader if one is known.
    #[error("not the leader")]
    NotLeader(Option<NodeId>),
    #[error("node {0} is not a member of this shard group")]
    Unknown(NodeId),
    #[error("node {0} is not a voter of this shard group")]
    NotVoter(NodeId),
    #[error("a leadership transfer is already in progress")]
    Busy,
    /// The bound passed; `leader` is who leads now (perhaps still this node).
    #[error("the transfer to node {target} did not finish in time")]
    Timeout { target: NodeId, leader: Option<NodeId> },
    /// The target could not be asked, or refused.
    #[error("node {target} did not accept to campaign: {reason}")]
    Target { target: NodeId, reason: String },
}

/// A member's part in its group's elections (see the module docs).
pub struct Elections {
    pub group: GroupId,
    me: NodeId,
    raft: OnceLock<Raft<TypeConfig>>,
    net: PeerNetwork,
    heartbeat: Duration,
    /// How long a voter refuses votes after hearing from its leader (openraft: the
    /// election timeout's maximum).
    lease: Duration,
    /// Last time this member heard from a leader it accepted, granted a vote, or campaigned.
    contact: Mutex<Instant>,
    /// The term this member was in when a hint last made it campaign, and when (rate limit).
    kicked: Mutex<Option<(u64, Instant)>>,
    /// A transfer is running: the proposer and the read fence hold (fast check).
    transferring: AtomicBool,
    /// The same, for waiters.
    held: watch::Sender<bool>,
    /// The proposer's in-flight slots: a transfer takes them all to know nothing is in flight.
    in_flight: Arc<Semaphore>,
    in_flight_slots: u32,
}

/// Undoes a transfer's holds, however the transfer ends.
struct Release<'a> {
    elections: &'a Elections,
    raft: Raft<TypeConfig>,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.raft.runtime_config().heartbeat(true);
        self.elections.transferring.store(false, Ordering::SeqCst);
        self.elections.held.send_replace(false);
    }
}

fn is_voter(m: &RaftMetrics<NodeId, PeerNode>, id: NodeId) -> bool {
    m.membership_config.membership().voter_ids().any(|v| v == id)
}

impl Elections {
    pub fn new(
        group: GroupId,
        me: NodeId,
        net: PeerNetwork,
        heartbeat: Duration,
        lease: Duration,
        in_flight: Arc<Semaphore>,
        in_flight_slots: u32,
    ) -> Elections {
        Elections {
            group,
            me,
            raft: OnceLock::new(),
            net,
            heartbeat,
            lease,
            contact: Mutex::new(Instant::now()),
            kicked: Mutex::new(None),
            transferring: AtomicBool::new(false),
            held: watch::channel(false).0,
            in_flight,
            in_flight_slots,
        }
    }

    /// The group's Raft, once started (the network is built before the Raft it serves).
    pub fn set_raft(&self, raft: Raft<TypeConfig>) {
        let _ = self.raft.set(raft);
    }

    /// Heard from a leader this member accepts (an append or snapshot it took).
    pub fn contact(&self) {
        *self.contact.lock() = Instant::now();
    }

    /// True while a transfer holds the proposer and the read fence.
    #[inline]
    pub fn transferring(&self) -> bool {
        self.transferring.load(Ordering::Acquire)
    }

    /// Waits until no transfer holds the group (at most a transfer's bound).
    pub async fn until_released(&self) {
        let mut rx = self.held.subscribe();
        let _ = rx.wait_for(|held| !*held).await;
    }

    /// The longest a transfer may take.
    pub fn transfer_bound(&self) -> Duration {
        self.lease + Duration::from_secs(5)
    }

    /// This member answered a vote request (the peer listener calls this).
    pub fn on_vote_request(&self, req: &VoteRequest<NodeId>, resp: &VoteResponse<NodeId>) {
        if resp.vote_granted {
            self.contact();
            return;
        }
        // Refused for a shorter log: that candidate cannot win, and if the leader is silent
        // here too, waiting for our own timer only lengthens the outage.
        if resp.last_log_id > req.last_log_id && self.contact.lock().elapsed() > self.lease {
            self.kick("refused a candidate with a shorter log");
        }
    }

    /// `target` answered this member's vote request (the group's network calls this).
    pub fn on_vote_response(&self, target: NodeId, req: &VoteRequest<NodeId>, resp: &VoteResponse<NodeId>) {
        let rival = !resp.vote_granted
            && !resp.vote.is_committed()
            && resp.vote.leader_id().node_id == target
            && resp.vote.leader_id().term >= req.vote.leader_id().term;
        if rival && resp.last_log_id < req.last_log_id {
            self.kick("refused by a rival candidate with a shorter log");
        }
    }

    /// Campaigns now (openraft ignores it on a leader or a non-voter).
    fn kick(&self, why: &str) {
        let Some(raft) = self.raft.get().cloned() else { return };
        let term = raft.metrics().borrow().current_term;
        {
            // Once per term: the campaign already asked for moves this member to the next
            // term, where a rival's refusal may call for one more (never rate-limit that).
            let mut kicked = self.kicked.lock();
            if kicked.is_some_and(|(t, at)| t >= term && at.elapsed() < self.heartbeat / 2) {
                return;
            }
            *kicked = Some((term, Instant::now()));
        }
        self.contact();
        tracing::info!(group = self.group, "campaigning at once: {why}");
        tokio::spawn(async move {
            let _ = raft.trigger().elect().await;
        });
    }

    /// The quiet-leader rule, until the group stops.
    pub async fn watch_leader(self: Arc<Self>) {
        let tick = (self.heartbeat / 4).max(Duration::from_millis(10));
        let quiet = self.lease + self.heartbeat * 2;
        let Some(metrics) = self.raft.get().map(|r| r.metrics()) else { return };
        loop {
            tokio::time::sleep(tick).await;
            let (leading, voter, lower) = {
                let m = metrics.borrow();
                let lower = m.membership_config.membership().voter_ids().filter(|v| *v < self.me).count() as u32;
                (m.state == ServerState::Leader, is_voter(&m, self.me), lower)
            };
            if leading || !voter {
                self.contact();
            } else if self.contact.lock().elapsed() > quiet + self.heartbeat / 2 * lower {
                self.kick("no leader heard from");
            }
        }
    }

    /// Asked by the leader (a transfer) or by `CLUSTER FAILOVER FORCE`: campaign after
    /// `not_before` (and once the log reached `log_at_least`, or `not_before` passed
    /// again: the votes decide whether a shorter log may lead, never this check), again
    /// every half heartbeat until this member or another new leader leads, or `window`
    /// passed. Refuses at once only a member that cannot lead (a learner).
    pub fn campaign(self: &Arc<Self>, not_before: Duration, window: Duration, log_at_least: u64) -> Result<(), String> {
        let Some(raft) = self.raft.get().cloned() else { return Err("the group is starting".into()) };
        let start_term = {
            let m = raft.metrics();
            let m = m.borrow();
            if m.state == ServerState::Leader {
                return Ok(());
            }
            if !is_voter(&m, self.me) {
                return Err(format!("node {} is not a voter", self.me));
            }
            m.current_term
        };
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(not_before).await;
            let end = Instant::now() + window;
            let retry = (this.heartbeat / 2).max(Duration::from_millis(10));
            let mut metrics = raft.metrics();
            // The leader saw the log acknowledged; this member's metrics may trail its log.
            let logged = tokio::time::Instant::now() + not_before;
            let _ = wait_for(&mut metrics, logged, |m| m.last_log_index.unwrap_or(0) >= log_at_least).await;
            while Instant::now() < end {
                {
                    let m = metrics.borrow();
                    let someone_else = m.current_term > start_term && m.current_leader.is_some_and(|l| l != this.me);
                    if m.state == ServerState::Leader || someone_else {
                        return;
                    }
                }
                this.contact();
                if raft.trigger().elect().await.is_err() {
                    return;
                }
                tokio::time::sleep(retry).await;
            }
        });
        Ok(())
    }

    /// `CLUSTER FAILOVER` on this member: asks `leader` (at `node`) to hand leadership to
    /// this member, and returns who leads after.
    pub async fn ask_leader(&self, leader: NodeId, node: &PeerNode) -> Result<NodeId, TransferError> {
        let ttl = self.transfer_bound() + Duration::from_secs(2);
        self.net.transfer(self.group, leader, node, self.me, ttl).await
    }

    /// Hands leadership to `target` (see the module docs) and returns who leads after.
    pub async fn transfer(&self, target: NodeId) -> Result<NodeId, TransferError> {
        let Some(raft) = self.raft.get().cloned() else { return Err(TransferError::NotLeader(None)) };
        let mut metrics = raft.metrics();
        let (term, node) = {
            let m = metrics.borrow_and_update();
            if m.state != ServerState::Leader || m.current_leader != Some(self.me) {
                return Err(TransferError::NotLeader(m.current_leader));
            }
            let Some(node) = m.membership_config.membership().get_node(&target).cloned() else {
                return Err(TransferError::Unknown(target));
            };
            if !is_voter(&m, target) {
                return Err(TransferError::NotVoter(target));
            }
            (m.current_term, node)
        };
        if target == self.me {
            return Ok(self.me);
        }
        if self.transferring.swap(true, Ordering::SeqCst) {
            return Err(TransferError::Busy);
        }
        let _release = Release { elections: self, raft: raft.clone() };
        self.held.send_replace(true);
        let deadline = Instant::now() + self.transfer_bound();
        let result = self.hand_over(&raft, &mut metrics, target, &node, term, deadline).await;
        let leader = metrics.borrow().current_leader;
        match result {
            Ok(()) => Ok(leader.unwrap_or(target)),
            Err(Some(e)) => Err(e),
            Err(None) => Err(TransferError::Timeout { target, leader }),
        }
    }

    /// The transfer's steps; `Err(None)` when the deadline passed.
    async fn hand_over(
        &self,
        raft: &Raft<TypeConfig>,
        metrics: &mut watch::Receiver<RaftMetrics<NodeId, PeerNode>>,
        target: NodeId,
        node: &PeerNode,
        term: u64,
        deadline: Instant,
    ) -> Result<(), Option<TransferError>> {
        let at = tokio::time::Instant::from_std(deadline);
        let me = self.me;
        // Nothing in flight: every proposer slot, held until the transfer ends.
        let _slots = tokio::time::timeout_at(at, self.in_flight.clone().acquire_many_owned(self.in_flight_slots))
            .await
            .map_err(|_| None)?
            .map_err(|_| Some(TransferError::NotLeader(None)))?;
        // The target holds the whole log (heartbeats still on: no one times out meanwhile).
        let deposed = |m: &RaftMetrics<NodeId, PeerNode>| m.state != ServerState::Leader || m.current_term != term;
        let caught_up = |m: &RaftMetrics<NodeId, PeerNode>| {
            let last = m.last_log_index.unwrap_or(0);
            let matched = m.replication.as_ref().and_then(|r: &BTreeMap<_, _>| r.get(&target).copied().flatten());
            matched.is_some_and(|l| l.index >= last)
        };
        let m = wait_for(metrics, at, |m| deposed(m) || caught_up(m)).await.ok_or(None)?;
        if deposed(&m) {
            return Err(Some(TransferError::NotLeader(m.current_leader.filter(|l| *l != me))));
        }
        let last = m.last_log_index.unwrap_or(0);
        // Voters refuse votes for a lease after our last heartbeat: stop them, and ask the
        // target to campaign once the lease ran out.
        raft.runtime_config().heartbeat(false);
        let stopped = Instant::now();
        let not_before = (self.lease + self.heartbeat / 2).saturating_sub(stopped.elapsed());
        let window = deadline.saturating_duration_since(Instant::now());
        self.net
            .campaign(self.group, target, node, not_before, window, last)
            .await
            .map_err(|reason| Some(TransferError::Target { target, reason }))?;
        wait_for(metrics, at, |m| m.current_term > term && m.current_leader.is_some_and(|l| l != me))
            .await
            .map(|_| ())
            .ok_or(None)
    }
}

/// The first metrics satisfying `done`, or `None` at the deadline.
async fn wait_for(
    metrics: &mut watch::Receiver<RaftMetrics<NodeId, PeerNode>>,
    deadline: tokio::time::Instant,
    done: impl Fn(&RaftMetrics<NodeId, PeerNode>) -> bool,
) -> Option<RaftMetrics<NodeId, PeerNode>> {
    loop {
        {
            let m = metrics.borrow_and_update();
            if done(&m) {
                return Some(m.clone());
            }
        }
        match tokio::time::timeout_at(deadline, metrics.changed()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
    }
}
