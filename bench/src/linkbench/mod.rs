//! A LinkBench-style workload (Armstrong et al., SIGMOD 2013: Facebook's social graph
//! traffic) against Prism's graph commands and against the same graph modelled the way
//! Redis users model one today.
//!
//! - Graph: vertices `v:1..v:N` (label `node`, a `data` property of `node_bytes`), M
//!   distinct edges of one type `l`, src drawn from a Zipf distribution (a power-law
//!   out-degree: low ids are the hubs), dst uniform, no self-loops, ranks 1..M in load
//!   order. Generated from a seed, so every target gets the same graph.
//! - Redis model: a hash `v:<id>` per vertex (fields `label`, `data`), a sorted set
//!   `o:<id>:l` (out) and `i:<id>:l` (in) per (vertex, type, direction) whose members are
//!   neighbour ids scored by rank. An edge's two halves are two ZADDs pipelined together
//!   (no MULTI: the cheaper choice, in Redis's favour); deleting a vertex reads both of its
//!   sets, then removes its id from every neighbour's set and deletes its keys — what keeps
//!   the model consistent, as V.DEL does.
//! - Operations and their share of the run: [`OPS`]. Ids of the operations are Zipf
//!   distributed over the loaded vertices (the same skew as the degrees); link reads,
//!   updates and deletes pick a loaded edge at random (which may since have been deleted).
//! - Co-location ([`Keys`] with groups > 0, `linkbench --colocate`): vertex `id` belongs
//!   to group `id % groups`, its keys carry the group as a hash tag (`v:{7}:1031`,
//!   `o:{7}:1031:l`), and every edge (loaded or added) stays inside its source's group, so
//!   an edge's two halves share a slot: what a fleet without cross-shard edges can run, and
//!   what a Redis Cluster needs for a vertex delete's multi-key DEL. The price: a vertex has
//!   at most vertices / groups distinct neighbours, which caps the hubs' degrees.

pub mod export;
pub mod run;

use rand::Rng;
use rand_distr::{Distribution, Zipf};

/// The one edge type of the workload.
pub const EDGE_TYPE: &str = "l";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Prism,
    Redis,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Prism => "prism",
            Target::Redis => "redis",
        }
    }
}

/// LinkBench's operations, with the mix of its published Facebook workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    GetLinkList,
    GetNode,
    AddLink,
    UpdateLink,
    UpdateNode,
    CountLinks,
    DeleteLink,
    AddNode,
    DeleteNode,
    GetLink,
}

/// (operation, name, share in per-mille-tenths: parts of 1000)
pub const OPS: [(OpKind, &str, u32); 10] = [
    (OpKind::GetLinkList, "get_link_list", 507),
    (OpKind::GetNode, "get_node", 129),
    (OpKind::AddLink, "add_link", 90),
    (OpKind::UpdateLink, "update_link", 80),
    (OpKind::UpdateNode, "update_node", 74),
    (OpKind::CountLinks, "count_links", 49),
    (OpKind::DeleteLink, "delete_link", 30),
    (OpKind::AddNode, "add_node", 26),
    (OpKind::DeleteNode, "delete_node", 10),
    (OpKind::GetLink, "get_link", 5),
];

impl OpKind {
    pub fn index(self) -> usize {
        OPS.iter().position(|o| o.0 == self).unwrap_or(0)
    }

    pub fn pick(rng: &mut impl Rng) -> OpKind {
        let mut x = rng.random_range(0..1000u32);
        for (op, _, share) in OPS {
            if x < share {
                return op;
            }
            x -= share;
        }
        OpKind::GetLinkList
    }
}

/// How vertex ids become keys: plain (`v:1031`) or, with `groups` > 0, tagged with the
/// vertex's co-location group (`v:{7}:1031`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keys {
    pub groups: u64,
}

impl Keys {
    fn tag(self, id: u64) -> String {
        if self.groups == 0 {
            String::new()
        } else {
            format!("{{{}}}:", id % self.groups)
        }
    }

    /// The vertex's key (Prism's vertex id, Redis's hash).
    pub fn vid(self, id: u64) -> String {
        format!("v:{}{id}", self.tag(id))
    }

    /// The Redis model's out-set (`dir` = "o") or in-set (`dir` = "i") of `id`.
    pub fn set(self, dir: &str, id: u64) -> String {
        format!("{dir}:{}{id}:{EDGE_TYPE}", self.tag(id))
    }

    /// The id in a vertex key (`v:1031`, `v:{7}:1031`), as the Redis sets hold them.
    pub fn id_of(member: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(member).ok()?;
        text.rsplit(':').next()?.parse().ok()
    }

    /// `dst` moved into `src`'s group (the nearest id of that group in 1..=vertices).
    pub fn colocate(self, src: u64, dst: u64, vertices: u64) -> u64 {
        let g = self.groups;
        if g == 0 || g > vertices {
            return dst;
        }
        let mut d = dst - dst % g + src % g;
        if d == 0 {
            d += g;
        }
        if d > vertices {
            d -= g;
        }
        d
    }
}

/// The generated graph both targets load.
pub struct Graph {
    pub vertices: u64,
    /// (src, dst); rank of edge i is i + 1.
    pub edges: Vec<(u64, u64)>,
    pub payload: String,
    pub keys: Keys,
}

impl Graph {
    pub fn generate(vertices: u64, edges: usize, zipf_s: f64, node_bytes: usize, seed: u64, keys: Keys) -> Graph {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let zipf = Zipf::new(vertices as f64, zipf_s).expect("zipf parameters checked by the caller");
        // Distinct edges possible: n(n-1), or with groups about n(n/g - 1).
        let per_src = if keys.groups > 0 { vertices / keys.groups.max(1) } else { vertices };
        let max = vertices.saturating_mul(per_src.saturating_sub(1)) as usize;
        let want = edges.min(max);
        let mut seen = std::collections::HashSet::with_capacity(want);
        let mut list = Vec::with_capacity(want);
        while list.len() < want {
            let src = zipf.sample(&mut rng) as u64;
            let dst = keys.colocate(src, rng.random_range(1..=vertices), vertices);
            if src != dst && seen.insert((src, dst)) {
                list.push((src, dst));
            }
        }
        let payload = (0..node_bytes).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
        Graph { vertices, edges: list, payload, keys }
    }

    pub fn vid(&self, id: u64) -> String {
        self.keys.vid(id)
    }

    /// The out-degree of every vertex (index = id).
    pub fn out_degrees(&self) -> Vec<u32> {
        let mut d = vec![0u32; self.vertices as usize + 1];
        for &(s, _) in &self.edges {
            d[s as usize] += 1;
        }
        d
    }
}

/// The commands that write vertex `id` in the load phase.
pub fn load_vertex(target: Target, keys: Keys, id: u64, payload: &str) -> Vec<Vec<String>> {
    let v = keys.vid(id);
    match target {
        Target::Prism => vec![vec!["V.SET".into(), v, "LABEL".into(), "node".into(), "data".into(), payload.into()]],
        Target::Redis => vec![vec!["HSET".into(), v, "label".into(), "node".into(), "data".into(), payload.into()]],
    }
}

/// The commands that add (or update) edge src -> dst with `rank`.
pub fn add_edge(target: Target, keys: Keys, src: u64, dst: u64, rank: i64) -> Vec<Vec<String>> {
    match target {
        Target::Prism => {
            vec![vec!["E.ADD".into(), keys.vid(src), EDGE_TYPE.into(), keys.vid(dst), "RANK".into(), rank.to_string()]]
        }
        Target::Redis => vec![
            vec!["ZADD".into(), keys.set("o", src), rank.to_string(), keys.vid(dst)],
            vec!["ZADD".into(), keys.set("i", dst), rank.to_string(), keys.vid(src)],
        ],
    }
}

/// First-round commands of one operation. `a` is the Zipf-drawn id, (`ls`, `ld`) a loaded
/// edge, `b` a uniform id, `new_id` a fresh vertex id, `rank` a fresh rank.
pub struct OpArgs<'a> {
    pub a: u64,
    pub b: u64,
    pub ls: u64,
    pub ld: u64,
    pub new_id: u64,
    pub rank: i64,
    pub payload: &'a str,
}

pub fn op_commands(target: Target, keys: Keys, op: OpKind, x: &OpArgs) -> Vec<Vec<String>> {
    let t = EDGE_TYPE.to_string();
    let (p, r) = (target == Target::Prism, target == Target::Redis);
    let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (vid, set) = (|id| keys.vid(id), |d, id| keys.set(d, id));
    match op {
        OpKind::GetLinkList if p => vec![c(&["E.RANGE", &vid(x.a), &t, "LIMIT", "10"])],
        OpKind::GetLinkList => vec![c(&["ZREVRANGE", &set("o", x.a), "0", "9", "WITHSCORES"])],
        OpKind::GetNode if p => vec![c(&["V.GET", &vid(x.a)])],
        OpKind::GetNode => vec![c(&["HGETALL", &vid(x.a)])],
        OpKind::AddLink => add_edge(target, keys, x.a, x.b, x.rank),
        OpKind::UpdateLink => add_edge(target, keys, x.ls, x.ld, x.rank),
        OpKind::UpdateNode if p => vec![c(&["V.SET", &vid(x.a), "data", x.payload])],
        OpKind::UpdateNode => vec![c(&["HSET", &vid(x.a), "data", x.payload])],
        OpKind::CountLinks if p => vec![c(&["E.COUNT", &vid(x.a), &t])],
        OpKind::CountLinks => vec![c(&["ZCARD", &set("o", x.a)])],
        OpKind::DeleteLink if p => vec![c(&["E.DEL", &vid(x.ls), &t, &vid(x.ld)])],
        OpKind::DeleteLink => {
            vec![c(&["ZREM", &set("o", x.ls), &vid(x.ld)]), c(&["ZREM", &set("i", x.ld), &vid(x.ls)])]
        }
        OpKind::AddNode => load_vertex(target, keys, x.new_id, x.payload),
        OpKind::DeleteNode if p => vec![c(&["V.DEL", &vid(x.a)])],
        OpKind::DeleteNode if r => {
            vec![c(&["ZRANGE", &set("o", x.a), "0", "-1"]), c(&["ZRANGE", &set("i", x.a), "0", "-1"])]
        }
        OpKind::DeleteNode => unreachable!("two targets"),
        OpKind::GetLink if p => vec![c(&["E.GET", &vid(x.ls), &t, &vid(x.ld)])],
        OpKind::GetLink => vec![c(&["ZSCORE", &set("o", x.ls), &vid(x.ld)])],
    }
}

/// Second-round commands (Redis's vertex delete): given the vertex's out- and in-members,
/// remove its id from each neighbour's mirror set and delete its own keys. `split_del`:
/// one DEL per key (a cluster without co-location, where the three keys are in three
/// slots and one DEL would be refused with CROSSSLOT).
pub fn delete_node_followup(
    keys: Keys,
    a: u64,
    outs: &[Vec<u8>],
    ins: &[Vec<u8>],
    split_del: bool,
) -> Vec<Vec<String>> {
    let mut cmds = Vec::with_capacity(outs.len() + ins.len() + 3);
    for m in outs.iter().filter_map(|m| Keys::id_of(m)) {
        cmds.push(vec!["ZREM".into(), keys.set("i", m), keys.vid(a)]);
    }
    for m in ins.iter().filter_map(|m| Keys::id_of(m)) {
        cmds.push(vec!["ZREM".into(), keys.set("o", m), keys.vid(a)]);
    }
    let own = [keys.vid(a), keys.set("o", a), keys.set("i", a)];
    if split_del {
        own.into_iter().for_each(|k| cmds.push(vec!["DEL".into(), k]));
    } else {
        cmds.push(std::iter::once("DEL".to_string()).chain(own).collect());
    }
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::key_slot;

    #[test]
    fn colocated_keys_share_a_slot() {
        let keys = Keys { groups: 512 };
        let n = 100_000;
        for (src, dst) in [(1, 2), (7, 99_999), (512, 3), (100_000, 1), (99_999, 99_998)] {
            let d = keys.colocate(src, dst, n);
            assert!((1..=n).contains(&d), "{d} out of range");
            assert_eq!(d % 512, src % 512);
            let slot = key_slot(keys.vid(src).as_bytes());
            for k in [keys.vid(d), keys.set("o", src), keys.set("i", d), keys.set("i", src)] {
                assert_eq!(key_slot(k.as_bytes()), slot, "{k}");
            }
        }
        assert_eq!(keys.vid(1031), "v:{7}:1031");
        assert_eq!(Keys::id_of(b"v:{7}:1031"), Some(1031));
        assert_eq!(Keys::id_of(b"v:1031"), Some(1031));
        let plain = Keys::default();
        assert_eq!((plain.vid(5), plain.set("o", 5)), ("v:5".to_string(), "o:5:l".to_string()));
        assert_eq!(plain.colocate(3, 9, 10), 9);
    }

    #[test]
    fn colocated_graph_keeps_edges_in_groups() {
        let keys = Keys { groups: 16 };
        let g = Graph::generate(1000, 5000, 0.9, 8, 1, keys);
        assert_eq!(g.edges.len(), 5000);
        assert!(g.edges.iter().all(|&(s, d)| s != d && s % 16 == d % 16 && (1..=1000).contains(&d)));
    }
}
