//! Cross-shard traversals (G.KHOP, G.PATH in a fleet of several shards) and the peer
//! side of every cross-shard graph request.
//!
//! A traversal runs on the node that received it. Per hop, its frontier is grouped by
//! owning shard (slot -> shard from `node.topology`); this node's shard expands its part
//! in place, every other shard gets ONE batched [`GraphRequest::Expand`] (to its leader,
//! linearizable unless the client sent READONLY), all in parallel; the answers are merged
//! in frontier order, so a fleet answers exactly what one node holding the whole graph
//! would (same layers, same discovery order, same path).
//!
//! Invariants:
//! - Bounded: one request per shard per hop, carrying the vertex bound (a shard lists at
//!   most that many distinct neighbours) and the time left; each call's deadline is the
//!   time left plus [`GRACE`]. The bound that cut an answer short is named in the reply
//!   (`maxvertices`, `timeout`, `maxdepth`), as on one node.
//! - Never silently partial: a shard that cannot answer (no leader, unreachable, slot
//!   moved, no answer within the deadline) makes the whole reply `-TRYAGAIN ...`.
//! - The peer side answers only for slots its shard serves, and a linearizable request
//!   only as leader after a read fence, so a remote hop reads what a local one would.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prism_engine::graph::traverse::{expand, Bounds, Cut, DirSel, ExpandStop, KHop, PathResult, Side};
use prism_engine::shard_meta::Serving;
use prism_engine::{Keyspace, Slot};
use prism_replication::types::{ExpandCut, ExpandRequest, GraphRequest, GraphResponse};
use prism_replication::{Groups, PeerNode};

use crate::cmd::CmdError;
use crate::node::Node;
use crate::replica::{cluster_id, Replica};
use crate::topology::Topology;

/// How long past the traversal's own deadline a shard's answer is waited for (it stops
/// its work at the deadline; this covers the trip back).
pub const GRACE: Duration = Duration::from_millis(500);

/// One frontier vertex's outcome in a hop.
enum Got {
    NotVertex,
    Neighbours(Vec<Bytes>),
    /// The hop stopped here (this vertex's list is missing).
    Stop(Cut),
    /// The hop stopped inside this vertex's list: the part listed, then the cut.
    Partial(Vec<Bytes>, Cut),
}

/// What a traversal on this node needs, owned so it can run after the command returned
/// (as the connection's deferred reply).
pub(crate) struct Fanout {
    keyspace: Arc<Keyspace>,
    replica: Arc<Replica>,
    topology: Arc<Topology>,
    /// The node time expiry is judged at (fixed for the traversal).
    now: u64,
    linearizable: bool,
}

fn stop_cut(s: ExpandStop) -> Cut {
    match s {
        ExpandStop::MaxVertices => Cut::MaxVertices,
        ExpandStop::Timeout => Cut::Timeout,
    }
}

fn dir_code(d: DirSel) -> u8 {
    match d {
        DirSel::Out => 0,
        DirSel::In => 1,
        DirSel::Both => 2,
    }
}

impl Fanout {
    /// `None` unless this node is in a fleet of more than one shard.
    pub fn new(node: &Node, readonly: bool, now: u64) -> Option<Fanout> {
        let replica = node.replica.get().cloned()?;
        if replica.fleet.as_ref().is_none_or(|v| v.spec.shards.len() < 2) {
            return None;
        }
        Some(Fanout {
            keyspace: node.keyspace.clone(),
            replica,
            topology: node.topology.load_full(),
            now,
            linearizable: !readonly,
        })
    }

    fn shard_of(&self, v: &[u8]) -> usize {
        self.topology.shard_of(Slot::of_key(v))
    }

    fn target(&self, index: usize) -> Result<(u32, u64, PeerNode), CmdError> {
        leader_of(&self.replica, &self.topology, index).map_err(CmdError::msg)
    }

    /// One hop: the outcome for each frontier vertex, in order.
    async fn layer(&self, frontier: &[Bytes], b: &Bounds, dir: DirSel) -> Result<Vec<Got>, CmdError> {
        let mine = self.topology.myself().shard;
        let mut by_shard: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, v) in frontier.iter().enumerate() {
            by_shard.entry(self.shard_of(v)).or_default().push(i);
        }
        let mut got: Vec<Option<Got>> = (0..frontier.len()).map(|_| None).collect();
        let mut calls = tokio::task::JoinSet::new();
        for (&shard, idx) in &by_shard {
            let vertices: Vec<Bytes> = idx.iter().map(|&i| frontier[i].clone()).collect();
            if shard == mine {
                let (lists, stop) = expand(&self.keyspace, self.now, &vertices, b, dir, b.max_vertices);
                fill(&mut got, idx, lists, stop.map(stop_cut));
                continue;
            }
            let (group, leader, node) = self.target(shard)?;
            let left = b.deadline.saturating_duration_since(Instant::now());
            let req = GraphRequest::Expand(ExpandRequest {
                vertices,
                types: b.types.clone(),
                dir: dir_code(dir),
                per_vertex: b.per_vertex as u64,
                max_distinct: b.max_vertices as u64,
                budget_ms: left.as_millis() as u64,
                linearizable: self.linearizable,
            });
            let net = self.replica.net.clone();
            let idx = idx.clone();
            calls.spawn(async move { (idx, group, net.graph(group, leader, &node, req, left + GRACE).await) });
        }
        while let Some(joined) = calls.join_next().await {
            let Ok((idx, group, answer)) = joined else {
                return Err(CmdError::msg("TRYAGAIN a cross-shard traversal step failed; retry"));
            };
            match answer {
                Ok(GraphResponse::Expanded { lists, cut }) => {
                    let cut = cut.map(|c| match c {
                        ExpandCut::MaxVertices => Cut::MaxVertices,
                        ExpandCut::Timeout => Cut::Timeout,
                    });
                    fill(&mut got, &idx, lists, cut);
                }
                Ok(GraphResponse::Refused(line)) => return Err(CmdError::msg(line)),
                Ok(_) => return Err(CmdError::msg(format!("TRYAGAIN shard {group} gave an unexpected answer"))),
                Err(e) => {
                    return Err(CmdError::msg(format!(
                        "TRYAGAIN shard {group} did not answer a traversal step in time ({e}); retry"
                    )))
                }
            }
        }
        Ok(got.into_iter().map(|g| g.unwrap_or(Got::Stop(Cut::Timeout))).collect())
    }

    /// Whether `v` is a vertex (on whichever shard holds it).
    async fn exists(&self, v: &Bytes, b: &Bounds) -> Result<bool, CmdError> {
        let probe = Bounds { per_vertex: 0, ..b.clone() };
        let got = self.layer(std::slice::from_ref(v), &probe, DirSel::Out).await?;
        Ok(matches!(got.first(), Some(Got::Neighbours(_))))
    }

    /// G.KHOP from `start` (a vertex of this shard, checked by the caller).
    pub async fn khop(&self, start: &Bytes, k: usize, b: &Bounds) -> Result<KHop, CmdError> {
        let mut seen: HashSet<Bytes> = HashSet::from([start.clone()]);
        let mut frontier = vec![start.clone()];
        let mut result = KHop { hops: Vec::new(), cut: None };
        for _ in 0..k {
            if Instant::now() >= b.deadline {
                result.cut = Some(Cut::Timeout);
                result.hops.push(Vec::new());
                break;
            }
            let got = self.layer(&frontier, b, b.dir).await?;
            let mut next = Vec::new();
            'merge: for g in got {
                let (list, cut) = match g {
                    Got::NotVertex => continue,
                    Got::Stop(c) => {
                        result.cut = Some(c);
                        break;
                    }
                    Got::Neighbours(list) => (list, None),
                    Got::Partial(list, c) => (list, Some(c)),
                };
                for n in list {
                    if seen.contains(&n) {
                        continue;
                    }
                    if seen.len() >= b.max_vertices {
                        result.cut = Some(Cut::MaxVertices);
                        break 'merge;
                    }
                    seen.insert(n.clone());
                    next.push(n);
                }
                if cut.is_some() {
                    result.cut = cut;
                    break;
                }
            }
            let done = next.is_empty() || result.cut.is_some();
            result.hops.push(next.clone());
            if done {
                break;
            }
            frontier = next;
        }
        while result.hops.len() < k && result.cut.is_none() {
            result.hops.push(Vec::new());
        }
        Ok(result)
    }

    /// G.PATH from `src` (a vertex of this shard, checked by the caller) to `dst`, by
    /// bidirectional BFS whose layers fan out as in [`Fanout::khop`].
    pub async fn path(&self, src: &Bytes, dst: &Bytes, max_depth: usize, b: &Bounds) -> Result<PathResult, CmdError> {
        let none = |cut| Ok(PathResult { path: None, cut });
        if !self.exists(dst, b).await? {
            return none(None);
        }
        if src == dst {
            return Ok(PathResult { path: Some(vec![src.clone()]), cut: None });
        }
        let mut fwd = Side::new(src, b.dir);
        let mut bwd = Side::new(dst, b.dir.reversed());
        loop {
            if fwd.frontier.is_empty() || bwd.frontier.is_empty() {
                return none(None);
            }
            if fwd.depth + bwd.depth >= max_depth {
                return none(Some(Cut::MaxDepth));
            }
            if Instant::now() >= b.deadline {
                return none(Some(Cut::Timeout));
            }
            let forward = fwd.frontier.len() <= bwd.frontier.len();
            let (this, other) = if forward { (&mut fwd, &bwd) } else { (&mut bwd, &fwd) };
            let frontier = std::mem::take(&mut this.frontier);
            let got = self.layer(&frontier, b, this.dir).await?;
            let mut best: Option<(usize, Bytes)> = None;
            let mut next = Vec::new();
            let depth = this.depth;
            for (v, g) in frontier.iter().zip(got) {
                let (list, cut) = match g {
                    Got::NotVertex => continue,
                    Got::Stop(c) => return none(Some(c)),
                    Got::Neighbours(list) => (list, None),
                    Got::Partial(list, c) => (list, Some(c)),
                };
                for n in list {
                    if this.reached.contains_key(&n) {
                        continue;
                    }
                    if this.reached.len() + other.reached.len() >= b.max_vertices {
                        return none(Some(Cut::MaxVertices));
                    }
                    if let Some((_, od)) = other.reached.get(&n) {
                        let total = depth + 1 + od;
                        if best.as_ref().is_none_or(|(t, _)| total < *t) {
                            best = Some((total, n.clone()));
                        }
                    }
                    this.reached.insert(n.clone(), (Some(v.clone()), depth + 1));
                    next.push(n);
                }
                if let Some(c) = cut {
                    return none(Some(c));
                }
            }
            this.depth += 1;
            this.frontier = next;
            if let Some((_, meet)) = best {
                let mut path = fwd.chain(&meet);
                path.reverse();
                path.extend(bwd.chain(&meet).into_iter().skip(1));
                return Ok(PathResult { path: Some(path), cut: None });
            }
        }
    }
}

/// The group id and leader (Raft id, address) of the shard at `index` in `topology`,
/// or an error line.
pub(crate) fn leader_of(replica: &Replica, topology: &Topology, index: usize) -> Result<(u32, u64, PeerNode), String> {
    let view = replica.fleet.as_ref().ok_or("ERR not in a fleet")?;
    let group = view.spec.shards.get(index).map(|s| s.id);
    let primary = topology.primary_of(index);
    let (Some(group), Some(primary)) = (group, primary) else {
        return Err("CLUSTERDOWN Hash slot not served".into());
    };
    let mut ids = view.spec.members().map(|(_, m)| m.id).chain(replica.membership().into_iter().map(|(m, _)| m.id));
    let id = ids
        .find(|id| cluster_id(*id) == primary.id)
        .ok_or_else(|| format!("TRYAGAIN the leader of shard {group} is not known here yet; retry shortly"))?;
    let node = PeerNode::new(format!("{}:{}", primary.ip, primary.cport), format!("{}:{}", primary.ip, primary.port));
    Ok((group, id, node))
}

/// Puts one shard's answer (`lists` for the first vertices of `idx`) in place. A vertex
/// bound stop came inside the last list (kept, then the cut); a timeout came before the
/// vertex after the last list.
fn fill(got: &mut [Option<Got>], idx: &[usize], lists: Vec<Option<Vec<Bytes>>>, stop: Option<Cut>) {
    let answered = lists.len();
    for (&i, list) in idx.iter().zip(lists) {
        got[i] = Some(list.map_or(Got::NotVertex, Got::Neighbours));
    }
    match stop {
        None => {}
        Some(Cut::MaxVertices) if answered > 0 => {
            let i = idx[answered - 1];
            let list = match got[i].take() {
                Some(Got::Neighbours(l)) => l,
                _ => Vec::new(),
            };
            got[i] = Some(Got::Partial(list, Cut::MaxVertices));
        }
        Some(c) => {
            if let Some(&i) = idx.get(answered) {
                got[i] = Some(Got::Stop(c));
            }
        }
    }
}

/// Answers other nodes' cross-shard graph requests on this node.
pub fn serve_graph(groups: &Groups, node: Weak<Node>) {
    groups.on_graph(Arc::new(move |group, req| {
        let node = node.clone();
        Box::pin(async move {
            let Some(node) = node.upgrade() else {
                return GraphResponse::Refused("TRYAGAIN the node is shutting down".into());
            };
            match req {
                GraphRequest::Expand(req) => serve_expand(&node, group, req).await,
                GraphRequest::Deliver { from, first_seq, halves } => {
                    super::outbox::serve_deliver(&node, group, from, first_seq, halves).await
                }
            }
        })
    }));
}

/// One hop for another node's traversal.
async fn serve_expand(node: &Arc<Node>, group: u32, req: ExpandRequest) -> GraphResponse {
    let Some(replica) = node.replica.get().cloned() else {
        return GraphResponse::Refused("TRYAGAIN not a fleet member".into());
    };
    if group != replica.group_id {
        return GraphResponse::Refused(format!("TRYAGAIN this node serves shard {}, not {group}", replica.group_id));
    }
    if req.linearizable && !replica.stale_reads {
        if !replica.is_leader() {
            return GraphResponse::Refused(format!("TRYAGAIN node {} does not lead shard {group}", replica.me));
        }
        if replica.group.read_fence().await.is_err() {
            return GraphResponse::Refused(format!("TRYAGAIN shard {group} could not confirm its leader"));
        }
    }
    for v in &req.vertices {
        let slot = Slot::of_key(v).get();
        if matches!(node.keyspace.meta.serving(slot), Serving::Elsewhere(_)) {
            return GraphResponse::Refused(format!("TRYAGAIN slot {slot} is not served by shard {group}; retry"));
        }
    }
    let dir = match req.dir {
        0 => DirSel::Out,
        1 => DirSel::In,
        _ => DirSel::Both,
    };
    let budget = Duration::from_millis(req.budget_ms.min(crate::cmd::graph::traverse::MAX_TIMEOUT_MS));
    let bounds = Bounds {
        types: req.types,
        dir,
        per_vertex: usize::try_from(req.per_vertex).unwrap_or(usize::MAX),
        max_vertices: usize::try_from(req.max_distinct)
            .unwrap_or(usize::MAX)
            .min(crate::cmd::graph::traverse::MAX_MAX_VERTICES),
        deadline: Instant::now() + budget,
    };
    let (ks, now, vertices) = (node.keyspace.clone(), node.now_ms(), req.vertices);
    let work = tokio::task::spawn_blocking(move || {
        let max = bounds.max_vertices;
        expand(&ks, now, &vertices, &bounds, dir, max)
    });
    match work.await {
        Ok((lists, stop)) => GraphResponse::Expanded {
            lists,
            cut: stop.map(|s| match s {
                ExpandStop::MaxVertices => ExpandCut::MaxVertices,
                ExpandStop::Timeout => ExpandCut::Timeout,
            }),
        },
        Err(_) => GraphResponse::Refused("TRYAGAIN the traversal step failed on the remote shard".into()),
    }
}
