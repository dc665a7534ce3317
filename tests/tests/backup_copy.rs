//! `prism backup copy` and `prism backup create --copy-to` through real processes and
//! the real CLI: a backup of a mostly cold node, made into the node's own cold store (so
//! its cold parts are shared, referenced in place), is copied to a second store; the
//! copy verifies on its own and restores into a fresh node with the original's per-slot
//! digests. A rerun skips what is already there (and recopies a damaged object), an
//! encrypted backup copies as ciphertext and verifies with its key, a corrupt source
//! object stops the copy with no manifest written, and a destination holding another
//! backup under the name, a missing source and an unreachable destination are refused.
//! With moto (scripts/test's venv) a copy also goes from a directory to S3.

use std::path::{Path, PathBuf};
use std::process::Output;

use prism_tests::backups::{backup, digests, files, manifest, node};
use prism_tests::cold_model::{call, check_all, text, wait_spilled, write_all};
use prism_tests::moto::{create_bucket, credentials_file, start_moto};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The number right before `what` in a summary line (`..., 3 copied (...)`).
fn count(summary: &str, what: &str) -> u64 {
    let before = summary.split(what).next().expect("summary");
    before.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{what} in {summary}"))
}

#[test]
fn a_backup_copied_to_a_second_store_verifies_restores_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cold = dir.path().join("cold");
    let (orig, second) = (cold.join("orig"), dir.path().join("second").join("orig"));
    let (source, mut c) = node(&["--maxmemory", "8mb", "--cold-store", &s(&cold)]);
    let m = write_all(&mut c);
    wait_spilled(&mut c, 8 << 20);
    let port = source.client_addrs()[0].port().to_string();

    // Created in the node's cold store (cold parts shared in place) and copied at once.
    let out = backup(&["create", &s(&orig), "--port", &port, "--copy-to", &s(&second)]);
    assert!(out.status.success(), "create --copy-to failed");
    let said = stdout(&out);
    assert!(said.contains("copied to"), "{said}");
    assert_eq!(count(&said, "skipped"), 0, "{said}");
    let shared =
        |d: &Path| manifest(d)["shards"][0]["cold"].as_array().expect("cold").iter().any(|c| c["shared"] == true);
    assert!(shared(&orig), "the original reuses the node's cold objects");
    assert!(!shared(&second), "the copy holds its own");
    assert_eq!(digests(&orig), digests(&second));
    assert!(backup(&["verify", &s(&second)]).status.success(), "the copy verifies");

    // Restored from the copy, a fresh node holds what the original did.
    let (target, mut t) = node(&[]);
    let tport = target.client_addrs()[0].port().to_string();
    assert!(backup(&["restore", &s(&second), "--port", &tport]).status.success(), "restore from the copy");
    check_all(&mut t, &m);
    let of_restored = dir.path().join("third").join("restored");
    assert!(backup(&["create", &s(&of_restored), "--port", &tport]).status.success());
    assert!(digests(&orig).len() > 100);
    assert_eq!(digests(&orig), digests(&of_restored), "per-slot digests of the restore equal the original's");
    drop(target);

    // A rerun after an interruption: objects already there (and intact) are skipped; a
    // missing one and a damaged one are copied again; the manifest comes last.
    let resumed = dir.path().join("resume").join("orig");
    let first = backup(&["copy", &s(&orig), &s(&resumed)]);
    assert!(first.status.success());
    let objects = count(&stdout(&first), "objects");
    assert!(objects > 10, "{}", stdout(&first));
    std::fs::remove_file(resumed.join("backup.json")).expect("interrupt");
    let copied: Vec<PathBuf> =
        files(&resumed).into_iter().filter(|p| p.extension().is_some_and(|x| x == "arrow")).collect();
    std::fs::remove_file(&copied[0]).expect("lose one");
    let mut bytes = std::fs::read(&copied[1]).expect("read");
    bytes[0] ^= 0x55;
    std::fs::write(&copied[1], bytes).expect("damage one");
    assert_eq!(backup(&["verify", &s(&resumed)]).status.code(), Some(2), "no manifest: not a backup yet");
    let again = backup(&["copy", &s(&orig), &s(&resumed)]);
    assert!(again.status.success());
    assert_eq!(count(&stdout(&again), "copied ("), 2, "{}", stdout(&again));
    assert_eq!(count(&stdout(&again), "skipped"), objects - 2, "{}", stdout(&again));
    assert!(backup(&["verify", &s(&resumed)]).status.success());
    // A complete copy, copied again: everything skipped, and it stays valid.
    let done = backup(&["copy", &s(&orig), &s(&resumed)]);
    assert!(done.status.success() && stdout(&done).contains("already held this backup"));
    assert_eq!(count(&stdout(&done), "skipped"), objects);

    // Another backup under the name at the destination is refused and left as it was.
    let other = dir.path().join("third").join("other");
    let other_manifest = {
        let o = backup(&["copy", &s(&of_restored), &s(&other)]);
        assert!(o.status.success());
        std::fs::read(other.join("backup.json")).expect("manifest")
    };
    let refused = backup(&["copy", &s(&orig), &s(&other)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("different backup"), "{}", stderr(&refused));
    assert_eq!(std::fs::read(other.join("backup.json")).expect("kept"), other_manifest);
    let refused = backup(&["create", &s(&cold.join("new")), "--port", &port, "--copy-to", &s(&other)]);
    assert_eq!(refused.status.code(), Some(2), "checked before any node works");
    assert!(!cold.join("new").join("backup.json").exists());

    // Encrypted: copied as ciphertext without the key; the copy opens with it only.
    let key = dir.path().join("backup.key");
    std::fs::write(&key, format!("{}\n", "4b".repeat(32))).expect("key");
    let (sealed, sealed_copy) = (dir.path().join("sealed").join("s"), dir.path().join("fourth").join("s2"));
    assert!(backup(&["create", &s(&sealed), "--port", &port, "--key-file", &s(&key)]).status.success());
    assert!(backup(&["copy", &s(&sealed), &s(&sealed_copy)]).status.success(), "no key needed to copy");
    let names = |d: &Path| -> Vec<(String, Vec<u8>)> {
        files(d)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "enc"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect()
    };
    let (mut a, mut b) = (names(&sealed), names(&sealed_copy));
    a.sort();
    b.sort();
    assert!(a.len() > 1 && a == b, "the same sealed bytes");
    assert_eq!(backup(&["verify", &s(&sealed_copy)]).status.code(), Some(1), "encrypted: the key is needed");
    assert!(backup(&["verify", &s(&sealed_copy), "--key-file", &s(&key)]).status.success());

    // A corrupt source object stops the copy, naming it; no manifest at the destination.
    let victim = files(&second).into_iter().find(|p| p.extension().is_some_and(|x| x == "arrow")).expect("cold");
    let mut bytes = std::fs::read(&victim).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&victim, bytes).expect("corrupt");
    let broken = dir.path().join("fifth").join("orig");
    let out = backup(&["copy", &s(&second), &s(&broken)]);
    assert_eq!(out.status.code(), Some(1));
    let file = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(stderr(&out).contains("failed verification") && stderr(&out).contains(&file), "{}", stderr(&out));
    assert!(!broken.join("backup.json").exists(), "no manifest after a failed copy");

    // A missing source; a destination that cannot be reached (under a plain file).
    let missing = backup(&["copy", &s(&dir.path().join("none").join("x")), &s(&broken)]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("missing backup"), "{}", stderr(&missing));
    let plain = dir.path().join("plain-file");
    std::fs::write(&plain, b"x").expect("file");
    let unreachable = backup(&["copy", &s(&orig), &s(&plain.join("store").join("orig"))]);
    assert_eq!(unreachable.status.code(), Some(2));
    assert!(stderr(&unreachable).contains("destination"), "{}", stderr(&unreachable));
    drop(source);
}

#[test]
fn a_backup_copies_from_a_directory_to_s3_and_verifies_there() {
    let (_moto, port) = match start_moto() {
        Ok(m) => m,
        Err(why) => {
            println!("SKIPPED backup copy to S3: {why}");
            return;
        }
    };
    create_bucket(port, "copies");
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = s(&credentials_file(dir.path(), port, ""));
    let (source, mut c) = node(&[]);
    for i in 0..500 {
        assert_eq!(text(&call(&mut c, &["SET", &format!("k:{i}"), &format!("v{i}")])), "OK");
    }
    let local = dir.path().join("backups").join("n1");
    let nport = source.client_addrs()[0].port().to_string();
    assert!(backup(&["create", &s(&local), "--port", &nport]).status.success());
    let url = "s3://copies/prism/n1";
    let out = backup(&["copy", &s(&local), url, "--dst-credentials", &creds]);
    assert!(out.status.success(), "copy to S3");
    assert_eq!(count(&stdout(&out), "copied ("), 1, "one shard snapshot");
    let out = backup(&["verify", url, "--credentials", &creds]);
    assert!(out.status.success() && stdout(&out).contains("500 keys"), "verify on S3");
    // And back: S3 to another directory, `--credentials` naming the source's options.
    let back = dir.path().join("back").join("n1");
    assert!(backup(&["copy", url, &s(&back), "--credentials", &creds]).status.success());
    assert_eq!(digests(&local), digests(&back));
    drop(source);
}
