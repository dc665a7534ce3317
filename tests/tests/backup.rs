//! Backups through real processes and the real CLI: `prism backup create` of a node
//! whose data is about three times its `maxmemory` (so most slots are cold), `prism
//! backup verify`, `prism backup restore` into a fresh node that then answers every key
//! (values, deadlines, graph edges) as the original did, and a second backup of the
//! restored node whose per-slot digests equal the first's. A corrupted object fails
//! verification; a missing backup and a bad URL fail to start. Keys overwritten in cold
//! slots (their deltas) are backed up once, with their new values.

use prism_tests::backups::{backup, digests, node};
use prism_tests::cold_model::{call, check_all, info_field, text, wait_spilled, write_all};

#[test]
fn a_backup_of_a_mostly_cold_node_verifies_and_restores_to_equal_digests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("backups");
    let (b1, b2) = (store.join("first"), store.join("of-restored"));
    let (b1s, b2s) = (b1.display().to_string(), b2.display().to_string());

    let (source, mut c) = node(&["--maxmemory", "8mb"]);
    let m = write_all(&mut c);
    // Deadlines and a graph travel too.
    for i in 0..20 {
        assert_eq!(text(&call(&mut c, &["SET", &format!("ttl:{i}"), "x", "PX", "600000"])), "OK");
    }
    for (a, b) in [("{g}a", "{g}b"), ("{g}a", "{g}c"), ("{g}b", "{g}c")] {
        assert_eq!(text(&call(&mut c, &["E.ADD", a, "follows", b])), "1");
    }
    wait_spilled(&mut c, 8 << 20);
    let cold = info_field(&mut c, "tiering", "cold_partitions");
    assert!(cold > 0);
    let keys = text(&call(&mut c, &["DBSIZE"]));
    let port = source.client_addrs()[0].port().to_string();

    let out = backup(&["create", &b1s, "--port", &port]);
    assert!(out.status.success(), "create failed");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("{keys} keys")), "{said}");
    assert!(!said.contains("(0 cold partitions)"), "cold partitions are in the backup: {said}");
    // A second create under the same name is refused and changes nothing.
    assert_eq!(backup(&["create", &b1s, "--port", &port]).status.code(), Some(2));
    assert!(backup(&["verify", &b1s]).status.success(), "verify failed");

    // Restore into a fresh node (no maxmemory): every key reads back as written.
    let (target, mut t) = node(&[]);
    let tport = target.client_addrs()[0].port().to_string();
    let out = backup(&["restore", &b1s, "--port", &tport]);
    assert!(out.status.success(), "restore failed");
    assert_eq!(text(&call(&mut t, &["DBSIZE"])), keys);
    check_all(&mut t, &m);
    let pttl: i64 = text(&call(&mut t, &["PTTL", "ttl:7"])).parse().expect("pttl");
    assert!(pttl > 0 && pttl <= 600_000, "deadline restored: {pttl}");
    assert_eq!(text(&call(&mut t, &["E.COUNT", "{g}c", "follows", "IN"])), "2");
    assert_eq!(text(&call(&mut t, &["E.COUNT", "{g}a", "follows", "OUT"])), "2");

    // A backup of the restored node records the same digests in every slot.
    assert!(backup(&["create", &b2s, "--port", &tport]).status.success());
    let (first, second) = (digests(&b1), digests(&b2));
    assert!(first.len() > 100, "digests cover the slots: {}", first.len());
    assert_eq!(first, second, "per-slot digests of the restore equal the original's");

    // Encrypted: no plaintext anywhere in its objects; verify needs the right key.
    let b3 = store.join("sealed");
    let b3s = b3.display().to_string();
    let (key, wrong) = (dir.path().join("backup.key"), dir.path().join("wrong.key"));
    std::fs::write(&key, format!("{}\n", "4b".repeat(32))).expect("key");
    std::fs::write(&wrong, [9u8; 32]).expect("key");
    let (key_s, wrong_s) = (key.display().to_string(), wrong.display().to_string());
    let out = backup(&["create", &b3s, "--port", &port, "--key-file", &key_s]);
    assert!(out.status.success(), "encrypted create failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("encrypted (key id"));
    let probe = m.strings.values().next().expect("a value").as_bytes()[..24].to_vec();
    let mut files = vec![b3.clone()];
    let mut sealed_objects = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).expect("dir").flatten().map(|e| e.path()));
        } else if p.extension().is_some_and(|x| x == "enc") {
            sealed_objects += 1;
            let bytes = std::fs::read(&p).expect("read");
            assert!(!bytes.windows(probe.len()).any(|w| w == probe), "plaintext in {}", p.display());
        } else {
            assert_eq!(
                p.file_name().and_then(|n| n.to_str()),
                Some("backup.json"),
                "only sealed objects: {}",
                p.display()
            );
        }
    }
    assert!(sealed_objects > 1, "snapshot and cold partitions are sealed");
    let no_key = backup(&["verify", &b3s]);
    assert_eq!(no_key.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("encrypted"));
    let bad_key = backup(&["verify", &b3s, "--key-file", &wrong_s]);
    assert_eq!(bad_key.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_key.stderr).contains("key id"));
    assert!(backup(&["verify", &b3s, "--key-file", &key_s]).status.success());

    // A flipped byte in any object fails verification with the object's name.
    let victim = std::fs::read_dir(&b1)
        .expect("backup dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "snap"))
        .expect("a snapshot object");
    let mut bytes = std::fs::read(&victim).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&victim, bytes).expect("corrupt");
    let out = backup(&["verify", &b1s]);
    assert_eq!(out.status.code(), Some(1), "a corrupt backup fails verification");
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed verification"));

    // No such backup; a URL that names no backup.
    assert_eq!(backup(&["verify", &store.join("missing").display().to_string()]).status.code(), Some(2));
    assert_eq!(backup(&["verify", "s3://bucket"]).status.code(), Some(2));
    drop((source, target));
}

/// Keys of cold slots overwritten after the spill live in their slots' deltas, beside the
/// old rows in the objects: the backup digests each key once (the delta's value), so it
/// verifies, restores the new values, and a backup of the restore has equal digests.
#[test]
fn a_backup_of_cold_slots_with_deltas_holds_each_key_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (b1, b2) = (dir.path().join("with-deltas"), dir.path().join("of-restored"));
    let (b1s, b2s) = (b1.display().to_string(), b2.display().to_string());
    let (source, mut c) = node(&["--maxmemory", "8mb"]);
    let mut m = write_all(&mut c);
    wait_spilled(&mut c, 8 << 20);
    // Plain SETs of existing keys: in a cold slot they land in its delta, no load.
    for i in (0..1_600).step_by(4) {
        let (k, v) = (format!("str:{i}"), format!("new-{i}"));
        assert_eq!(text(&call(&mut c, &["SET", &k, &v])), "OK");
        m.strings.insert(k, v);
    }
    let deltas = info_field(&mut c, "tiering", "delta_keys");
    assert!(deltas > 0, "some overwritten keys are in cold slots' deltas");
    let port = source.client_addrs()[0].port().to_string();
    assert!(backup(&["create", &b1s, "--port", &port]).status.success(), "create failed");
    assert!(backup(&["verify", &b1s]).status.success(), "a backup with deltas verifies");
    let rows: u64 = digests(&b1).values().map(|(r, _)| r).sum();
    assert_eq!(rows, m.keys() as u64, "each key once, the delta's and the object's row for it counted as one");

    let (target, mut t) = node(&[]);
    let tport = target.client_addrs()[0].port().to_string();
    assert!(backup(&["restore", &b1s, "--port", &tport]).status.success(), "restore failed");
    check_all(&mut t, &m);
    assert!(backup(&["create", &b2s, "--port", &tport]).status.success());
    assert_eq!(digests(&b1), digests(&b2), "per-slot digests of the restore equal the original's");
    drop((source, target));
}
