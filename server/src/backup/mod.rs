//! Backups: what a backup is made of, and the per-slot digests that prove a restore.
//!
//! A backup named `N` in an object store (any `cold-store` URL: a directory or
//! `s3://bucket/prefix`) holds:
//! - `N/shard-<group>-<node>.<len>.<crc32c>.snap`: one shard's keyspace at one instant,
//!   in the shard snapshot format (`prism_replication::snapshot`), self-verifying by name;
//! - the cold partitions that snapshot's manifest names: copied to
//!   `N/cold/<object key>` when the backup store is another store than the node's cold
//!   store, referenced in place when it is the same store (cold objects are immutable and
//!   never deleted while referenced: docs/tiering.md);
//! - `N/backup.json`: the [`BackupManifest`], written last, after every object it names
//!   is stored, so a backup with a manifest is complete (invariant 3 of the design, for
//!   backups). A backup without one is an unfinished attempt.
//!
//! Digests: a row's digest is SHA-256 over its key, deadline and DUMP payload; a slot's
//! digest is the XOR of its rows' digests, so it does not depend on table order or on
//! which shard held which rows, and slots held by several shards (mid-migration)
//! combine by XOR as well. Two keyspaces with equal digests and row counts in every
//! slot hold the same keys, values and deadlines.
//!
//! Where the work happens: [`save`] (the node side, `BACKUP SAVE`), [`read`] (a shard
//! of a backup back into a scratch keyspace), [`copy`] (a finished backup into another
//! store), and the binary's `backup_cli` (`prism backup create|verify|restore|copy`).

pub mod copy;
pub mod crypt;
pub mod read;
pub mod save;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// `N/backup.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: u32,
    pub name: String,
    /// Milliseconds since the epoch when `create` started.
    pub created_ms: u64,
    pub shards: Vec<ShardBackup>,
}

/// One shard's part of a backup, as the node that saved it describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardBackup {
    /// The shard group (0: a standalone node).
    pub group: u32,
    /// The node that saved it (its cluster node id).
    pub node: String,
    /// The snapshot object's key in the backup store.
    pub snapshot: String,
    /// Hot rows in the snapshot.
    pub hot_rows: u64,
    pub cold: Vec<ColdPart>,
    /// Every non-empty slot the shard held, hot and cold rows together.
    pub slots: Vec<SlotDigest>,
    /// Set when the shard's objects are encrypted (`crypt`): the key's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// A cold partition of a shard backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColdPart {
    pub slot: u16,
    /// The object's key in the backup store.
    pub object: String,
    pub rows: u64,
    /// True when the object is the node's own cold object, referenced in place.
    pub shared: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotDigest {
    pub slot: u16,
    pub rows: u64,
    /// Hex SHA-256 XOR (module header).
    pub digest: String,
}

/// Per-slot digests being accumulated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Digests {
    slots: BTreeMap<u16, (u64, [u8; 32])>,
}

impl Digests {
    /// Adds one row of `slot`.
    pub fn add(&mut self, slot: u16, key: &[u8], expire_at: u64, payload: &[u8]) {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&(key.len() as u64).to_be_bytes());
        ctx.update(key);
        ctx.update(&expire_at.to_be_bytes());
        ctx.update(payload);
        let d = ctx.finish();
        self.xor(slot, 1, d.as_ref());
    }

    fn xor(&mut self, slot: u16, rows: u64, digest: &[u8]) {
        let (count, acc) = self.slots.entry(slot).or_insert((0, [0; 32]));
        *count += rows;
        acc.iter_mut().zip(digest).for_each(|(a, b)| *a ^= b);
    }

    /// Folds another set in (slot by slot).
    pub fn merge(&mut self, other: &Digests) {
        for (slot, (rows, d)) in &other.slots {
            self.xor(*slot, *rows, d);
        }
    }

    /// Folds in a manifest's list; `Err` names a malformed digest.
    pub fn merge_list(&mut self, list: &[SlotDigest]) -> Result<(), String> {
        for s in list {
            let d = unhex(&s.digest).ok_or_else(|| format!("slot {}: malformed digest {:?}", s.slot, s.digest))?;
            self.xor(s.slot, s.rows, &d);
        }
        Ok(())
    }

    /// The digests of every row of a keyspace image (its tables: hot slots and cold
    /// slots' deltas; the rows of cold slots' objects are added with [`Digests::add`]).
    pub fn of_image(image: &prism_engine::keyspace::SnapshotImage) -> Digests {
        let mut d = Digests::default();
        for (slot, rows) in image.slots.iter().enumerate() {
            for (key, entry) in rows {
                d.add(slot as u16, key, entry.expire_at, &prism_engine::dump::encode(&entry.value));
            }
        }
        d
    }

    pub fn rows(&self) -> u64 {
        self.slots.values().map(|(r, _)| r).sum()
    }

    pub fn to_list(&self) -> Vec<SlotDigest> {
        self.slots.iter().map(|(slot, (rows, d))| SlotDigest { slot: *slot, rows: *rows, digest: hex(d) }).collect()
    }

    /// The slots where `self` and `other` differ, with both sides (`None`: absent).
    #[allow(clippy::type_complexity)]
    pub fn differences(&self, other: &Digests) -> Vec<(u16, Option<(u64, String)>, Option<(u64, String)>)> {
        let mut slots: Vec<u16> = self.slots.keys().chain(other.slots.keys()).copied().collect();
        slots.sort_unstable();
        slots.dedup();
        let side = |d: &Digests, s: u16| d.slots.get(&s).map(|(r, x)| (*r, hex(x)));
        slots
            .into_iter()
            .filter(|s| side(self, *s) != side(other, *s))
            .map(|s| (s, side(self, s), side(other, s)))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A backup name: letters, digits, `.`, `_` and `-` (it becomes a key prefix), not `.`
/// or `..`, at most 128 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_ignore_order_and_split_across_shards() {
        let rows: Vec<(u16, &[u8], u64, &[u8])> =
            vec![(1, b"a", 0, b"x"), (1, b"b", 5, b"y"), (2, b"c", 0, b"z"), (1, b"d", 0, b"w")];
        let mut all = Digests::default();
        rows.iter().for_each(|r| all.add(r.0, r.1, r.2, r.3));
        let (mut left, mut right) = (Digests::default(), Digests::default());
        rows.iter()
            .rev()
            .enumerate()
            .for_each(|(i, r)| if i % 2 == 0 { &mut left } else { &mut right }.add(r.0, r.1, r.2, r.3));
        let mut merged = Digests::default();
        merged.merge_list(&left.to_list()).unwrap();
        merged.merge(&right);
        assert_eq!(merged, all);
        assert_eq!(all.rows(), 4);
        assert!(all.differences(&merged).is_empty());
        // A changed deadline, payload or missing row shows up in its slot only.
        let mut changed = Digests::default();
        rows.iter().for_each(|r| changed.add(r.0, r.1, if r.1 == b"b" { 6 } else { r.2 }, r.3));
        let diff = all.differences(&changed);
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0].0, 1);
        assert!(merged.merge_list(&[SlotDigest { slot: 1, rows: 1, digest: "zz".into() }]).is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("nightly-2026.11.23_a"));
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(129)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
