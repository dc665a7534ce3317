//! `BACKUP SAVE <url> <name> [CREDENTIALS <file>] [KEYFILE <file>]`: this node writes its shard's part
//! of backup `name` into the object store at `url` and replies with the
//! [`ShardBackup`] as JSON (`prism backup create` calls it on every shard's leader).
//!
//! Steps: a copy-on-write snapshot of the keyspace (the engine's, the one Raft snapshots
//! use: every write is wholly in it or wholly out, and writes go on meanwhile); per-slot
//! digests of its rows in memory (hot slots, and cold slots' deltas); for every cold slot
//! its snapshot names, the object read (checksum verified), its rows digested but those
//! of keys the slot's delta decides (so the digests are of the slot as a load merges it),
//! and the object copied to the backup store unless that is the node's own cold store;
//! then the snapshot object. The manifest that makes the backup complete is written by
//! the caller, after every shard answered.
//!
//! Invariants: nothing here changes the keyspace or proposes anything; a failure
//! answers an error and leaves at most unreferenced objects under `name/` (no manifest
//! names them). The credentials file path is read by this node, never a secret in argv.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use prism_engine::tier::{self, ColdStore};
use prism_engine::Keyspace;
use prism_replication::snapshot::{self, KeyspaceCopy};

use super::crypt::BackupKey;
use super::{valid_name, ColdPart, Digests, ShardBackup};
use crate::cmd::{is, CmdError, Ctx};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "backup",
    arity: -2,
    flags: 0,
    keys: KeySpec::None,
    group: Group::Server,
    summary: "A container for backup commands (Prism).",
    since: "0.1.0",
    complexity: "Depends on subcommand.",
    handler: Handler::Container(&[CommandSpec {
        name: "save",
        arity: -4,
        flags: ADMIN | NO_MULTI,
        keys: KeySpec::None,
        group: Group::Server,
        summary: "Writes this node's shard of a backup into an object store (Prism).",
        since: "0.1.0",
        complexity: "O(N) where N is the number of keys, cold ones included.",
        handler: Handler::Direct(save),
    }]),
}];

/// Cold objects read and copied at once.
const COPIES: usize = 8;

/// The handler (module header).
pub fn save(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let plan = match plan(ctx, args) {
        Ok(p) => p,
        Err(e) => return ctx.fail(e),
    };
    ctx.conn.deferred = Some(Box::pin(async move {
        let result = plan.run().await;
        Box::new(move |out: &mut crate::resp::ReplyWriter| match result {
            Ok(json) => out.bulk(json.as_bytes()),
            Err(e) => out.error(&format!("ERR backup failed: {}", e.replace(['\r', '\n'], " "))),
        }) as crate::conn::DeferredReply
    }));
}

struct Plan {
    url: String,
    credentials: Option<PathBuf>,
    name: String,
    key: Option<Arc<BackupKey>>,
    keyspace: Arc<Keyspace>,
    cold: Option<ColdStore>,
    group: u32,
    node: String,
    gc: Arc<crate::cold_gc::ColdGc>,
}

fn plan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Plan, CmdError> {
    let text = |b: &Bytes, what: &str| {
        std::str::from_utf8(b).map(str::to_string).map_err(|_| CmdError::msg(format!("ERR {what} must be UTF-8")))
    };
    let url = text(&args[2], "the store URL")?;
    let name = text(&args[3], "the backup name")?;
    if !valid_name(&name) {
        return Err(CmdError::msg("ERR invalid backup name: use letters, digits, '.', '_' and '-' (at most 128)"));
    }
    let (mut credentials, mut key) = (None, None);
    let mut rest = args[4..].iter();
    while let Some(opt) = rest.next() {
        if is(opt, "credentials") {
            let path = rest.next().ok_or(CmdError::SYNTAX)?;
            credentials = Some(PathBuf::from(text(path, "the credentials path")?));
        } else if is(opt, "keyfile") {
            let path = PathBuf::from(text(rest.next().ok_or(CmdError::SYNTAX)?, "the key file path")?);
            key = Some(Arc::new(BackupKey::from_file(&path).map_err(|e| CmdError::msg(format!("ERR {e}")))?));
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let node = ctx.node;
    Ok(Plan {
        url,
        credentials,
        name,
        key,
        keyspace: node.keyspace.clone(),
        cold: node.tiering.store().cloned(),
        group: node.replica().map_or(0, |r| r.group_id),
        node: node.topology.load().myself().id.clone(),
        gc: node.cold_gc.clone(),
    })
}

impl Plan {
    async fn run(self) -> Result<String, String> {
        let target = ColdStore::open(&self.url, self.credentials.as_deref()).map_err(|e| e.to_string())?;
        let keyspace = self.keyspace.clone();
        // CPU work (copy, digest, encode) off the async runtime.
        let (mut digests, snap, hot_rows, cold) = tokio::task::spawn_blocking(move || {
            let image = keyspace.snapshot_now();
            let digests = Digests::of_image(&image);
            // A cold slot's table is its delta (tier::manifest): the keys it holds are
            // decided there, and the object's rows for them are not the slot's.
            let cold: Vec<(u16, String, HashSet<Bytes>)> = image
                .tier
                .cold
                .iter()
                .map(|(slot, entry)| {
                    let delta = image.slots[*slot as usize].iter().map(|(k, _)| k.clone()).collect();
                    (*slot, entry.object.clone(), delta)
                })
                .collect();
            let copy = KeyspaceCopy::from_image(image);
            let hot_rows = copy.len() as u64;
            (digests, Bytes::from(snapshot::encode(&copy)), hot_rows, cold)
        })
        .await
        .map_err(|e| e.to_string())?;
        // The objects the snapshot names stay until the part file below names them
        // (cold_gc.rs); pinned right after the image, while they were still referenced.
        let _pin = self.gc.pin(cold.iter().map(|(_, object, _)| object.clone()).collect());
        // Cold partitions: read (verified), digested and copied a few at a time.
        let results: Vec<Result<(ColdPart, Digests), String>> = futures::stream::iter(cold)
            .map(|(slot, object, delta)| self.cold_part(&target, slot, object, delta))
            .buffer_unordered(COPIES)
            .collect()
            .await;
        let mut parts = Vec::with_capacity(results.len());
        for r in results {
            let (part, d) = r?;
            digests.merge(&d);
            parts.push(part);
        }
        parts.sort_by_key(|p| p.slot);
        let stem = format!("{}/shard-{}-{}", self.name, self.group, &self.node[..self.node.len().min(12)]);
        let stored = match &self.key {
            None => target.put_ext(&stem, "snap", snap).await,
            Some(k) => {
                let key = k.clone();
                let sealed =
                    tokio::task::spawn_blocking(move || key.seal(&snap)).await.map_err(|e| e.to_string())??;
                target.put_ext(&stem, "enc", sealed).await
            }
        }
        .map_err(|e| e.to_string())?;
        let node12 = self.node[..self.node.len().min(12)].to_string();
        let part = ShardBackup {
            group: self.group,
            node: self.node,
            snapshot: stored.key,
            hot_rows,
            cold: parts,
            slots: digests.to_list(),
            key_id: self.key.as_ref().map(|k| k.id().to_string()),
        };
        let json = serde_json::to_string(&part).map_err(|e| e.to_string())?;
        // Objects reused in place are referenced from the store itself until the CLI
        // writes `backup.json` (and after, while the backup exists): the cold-object GC
        // reads both (cold_gc.rs).
        if part.cold.iter().any(|c| c.shared) {
            let key = format!("{}/part-{}-{node12}.json", self.name, self.group);
            target.put_raw(&key, Bytes::from(json.clone())).await.map_err(|e| e.to_string())?;
        }
        Ok(json)
    }

    /// One cold slot's object: read and verified, its rows digested (but those of keys
    /// the slot's `delta` holds: the snapshot's digests have those), copied to `target`
    /// unless that is the node's own cold store.
    async fn cold_part(
        &self,
        target: &ColdStore,
        slot: u16,
        object: String,
        delta: HashSet<Bytes>,
    ) -> Result<(ColdPart, Digests), String> {
        let store = self.cold.as_ref().ok_or("a cold slot but no cold store")?;
        let bytes = store.get(&object).await.map_err(|e| e.to_string())?;
        // Encrypted backups copy (and seal) every object: the cold store's are plain.
        let shared = store.url() == target.url() && self.key.is_none();
        let rows_bytes = bytes.clone();
        let (digests, rows) = tokio::task::spawn_blocking(move || -> Result<(Digests, u64), String> {
            let partition = tier::format::decode(rows_bytes).map_err(|e| e.to_string())?;
            if partition.slot.get() != slot {
                return Err(format!("the object for slot {slot} holds slot {}", partition.slot.get()));
            }
            let mut d = Digests::default();
            for row in partition.rows.iter().filter(|r| !delta.contains(&r.key)) {
                d.add(slot, &row.key, row.expire_at, &row.payload);
            }
            Ok((d, partition.rows.len() as u64))
        })
        .await
        .map_err(|e| e.to_string())??;
        let object = match (&self.key, shared) {
            (_, true) => object,
            (None, false) => {
                let key = format!("{}/cold/{object}", self.name);
                target.put_raw(&key, bytes).await.map_err(|e| e.to_string())?;
                key
            }
            (Some(k), false) => {
                let k = k.clone();
                let sealed = tokio::task::spawn_blocking(move || k.seal(&bytes)).await.map_err(|e| e.to_string())??;
                let stem = format!("{}/cold/slot-{slot:05}", self.name);
                target.put_ext(&stem, "enc", sealed).await.map_err(|e| e.to_string())?.key
            }
        };
        Ok((ColdPart { slot, object, rows, shared }, digests))
    }
}
