//! Reading a backup back: the manifest, and each shard materialized into a scratch
//! keyspace (the engine a node runs on) with its cold partitions loaded, by the same
//! code paths a node uses (snapshot install, `TierOp::Loaded`). `verify` digests what
//! this builds; `restore` sends it to a cluster.
//!
//! Invariant: every object is checked before use (its name's length and CRC-32C, then
//! the snapshot's own checksum and record count, then every row of every partition);
//! anything wrong is an error naming the object, never a partial keyspace.

use bytes::Bytes;
use prism_engine::tier::manifest::TierOp;
use prism_engine::tier::{self, ColdStore};
use prism_engine::{Keyspace, Op, Output, Write};
use prism_replication::snapshot;

use super::crypt::BackupKey;
use super::{BackupManifest, Digests, ShardBackup, FORMAT};

/// Splits a backup URL into the store and the backup's name (its last path segment):
/// `s3://bucket/prefix/nightly` is backup `nightly` in `s3://bucket/prefix`.
pub fn split_url(url: &str) -> Result<(String, String), String> {
    let trimmed = url.trim_end_matches('/');
    let (store, name) = trimmed
        .rsplit_once('/')
        .ok_or_else(|| format!("{url:?}: name the backup, e.g. /backups/nightly or s3://bucket/nightly"))?;
    let root = store.is_empty() || store.ends_with(':') || store.ends_with("://") || store.ends_with(":/");
    if !super::valid_name(name) || (root && !trimmed.starts_with('/')) {
        return Err(format!("{url:?}: the last path segment is the backup's name (letters, digits, '.', '_', '-')"));
    }
    Ok((if store.is_empty() { "/".to_string() } else { store.to_string() }, name.to_string()))
}

/// The manifest of backup `name`.
pub async fn manifest(store: &ColdStore, name: &str) -> Result<BackupManifest, String> {
    let key = format!("{name}/backup.json");
    let bytes = store.get_raw(&key).await.map_err(|e| format!("{e} (an incomplete or missing backup)"))?;
    let m: BackupManifest = serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}"))?;
    if m.format != FORMAT {
        return Err(format!("{key}: format {} (this build reads {FORMAT})", m.format));
    }
    Ok(m)
}

/// What materializing one shard found.
pub struct Shard {
    pub keyspace: Keyspace,
    pub digests: Digests,
    /// Bytes read from the store.
    pub bytes: u64,
}

/// Fetches an object (verified by its name) and opens it when the shard is encrypted.
async fn fetch(store: &ColdStore, part: &ShardBackup, key: Option<&BackupKey>, object: &str) -> Result<Bytes, String> {
    let bytes = store.get(object).await.map_err(|e| e.to_string())?;
    let Some(id) = &part.key_id else { return Ok(bytes) };
    let key = key.ok_or_else(|| format!("{object}: the backup is encrypted (key id {id}): give --key-file"))?;
    if key.id() != id {
        return Err(format!("{object}: encrypted with key id {id}; the key file holds key id {}", key.id()));
    }
    key.open(&bytes).map_err(|e| format!("{object}: {e}"))
}

/// Builds `part` into a fresh keyspace, checking every object and the row counts the
/// manifest records, and digests the result. `key` opens an encrypted shard.
pub async fn materialize(store: &ColdStore, part: &ShardBackup, key: Option<&BackupKey>) -> Result<Shard, String> {
    let snap = fetch(store, part, key, &part.snapshot).await?;
    let mut bytes = snap.len() as u64;
    let name = part.snapshot.clone();
    let keyspace = tokio::task::spawn_blocking(move || snapshot::decode(&snap))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{name}: {e}"))?;
    if keyspace.key_count() != part.hot_rows {
        return Err(format!("{}: {} rows, the manifest says {}", part.snapshot, keyspace.key_count(), part.hot_rows));
    }
    for cold in &part.cold {
        let object = fetch(store, part, key, &cold.object).await?;
        bytes += object.len() as u64;
        let partition = tokio::task::spawn_blocking(move || tier::format::decode(object))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{}: {e}", cold.object))?;
        if partition.slot.get() != cold.slot || partition.rows.len() as u64 != cold.rows {
            return Err(format!(
                "{}: slot {} with {} rows, the manifest says slot {} with {}",
                cold.object,
                partition.slot.get(),
                partition.rows.len(),
                cold.slot,
                cold.rows
            ));
        }
        // The snapshot's manifest names the node's own object key; a copied object sits
        // under `<name>/cold/` in the backup store.
        let original = keyspace
            .tier
            .entry(cold.slot)
            .map(|e| e.object)
            .ok_or_else(|| format!("{}: slot {} is not cold in the shard snapshot", cold.object, cold.slot))?;
        let rows = partition.rows.into_iter().map(|r| (r.key, r.expire_at, r.payload)).collect();
        let op = Op::Tier(TierOp::Loaded { slot: cold.slot, object: original, rows });
        match keyspace.apply(&Write { now_ms: 0, op }) {
            Output::Int(1) => {}
            Output::Err(e) => return Err(format!("{}: {e}", cold.object)),
            other => return Err(format!("{}: not loaded ({other:?})", cold.object)),
        }
    }
    let (keyspace, digests) = tokio::task::spawn_blocking(move || {
        let digests = digest(&keyspace);
        (keyspace, digests)
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(Shard { keyspace, digests, bytes })
}

/// The per-slot digests of every row of `keyspace` (hot rows only: load cold ones first).
pub fn digest(keyspace: &Keyspace) -> Digests {
    Digests::of_image(&keyspace.snapshot_now())
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls() {
        let ok = |u: &str, s: &str, n: &str| assert_eq!(split_url(u).unwrap(), (s.to_string(), n.to_string()), "{u}");
        ok("/backups/nightly", "/backups", "nightly");
        ok("/backups/nightly/", "/backups", "nightly");
        ok("file:///var/b/n1", "file:///var/b", "n1");
        ok("s3://bucket/prefix/n1", "s3://bucket/prefix", "n1");
        ok("s3://bucket/n1", "s3://bucket", "n1");
        ok("/n1", "/", "n1");
        for bad in ["nightly", "s3://bucket", "/backups/a b", "file:///"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
