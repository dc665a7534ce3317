//! The simulated log disk of one member: openraft's storage-v2 [`RaftLogStorage`] over a
//! durable part that survives a crash and a page cache that does not.
//!
//! Model (the RocksDB log store's, see replication/src/log_store.rs): every write goes to
//! the page cache and to an ordered queue of pending operations (appends, `committed`);
//! an fsync makes the whole queue durable, in order, as a WAL sync does. Appends are
//! synced by a background fsync task after a small random delay (drawn from the member's
//! seeded RNG), and only then is openraft told they are stored; votes, truncations and
//! purges are synced at once (which, as in a WAL, also syncs everything queued before).
//! A crash (turmoil drops the host's runtime) loses the page cache, the queue and the
//! fsync task: the next incarnation opens from the durable part alone.
//!
//! [`DiskFault::AckBeforeSync`] is the deliberately broken variant the negative test uses:
//! appends are acknowledged at once and still synced later, so a crash loses
//! acknowledged entries, which the invariant checks must catch.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use parking_lot::Mutex;
use prism_replication::types::{Entry, LogId, StorageError, Vote};
use prism_replication::TypeConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

/// How the simulated disk behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskFault {
    /// Appends are acknowledged only once synced (the real store's contract).
    #[default]
    None,
    /// Broken on purpose: appends acknowledged before they are synced.
    AckBeforeSync,
}

/// What a member's disk holds: either the durable part or the page cache's view.
#[derive(Debug, Clone, Default)]
pub struct LogImage {
    pub entries: BTreeMap<u64, Entry>,
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
    pub purged: Option<LogId>,
}

impl LogImage {
    fn apply(&mut self, op: &Pending) {
        match op {
            Pending::Append(entries) => {
                for e in entries {
                    self.entries.insert(e.log_id.index, e.clone());
                }
            }
            Pending::Committed(c) => self.committed = *c,
            Pending::Truncate(index) => {
                self.entries.split_off(index);
            }
            Pending::Purge(id) => {
                self.entries = self.entries.split_off(&(id.index + 1));
                self.purged = Some(*id);
            }
            Pending::Vote(v) => self.vote = Some(*v),
        }
    }
}

/// The durable part of a member's disk, kept outside the host so a restart finds it.
#[derive(Debug, Default)]
pub struct Durable {
    pub image: LogImage,
    /// How many times the member opened its disk (seeds each incarnation's fsync delays).
    pub opens: u64,
    /// Fsyncs done, for the run's figures.
    pub syncs: u64,
}

pub type Disk = Arc<Mutex<Durable>>;

#[derive(Debug)]
enum Pending {
    Append(Vec<Entry>),
    Committed(Option<LogId>),
    Truncate(u64),
    Purge(LogId),
    Vote(Vote),
}

/// The host-local part: lost on a crash.
struct Cache {
    view: LogImage,
    queue: Vec<Pending>,
}

/// One incarnation's log store (cheap to clone: the reader is a clone).
#[derive(Clone)]
pub struct SimLog {
    disk: Disk,
    cache: Arc<Mutex<Cache>>,
    fsync: mpsc::UnboundedSender<Option<LogFlushed<TypeConfig>>>,
    fault: DiskFault,
}

impl SimLog {
    /// Opens the durable part as it is now and starts this incarnation's fsync task (on
    /// the current runtime: it dies with the host). `seed` fixes the fsync delays.
    pub fn open(disk: Disk, seed: u64, fault: DiskFault) -> SimLog {
        let view = {
            let mut d = disk.lock();
            d.opens += 1;
            d.image.clone()
        };
        let opens = disk.lock().opens;
        let cache = Arc::new(Mutex::new(Cache { view, queue: Vec::new() }));
        let (tx, rx) = mpsc::unbounded_channel();
        let rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ opens);
        // The broken disk also syncs lazily (up to a second, like `appendfsync everysec`),
        // so that what it acknowledged early is often still unsynced at a crash.
        let max_delay = match fault {
            DiskFault::None => Duration::from_millis(4),
            DiskFault::AckBeforeSync => Duration::from_secs(1),
        };
        tokio::spawn(fsync_task(disk.clone(), cache.clone(), rx, rng, max_delay));
        SimLog { disk, cache, fsync: tx, fault }
    }

    /// Makes every queued operation durable, in order.
    fn sync(disk: &Disk, cache: &Mutex<Cache>) {
        let queue = std::mem::take(&mut cache.lock().queue);
        let mut d = disk.lock();
        for op in &queue {
            d.image.apply(op);
        }
        d.syncs += 1;
    }

    fn write(&self, op: Pending, synced: bool) {
        {
            let mut c = self.cache.lock();
            c.view.apply(&op);
            c.queue.push(op);
        }
        if synced {
            SimLog::sync(&self.disk, &self.cache);
        }
    }
}

/// The fsync task: waits a random 0-4 ms (`max_delay`) after the first append queued, syncs everything
/// queued, then acknowledges the appends waiting, in order.
async fn fsync_task(
    disk: Disk,
    cache: Arc<Mutex<Cache>>,
    mut rx: mpsc::UnboundedReceiver<Option<LogFlushed<TypeConfig>>>,
    mut rng: StdRng,
    max_delay: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        tokio::time::sleep(max_delay.mul_f64(rng.random_range(0.0..1.0))).await;
        while let Ok(more) = rx.try_recv() {
            waiting.push(more);
        }
        SimLog::sync(&disk, &cache);
        for done in waiting.into_iter().flatten() {
            done.log_io_completed(Ok(()));
        }
    }
}

impl RaftLogReader<TypeConfig> for SimLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(i),
            Bound::Excluded(&i) => Bound::Excluded(i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(i),
            Bound::Excluded(&i) => Bound::Excluded(i),
            Bound::Unbounded => Bound::Unbounded,
        };
        // An empty or inverted range is no entries (BTreeMap::range would panic).
        let empty = match (start, end) {
            (Bound::Included(s), Bound::Excluded(e)) => s >= e,
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Excluded(s), Bound::Excluded(e)) => s >= e || s + 1 >= e,
            (Bound::Excluded(s), Bound::Included(e)) => s >= e,
            _ => false,
        };
        if empty {
            return Ok(Vec::new());
        }
        Ok(self.cache.lock().view.entries.range((start, end)).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for SimLog {
    type LogReader = SimLog;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let c = self.cache.lock();
        let last = c.view.entries.values().next_back().map(|e| e.log_id).or(c.view.purged);
        Ok(LogState { last_purged_log_id: c.view.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write(Pending::Vote(*vote), true);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.cache.lock().view.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write(Pending::Committed(committed), false);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.cache.lock().view.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        self.write(Pending::Append(entries), false);
        let waiting = match self.fault {
            DiskFault::None => Some(callback),
            // Acknowledged now, still synced later (the task then has nothing to answer).
            DiskFault::AckBeforeSync => {
                callback.log_io_completed(Ok(()));
                None
            }
        };
        if let Err(mpsc::error::SendError(Some(callback))) = self.fsync.send(waiting) {
            callback.log_io_completed(Err(std::io::Error::other("the fsync task is gone")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(Pending::Truncate(log_id.index), true);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(Pending::Purge(log_id), true);
        Ok(())
    }
}
