//! `prism raft show|force-single-voter --data-dir D`: a stopped node's Raft groups,
//! offline (`prism_replication::recovery`).
//!
//! - `show` prints, per group in the node's log database, its vote, last log id,
//!   committed and purged ids and membership: what an operator compares across survivors
//!   to find the one with the longest log.
//! - `force-single-voter` makes this node the only voter of one group that lost a
//!   majority of its voters for good (docs/operations/full-fleet-restart.md, "A majority
//!   lost for good"). The node must be stopped: the log database's lock refuses a
//!   running one.
//!
//! Exit codes: 0 done, 1 refused (the node is not a voter, the group has no
//! membership here), 2 could not start (bad arguments, no or locked log database).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use prism_replication::recovery::{self, GroupState};
use prism_replication::types::LogId;
use prism_replication::LogDb;
use prism_server::fleet::catalog;
use prism_server::replica;

#[derive(Subcommand)]
pub enum RaftCommand {
    /// Print the Raft state of every group in a stopped node's data directory.
    Show(ShowArgs),
    /// Make this stopped node the only voter of a group whose majority is lost for good.
    ForceSingleVoter(ForceArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    /// The node's data directory (its `data-dir`).
    #[arg(long)]
    pub data_dir: PathBuf,
}

#[derive(Args)]
pub struct ForceArgs {
    /// The node's data directory (its `data-dir`).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// This node's id (its `node-id`).
    #[arg(long)]
    pub node_id: u64,
    /// The group: a shard id from the topology file, `metadata` for the fleet's
    /// metadata group, or 0 for a `raft-group` node's group.
    #[arg(long)]
    pub group: String,
}

pub fn main(command: RaftCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("prism raft: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match command {
            RaftCommand::Show(a) => show(&a.data_dir).await,
            RaftCommand::ForceSingleVoter(a) => force(&a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("prism raft: {e}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn open(data_dir: &Path) -> Result<LogDb, Failure> {
    let dir = replica::log_dir(&replica::raft_dir(data_dir));
    if !dir.join("CURRENT").exists() {
        return Err((2, format!("no Raft log at {}: is --data-dir the node's data-dir?", dir.display())));
    }
    LogDb::open(&dir).map_err(|e| {
        let text = e.to_string();
        let hint = if text.contains("lock") { " (is the node still running? stop it first)" } else { "" };
        (2, format!("{text}{hint}"))
    })
}

/// Whether `group` is a fleet node's metadata group: group 0 with the metadata
/// snapshot directory (a `raft-group` node's group is 0 too, with a shard's).
fn is_metadata(data_dir: &Path, group: u32) -> bool {
    group == catalog::META_GROUP && catalog::snapshot_dir(&replica::raft_dir(data_dir)).exists()
}

/// The directory of `group`'s last snapshot.
fn snapshot_dir(data_dir: &Path, group: u32) -> PathBuf {
    let raft = replica::raft_dir(data_dir);
    if is_metadata(data_dir, group) {
        catalog::snapshot_dir(&raft)
    } else {
        replica::snapshot_dir(&raft, group)
    }
}

fn log_id(id: Option<LogId>) -> String {
    match id {
        Some(l) => format!("index={} term={} leader={}", l.index, l.leader_id.term, l.leader_id.node_id),
        None => "none".into(),
    }
}

fn ids(set: impl IntoIterator<Item = u64>) -> String {
    let list: Vec<String> = set.into_iter().map(|i| i.to_string()).collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(",")
    }
}

fn describe(s: &GroupState, data_dir: &Path) -> String {
    let name = if is_metadata(data_dir, s.group) { " (metadata)" } else { "" };
    let vote = match s.vote {
        Some(v) => format!(
            "term={} node={}{}",
            v.leader_id().term,
            v.leader_id().voted_for().map_or("none".into(), |n| n.to_string()),
            if v.is_committed() { " committed" } else { "" }
        ),
        None => "none".into(),
    };
    let nodes = s.nodes();
    let addrs: Vec<String> = nodes.iter().map(|(id, n)| format!("{id}={}", n.client_addr)).collect();
    format!(
        "group {}{name}\n  vote: {vote}\n  last-log: {}\n  committed: {}\n  purged: {}\n  voters: {}\n  learners: {}\n  \
         membership-at: {}\n  addresses: {}\n",
        s.group,
        log_id(s.last_log),
        log_id(s.committed),
        log_id(s.last_purged),
        ids(s.voters()),
        ids(s.learners()),
        log_id(s.membership.as_ref().and_then(|m| *m.log_id())),
        if addrs.is_empty() { "none".into() } else { addrs.join(" ") },
    )
}

async fn show(data_dir: &Path) -> Result<(), Failure> {
    let db = open(data_dir)?;
    let groups = db.groups().map_err(|e| (2, e.to_string()))?;
    if groups.is_empty() {
        println!("no groups: this node's log is empty");
    }
    for group in groups {
        let state = recovery::inspect(&db, group, &snapshot_dir(data_dir, group)).await.map_err(|e| (2, e))?;
        print!("{}", describe(&state, data_dir));
    }
    Ok(())
}

async fn force(a: &ForceArgs) -> Result<(), Failure> {
    let group = if a.group.eq_ignore_ascii_case("metadata") {
        catalog::META_GROUP
    } else {
        a.group.parse().map_err(|_| (2, format!("--group: {:?} is not a group id or `metadata`", a.group)))?
    };
    if a.node_id == 0 {
        return Err((2, "--node-id: 0 is not a node id".into()));
    }
    let db = open(&a.data_dir)?;
    let forced = recovery::force_single_voter(&db, group, a.node_id, &snapshot_dir(&a.data_dir, group))
        .await
        .map_err(|e| (1, e))?;
    println!(
        "group {group}: node {} is now its only voter (term {}, membership entry at index {}).\n\
         It had voters {} and its last log {}.\n\
         Start the node: it leads alone. Then add members (RAFT ADD, or RAFT METADATA VOTERS for the\n\
         metadata group). Never restart a lost member with its old data under its old id.",
        a.node_id,
        forced.term,
        forced.entry.index,
        ids(forced.before.voters()),
        log_id(forced.before.last_log),
    );
    Ok(())
}
