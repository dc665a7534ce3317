//! Bounded read-only traversals over the keyspace: k-hop neighbourhoods and one shortest
//! path (bidirectional BFS).
//!
//! Invariants:
//! - At most one slot read lock is held at a time: a vertex's new neighbours are copied
//!   out under its slot's lock. A traversal therefore never blocks a multi-slot write
//!   (which locks in slot order) into a deadlock, and it sees a moving graph, not a
//!   snapshot (documented in docs/graph.md).
//! - Halves are followed as stored: writes keep them mirrored (see `cleanup`), so no
//!   read looks at the other end. Unconfirmed (restored) halves are not followed.
//! - Every traversal is bounded by visited vertices and by a deadline, and reports which
//!   bound cut it short ([`Cut`]).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;

use super::{Dir, Vertex};
use crate::keyspace::Keyspace;
use crate::op::OpError;
use crate::value::Value;

/// Which directions a traversal follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSel {
    Out,
    In,
    Both,
}

impl DirSel {
    fn dirs(self) -> &'static [Dir] {
        match self {
            DirSel::Out => &[Dir::Out],
            DirSel::In => &[Dir::In],
            DirSel::Both => &[Dir::Out, Dir::In],
        }
    }

    pub fn reversed(self) -> DirSel {
        match self {
            DirSel::Out => DirSel::In,
            DirSel::In => DirSel::Out,
            DirSel::Both => DirSel::Both,
        }
    }
}

/// The bound that stopped a traversal early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    MaxVertices,
    Timeout,
    MaxDepth,
}

impl Cut {
    pub fn name(self) -> &'static str {
        match self {
            Cut::MaxVertices => "maxvertices",
            Cut::Timeout => "timeout",
            Cut::MaxDepth => "maxdepth",
        }
    }
}

/// What a traversal follows and how far it may go.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Edge types to follow; empty means all.
    pub types: Vec<Bytes>,
    pub dir: DirSel,
    /// Most halves followed out of one vertex.
    pub per_vertex: usize,
    /// Most vertices visited (the start included).
    pub max_vertices: usize,
    pub deadline: Instant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KHop {
    /// `hops[h]` holds the vertices at exactly `h + 1` hops, in discovery order.
    pub hops: Vec<Vec<Bytes>>,
    pub cut: Option<Cut>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathResult {
    /// The vertices from src to dst, both included; `None` if no path was found.
    pub path: Option<Vec<Bytes>>,
    pub cut: Option<Cut>,
}

/// Reads the vertex under `key`: `Ok(None)` if absent, WRONGTYPE for another type.
pub fn with_vertex<R>(ks: &Keyspace, key: &[u8], now: u64, f: impl FnOnce(&Vertex) -> R) -> Result<Option<R>, OpError> {
    ks.get(key, now, |e| match e.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Vertex(v)) => Ok(Some(f(v))),
        Some(_) => Err(OpError::WrongType),
    })
}

/// Calls `visit` with each neighbour reachable from `vid` in one step (confirmed halves
/// only, at most `per_vertex`), under `vid`'s slot read lock. `visit` returns false to
/// stop early. False if `vid` is not a vertex.
pub fn neighbours(
    ks: &Keyspace,
    now: u64,
    vid: &[u8],
    b: &Bounds,
    dir: DirSel,
    mut visit: impl FnMut(&[u8]) -> bool,
) -> bool {
    let found = with_vertex(ks, vid, now, |v| {
        let mut left = b.per_vertex;
        let mut walk = |list: &super::EdgeList| -> bool {
            for h in list.iter() {
                if left == 0 {
                    return false;
                }
                if !h.confirmed {
                    continue;
                }
                left -= 1;
                if !visit(h.other) {
                    return false;
                }
            }
            true
        };
        for &d in dir.dirs() {
            if b.types.is_empty() {
                for t in v.types() {
                    if !walk(t.list(d)) {
                        return;
                    }
                }
            } else {
                for t in &b.types {
                    if let Some(list) = v.list(t, d) {
                        if !walk(list) {
                            return;
                        }
                    }
                }
            }
        }
    });
    matches!(found, Ok(Some(())))
}

/// Why [`expand`] stopped before the end of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandStop {
    MaxVertices,
    Timeout,
}

/// One hop over a batch of vertices (a shard's part of a traversal frontier): per vertex,
/// in order, `None` if it is not a vertex, else its neighbours. Each distinct neighbour is
/// listed once, at its first occurrence (the coordinator would skip later ones anyway),
/// and at most `max_distinct` are listed: a traversal bounded by `max_distinct` visited
/// vertices can hardly use more. When it stopped early the answer says why, and ends
/// with the (partial) list of the vertex it stopped in, or before the vertex it had no
/// time for.
pub fn expand(
    ks: &Keyspace,
    now: u64,
    vertices: &[Bytes],
    b: &Bounds,
    dir: DirSel,
    max_distinct: usize,
) -> (Vec<Option<Vec<Bytes>>>, Option<ExpandStop>) {
    let mut listed: HashSet<Bytes> = HashSet::new();
    let mut out = Vec::with_capacity(vertices.len());
    for v in vertices {
        if Instant::now() >= b.deadline {
            return (out, Some(ExpandStop::Timeout));
        }
        let mut list = Vec::new();
        let mut full = false;
        let found = neighbours(ks, now, v, b, dir, |n| {
            if listed.contains(n) {
                return true;
            }
            if listed.len() >= max_distinct {
                full = true;
                return false;
            }
            let n = Bytes::copy_from_slice(n);
            listed.insert(n.clone());
            list.push(n);
            true
        });
        out.push(found.then_some(list));
        if full {
            // The partial list counts: with it the answer names more distinct vertices than
            // the bound, so the traversal is cut by the bound either way.
            return (out, Some(ExpandStop::MaxVertices));
        }
    }
    (out, None)
}

/// The vertices at 1..=k hops from `start`, each in the layer of its shortest distance.
/// `Ok(None)` if `start` is not a vertex.
pub fn khop(ks: &Keyspace, now: u64, start: &Bytes, k: usize, b: &Bounds) -> Result<Option<KHop>, OpError> {
    if with_vertex(ks, start, now, |_| ())?.is_none() {
        return Ok(None);
    }
    let mut seen: HashSet<Bytes> = HashSet::from([start.clone()]);
    let mut frontier = vec![start.clone()];
    let mut result = KHop { hops: Vec::new(), cut: None };
    for _ in 0..k {
        let mut next = Vec::new();
        for v in &frontier {
            if Instant::now() >= b.deadline {
                result.cut = Some(Cut::Timeout);
                break;
            }
            neighbours(ks, now, v, b, b.dir, |n| {
                if seen.contains(n) {
                    return true;
                }
                if seen.len() >= b.max_vertices {
                    result.cut = Some(Cut::MaxVertices);
                    return false;
                }
                let n = Bytes::copy_from_slice(n);
                seen.insert(n.clone());
                next.push(n);
                true
            });
            if result.cut.is_some() {
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
    Ok(Some(result))
}

/// One side of the bidirectional search: parent and depth of every vertex it reached
/// (also the fleet's cross-shard search, server/src/fleet/fanout.rs).
pub struct Side {
    pub reached: HashMap<Bytes, (Option<Bytes>, usize)>,
    pub frontier: Vec<Bytes>,
    pub depth: usize,
    pub dir: DirSel,
}

impl Side {
    pub fn new(root: &Bytes, dir: DirSel) -> Side {
        Side { reached: HashMap::from([(root.clone(), (None, 0))]), frontier: vec![root.clone()], depth: 0, dir }
    }

    /// The vertices from `v` back to this side's root, `v` first.
    pub fn chain(&self, v: &Bytes) -> Vec<Bytes> {
        let mut out = vec![v.clone()];
        let mut cur = v;
        while let Some((Some(p), _)) = self.reached.get(cur) {
            out.push(p.clone());
            cur = p;
        }
        out
    }
}

/// One shortest path from `src` to `dst` of at most `max_depth` edges, by bidirectional
/// BFS. `Ok(None)` if `src` is not a vertex.
pub fn shortest_path(
    ks: &Keyspace,
    now: u64,
    src: &Bytes,
    dst: &Bytes,
    max_depth: usize,
    b: &Bounds,
) -> Result<Option<PathResult>, OpError> {
    if with_vertex(ks, src, now, |_| ())?.is_none() {
        return Ok(None);
    }
    let none = |cut| Ok(Some(PathResult { path: None, cut }));
    if with_vertex(ks, dst, now, |_| ()).ok().flatten().is_none() {
        return none(None);
    }
    if src == dst {
        return Ok(Some(PathResult { path: Some(vec![src.clone()]), cut: None }));
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
        let forward = fwd.frontier.len() <= bwd.frontier.len();
        let (this, other) = if forward { (&mut fwd, &bwd) } else { (&mut bwd, &fwd) };
        // The best meeting vertex of this layer: (total length, vertex).
        let mut best: Option<(usize, Bytes)> = None;
        let mut next = Vec::new();
        for v in std::mem::take(&mut this.frontier) {
            if Instant::now() >= b.deadline {
                return none(Some(Cut::Timeout));
            }
            let mut full = false;
            let depth = this.depth;
            neighbours(ks, now, &v, b, this.dir, |n| {
                if this.reached.contains_key(n) {
                    return true;
                }
                if this.reached.len() + other.reached.len() >= b.max_vertices {
                    full = true;
                    return false;
                }
                let n = Bytes::copy_from_slice(n);
                if let Some((_, od)) = other.reached.get(&n) {
                    let total = depth + 1 + od;
                    if best.as_ref().is_none_or(|(t, _)| total < *t) {
                        best = Some((total, n.clone()));
                    }
                }
                this.reached.insert(n.clone(), (Some(v.clone()), depth + 1));
                next.push(n);
                true
            });
            if full {
                return none(Some(Cut::MaxVertices));
            }
        }
        this.depth += 1;
        this.frontier = next;
        if let Some((_, meet)) = best {
            let mut path = fwd.chain(&meet);
            path.reverse();
            path.extend(bwd.chain(&meet).into_iter().skip(1));
            return Ok(Some(PathResult { path: Some(path), cut: None }));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::graph::{EdgeHalf, GraphOp};
    use crate::op::{Op, Output, Write};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn add(ks: &Keyspace, src: &str, dst: &str) -> Output {
        let (out, inn) = EdgeHalf::pair(&b(src), &b("t"), &b(dst));
        ks.apply(&Write { now_ms: 1, op: Op::Graph(GraphOp::AddEdge { out, inn, rank: None, props: None }) })
    }

    fn bounds(dir: DirSel) -> Bounds {
        Bounds {
            types: vec![],
            dir,
            per_vertex: usize::MAX,
            max_vertices: 1000,
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    fn names(v: &[Bytes]) -> Vec<&str> {
        let mut v: Vec<&str> = v.iter().map(|b| std::str::from_utf8(b).unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn khop_layers_and_dangling_halves() {
        let ks = Keyspace::new();
        // a -> b -> c -> d, a -> c
        for (s, d) in [("a", "b"), ("b", "c"), ("c", "d"), ("a", "c")] {
            assert_eq!(add(&ks, s, d), Output::Int(1));
        }
        let r = khop(&ks, 1, &b("a"), 3, &bounds(DirSel::Out)).unwrap().unwrap();
        assert_eq!(r.hops.iter().map(|h| names(h)).collect::<Vec<_>>(), vec![vec!["b", "c"], vec!["d"], vec![]]);
        assert_eq!(r.cut, None);
        let r = khop(&ks, 1, &b("d"), 2, &bounds(DirSel::In)).unwrap().unwrap();
        assert_eq!(names(&r.hops[0]), vec!["c"]);
        assert_eq!(names(&r.hops[1]), vec!["a", "b"]);
        // A generic DEL leaves halves at the neighbours; traversals do not follow them.
        ks.apply(&Write { now_ms: 1, op: Op::Del { keys: vec![b("c")] } });
        let r = khop(&ks, 1, &b("a"), 2, &bounds(DirSel::Out)).unwrap().unwrap();
        assert_eq!(r.hops.iter().map(|h| names(h)).collect::<Vec<_>>(), vec![vec!["b"], vec![]]);
        let mut small = bounds(DirSel::Both);
        small.max_vertices = 1;
        let r = khop(&ks, 1, &b("a"), 2, &small).unwrap().unwrap();
        assert_eq!(r.cut, Some(Cut::MaxVertices));
        assert_eq!(r.hops, vec![Vec::<Bytes>::new()]);
    }

    #[test]
    fn bidirectional_path() {
        let ks = Keyspace::new();
        for i in 0..10 {
            add(&ks, &format!("v{i}"), &format!("v{}", i + 1));
        }
        add(&ks, "v2", "v7");
        let r = shortest_path(&ks, 1, &b("v0"), &b("v10"), 20, &bounds(DirSel::Out)).unwrap().unwrap();
        let path: Vec<&str> = r.path.as_ref().unwrap().iter().map(|b| std::str::from_utf8(b).unwrap()).collect();
        assert_eq!(path, vec!["v0", "v1", "v2", "v7", "v8", "v9", "v10"]);
        let back = shortest_path(&ks, 1, &b("v10"), &b("v0"), 20, &bounds(DirSel::Out)).unwrap().unwrap();
        assert_eq!(back.path, None);
        assert_eq!(back.cut, None);
        let both = shortest_path(&ks, 1, &b("v10"), &b("v0"), 20, &bounds(DirSel::Both)).unwrap().unwrap();
        assert_eq!(both.path.unwrap().len(), 7);
        let short = shortest_path(&ks, 1, &b("v0"), &b("v10"), 3, &bounds(DirSel::Out)).unwrap().unwrap();
        assert_eq!((short.path, short.cut), (None, Some(Cut::MaxDepth)));
    }

    #[test]
    fn del_vertex_removes_mirrors() {
        let ks = Keyspace::new();
        add(&ks, "a", "b");
        add(&ks, "c", "a");
        add(&ks, "a", "a");
        let before = ks.used_memory();
        let op = GraphOp::DelVertex { vid: b("a"), neighbours: vec![b("a"), b("b"), b("c")] };
        assert_eq!(ks.apply(&Write { now_ms: 2, op: Op::Graph(op) }), Output::Int(1));
        for v in ["b", "c"] {
            let degree = with_vertex(&ks, v.as_bytes(), 2, |v| v.total_degree()).unwrap();
            assert_eq!(degree, Some(0), "{v}");
        }
        assert!(ks.used_memory() < before);
    }
}
