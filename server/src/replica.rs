//! This node's membership in a replicated shard group (issue 5): starting it from the
//! configuration, what a member answers when it cannot serve a request itself, and the
//! group's INFO sections.
//!
//! A node is a member of one group: with `raft-group`, group 0 owning every slot; with
//! `cluster-topology`, the group of the fleet shard its node id is in (group id = shard
//! id), and the rest of the fleet is seen through [`crate::fleet::view`]. The log
//! database and the peer network already carry group ids, for nodes hosting many.
//!
//! Invariants:
//! - A member that does not lead never applies a client write itself: writes go to the
//!   group ([`prism_replication::ShardGroup::write`]), and committed writes reach the
//!   engine only through the state machine ([`NodeApply`]), on every member alike.
//! - Redirections come from the last leader Raft reported: `-MOVED <slot> <leader>` for a
//!   keyed command (a write, or a read without READONLY), `-TRYAGAIN` while no leader is
//!   known; neither is ever sent for a write that may have been appended.
//! - Node ids in the cluster protocol are derived from the Raft node id, so every member
//!   names every other the same way, across restarts.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use std::time::Duration;

use prism_engine::{Keyspace, Output, Slot, Write};
use prism_replication::{
    types::ChangeMembers, ApplyHook, Durability, GroupOptions, Groups, Host, KeyspaceStateMachine, Leadership, LogDb,
    PeerNetwork, PeerNode, ServerState, ShardGroup, WriteError,
};

use crate::cmd::CmdError;
use crate::config::{Config, GroupMember};
use crate::fleet::view::FleetView;
use crate::fleet::FleetSpec;
use crate::node::Node;
use crate::topology::{ClusterNode, Topology};

/// The group id of a single shard configured with `raft-group`.
pub const GROUP: u32 = 0;

/// Where a node keeps its Raft state: `<data-dir>/raft` (read offline by `prism raft`).
pub fn raft_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("raft")
}

/// The log database of every group the node hosts, under [`raft_dir`].
pub fn log_dir(raft_dir: &Path) -> PathBuf {
    raft_dir.join("log")
}

/// The last snapshot of shard group `group`, under [`raft_dir`] (the fleet's metadata
/// group has its own: `fleet::catalog::snapshot_dir`).
pub fn snapshot_dir(raft_dir: &Path, group: u32) -> PathBuf {
    raft_dir.join(format!("snapshot-{group}"))
}

pub struct Replica {
    pub group: ShardGroup,
    /// The group's id: [`GROUP`], or the fleet shard's id.
    pub group_id: u32,
    pub me: u64,
    /// The rest of the fleet, when the node runs from a topology file.
    pub fleet: Option<Arc<FleetView>>,
    /// This node's part in the fleet's metadata group (with a topology file).
    pub catalog: Option<Arc<crate::fleet::catalog::Catalog>>,
    /// The members (and whether each votes) as the group's membership names them,
    /// refreshed when it changes; the configured list until the first membership is known.
    members: RwLock<Vec<(GroupMember, bool)>>,
    /// TEST ONLY (`unsafe-stale-reads`): skip read-index on the leader.
    pub stale_reads: bool,
    /// The cluster secret peers prove (`cluster-secret-file`) and the refusals counted.
    pub peer_auth: prism_replication::PeerAuth,
    /// The peer network: cross-shard traversal hops and outbox delivery (fleet/fanout.rs).
    pub net: PeerNetwork,
    /// What the peer listener serves; its accepted links, for CLUSTER LINKS.
    pub groups: Groups,
    /// The group's current snapshot: the cold objects it names (cold_gc.rs).
    pub snapshot: prism_replication::SnapshotView,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The state machine's apply hook: committed writes go through the node, which tells
/// blocked clients and WATCHers under the write's locks.
struct NodeApply(Weak<Node>);

impl ApplyHook for NodeApply {
    fn apply(&self, keyspace: &Keyspace, write: &Write) -> Output {
        match self.0.upgrade() {
            Some(node) => {
                let out = node.apply_committed(write);
                // A slot changed hands or state: the fleet's view of it is rebuilt now.
                if matches!(write.op, prism_engine::Op::Shard(_)) {
                    if let Some(view) = node.replica().and_then(|r| r.fleet.as_ref()) {
                        view.local_change();
                    }
                }
                out
            }
            // The node is going away; the log keeps the write for the next start.
            None => keyspace.apply(write),
        }
    }
}

/// The 40-hex cluster-protocol id of Raft node `id`: stable and the same on every member.
pub fn cluster_id(id: u64) -> String {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    format!("{:016x}{:016x}{:08x}", mix(id), mix(id ^ 0x5052_4953_4d00), mix(id.wrapping_add(7)) as u32)
}

/// The cluster as clients see it: one shard, every slot, the leader as its primary.
pub fn topology(members: &[GroupMember], me: u64, leader: Option<u64>, epoch: u64) -> Topology {
    let nodes = members
        .iter()
        .map(|m| ClusterNode {
            id: cluster_id(m.id),
            ip: m.host.clone(),
            port: m.port,
            cport: m.peer_port,
            shard: 0,
            primary: Some(m.id) == leader,
            config_epoch: epoch,
            zone: None,
            suspect: false,
            failed: false,
        })
        .collect();
    let myself = members.iter().position(|m| m.id == me).unwrap_or(0);
    Topology::group(nodes, myself, epoch)
}

impl Replica {
    /// Starts this node's member of the configured group, if any: opens the log database
    /// and snapshot under the data directory, listens for peers, forms or rejoins the group.
    pub async fn start(node: &Arc<Node>, config: &Config) -> Result<Option<Arc<Replica>>, String> {
        let me = config.node_id;
        let (group_id, roster, addrs, fleet) = match (&config.cluster_topology, config.raft_group.is_empty()) {
            (Some(_), false) => return Err("set either raft-group or cluster-topology, not both".into()),
            (None, true) if config.node_id != 0 => {
                return Err("node-id is set but neither raft-group nor cluster-topology is".into())
            }
            (None, true) => return Ok(None),
            (None, false) => {
                let addrs: HashMap<u64, String> = config.raft_group.iter().map(|m| (m.id, m.peer_addr())).collect();
                (GROUP, config.raft_group.clone(), addrs, None)
            }
            (Some(path), true) => {
                if me == 0 {
                    return Err("cluster-topology needs this node's node-id".into());
                }
                let spec = FleetSpec::load(path)?;
                let view =
                    FleetView::new(spec, me, node.keyspace.clone()).map_err(|e| format!("{}: {e}", path.display()))?;
                // Before the log replays: ownership starts from the file (shard_meta).
                node.keyspace.meta.set_base(view.my_shard, &view.spec.base_owners());
                let shard = view.spec.shards.iter().find(|s| s.id == view.my_shard).expect("my shard is in the spec");
                let roster: Vec<GroupMember> = shard.members.iter().map(|m| m.as_group_member()).collect();
                let addrs = view.spec.members().map(|(_, m)| (m.id, m.as_group_member().peer_addr())).collect();
                (view.my_shard, roster, addrs, Some(Arc::new(view)))
            }
        };
        let Some(mine) = roster.iter().find(|m| m.id == me) else {
            return Err(format!("node-id {me} is not a member of raft-group"));
        };
        let raft_dir = raft_dir(&config.data_dir);
        let durability = if config.appendfsync_everysec { Durability::EverySec } else { Durability::Always };
        let log = LogDb::open_with(&log_dir(&raft_dir), durability).map_err(|e| e.to_string())?;
        let sm = KeyspaceStateMachine::open(&snapshot_dir(&raft_dir, group_id), node.keyspace.clone())
            .map_err(|e| e.to_string())?
            .with_hook(Arc::new(NodeApply(Arc::downgrade(node))));
        let snapshot = sm.snapshot_view();
        let peer_bind = SocketAddr::new(config.bind, mine.peer_port);
        let listener = tokio::net::TcpListener::bind(peer_bind)
            .await
            .map_err(|e| format!("cannot listen for peers on {peer_bind}: {e}"))?;
        let peer_auth = prism_replication::PeerAuth::new(crate::server::cluster_secret(config)?.as_deref())
            .with_tls(crate::tls::peer_tls(config)?);
        let host = Host {
            me,
            net: PeerNetwork::new(me, addrs).with_auth(peer_auth.clone()),
            groups: Groups::default().with_auth(peer_auth.clone()),
        };
        if let Some(view) = &fleet {
            let view = Arc::downgrade(view);
            host.groups.on_status(Arc::new(move |s| {
                if let Some(v) = view.upgrade() {
                    v.noted(s)
                }
            }));
        }
        if fleet.is_some() {
            crate::fleet::fanout::serve_graph(&host.groups, Arc::downgrade(node));
        }
        let members: BTreeMap<u64, PeerNode> = roster.iter().map(|m| (m.id, m.peer_node())).collect();
        let options = GroupOptions {
            heartbeat: Duration::from_millis(config.raft_heartbeat_ms),
            snapshot_every: config.raft_snapshot_entries,
            ..GroupOptions::default()
        };
        let listen = tokio::spawn(prism_replication::network::serve(listener, me, host.groups.clone()));
        let group = ShardGroup::start(&host, group_id, members, log.group(group_id), sm, options).await?;
        let catalog = match &fleet {
            Some(view) => {
                let meta = crate::fleet::catalog::META_GROUP;
                let catalog =
                    crate::fleet::catalog::Catalog::start(&host, &view.spec, log.group(meta), &raft_dir).await?;
                // What the catalog already holds (this node's copy, from its last run)
                // routes before any gossip arrives.
                view.absorb(&catalog.contents());
                Some(Arc::new(catalog))
            }
            None => None,
        };
        let replica = Arc::new(Replica {
            group,
            group_id,
            me,
            fleet,
            catalog,
            members: RwLock::new(roster.iter().map(|m| (m.clone(), true)).collect()),
            stale_reads: config.unsafe_stale_reads,
            peer_auth,
            net: host.net.clone(),
            groups: host.groups.clone(),
            snapshot,
            tasks: Mutex::new(vec![listen]),
        });
        replica.refresh_topology(node, None, 0);
        let follow = tokio::spawn(follow(Arc::downgrade(&replica), Arc::downgrade(node)));
        replica.tasks.lock().push(follow);
        if replica.fleet.is_some() {
            let deliver = crate::fleet::outbox::deliver(Arc::downgrade(&replica), Arc::downgrade(node));
            replica.tasks.lock().push(tokio::spawn(deliver));
        }
        if let Some(view) = &replica.fleet {
            let gossip = crate::fleet::view::gossip(
                view.clone(),
                Arc::downgrade(&replica),
                Arc::downgrade(node),
                host.net.clone(),
            );
            replica.tasks.lock().push(tokio::spawn(gossip));
            let mover = crate::fleet::mover::run(Arc::downgrade(node), Arc::downgrade(&replica));
            replica.tasks.lock().push(tokio::spawn(mover));
            let record = crate::fleet::catalog::run(Arc::downgrade(node), Arc::downgrade(&replica));
            replica.tasks.lock().push(tokio::spawn(record));
        }
        tracing::info!(node_id = me, peer = %peer_bind, "member of shard group {group_id}");
        Ok(Some(replica))
    }

    /// Rebuilds the topology clients see after this group's leader, term or membership
    /// changed: the whole fleet's with a topology file, else this group's alone.
    fn refresh_topology(&self, node: &Node, leader: Option<u64>, term: u64) {
        match &self.fleet {
            Some(view) => {
                node.topology.store(Arc::new(view.topology(self)));
                view.local_change();
            }
            None => {
                let roster: Vec<GroupMember> = self.members.read().iter().map(|(m, _)| m.clone()).collect();
                node.topology.store(Arc::new(topology(&roster, self.me, leader, term)));
            }
        }
    }

    /// A member by id (a copy: the list changes with the membership).
    pub fn member(&self, id: u64) -> Option<GroupMember> {
        self.members.read().iter().find(|(m, _)| m.id == id).map(|(m, _)| m.clone())
    }

    /// Every member and whether it votes.
    pub fn membership(&self) -> Vec<(GroupMember, bool)> {
        self.members.read().clone()
    }

    /// Adds `m` as a learner, waits until it has caught up, then makes it a voter.
    pub async fn add_member(&self, m: &GroupMember) -> Result<(), String> {
        let node = m.peer_node();
        self.group.raft().add_learner(m.id, node, true).await.map_err(|e| one_line(&format!("ERR {e}")))?;
        self.change(ChangeMembers::AddVoterIds([m.id].into())).await
    }

    /// Commits a membership change (joint consensus), members not retained as learners.
    pub async fn change(&self, change: ChangeMembers<u64, PeerNode>) -> Result<(), String> {
        match self.group.raft().change_membership(change, false).await {
            Ok(_) => Ok(()),
            Err(e) => Err(one_line(&format!("ERR {e}"))),
        }
    }

    /// True while Raft reports this member as leader.
    #[inline]
    pub fn is_leader(&self) -> bool {
        self.group.is_leader()
    }

    /// Where a request this member cannot serve must go: the leader, or retry later.
    pub fn redirect(&self, slot: Option<Slot>, leader: Option<u64>) -> CmdError {
        let leader = leader.filter(|l| *l != self.me).and_then(|l| self.member(l));
        match (&leader, slot) {
            (Some(m), Some(slot)) => CmdError::msg(format!("MOVED {slot} {}", m.client_addr())),
            (Some(_), None) => CmdError::msg("READONLY You can't write against a read only replica."),
            (None, _) => CmdError::msg("TRYAGAIN The shard has no leader right now; retry shortly."),
        }
    }

    /// The reply for a write the group did not answer with an output.
    pub fn write_error(&self, e: &WriteError, slot: Option<Slot>) -> CmdError {
        match e {
            WriteError::NotLeader(leader) => self.redirect(slot, *leader),
            WriteError::Timeout | WriteError::Stopped => CmdError::msg(
                "TIMEOUT No answer from the shard group in time: the write may or may not have been applied.",
            ),
        }
    }

    /// The reply for a read whose read fence failed: the leader moved, or retry.
    pub fn read_error(&self, e: &WriteError, slot: Option<Slot>) -> CmdError {
        match (e, slot) {
            (WriteError::NotLeader(Some(l)), Some(_)) => self.redirect(slot, Some(*l)),
            _ => CmdError::msg("TRYAGAIN Leadership could not be confirmed; retry shortly."),
        }
    }

    /// INFO `raft`.
    pub fn info_raft(&self, out: &mut String) {
        let m = self.group.metrics();
        let Leadership { leader, state, term } = self.group.leadership();
        let role = match state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let _ = write!(out, "# Raft\r\nnode_id:{}\r\ngroup:{}\r\nrole:{role}\r\n", self.me, self.group_id);
        let _ = write!(out, "leader_id:{}\r\nterm:{term}\r\n", leader.map(|l| l.to_string()).unwrap_or_default());
        let index = |id: Option<prism_replication::types::LogId>| id.map_or(0, |l| l.index);
        let _ = write!(
            out,
            // commit_index: the applied index, a lower bound (openraft applies right after
            // commit and does not report the commit index itself).
            "last_log_index:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nsnapshot_index:{}\r\npurged_index:{}\r\n",
            m.last_log_index.unwrap_or(0),
            index(m.last_applied),
            index(m.last_applied),
            index(m.snapshot),
            index(m.purged),
        );
        let ids: Vec<String> = self.members.read().iter().map(|(m, _)| m.id.to_string()).collect();
        let _ = write!(out, "members:{}\r\n", ids.join(","));
        if let Some(replication) = &m.replication {
            let last = m.last_log_index.unwrap_or(0);
            for (id, matched) in replication {
                if *id == self.me {
                    continue;
                }
                let at = index(*matched);
                let _ = write!(out, "replica_{id}:match_index={at},lag={}\r\n", last.saturating_sub(at));
            }
        }
    }

    /// INFO `replication`, in Redis's words: the leader is the master.
    pub fn info_replication(&self, out: &mut String) {
        let Leadership { leader, .. } = self.group.leadership();
        let m = self.group.metrics();
        let applied = m.last_applied.map_or(0, |l| l.index);
        if self.is_leader() {
            let members = self.members.read().clone();
            let followers: Vec<&GroupMember> = members.iter().map(|(m, _)| m).filter(|x| x.id != self.me).collect();
            let _ = write!(out, "role:master\r\nconnected_slaves:{}\r\n", followers.len());
            let matched: HashMap<u64, u64> = m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, l)| (*id, l.map_or(0, |l| l.index))).collect())
                .unwrap_or_default();
            for (i, f) in followers.iter().enumerate() {
                let at = matched.get(&f.id).copied().unwrap_or(0);
                let state = if at > 0 { "online" } else { "wait_bgsave" };
                let lag = applied.saturating_sub(at);
                let _ = write!(out, "slave{i}:ip={},port={},state={state},offset={at},lag={lag}\r\n", f.host, f.port);
            }
            let _ = write!(out, "master_repl_offset:{applied}\r\n");
        } else {
            let master = leader.and_then(|l| self.member(l));
            let (host, port) = master.as_ref().map(|m| (m.host.as_str(), m.port)).unwrap_or(("", 0));
            let link = if master.is_some() { "up" } else { "down" };
            let _ = write!(
                out,
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{link}\r\nslave_repl_offset:{applied}\r\nslave_read_only:1\r\nconnected_slaves:0\r\nmaster_repl_offset:{applied}\r\n"
            );
        }
    }

    pub async fn shutdown(&self) {
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        for t in tasks {
            t.abort();
        }
        if let Some(c) = &self.catalog {
            c.shutdown().await;
        }
        self.group.shutdown().await;
    }
}

/// An error text fit for a RESP error line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// Keeps the member list and the topology clients see in step with Raft: on every change
/// of leader, term or membership.
async fn follow(replica: Weak<Replica>, node: Weak<Node>) {
    let Some(mut metrics) = replica.upgrade().map(|r| r.group.raft().metrics()) else { return };
    let mut last = None;
    loop {
        // Metrics change with every applied entry; the members only with the membership.
        let (key, members) = {
            let m = metrics.borrow_and_update();
            let key = (m.current_leader, m.current_term, *m.membership_config.log_id());
            let members = (last != Some(key)).then(|| {
                let membership = m.membership_config.membership();
                let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
                membership
                    .nodes()
                    .filter_map(|(id, n)| member_of(*id, n).map(|g| (g, voters.contains(id))))
                    .collect::<Vec<_>>()
            });
            (key, members)
        };
        if let Some(members) = members {
            let (Some(replica), Some(node)) = (replica.upgrade(), node.upgrade()) else { return };
            // Before the first membership entry arrives (a new member), keep the configured list.
            if !members.is_empty() {
                *replica.members.write() = members;
            }
            replica.refresh_topology(&node, key.0, key.1);
            last = Some(key);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// A member as the membership stores it, in the config's terms.
pub(crate) fn member_of(id: u64, n: &PeerNode) -> Option<GroupMember> {
    let (host, port) = n.client_addr.rsplit_once(':')?;
    let (_, peer_port) = n.peer_addr.rsplit_once(':')?;
    Some(GroupMember { id, host: host.to_string(), port: port.parse().ok()?, peer_port: peer_port.parse().ok()? })
}
