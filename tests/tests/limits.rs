//! Invariant 4 through real sockets: `maxclients`, `proto-max-bulk-len`, the limits
//! before AUTH, `client-output-buffer-limit`, and a client that never reads. Each limit
//! answers with Redis's error (or a disconnect, where Redis disconnects), never with
//! unbounded memory, and the node keeps serving everyone else afterwards.
//!
//! The tests here run one at a time (the `SERIAL` lock): one of them measures the
//! process's resident memory, which the others would disturb.
//!
//! Waits are bounded polls of the in-process node's own counters (the client registry,
//! the output-buffer disconnection count), never timed assertions; the one fixed wait is
//! the slow-reader window, during which the server is given every chance to misbehave.

use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use prism_tests::{bulk, encode, RawClient, TestNode, REPLY_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---- support -------------------------------------------------------------------------

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Threads on which a panic happened since the hook was installed.
static PANICKED: Mutex<Vec<std::thread::ThreadId>> = Mutex::new(Vec::new());

/// Records panics per thread (then prints them as usual): the node's tasks run on the
/// test's thread, and tokio would otherwise swallow a connection task's panic.
fn watch_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.lock().unwrap_or_else(|e| e.into_inner()).push(std::thread::current().id());
            default(info);
        }));
    });
}

/// The node still serves: the old connection answers, a new one reads its own write,
/// and nothing panicked.
async fn assert_serving(node: &TestNode, witness: &mut RawClient, tag: &str) {
    assert_serving_with(node, witness, tag, None).await
}

/// As [`assert_serving`], the fresh client first authenticating with `password`.
async fn assert_serving_with(node: &TestNode, witness: &mut RawClient, tag: &str, password: Option<&str>) {
    assert_eq!(witness.cmd(&["PING"]).await, "+PONG\r\n", "witness after {tag}");
    let mut fresh = node.raw().await;
    if let Some(password) = password {
        assert_eq!(fresh.cmd(&["AUTH", password]).await, "+OK\r\n");
    }
    let key = format!("alive:{tag}");
    assert_eq!(fresh.cmd(&["SET", &key, tag]).await, "+OK\r\n", "fresh client after {tag}");
    assert_eq!(fresh.cmd(&["GET", &key]).await, bulk(tag), "fresh client after {tag}");
    assert_eq!(fresh.cmd(&["DEL", &key]).await, ":1\r\n");
    let me = std::thread::current().id();
    assert!(
        !PANICKED.lock().unwrap_or_else(|e| e.into_inner()).contains(&me),
        "a task of this test's node panicked (see the panic message above)"
    );
}

/// Reads everything until the server closes (EOF or reset), within the reply timeout.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("server did not close; got {} bytes: {:?}", got.len(), lossy_head(&got)),
        }
    }
}

fn lossy_head(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned()
}

/// Polls `cond` until it holds; fails after the reply timeout.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Resident set size of this process (the node runs in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    let kb: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value");
    kb * 1024
}

async fn start_with(tweak: impl FnOnce(&mut prism_server::Config)) -> (TestNode, RawClient) {
    watch_panics();
    let node = TestNode::start_with(tweak).await;
    let witness = node.raw().await;
    (node, witness)
}

/// `count` GETs of `keys` keys, round robin, as one pipeline.
fn get_pipeline(keys: usize, count: usize) -> Vec<u8> {
    (0..count).flat_map(|i| encode(&["GET", &format!("big:{}", i % keys)])).collect()
}

/// Stores `keys` values of `size` bytes under `big:0..`.
async fn fill(c: &mut RawClient, keys: usize, size: usize) {
    let value = "v".repeat(size);
    for i in 0..keys {
        assert_eq!(c.cmd(&["SET", &format!("big:{i}"), &value]).await, "+OK\r\n");
    }
}

// ---- maxclients ----------------------------------------------------------------------

#[tokio::test]
async fn maxclients_refuses_the_extra_client_and_frees_places() {
    let _serial = SERIAL.lock().await;
    let (node, mut witness) = start_with(|c| c.maxclients = 3).await;
    assert_eq!(witness.cmd(&["PING"]).await, "+PONG\r\n");
    let mut second = node.raw().await;
    assert_eq!(second.cmd(&["PING"]).await, "+PONG\r\n");
    let mut third = node.raw().await;
    assert_eq!(third.cmd(&["PING"]).await, "+PONG\r\n");

    let mut fourth = TcpStream::connect(node.addr).await.expect("connect");
    let got = read_to_close(&mut fourth).await;
    assert_eq!(String::from_utf8_lossy(&got), "-ERR max number of clients reached\r\n");
    // Refusing did not cost the three connected clients anything.
    assert_eq!(third.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    assert_eq!(second.cmd(&["GET", "k"]).await, bulk("v"));

    // Once one leaves, its place is free again.
    drop(third);
    let clients = &node.handle().node.clients;
    wait_until("the closed client is unregistered", || clients.count() == 2).await;
    let mut newcomer = node.raw().await;
    assert_eq!(newcomer.cmd(&["GET", "k"]).await, bulk("v"));
    let mut fifth = TcpStream::connect(node.addr).await.expect("connect");
    assert_eq!(String::from_utf8_lossy(&read_to_close(&mut fifth).await), "-ERR max number of clients reached\r\n");

    assert_eq!(witness.cmd(&["PING"]).await, "+PONG\r\n");
    drop(newcomer);
    wait_until("the newcomer is unregistered", || clients.count() == 2).await;
    assert_serving(&node, &mut witness, "maxclients").await;
    node.stop().await;
}

// ---- request size --------------------------------------------------------------------

#[tokio::test]
async fn proto_max_bulk_len_refuses_before_the_payload_arrives() {
    let _serial = SERIAL.lock().await;
    let (node, mut witness) = start_with(|c| c.proto_max_bulk_len = 1024 * 1024).await;
    assert_eq!(witness.cmd(&["SET", "k", "old"]).await, "+OK\r\n");

    // Only the header of a 2 MB argument is sent: the refusal must not wait for the rest.
    let mut abuser = TcpStream::connect(node.addr).await.expect("connect");
    abuser.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2097152\r\n").await.expect("send");
    let got = read_to_close(&mut abuser).await;
    assert_eq!(String::from_utf8_lossy(&got), "-ERR Protocol error: invalid bulk length\r\n");
    assert_eq!(witness.cmd(&["GET", "k"]).await, bulk("old"), "the refused SET changed nothing");

    // Exactly the limit is fine.
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "k", &"x".repeat(1024 * 1024)]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["STRLEN", "k"]).await, ":1048576\r\n");
    assert_serving(&node, &mut witness, "bulk len").await;
    node.stop().await;
}

#[tokio::test]
async fn limits_before_auth() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let pass_file = dir.path().join("password");
    std::fs::write(&pass_file, "s3cret\n").expect("write password file");
    let (node, mut witness) = start_with(|c| c.requirepass_file = Some(pass_file.clone())).await;
    assert_eq!(witness.cmd(&["AUTH", "s3cret"]).await, "+OK\r\n");

    let refused = [
        (encode(&["DEL"; 20])[..5].to_vec(), "unauthenticated multibulk length"),
        (b"*11\r\n".to_vec(), "unauthenticated multibulk length"),
        (b"*2\r\n$4\r\nAUTH\r\n$16385\r\n".to_vec(), "unauthenticated bulk length"),
    ];
    for (payload, error) in refused {
        let mut c = TcpStream::connect(node.addr).await.expect("connect");
        c.write_all(&payload).await.expect("send");
        let got = read_to_close(&mut c).await;
        assert_eq!(String::from_utf8_lossy(&got), format!("-ERR Protocol error: {error}\r\n"));
    }

    // Within the limits, an unauthenticated client is told to authenticate.
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["GET", "k"]).await, "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd(&["AUTH", "wrong"]).await, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, "+OK\r\n");
    // Authenticated, the same client may send what was refused before.
    let mut del = vec!["DEL"];
    del.extend(["k"; 19]);
    assert_eq!(c.cmd(&del).await, ":0\r\n");
    assert_eq!(c.cmd(&["SET", "k", &"v".repeat(16385)]).await, "+OK\r\n");
    assert_eq!(witness.cmd(&["STRLEN", "k"]).await, ":16385\r\n");
    assert_serving_with(&node, &mut witness, "auth", Some("s3cret")).await;
    node.stop().await;
}

// ---- output ----------------------------------------------------------------------------

const VALUE: usize = 100 * 1024;
/// GETs in a pipeline: 2000 replies of 100 KiB, about 200 MB of output.
const GETS: usize = 2000;

#[tokio::test]
async fn output_buffer_hard_limit_disconnects_a_client_that_does_not_read() {
    let _serial = SERIAL.lock().await;
    let (node, mut witness) =
        start_with(|c| c.set("client-output-buffer-limit", "normal 1mb 0 0").expect("valid limit")).await;
    fill(&mut witness, 20, VALUE).await;

    let mut abuser = TcpStream::connect(node.addr).await.expect("connect");
    abuser.write_all(&get_pipeline(20, GETS)).await.expect("send");
    // Not reading until the server has given up on us: otherwise reading would drain
    // the output and the limit would never be reached.
    let stats = &node.handle().node.stats;
    let disconnects = &stats.output_buffer_disconnections;
    wait_until("the server disconnects the client", || disconnects.load(std::sync::atomic::Ordering::Relaxed) == 1)
        .await;
    let got = read_to_close(&mut abuser).await;
    assert!(
        got.len() < GETS * VALUE / 4,
        "the client got {} bytes of ~{} before being cut off",
        got.len(),
        GETS * VALUE
    );

    assert_eq!(witness.cmd(&["STRLEN", "big:0"]).await, format!(":{VALUE}\r\n"));
    // Clients whose unread output stays under the limit are not cut off: one GET at a
    // time, or a pipeline owing less than 1mb (9 x 100 KiB).
    let reply_len = VALUE + "$102400\r\n\r\n".len();
    let mut reader = node.raw().await;
    for i in 0..20 {
        assert_eq!(reader.cmd(&["GET", &format!("big:{i}")]).await.len(), reply_len);
    }
    reader.send(&get_pipeline(20, 9)).await;
    for _ in 0..9 {
        assert_eq!(reader.reply().await.len(), reply_len);
    }
    assert_eq!(disconnects.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_serving(&node, &mut witness, "output limit").await;
    node.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_cannot_grow_server_memory() {
    let _serial = SERIAL.lock().await;
    let (node, mut witness) = start_with(|_| {}).await;
    fill(&mut witness, 1, VALUE).await;
    // Warm up the read path once so allocator growth it causes is not counted.
    assert_eq!(witness.cmd(&["STRLEN", "big:0"]).await, format!(":{VALUE}\r\n"));
    let before = rss_bytes();

    let mut slow = TcpStream::connect(node.addr).await.expect("connect");
    slow.write_all(&get_pipeline(1, GETS)).await.expect("send");
    // Give the server a bounded window in which unbounded buffering would show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = rss_bytes().saturating_sub(before);
    println!("RSS grew by {} KiB while ~{} MiB of replies were owed", grown / 1024, (GETS * VALUE) >> 20);
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes for a client that never reads");
    assert_serving(&node, &mut witness, "slow reader").await;

    // Nothing was lost by the wait: every reply arrives once the client reads.
    let reply_len = VALUE + "$102400\r\n\r\n".len();
    let mut total = 0usize;
    let mut chunk = vec![0u8; 256 * 1024];
    while total < GETS * reply_len {
        let n = tokio::time::timeout(REPLY_TIMEOUT, slow.read(&mut chunk))
            .await
            .expect("replies keep coming")
            .expect("read");
        assert!(n > 0, "closed after {total} bytes");
        total += n;
    }
    assert_eq!(total, GETS * reply_len);
    assert_serving(&node, &mut witness, "slow reader done").await;
    node.stop().await;
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_client_that_never_reads() {
    let _serial = SERIAL.lock().await;
    let (node, mut witness) = start_with(|_| {}).await;
    fill(&mut witness, 1, VALUE).await;
    let mut slow = TcpStream::connect(node.addr).await.expect("connect");
    slow.write_all(&get_pipeline(1, GETS)).await.expect("send");
    // Once the server has written more than the sockets can hold, it waits on us.
    let stats = &node.handle().node.stats;
    wait_until("the server is writing to the slow client", || {
        stats.net_output_bytes.load(std::sync::atomic::Ordering::Relaxed) > 4 * VALUE as u64
    })
    .await;
    tokio::time::timeout(REPLY_TIMEOUT, node.stop()).await.expect("shutdown finishes with a blocked writer");
    drop(slow);
}
