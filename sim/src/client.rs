//! Simulated clients: writers that RPUSH unique tokens and the membership controller.
//!
//! A writer retries a write until it is acknowledged, on the leader a member names or
//! else on another member, each attempt with a new token (`c<client>-<op>-<attempt>`):
//! an attempt that timed out may still have committed, and a new token keeps "at most
//! once per token" checkable. Every send and ack is recorded in the run's event order
//! ([`crate::observe::Observed::sent`] / `acked`) for the oracle.

use std::collections::BTreeSet;
use std::time::Duration;

use prism_replication::NodeId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::net::{call, Request, Response};
use crate::node::token_bytes;
use crate::observe::Shared;

/// Attempts per write before the writer gives up on it (the write then stays unacked).
const MAX_ATTEMPTS: u32 = 200;
/// A writer waits this long for an answer; members answer within their 3 s write timeout.
const CLIENT_TTL: Duration = Duration::from_secs(5);

pub struct Writer {
    pub client: u32,
    pub writes: u32,
    pub keys: u32,
    /// The members it may send to.
    pub nodes: Vec<NodeId>,
    /// Most think time between two writes, so the writes span the fault window.
    pub pause: Duration,
    pub seed: u64,
}

pub async fn write(w: Writer, observed: Shared) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(w.seed ^ (u64::from(w.client) << 48));
    let mut target = w.nodes[rng.random_range(0..w.nodes.len())];
    for op in 0..w.writes {
        let key = format!("k{}", rng.random_range(0..w.keys));
        for attempt in 0..MAX_ATTEMPTS {
            let token = format!("c{}-{op}-{attempt}", w.client);
            observed.lock().sent(&key, &token);
            let req = Request::Push { key: token_bytes(&key), token: token_bytes(&token) };
            match call(target, &req, CLIENT_TTL).await {
                Ok(Response::Pushed) => {
                    observed.lock().acked(&token);
                    break;
                }
                Ok(Response::NotLeader(Some(leader))) if w.nodes.contains(&leader) && leader != target => {
                    target = leader;
                    continue;
                }
                _ => target = w.nodes[rng.random_range(0..w.nodes.len())],
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(10..100))).await;
        }
        tokio::time::sleep(w.pause.mul_f64(rng.random_range(0.0..1.0))).await;
    }
    Ok(())
}

/// The membership changes of a seed: after `start`, add `joiner` as a learner and make it
/// a voter in place of `leaver`; then optionally add `grow` as a fourth voter.
pub struct Membership {
    pub start: Duration,
    pub voters: BTreeSet<NodeId>,
    pub joiner: NodeId,
    pub leaver: NodeId,
    pub grow: Option<NodeId>,
    pub nodes: Vec<NodeId>,
    pub seed: u64,
}

fn elapsed() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// Sends one admin request until some member says it is done (bounded).
async fn admin(req: &Request, nodes: &[NodeId], rng: &mut StdRng, observed: &Shared) -> bool {
    let mut target = nodes[0];
    for _ in 0..MAX_ATTEMPTS {
        match call(target, req, CLIENT_TTL).await {
            Ok(Response::Done) => {
                observed.lock().event(format!("membership done {req:?}"));
                return true;
            }
            Ok(Response::NotLeader(Some(leader))) if nodes.contains(&leader) && leader != target => {
                target = leader;
                continue;
            }
            _ => target = nodes[rng.random_range(0..nodes.len())],
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..200))).await;
    }
    false
}

pub async fn change_membership(m: Membership, observed: Shared) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(m.seed ^ 0xC0);
    tokio::time::sleep(m.start).await;
    let mut voters = m.voters.clone();
    if !admin(&Request::AddLearner(m.joiner), &m.nodes, &mut rng, &observed).await {
        return Ok(());
    }
    voters.remove(&m.leaver);
    voters.insert(m.joiner);
    observed.lock().fault("membership", elapsed(), format!("replace n{} by n{}", m.leaver, m.joiner));
    if !admin(&Request::ChangeMembership(voters.clone()), &m.nodes, &mut rng, &observed).await {
        return Ok(());
    }
    if let Some(grow) = m.grow {
        if admin(&Request::AddLearner(grow), &m.nodes, &mut rng, &observed).await {
            voters.insert(grow);
            observed.lock().fault("membership", elapsed(), format!("add voter n{grow}"));
            admin(&Request::ChangeMembership(voters), &m.nodes, &mut rng, &observed).await;
        }
    }
    Ok(())
}
