//! Security end to end, through real sockets: a client without credentials is refused,
//! ACL users are held to their commands and keys (with Redis's exact NOPERM words) and
//! their denials land in ACL LOG, users survive ACL SAVE/LOAD through the aclfile, and a
//! peer that speaks the old (unauthenticated) handshake is refused and counted on the
//! admin port's `prism_peer_auth_failures_total`.

use std::net::SocketAddr;

use prism_server::config::{parse_group, AdminPort};
use prism_tests::{free_port, RawClient, TestNode, REPLY_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_client_without_credentials_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "s3cret\n").unwrap();
    let node = TestNode::start_with(|c| c.requirepass_file = Some(pass.clone())).await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["GET", "k"]).await, "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd(&["AUTH", "wrong"]).await, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["ACL", "WHOAMI"]).await, "$7\r\ndefault\r\n");
    // The failed AUTH is in ACL LOG, without the password.
    let log = c.cmd(&["ACL", "LOG"]).await;
    assert!(log.contains("auth") && log.contains("AUTH") && !log.contains("wrong"), "{log}");
    node.stop().await;
}

#[tokio::test]
async fn an_acl_user_is_held_to_its_commands_and_keys() {
    let node = TestNode::start().await;
    let mut admin = node.raw().await;
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+@read"]).await, "+OK\r\n");
    assert_eq!(admin.cmd(&["SET", "app:1", "v"]).await, "+OK\r\n");

    let mut alice = node.raw().await;
    assert_eq!(alice.cmd(&["AUTH", "alice", "pw"]).await, "+OK\r\n");
    assert_eq!(alice.cmd(&["GET", "app:1"]).await, "$1\r\nv\r\n");
    assert_eq!(
        alice.cmd(&["SET", "app:1", "w"]).await,
        "-NOPERM User alice has no permissions to run the 'set' command\r\n"
    );
    assert_eq!(alice.cmd(&["GET", "other:1"]).await, "-NOPERM No permissions to access a key\r\n");
    assert_eq!(
        alice.cmd(&["ACL", "WHOAMI"]).await,
        "-NOPERM User alice has no permissions to run the 'acl|whoami' command\r\n"
    );
    assert_eq!(admin.cmd(&["GET", "app:1"]).await, "$1\r\nv\r\n", "the refused SET changed nothing");

    // ACL LOG shows both denials, newest first.
    let log = admin.cmd(&["ACL", "LOG"]).await;
    let (key_at, cmd_at) =
        (log.find("other:1").expect("key denial logged"), log.find("\r\nset\r\n").expect("set logged"));
    assert!(key_at < cmd_at, "{log}");
    assert!(log.contains("alice"), "{log}");
    assert_eq!(admin.cmd(&["ACL", "LOG", "RESET"]).await, "+OK\r\n");
    assert_eq!(admin.cmd(&["ACL", "LOG"]).await, "*0\r\n");

    // A change reaches the logged-in client at once; HELLO 3 AUTH logs in too.
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "alice", "+set"]).await, "+OK\r\n");
    assert_eq!(alice.cmd(&["SET", "app:1", "w"]).await, "+OK\r\n");
    let mut hello = node.raw().await;
    hello.resp = prism_tests::Resp::V3;
    let reply = hello.cmd(&["HELLO", "3", "AUTH", "alice", "pw"]).await;
    assert!(reply.starts_with('%'), "{reply}");
    assert_eq!(hello.cmd(&["GET", "other:1"]).await, "-NOPERM No permissions to access a key\r\n");

    // DRYRUN, GETUSER, LIST; DELUSER disconnects the user's clients.
    assert_eq!(admin.cmd(&["ACL", "DRYRUN", "alice", "GET", "app:2"]).await, "+OK\r\n");
    let list = admin.cmd(&["ACL", "LIST"]).await;
    assert!(list.contains("user alice on #") && list.contains("~app:* resetchannels -@all +@read +set"), "{list}");
    assert!(!list.contains("pw"), "clear-text passwords never show: {list}");
    assert_eq!(admin.cmd(&["ACL", "DELUSER", "alice"]).await, ":1\r\n");
    alice.send(b"PING\r\n").await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(REPLY_TIMEOUT, alice.stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a deleted user's client is disconnected");
    assert_eq!(admin.cmd(&["ACL", "DELUSER", "default"]).await, "-ERR The 'default' user cannot be removed\r\n");
    node.stop().await;
}

#[tokio::test]
async fn users_survive_acl_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.acl");
    std::fs::write(&file, "user ops on >opspw ~* +@all -flushall\n").unwrap();
    let node = TestNode::start_with(|c| c.aclfile = Some(file.clone())).await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["AUTH", "ops", "opspw"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["FLUSHALL"]).await, "-NOPERM User ops has no permissions to run the 'flushall' command\r\n");
    assert_eq!(c.cmd(&["AUTH", "default", "x"]).await, "+OK\r\n", "default stays nopass");
    assert_eq!(c.cmd(&["ACL", "SETUSER", "bob", "on", "nopass", "%R~r:*", "+get"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["ACL", "SAVE"]).await, "+OK\r\n");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("user bob on nopass %R~r:*") && !saved.contains("opspw"), "{saved}");
    std::fs::write(&file, "user carol on >c ~* +@read\n").unwrap();
    assert_eq!(c.cmd(&["ACL", "LOAD"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["ACL", "USERS"]).await, "*2\r\n$5\r\ncarol\r\n$7\r\ndefault\r\n");
    std::fs::write(&file, "user dave on +nosuch\n").unwrap();
    let e = c.cmd(&["ACL", "LOAD"]).await;
    assert!(e.starts_with("-ERR") && e.contains("+nosuch"), "{e}");
    assert_eq!(c.cmd(&["ACL", "USERS"]).await, "*2\r\n$5\r\ncarol\r\n$7\r\ndefault\r\n", "a bad file changes nothing");
    node.stop().await;
}

/// The peer handshake of version 1 (before the cluster secret): magic, version, from, to.
fn old_hello(from: u64, to: u64) -> Vec<u8> {
    let mut body = b"PRSMPEER".to_vec();
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&from.to_le_bytes());
    body.extend_from_slice(&to.to_le_bytes());
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

async fn metrics(admin: SocketAddr) -> String {
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    tokio::time::timeout(REPLY_TIMEOUT, s.read_to_string(&mut body)).await.expect("metrics in time").unwrap();
    body
}

fn failures(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("prism_peer_auth_failures_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(u64::MAX, |v| v as u64)
}

#[tokio::test]
async fn a_peer_without_the_secret_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster.secret");
    std::fs::write(&secret, "  fleet-secret-1\n").unwrap();
    let (port, peer) = (free_port(), free_port());
    let group = parse_group("raft-group", &format!("1@127.0.0.1:{port}@{peer}")).unwrap();
    let node = TestNode::start_with(|c| {
        c.node_id = 1;
        c.raft_group = group;
        c.cluster_secret_file = Some(secret.clone());
        c.admin_port = AdminPort::Any;
    })
    .await;
    let admin = node.handle().admin_addr.expect("admin port");
    assert_eq!(failures(&metrics(admin).await), 0);

    // A raw client speaking the old hello: the node closes without a word.
    let mut s = TcpStream::connect(("127.0.0.1", peer)).await.unwrap();
    s.write_all(&old_hello(7, 1)).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, s.read_to_end(&mut answer)).await.expect("closed in time").ok();
    assert!(answer.is_empty(), "the node answered an unauthenticated peer: {answer:?}");

    // Counted on the admin port (the refusal is counted before the socket closes).
    assert_eq!(failures(&metrics(admin).await), 1);
    // The node still serves its clients.
    let mut c: RawClient = node.raw().await;
    let mut ok = false;
    for _ in 0..100 {
        let r = c.cmd(&["SET", "k", "v"]).await;
        if r == "+OK\r\n" {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "the single-member group elects itself and serves writes");
    node.stop().await;
}
