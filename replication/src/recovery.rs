//! Offline inspection of a node's groups, and the last-resort recovery of a group that
//! lost a majority of its voters for good (their data gone): make one survivor the
//! group's only voter, so it leads alone and new members can be added to it.
//!
//! Both work on a stopped node's log database (RocksDB's lock refuses a running one)
//! and its snapshot directory; nothing here runs inside a serving node.
//!
//! What forcing writes, in one synced batch on the survivor's log:
//! - a vote for itself, committed, in a term above every term it has seen (its vote's
//!   and its last entry's);
//! - at the next log index, a membership entry of that term naming it as the only voter
//!   and keeping the group's learners.
//!
//! On its next start openraft restores a node whose committed vote names itself as
//! leader at once (a restarted leader stays leader), and a leader whose only voter is
//! itself commits its log by itself: every entry the survivor held, committed or not,
//! becomes committed, then the new membership.
//!
//! Invariants and what they cost:
//! - Raft's guarantees hold again from the forced entry on (one voter, then whatever
//!   membership the operator builds with RAFT ADD). Before it, this is the one place
//!   Prism steps outside them: a write the lost voters had committed but the survivor
//!   had not received is gone. So the survivor to force is the one with the highest
//!   last log id (`inspect`, `prism raft show`); the tool refuses a learner.
//! - Nothing is written unless every check passed; a check that fails is an error
//!   naming what is wrong, the log untouched.
//! - The lost members must never come back with their old data under their old ids:
//!   they would campaign in a group that no longer counts them (the runbook says so).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::{CommittedLeaderId, EntryPayload, Membership};

use crate::log_store::{LogDb, RocksLogStore};
use crate::snapshot_file;
use crate::types::{Entry, GroupId, LogId, NodeId, PeerNode, StoredMembership, Vote};

/// What a stopped node holds of one group.
#[derive(Debug, Clone)]
pub struct GroupState {
    pub group: GroupId,
    pub vote: Option<Vote>,
    /// The last log id this node knew committed (saved lazily: may lag).
    pub committed: Option<LogId>,
    pub last_purged: Option<LogId>,
    /// The last log id it holds (the last purged one when the log is empty).
    pub last_log: Option<LogId>,
    /// The group's membership as this node would start with it: the last membership
    /// entry of its log, else the one its snapshot recorded.
    pub membership: Option<StoredMembership>,
}

impl GroupState {
    /// Voters of the membership (every id of a joint configuration).
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.membership.as_ref().map(|m| m.membership().voter_ids().collect()).unwrap_or_default()
    }

    /// Members that are not voters.
    pub fn learners(&self) -> BTreeSet<NodeId> {
        self.membership.as_ref().map(|m| m.membership().learner_ids().collect()).unwrap_or_default()
    }

    /// Every member with its addresses.
    pub fn nodes(&self) -> BTreeMap<NodeId, PeerNode> {
        let Some(m) = &self.membership else { return BTreeMap::new() };
        m.membership().nodes().map(|(id, n)| (*id, n.clone())).collect()
    }
}

/// Reads one group's state from its log and its snapshot directory.
pub async fn inspect(db: &LogDb, group: GroupId, snapshot_dir: &Path) -> Result<GroupState, String> {
    let mut log = db.group(group);
    let err = |what: &str, e: &dyn std::fmt::Display| format!("group {group}: reading the {what}: {e}");
    let state = log.get_log_state().await.map_err(|e| err("log state", &e))?;
    let vote = log.read_vote().await.map_err(|e| err("vote", &e))?;
    let committed = log.read_committed().await.map_err(|e| err("committed log id", &e))?;
    let mut membership = last_membership_in_log(&mut log, &state).await.map_err(|e| err("log", &e))?;
    if membership.is_none() {
        let snapshot = snapshot_file::load(snapshot_dir).map_err(|e| err("snapshot", &e))?;
        membership = snapshot.map(|(meta, _)| meta.last_membership).filter(|m| m.log_id().is_some());
    }
    Ok(GroupState {
        group,
        vote,
        committed,
        last_purged: state.last_purged_log_id,
        last_log: state.last_log_id,
        membership,
    })
}

/// The last membership entry the log holds, scanning back from its end.
async fn last_membership_in_log(
    log: &mut RocksLogStore,
    state: &openraft::storage::LogState<crate::types::TypeConfig>,
) -> Result<Option<StoredMembership>, crate::types::StorageError> {
    let first = state.last_purged_log_id.map_or(0, |l| l.index + 1);
    let mut end = state.last_log_id.map_or(0, |l| l.index + 1);
    const STEP: u64 = 256;
    while end > first {
        let start = end.saturating_sub(STEP).max(first);
        for entry in log.try_get_log_entries(start..end).await?.iter().rev() {
            if let EntryPayload::Membership(m) = &entry.payload {
                return Ok(Some(StoredMembership::new(Some(entry.log_id), m.clone())));
            }
        }
        end = start;
    }
    Ok(None)
}

/// What [`force_single_voter`] did.
#[derive(Debug, Clone)]
pub struct Forced {
    pub before: GroupState,
    /// The term the node now leads in.
    pub term: u64,
    /// The membership entry written.
    pub entry: LogId,
}

/// Makes `me` the only voter of `group` on this (stopped) node's log: see the module
/// doc. Refuses a group this node holds no membership of, and a node that is not one of
/// its voters.
pub async fn force_single_voter(db: &LogDb, group: GroupId, me: NodeId, snapshot_dir: &Path) -> Result<Forced, String> {
    let before = inspect(db, group, snapshot_dir).await?;
    let Some(membership) = &before.membership else {
        return Err(format!(
            "group {group} has no membership on this node (never initialized here): nothing to recover"
        ));
    };
    let voters = before.voters();
    if !voters.contains(&me) {
        let list: Vec<String> = voters.iter().map(u64::to_string).collect();
        return Err(format!(
            "node {me} is not a voter of group {group} (voters: {}); force the surviving voter with the longest log",
            list.join(",")
        ));
    }
    let nodes: BTreeMap<NodeId, PeerNode> =
        before.nodes().into_iter().filter(|(id, _)| *id == me || !voters.contains(id)).collect();
    if !nodes.contains_key(&me) {
        // Membership::new would give it a default (empty) address: refuse instead.
        return Err(format!("group {group}'s membership has no address for node {me}"));
    }
    let seen = before.vote.map_or(0, |v| v.leader_id().term).max(before.last_log.map_or(0, |l| l.leader_id.term));
    let term = seen + 1;
    let index = before.last_log.map_or(0, |l| l.index + 1);
    let entry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, me), index),
        payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([me])], nodes)),
    };
    debug_assert!(membership.log_id().is_none_or(|l| l.index < index));
    let vote = Vote::new_committed(term, me);
    db.group(group)
        .write_recovery(&vote, &entry)
        .await
        .map_err(|e| format!("group {group}: writing the forced membership: {e}"))?;
    Ok(Forced { before, term, entry: entry.log_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::storage::RaftLogStorageExt;

    fn peer(id: u64) -> PeerNode {
        PeerNode::new(format!("127.0.0.1:{}", 17000 + id), format!("127.0.0.1:{}", 7000 + id))
    }

    fn three_voters_and_a_learner() -> Membership<NodeId, PeerNode> {
        let nodes: BTreeMap<NodeId, PeerNode> = (1..=4).map(|i| (i, peer(i))).collect();
        Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
    }

    async fn append(log: &mut RocksLogStore, entries: Vec<Entry>) {
        log.blocking_append(entries).await.expect("append");
    }

    fn blank(term: u64, leader: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, leader), index), payload: EntryPayload::Blank }
    }

    #[tokio::test]
    async fn a_voter_is_made_the_only_voter_in_a_new_term_and_a_learner_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = LogDb::open(&dir.path().join("log")).expect("open");
        let mut log = db.group(3);
        let snapdir = dir.path().join("snapshot-3");
        let m = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 0),
            payload: EntryPayload::Membership(three_voters_and_a_learner()),
        };
        append(&mut log, vec![m, blank(1, 1, 1), blank(2, 2, 2), blank(2, 2, 3)]).await;
        log.save_vote(&Vote::new_committed(4, 3)).await.expect("vote");
        db.group(5).save_vote(&Vote::new(1, 1)).await.expect("vote");
        assert_eq!(db.groups().expect("groups"), [3, 5]);

        let err = force_single_voter(&db, 3, 4, &snapdir).await.expect_err("a learner is refused");
        assert!(err.contains("node 4 is not a voter of group 3 (voters: 1,2,3)"), "{err}");
        let err = force_single_voter(&db, 9, 1, &dir.path().join("snapshot-9")).await.expect_err("no such group");
        assert!(err.contains("group 9 has no membership"), "{err}");
        assert_eq!(inspect(&db, 3, &snapdir).await.expect("inspect").last_log.map(|l| l.index), Some(3));

        let forced = force_single_voter(&db, 3, 2, &snapdir).await.expect("forced");
        assert_eq!(forced.before.voters(), BTreeSet::from([1, 2, 3]));
        assert_eq!(forced.term, 5, "above the vote's term 4");
        assert_eq!(forced.entry.index, 4);
        let after = inspect(&db, 3, &snapdir).await.expect("inspect");
        assert_eq!(after.voters(), BTreeSet::from([2]));
        assert_eq!(after.learners(), BTreeSet::from([4]), "the learner stays; the lost voters go");
        assert_eq!(after.nodes().get(&2), Some(&peer(2)));
        assert_eq!(after.vote, Some(Vote::new_committed(5, 2)));
        assert_eq!(after.last_log, Some(forced.entry));
    }

    #[tokio::test]
    async fn a_purged_log_takes_the_membership_from_the_snapshot() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = LogDb::open(&dir.path().join("log")).expect("open");
        let mut log = db.group(1);
        let snapdir = dir.path().join("snapshot-1");
        std::fs::create_dir_all(&snapdir).expect("mkdir");
        let at = LogId::new(CommittedLeaderId::new(3, 1), 40);
        let meta = crate::types::SnapshotMeta {
            last_log_id: Some(at),
            last_membership: StoredMembership::new(
                Some(LogId::new(CommittedLeaderId::new(1, 1), 0)),
                three_voters_and_a_learner(),
            ),
            snapshot_id: "s".into(),
        };
        snapshot_file::save(&snapdir, &meta, b"").expect("snapshot");
        append(&mut log, vec![blank(3, 1, 39), blank(3, 1, 40), blank(7, 3, 41)]).await;
        log.purge(at).await.expect("purge");

        let state = inspect(&db, 1, &snapdir).await.expect("inspect");
        assert_eq!(state.voters(), BTreeSet::from([1, 2, 3]), "from the snapshot");
        let forced = force_single_voter(&db, 1, 1, &snapdir).await.expect("forced");
        assert_eq!((forced.term, forced.entry.index), (8, 42), "above the last entry's term 7");
    }
}
