//! The Raft logs of every shard group a node hosts, in one RocksDB instance of their own
//! (a directory apart from any data), each group's log implementing openraft's
//! [`RaftLogStorage`] (storage v2).
//!
//! Multi-raft: all groups share the database, so RocksDB's group commit covers the
//! concurrent synced appends of many groups with one WAL fsync.
//!
//! Layout: column family `logs` maps (group id, log index), both big-endian (so RocksDB's
//! byte order is index order within a group), to a format byte and the bincode-encoded
//! entry; column family `meta` holds each group's vote, committed log id and last purged
//! log id under its group id followed by a fixed name. bincode names enum variants by position: the order of the engine's `Op` variants
//! (and of every enum inside a `Write`) is part of this format, so new variants go last,
//! or the format byte changes.
//!
//! Invariants:
//! - Nothing is acknowledged before it is durable: the vote is written with a synced WAL
//!   (`WriteOptions::set_sync(true)`); an append is written, then handed to the database's
//!   sync thread, and its flush callback runs only after a WAL fsync that began after the
//!   write. openraft counts an entry as stored on this member (for commit, and before a
//!   follower answers) only once that callback ran, so it may already replicate the
//!   entry while the leader's own fsync is in progress. The sync thread takes every append
//!   queued meanwhile, from every group, into one fsync and runs their callbacks in order. The one exception is explicit: a database opened with
//!   [`Durability::EverySec`] (`appendfsync everysec`) writes without syncing and syncs
//!   its WAL once a second, so a power loss can take up to a second of acknowledged
//!   writes with it (a process crash loses nothing: the data is in the OS). One `append` call is one RocksDB write batch, so one fsync
//!   covers every entry it carries.
//! - Purge writes the new last-purged id and deletes the entries up to it in one atomic
//!   batch, so after a crash the log state is either before or after the purge, never a
//!   gap.
//! - Disk data is never trusted: an undecodable value, a key of the wrong length or an
//!   entry whose index differs from its key is a [`StorageError`] naming the index, never
//!   a panic.
//! - Synced writes run on tokio's blocking pool, never on the runtime's worker threads.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{Entry, GroupId, LogId, NodeId, StorageError, TypeConfig, Vote};

const CF_LOGS: &str = "logs";
const CF_META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
/// First byte of every stored entry: the encoding that follows (bincode of
/// `openraft::Entry<TypeConfig>`). A change of encoding gets a new number.
const ENTRY_FORMAT: u8 = 1;

/// When appends reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync before acknowledging (the default; `appendfsync always`).
    #[default]
    Always,
    /// fsync once a second (`appendfsync everysec`): documented as losing up to a second
    /// of acknowledged writes on power loss.
    EverySec,
}

/// Runs once the WAL holding an append is durable (or failed to be).
type Flushed = Box<dyn FnOnce(Result<(), io::Error>) + Send>;

/// The log database of a node: one per node, shared by all its groups.
#[derive(Clone)]
pub struct LogDb {
    db: Arc<DB>,
    /// Kept for its statistics (WAL syncs), which the database shares.
    opts: Arc<Options>,
    sync: bool,
    /// The sync thread's queue of append callbacks (`Durability::Always`).
    flushes: std::sync::mpsc::Sender<Flushed>,
}

/// The sync thread: one WAL fsync for every callback queued since the last one, then the
/// callbacks in order. Ends when the database's last handle is dropped.
fn sync_thread(db: std::sync::Weak<DB>, queue: std::sync::mpsc::Receiver<Flushed>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        let result = match db.upgrade() {
            Some(db) => db.flush_wal(true).map_err(|e| e.into_string()),
            None => Err("the log database is closed".to_string()),
        };
        for done in batch {
            done(result.clone().map_err(io::Error::other));
        }
    }
}

impl LogDb {
    /// Opens (creating if missing) the log database in `dir`, syncing every append.
    pub fn open(dir: &Path) -> Result<LogDb, StorageError> {
        LogDb::open_with(dir, Durability::Always)
    }

    /// Opens the log database with the given durability; with `EverySec`, a background
    /// thread syncs the WAL once a second for as long as the database is open.
    pub fn open_with(dir: &Path, durability: Durability) -> Result<LogDb, StorageError> {
        let mut db = LogDb::open_db(dir)?;
        if durability == Durability::EverySec {
            db.sync = false;
            let weak = Arc::downgrade(&db.db);
            std::thread::Builder::new()
                .name("raft-log-sync".into())
                .spawn(move || {
                    while let Some(db) = weak.upgrade() {
                        if let Err(e) = db.flush_wal(true) {
                            tracing::error!("syncing the Raft log: {e}");
                        }
                        drop(db);
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    }
                })
                .map_err(|e| StorageIOError::<NodeId>::new(ErrorSubject::Store, ErrorVerb::Write, &e))?;
        }
        Ok(db)
    }

    fn open_db(dir: &Path) -> Result<LogDb, StorageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.enable_statistics();
        let cfs = [CF_LOGS, CF_META].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| {
            StorageIOError::<NodeId>::new(
                ErrorSubject::Store,
                ErrorVerb::Read,
                AnyError::error(format!("opening the Raft log at {}: {e}", dir.display())),
            )
        })?;
        let db = Arc::new(db);
        let (flushes, queue) = std::sync::mpsc::channel();
        let weak = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("raft-log-fsync".into())
            .spawn(move || sync_thread(weak, queue))
            .map_err(|e| StorageIOError::<NodeId>::new(ErrorSubject::Store, ErrorVerb::Write, &e))?;
        Ok(LogDb { db, opts: Arc::new(opts), sync: true, flushes })
    }

    /// The groups that have a vote or a log entry in this database, in id order (one
    /// seek per group: keys start with the group id).
    pub fn groups(&self) -> Result<Vec<GroupId>, StorageError> {
        let mut groups = std::collections::BTreeSet::new();
        for cf in [CF_META, CF_LOGS] {
            let handle = self.db.cf_handle(cf).expect("both column families are created on open");
            let mut it = self.db.raw_iterator_cf(handle);
            it.seek_to_first();
            while let Some(key) = it.key() {
                let Some(id) = key.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(GroupId::from_be_bytes)
                else {
                    break;
                };
                groups.insert(id);
                match id.checked_add(1) {
                    Some(next) => it.seek(next.to_be_bytes()),
                    None => break,
                }
            }
            it.status().map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
        }
        Ok(groups.into_iter().collect())
    }

    /// The log of group `group`.
    pub fn group(&self, group: GroupId) -> RocksLogStore {
        RocksLogStore {
            db: self.db.clone(),
            opts: self.opts.clone(),
            group,
            sync: self.sync,
            flushes: self.flushes.clone(),
        }
    }
}

/// One shard group's Raft log on the node's [`LogDb`]. Cheap to clone: clones share the
/// database (a clone is the log reader openraft hands to replication tasks).
#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<DB>,
    opts: Arc<Options>,
    group: GroupId,
    /// Sync each append (false only under `Durability::EverySec`).
    sync: bool,
    flushes: std::sync::mpsc::Sender<Flushed>,
}

impl Debug for RocksLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksLogStore").field("path", &self.db.path()).field("group", &self.group).finish()
    }
}

/// The database key of a group's log index: big-endian, so iteration order is index order.
fn log_key(group: GroupId, index: u64) -> [u8; 12] {
    let mut key = [0; 12];
    key[..4].copy_from_slice(&group.to_be_bytes());
    key[4..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The index of a log key of `group`; `None` for a key of another group.
fn index_of_key(group: GroupId, key: &[u8]) -> Result<Option<u64>, StorageError> {
    let bytes: [u8; 12] = key.try_into().map_err(|_| {
        StorageError::from(StorageIOError::<NodeId>::read_logs(AnyError::error(format!(
            "log key of {} bytes, expected 12",
            key.len()
        ))))
    })?;
    if bytes[..4] != group.to_be_bytes() {
        return Ok(None);
    }
    let mut index = [0; 8];
    index.copy_from_slice(&bytes[4..]);
    Ok(Some(u64::from_be_bytes(index)))
}

fn meta_key(group: GroupId, name: &[u8]) -> Vec<u8> {
    let mut key = group.to_be_bytes().to_vec();
    key.extend_from_slice(name);
    key
}

fn write_options(sync: bool) -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(sync);
    opts
}

impl RocksLogStore {
    /// Opens (creating if missing) a log database in `dir` holding only group 0's log.
    pub fn open(dir: &Path) -> Result<RocksLogStore, StorageError> {
        Ok(LogDb::open(dir)?.group(0))
    }

    /// How many times the WAL was fsynced since the store was opened (RocksDB's
    /// `rocksdb.wal.synced` ticker): one per append call and per vote.
    pub fn wal_syncs(&self) -> Option<u64> {
        let stats = self.opts.get_statistics()?;
        let line = stats.lines().find(|l| l.starts_with("rocksdb.wal.synced "))?;
        line.rsplit(':').next()?.trim().parse().ok()
    }

    fn logs(&self) -> &ColumnFamily {
        // Both families are created by `open` (create_missing_column_families).
        self.db.cf_handle(CF_LOGS).expect("logs column family is created on open")
    }

    fn meta(&self) -> &ColumnFamily {
        self.db.cf_handle(CF_META).expect("meta column family is created on open")
    }

    fn get_meta<T: DeserializeOwned>(
        &self,
        key: &'static [u8],
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>, StorageError> {
        let err = |msg: String| {
            StorageError::from(StorageIOError::new(subject.clone(), ErrorVerb::Read, AnyError::error(msg)))
        };
        let Some(bytes) = self.db.get_cf(self.meta(), meta_key(self.group, key)).map_err(|e| err(e.to_string()))?
        else {
            return Ok(None);
        };
        bincode::deserialize(&bytes)
            .map(Some)
            .map_err(|e| err(format!("corrupt {} record: {e}", String::from_utf8_lossy(key))))
    }

    fn encode<T: Serialize>(value: &T, subject: ErrorSubject<NodeId>) -> Result<Vec<u8>, StorageError> {
        bincode::serialize(value).map_err(|e| StorageIOError::new(subject, ErrorVerb::Write, AnyError::new(&*e)).into())
    }

    /// Writes `batch` with a synced WAL on the blocking pool and waits for it.
    async fn write_synced(&self, batch: WriteBatch) -> Result<(), io::Error> {
        self.write(batch, true).await
    }

    /// Writes `batch` on the blocking pool (WAL synced if `sync`) and waits for it.
    async fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), io::Error> {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.write_opt(batch, &write_options(sync))).await {
            Ok(r) => r.map_err(|e| io::Error::other(e.into_string())),
            // The closure does not panic; a shut-down runtime is the only way here.
            Err(join) => Err(io::Error::other(format!("log write task failed: {join}"))),
        }
    }

    fn encode_entry(entry: &Entry) -> Result<Vec<u8>, StorageError> {
        let mut bytes = vec![ENTRY_FORMAT];
        bincode::serialize_into(&mut bytes, entry)
            .map_err(|e| StorageIOError::<NodeId>::write_log_entry(entry.log_id, AnyError::new(&*e)))?;
        Ok(bytes)
    }

    fn decode_entry(index: u64, bytes: &[u8]) -> Result<Entry, StorageError> {
        let corrupt = |why: String| {
            StorageError::from(StorageIOError::<NodeId>::read_log_at_index(
                index,
                AnyError::error(format!("log entry {index} is corrupt: {why}")),
            ))
        };
        let body = match bytes.split_first() {
            Some((&ENTRY_FORMAT, body)) => body,
            Some((v, _)) => return Err(corrupt(format!("unknown format {v}"))),
            None => return Err(corrupt("empty value".into())),
        };
        let entry: Entry = bincode::deserialize(body).map_err(|e| corrupt(e.to_string()))?;
        if entry.log_id.index != index {
            return Err(StorageIOError::<NodeId>::read_log_at_index(
                index,
                AnyError::error(format!("log entry stored at {index} has index {}", entry.log_id.index)),
            )
            .into());
        }
        Ok(entry)
    }

    fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let last = log_key(self.group, u64::MAX);
        let Some(item) = self.db.iterator_cf(self.logs(), IteratorMode::From(&last, Direction::Reverse)).next() else {
            return Ok(None);
        };
        let (key, value) = item.map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
        let Some(index) = index_of_key(self.group, &key)? else { return Ok(None) };
        Ok(Some(Self::decode_entry(index, &value)?.log_id))
    }

    /// Writes `vote` and `entry` in one synced batch: the forced membership of
    /// [`crate::recovery::force_single_voter`], on a stopped node's log. Never used by a
    /// serving group (openraft writes votes and entries through the storage trait).
    pub(crate) async fn write_recovery(&self, vote: &Vote, entry: &Entry) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.meta(), meta_key(self.group, KEY_VOTE), Self::encode(vote, ErrorSubject::Vote)?);
        batch.put_cf(self.logs(), log_key(self.group, entry.log_id.index), Self::encode_entry(entry)?);
        self.write_synced(batch).await.map_err(|e| StorageIOError::<NodeId>::write_logs(&e).into())
    }

    /// Writes one raw value under a log index, bypassing encoding (tests of corruption).
    #[cfg(test)]
    pub(crate) fn put_raw_log(&self, index: u64, value: &[u8]) {
        self.db.put_cf(self.logs(), log_key(self.group, index), value).expect("test write");
    }
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        let from = log_key(self.group, start);
        for item in self.db.iterator_cf(self.logs(), IteratorMode::From(&from, Direction::Forward)) {
            let (key, value) = item.map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
            let Some(index) = index_of_key(self.group, &key)? else { break };
            if !range.contains(&index) {
                break;
            }
            entries.push(Self::decode_entry(index, &value)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = RocksLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_LAST_PURGED, ErrorSubject::Store)?;
        let last_log_id = self.last_log_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = Self::encode(vote, ErrorSubject::Vote)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.meta(), meta_key(self.group, KEY_VOTE), bytes);
        self.write_synced(batch).await.map_err(|e| StorageIOError::<NodeId>::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(KEY_VOTE, ErrorSubject::Vote)
    }

    /// Kept so a restarted node re-applies what it knew committed before serving (the
    /// state machine is in memory). Not synced: losing it only delays re-application.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = Self::encode(&committed, ErrorSubject::Store)?;
        self.db
            .put_cf(self.meta(), meta_key(self.group, KEY_COMMITTED), bytes)
            .map_err(|e| StorageIOError::<NodeId>::new(ErrorSubject::Store, ErrorVerb::Write, &e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED, ErrorSubject::Store)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes = Self::encode_entry(&entry)?;
            batch.put_cf(self.logs(), log_key(self.group, entry.log_id.index), bytes);
        }
        if batch.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        match self.write(batch, false).await {
            // Durable later: the sync thread (or, under EverySec, the once-a-second sync).
            Ok(()) if self.sync => {
                let done: Flushed = Box::new(move |r| callback.log_io_completed(r));
                if let Err(std::sync::mpsc::SendError(done)) = self.flushes.send(done) {
                    done(Err(io::Error::other("the log sync thread is gone")));
                }
                Ok(())
            }
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::<NodeId>::write_logs(&e).into();
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    /// Deletes the entries from `log_id.index` on (a conflicting suffix). Synced, so a
    /// removed suffix cannot reappear after a crash next to newer entries.
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.logs(), log_key(self.group, log_id.index), log_key(self.group, u64::MAX));
        batch.delete_cf(self.logs(), log_key(self.group, u64::MAX));
        self.write_synced(batch).await.map_err(|e| StorageIOError::<NodeId>::write_logs(&e).into())
    }

    /// Deletes the entries up to and including `log_id.index` and records it as the last
    /// purged id, in one batch.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = Self::encode(&log_id, ErrorSubject::Store)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.meta(), meta_key(self.group, KEY_LAST_PURGED), bytes);
        batch.delete_range_cf(self.logs(), log_key(self.group, 0), log_key(self.group, log_id.index));
        batch.delete_cf(self.logs(), log_key(self.group, log_id.index));
        self.write_synced(batch).await.map_err(|e| StorageIOError::<NodeId>::write_logs(&e).into())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
    use openraft::testing::log_id;
    use openraft::{EntryPayload, RaftLogReader};
    use prism_engine::{Exists, Op, TtlChange, Write};

    use super::RocksLogStore;
    use crate::types::{Entry, Vote};

    fn set(k: &str, v: &str) -> Write {
        let op = Op::Set {
            key: Bytes::from(k.to_owned()),
            value: Bytes::from(v.to_owned()),
            exists: Exists::Any,
            ttl: TtlChange::Clear,
            get: false,
        };
        Write { now_ms: 1, op }
    }

    fn entry(index: u64, writes: Vec<Write>) -> Entry {
        Entry { log_id: log_id(1, 0, index), payload: EntryPayload::Normal(writes) }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    /// Whatever an append or a vote acknowledged is there after the store is dropped and
    /// opened again.
    #[test]
    fn reopen_finds_vote_and_logs() {
        let dir = tempfile::tempdir().expect("temp dir");
        rt().block_on(async {
            let mut log = RocksLogStore::open(dir.path()).expect("open");
            log.save_vote(&Vote::new(3, 7)).await.expect("vote");
            // One append of three entries is one synced write batch.
            let batch = (1..=3).map(|i| entry(i, vec![set("k", &i.to_string()), set("j", "x")]));
            log.blocking_append(batch).await.expect("append");
            log.blocking_append([entry(4, Vec::new())]).await.expect("append");
            log.purge(log_id(1, 0, 1)).await.expect("purge");
            log.save_committed(Some(log_id(1, 0, 3))).await.expect("committed");
        });
        rt().block_on(async {
            let mut log = RocksLogStore::open(dir.path()).expect("reopen");
            assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 7)));
            assert_eq!(log.read_committed().await.expect("committed"), Some(log_id(1, 0, 3)));
            let state = log.get_log_state().await.expect("state");
            assert_eq!(state.last_purged_log_id, Some(log_id(1, 0, 1)));
            assert_eq!(state.last_log_id, Some(log_id(1, 0, 4)));
            let entries = log.try_get_log_entries(0..10).await.expect("entries");
            assert_eq!(entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), [2, 3, 4]);
            match &entries[0].payload {
                EntryPayload::Normal(w) => assert_eq!(w, &vec![set("k", "2"), set("j", "x")]),
                other => panic!("unexpected payload {other:?}"),
            }
            // A truncated suffix stays gone after a reopen too.
            log.truncate(log_id(1, 0, 3)).await.expect("truncate");
        });
        rt().block_on(async {
            let mut log = RocksLogStore::open(dir.path()).expect("reopen");
            let entries = log.try_get_log_entries(..).await.expect("entries");
            assert_eq!(entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), [2]);
        });
    }

    /// One append is one synced write, however many entries it carries; a vote is one.
    #[test]
    fn one_sync_per_append() {
        let dir = tempfile::tempdir().expect("temp dir");
        rt().block_on(async {
            let mut log = RocksLogStore::open(dir.path()).expect("open");
            let before = log.wal_syncs().expect("statistics");
            log.blocking_append((1..=100).map(|i| entry(i, vec![set("k", "v")]))).await.expect("append");
            assert_eq!(log.wal_syncs(), Some(before + 1));
            log.save_vote(&Vote::new(1, 1)).await.expect("vote");
            assert_eq!(log.wal_syncs(), Some(before + 2));
            log.blocking_append((101..=102).map(|i| entry(i, Vec::new()))).await.expect("append");
            assert_eq!(log.wal_syncs(), Some(before + 3));
        });
    }

    /// Under `appendfsync everysec` an append is not synced on its own (the background
    /// thread syncs once a second), and the entries are there after a reopen.
    #[test]
    fn everysec_appends_without_a_sync_each() {
        let dir = tempfile::tempdir().expect("temp dir");
        rt().block_on(async {
            let db = super::LogDb::open_with(dir.path(), super::Durability::EverySec).expect("open");
            let mut log = db.group(0);
            let before = log.wal_syncs().expect("statistics");
            for i in 1..=20 {
                log.blocking_append([entry(i, vec![set("k", "v")])]).await.expect("append");
            }
            // At most the background thread's once-a-second syncs, never one per append.
            assert!(log.wal_syncs().expect("statistics") < before + 20);
        });
        // The sync thread holds the database for the length of a WAL sync: if the last
        // handle went while it synced, the database closes (and frees its lock) when that
        // sync ends, a few milliseconds later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut log = loop {
            match RocksLogStore::open(dir.path()) {
                Ok(log) => break log,
                Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("reopen: {e}"),
            }
        };
        rt().block_on(async {
            assert_eq!(log.try_get_log_entries(..).await.expect("entries").len(), 20);
        });
    }

    /// A log database that is open already (another node on the same data directory) is
    /// refused with an error naming the directory and the lock, not opened twice.
    #[test]
    fn an_open_log_is_not_opened_twice() {
        let dir = tempfile::tempdir().expect("temp dir");
        let _first = super::LogDb::open(dir.path()).expect("open");
        let e = super::LogDb::open(dir.path()).err().expect("a second open is refused").to_string();
        assert!(e.contains("opening the Raft log at") && e.contains("lock"), "{e}");
    }

    /// Groups sharing the database see only their own log, vote and purge state.
    #[test]
    fn groups_share_the_database_but_not_their_logs() {
        let dir = tempfile::tempdir().expect("temp dir");
        rt().block_on(async {
            let db = super::LogDb::open(dir.path()).expect("open");
            let (mut a, mut b) = (db.group(1), db.group(2));
            a.blocking_append((1..=5).map(|i| entry(i, vec![set("a", "1")]))).await.expect("append a");
            b.blocking_append((1..=2).map(|i| entry(i, vec![set("b", "1")]))).await.expect("append b");
            a.save_vote(&Vote::new(4, 1)).await.expect("vote a");
            b.purge(log_id(1, 0, 1)).await.expect("purge b");
            assert_eq!(a.try_get_log_entries(..).await.expect("a").len(), 5);
            assert_eq!(b.try_get_log_entries(..).await.expect("b").len(), 1);
            assert_eq!(a.get_log_state().await.expect("a").last_log_id, Some(log_id(1, 0, 5)));
            assert_eq!(b.get_log_state().await.expect("b").last_log_id, Some(log_id(1, 0, 2)));
            assert_eq!(a.get_log_state().await.expect("a").last_purged_log_id, None);
            assert_eq!(b.read_vote().await.expect("vote b"), None);
            assert_eq!(a.read_vote().await.expect("vote a"), Some(Vote::new(4, 1)));
            // Truncating one group's suffix leaves the other's log alone.
            a.truncate(log_id(1, 0, 3)).await.expect("truncate a");
            assert_eq!(a.try_get_log_entries(..).await.expect("a").len(), 2);
            assert_eq!(b.try_get_log_entries(..).await.expect("b").len(), 1);
        });
    }

    /// A corrupt value on disk is a storage error naming the index, never a panic; so is
    /// an entry stored under the wrong index.
    #[test]
    fn corrupt_entry_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        rt().block_on(async {
            let mut log = RocksLogStore::open(dir.path()).expect("open");
            log.blocking_append((1..=3).map(|i| entry(i, vec![set("k", "v")]))).await.expect("append");
            log.put_raw_log(2, b"\xff\xfe garbage");
            let err = log.try_get_log_entries(1..4).await.expect_err("corrupt entry read");
            assert!(err.to_string().contains("log entry 2"), "{err}");
            // Entries before the corrupt one still read.
            assert_eq!(log.try_get_log_entries(1..2).await.expect("entry 1").len(), 1);

            let moved = RocksLogStore::encode_entry(&entry(9, Vec::new())).expect("encode");
            log.put_raw_log(3, &moved);
            let err = log.try_get_log_entries(3..4).await.expect_err("misplaced entry");
            assert!(err.to_string().contains("stored at 3 has index 9"), "{err}");

            // The last entry is read by get_log_state: an error there too.
            log.put_raw_log(5, b"");
            assert!(log.get_log_state().await.is_err());
        });
    }
}
