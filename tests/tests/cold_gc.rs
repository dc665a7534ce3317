//! Garbage collection of cold objects through a real process (server/src/cold_gc.rs): a
//! node with `maxmemory` far below its data spills, loads and spills again, leaving
//! objects nothing references; the GC deletes those and only those. Every key still
//! reads back after it ran, a backup that reuses cold objects in place keeps them alive
//! after FLUSHALL (and still verifies), and once the backup's manifest is gone they go
//! too.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use prism_tests::cold_model::{call, check_all, info_field, text, wait_spilled, write_all, TIMEOUT};
use prism_tests::fleet::{Fleet, FleetOptions, RespConn};
use prism_tests::prism_bin;

/// The cold partition objects in a local store: `slot-<n>/<name>.arrow`.
fn objects(store: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in std::fs::read_dir(store).expect("store dir").flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        if !name.starts_with("slot-") {
            continue;
        }
        // The GC may remove a slot's directory meanwhile (the local store drops empty ones).
        let Ok(files) = std::fs::read_dir(dir.path()) else { continue };
        for f in files.flatten() {
            let file = f.file_name().to_string_lossy().into_owned();
            if file.ends_with(".arrow") {
                out.insert(format!("{name}/{file}"));
            }
        }
    }
    out
}

/// The cold objects a backup manifest reuses in place.
fn shared(manifest: &Path) -> BTreeSet<String> {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).expect("backup.json")).expect("json");
    let mut out = BTreeSet::new();
    for shard in m["shards"].as_array().expect("shards") {
        for part in shard["cold"].as_array().expect("cold parts") {
            if part["shared"].as_bool() == Some(true) {
                out.insert(part["object"].as_str().expect("object").to_string());
            }
        }
    }
    out
}

fn backup(args: &[&str]) -> bool {
    let out = Command::new(prism_bin()).arg("backup").args(args).output().expect("run prism backup");
    eprintln!("prism backup {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out.status.success()
}

/// Waits (bounded) until `done` holds, checking every 100 ms; on timeout, says what
/// `state` shows.
fn until(what: &str, mut done: impl FnMut() -> bool, mut state: impl FnMut() -> String) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}: {}", state());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn unreferenced_cold_objects_are_collected_and_referenced_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("cold");
    let store_url = store.display().to_string();
    let args = ["--maxmemory", "8mb", "--cold-store", &store_url, "--cold-gc-retention", "1"];
    let args = [&args[..], &["--raft-snapshot-entries", "20"]].concat();
    let opts =
        FleetOptions { nodes: 1, extra_args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    let fleet = Fleet::start(&opts).expect("node starts");
    fleet.wait_for_leader(None, TIMEOUT).expect("leader");
    let mut c = RespConn::connect(fleet.client_addrs()[0], TIMEOUT).expect("connect");

    let m = write_all(&mut c);
    wait_spilled(&mut c, 8 << 20);
    // Reading every key loads the cold slots (their objects are then unreferenced) and
    // pushes others out again (new objects).
    check_all(&mut c, &m);
    let addr = fleet.client_addrs()[0];
    let tiering = move || {
        let mut c = RespConn::connect(addr, TIMEOUT).expect("connect");
        text(&call(&mut c, &["INFO", "tiering"])) + &text(&call(&mut c, &["INFO", "raft"]))
    };
    until("the GC deleted unreferenced objects", || info_field(&mut c, "tiering", "gc_deleted_objects") > 0, tiering);
    // Nothing referenced went: every key reads back, cold ones loaded from their objects.
    check_all(&mut c, &m);
    assert_eq!(text(&call(&mut c, &["DBSIZE"])), m.keys().to_string());
    assert_eq!(info_field(&mut c, "tiering", "load_failures"), 0);

    // A backup into the cold store itself reuses the cold objects in place.
    let port = fleet.client_addrs()[0].port().to_string();
    let b1 = store.join("b1");
    assert!(backup(&["create", &b1.display().to_string(), "--port", &port]), "backup create");
    let kept = shared(&b1.join("backup.json"));
    assert!(!kept.is_empty(), "the backup reuses no cold object");

    // After FLUSHALL and a snapshot taken after it (every 20 entries: writes keep coming
    // until one is), only the backup references cold objects: the GC deletes every
    // other one and keeps those.
    assert_eq!(text(&call(&mut c, &["FLUSHALL"])), "OK");
    let mut i = 0;
    let left = || format!("{:?} left, {kept:?} kept; {}", objects(&store), tiering());
    until(
        "only the backup's objects are left",
        || {
            i += 1;
            assert_eq!(text(&call(&mut c, &["SET", &format!("after:{i}"), "x"])), "OK");
            objects(&store) == kept
        },
        left,
    );
    assert_eq!(info_field(&mut c, "tiering", "gc_failures"), 0);
    assert!(backup(&["verify", &b1.display().to_string()]), "the backup no longer verifies");

    // Deleting the backup releases them.
    std::fs::remove_dir_all(&b1).expect("remove the backup");
    until(
        "the released objects are deleted",
        || objects(&store).is_empty(),
        || format!("{:?}; {}", objects(&store), tiering()),
    );
}
