//! A whole rogue node, end to end: three real `prism` processes form a group with a
//! cluster secret; one member is then restarted with the wrong secret (as a node an
//! attacker brings up at a member's address with a guessed secret would be). It must
//! get nothing and change nothing: the two others keep electing and committing, the
//! rogue never receives a write made after it came up nor disturbs the leader's term,
//! both good members log the refusal, and the same process with the right secret
//! catches up, so nothing but the secret kept it out.

use std::time::{Duration, Instant};

use prism_tests::fleet::{Fleet, FleetOptions, RespConn};
use redis_protocol::resp2::types::OwnedFrame;

const TIMEOUT: Duration = Duration::from_secs(30);

fn bulk(s: &str) -> OwnedFrame {
    OwnedFrame::BulkString(s.as_bytes().to_vec())
}

fn conn(fleet: &Fleet, i: usize) -> RespConn {
    RespConn::connect(fleet.client_addrs()[i], TIMEOUT).expect("connect")
}

#[test]
fn a_member_with_the_wrong_secret_gets_nothing_and_disturbs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("cluster.secret");
    std::fs::write(&secret, "the-fleet-secret\n").expect("write secret");
    let args = vec!["--cluster-secret-file".to_string(), secret.display().to_string()];
    let mut fleet = Fleet::start(&FleetOptions { nodes: 3, extra_args: args, ..Default::default() }).expect("start");
    let leader = fleet.wait_for_leader(None, TIMEOUT).expect("leader");
    let mut l = conn(&fleet, leader);
    assert_eq!(l.call(&["SET", "before", "1"]).expect("SET"), OwnedFrame::SimpleString(b"OK".to_vec()));

    // A follower comes back with the wrong secret (the others read theirs at startup).
    // It is killed only once it holds the log (the membership among it): a member that
    // never learnt the group never campaigns, and the good follower would never hear it.
    let rogue = (leader + 1) % 3;
    let good = (leader + 2) % 3;
    let mut r = conn(&fleet, rogue);
    assert_eq!(r.call(&["READONLY"]).expect("READONLY"), OwnedFrame::SimpleString(b"OK".to_vec()));
    let deadline = Instant::now() + TIMEOUT;
    while r.call(&["GET", "before"]).expect("GET") != bulk("1") {
        assert!(Instant::now() < deadline, "the follower never applied the first write");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(r);
    fleet.kill(rogue);
    std::fs::write(&secret, "a-guessed-secret\n").expect("write secret");
    fleet.restart(rogue).expect("restart the rogue");
    let term = fleet.raft_info(leader).expect("leader info").term;

    // The group goes on with its two members; the rogue gets none of it, for several
    // of its election timeouts (heartbeat 100 ms: 400-800 ms each).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut i = 0;
    while Instant::now() < deadline {
        i += 1;
        let r = l.call(&["SET", &format!("after:{i}"), "x"]).expect("SET");
        assert_eq!(r, OwnedFrame::SimpleString(b"OK".to_vec()), "write {i} with a rogue member");
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = fleet.raft_info(leader).expect("leader info");
    assert_eq!((info.role.as_str(), info.term), ("leader", term), "the rogue disturbed the leader");
    let mut g = conn(&fleet, good);
    assert_eq!(g.call(&["READONLY"]).expect("READONLY"), OwnedFrame::SimpleString(b"OK".to_vec()));
    let last = format!("after:{i}");
    let deadline = Instant::now() + TIMEOUT;
    while g.call(&["GET", &last]).expect("GET") != bulk("x") {
        assert!(Instant::now() < deadline, "the good follower never applied {last}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut r = conn(&fleet, rogue);
    assert_eq!(r.call(&["READONLY"]).expect("READONLY"), OwnedFrame::SimpleString(b"OK".to_vec()));
    for k in ["after:1", &last] {
        assert_eq!(r.call(&["GET", k]).expect("GET"), OwnedFrame::Null, "the rogue received {k}");
    }
    let rinfo = fleet.raft_info(rogue).expect("rogue info");
    assert_ne!(rinfo.role, "leader", "{rinfo:?}");
    // The whole log (every run of the node): a busy member's openraft lines can push
    // the refusal out of any fixed tail, and the good member sees the rogue only once it
    // campaigns.
    for i in [leader, good] {
        let deadline = Instant::now() + TIMEOUT;
        while !fleet.log_tail(i, usize::MAX).contains("peer authentication failed") {
            assert!(Instant::now() < deadline, "node {} did not log the refusal", i + 1);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // The same process with the right secret joins and catches up.
    fleet.kill(rogue);
    std::fs::write(&secret, "the-fleet-secret\n").expect("write secret");
    fleet.restart(rogue).expect("restart with the right secret");
    let mut r = conn(&fleet, rogue);
    assert_eq!(r.call(&["READONLY"]).expect("READONLY"), OwnedFrame::SimpleString(b"OK".to_vec()));
    let deadline = Instant::now() + TIMEOUT;
    while r.call(&["GET", &last]).expect("GET") != bulk("x") {
        assert!(Instant::now() < deadline, "the member with the right secret never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
}
