//! A shard group as a node runs it: its Raft, the proposer that batches client writes
//! into log entries, the read fence that makes leader reads linearizable, and the
//! leader as last seen.
//!
//! Invariants:
//! - A write's outcome is reported only when it is known: `Ok` after the entry carrying it
//!   committed (durable on a majority) and applied; [`WriteError::NotLeader`] only when
//!   openraft refused or truncated the entry (it never commits); anything else past the
//!   deadline is [`WriteError::Timeout`]: it may or may not have happened.
//! - Batching: writes queued while an entry is in flight go into the next one, and at
//!   most [`IN_FLIGHT`] entries are outstanding, so under load many writes share one
//!   fsync on every member.
//! - A read fence completes only after a round of leadership confirmation (read-index)
//!   that started after the fence was asked for, and after the state machine applied up
//!   to that round's read index. Callers arriving while a round runs share the next one.
//! - Exactly one configured member initializes a new group (the lowest id, only when its
//!   log and vote are empty); a restarted member never does.
//! - While a leadership transfer runs ([`crate::election`]), new writes answer
//!   [`WriteError::NotLeader`] at once (never proposed), queued ones wait for its end, and
//!   read-index rounds wait for it: a leader handing over proposes and confirms nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{Config, Raft, RaftMetrics, ServerState};
use prism_engine::Write;
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};

use crate::election::{Elections, TransferError};
use crate::log_store::RocksLogStore;
use crate::network::{Groups, PeerNetwork};
use crate::state_machine::KeyspaceStateMachine;
use crate::types::{GroupId, NodeId, Outputs, PeerNode, TypeConfig};

/// Log entries a group's proposer keeps outstanding at once. One: openraft appends,
/// replicates and applies entry by entry, so fewer, fuller entries win. Measured with
/// bench/scripts/raft-compare (SET -c 50, one member, -P 1): 30k/s with 1, 23k/s with 2,
/// 9k/s with 8; three members were no faster with more.
pub const IN_FLIGHT: usize = 1;
/// Most writes packed into one log entry.
pub const MAX_BATCH: usize = 4096;
/// Writes waiting for the proposer before new ones wait for room.
const QUEUE: usize = 8192;

/// Why a write got no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This member cannot take writes; the leader if one is known. Certainly not applied.
    #[error("not the leader")]
    NotLeader(Option<NodeId>),
    /// No answer in time: the write may or may not have been applied.
    #[error("timed out waiting for the write to commit")]
    Timeout,
    /// The group is shutting down.
    #[error("the group is stopped")]
    Stopped,
}

/// Tuning of a group, from the node's configuration.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// Leader heartbeat interval; openraft's elections time out after 4x to 8x of it (plus
    /// the 8x lease), [`crate::election`]'s quiet-leader timer after 10x.
    pub heartbeat: Duration,
    /// How long a write waits for its commit before answering "unknown".
    pub write_timeout: Duration,
    /// Entries between snapshots.
    pub snapshot_every: u64,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            heartbeat: Duration::from_millis(100),
            write_timeout: Duration::from_secs(5),
            snapshot_every: 100_000,
        }
    }
}

impl GroupOptions {
    /// The openraft config of `group` under these options (also what the deterministic
    /// simulation in sim/ runs).
    pub fn raft_config(&self, group: GroupId) -> Result<Config, String> {
        let hb = self.heartbeat.as_millis().max(10) as u64;
        let config = Config {
            cluster_name: format!("prism-group-{group}"),
            heartbeat_interval: hb,
            election_timeout_min: hb * 4,
            election_timeout_max: hb * 8,
            // Chunks of a snapshot streamed to a lagging member.
            snapshot_max_chunk_size: 4 * 1024 * 1024,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            // Keep some log past the snapshot (a tenth of the snapshot interval) so a
            // briefly lagging member catches up from the log rather than a whole snapshot.
            max_in_snapshot_log_to_keep: self.snapshot_every / 10,
            ..Default::default()
        };
        config.validate().map_err(|e| e.to_string())
    }
}

struct Proposal {
    writes: Vec<Write>,
    reply: oneshot::Sender<Result<Committed, WriteError>>,
}

/// Writes that committed: the log index of their entry and their outputs, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub index: u64,
    pub outputs: Outputs,
}

/// What a node's groups share: its id, the peer network they talk over, and the
/// registry the peer listener finds them in.
#[derive(Clone)]
pub struct Host {
    pub me: NodeId,
    pub net: PeerNetwork,
    pub groups: Groups,
}

/// What the node needs to know of a group's state, for routing and INFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    pub leader: Option<NodeId>,
    pub state: ServerState,
    pub term: u64,
}

/// One shard group hosted on this node.
pub struct ShardGroup {
    pub id: GroupId,
    pub me: NodeId,
    raft: Raft<TypeConfig>,
    proposals: mpsc::Sender<Proposal>,
    fence: Arc<ReadFence>,
    leadership: watch::Receiver<Leadership>,
    /// `leadership` says this member leads: read by every command on the node, so an
    /// atomic rather than the watch's lock.
    leading: Arc<AtomicBool>,
    elections: Arc<Elections>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    options: GroupOptions,
}

impl ShardGroup {
    /// Starts this node's member of `group` and registers it with the peer listener. If
    /// this node is the lowest-id member and has never been part of the group, it
    /// initializes the group with `members`.
    pub async fn start(
        host: &Host,
        group: GroupId,
        members: BTreeMap<NodeId, PeerNode>,
        log: RocksLogStore,
        sm: KeyspaceStateMachine,
        options: GroupOptions,
    ) -> Result<ShardGroup, String> {
        let me = host.me;
        let config = Arc::new(options.raft_config(group)?);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let elections = Arc::new(Elections::new(
            group,
            me,
            host.net.clone(),
            Duration::from_millis(config.heartbeat_interval),
            // openraft's leader lease is the election timeout's maximum.
            Duration::from_millis(config.election_timeout_max),
            slots.clone(),
            IN_FLIGHT as u32,
        ));
        let raft = Raft::new(me, config, host.net.for_group_with(group, elections.clone()), log, sm)
            .await
            .map_err(|e| format!("starting group {group}: {e}"))?;
        elections.set_raft(raft.clone());
        host.groups.insert(group, raft.clone());
        host.groups.insert_elections(group, elections.clone());
        let initialized = raft.is_initialized().await.map_err(|e| e.to_string())?;
        if !initialized && members.keys().next() == Some(&me) {
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(format!("initializing group {group}: {e}")),
            }
        }
        let (ltx, leadership) = watch::channel(Leadership { leader: None, state: ServerState::Learner, term: 0 });
        let mut metrics = raft.metrics();
        let leading = Arc::new(AtomicBool::new(false));
        let leading_now = leading.clone();
        let watcher = tokio::spawn(async move {
            loop {
                let now = {
                    let m = metrics.borrow_and_update();
                    Leadership { leader: m.current_leader, state: m.state, term: m.current_term }
                };
                leading_now.store(now.state == ServerState::Leader && now.leader == Some(me), Ordering::Release);
                ltx.send_if_modified(|l| {
                    if *l != now {
                        *l = now.clone();
                        true
                    } else {
                        false
                    }
                });
                if metrics.changed().await.is_err() {
                    break;
                }
            }
        });
        let (proposals, rx) = mpsc::channel(QUEUE);
        let proposer = tokio::spawn(propose(raft.clone(), rx, slots, elections.clone(), options.write_timeout));
        let fence = Arc::new(ReadFence::new());
        let fencer = tokio::spawn(fence.clone().run(raft.clone(), me, elections.clone()));
        let elector = tokio::spawn(elections.clone().watch_leader());
        Ok(ShardGroup {
            id: group,
            me,
            raft,
            proposals,
            fence,
            leadership,
            leading,
            elections,
            tasks: vec![watcher, proposer, fencer, elector],
            options,
        })
    }

    /// Proposes `writes` as part of one log entry and returns their outputs once applied.
    pub async fn write(&self, writes: Vec<Write>) -> Result<Committed, WriteError> {
        if self.elections.transferring() {
            return Err(WriteError::NotLeader(None));
        }
        let (reply, rx) = oneshot::channel();
        if self.proposals.send(Proposal { writes, reply }).await.is_err() {
            return Err(WriteError::Stopped);
        }
        rx.await.unwrap_or(Err(WriteError::Stopped))
    }

    /// Waits until a read started now is linearizable: leadership confirmed by a quorum
    /// after this call began, and the state machine caught up to the read index.
    pub async fn read_fence(&self) -> Result<(), WriteError> {
        self.fence.wait().await
    }

    /// How many other members hold the log up to `index`, waiting until at least `want`
    /// do or `deadline` passes (WAIT). Only a leader knows; others answer 0.
    pub async fn replicas_holding(&self, index: u64, want: usize, deadline: Option<tokio::time::Instant>) -> usize {
        let mut metrics = self.raft.metrics();
        loop {
            let (held, leading) = {
                let m = metrics.borrow_and_update();
                let held = m.replication.as_ref().map_or(0, |r| {
                    r.iter().filter(|(id, at)| **id != self.me && at.is_some_and(|l| l.index >= index)).count()
                });
                (held, m.state == ServerState::Leader)
            };
            // A member that lost leadership can no longer see its replicas: answer now.
            if held >= want || !leading {
                return held;
            }
            let changed = metrics.changed();
            let timed_out = match deadline {
                Some(d) => tokio::time::timeout_at(d, changed).await.map_or(true, |r| r.is_err()),
                None => changed.await.is_err(),
            };
            if timed_out {
                return held;
            }
        }
    }

    /// The leader and this member's role, as last reported by Raft.
    pub fn leadership(&self) -> Leadership {
        self.leadership.borrow().clone()
    }

    /// A receiver that changes whenever the leader, role or term does.
    pub fn watch_leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// True while this member believes it leads (not a guarantee: see `read_fence`).
    #[inline]
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    pub fn metrics(&self) -> RaftMetrics<NodeId, PeerNode> {
        self.raft.metrics().borrow().clone()
    }

    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    pub fn options(&self) -> &GroupOptions {
        &self.options
    }

    /// Hands leadership to `target` and returns who leads after (see [`crate::election`]).
    pub async fn transfer(&self, target: NodeId) -> Result<NodeId, TransferError> {
        self.elections.transfer(target).await
    }

    /// This member's part in elections: transfers, `CLUSTER FAILOVER FORCE` campaigns.
    pub fn elections(&self) -> &Arc<Elections> {
        &self.elections
    }

    /// Stops the member: pending writes answer `Stopped`, Raft shuts down.
    pub async fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.raft.shutdown().await;
    }
}

/// The proposer: packs queued writes into entries, keeps at most [`IN_FLIGHT`] entries
/// outstanding, and hands each write's output back to its caller.
async fn propose(
    raft: Raft<TypeConfig>,
    mut rx: mpsc::Receiver<Proposal>,
    slots: Arc<Semaphore>,
    elections: Arc<Elections>,
    timeout: Duration,
) {
    loop {
        // The first write, then room: while entries are in flight, writes pile up into the
        // next batch. (A slot is never held while idle: a transfer takes every slot to know
        // that nothing is in flight.)
        let Some(first) = rx.recv().await else { return };
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        if elections.transferring() {
            // Queued before the transfer began and not proposed: certainly not applied.
            let _ = first.reply.send(Err(WriteError::NotLeader(None)));
            continue;
        }
        let mut batch = vec![first];
        let mut count = batch[0].writes.len();
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => {
                    count += p.writes.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let mut writes = Vec::with_capacity(count);
        let mut waiters = Vec::with_capacity(batch.len());
        for p in batch {
            waiters.push((p.writes.len(), p.reply));
            writes.extend(p.writes);
        }
        let pending = match raft.client_write_ff(writes).await {
            Ok(rx) => rx,
            Err(_) => {
                for (_, w) in waiters {
                    let _ = w.send(Err(WriteError::Stopped));
                }
                return;
            }
        };
        tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, pending).await {
                Err(_) => Err(WriteError::Timeout),
                // Raft dropped the responder: shut down with the outcome unknown.
                Ok(Err(_)) => Err(WriteError::Timeout),
                Ok(Ok(Ok(resp))) => Ok((resp.log_id.index, resp.data)),
                // Refused, or appended then truncated as a conflicting suffix: never commits.
                Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => Err(WriteError::NotLeader(f.leader_id)),
                // A membership change in progress; nothing was appended.
                Ok(Ok(Err(ClientWriteError::ChangeMembershipError(_)))) => Err(WriteError::NotLeader(None)),
            };
            drop(permit);
            match result {
                Ok((index, outputs)) => {
                    // Hand out in order: each caller's outputs are the next `n`.
                    let mut rest = outputs.into_iter();
                    for (n, w) in waiters {
                        let outputs: Outputs = rest.by_ref().take(n).collect();
                        let _ = w.send(Ok(Committed { index, outputs }));
                    }
                }
                Err(e) => {
                    for (_, w) in waiters {
                        let _ = w.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// Shared read-index rounds (see the module invariants).
struct ReadFence {
    /// Highest round any caller needs.
    requested: AtomicU64,
    /// The round running now (or the last one run).
    running: AtomicU64,
    wake: Notify,
    /// The last finished round and its outcome.
    done: watch::Sender<(u64, Result<(), WriteError>)>,
}

/// How long one confirmation round may take before readers are told to retry.
const FENCE_TIMEOUT: Duration = Duration::from_secs(2);

impl ReadFence {
    fn new() -> ReadFence {
        ReadFence {
            requested: AtomicU64::new(0),
            running: AtomicU64::new(0),
            wake: Notify::new(),
            done: watch::channel((0, Ok(()))).0,
        }
    }

    async fn wait(&self) -> Result<(), WriteError> {
        // A round that is running may have started before this call: need the next one.
        let need = self.running.load(Ordering::SeqCst) + 1;
        self.requested.fetch_max(need, Ordering::SeqCst);
        let mut rx = self.done.subscribe();
        self.wake.notify_one();
        loop {
            {
                let done = rx.borrow_and_update();
                if done.0 >= need {
                    return done.1.clone();
                }
            }
            if rx.changed().await.is_err() {
                return Err(WriteError::Stopped);
            }
        }
    }

    async fn run(self: Arc<Self>, raft: Raft<TypeConfig>, me: NodeId, elections: Arc<Elections>) {
        let mut finished = 0;
        loop {
            let round = self.requested.load(Ordering::SeqCst);
            if round <= finished {
                self.wake.notified().await;
                continue;
            }
            // A round's heartbeats would renew the voters' leases a transfer waits out.
            if elections.transferring() {
                elections.until_released().await;
            }
            self.running.store(round, Ordering::SeqCst);
            let result = match tokio::time::timeout(FENCE_TIMEOUT, raft.ensure_linearizable()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                    Err(WriteError::NotLeader(f.leader_id.filter(|l| *l != me)))
                }
                Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) | Err(_) => {
                    Err(WriteError::NotLeader(None))
                }
                Ok(Err(RaftError::Fatal(_))) => Err(WriteError::Stopped),
            };
            finished = round;
            let _ = self.done.send_replace((round, result));
        }
    }
}
