//! Garbage collection of cold objects: deletes the objects of this shard's slots that
//! nothing references any more (an object left by a load that made its slot hot, by a
//! FLUSHALL, by a spill whose proposal failed with an unknown outcome), after they have
//! stayed unreferenced for `cold-gc-retention` seconds.
//!
//! What references an object (any one keeps it):
//! - the live manifest (`prism_engine::tier::manifest`, replicated: every member names
//!   the same objects);
//! - this member's current Raft snapshot (a restart, or a lagging member installing it,
//!   starts from its manifest): read from the snapshot's header;
//! - a backup in the same store that reuses it in place: `shared` cold parts of every
//!   `<name>/backup.json`, and of every `<name>/part-*.json` a `BACKUP SAVE` writes
//!   before its CLI writes the manifest (so an unfinished backup keeps its objects too);
//! - a pin held in this process: a spill between its put and its proposal's verdict, a
//!   `BACKUP SAVE` between its snapshot and its part file.
//!
//! Invariants:
//! - Only the shard's leader (or a standalone node) collects, and only objects under
//!   `slot-<n>/` for slots it owns and is not moving: a shared store holds other shards'
//!   objects, which their own leaders judge.
//! - Nothing is deleted on a single observation: an object must be unreferenced at a
//!   sweep and still at a sweep at least the retention later (seen referenced in
//!   between, it starts again). A node that starts leading starts with no candidates, so
//!   an in-flight proposal or backup of a former leader has the whole retention to land.
//!   The retention must exceed the longest spill proposal and the longest `backup
//!   create` (docs/tiering.md).
//! - A sweep that cannot read every reference (a backup manifest that does not parse,
//!   a corrupt snapshot, a store error) deletes nothing.
//! - The references are read after the listing: an object stored after the listing is
//!   not a candidate this sweep, and one referenced by then is kept.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prism_engine::shard_meta::Serving;
use tokio::sync::{mpsc, watch};

use crate::backup::{BackupManifest, ShardBackup};
use crate::node::Node;

/// The collector's state on a node (INFO `tiering` shows the counters).
#[derive(Default)]
pub struct ColdGc {
    /// Object key -> when a sweep first found it unreferenced.
    candidates: Mutex<HashMap<String, Instant>>,
    /// Pinned key prefixes (a spill's stem, a backup's object keys) -> holders.
    pins: Mutex<HashMap<String, usize>>,
    pub sweeps: AtomicU64,
    pub deleted_objects: AtomicU64,
    pub deleted_bytes: AtomicU64,
    pub failures: AtomicU64,
}

/// Keeps every object whose key starts with one of its prefixes until dropped.
pub struct Pin {
    gc: Arc<ColdGc>,
    prefixes: Vec<String>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pins = self.gc.pins.lock();
        for p in &self.prefixes {
            if let Some(n) = pins.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(p);
                }
            }
        }
    }
}

impl ColdGc {
    /// Pins `prefixes` (object keys, or a spill's stem) until the pin is dropped.
    pub fn pin(self: &Arc<Self>, prefixes: Vec<String>) -> Pin {
        let mut pins = self.pins.lock();
        for p in &prefixes {
            *pins.entry(p.clone()).or_default() += 1;
        }
        drop(pins);
        Pin { gc: self.clone(), prefixes }
    }

    /// Objects waiting out the retention.
    pub fn candidates(&self) -> usize {
        self.candidates.lock().len()
    }

    fn pinned(&self, key: &str) -> bool {
        self.pins.lock().keys().any(|p| key.starts_with(p.as_str()))
    }
}

/// What one sweep saw and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Objects of this shard's slots in the store.
    pub objects: usize,
    /// Of those, unreferenced and waiting out the retention.
    pub candidates: usize,
    pub deleted: usize,
    pub deleted_bytes: u64,
}

/// The collector task: a sweep every quarter of the retention (1 s to 60 s apart) while
/// this node leads (or is standalone) and has a store; stops when `stop` changes.
pub async fn collector(node: Arc<Node>, mut stop: watch::Receiver<bool>, _done: mpsc::Sender<()>) {
    loop {
        let retention = Duration::from_secs(node.config.read().cold_gc_retention);
        let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if node.tiering.store().is_none() {
            continue;
        }
        if node.replica().is_some_and(|r| !r.is_leader()) {
            // Judgements made while leading are not carried into a later term.
            node.cold_gc.candidates.lock().clear();
            continue;
        }
        if let Err(e) = sweep(&node, retention).await {
            node.cold_gc.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("cold object GC: {e}; nothing deleted this sweep");
        }
    }
}

/// One sweep (module header).
pub async fn sweep(node: &Node, retention: Duration) -> Result<Sweep, String> {
    let Some(store) = node.tiering.store() else { return Ok(Sweep::default()) };
    let listed = store.list_names("").await.map_err(|e| e.to_string())?;
    let ks = &node.keyspace;
    let objects: Vec<(&str, u64)> = listed
        .iter()
        .filter_map(|(key, size)| Some((key.as_str(), *size, slot_of(key)?)))
        .filter(|&(_, _, slot)| ks.meta.serving(slot) == Serving::Owned)
        .map(|(key, size, _)| (key, size))
        .collect();

    // References, read after the listing.
    let mut refs: HashSet<String> = ks.tier.image().cold.into_iter().map(|(_, e)| e.object).collect();
    if let Some(r) = node.replica() {
        refs.extend(r.snapshot.cold_objects()?);
    }
    for (key, _) in listed.iter().filter(|(k, _)| is_backup_manifest(k)) {
        let bytes = store.get_raw(key).await.map_err(|e| e.to_string())?;
        refs.extend(shared_parts(key, &bytes)?);
    }

    let now = Instant::now();
    let mut due = Vec::new();
    {
        let mut candidates = node.cold_gc.candidates.lock();
        let mut unreferenced = HashMap::with_capacity(candidates.len());
        for &(key, size) in &objects {
            if refs.contains(key) || node.cold_gc.pinned(key) {
                continue;
            }
            let since = candidates.get(key).copied().unwrap_or(now);
            unreferenced.insert(key.to_string(), since);
            if now.duration_since(since) >= retention {
                due.push((key.to_string(), size));
            }
        }
        // Objects referenced again, or gone, are forgotten.
        *candidates = unreferenced;
    }

    let mut sweep = Sweep { objects: objects.len(), ..Sweep::default() };
    for (key, size) in due {
        // The live manifest and the pins once more, right before deleting.
        let live = slot_of(&key).and_then(|s| ks.tier.entry(s)).is_some_and(|e| e.object == key);
        if live || node.cold_gc.pinned(&key) {
            node.cold_gc.candidates.lock().remove(&key);
            continue;
        }
        store.delete(&key).await.map_err(|e| e.to_string())?;
        node.cold_gc.candidates.lock().remove(&key);
        sweep.deleted += 1;
        sweep.deleted_bytes += size;
        node.cold_gc.deleted_objects.fetch_add(1, Ordering::Relaxed);
        node.cold_gc.deleted_bytes.fetch_add(size, Ordering::Relaxed);
        tracing::info!(object = %key, bytes = size, "cold object GC: deleted an unreferenced object");
    }
    sweep.candidates = node.cold_gc.candidates.lock().len();
    node.cold_gc.sweeps.fetch_add(1, Ordering::Relaxed);
    Ok(sweep)
}

/// The slot of a cold partition object (`slot-<5 digits>/...`, tier.rs names them).
fn slot_of(key: &str) -> Option<u16> {
    let rest = key.strip_prefix("slot-")?;
    let (digits, name) = rest.split_once('/')?;
    let slot: u16 = digits.parse().ok().filter(|&s| (s as usize) < prism_engine::SLOT_COUNT)?;
    prism_engine::tier::ObjectRef::parse(key).filter(|_| !name.contains('/'))?;
    Some(slot)
}

fn is_backup_manifest(key: &str) -> bool {
    key.rsplit_once('/')
        .is_some_and(|(_, file)| file == "backup.json" || (file.starts_with("part-") && file.ends_with(".json")))
}

/// The cold objects a backup manifest (or a shard's part file) reuses in place.
fn shared_parts(key: &str, bytes: &[u8]) -> Result<Vec<String>, String> {
    let shards = if key.ends_with("/backup.json") {
        serde_json::from_slice::<BackupManifest>(bytes).map_err(|e| format!("{key}: {e}"))?.shards
    } else {
        vec![serde_json::from_slice::<ShardBackup>(bytes).map_err(|e| format!("{key}: {e}"))?]
    };
    Ok(shards.into_iter().flat_map(|s| s.cold).filter(|c| c.shared).map(|c| c.object).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        let key = prism_engine::tier::ObjectRef::for_bytes("slot-00042/v7-abcdef012345", b"x").key;
        assert_eq!(slot_of(&key), Some(42));
        assert_eq!(slot_of("slot-16384/v1-a.1.00000000.arrow"), None);
        assert_eq!(slot_of("nightly/cold/slot-00042/v1-a.1.00000000.arrow"), None);
        assert_eq!(slot_of("slot-00042/readme.txt"), None);
        assert!(is_backup_manifest("nightly/backup.json"));
        assert!(is_backup_manifest("nightly/part-3-1f.json"));
        assert!(!is_backup_manifest("backup.json.tmp"));
        assert!(!is_backup_manifest("nightly/cold/slot-00001/x.json"));
    }

    #[test]
    fn a_manifest_that_does_not_parse_is_an_error() {
        assert!(shared_parts("n/backup.json", b"{not json").is_err());
        assert!(shared_parts("n/part-1-a.json", b"[]").is_err());
    }
}
