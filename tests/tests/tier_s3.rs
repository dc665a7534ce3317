//! The cold tier and backups on a real S3-compatible server (moto's, from PyPI): a node
//! with `--cold-store s3://...` spills and loads through S3; while the store is out of
//! reach (a proxy in front of it blackholes every connection) reads of cold slots answer
//! `-TRYAGAIN cold partition unavailable` and hot slots keep serving; after the store
//! comes back every key reads back. A backup into another prefix of the bucket verifies.
//!
//! Without moto (outside scripts/test's venv) the test prints why it did not run.

use std::process::Command;

use prism_tests::cold_model::{call, check_all, info_field, text, wait_spilled, write_all, TIMEOUT};
use prism_tests::fleet::{Fleet, FleetOptions, RespConn};
use prism_tests::moto::{create_bucket, credentials_file, start_moto};
use prism_tests::netproxy::LinkProxy;
use prism_tests::prism_bin;

#[test]
fn a_node_tiers_through_s3_rides_out_a_store_outage_and_backs_up_to_s3() {
    let (_moto, port) = match start_moto() {
        Ok(m) => m,
        Err(why) => {
            println!("SKIPPED s3 tiering test: {why}");
            return;
        }
    };
    create_bucket(port, "prism");
    let proxy = LinkProxy::start(([127, 0, 0, 1], port).into()).expect("proxy");
    let dir = tempfile::tempdir().expect("tempdir");
    // Short timeouts so the outage below fails loads in seconds, not a minute.
    let creds = credentials_file(dir.path(), proxy.addr().port(), "timeout = \"2s\"\nconnect_timeout = \"1s\"\n");
    let creds_s = creds.display().to_string();
    let extra = ["--maxmemory", "8mb", "--cold-store", "s3://prism/cold", "--cold-store-credentials", &creds_s];
    let opts = FleetOptions { nodes: 1, extra_args: extra.map(String::from).to_vec(), ..Default::default() };
    let fleet = Fleet::start(&opts).expect("node starts");
    fleet.wait_for_leader(None, TIMEOUT).expect("leader");
    let mut c = RespConn::connect(fleet.client_addrs()[0], TIMEOUT).expect("connect");
    let m = write_all(&mut c);
    wait_spilled(&mut c, 8 << 20);
    assert!(text(&call(&mut c, &["INFO", "tiering"])).contains("cold_store:s3://prism/cold"));
    check_all(&mut c, &m);
    assert!(info_field(&mut c, "tiering", "loads") > 0, "loads came from S3");
    wait_spilled(&mut c, 8 << 20);

    // The store goes out of reach: cold keys answer TRYAGAIN, hot ones their values.
    proxy.partition();
    let failures = info_field(&mut c, "tiering", "load_failures");
    let (mut hot, mut refused) = (Vec::new(), None);
    for (k, v) in &m.strings {
        let r = text(&c.call(&["GET", k]).expect("reply"));
        if r.starts_with("-TRYAGAIN cold partition unavailable") {
            refused = Some((k.clone(), r));
            break;
        }
        assert_eq!(&r, v, "GET {k} during the outage");
        hot.push(k.clone());
    }
    let (cold_key, reply) = refused.expect("a cold key is refused while the store is unreachable");
    assert!(info_field(&mut c, "tiering", "load_failures") > failures, "{reply}");
    for k in hot.iter().take(50) {
        assert_eq!(&text(&c.call(&["GET", k]).expect("reply")), &m.strings[k], "hot {k} keeps serving");
    }
    proxy.heal();
    assert_eq!(&text(&call(&mut c, &["GET", &cold_key])), &m.strings[&cold_key]);
    check_all(&mut c, &m);

    // A backup into another prefix of the bucket: cold objects are copied, it verifies.
    let port_s = fleet.client_addrs()[0].port().to_string();
    let url = "s3://prism/backups/b1";
    let run = |args: &[&str]| {
        let out = Command::new(prism_bin()).arg("backup").args(args).output().expect("run prism backup");
        eprintln!("{args:?}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        out
    };
    let out = run(&["create", url, "--credentials", &creds_s, "--port", &port_s]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} keys", m.keys())));
    assert!(run(&["verify", url, "--credentials", &creds_s]).status.success());
}
