//! What a run observes, shared by every simulated host and the runner (it lives outside
//! the hosts, so crashes do not reset it): the ordered event trace (its hash proves a
//! seed reproduces), leaders per term, every applied log id, the client history, and the
//! live handles of each member's current incarnation for the final checks.
//!
//! Everything here is ordered (`BTreeMap`, `Vec` in event order): all hosts run on the
//! runner's thread, so the order of events is a function of the seed alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::{Raft, RaftMetrics, ServerState};
use parking_lot::Mutex;
use prism_engine::Keyspace;
use prism_replication::types::{LogId, Vote};
use prism_replication::{NodeId, PeerNode, TypeConfig};

/// One client attempt: a unique token pushed to `key`. `sent` and `acked` are positions in
/// the run's event order, so "acknowledged before sent" is exact.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub key: String,
    pub sent: u64,
    pub acked: Option<u64>,
}

/// A member's current incarnation.
pub struct Live {
    pub keyspace: Arc<Keyspace>,
    pub raft: Raft<TypeConfig>,
}

#[derive(Default)]
pub struct Observed {
    pub trace: Vec<String>,
    /// Leaders seen per term. openraft's default leader id is (term, node id), so two
    /// nodes may lead one term one after the other (the later id is greater); counted,
    /// not a violation. Election safety is checked per leader id (see `on_metrics`).
    pub leaders: BTreeMap<u64, BTreeSet<NodeId>>,
    /// The greatest vote each member held, across its restarts: a vote never goes back
    /// (it is synced before it counts), and a leader's vote is committed.
    pub votes: BTreeMap<NodeId, Vote>,
    /// Every log id some member reported applied (so committed), by index.
    pub applied: BTreeMap<u64, LogId>,
    pub violations: Vec<String>,
    pub attempts: BTreeMap<String, Attempt>,
    pub live: BTreeMap<NodeId, Live>,
    /// Counter of the event order (client sends and acks).
    pub clock: u64,
    pub faults: BTreeMap<&'static str, u64>,
}

pub type Shared = Arc<Mutex<Observed>>;

fn now_ms() -> u128 {
    turmoil::sim_elapsed().map(|d| d.as_millis()).unwrap_or(0)
}

impl Observed {
    pub fn event(&mut self, what: String) {
        self.trace.push(format!("{} {what}", now_ms()));
    }

    pub fn on_metrics(&mut self, id: NodeId, m: &RaftMetrics<NodeId, PeerNode>) {
        self.event(format!(
            "n{id} {:?} term={} leader={:?} applied={:?}",
            m.state,
            m.current_term,
            m.current_leader,
            m.last_applied.map(|l| (l.leader_id.term, l.index))
        ));
        if m.state == ServerState::Leader {
            self.leaders.entry(m.current_term).or_default().insert(id);
            // Election safety with leader ids: a leader leads under its own id, granted
            // by a quorum (committed vote), so no two nodes can share one.
            if m.vote.leader_id().voted_for() != Some(id) || !m.vote.is_committed() {
                self.violations.push(format!("election safety: n{id} leads with vote {}", m.vote));
            }
        }
        // A new incarnation publishes default metrics (vote T0-N0) before it has read
        // its stored vote: not a vote of its own.
        match self.votes.get(&id) {
            _ if m.vote == Vote::default() => {}
            Some(prev) if m.vote < *prev => {
                self.violations.push(format!("vote went back on n{id}: {} after {prev}", m.vote));
            }
            _ => {
                self.votes.insert(id, m.vote);
            }
        }
        if let Some(lid) = m.last_applied {
            match self.applied.get(&lid.index) {
                Some(seen) if *seen != lid => {
                    let v = format!("state machine safety: index {} applied as {seen} and as {lid} (n{id})", lid.index);
                    self.violations.push(v);
                }
                _ => {
                    self.applied.insert(lid.index, lid);
                }
            }
        }
    }

    pub fn sent(&mut self, key: &str, token: &str) {
        self.clock += 1;
        let a = Attempt { key: key.to_string(), sent: self.clock, acked: None };
        self.attempts.insert(token.to_string(), a);
        self.event(format!("send {token} {key}"));
    }

    pub fn acked(&mut self, token: &str) {
        self.clock += 1;
        let at = self.clock;
        if let Some(a) = self.attempts.get_mut(token) {
            a.acked = Some(at);
        }
        self.event(format!("ack {token}"));
    }

    /// A fault injected (by the runner, outside any host: `at` is the simulated time).
    pub fn fault(&mut self, kind: &'static str, at: std::time::Duration, what: String) {
        *self.faults.entry(kind).or_default() += 1;
        self.trace.push(format!("{} fault {what}", at.as_millis()));
    }

    /// The trace's FNV-1a hash: equal for two runs of one seed.
    pub fn trace_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for line in &self.trace {
            for b in line.bytes().chain(std::iter::once(b'\n')) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}
