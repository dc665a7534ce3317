//! Copying a finished backup to another object store (`prism backup copy`, and `prism
//! backup create --copy-to`): the second store of issue 7.
//!
//! What the copy is: every object the source manifest names, under the destination
//! backup's name, and a rewritten manifest. Keys under `<src name>/` keep their path
//! after the new name; a cold part the source references in place (`shared`, the
//! node's own cold object) is copied to `<dst name>/cold/<object key>` and marked not
//! shared, so a copy never depends on a node's cold store. Object file names (and so
//! their length and CRC-32C) are unchanged. Encrypted objects are copied as they are
//! (ciphertext; no key needed) and the manifest keeps their key id, so the copy opens
//! with the same key.
//!
//! Invariants:
//! - Every object is read through [`ColdStore::get`], which checks its length and
//!   CRC-32C against its name (the check `verify` starts with), before it is written: a
//!   corrupt object stops the copy with an error naming it, and is never written.
//! - `backup.json` is written last, after every object it names is stored, so a copy
//!   that stopped halfway is an unfinished backup (`verify` and `restore` refuse it),
//!   never a valid one that lacks objects.
//! - An object already at the destination under its key, with the size its name says
//!   and bytes that pass the same check, is skipped: a rerun after an interruption
//!   resumes. One that fails the check is copied again over it.
//! - A destination that already holds a manifest under the name is refused unless it
//!   is exactly the manifest this copy would write (then the copy only checks the
//!   objects); nothing is written before that check.
//! - At most [`COPIES`] objects are in flight (memory: their bytes).

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use prism_engine::tier::{ColdStore, ObjectRef, StoreError};

use super::{read, BackupManifest, Digests};

/// Objects read and written at once (as `BACKUP SAVE` copies cold partitions).
pub const COPIES: usize = 8;

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Before anything was written: a missing or unfinished source, an unreachable
    /// destination, a destination holding another backup under the name.
    #[error("{0}")]
    Refused(String),
    /// While copying: a corrupt source object, a failed write. No manifest was written.
    #[error("{0}")]
    Failed(String),
}

/// One end of a copy: a store and a backup name in it.
pub struct End<'a> {
    pub store: &'a ColdStore,
    pub name: &'a str,
}

impl End<'_> {
    fn describe(&self) -> String {
        format!("{}/{}", self.store.url().trim_end_matches('/'), self.name)
    }

    fn manifest_key(&self) -> String {
        format!("{}/backup.json", self.name)
    }
}

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopySummary {
    /// Objects the manifest names (the manifest itself not counted).
    pub objects: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    /// Objects already at the destination, checked and left as they were.
    pub skipped: u64,
    pub skipped_bytes: u64,
    /// True when the destination already held this very manifest.
    pub already_complete: bool,
}

/// The manifest a copy named `dst_name` writes, and (source key, destination key) for
/// every object it names (module header).
pub fn rename(src: &BackupManifest, dst_name: &str) -> (BackupManifest, Vec<(String, String)>) {
    let mut out = src.clone();
    out.name = dst_name.to_string();
    let mut objects = BTreeMap::new();
    let moved = |key: &str| match key.strip_prefix(&format!("{}/", src.name)) {
        Some(rest) => format!("{dst_name}/{rest}"),
        None => format!("{dst_name}/cold/{key}"),
    };
    for shard in &mut out.shards {
        let to = moved(&shard.snapshot);
        objects.insert(std::mem::replace(&mut shard.snapshot, to.clone()), to);
        for cold in &mut shard.cold {
            let to = moved(&cold.object);
            objects.insert(std::mem::replace(&mut cold.object, to.clone()), to);
            cold.shared = false;
        }
    }
    (out, objects.into_iter().collect())
}

/// Checks the destination before anything is written: reachable, and free of any other
/// backup under the name. `Ok(true)` when it already holds `planned` exactly.
pub async fn check_destination(dst: &End<'_>, planned: Option<&BackupManifest>) -> Result<bool, CopyError> {
    let key = dst.manifest_key();
    let found = match dst.store.get_raw(&key).await {
        Ok(bytes) => bytes,
        Err(StoreError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(CopyError::Refused(format!("destination {}: {e}", dst.describe()))),
    };
    let same = planned.is_some_and(|p| {
        let theirs = serde_json::from_slice::<serde_json::Value>(&found).ok();
        theirs.is_some() && theirs == serde_json::to_value(p).ok()
    });
    if same {
        return Ok(true);
    }
    Err(CopyError::Refused(format!(
        "destination {} already holds a different backup under that name: refusing to overwrite it \
         (choose another name, or delete that backup first)",
        dst.describe()
    )))
}

/// What a copy reports as it goes (for a progress bar).
pub enum Progress<'a> {
    /// Once, when the source manifest is read and the destination checked.
    Planned { objects: u64, bytes: u64 },
    /// Per object as it finishes (copied or skipped): its destination key and size.
    Done { key: &'a str, bytes: u64 },
}

/// Copies backup `src` to `dst` (module header), telling `progress` as it goes.
pub async fn copy(src: &End<'_>, dst: &End<'_>, progress: &dyn Fn(Progress<'_>)) -> Result<CopySummary, CopyError> {
    if src.store.url() == dst.store.url() && src.name == dst.name {
        return Err(CopyError::Refused(format!("{} is both the source and the destination", src.describe())));
    }
    let manifest = read::manifest(src.store, src.name)
        .await
        .map_err(|e| CopyError::Refused(format!("source backup {}: {e}", src.describe())))?;
    for shard in &manifest.shards {
        Digests::default()
            .merge_list(&shard.slots)
            .map_err(|e| CopyError::Failed(format!("{}: {e}", src.manifest_key())))?;
    }
    let (planned, objects) = rename(&manifest, dst.name);
    let already_complete = check_destination(dst, Some(&planned)).await?;
    let present: HashMap<String, u64> = dst
        .store
        .list_names(&format!("{}/", dst.name))
        .await
        .map_err(|e| CopyError::Refused(format!("destination {}: {e}", dst.describe())))?
        .into_iter()
        .collect();
    let mut summary = CopySummary { objects: objects.len() as u64, already_complete, ..Default::default() };
    let bytes = objects.iter().filter_map(|(from, _)| ObjectRef::parse(from)).map(|o| o.len).sum();
    progress(Progress::Planned { objects: summary.objects, bytes });
    let mut done = futures::stream::iter(objects)
        .map(|(from, to)| {
            let size = present.get(&to).copied();
            async move { copy_one(src, dst, &from, &to, size).await.map(|r| (to, r)) }
        })
        .buffer_unordered(COPIES);
    // The first error stops the copy; dropping the stream cancels what is in flight.
    while let Some(result) = done.next().await {
        let (key, outcome) = result?;
        match outcome {
            Outcome::Copied(n) => {
                (summary.copied, summary.copied_bytes) = (summary.copied + 1, summary.copied_bytes + n)
            }
            Outcome::Skipped(n) => {
                (summary.skipped, summary.skipped_bytes) = (summary.skipped + 1, summary.skipped_bytes + n)
            }
        }
        progress(Progress::Done { key: &key, bytes: outcome.bytes() });
    }
    drop(done);
    if !already_complete {
        let json = serde_json::to_vec_pretty(&planned).map_err(|e| CopyError::Failed(e.to_string()))?;
        dst.store
            .put_raw(&dst.manifest_key(), json.into())
            .await
            .map_err(|e| CopyError::Failed(format!("destination {}: {e}", dst.describe())))?;
    }
    Ok(summary)
}

enum Outcome {
    Copied(u64),
    Skipped(u64),
}

impl Outcome {
    fn bytes(&self) -> u64 {
        match self {
            Outcome::Copied(n) | Outcome::Skipped(n) => *n,
        }
    }
}

/// One object: skipped when `present_size` (its size at the destination, if listed)
/// matches its name and its bytes there pass the check; otherwise read (checked) from
/// the source and written.
async fn copy_one(
    src: &End<'_>,
    dst: &End<'_>,
    from: &str,
    to: &str,
    present_size: Option<u64>,
) -> Result<Outcome, CopyError> {
    let named = ObjectRef::parse(from)
        .ok_or_else(|| CopyError::Failed(format!("{}: {:?} is not a backup object name", src.manifest_key(), from)))?;
    if present_size == Some(named.len) {
        match dst.store.get(to).await {
            Ok(_) => return Ok(Outcome::Skipped(named.len)),
            // A damaged earlier copy: written again below.
            Err(StoreError::Checksum { .. }) => {}
            Err(e) => return Err(CopyError::Failed(format!("destination {}: {e}", dst.describe()))),
        }
    }
    let bytes = src.store.get(from).await.map_err(|e| {
        CopyError::Failed(format!("source backup {}: {e}; the copy stopped and wrote no manifest", src.describe()))
    })?;
    let len = bytes.len() as u64;
    dst.store
        .put_raw(to, bytes)
        .await
        .map_err(|e| CopyError::Failed(format!("destination {}: {e}", dst.describe())))?;
    Ok(Outcome::Copied(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{ColdPart, ShardBackup, FORMAT};

    fn manifest() -> BackupManifest {
        BackupManifest {
            format: FORMAT,
            name: "n1".into(),
            created_ms: 7,
            shards: vec![ShardBackup {
                group: 0,
                node: "abc".into(),
                snapshot: "n1/shard-0-abc.10.0000000a.snap".into(),
                hot_rows: 1,
                cold: vec![
                    ColdPart { slot: 1, object: "slot-00001/p.5.00000001.arrow".into(), rows: 2, shared: true },
                    ColdPart {
                        slot: 2,
                        object: "n1/cold/slot-00002/q.6.00000002.arrow".into(),
                        rows: 3,
                        shared: false,
                    },
                ],
                slots: vec![],
                key_id: Some("k".into()),
            }],
        }
    }

    #[test]
    fn a_copy_renames_keys_and_copies_shared_objects() {
        let (m, objects) = rename(&manifest(), "n2");
        assert_eq!(m.name, "n2");
        assert_eq!(m.shards[0].snapshot, "n2/shard-0-abc.10.0000000a.snap");
        assert_eq!(m.shards[0].cold[0].object, "n2/cold/slot-00001/p.5.00000001.arrow");
        assert_eq!(m.shards[0].cold[1].object, "n2/cold/slot-00002/q.6.00000002.arrow");
        assert!(m.shards[0].cold.iter().all(|c| !c.shared), "a copy shares nothing");
        assert_eq!(m.shards[0].key_id.as_deref(), Some("k"), "encrypted parts keep their key id");
        assert_eq!(objects.len(), 3);
        assert!(objects.contains(&("slot-00001/p.5.00000001.arrow".into(), m.shards[0].cold[0].object.clone())));
    }

    #[tokio::test]
    async fn copies_resume_refuse_other_backups_and_stop_on_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) =
            (ColdStore::local(&dir.path().join("a")).unwrap(), ColdStore::local(&dir.path().join("b")).unwrap());
        let snap = a.put_ext("n1/shard-0-abc", "snap", "snapshot".into()).await.unwrap();
        let cold = a.put("n1/cold/slot-00002/q", "partition".into()).await.unwrap();
        let mut m = manifest();
        m.shards[0].snapshot = snap.key.clone();
        m.shards[0].cold = vec![ColdPart { slot: 2, object: cold.key.clone(), rows: 3, shared: false }];
        a.put_raw("n1/backup.json", serde_json::to_vec(&m).unwrap().into()).await.unwrap();
        let (src, dst) = (End { store: &a, name: "n1" }, End { store: &b, name: "n1" });

        let first = copy(&src, &dst, &|_| {}).await.unwrap();
        assert_eq!((first.copied, first.skipped, first.already_complete), (2, 0, false));
        assert_eq!(read::manifest(&b, "n1").await.unwrap().shards[0].snapshot, snap.key);
        let again = copy(&src, &dst, &|_| {}).await.unwrap();
        assert_eq!((again.copied, again.skipped, again.already_complete), (0, 2, true));

        // Another backup under the name at the destination is refused, and kept.
        let other = End { store: &b, name: "other" };
        b.put_raw("other/backup.json", b"{}".to_vec().into()).await.unwrap();
        assert!(matches!(copy(&src, &other, &|_| {}).await, Err(CopyError::Refused(e)) if e.contains("different")));
        assert_eq!(&b.get_raw("other/backup.json").await.unwrap()[..], b"{}");

        // A corrupt source object stops the copy, names the object, leaves no manifest.
        a.put_raw(&cold.key, "partitiom".into()).await.unwrap();
        let third = End { store: &b, name: "n3" };
        match copy(&src, &third, &|_| {}).await {
            Err(CopyError::Failed(e)) => assert!(e.contains(&cold.key), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(b.get_raw("n3/backup.json").await.is_err());
        // Same store and name; a missing source.
        assert!(matches!(copy(&src, &End { store: &a, name: "n1" }, &|_| {}).await, Err(CopyError::Refused(_))));
        let missing = End { store: &a, name: "nope" };
        assert!(matches!(copy(&missing, &third, &|_| {}).await, Err(CopyError::Refused(_))));
    }
}
