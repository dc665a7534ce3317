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

pub fn vid(id: u64) -> String {
    format!("v:{id}")
}

/// The generated graph both targets load.
pub struct Graph {
    pub vertices: u64,
    /// (src, dst); rank of edge i is i + 1.
    pub edges: Vec<(u64, u64)>,
    pub payload: String,
}

impl Graph {
    pub fn generate(vertices: u64, edges: usize, zipf_s: f64, node_bytes: usize, seed: u64) -> Graph {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let zipf = Zipf::new(vertices as f64, zipf_s).expect("zipf parameters checked by the caller");
        let max = (vertices * vertices.saturating_sub(1)) as usize;
        let want = edges.min(max);
        let mut seen = std::collections::HashSet::with_capacity(want);
        let mut list = Vec::with_capacity(want);
        while list.len() < want {
            let src = zipf.sample(&mut rng) as u64;
            let dst = rng.random_range(1..=vertices);
            if src != dst && seen.insert((src, dst)) {
                list.push((src, dst));
            }
        }
        let payload = (0..node_bytes).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
        Graph { vertices, edges: list, payload }
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
pub fn load_vertex(target: Target, id: u64, payload: &str) -> Vec<Vec<String>> {
    let v = vid(id);
    match target {
        Target::Prism => vec![vec!["V.SET".into(), v, "LABEL".into(), "node".into(), "data".into(), payload.into()]],
        Target::Redis => vec![vec!["HSET".into(), v, "label".into(), "node".into(), "data".into(), payload.into()]],
    }
}

/// The commands that add (or update) edge src -> dst with `rank`.
pub fn add_edge(target: Target, src: u64, dst: u64, rank: i64) -> Vec<Vec<String>> {
    match target {
        Target::Prism => {
            vec![vec!["E.ADD".into(), vid(src), EDGE_TYPE.into(), vid(dst), "RANK".into(), rank.to_string()]]
        }
        Target::Redis => vec![
            vec!["ZADD".into(), format!("o:{src}:{EDGE_TYPE}"), rank.to_string(), vid(dst)],
            vec!["ZADD".into(), format!("i:{dst}:{EDGE_TYPE}"), rank.to_string(), vid(src)],
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

pub fn op_commands(target: Target, op: OpKind, x: &OpArgs) -> Vec<Vec<String>> {
    let t = EDGE_TYPE.to_string();
    let (p, r) = (target == Target::Prism, target == Target::Redis);
    let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match op {
        OpKind::GetLinkList if p => vec![c(&["E.RANGE", &vid(x.a), &t, "LIMIT", "10"])],
        OpKind::GetLinkList => vec![c(&["ZREVRANGE", &format!("o:{}:{t}", x.a), "0", "9", "WITHSCORES"])],
        OpKind::GetNode if p => vec![c(&["V.GET", &vid(x.a)])],
        OpKind::GetNode => vec![c(&["HGETALL", &vid(x.a)])],
        OpKind::AddLink => add_edge(target, x.a, x.b, x.rank),
        OpKind::UpdateLink => add_edge(target, x.ls, x.ld, x.rank),
        OpKind::UpdateNode if p => vec![c(&["V.SET", &vid(x.a), "data", x.payload])],
        OpKind::UpdateNode => vec![c(&["HSET", &vid(x.a), "data", x.payload])],
        OpKind::CountLinks if p => vec![c(&["E.COUNT", &vid(x.a), &t])],
        OpKind::CountLinks => vec![c(&["ZCARD", &format!("o:{}:{t}", x.a)])],
        OpKind::DeleteLink if p => vec![c(&["E.DEL", &vid(x.ls), &t, &vid(x.ld)])],
        OpKind::DeleteLink => vec![
            c(&["ZREM", &format!("o:{}:{t}", x.ls), &vid(x.ld)]),
            c(&["ZREM", &format!("i:{}:{t}", x.ld), &vid(x.ls)]),
        ],
        OpKind::AddNode => load_vertex(target, x.new_id, x.payload),
        OpKind::DeleteNode if p => vec![c(&["V.DEL", &vid(x.a)])],
        OpKind::DeleteNode if r => {
            vec![
                c(&["ZRANGE", &format!("o:{}:{t}", x.a), "0", "-1"]),
                c(&["ZRANGE", &format!("i:{}:{t}", x.a), "0", "-1"]),
            ]
        }
        OpKind::DeleteNode => unreachable!("two targets"),
        OpKind::GetLink if p => vec![c(&["E.GET", &vid(x.ls), &t, &vid(x.ld)])],
        OpKind::GetLink => vec![c(&["ZSCORE", &format!("o:{}:{t}", x.ls), &vid(x.ld)])],
    }
}

/// Second-round commands (Redis's vertex delete): given the vertex's out- and in-members,
/// remove its id from each neighbour's mirror set and delete its own keys.
pub fn delete_node_followup(a: u64, outs: &[Vec<u8>], ins: &[Vec<u8>]) -> Vec<Vec<String>> {
    let t = EDGE_TYPE;
    let mut cmds = Vec::with_capacity(outs.len() + ins.len() + 1);
    let id_of = |m: &[u8]| String::from_utf8_lossy(m.strip_prefix(b"v:").unwrap_or(m)).into_owned();
    for m in outs {
        cmds.push(vec!["ZREM".into(), format!("i:{}:{t}", id_of(m)), vid(a)]);
    }
    for m in ins {
        cmds.push(vec!["ZREM".into(), format!("o:{}:{t}", id_of(m)), vid(a)]);
    }
    cmds.push(vec!["DEL".into(), vid(a), format!("o:{a}:{t}"), format!("i:{a}:{t}")]);
    cmds
}
