//! The fleet's metadata group: Raft group 0, a replicated catalog of the topology that
//! every node of the fleet holds a copy of (issue 6: "a small metadata Raft group").
//!
//! What it holds, as three hashes in the group's own small keyspace (never the node's
//! data keyspace):
//! - `{catalog}nodes`: node id -> the node's shard, addresses and zone, from the topology
//!   file (written once, when the group is first formed);
//! - `{catalog}claims`: `<epoch>:<first>-<last>` -> owner shard: the file's slot ranges at
//!   epoch 0, then every slot move the shards committed (their config epochs);
//! - `{catalog}members`: `<shard>:<membership index>` -> that shard's members (voters
//!   flagged) as its own Raft log named them at that index.
//!
//! Who is in it: three voters chosen from the file ([`FleetSpec::metadata_voters`], or the
//! file's `metadata` list), on different shards and in different zones where the file
//! allows; every other member of a shard is a learner, so each node reads the catalog
//! from its own replicated copy, which survives its restarts (log and snapshot, like a
//! shard). The metadata leader keeps the learners in step with the shards' memberships
//! (a node `RAFT ADD`ed joins, a node `RAFT REMOVE`d from its shard leaves);
//! `RAFT METADATA VOTERS` (cmd/raft.rs) replaces the voters, which stay learners.
//!
//! How it is written: the metadata group's leader records what the shards committed, as
//! it hears of it (its [`FleetView`]: the statuses every node sends, and its own shard's
//! Raft), once a second. The records are monotone, so no record ever needs reading back
//! before writing: per slot the highest epoch names the owner, per shard the highest
//! membership index names the members. A record that arrives late, twice, or from a
//! deposed leader changes nothing; superseded records are pruned.
//!
//! Invariants:
//! - Slot ownership is decided in the shards' own logs (`prism_engine::shard_meta`), where
//!   it orders against the writes it governs; the catalog records those decisions and
//!   never overrides them: a node serves a slot only when its own shard's log says so.
//!   The catalog is what every node routes from before any gossip arrives, and the one
//!   consistent, durable account of the fleet's map.
//! - Applying a catalog record only adds knowledge: a node takes a claim or a membership
//!   from it only when it is newer (higher epoch, higher index) than what it knew.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use prism_engine::{Keyspace, Op, Value, Write};
use prism_replication::types::ChangeMembers;
use prism_replication::{GroupOptions, Host, KeyspaceStateMachine, PeerNode, RocksLogStore, ShardGroup};
use serde::{Deserialize, Serialize};

use super::view::FleetView;
use super::FleetSpec;
use crate::node::Node;
use crate::replica::Replica;

/// The metadata group's Raft group id (shard ids are never 0).
pub const META_GROUP: u32 = 0;

/// The metadata group's last snapshot, under the node's `replica::raft_dir`.
pub fn snapshot_dir(raft_dir: &std::path::Path) -> std::path::PathBuf {
    raft_dir.join("snapshot-metadata")
}
const NODES: &[u8] = b"{catalog}nodes";
const CLAIMS: &[u8] = b"{catalog}claims";
const MEMBERS: &[u8] = b"{catalog}members";
/// How often the metadata leader records what it heard, and adds missing learners.
const RECORD_EVERY: Duration = Duration::from_millis(1000);
/// The metadata group's heartbeat: it carries a few records a minute, so it beats more
/// slowly than a shard (elections time out after 4 to 8 heartbeats).
const HEARTBEAT: Duration = Duration::from_millis(250);

/// A node as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub shard: u32,
    pub host: String,
    pub port: u16,
    pub peer_port: u16,
    pub zone: Option<String>,
}

/// One shard's membership as recorded: members with their voter flag.
pub type Members = Vec<(u64, PeerNode, bool)>;

/// What the catalog holds, read from this node's copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contents {
    pub nodes: BTreeMap<u64, NodeRecord>,
    /// `(epoch, first, last, owner)`, in field order.
    pub claims: Vec<(u64, u16, u16, u32)>,
    /// Per shard, the highest membership index recorded and its members.
    pub members: BTreeMap<u32, (u64, Members)>,
    /// Membership fields below their shard's highest index (pruned by the leader).
    stale_members: Vec<Bytes>,
}

impl Contents {
    /// Per slot, the owner and epoch of the highest claim (`NO_SHARD`, 0 where none).
    pub fn owners(&self) -> Vec<(u32, u64)> {
        let mut owners = vec![(prism_engine::shard_meta::NO_SHARD, 0u64); prism_engine::SLOT_COUNT];
        let mut seen = vec![false; prism_engine::SLOT_COUNT];
        for &(epoch, first, last, owner) in &self.claims {
            for slot in first..=last {
                let (o, s) = (&mut owners[slot as usize], &mut seen[slot as usize]);
                if !*s || epoch > o.1 {
                    *o = (owner, epoch);
                    *s = true;
                }
            }
        }
        owners
    }

    /// The highest config epoch recorded.
    pub fn epoch(&self) -> u64 {
        self.claims.iter().map(|c| c.0).max().unwrap_or(0)
    }

    /// The claims as the gossip carries them: `(first, last, owner, epoch)`.
    pub fn claim_ranges(&self) -> Vec<(u16, u16, u32, u64)> {
        self.claims.iter().map(|&(e, f, l, o)| (f, l, o, e)).collect()
    }
}

fn claim_field(epoch: u64, first: u16, last: u16) -> Bytes {
    Bytes::from(format!("{epoch:020}:{first}-{last}"))
}

fn parse_claim(field: &[u8], value: &[u8]) -> Option<(u64, u16, u16, u32)> {
    let (epoch, range) = std::str::from_utf8(field).ok()?.split_once(':')?;
    let (first, last) = range.split_once('-')?;
    let owner = std::str::from_utf8(value).ok()?.parse().ok()?;
    Some((epoch.parse().ok()?, first.parse().ok()?, last.parse().ok()?, owner))
}

fn members_field(shard: u32, index: u64) -> Bytes {
    Bytes::from(format!("{shard}:{index:020}"))
}

/// Reads a keyspace holding a catalog. Records it cannot parse are skipped (they were
/// written by this code; a newer version's extra fields are ignored by serde).
pub fn read(keyspace: &Keyspace) -> Contents {
    let mut out = Contents::default();
    let hash = |key: &[u8], f: &mut dyn FnMut(&[u8], &[u8])| {
        keyspace.get(key, 0, |e| {
            if let Some(Value::Hash(h)) = e.map(|e| &e.value) {
                for (field, value) in h.iter() {
                    f(field, value);
                }
            }
        })
    };
    hash(NODES, &mut |field, value| {
        let id = std::str::from_utf8(field).ok().and_then(|t| t.parse().ok());
        if let (Some(id), Ok(record)) = (id, serde_json::from_slice(value)) {
            out.nodes.insert(id, record);
        }
    });
    hash(CLAIMS, &mut |field, value| out.claims.extend(parse_claim(field, value)));
    let mut all: Vec<(u32, u64, Bytes, Members)> = Vec::new();
    hash(MEMBERS, &mut |field, value| {
        let parsed = std::str::from_utf8(field).ok().and_then(|t| t.split_once(':'));
        let ids = parsed.and_then(|(s, i)| Some((s.parse().ok()?, i.parse().ok()?)));
        if let (Some((shard, index)), Ok(members)) = (ids, serde_json::from_slice(value)) {
            all.push((shard, index, Bytes::copy_from_slice(field), members));
        }
    });
    // Per shard the highest index names the members; lower ones are stale.
    all.sort_by_key(|(shard, index, _, _)| (*shard, std::cmp::Reverse(*index)));
    for (shard, index, field, members) in all {
        match out.members.entry(shard) {
            std::collections::btree_map::Entry::Occupied(_) => out.stale_members.push(field),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((index, members));
            }
        }
    }
    out
}

/// This node's part in the metadata group.
pub struct Catalog {
    pub group: ShardGroup,
    keyspace: Arc<Keyspace>,
    /// The voters the file names or implies: the group's voters until this node holds a
    /// membership from the group's log.
    planned: Vec<u64>,
    /// Catalog writes (HSET/HDEL of records) this node committed as the group's leader.
    recorded: AtomicU64,
}

impl Catalog {
    /// Starts this node's member of the metadata group: a voter if `spec` makes it one
    /// (the lowest-id voter forms the group on first start), else a learner the leader
    /// will add.
    pub async fn start(host: &Host, spec: &FleetSpec, log: RocksLogStore, raft_dir: &Path) -> Result<Catalog, String> {
        let keyspace = Arc::new(Keyspace::new());
        let sm = KeyspaceStateMachine::open(&snapshot_dir(raft_dir), keyspace.clone())
            .map_err(|e| format!("metadata group: {e}"))?;
        let voters = spec.metadata_voters();
        let members: BTreeMap<u64, PeerNode> = if voters.contains(&host.me) {
            spec.members()
                .filter(|(_, m)| voters.contains(&m.id))
                .map(|(_, m)| (m.id, m.as_group_member().peer_node()))
                .collect()
        } else {
            BTreeMap::new()
        };
        let options = GroupOptions { heartbeat: HEARTBEAT, snapshot_every: 1_000, ..GroupOptions::default() };
        let group = ShardGroup::start(host, META_GROUP, members, log, sm, options).await?;
        Ok(Catalog { group, keyspace, planned: voters, recorded: AtomicU64::new(0) })
    }

    /// The group's voters as this node's copy of its membership names them (the file's
    /// choice until `RAFT METADATA VOTERS` changes it; the file's before any log arrived).
    pub fn voters(&self) -> BTreeSet<u64> {
        let voters: BTreeSet<u64> = self.group.metrics().membership_config.membership().voter_ids().collect();
        if voters.is_empty() {
            self.planned.iter().copied().collect()
        } else {
            voters
        }
    }

    /// Every member of the group (voters and learners) and its addresses.
    pub fn members(&self) -> Vec<(u64, PeerNode, bool)> {
        let m = self.group.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership.nodes().map(|(id, node)| (*id, node.clone(), voters.contains(id))).collect()
    }

    /// The catalog as this node's copy holds it.
    pub fn contents(&self) -> Contents {
        read(&self.keyspace)
    }
}

/// The writes that bring a catalog holding `have` up to what is `known`: the file's
/// contents if the catalog is empty, every newer claim and membership, and the pruning
/// of records they supersede.
fn updates(have: &Contents, spec: &FleetSpec, known: &Known, now_ms: u64) -> Vec<Write> {
    let hset = |key: &'static [u8], pairs: Vec<(Bytes, Bytes)>| Write {
        now_ms,
        op: Op::HSet { key: Bytes::from_static(key), pairs, nx: false },
    };
    let mut writes = Vec::new();
    if have.nodes.is_empty() {
        let nodes = spec
            .members()
            .map(|(s, m)| {
                let record = NodeRecord {
                    shard: s.id,
                    host: m.host.clone(),
                    port: m.port,
                    peer_port: m.peer_port(),
                    zone: m.zone.clone(),
                };
                (Bytes::from(m.id.to_string()), Bytes::from(serde_json::to_vec(&record).unwrap_or_default()))
            })
            .collect();
        writes.push(hset(NODES, nodes));
    }
    // Claims: the file's ranges at epoch 0 when none is recorded, then each run of
    // slots the view knows at a higher epoch than the catalog.
    let recorded = have.owners();
    let mut claims = Vec::new();
    if have.claims.is_empty() {
        for s in &spec.shards {
            for &(first, last) in &s.slots {
                claims.push((claim_field(0, first, last), Bytes::from(s.id.to_string())));
            }
        }
    }
    let mut start = None;
    // One past the end (None) closes the last run.
    for (slot, k) in known.owners.iter().map(Some).chain([None]).enumerate() {
        let newer = k.filter(|k| recorded.get(slot).is_none_or(|r| k.1 > r.1)).copied();
        if let Some((from, run)) = start {
            if newer != Some(run) {
                let (owner, epoch): (u32, u64) = run;
                claims.push((claim_field(epoch, from as u16, slot as u16 - 1), Bytes::from(owner.to_string())));
                start = None;
            }
        }
        if let (None, Some(n)) = (start, newer) {
            start = Some((slot, n));
        }
    }
    if !claims.is_empty() {
        writes.push(hset(CLAIMS, claims));
    }
    // Claims every one of whose slots a newer claim covers.
    let superseded: Vec<Bytes> = have
        .claims
        .iter()
        .filter(|&&(epoch, first, last, _)| (first..=last).all(|s| recorded[s as usize].1 > epoch))
        .map(|&(epoch, first, last, _)| claim_field(epoch, first, last))
        .collect();
    if !superseded.is_empty() {
        writes.push(Write { now_ms, op: Op::HDel { key: Bytes::from_static(CLAIMS), fields: superseded } });
    }
    let mut members = Vec::new();
    for (shard, (index, list)) in &known.members {
        if have.members.get(shard).is_none_or(|(i, _)| index > i) && !list.is_empty() {
            members.push((members_field(*shard, *index), Bytes::from(serde_json::to_vec(list).unwrap_or_default())));
        }
    }
    if !members.is_empty() {
        writes.push(hset(MEMBERS, members));
    }
    if !have.stale_members.is_empty() {
        writes.push(Write {
            now_ms,
            op: Op::HDel { key: Bytes::from_static(MEMBERS), fields: have.stale_members.clone() },
        });
    }
    writes
}

impl Catalog {
    /// `INFO metadata`.
    pub fn info(&self, out: &mut String) {
        use std::fmt::Write as _;
        let l = self.group.leadership();
        let m = self.group.metrics();
        let c = self.contents();
        let voters = self.voters();
        let learners = m.membership_config.membership().learner_ids().count();
        let role = match l.state {
            prism_replication::ServerState::Leader => "leader",
            prism_replication::ServerState::Learner => "learner",
            prism_replication::ServerState::Candidate => "candidate",
            _ if voters.contains(&self.group.me) => "follower",
            _ => "learner",
        };
        let join = |ids: &mut dyn Iterator<Item = u64>| ids.map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let _ = write!(
            out,
            "# Metadata\r\nmeta_group:{META_GROUP}\r\nmeta_role:{role}\r\nmeta_leader:{}\r\nmeta_term:{}\r\n\
             meta_voters:{}\r\nmeta_learners:{learners}\r\nmeta_last_log_index:{}\r\nmeta_applied_index:{}\r\n\
             catalog_nodes:{}\r\ncatalog_shards:{}\r\ncatalog_claims:{}\r\ncatalog_epoch:{}\r\n\
             catalog_records_written:{}\r\n",
            l.leader.unwrap_or(0),
            l.term,
            join(&mut voters.iter().copied()),
            m.last_log_index.unwrap_or(0),
            m.last_applied.map_or(0, |a| a.index),
            c.nodes.len(),
            c.members.len(),
            c.claims.len(),
            c.epoch(),
            self.recorded.load(Ordering::Relaxed),
        );
    }

    pub async fn shutdown(&self) {
        self.group.shutdown().await;
    }
}

/// What the metadata leader knows and records: per slot the owner and epoch of the
/// newest claim heard, and per shard the newest membership heard.
pub struct Known {
    pub owners: Vec<(u32, u64)>,
    pub members: BTreeMap<u32, (u64, Members)>,
}

/// On every node: keeps the view fed from the catalog (claims and memberships newer
/// than what gossip brought), and, while this node leads the metadata group, records
/// what it knows and keeps the learners in step with the shards ([`reconcile_learners`]).
/// Runs until the node or replica goes.
pub async fn run(node: Weak<Node>, replica: Weak<Replica>) {
    let mut tick = tokio::time::interval(RECORD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (Some(node), Some(replica)) = (node.upgrade(), replica.upgrade()) else { return };
        let (Some(view), Some(catalog)) = (replica.fleet.clone(), replica.catalog.clone()) else { return };
        view.absorb(&catalog.contents());
        if !catalog.group.is_leader() || catalog.group.read_fence().await.is_err() {
            continue;
        }
        reconcile_learners(&catalog, &view.spec, &catalog.contents()).await;
        let known = view.known(&replica);
        let writes = updates(&catalog.contents(), &view.spec, &known, node.now_ms());
        if writes.is_empty() {
            continue;
        }
        let n = writes.len() as u64;
        match catalog.group.write(writes).await {
            Ok(_) => {
                catalog.recorded.fetch_add(n, Ordering::Relaxed);
                view.absorb(&catalog.contents());
            }
            Err(e) => tracing::debug!("metadata records not written: {e}"),
        }
    }
}

/// The nodes that should hold a copy of the catalog: per shard, the members its newest
/// recorded membership names (nodes added or removed with `RAFT ADD`/`RAFT REMOVE` since
/// the file was written included), or the file's members for a shard with no record yet.
fn fleet_nodes(have: &Contents, spec: &FleetSpec) -> BTreeMap<u64, PeerNode> {
    let mut nodes: BTreeMap<u64, PeerNode> = have
        .members
        .values()
        .flat_map(|(_, members)| members.iter().map(|(id, node, _)| (*id, node.clone())))
        .collect();
    for (_, m) in spec.members().filter(|(s, _)| !have.members.contains_key(&s.id)) {
        nodes.entry(m.id).or_insert_with(|| m.as_group_member().peer_node());
    }
    nodes
}

/// Keeps the metadata group's learners in step with the fleet: adds every node of
/// [`fleet_nodes`] it does not list (not waiting for it to catch up: a node that is down
/// gets its log later), and removes learners that no shard has as a member any more (a
/// replaced node). Voters change only by `RAFT METADATA VOTERS`.
async fn reconcile_learners(catalog: &Catalog, spec: &FleetSpec, have: &Contents) {
    let metrics = catalog.group.metrics();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let listed: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
    let wanted = fleet_nodes(have, spec);
    for (id, node) in wanted.iter().filter(|(id, _)| !listed.contains(id)) {
        if let Err(e) = catalog.group.raft().add_learner(*id, node.clone(), false).await {
            tracing::debug!(node = id, "metadata learner not added: {e}");
            return;
        }
    }
    let gone: BTreeSet<u64> =
        listed.into_iter().filter(|id| !voters.contains(id) && !wanted.contains_key(id)).collect();
    if !gone.is_empty() {
        match catalog.group.raft().change_membership(ChangeMembers::RemoveNodes(gone.clone()), false).await {
            Ok(_) => tracing::info!(?gone, "metadata learners removed: no shard has them as members"),
            Err(e) => tracing::debug!(?gone, "metadata learners not removed: {e}"),
        }
    }
}

/// A node applies the catalog it holds to its view of the fleet.
impl FleetView {
    pub fn absorb(&self, c: &Contents) {
        self.note_claims(&c.claim_ranges());
        for (shard, (index, members)) in &c.members {
            self.note_members(*shard, *index, members);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_and_fields_round_trip() {
        let f = claim_field(12, 100, 200);
        assert_eq!(&f[..], b"00000000000000000012:100-200");
        assert_eq!(parse_claim(&f, b"3"), Some((12, 100, 200, 3)));
        assert_eq!(parse_claim(b"x:1-2", b"3"), None);
        assert_eq!(parse_claim(b"1:2", b"3"), None);
    }

    #[test]
    fn the_highest_epoch_names_each_slot_s_owner() {
        let c = Contents { claims: vec![(0, 0, 16383, 1), (5, 10, 20, 2), (3, 15, 30, 3)], ..Contents::default() };
        let owners = c.owners();
        assert_eq!(owners[0], (1, 0));
        assert_eq!(owners[10], (2, 5));
        assert_eq!(owners[20], (2, 5));
        assert_eq!(owners[21], (3, 3));
        assert_eq!(owners[31], (1, 0));
        assert_eq!(c.epoch(), 5);
    }

    fn spec() -> FleetSpec {
        let nodes: Vec<(String, u16)> = (0..6).map(|i| ("127.0.0.1".to_string(), 7000 + i)).collect();
        FleetSpec::plan(&nodes, 2, None).unwrap()
    }

    /// Brings a catalog keyspace up to `known`, as the metadata leader does; returns how
    /// many writes that took.
    fn record(ks: &Keyspace, spec: &FleetSpec, known: &Known) -> usize {
        let writes = updates(&read(ks), spec, known, 1);
        for w in &writes {
            ks.apply(w);
        }
        writes.len()
    }

    fn members(ids: &[u64]) -> Members {
        ids.iter()
            .map(|&id| (id, PeerNode::new(format!("h:{}", 17000 + id), format!("h:{}", 7000 + id)), true))
            .collect()
    }

    #[test]
    fn the_leader_records_the_file_then_only_what_is_newer_and_prunes_what_is_superseded() {
        let spec = spec();
        let ks = Keyspace::new();
        let mut known = Known {
            owners: spec.base_owners().into_iter().map(|o| (o, 0)).collect(),
            members: BTreeMap::from([(1, (0, members(&[1, 2, 3]))), (2, (0, members(&[4, 5, 6])))]),
        };
        assert_eq!(record(&ks, &spec, &known), 3, "nodes, the file's claims, memberships");
        let c = read(&ks);
        assert_eq!(c.nodes.len(), 6);
        assert_eq!(c.nodes[&5].shard, 2);
        assert_eq!(c.owners(), known.owners);
        assert_eq!(c.members.len(), 2);
        assert_eq!(record(&ks, &spec, &known), 0, "nothing new, nothing written");

        // Shard 2 takes slots 10-12 at epoch 4, then 11 goes back at epoch 6; shard 1
        // replaces a member at index 9.
        for s in 10..=12 {
            known.owners[s] = (2, 4);
        }
        known.members.insert(1, (9, members(&[1, 2, 7])));
        assert_eq!(record(&ks, &spec, &known), 2, "a claim and a membership (the old one goes next round)");
        known.owners[11] = (1, 6);
        record(&ks, &spec, &known);
        let c = read(&ks);
        assert_eq!(c.owners(), known.owners);
        assert_eq!(c.epoch(), 6);
        assert_eq!(c.members[&1].0, 9);
        assert!(c.stale_members.is_empty(), "shard 1's index-0 record is gone");

        // A stale view (a deposed leader's, or one that has not heard yet) writes nothing
        // that changes the outcome.
        let stale = Known {
            owners: spec.base_owners().into_iter().map(|o| (o, 0)).collect(),
            members: BTreeMap::from([(1, (3, members(&[1, 2, 3])))]),
        };
        record(&ks, &spec, &stale);
        let c = read(&ks);
        assert_eq!(c.owners(), known.owners);
        assert_eq!(c.members[&1], (9, members(&[1, 2, 7])));

        // Once every slot of a claim is covered by newer ones, it is pruned.
        for s in 10..=12 {
            known.owners[s] = (1, 8);
        }
        record(&ks, &spec, &known);
        record(&ks, &spec, &known);
        let c = read(&ks);
        assert_eq!(c.owners(), known.owners);
        assert!(c.claims.iter().all(|claim| claim.0 != 4 && claim.0 != 6), "{:?}", c.claims);
    }

    #[test]
    fn the_learners_follow_the_shards_memberships_and_the_file_where_none_is_recorded() {
        let spec = spec();
        let ids = |c: &Contents| fleet_nodes(c, &spec).into_keys().collect::<Vec<u64>>();
        assert_eq!(ids(&Contents::default()), vec![1, 2, 3, 4, 5, 6], "the file alone");
        // Shard 1 replaced node 3 by node 7 (RAFT REMOVE, RAFT ADD): 7 gets a copy, 3 goes;
        // shard 2 has no record yet, so the file names its members.
        let c = Contents { members: BTreeMap::from([(1, (9, members(&[1, 2, 7])))]), ..Contents::default() };
        assert_eq!(ids(&c), vec![1, 2, 4, 5, 6, 7]);
        assert_eq!(fleet_nodes(&c, &spec)[&7].peer_addr, "h:17007", "the address the shard's log holds");
    }
}
