//! The Raft log of a shard group in its own RocksDB instance (a directory apart from any
//! data), implementing openraft's [`RaftLogStorage`] (storage v2).
//!
//! Layout: column family `logs` maps a log index, as a big-endian u64 (so RocksDB's byte
//! order is index order), to a format byte and the bincode-encoded entry; column family
//! `meta` holds the vote, the committed log id and the last purged log id under fixed
//! keys. bincode names enum variants by position: the order of the engine's `Op` variants
//! (and of every enum inside a `Write`) is part of this format, so new variants go last,
//! or the format byte changes.
//!
//! Invariants:
//! - Nothing is acknowledged before it is durable: the vote and every append are written
//!   with a synced WAL (`WriteOptions::set_sync(true)`), and the append callback runs only
//!   after that write returned. One `append` call is one RocksDB write batch, so one fsync
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

use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};

const CF_LOGS: &str = "logs";
const CF_META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
/// First byte of every stored entry: the encoding that follows (bincode of
/// `openraft::Entry<TypeConfig>`). A change of encoding gets a new number.
const ENTRY_FORMAT: u8 = 1;

/// A shard group's Raft log on RocksDB. Cheap to clone: clones share the database (a
/// clone is the log reader openraft hands to replication tasks).
#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<DB>,
    /// Kept for its statistics (WAL syncs), which the database shares.
    opts: Arc<Options>,
}

impl Debug for RocksLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksLogStore").field("path", &self.db.path()).finish()
    }
}

/// The database key of a log index: big-endian, so iteration order is index order.
fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn index_of_key(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        StorageError::from(StorageIOError::<NodeId>::read_logs(AnyError::error(format!(
            "log key of {} bytes, expected 8",
            key.len()
        ))))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

fn synced() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    opts
}

impl RocksLogStore {
    /// Opens (creating if missing) the log database in `dir`.
    pub fn open(dir: &Path) -> Result<RocksLogStore, StorageError> {
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
        Ok(RocksLogStore { db: Arc::new(db), opts: Arc::new(opts) })
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
        let Some(bytes) = self.db.get_cf(self.meta(), key).map_err(|e| err(e.to_string()))? else {
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
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.write_opt(batch, &synced())).await {
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
        let Some(item) = self.db.iterator_cf(self.logs(), IteratorMode::End).next() else {
            return Ok(None);
        };
        let (key, value) = item.map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
        let index = index_of_key(&key)?;
        Ok(Some(Self::decode_entry(index, &value)?.log_id))
    }

    /// Writes one raw value under a log index, bypassing encoding (tests of corruption).
    #[cfg(test)]
    pub(crate) fn put_raw_log(&self, index: u64, value: &[u8]) {
        self.db.put_cf(self.logs(), log_key(index), value).expect("test write");
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
        let from = log_key(start);
        for item in self.db.iterator_cf(self.logs(), IteratorMode::From(&from, Direction::Forward)) {
            let (key, value) = item.map_err(|e| StorageIOError::<NodeId>::read_logs(&e))?;
            let index = index_of_key(&key)?;
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
        batch.put_cf(self.meta(), KEY_VOTE, bytes);
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
            .put_cf(self.meta(), KEY_COMMITTED, bytes)
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
            batch.put_cf(self.logs(), log_key(entry.log_id.index), bytes);
        }
        if batch.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        match self.write_synced(batch).await {
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
        batch.delete_range_cf(self.logs(), log_key(log_id.index), log_key(u64::MAX));
        batch.delete_cf(self.logs(), log_key(u64::MAX));
        self.write_synced(batch).await.map_err(|e| StorageIOError::<NodeId>::write_logs(&e).into())
    }

    /// Deletes the entries up to and including `log_id.index` and records it as the last
    /// purged id, in one batch.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = Self::encode(&log_id, ErrorSubject::Store)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.meta(), KEY_LAST_PURGED, bytes);
        batch.delete_range_cf(self.logs(), log_key(0), log_key(log_id.index));
        batch.delete_cf(self.logs(), log_key(log_id.index));
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
