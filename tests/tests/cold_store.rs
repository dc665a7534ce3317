//! Cold tier objects through real object stores: an S3-compatible server (moto's, from
//! PyPI, started here on a free port) and the committed format fixture that the pyarrow
//! test reads (tests/python/test_cold_format.py).
//!
//! moto comes from the venv scripts/test builds (it exports PRISM_PYTHON); without moto
//! the S3 test prints why it did not run.

use std::path::PathBuf;

use bytes::Bytes;
use prism_engine::tier::{load_into, spill_slot, ColdStore, RestoreTarget, StoreError};
use prism_engine::{dump, Keyspace, Slot, Value};
use prism_tests::moto::{create_bucket, credentials_file, start_moto};

fn slot() -> Slot {
    Slot::of_key(b"{cold}")
}

/// A small partition of every simple type, with TTLs (graph values are covered by the
/// engine's tier tests; here the point is the store).
fn sample() -> Keyspace {
    let ks = Keyspace::new();
    for (key, value, ttl) in [
        ("{cold}user:1", "ann", 0u64),
        ("{cold}user:2", "bob", 4_102_444_800_000),
        ("{cold}blob", "\u{0}\u{ff}binary", 0),
    ] {
        let payload = dump::encode(&Value::Str(value.as_bytes().to_vec().into()));
        ks.restore(Bytes::from(key), ttl, Bytes::from(payload)).expect("setup");
    }
    ks
}

fn dumps(ks: &Keyspace) -> Vec<(Vec<u8>, u64, Vec<u8>)> {
    let t = ks.slot(slot());
    let mut v: Vec<_> = (0..t.len())
        .filter_map(|i| t.get_index(i))
        .map(|(k, e)| (k.to_vec(), e.expire_at, dump::encode(&e.value)))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_put_get_list_delete_and_corruption() {
    let (_moto, port) = match start_moto() {
        Ok(m) => m,
        Err(why) => {
            println!("SKIPPED s3 test: {why}");
            return;
        }
    };
    create_bucket(port, "prism-cold");
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = credentials_file(dir.path(), port, "");
    let store = ColdStore::open("s3://prism-cold/node-a", Some(&creds)).expect("open s3");

    let ks = sample();
    let (obj, stats) = spill_slot(&ks, slot()).expect("spill");
    assert_eq!(stats.rows, 3);
    let r = store.put(&format!("slot-{:05}/v1", slot().get()), obj.bytes.clone()).await.expect("put");
    assert_eq!(store.list("").await.expect("list"), vec![r.clone()]);
    let back = Keyspace::new();
    load_into(&back, store.get(&r.key).await.expect("get")).expect("load");
    assert_eq!(dumps(&back), dumps(&ks));

    // An object whose bytes do not match its name is refused, never returned.
    let mut bad = obj.bytes.to_vec();
    bad[100] ^= 1;
    let forged = format!("slot-{:05}/v2.{}.{:08x}.arrow", slot().get(), r.len, r.crc32c);
    store.put_raw(&forged, Bytes::from(bad)).await.expect("put raw");
    assert!(matches!(store.get(&forged).await, Err(StoreError::Checksum { .. })));

    store.delete(&r.key).await.expect("delete");
    store.delete(&forged).await.expect("delete");
    assert!(store.list("").await.expect("list").is_empty());
    assert!(matches!(store.get(&r.key).await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn s3_credentials_file_errors_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("s3.toml");
    std::fs::write(&creds, "no_such_option = \"x\"\n").expect("write");
    let err = ColdStore::open("s3://b", Some(&creds)).expect_err("unknown option");
    assert!(err.to_string().contains("no_such_option"), "{err}");
    let missing = ColdStore::open("s3://b", Some(&dir.path().join("absent.toml"))).expect_err("missing file");
    assert!(missing.to_string().contains("cannot read"), "{missing}");
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/cold_partition.arrow")
}

/// The committed fixture is what tests/python/test_cold_format.py reads with pyarrow; it
/// must stay loadable by this build. `PRISM_REGENERATE_FIXTURES=1` rewrites it.
#[test]
fn committed_fixture_loads() {
    if std::env::var_os("PRISM_REGENERATE_FIXTURES").is_some() {
        let (obj, _) = spill_slot(&sample(), slot()).expect("spill");
        std::fs::write(fixture(), &obj.bytes).expect("write fixture");
    }
    let bytes = std::fs::read(fixture()).expect("tests/data/cold_partition.arrow");
    let back = Keyspace::new();
    assert_eq!(load_into(&back, Bytes::from(bytes)).expect("load fixture"), (slot(), 3));
    assert_eq!(dumps(&back), dumps(&sample()));
}
