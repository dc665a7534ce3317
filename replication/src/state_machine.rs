//! The state machine of a shard group: committed entries applied to an engine
//! [`Keyspace`], and snapshots of that keyspace.
//!
//! Invariants:
//! - Entries apply strictly in log order, each entry's writes in batch order; the outputs
//!   of an entry are its writes' outputs, same order (blank and membership entries: none).
//! - `applied` and `membership` move with the keyspace: after `apply` or
//!   `install_snapshot` returns, the keyspace holds exactly the effect of the log up to
//!   `applied`.
//! - The last snapshot built or installed is durable (see `snapshot_file`) before
//!   `build_snapshot` or `install_snapshot` returns, and a restart loads it: restart =
//!   last snapshot + log replay.
//! - The keyspace is the node's own, shared with its readers: installing a snapshot
//!   decodes into a fresh keyspace off to the side and swaps it in slot by slot
//!   ([`Keyspace::replace_with`]), so a reader of a key sees the old state or the new one.
//! - Every write is applied through the [`ApplyHook`], so the node can wake clients
//!   blocked on a key and flag WATCHers under the write's own slot locks.
//!
//! Snapshots and writes: openraft asks for a snapshot builder between two applies and
//! builds the snapshot in a background task while applies go on. The builder fixes its
//! consistent view when it is created, without copying: it starts a copy-on-write
//! snapshot of the keyspace ([`Keyspace::begin_snapshot`], O(slots): the slot versions and
//! a flag per slot), and a blocking task copies the slots one by one under each slot's
//! read lock. An apply that is about to change a slot not copied yet copies that slot
//! first (~1/16384 of the data), so the finished copy is exactly the state at `applied`
//! while applies go on. `build_snapshot` waits for the copy, encodes it off the runtime
//! and stores it. (The old synchronous clone stalled applies about 0.36 s per million
//! small strings; see docs/benchmarks.md for the measured stall now.)
//!
//! Log purge and a member still installing: openraft 0.9.25 does not hold the log purge
//! for a member receiving a snapshot (`progress/entry/mod.rs:78-87`: a snapshot in flight
//! never counts as using the log); a new snapshot purges up to its index minus
//! `max_in_snapshot_log_to_keep` (`engine/engine_impl.rs:566-580`). Safe (the member is
//! then sent the newer snapshot), but a transfer longer than one snapshot interval
//! repeats; docs/replication.md ("Log purge and a member still installing a snapshot").

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use parking_lot::Mutex;
use prism_engine::{Keyspace, Output, Write};

use crate::snapshot::{self, KeyspaceCopy};
use crate::snapshot_file;
use crate::types::{Entry, LogId, NodeId, Outputs, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use tokio::task::JoinHandle;

/// The last snapshot built or installed, kept to serve lagging replicas.
#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Bytes,
}

impl StoredSnapshot {
    fn to_snapshot(&self) -> Snapshot {
        Snapshot { meta: self.meta.clone(), snapshot: Box::new(std::io::Cursor::new(self.data.to_vec())) }
    }
}

/// The current snapshot, in memory and on disk. A build and an install can finish in
/// either order; the one covering less of the log never replaces the other.
struct SnapshotStore {
    dir: PathBuf,
    /// Held across a whole replacement (file write included), so replacements are
    /// serialized while `current` stays readable during the write.
    saving: Mutex<()>,
    current: Mutex<Option<StoredSnapshot>>,
}

impl SnapshotStore {
    /// Makes `stored` current, on disk first (blocking I/O: call off the runtime).
    fn replace(&self, stored: StoredSnapshot) -> io::Result<()> {
        let _saving = self.saving.lock();
        if self.current.lock().as_ref().is_some_and(|c| c.meta.last_log_id > stored.meta.last_log_id) {
            return Ok(());
        }
        snapshot_file::save(&self.dir, &stored.meta, &stored.data)?;
        *self.current.lock() = Some(stored);
        Ok(())
    }

    async fn replace_async(self: &Arc<Self>, stored: StoredSnapshot) -> Result<(), StorageError> {
        let signature = stored.meta.signature();
        let store = self.clone();
        let result = tokio::task::spawn_blocking(move || store.replace(stored)).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageIOError::<NodeId>::write_snapshot(Some(signature), &e).into()),
            Err(e) => Err(StorageIOError::<NodeId>::write_snapshot(Some(signature), &e).into()),
        }
    }
}

/// How a committed write reaches the keyspace: the node wraps the engine's apply with
/// what must happen under the write's locks (waking blocked clients, WATCH).
pub trait ApplyHook: Send + Sync + 'static {
    fn apply(&self, keyspace: &Keyspace, write: &Write) -> Output;
}

/// The engine's apply, nothing around it.
pub struct PlainApply;

impl ApplyHook for PlainApply {
    fn apply(&self, keyspace: &Keyspace, write: &Write) -> Output {
        keyspace.apply(write)
    }
}

/// Applies a shard group's committed entries to its keyspace.
pub struct KeyspaceStateMachine {
    keyspace: Arc<Keyspace>,
    hook: Arc<dyn ApplyHook>,
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshots: Arc<SnapshotStore>,
    /// Snapshots built by this state machine, to make snapshot ids unique.
    built: u64,
}

impl KeyspaceStateMachine {
    /// A state machine over `keyspace` (which must be empty), keeping its snapshot in
    /// `snapshot_dir`. If a snapshot was saved there, it is loaded: the keyspace then holds
    /// the log up to the snapshot's last log id, and openraft replays the rest.
    pub fn open(snapshot_dir: &Path, keyspace: Arc<Keyspace>) -> Result<KeyspaceStateMachine, StorageError> {
        let read_err = |e: &dyn std::fmt::Display| {
            StorageError::from(StorageIOError::<NodeId>::read_snapshot(None, AnyError::error(e.to_string())))
        };
        std::fs::create_dir_all(snapshot_dir).map_err(|e| read_err(&e))?;
        let mut sm = KeyspaceStateMachine {
            keyspace,
            hook: Arc::new(PlainApply),
            applied: None,
            membership: StoredMembership::default(),
            snapshots: Arc::new(SnapshotStore {
                dir: snapshot_dir.to_path_buf(),
                saving: Mutex::new(()),
                current: Mutex::new(None),
            }),
            built: 0,
        };
        if let Some((meta, data)) = snapshot_file::load(snapshot_dir).map_err(|e| read_err(&e))? {
            let keyspace = snapshot::decode(&data)
                .map_err(|e| read_err(&format!("snapshot in {}: {e}", snapshot_dir.display())))?;
            sm.keyspace.replace_with(keyspace);
            sm.applied = meta.last_log_id;
            sm.membership = meta.last_membership.clone();
            *sm.snapshots.current.lock() = Some(StoredSnapshot { meta, data });
        }
        Ok(sm)
    }

    /// Applies writes through `hook` from now on.
    pub fn with_hook(mut self, hook: Arc<dyn ApplyHook>) -> KeyspaceStateMachine {
        self.hook = hook;
        self
    }

    /// The keyspace the group applies to.
    pub fn keyspace(&self) -> Arc<Keyspace> {
        self.keyspace.clone()
    }

    /// The id of the last applied entry.
    pub fn applied(&self) -> Option<LogId> {
        self.applied
    }

    /// A handle on this state machine's current snapshot, for the node to read after the
    /// state machine moved into its group.
    pub fn snapshot_view(&self) -> SnapshotView {
        SnapshotView { store: self.snapshots.clone(), cached: Default::default() }
    }
}

/// What the node may read of the current snapshot (the last one built or installed).
#[derive(Clone)]
pub struct SnapshotView {
    store: Arc<SnapshotStore>,
    /// The last answer, by snapshot id: a snapshot is immutable, and reading its header
    /// checks the whole snapshot's checksum.
    cached: Arc<Mutex<Option<ColdObjectsOf>>>,
}

/// A snapshot's id and the cold objects it names.
type ColdObjectsOf = (String, Vec<String>);

impl SnapshotView {
    /// The cold objects the current snapshot's manifest names (none without a snapshot):
    /// a member restarting from it, or a lagging one installing it, starts from that
    /// manifest, so the cold-object GC keeps them. Reads the snapshot's header only.
    pub fn cold_objects(&self) -> Result<Vec<String>, String> {
        let Some((id, data)) = self.store.current.lock().as_ref().map(|s| (s.meta.snapshot_id.clone(), s.data.clone()))
        else {
            return Ok(Vec::new());
        };
        if let Some((cached_id, objects)) = &*self.cached.lock() {
            if *cached_id == id {
                return Ok(objects.clone());
            }
        }
        let image = snapshot::cold_manifest(&data).map_err(|e| format!("snapshot {id}: {e}"))?;
        let objects: Vec<String> = image.cold.into_iter().map(|(_, e)| e.object).collect();
        *self.cached.lock() = Some((id, objects.clone()));
        Ok(objects)
    }
}

/// Builds one snapshot from the copy-on-write copy started when it was created.
pub struct KeyspaceSnapshotBuilder {
    /// The background copy; taken by the first `build_snapshot`.
    copy: Option<JoinHandle<KeyspaceCopy>>,
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshot_id: String,
    snapshots: Arc<SnapshotStore>,
}

impl RaftSnapshotBuilder<TypeConfig> for KeyspaceSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: self.snapshot_id.clone(),
        };
        let write_err = |e: &dyn std::fmt::Display| {
            StorageError::from(StorageIOError::<NodeId>::write_snapshot(
                Some(meta.signature()),
                AnyError::error(e.to_string()),
            ))
        };
        let copy = self.copy.take().ok_or_else(|| write_err(&"snapshot builder used twice"))?;
        let copy = copy.await.map_err(|e| write_err(&e))?;
        let encoded = tokio::task::spawn_blocking(move || snapshot::encode(&copy)).await.map_err(|e| write_err(&e))?;
        let stored = StoredSnapshot { meta, data: Bytes::from(encoded) };
        let snapshot = stored.to_snapshot();
        // Durable before returning: openraft purges the log up to it afterwards.
        self.snapshots.replace_async(stored).await?;
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for KeyspaceStateMachine {
    type SnapshotBuilder = KeyspaceSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outputs>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let keyspace = &*self.keyspace;
        let mut replies = Vec::new();
        for entry in entries {
            let outputs = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(batch) => batch.iter().map(|w| self.hook.apply(keyspace, w)).collect(),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            };
            self.applied = Some(entry.log_id);
            replies.push(outputs);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.built += 1;
        let snapshot_id = match self.applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, self.built),
            None => format!("none-{}", self.built),
        };
        // No apply runs now (`&mut self`): this is the instant the snapshot is of.
        let snap = self.keyspace.begin_snapshot();
        let keyspace = self.keyspace.clone();
        let copy = tokio::task::spawn_blocking(move || KeyspaceCopy::from_image(snap.copy_rest(&keyspace)));
        KeyspaceSnapshotBuilder {
            copy: Some(copy),
            applied: self.applied,
            membership: self.membership.clone(),
            snapshot_id,
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<std::io::Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(std::io::Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<std::io::Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = Bytes::from(snapshot.into_inner());
        let bytes = data.clone();
        let decoded = tokio::task::spawn_blocking(move || snapshot::decode(&bytes))
            .await
            .map_err(|e| StorageIOError::<NodeId>::read_snapshot(Some(meta.signature()), &e))?
            .map_err(|e| {
                StorageIOError::<NodeId>::read_snapshot(
                    Some(meta.signature()),
                    AnyError::error(format!("snapshot {} is corrupt: {e}", meta.snapshot_id)),
                )
            })?;
        // On disk before the swap: once applied moves past the log, a restart needs it.
        self.snapshots.replace_async(StoredSnapshot { meta: meta.clone(), data }).await?;
        self.keyspace.replace_with(decoded);
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.snapshots.current.lock().as_ref().map(StoredSnapshot::to_snapshot))
    }
}
