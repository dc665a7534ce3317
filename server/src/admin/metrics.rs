//! `/metrics`: the node's figures in the OpenMetrics text format (prometheus-client),
//! read at scrape time from the counters the node already keeps for INFO, so serving
//! metrics adds nothing to the command path.
//!
//! Every series is named `prism_*` and labelled `node` (the node's cluster id, as CLUSTER
//! MYID); Raft series also carry `group`, per-replica series `replica` (the Raft id), and
//! per-command series `command` (`client|list` for subcommands, as INFO commandstats).
//! docs/operations.md lists them all; keep the two in step.
//!
//! Counters follow INFO: CONFIG RESETSTAT zeroes the command and error counters (and
//! Prometheus sees a counter reset); `prism_expired_keys_total` is the engine's own total,
//! which never resets.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::node::Node;

/// The whole `/metrics` body for `node`.
pub fn render(node: &Node) -> Result<String, fmt::Error> {
    let id = node.topology.load().myself().id.clone();
    let mut registry = Registry::with_prefix_and_labels("prism", [(Cow::Borrowed("node"), Cow::Owned(id))].into_iter());
    // The collector borrows nothing: it copies what it needs now, then the registry
    // (which wants 'static collectors) encodes it.
    registry.register_collector(Box::new(Snapshot::take(node)));
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One scrape's figures, copied out of the node.
#[derive(Debug)]
struct Snapshot {
    raft_id: u64,
    uptime_s: f64,
    connected: u64,
    maxclients: u64,
    node: Vec<(&'static str, &'static str, Kind, Option<Unit>, f64)>,
    commands: Vec<crate::stats::CommandFigures>,
    latencies: Vec<(&'static str, crate::histogram::Snapshot)>,
    /// Only on a replicated node (a standalone one commits nothing).
    write_commit: Option<crate::histogram::Snapshot>,
    errors: Vec<(String, u64)>,
    /// Per Raft group this node takes part in.
    raft: Vec<Raft>,
    /// `crate::tier::LoadLatency::read`.
    load_latency: (f64, u64, Vec<(f64, u64)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug)]
struct Raft {
    group: String,
    term: u64,
    leader: u64,
    is_leader: bool,
    ready: bool,
    last_log: u64,
    applied: u64,
    snapshot: u64,
    purged: u64,
    quorum_ack_age_s: Option<f64>,
    /// (replica raft id, match index, lag in entries), leader only.
    replicas: Vec<(u64, u64, u64)>,
}

impl Snapshot {
    fn take(node: &Node) -> Snapshot {
        let st = &node.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let ks = node.keyspace.stats();
        let used = node.keyspace.used_memory();
        let peak = st.used_memory_peak.load(Ordering::Relaxed).max(used);
        use Kind::{Counter, Gauge};
        let mut figures = vec![
            ("connections_received", "Client connections accepted.", Counter, None, get(&st.connections_received)),
            (
                "connections_rejected",
                "Client connections refused because maxclients were connected.",
                Counter,
                None,
                get(&st.rejected_connections),
            ),
            (
                "peer_auth_failures",
                "Peer handshakes refused: a peer without the cluster secret, with another, or an old protocol.",
                Counter,
                None,
                node.replica().map_or(0.0, |r| r.peer_auth.failures() as f64),
            ),
            (
                "output_buffer_disconnections",
                "Clients disconnected for exceeding their output buffer limit (pub/sub included).",
                Counter,
                None,
                get(&st.output_buffer_disconnections) + get(&node.pubsub.disconnections),
            ),
            ("commands_processed", "Commands run, all commands together.", Counter, None, get(&st.commands_processed)),
            ("protocol_errors", "Requests refused as malformed RESP.", Counter, None, get(&st.protocol_errors)),
            ("error_replies", "Error replies sent, every kind.", Counter, None, get(&st.error_replies)),
            ("net_input", "Bytes read from clients.", Counter, Some(Unit::Bytes), get(&st.net_input_bytes)),
            ("net_output", "Bytes written to clients.", Counter, Some(Unit::Bytes), get(&st.net_output_bytes)),
            ("keyspace_hits", "Key lookups that found the key.", Counter, None, get(&st.keyspace_hits)),
            ("keyspace_misses", "Key lookups that did not find the key.", Counter, None, get(&st.keyspace_misses)),
            ("expired_keys", "Keys removed because their TTL passed.", Counter, None, ks.expired_removed as f64),
            ("keys", "Keys held by this node.", Gauge, None, ks.keys as f64),
            ("keys_volatile", "Keys with a TTL.", Gauge, None, ks.volatile as f64),
            ("memory_used", "Memory used by the keyspace (INFO used_memory).", Gauge, Some(Unit::Bytes), used as f64),
            ("memory_peak", "Highest memory_used seen.", Gauge, Some(Unit::Bytes), peak as f64),
            (
                "maxmemory",
                "The maxmemory limit (0: none).",
                Gauge,
                Some(Unit::Bytes),
                node.limits.maxmemory.load(Ordering::Relaxed) as f64,
            ),
        ];
        let (outbox, oldest_s) = crate::fleet::outbox::lag(node);
        figures.push((
            "outbox_entries",
            "Cross-shard edge halves this shard still owes other shards (its outbox; leader and replicas alike).",
            Gauge,
            None,
            outbox as f64,
        ));
        figures.push((
            "outbox_oldest_age",
            "Age of the oldest outbox entry (0 when empty): how far behind cross-shard in-edges are.",
            Gauge,
            Some(Unit::Seconds),
            oldest_s,
        ));
        let (parts, rows, bytes) = node.keyspace.tier.totals();
        let (delta_parts, delta_keys, delta_bytes) = node.keyspace.delta_totals();
        let t = &node.tiering;
        figures.extend([
            ("cold_partitions", "Slots whose data is in the cold store, not in memory.", Gauge, None, parts as f64),
            ("cold_keys", "Keys in cold partitions (DBSIZE counts them too).", Gauge, None, rows as f64),
            ("cold", "Size of the cold partitions' objects.", Gauge, Some(Unit::Bytes), bytes as f64),
            ("tier_spills", "Slots spilled to the cold store by this node.", Counter, None, get(&t.spills)),
            (
                "hot_partitions",
                "Slots whose keys are in memory.",
                Gauge,
                None,
                (node.keyspace.slots_with_keys() as u64).saturating_sub(delta_parts) as f64,
            ),
            ("delta_partitions", "Cold slots with writes in memory (a delta).", Gauge, None, delta_parts as f64),
            ("delta_keys", "Keys in the deltas of cold slots.", Gauge, None, delta_keys as f64),
            ("delta", "Memory held by the deltas of cold slots.", Gauge, Some(Unit::Bytes), delta_bytes as f64),
            (
                "tier_compactions",
                "Cold slots whose delta this node merged into a new object.",
                Counter,
                None,
                get(&t.compactions),
            ),
            (
                "tier_cold_waits",
                "Requests that waited for a load of their key's cold slot.",
                Counter,
                None,
                get(&t.cold_waits),
            ),
            (
                "tier_memory_waits",
                "Writes and loads that found memory over maxmemory and waited for the spiller.",
                Counter,
                None,
                get(&t.memory_waits),
            ),
            (
                "tier_spills_in_flight",
                "Spills started and not yet decided (the spill queue's depth).",
                Gauge,
                None,
                get(&t.spills_in_flight),
            ),
            (
                "tier_spills_unchanged",
                "Spills of a slot unchanged since its load, which named its object again (no write).",
                Counter,
                None,
                get(&t.spills_unchanged),
            ),
            ("tier_loads", "Cold slots loaded back into memory by this node.", Counter, None, get(&t.loads)),
            (
                "tier_load_failures",
                "Loads that failed (answered -TRYAGAIN cold partition unavailable).",
                Counter,
                None,
                get(&t.load_failures),
            ),
            (
                "tier_checksum_failures",
                "Cold objects whose bytes did not match their checksum (never served).",
                Counter,
                None,
                get(&t.checksum_failures),
            ),
            (
                "tier_gc_deleted_objects",
                "Unreferenced cold objects the GC deleted (cold-gc-retention).",
                Counter,
                None,
                get(&node.cold_gc.deleted_objects),
            ),
            (
                "tier_gc_deleted",
                "Bytes of unreferenced cold objects the GC deleted.",
                Counter,
                Some(Unit::Bytes),
                get(&node.cold_gc.deleted_bytes),
            ),
            (
                "tier_gc_candidates",
                "Unreferenced cold objects waiting out the retention before deletion.",
                Gauge,
                None,
                node.cold_gc.candidates() as f64,
            ),
            (
                "tier_gc_failures",
                "GC sweeps that deleted nothing because a reference could not be read.",
                Counter,
                None,
                get(&node.cold_gc.failures),
            ),
        ]);
        if let Some(rss) = rss_bytes() {
            figures.push(("memory_rss", "Resident set size of the process.", Gauge, Some(Unit::Bytes), rss as f64));
        }
        Snapshot {
            raft_id: node.config.read().node_id,
            uptime_s: node.started.elapsed().as_secs_f64(),
            connected: node.clients.count() as u64,
            maxclients: node.limits.maxclients.load(Ordering::Relaxed) as u64,
            node: figures,
            commands: node.cmd_stats.commands(),
            latencies: node.cmd_stats.latencies(),
            write_commit: node.replica().map(|_| node.cmd_stats.write_commit.snapshot()),
            errors: node.cmd_stats.errors(),
            raft: raft(node),
            load_latency: node.tiering.load_latency.read(),
        }
    }
}

fn raft(node: &Node) -> Vec<Raft> {
    let Some(r) = node.replica() else { return Vec::new() };
    let ready = super::readiness(node).is_ready();
    let mut out = vec![group_stats(&r.group, r.group_id.to_string(), ready)];
    if let Some(c) = &r.catalog {
        // Labelled by name: a standalone `raft-group` shard has the id 0 too.
        out.push(group_stats(&c.group, "metadata".into(), ready));
    }
    out
}

fn group_stats(group: &prism_replication::ShardGroup, label: String, ready: bool) -> Raft {
    let m = group.metrics();
    let lead = group.leadership();
    let index = |id: Option<prism_replication::types::LogId>| id.map_or(0, |l| l.index);
    let last_log = m.last_log_index.unwrap_or(0);
    let is_leader = lead.state == prism_replication::ServerState::Leader;
    let replicas = match (&m.replication, is_leader) {
        (Some(rep), true) => rep
            .iter()
            .filter(|(id, _)| **id != group.me)
            .map(|(id, matched)| (*id, index(*matched), last_log.saturating_sub(index(*matched))))
            .collect(),
        _ => Vec::new(),
    };
    Raft {
        group: label,
        term: lead.term,
        leader: lead.leader.unwrap_or(0),
        is_leader,
        ready,
        last_log,
        applied: index(m.last_applied),
        snapshot: index(m.snapshot),
        purged: index(m.purged),
        quorum_ack_age_s: m.millis_since_quorum_ack.filter(|_| is_leader).map(|ms| ms as f64 / 1000.0),
        replicas,
    }
}

/// Resident set size from `/proc/self/status` (in kB there, so no page-size assumption).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

type Labels<'a> = Vec<(&'static str, Cow<'a, str>)>;

/// Writes one metric family: `series` are (labels, value) pairs under one descriptor.
fn family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    kind: Kind,
    series: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> fmt::Result {
    let ty = match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
    };
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), ty)?;
    for (labels, value) in series {
        let fam = m.encode_family(&labels)?;
        // Whole numbers print as integers (`5`, not `5.0`): most figures are counts.
        let whole = value.fract() == 0.0 && (0.0..9.0e15).contains(&value);
        match (kind, whole) {
            (Kind::Counter, true) => ConstCounter::new(value as u64).encode(fam)?,
            (Kind::Counter, false) => ConstCounter::new(value).encode(fam)?,
            (Kind::Gauge, true) => ConstGauge::new(value as u64).encode(fam)?,
            (Kind::Gauge, false) => ConstGauge::new(value).encode(fam)?,
        }
    }
    Ok(())
}

fn one(value: f64) -> [(Labels<'static>, f64); 1] {
    [(Vec::new(), value)]
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        use Kind::{Counter, Gauge};
        let info = vec![
            ("version", Cow::Borrowed(env!("CARGO_PKG_VERSION"))),
            ("raft_id", Cow::Owned(self.raft_id.to_string())),
        ];
        // An OpenMetrics info family: `prism_node_info{...} 1`.
        let mut m = enc.encode_descriptor("node", "The build and Raft id of the node.", None, MetricType::Info)?;
        m.encode_info(&info)?;
        family(&mut enc, "uptime", "Time since the node started.", Some(Unit::Seconds), Gauge, one(self.uptime_s))?;
        family(&mut enc, "connected_clients", "Client connections open now.", None, Gauge, one(self.connected as f64))?;
        let max = self.maxclients as f64;
        family(&mut enc, "maxclients", "The maxclients limit.", None, Gauge, one(max))?;
        for (name, help, kind, unit, value) in &self.node {
            family(&mut enc, name, help, unit.clone(), *kind, one(*value))?;
        }

        let (sum, count, buckets) = &self.load_latency;
        let help = "Time to load a cold slot (fetch, verify, decode, commit), failed loads included.";
        let mut m = enc.encode_descriptor("tier_load_duration", help, Some(&Unit::Seconds), MetricType::Histogram)?;
        m.encode_family(&Labels::new())?.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;

        let help = "Time each command ran (as INFO latencystats), by command; a replicated write's wait for its commit is prism_write_commit_seconds.";
        let mut m = enc.encode_descriptor("command_latency", help, Some(&Unit::Seconds), MetricType::Histogram)?;
        for (name, h) in &self.latencies {
            let labels = vec![("command", Cow::Borrowed(*name))];
            let (sum, count) = (h.sum_us as f64 / 1e6, h.count());
            m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &h.prometheus(), None)?;
        }
        if let Some(h) = &self.write_commit {
            let help = "Time a replicated write batch waited to be committed and applied (one per connection batch).";
            let mut m = enc.encode_descriptor("write_commit", help, Some(&Unit::Seconds), MetricType::Histogram)?;
            let (sum, count) = (h.sum_us as f64 / 1e6, h.count());
            m.encode_family(&Labels::new())?.encode_histogram::<NoLabelSet>(sum, count, &h.prometheus(), None)?;
        }

        let by_cmd = |f: &crate::stats::CommandFigures| vec![("command", Cow::Borrowed(f.name))];
        let cmds = &self.commands;
        family(
            &mut enc,
            "commands",
            "Calls of each command that ran (INFO commandstats calls).",
            None,
            Counter,
            cmds.iter().map(|f| (by_cmd(f), f.calls as f64)),
        )?;
        family(
            &mut enc,
            "command_duration",
            "Time spent running each command; divide by prism_commands_total for the mean.",
            Some(Unit::Seconds),
            Counter,
            cmds.iter().map(|f| (by_cmd(f), f.usec as f64 / 1e6)),
        )?;
        family(
            &mut enc,
            "commands_failed",
            "Calls of each command that ran and answered an error.",
            None,
            Counter,
            cmds.iter().map(|f| (by_cmd(f), f.failed as f64)),
        )?;
        family(
            &mut enc,
            "commands_rejected",
            "Requests for each command refused before it ran (arity, auth, routing, OOM, ...).",
            None,
            Counter,
            cmds.iter().map(|f| (by_cmd(f), f.rejected as f64)),
        )?;
        family(
            &mut enc,
            "errors",
            "Error replies by kind: the error's first word (ERR, WRONGTYPE, MOVED, OOM, ...).",
            None,
            Counter,
            self.errors.iter().map(|(kind, n)| (vec![("kind", Cow::Borrowed(kind.as_str()))], *n as f64)),
        )?;

        // One series per group this node takes part in: its shard (labelled by its id),
        // and in a fleet the metadata group (`group="metadata"`).
        let rafts = &self.raft;
        let g = |r: &'_ Raft| vec![("group", Cow::Owned(r.group.clone()))];
        let gauge = |enc: &mut DescriptorEncoder, name: &str, help: &str, v: fn(&Raft) -> f64| {
            family(enc, name, help, None, Gauge, rafts.iter().map(|r| (g(r), v(r))))
        };
        if !rafts.is_empty() {
            gauge(&mut enc, "raft_term", "Current Raft term of the group (rises by one per election).", |r| {
                r.term as f64
            })?;
            gauge(&mut enc, "raft_leader_id", "Raft id of the leader this member knows (0: none).", |r| {
                r.leader as f64
            })?;
            gauge(&mut enc, "raft_is_leader", "1 while this member leads its group.", |r| bool_f(r.is_leader))?;
            gauge(&mut enc, "raft_ready", "1 while /readyz answers 200.", |r| bool_f(r.ready))?;
            gauge(&mut enc, "raft_last_log_index", "Index of this member's last log entry.", |r| r.last_log as f64)?;
            gauge(&mut enc, "raft_applied_index", "Index of the last entry applied to the engine.", |r| {
                r.applied as f64
            })?;
            gauge(&mut enc, "raft_snapshot_index", "Last index covered by this member's snapshot.", |r| {
                r.snapshot as f64
            })?;
            gauge(&mut enc, "raft_purged_index", "Last log index removed after a snapshot.", |r| r.purged as f64)?;
            family(
                &mut enc,
                "raft_quorum_ack_age",
                "Leader only: time since a majority last acknowledged it.",
                Some(Unit::Seconds),
                Gauge,
                rafts.iter().filter_map(|r| Some((g(r), r.quorum_ack_age_s?))),
            )?;
            let per = |r: &Raft, id: u64| {
                let mut l = g(r);
                l.push(("replica", Cow::Owned(id.to_string())));
                l
            };
            family(
                &mut enc,
                "raft_replica_match_index",
                "Leader only: last log index known to be on each other member.",
                None,
                Gauge,
                rafts.iter().flat_map(|r| r.replicas.iter().map(move |(id, at, _)| (per(r, *id), *at as f64))),
            )?;
            family(
                &mut enc,
                "raft_replica_lag_entries",
                "Leader only: log entries each other member still lacks.",
                None,
                Gauge,
                rafts.iter().flat_map(|r| r.replicas.iter().map(move |(id, _, lag)| (per(r, *id), *lag as f64))),
            )?;
        }
        Ok(())
    }
}

fn bool_f(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}
