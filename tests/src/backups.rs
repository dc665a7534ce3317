//! Helpers for tests that drive backups and the cold tier through the real CLI and a
//! real node: run `prism backup ...`, read a backup's per-slot digests, start a
//! one-node fleet, list the files of a store directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cold_model::TIMEOUT;
use crate::fleet::{Fleet, FleetOptions, RespConn};

/// Runs `prism backup <args>`, logging its status and output.
pub fn backup(args: &[&str]) -> Output {
    let out = Command::new(crate::prism_bin()).arg("backup").args(args).output().expect("run prism backup");
    eprintln!(
        "prism backup {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A backup's `backup.json`, from a local store directory.
pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("backup.json")).expect("backup.json")).expect("json")
}

/// slot -> (rows, digest) over every shard of a backup's manifest (XOR per slot, as the
/// backup module combines shards).
pub fn digests(dir: &Path) -> BTreeMap<u64, (u64, Vec<u8>)> {
    let mut out: BTreeMap<u64, (u64, Vec<u8>)> = BTreeMap::new();
    for shard in manifest(dir)["shards"].as_array().expect("shards") {
        for s in shard["slots"].as_array().expect("slots") {
            let hex = s["digest"].as_str().expect("digest");
            let bytes: Vec<u8> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            let e = out.entry(s["slot"].as_u64().unwrap()).or_insert((0, vec![0; 32]));
            e.0 += s["rows"].as_u64().unwrap();
            e.1.iter_mut().zip(&bytes).for_each(|(a, b)| *a ^= b);
        }
    }
    out
}

/// A one-node fleet started with `extra` flags, its leader elected, and a connection.
pub fn node(extra: &[&str]) -> (Fleet, RespConn) {
    let opts =
        FleetOptions { nodes: 1, extra_args: extra.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    let fleet = Fleet::start(&opts).expect("node starts");
    fleet.wait_for_leader(None, TIMEOUT).expect("leader");
    let c = RespConn::connect(fleet.client_addrs()[0], TIMEOUT).expect("connect");
    (fleet, c)
}

/// Every file under `dir`, recursively, sorted (none if `dir` does not exist).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let (mut todo, mut out) = (vec![dir.to_path_buf()], Vec::new());
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
        } else if p.exists() {
            out.push(p);
        }
    }
    out.sort();
    out
}
