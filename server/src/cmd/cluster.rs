//! Cluster commands: CLUSTER KEYSLOT INFO MYID MYSHARDID SLOTS SHARDS NODES REPLICAS
//! SLAVES COUNTKEYSINSLOT GETKEYSINSLOT HELP, rendered from the node's
//! [`crate::topology::Topology`].
//!
//! These are what unchanged Redis cluster clients parse on connect and after every
//! `-MOVED` (redis-rs and redis-py read SLOTS, newer clients SHARDS, redis-cli and
//! redis-benchmark `--cluster` split NODES by spaces), so each reply is byte for byte
//! Redis 7.2's: NODES and INFO are verbatim strings in RESP3, SLOTS's fourth per-node
//! element is the (empty) networking-metadata map, SHARDS's slots are integers.
//!
//! A node whose announced IP is empty is reported at the address the asking client
//! connected to, so a node bound to a wildcard address gives each client an address it
//! can reach.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::Bytes;
use prism_engine::{Slot, SLOT_COUNT};

use super::{arg_i64, command::write_help, CmdError, Ctx};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};
use crate::topology::{ClusterNode, Topology};

/// A subcommand spec of the cluster group (CLUSTER's and RAFT's).
pub(super) const fn sub(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    since: &'static str,
    complexity: &'static str,
    f: fn(&mut Ctx<'_>, &[Bytes]),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys: KeySpec::None,
        group: Group::Cluster,
        summary,
        since,
        complexity,
        handler: Handler::Direct(f),
    }
}

const SUBCOMMANDS: &[CommandSpec] = &[
    sub("countkeysinslot", 3, STALE, "Returns the number of keys in a hash slot.", "3.0.0", "O(1)", countkeysinslot),
    sub(
        "failover",
        -2,
        ADMIN | NOSCRIPT | STALE,
        "Forces a replica to perform a manual failover of its master.",
        "3.0.0",
        "O(1)",
        super::raft::failover,
    ),
    sub(
        "getkeysinslot",
        4,
        STALE,
        "Returns the key names in a hash slot.",
        "3.0.0",
        "O(N) where N is the number of requested keys",
        getkeysinslot,
    ),
    sub("help", 2, LOADING | STALE, "Returns helpful text about the different subcommands.", "5.0.0", "O(1)", help),
    sub("info", 2, STALE, "Returns information about the state of a node.", "3.0.0", "O(1)", info),
    sub(
        "keyslot",
        3,
        STALE,
        "Returns the hash slot for a key.",
        "3.0.0",
        "O(N) where N is the number of bytes in the key",
        keyslot,
    ),
    sub(
        "links",
        2,
        STALE,
        "Returns a list of all TCP links to and from peer nodes.",
        "7.0.0",
        "O(N) where N is the total number of Cluster nodes",
        links,
    ),
    sub("myid", 2, STALE, "Returns the ID of a node.", "3.0.0", "O(1)", myid),
    sub("myshardid", 2, STALE, "Returns the shard ID of a node.", "7.2.0", "O(1)", myshardid),
    sub(
        "nodes",
        2,
        STALE,
        "Returns the cluster configuration for a node.",
        "3.0.0",
        "O(N) where N is the total number of Cluster nodes",
        nodes,
    ),
    sub(
        "replicas",
        3,
        ADMIN | STALE,
        "Lists the replica nodes of a master node.",
        "5.0.0",
        "O(N) where N is the number of replicas.",
        replicas,
    ),
    sub("setslot", -4, ADMIN | STALE, "Binds a hash slot to a node.", "3.0.0", "O(1)", super::reshard::setslot),
    sub(
        "shards",
        2,
        LOADING | STALE,
        "Returns the mapping of cluster slots to shards.",
        "7.0.0",
        "O(N) where N is the total number of cluster nodes",
        shards,
    ),
    sub(
        "slaves",
        3,
        ADMIN | STALE,
        "Lists the replica nodes of a master node.",
        "3.0.0",
        "O(N) where N is the number of replicas.",
        replicas,
    ),
    sub(
        "slots",
        2,
        LOADING | STALE,
        "Returns the mapping of cluster slots to nodes.",
        "3.0.0",
        "O(N) where N is the total number of Cluster nodes",
        slots,
    ),
];

pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "cluster",
    arity: -2,
    flags: 0,
    keys: KeySpec::None,
    group: Group::Cluster,
    summary: "A container for Redis Cluster commands.",
    since: "3.0.0",
    complexity: "Depends on subcommand.",
    handler: Handler::Container(SUBCOMMANDS),
}];

fn keyslot(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    ctx.out.int(Slot::of_key(&args[2]).get() as i64);
}

fn myid(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let topology = ctx.node.topology.load();
    ctx.out.bulk(topology.myself().id.as_bytes());
}

fn myshardid(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let topology = ctx.node.topology.load();
    match topology.shards.get(topology.myself().shard) {
        Some((id, _)) => ctx.out.bulk(id.as_bytes()),
        None => ctx.out.error("ERR No shard ID yet"),
    }
}

fn info(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let text = {
        let t = ctx.node.topology.load();
        let assigned = t.slots_assigned();
        let state = if assigned == SLOT_COUNT { "ok" } else { "fail" };
        // Shards that serve at least one slot through a primary, as Redis's cluster_size.
        let size = (0..t.shards.len()).filter(|&s| !t.shards[s].1.is_empty() && t.primary_of(s).is_some()).count();
        let my_epoch = t.primary_of(t.myself().shard).map_or(t.myself().config_epoch, |p| p.config_epoch);
        format!(
            "cluster_state:{state}\r\n\
             cluster_slots_assigned:{assigned}\r\n\
             cluster_slots_ok:{assigned}\r\n\
             cluster_slots_pfail:0\r\n\
             cluster_slots_fail:0\r\n\
             cluster_known_nodes:{}\r\n\
             cluster_size:{size}\r\n\
             cluster_current_epoch:{}\r\n\
             cluster_my_epoch:{my_epoch}\r\n\
             cluster_stats_messages_sent:0\r\n\
             cluster_stats_messages_received:0\r\n\
             total_cluster_links_buffer_limit_exceeded:0\r\n",
            t.nodes.len(),
            t.current_epoch,
        )
    };
    ctx.out.verbatim(&text);
}

/// The address clients should use for `n`.
fn ip_of(n: &ClusterNode, local: IpAddr) -> Cow<'_, str> {
    if n.ip.is_empty() {
        // A client on an IPv4 address reaching a dual-stack socket sees `::ffff:a.b.c.d`.
        Cow::Owned(local.to_canonical().to_string())
    } else {
        Cow::Borrowed(&n.ip)
    }
}

/// The port clients of this connection reach `n` on (TLS clients: its TLS port).
fn port_of(n: &ClusterNode, tls: Option<crate::tls::TlsPorts>) -> u16 {
    tls.map_or(n.port, |p| p.port_of(n.port))
}

fn slots(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let t = ctx.node.topology.load();
    let tls = ctx.conn.tls;
    let local = ctx.conn.local_ip;
    let out = &mut *ctx.out;
    let served: Vec<usize> = (0..t.shards.len()).filter(|&s| t.primary_of(s).is_some()).collect();
    out.array(served.iter().map(|&s| t.shards[s].1.len()).sum());
    for &s in &served {
        // A replica marked failed is left out, as Redis does (a client reading from
        // replicas would otherwise keep picking a dead one).
        let members: Vec<&ClusterNode> = t.members_of(s).filter(|n| n.primary || !n.failed).collect();
        for &(start, end) in &t.shards[s].1 {
            out.array(2 + members.len());
            out.int(start as i64);
            out.int(end as i64);
            for n in &members {
                out.array(4);
                out.bulk(ip_of(n, local).as_bytes());
                out.int(port_of(n, tls) as i64);
                out.bulk(n.id.as_bytes());
                // Networking metadata beyond the preferred endpoint (the IP): none, as
                // no hostname is announced.
                out.map(0);
            }
        }
    }
}

fn shards(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let t = ctx.node.topology.load();
    // With a TLS port, both ports are listed, as Redis does ("port" absent when TLS only).
    let ports = crate::tls::TlsPorts::of(ctx.node);
    let (plain, tls) = (ports.plain != 0, ports.tls != 0);
    let local = ctx.conn.local_ip;
    let out = &mut *ctx.out;
    let listed: Vec<usize> = (0..t.shards.len()).filter(|&s| t.members_of(s).next().is_some()).collect();
    out.array(listed.len());
    for &s in &listed {
        out.map(2);
        out.bulk(b"slots");
        let ranges = &t.shards[s].1;
        out.array(2 * ranges.len());
        for &(start, end) in ranges {
            out.int(start as i64);
            out.int(end as i64);
        }
        out.bulk(b"nodes");
        let members: Vec<&ClusterNode> = t.members_of(s).collect();
        out.array(members.len());
        for n in members {
            let ip = ip_of(n, local);
            out.map(6 + plain as usize + tls as usize + n.zone.is_some() as usize);
            out.bulk(b"id");
            out.bulk(n.id.as_bytes());
            if plain {
                out.bulk(b"port");
                out.int(n.port as i64);
            }
            if tls {
                out.bulk(b"tls-port");
                out.int(ports.port_of(n.port) as i64);
            }
            out.bulk(b"ip");
            out.bulk(ip.as_bytes());
            out.bulk(b"endpoint");
            out.bulk(ip.as_bytes());
            out.bulk(b"role");
            out.bulk(if n.primary { b"master" } else { b"replica" });
            out.bulk(b"replication-offset");
            out.int(0);
            out.bulk(b"health");
            out.bulk(if n.suspect { b"fail".as_slice() } else { b"online" });
            if let Some(zone) = &n.zone {
                // As Valkey 8 reports it, so a proxy can keep READONLY reads in its zone.
                out.bulk(b"availability-zone");
                out.bulk(zone.as_bytes());
            }
        }
    }
}

/// One line of CLUSTER NODES, without its newline:
/// `<id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <epoch> <link> <slot>...`
fn describe(t: &Topology, index: usize, local: IpAddr, tls: Option<crate::tls::TlsPorts>, now_ms: u64) -> String {
    let n = &t.nodes[index];
    let myself = index == t.myself;
    let mut line = format!("{} {}:{}@{} ", n.id, ip_of(n, local), port_of(n, tls), n.cport);
    if myself {
        line.push_str("myself,");
    }
    line.push_str(if n.primary { "master" } else { "slave" });
    if n.failed {
        line.push_str(",fail");
    } else if n.suspect {
        line.push_str(",fail?");
    }
    let master = if n.primary { None } else { t.primary_of(n.shard) };
    // Myself reports no ping and no pong; peers are reported as just heard from (a fleet
    // node not heard from lately is `fail?`, then `fail`, its link `disconnected`).
    let pong = if myself { 0 } else { now_ms };
    let link = if n.suspect { "disconnected" } else { "connected" };
    let _ = write!(line, " {} 0 {pong} {} {link}", master.map_or("-", |m| m.id.as_str()), n.config_epoch);
    if n.primary {
        for &(start, end) in t.shards.get(n.shard).map_or(&[][..], |s| &s.1[..]) {
            if start == end {
                let _ = write!(line, " {start}");
            } else {
                let _ = write!(line, " {start}-{end}");
            }
        }
    }
    line
}

/// Bytes a peer connection's writer holds whether or not anything waits: tokio's
/// `BufWriter` default, which the peer network uses.
const PEER_WRITE_BUFFER: u64 = 8 * 1024;

/// CLUSTER LINKS, as Redis 7: one entry per open peer connection, `to` for those this node
/// dialled and `from` for those it accepted (Prism multiplexes every group over one
/// connection per ordered pair of nodes, so a healthy fleet node of N nodes shows up to
/// N-1 of each). `events` is `r`, plus `w` while frames wait for the socket;
/// `send-buffer-used` is those frames' bytes, `send-buffer-allocated` adds the writer's
/// buffer. A node without peers (standalone) answers an empty list.
fn links(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let all: Vec<prism_replication::LinkInfo> = match ctx.node.replica() {
        Some(r) => r.net.links().into_iter().chain(r.groups.links()).collect(),
        None => Vec::new(),
    };
    let out = &mut *ctx.out;
    out.array(all.len());
    for l in &all {
        out.map(6);
        out.bulk(b"direction");
        out.bulk(match l.direction {
            prism_replication::LinkDirection::To => b"to",
            prism_replication::LinkDirection::From => b"from",
        });
        out.bulk(b"node");
        out.bulk(crate::replica::cluster_id(l.peer).as_bytes());
        out.bulk(b"create-time");
        out.int(l.created_ms as i64);
        out.bulk(b"events");
        out.bulk(if l.queued_bytes > 0 { b"rw" } else { b"r" });
        out.bulk(b"send-buffer-allocated");
        out.int((PEER_WRITE_BUFFER + l.queued_bytes) as i64);
        out.bulk(b"send-buffer-used");
        out.int(l.queued_bytes as i64);
    }
}

fn nodes(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let now = ctx.now_ms();
    let text = {
        let t = ctx.node.topology.load();
        let mut text = String::new();
        for i in 0..t.nodes.len() {
            text.push_str(&describe(&t, i, ctx.conn.local_ip, ctx.conn.tls, now));
            text.push('\n');
        }
        text
    };
    ctx.out.verbatim(&text);
}

fn replicas(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let now = ctx.now_ms();
    let t = ctx.node.topology.load();
    let Some(index) = t.nodes.iter().position(|n| n.id.as_bytes() == &args[2][..]) else {
        return ctx.out.error(&format!("ERR Unknown node {}", super::text(&args[2])));
    };
    let node = &t.nodes[index];
    if !node.primary {
        return ctx.out.error("ERR The specified node is not a master");
    }
    let lines: Vec<String> = (0..t.nodes.len())
        .filter(|&i| i != index && t.nodes[i].shard == node.shard && !t.nodes[i].primary)
        .map(|i| describe(&t, i, ctx.conn.local_ip, ctx.conn.tls, now))
        .collect();
    ctx.out.bulks(lines.iter().map(|l| l.as_bytes()));
}

/// A slot argument; `Err` carries the reply for a non-integer or out-of-range value.
fn slot_arg(arg: &[u8], range_error: &'static str) -> Result<Slot, CmdError> {
    let n = arg_i64(arg)?;
    u64::try_from(n).ok().and_then(Slot::new).ok_or(CmdError::msg(range_error))
}

/// The keys this node holds for `slot`: in memory, in a cold object, and taken out of a
/// migrating slot but not yet confirmed by the target.
pub fn keys_held(node: &crate::node::Node, slot: Slot) -> u64 {
    let ks = &node.keyspace;
    let cold = ks.tier.entry(slot.get()).map_or(0, |e| e.rows);
    ks.slot(slot).len() as u64 + ks.meta.outgoing(slot.get()).len() as u64 + cold
}

fn countkeysinslot(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match slot_arg(&args[2], "ERR Invalid slot") {
        // Like Redis's dictSize, this counts expired keys not yet removed; and the keys of
        // a migrating slot on their way out, which this node still holds (cmd/reshard.rs),
        // and a cold slot's rows (docs/tiering.md).
        Ok(slot) => ctx.out.int(keys_held(ctx.node, slot) as i64),
        Err(e) => ctx.out.error(&e.0),
    }
}

fn getkeysinslot(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    const INVALID: &str = "ERR Invalid slot or number of keys";
    // Both arguments must be integers before either is range-checked, as in Redis.
    let (slot, count) = match (arg_i64(&args[2]), arg_i64(&args[3])) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(e), _) | (_, Err(e)) => return ctx.out.error(&e.0),
    };
    let (Some(slot), Ok(count)) = (u64::try_from(slot).ok().and_then(Slot::new), usize::try_from(count)) else {
        return ctx.out.error(INVALID);
    };
    // keys_in_slot collects only what exists, so a huge count allocates nothing extra.
    let mut keys = ctx.node.keyspace.keys_in_slot(slot, ctx.now_ms(), count);
    // Keys the resharding mover took out and has not yet seen committed on the target are
    // still held here (SETSLOT NODE refuses to give the slot away until they are gone):
    // listing them lets `redis-cli --cluster reshard` MIGRATE them too instead of giving
    // up on a slot that looks empty but cannot be handed over yet.
    for (key, _, _) in ctx.node.keyspace.meta.outgoing(slot.get()) {
        if keys.len() >= count {
            break;
        }
        keys.push(key);
    }
    ctx.out.bulks(keys.iter().map(|k| &k[..]));
}

fn help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    const LINES: &[&str] = &[
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "COUNTKEYSINSLOT <slot>",
        "    Return the number of keys in <slot>.",
        "GETKEYSINSLOT <slot> <count>",
        "    Return key names stored by current node in a slot.",
        "INFO",
        "    Return information about the cluster.",
        "KEYSLOT <key>",
        "    Return the hash slot for <key>.",
        "MYID",
        "    Return the node id.",
        "MYSHARDID",
        "    Return the node's shard id.",
        "NODES",
        "    Return cluster configuration seen by node. Output format:",
        "    <id> <ip:port@bus-port[,hostname]> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
        "REPLICAS <node-id>",
        "    Return <node-id> replicas.",
        "SLOTS",
        "    Return information about slots range mappings. Each range is made of:",
        "    start, end, master and replicas IP addresses, ports and ids",
        "SHARDS",
        "    Return information about slot range mappings and the nodes associated with them.",
        "HELP",
        "    Print this help.",
    ];
    write_help(ctx.out, LINES);
}
