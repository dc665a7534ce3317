//! The seed corpus (`fuzz/corpus/<target>/`), built from real values: RESP requests, a
//! write of every op kind, peer frames of every kind, real cold objects and DUMP
//! payloads, and command sessions. `src/bin/seeds.rs` writes them; the targets also use
//! [`setup_ops`] and [`image`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use prism_engine::graph::{Dir, EdgeHalf, GraphOp, HalfAt};
use prism_engine::list::{End, ListOp};
use prism_engine::op::{Exists, ExpireCond, Guarded, Op, TtlChange, Write};
use prism_engine::set::{Algebra, SetOp};
use prism_engine::zset::{AddFlags, Aggregate, Combine, ZSetOp};
use prism_engine::{dump, Keyspace, Slot};

use crate::{command_index, index_of, Arg, Step, FLOATS, KEYS, MEMBERS, WORDS};

pub const NOW: u64 = 1_700_000_000_000;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn half(owner: &str, dir: Dir, other: &str) -> EdgeHalf {
    EdgeHalf { owner: b(owner), dir, etype: b("follows"), other: b(other) }
}

/// Writes that leave one value of each type under `{t}s`, `{t}h`, `{t}st`, `{t}z`,
/// `{t}l` and the vertices `{t}v1` -> `{t}v2` (one slot, so the keyspace spills as one
/// cold object).
pub fn setup_ops() -> Vec<Op> {
    vec![
        Op::Set { key: b("{t}s"), value: b("hello"), exists: Exists::Any, ttl: TtlChange::Clear, get: false },
        Op::HSet { key: b("{t}h"), pairs: vec![(b("f"), b("1")), (b("g"), b("x"))], nx: false },
        Op::Sets(SetOp::Add { key: b("{t}st"), members: vec![b("a"), b("b"), b("1")] }),
        Op::SortedSets(ZSetOp::Add {
            key: b("{t}z"),
            flags: AddFlags::default(),
            pairs: vec![(1.0, b("a")), (2.5, b("b")), (-3.0, b("c"))],
        }),
        Op::Lists(ListOp::Push {
            key: b("{t}l"),
            end: End::Right,
            elements: vec![b("x"), b("y")],
            only_if_exists: false,
        }),
        Op::Graph(GraphOp::SetVertex { vid: b("{t}v1"), label: Some(b("user")), props: vec![(b("name"), b("a"))] }),
        Op::Graph(GraphOp::SetVertex { vid: b("{t}v2"), label: None, props: vec![] }),
        Op::Graph(GraphOp::AddEdge {
            out: half("{t}v1", Dir::Out, "{t}v2"),
            inn: half("{t}v2", Dir::In, "{t}v1"),
            rank: Some(7),
            props: Some(vec![(b("w"), b("1"))]),
        }),
    ]
}

/// The keys the setup and the seeds use.
pub const SETUP_KEYS: &[&str] = &["{t}s", "{t}h", "{t}st", "{t}z", "{t}l", "{t}v1", "{t}v2", "ttl", "k", "d"];

/// What a client could see of `keys` at `now`: each key's DUMP payload and deadline.
pub fn image_of(ks: &Keyspace, keys: &[Bytes], now: u64) -> Vec<Option<(Vec<u8>, u64)>> {
    keys.iter().map(|k| ks.get(k, now, |e| e.map(|e| (dump::encode(&e.value), e.expire_at)))).collect()
}

/// [`image_of`] the setup keys.
pub fn image(ks: &Keyspace, now: u64) -> Vec<Option<(Vec<u8>, u64)>> {
    let keys: Vec<Bytes> = SETUP_KEYS.iter().map(|k| b(k)).collect();
    image_of(ks, &keys, now)
}

/// One write of every op kind, over the setup keys.
pub fn ops() -> Vec<Op> {
    let mut ops = setup_ops();
    let z = || b("{t}z");
    ops.extend([
        Op::Del { keys: vec![b("{t}s"), b("k")] },
        Op::Set { key: b("k"), value: b("v"), exists: Exists::Absent, ttl: TtlChange::At(NOW + 5000), get: true },
        Op::MSet { pairs: vec![(b("k"), b("1")), (b("d"), b("2"))], nx: true },
        Op::IncrBy { key: b("k"), delta: -5 },
        Op::IncrByFloat { key: b("k"), delta: 1.5 },
        Op::Append { key: b("{t}s"), value: b("!") },
        Op::SetRange { key: b("{t}s"), offset: 3, value: b("LL") },
        Op::GetDel { key: b("{t}s") },
        Op::GetEx { key: b("{t}s"), ttl: TtlChange::Keep },
        Op::Expire { key: b("{t}h"), at_ms: (NOW + 100) as i64, cond: ExpireCond::Gt },
        Op::Persist { key: b("ttl") },
        Op::Rename { src: b("{t}s"), dst: b("d"), nx: false },
        Op::HDel { key: b("{t}h"), fields: vec![b("f")] },
        Op::HIncrBy { key: b("{t}h"), field: b("f"), delta: 3 },
        Op::HIncrByFloat { key: b("{t}h"), field: b("f"), delta: 0.25 },
        Op::FlushAll,
        Op::PurgeExpired { keys: vec![b("ttl")] },
        Op::Copy { src: b("{t}v1"), dst: b("d"), replace: true },
        Op::Restore {
            key: b("d"),
            payload: Bytes::from(dump::encode(&prism_engine::Value::Str(b"restored".into()))),
            expire_at: 0,
            replace: true,
        },
        Op::SortStore { key: b("{t}l"), dst: b("d"), spec: prism_engine::sort::SortSpec::new() },
        Op::Sets(SetOp::Rem { key: b("{t}st"), members: vec![b("a")] }),
        Op::Sets(SetOp::Pop { key: b("{t}st"), count: Some(2), seed: 42 }),
        Op::Sets(SetOp::Move { src: b("{t}st"), dst: b("d"), member: b("b") }),
        Op::Sets(SetOp::Store { algebra: Algebra::Union, dst: b("d"), keys: vec![b("{t}st"), b("k")] }),
        Op::SortedSets(ZSetOp::Rem { key: z(), members: vec![b("a")] }),
        Op::SortedSets(ZSetOp::Pop { key: z(), max: true, count: 2 }),
        Op::SortedSets(ZSetOp::MPop { keys: vec![b("k"), z()], max: false, count: 1 }),
        Op::SortedSets(ZSetOp::RemRange { key: z(), by: prism_engine::zset::RangeBy::Rank { start: 0, stop: -2 } }),
        Op::SortedSets(ZSetOp::RangeStore {
            dst: b("d"),
            src: z(),
            range: prism_engine::zset::Range::new(prism_engine::zset::RangeBy::Rank { start: 0, stop: -1 }, true),
        }),
        Op::SortedSets(ZSetOp::Store {
            dst: b("d"),
            kind: Combine::Inter,
            keys: vec![z(), b("{t}st")],
            weights: vec![2.0, 1.0],
            aggregate: Aggregate::Max,
        }),
        Op::Lists(ListOp::Pop { key: b("{t}l"), end: End::Left, count: Some(1) }),
        Op::Lists(ListOp::Set { key: b("{t}l"), index: -1, element: b("z") }),
        Op::Lists(ListOp::Rem { key: b("{t}l"), count: -1, element: b("x") }),
        Op::Lists(ListOp::Trim { key: b("{t}l"), start: 1, stop: -1 }),
        Op::Lists(ListOp::Insert { key: b("{t}l"), after: true, pivot: b("x"), element: b("w") }),
        Op::Lists(ListOp::Move { src: b("{t}l"), dst: b("d"), from: End::Left, to: End::Right }),
        Op::Lists(ListOp::MPop { keys: vec![b("k"), b("{t}l")], end: End::Right, count: 5 }),
        Op::Graph(GraphOp::DelEdge { out: half("{t}v1", Dir::Out, "{t}v2"), inn: half("{t}v2", Dir::In, "{t}v1") }),
        Op::Graph(GraphOp::Detach { vid: b("{t}v1"), neighbours: vec![b("{t}v2")] }),
        Op::Graph(GraphOp::DelVertex { vid: b("{t}v2"), neighbours: vec![b("{t}v1")] }),
        Op::Graph(GraphOp::DropHalves {
            gone: b("{t}v2"),
            halves: vec![HalfAt { holder: b("{t}v1"), etype: b("follows"), dir: Dir::Out }],
        }),
        Op::Graph(GraphOp::Bind { vid: b("{t}v1") }),
        Op::Graph(GraphOp::Confirm { vid: b("{t}v1"), neighbours: vec![b("{t}v2")] }),
        Op::Graph(GraphOp::AddEdgeOut {
            out: half("{t}v1", Dir::Out, "x"),
            inn: half("x", Dir::In, "{t}v1"),
            rank: None,
            props: None,
        }),
        Op::Graph(GraphOp::DelEdgeOut { out: half("{t}v1", Dir::Out, "x"), inn: half("x", Dir::In, "{t}v1") }),
        Op::Graph(GraphOp::DetachAcross {
            vid: b("{t}v1"),
            local: vec![b("{t}v2")],
            remote: vec![b("x")],
            delete: true,
        }),
        Op::Graph(GraphOp::DropRemote {
            gone: b("x"),
            halves: vec![(HalfAt { holder: b("{t}v1"), etype: b("follows"), dir: Dir::Out }, 7)],
        }),
        Op::Shard(prism_engine::shard_meta::ShardOp::Migrate { slots: vec![Slot::of_key(b"{t}s").get()], to: 2 }),
        Op::Shard(prism_engine::shard_meta::ShardOp::Stable { slots: vec![1, 2] }),
        Op::Tier(prism_engine::tier::manifest::TierOp::Loaded {
            slot: Slot::of_key(b"{t}s").get(),
            object: "obj".into(),
            rows: vec![(b("{t}q"), 0, Bytes::from(dump::encode(&prism_engine::Value::Str(b"q".into()))))],
        }),
    ]);
    let multi =
        vec![Op::IncrBy { key: b("k"), delta: 1 }, Op::HSet { key: b("k"), pairs: vec![(b("f"), b("v"))], nx: false }];
    ops.push(Op::Multi(multi.clone()));
    ops.push(Op::Guarded(Box::new(Guarded {
        tag: 0,
        versions: vec![(Slot::of_key(b"k").get(), 0)],
        expires_at: 0,
        ops: multi,
    })));
    ops
}

/// Encoded writes: every op kind (the `op_decode` corpus).
pub fn write_seeds() -> Vec<Vec<u8>> {
    ops().into_iter().map(|op| bincode::serialize(&Write { now_ms: NOW, op }).expect("encodes")).collect()
}

/// A keyspace after the setup writes.
pub fn populated() -> Keyspace {
    let ks = Keyspace::new();
    for op in setup_ops() {
        ks.apply(&Write { now_ms: NOW, op });
    }
    ks
}

/// Real cold objects: the setup keys' slot, and one of a single string with a deadline.
pub fn cold_objects() -> Vec<Vec<u8>> {
    let ks = populated();
    let slot = Slot::of_key(b"{t}s");
    let full = prism_engine::tier::spill_slot(&ks, slot).expect("spills").0.bytes.to_vec();
    let small = Keyspace::new();
    small.apply(&Write {
        now_ms: NOW,
        op: Op::Set { key: b("{u}k"), value: b("v"), exists: Exists::Any, ttl: TtlChange::At(NOW + 1), get: false },
    });
    let one = prism_engine::tier::spill_slot(&small, Slot::of_key(b"{u}k")).expect("spills").0.bytes.to_vec();
    vec![full, one]
}

/// DUMP payloads of every type (the `dump_payload` corpus; whole payloads start with
/// the magic and are used as they are).
pub fn dump_seeds() -> Vec<Vec<u8>> {
    let ks = populated();
    let mut out: Vec<Vec<u8>> = SETUP_KEYS[..7]
        .iter()
        .filter_map(|k| ks.get(k.as_bytes(), NOW, |e| e.map(|e| dump::encode(&e.value))))
        .collect();
    // Bodies for the envelope the harness adds: tag byte, then the body.
    let bodies: Vec<Vec<u8>> = out.iter().map(|p| p[5..p.len() - 8].to_vec()).collect();
    out.extend(bodies);
    out
}

/// Requests as clients send them (the `resp_decode` corpus; first byte: parser mode).
pub fn resp_seeds() -> Vec<Vec<u8>> {
    let reqs: &[&[u8]] = &[
        b"*1\r\n$4\r\nPING\r\n",
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
        b"PING\r\nSET k \"a b\\x41\\n\" 'it\\'s'\r\n\r\n",
        b"*0\r\n*-1\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
        b"*2\r\n$4\r\nAUTH\r\n$99999\r\n",
        b"*5\r\n$4\r\nZADD\r\n$1\r\nz\r\n$1\r\n1\r\n$1\r\na\r\n$4\r\n-inf\r\n",
        b"*1\r\n$-1\r\n",
        b"*12\r\n",
        b"GET\n*1\r\n$4\r\nPI",
    ];
    let mut out = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let mut s = vec![(i % 4) as u8];
        s.extend_from_slice(r);
        out.push(s);
    }
    out
}

fn req(name: &str, args: Vec<Arg>) -> Step {
    Step::Request { command: command_index(name), args }
}

fn key(k: &str) -> Arg {
    Arg::Key(index_of(KEYS, k))
}
fn member(m: &str) -> Arg {
    Arg::Member(index_of(MEMBERS, m))
}
fn word(w: &str) -> Arg {
    Arg::Word(index_of(WORDS, w))
}
fn float(f: &str) -> Arg {
    Arg::Float(index_of(FLOATS, f))
}
fn small(n: i64) -> Arg {
    Arg::Int((n + 64) as u8)
}
fn raw(s: &str) -> Arg {
    Arg::Raw(s.as_bytes().to_vec())
}

/// Command sessions (the `command` corpus): each family's common paths.
pub fn command_seeds() -> Vec<Vec<u8>> {
    let a = || key("{t}a");
    let bk = || key("{t}b");
    let sessions: Vec<(bool, Vec<Step>)> = vec![
        (
            false,
            vec![
                req("set", vec![a(), raw("10"), word("EX"), small(10)]),
                req("incrby", vec![a(), small(5)]),
                req("append", vec![a(), raw("x")]),
                req("getrange", vec![a(), small(0), small(-1)]),
                req("setrange", vec![a(), small(3), raw("yy")]),
                Step::Tick(1000),
                req("get", vec![a()]),
                req("ttl", vec![a()]),
            ],
        ),
        (
            true,
            vec![
                req("hset", vec![a(), member("f"), raw("1"), member("m1"), raw("x")]),
                req("hincrbyfloat", vec![a(), member("f"), float("1.5")]),
                req("hgetall", vec![a()]),
                req("hrandfield", vec![a(), small(-5), word("WITHVALUES")]),
                req("hscan", vec![a(), small(0), word("COUNT"), small(1)]),
            ],
        ),
        (
            false,
            vec![
                req("zadd", vec![a(), word("NX"), float("1.5"), member("m1"), float("-inf"), member("m2")]),
                req(
                    "zrange",
                    vec![a(), float("(1"), float("+inf"), word("BYSCORE"), word("LIMIT"), small(0), small(2)],
                ),
                req("zunionstore", vec![bk(), small(2), a(), key("{t}c"), word("WEIGHTS"), small(2), small(3)]),
                req("zrangebylex", vec![a(), float("-"), float("+")]),
                req("zpopmin", vec![a(), small(3)]),
            ],
        ),
        (
            false,
            vec![
                req("rpush", vec![a(), member("m1"), member("m2"), member("m3")]),
                req("lpos", vec![a(), member("m2"), word("RANK"), small(-1)]),
                req("linsert", vec![a(), word("BEFORE"), member("m2"), member("x")]),
                req("lmove", vec![a(), bk(), word("LEFT"), word("RIGHT")]),
                req("sort", vec![a(), word("ALPHA"), word("DESC"), word("STORE"), key("{t}c")]),
                req("blpop", vec![key("{t}d"), small(1)]),
            ],
        ),
        (
            false,
            vec![
                req("sadd", vec![a(), member("m1"), member("1"), member("2")]),
                req("sinterstore", vec![bk(), a(), key("{t}c")]),
                req("srandmember", vec![a(), small(-3)]),
                req("smismember", vec![a(), member("m1"), member("x")]),
                req("spop", vec![a(), small(2)]),
            ],
        ),
        (
            false,
            vec![
                req("v.set", vec![key("v1"), word("LABEL"), raw("user"), raw("name"), raw("a")]),
                req("v.set", vec![key("v2"), word("LABEL"), raw("user")]),
                req("e.add", vec![key("v1"), member("follows"), member("v2")]),
                req("e.range", vec![key("v1"), member("follows"), word("OUT"), word("WITHPROPS")]),
                req("g.khop", vec![key("v1"), small(2)]),
                req("g.path", vec![key("v1"), member("v2")]),
                req("v.del", vec![key("v1")]),
            ],
        ),
        (
            false,
            vec![
                req("set", vec![a(), raw("v")]),
                req("dump", vec![a()]),
                req("restore", vec![bk(), small(0), Arg::LastBulk]),
                req("copy", vec![bk(), key("{t}c"), word("REPLACE")]),
                req("rename", vec![key("{t}c"), key("{t}d")]),
                req("scan", vec![small(0), word("MATCH"), raw("{t}*"), word("TYPE"), raw("string")]),
                req("object", vec![Arg::Sub(0), a()]),
            ],
        ),
        (
            false,
            vec![
                req("watch", vec![a()]),
                req("multi", vec![]),
                req("incr", vec![a()]),
                req("lpush", vec![a(), raw("x")]),
                req("exec", vec![]),
                req("client", vec![Arg::Sub(0)]),
                req("config", vec![raw("get"), raw("*max*")]),
                req("command", vec![raw("getkeys"), raw("sort"), raw("k"), raw("STORE"), raw("d")]),
                req("cluster", vec![raw("keyslot"), raw("{t}a")]),
                req("info", vec![raw("everything")]),
            ],
        ),
        (
            true,
            vec![
                req("subscribe", vec![raw("ch")]),
                req("publish", vec![raw("ch"), raw("hi")]),
                req("acl", vec![raw("setuser"), raw("alice"), raw("on"), raw(">pw"), raw("~*"), raw("+@all")]),
                req("acl", vec![raw("whoami")]),
                req("reset", vec![]),
            ],
        ),
    ];
    sessions.into_iter().map(|(resp3, steps)| crate::encode(resp3, &steps)).collect()
}

/// Peer frames and handshake messages (the `peer_message` corpus); frames carry their
/// u32 length prefix as on the wire.
pub fn peer_seeds() -> Vec<Vec<u8>> {
    use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};
    use prism_replication::network::{encode_message, Challenge, Frame, Hello, Proof, Request, Response, Verdict};
    use prism_replication::types::{ExpandRequest, GraphRequest, GraphResponse, NodeStatus, PeerNode, TypeConfig};

    let log_id = |term, index| LogId::new(CommittedLeaderId::new(term, 1), index);
    let batch: Vec<Write> = ops().into_iter().take(12).map(|op| Write { now_ms: NOW, op }).collect();
    let members = Membership::<u64, PeerNode>::new(
        vec![BTreeSet::from([1, 2, 3])],
        BTreeMap::from([
            (1, PeerNode::new("10.0.0.1:16379", "10.0.0.1:6379")),
            (2, PeerNode::new("10.0.0.2:16379", "10.0.0.2:6379")),
            (3, PeerNode::new("10.0.0.3:16379", "10.0.0.3:6379")),
        ]),
    );
    let entries: Vec<Entry<TypeConfig>> = vec![
        Entry { log_id: log_id(2, 5), payload: EntryPayload::Blank },
        Entry { log_id: log_id(2, 6), payload: EntryPayload::Normal(batch) },
        Entry { log_id: log_id(2, 7), payload: EntryPayload::Membership(members) },
    ];
    let append = AppendEntriesRequest {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(1, 4)),
        entries,
        leader_commit: Some(log_id(2, 5)),
    };
    let status = NodeStatus {
        node: 2,
        group: 1,
        term: 2,
        leader: Some(1),
        membership_index: 7,
        members: vec![(1, PeerNode::new("a:1", "a:2"), true)],
        claims: vec![(0, 16383, 1, 3)],
    };
    let requests = vec![
        Request::Append(append),
        Request::Vote(VoteRequest::new(Vote::new(3, 2), Some(log_id(2, 7)))),
        Request::Status(status),
        Request::Campaign { not_before_ms: 10, window_ms: 500, log_at_least: 7 },
        Request::Transfer { to: 3 },
        Request::Graph(GraphRequest::Expand(ExpandRequest {
            vertices: vec![b("{t}v1")],
            types: vec![b("follows")],
            dir: 2,
            per_vertex: 10,
            max_distinct: 100,
            budget_ms: 50,
            linearizable: true,
        })),
    ];
    let responses = vec![
        Response::Append(Ok(AppendEntriesResponse::Success)),
        Response::Vote(Ok(VoteResponse { vote: Vote::new(3, 2), vote_granted: true, last_log_id: Some(log_id(2, 7)) })),
        Response::NoGroup(9),
        Response::Noted,
        Response::Campaign(Err("no".into())),
        Response::Graph(GraphResponse::Expanded { lists: vec![Some(vec![b("{t}v2")]), None], cut: None }),
        Response::Graph(GraphResponse::Refused("TRYAGAIN".into())),
    ];
    let framed = |bytes: Vec<u8>| {
        let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&bytes);
        out
    };
    let mut out = Vec::new();
    for (i, body) in requests.into_iter().enumerate() {
        out.push(framed(encode_message(&Frame::Request { id: i as u64, group: 1, body }).expect("encodes")));
    }
    for (i, body) in responses.into_iter().enumerate() {
        out.push(framed(encode_message(&Frame::Response { id: i as u64, body }).expect("encodes")));
    }
    out.push(encode_message(&Hello { magic: *b"PRSMPEER", version: 2, from: 1, to: 2 }).expect("encodes"));
    out.push(encode_message(&Challenge { nonce: [7; 32], proof: Some([9; 32]) }).expect("encodes"));
    out.push(encode_message(&Proof { mac: None }).expect("encodes"));
    out.push(encode_message(&Verdict { accepted: true }).expect("encodes"));
    out
}

/// Every target's seeds, by target name.
pub fn all() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("resp_decode", resp_seeds()),
        ("command", command_seeds()),
        ("op_decode", write_seeds()),
        ("peer_message", peer_seeds()),
        ("cold_object", cold_objects()),
        ("dump_payload", dump_seeds()),
    ]
}
