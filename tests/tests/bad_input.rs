//! Invariant 5 through real sockets: malformed RESP, wrong arity, unknown commands and
//! wrong types get Redis's exact error bytes, change nothing, and never take the node
//! down. Every abuse is followed by proof that the node still serves: a connection opened
//! before the abuse answers PING, a fresh one does SET/GET, and no task panicked on the
//! test's thread (`#[tokio::test]` runs the node's tasks on that thread, and tokio would
//! otherwise swallow a connection task's panic).
//!
//! Randomized input comes from a seeded generator; the seed is printed, and
//! `PRISM_SEED=<n>` replays a run.

use std::collections::HashSet;
use std::sync::{Mutex, Once};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use prism_tests::redis_server::seed;
use prism_tests::rng::Rng;
use prism_tests::{bulk, encode, RawClient, TestNode, REPLY_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---- support -------------------------------------------------------------------------

/// Threads on which a panic happened since the hook was installed.
static PANICKED: Mutex<Option<HashSet<ThreadId>>> = Mutex::new(None);

/// Records panics per thread (then prints them as usual), so a test can tell whether a
/// connection task running on its thread panicked.
fn watch_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(HashSet::new)
                .insert(std::thread::current().id());
            default(info);
        }));
    });
}

fn assert_no_panic_here() {
    let me = std::thread::current().id();
    let panicked = PANICKED.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|s| s.contains(&me));
    assert!(!panicked, "a task of this test's node panicked (see the panic message above)");
}

/// A node plus a connection opened before any abuse.
async fn start() -> (TestNode, RawClient) {
    watch_panics();
    let node = TestNode::start().await;
    let mut witness = node.raw().await;
    assert_eq!(witness.cmd(&["PING"]).await, "+PONG\r\n");
    (node, witness)
}

/// The node still serves: the old connection answers, a new one reads its own write,
/// and nothing panicked.
async fn assert_serving(node: &TestNode, witness: &mut RawClient, tag: &str) {
    assert_eq!(witness.cmd(&["PING"]).await, "+PONG\r\n", "witness after {tag}");
    let mut fresh = node.raw().await;
    let key = format!("alive:{tag}");
    assert_eq!(fresh.cmd(&["SET", &key, tag]).await, "+OK\r\n", "fresh client after {tag}");
    assert_eq!(fresh.cmd(&["GET", &key]).await, bulk(tag), "fresh client after {tag}");
    assert_eq!(fresh.cmd(&["DEL", &key]).await, ":1\r\n");
    assert_no_panic_here();
}

/// Sends `payload` on a new connection (the server may stop reading part way) and
/// returns everything the server wrote before it closed.
async fn send_until_closed(node: &TestNode, payload: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(node.addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    // Write from another task: a server that replies while we still write would
    // otherwise deadlock with us, and a server that closes early makes the write fail.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&payload).await;
        let _ = wr.shutdown().await;
        wr
    });
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("server did not close; got so far {:?}", String::from_utf8_lossy(&got)),
        }
    }
    let _ = tokio::time::timeout(REPLY_TIMEOUT, writer).await.expect("writer finishes");
    got
}

/// A protocol error: exactly this reply, then the connection closes.
async fn assert_protocol_error(node: &TestNode, payload: &[u8], error: &str) {
    let got = send_until_closed(node, payload.to_vec()).await;
    let want = format!("-ERR Protocol error: {error}\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        want,
        "reply to {:?}",
        String::from_utf8_lossy(&payload[..payload.len().min(80)])
    );
}

// ---- malformed RESP ------------------------------------------------------------------

#[tokio::test]
async fn truncated_frames_then_close_change_nothing() {
    let (node, mut witness) = start().await;
    let truncated: &[&[u8]] = &[
        b"*",
        b"*3",
        b"*3\r",
        b"*3\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nabcde",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nabcde\r",
        b"*2\r\n$3\r\nGE",
        b"*1\r\n$",
        b"*1\r\n$4",
        b"SET k inline-without-newline",
        b"SET k \"open quote",
    ];
    for frame in truncated {
        // The server must wait for the rest, say nothing, and close on EOF.
        let got = send_until_closed(&node, frame.to_vec()).await;
        assert_eq!(String::from_utf8_lossy(&got), "", "reply to truncated {:?}", String::from_utf8_lossy(frame));
    }
    assert_eq!(witness.cmd(&["EXISTS", "k"]).await, ":0\r\n", "a truncated SET must not run");
    assert_serving(&node, &mut witness, "truncated").await;
    node.stop().await;
}

#[tokio::test]
async fn empty_and_negative_multibulk_counts_are_ignored() {
    let (node, mut witness) = start().await;
    let mut c = node.raw().await;
    // Redis skips a request whose count is <= 0 and reads on.
    c.send(b"*-1\r\n*0\r\n*-5\r\n\r\n   \r\nPING\r\n").await;
    assert_eq!(c.reply().await, "+PONG\r\n");
    assert_eq!(c.cmd(&["ECHO", "still here"]).await, bulk("still here"));
    assert_serving(&node, &mut witness, "empty").await;
    node.stop().await;
}

#[tokio::test]
async fn bad_lengths_are_protocol_errors() {
    let (node, mut witness) = start().await;
    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        // Above the default proto-max-bulk-len (512mb): refused on the header alone.
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
        (b"*1\r\n$99999999999999999999\r\n", "invalid bulk length"),
        (b"*2147483648\r\n", "invalid multibulk length"),
        (b"*99999999999999999999\r\n", "invalid multibulk length"),
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*\r\n", "invalid multibulk length"),
        (b"*1x\r\n", "invalid multibulk length"),
        (b"*1\r\n$abc\r\n", "invalid bulk length"),
        (b"*1\r\n$\r\n", "invalid bulk length"),
        (b"*1\r\n$4x\r\nPING\r\n", "invalid bulk length"),
        (b"*1\r\n*1\r\n", "expected '$', got '*'"),
        (b"*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\r\nPING\r\n", "expected '$', got 'P'"),
    ];
    for (payload, error) in cases {
        assert_protocol_error(&node, payload, error).await;
    }
    // A request already complete before the bad one still runs; the bad one does not.
    let got = send_until_closed(
        &node,
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$-3\r\n".to_vec(),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n-ERR Protocol error: invalid bulk length\r\n");
    assert_eq!(witness.cmd(&["EXISTS", "a", "b"]).await, ":1\r\n");
    assert_serving(&node, &mut witness, "lengths").await;
    node.stop().await;
}

#[tokio::test]
async fn deep_nesting_is_refused_at_the_first_level() {
    let (node, mut witness) = start().await;
    let payload = b"*1\r\n".repeat(100_000);
    assert_protocol_error(&node, &payload, "expected '$', got '*'").await;
    assert_serving(&node, &mut witness, "nesting").await;
    node.stop().await;
}

#[tokio::test]
async fn overlong_lines_are_refused() {
    let (node, mut witness) = start().await;
    // No newline within 64 KiB: Redis gives up on the line rather than buffer on.
    assert_protocol_error(&node, &vec![b'a'; 100 * 1024], "too big inline request").await;
    let mut count = b"*".to_vec();
    count.extend(vec![b'1'; 100 * 1024]);
    assert_protocol_error(&node, &count, "too big mbulk count string").await;
    let mut len = b"*1\r\n$".to_vec();
    len.extend(vec![b'1'; 100 * 1024]);
    assert_protocol_error(&node, &len, "too big bulk count string").await;
    assert_serving(&node, &mut witness, "long lines").await;
    node.stop().await;
}

#[tokio::test]
async fn inline_quoting_errors() {
    let (node, mut witness) = start().await;
    assert_protocol_error(&node, b"SET k \"abc\r\n", "unbalanced quotes in request").await;
    assert_protocol_error(&node, b"SET k 'abc\r\n", "unbalanced quotes in request").await;
    // A closing quote must be followed by a space or the end of the line.
    assert_protocol_error(&node, b"SET k \"a\"b\r\n", "unbalanced quotes in request").await;
    assert_eq!(witness.cmd(&["EXISTS", "k"]).await, ":0\r\n");
    // Well-formed inline commands still work, quotes and escapes included.
    let mut c = node.raw().await;
    c.send(b"SET k \"a b\\x41\"\r\n").await;
    assert_eq!(c.reply().await, "+OK\r\n");
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("a bA"));
    assert_serving(&node, &mut witness, "quotes").await;
    node.stop().await;
}

/// Bytes that are RESP2 replies, whole, one after another (the last may be cut short).
fn assert_whole_frames(bytes: &[u8], seed: u64) -> usize {
    let mut at = 0;
    let mut frames = 0;
    while at < bytes.len() {
        match redis_protocol::resp2::decode::decode(&bytes[at..]) {
            Ok(Some((_, n))) => {
                at += n;
                frames += 1;
            }
            // The server closed with our unread garbage still queued, so the kernel reset
            // the connection and dropped the tail of what was in flight (as with Redis).
            Ok(None) => break,
            other => panic!(
                "seed {seed}: reply bytes are not whole RESP frames at offset {at} ({other:?}): {:?}",
                String::from_utf8_lossy(&bytes[at..bytes.len().min(at + 200)])
            ),
        }
    }
    frames
}

#[tokio::test]
async fn a_megabyte_of_random_bytes() {
    let (node, mut witness) = start().await;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let garbage: Vec<u8> = (0..1024 * 1024).map(|_| rng.next_u64() as u8).collect();
    let got = send_until_closed(&node, garbage).await;
    assert_whole_frames(&got, seed);
    assert_serving(&node, &mut witness, "random bytes").await;
    node.stop().await;
}

/// Garbage that looks like requests: real command names with odd arguments, broken
/// headers, stray CRLFs, quotes, so the parser and the commands both get exercised.
fn protocol_flavoured_garbage(rng: &mut Rng, size: usize) -> Vec<u8> {
    // Space-separated so the lists stay readable; the arguments also get the empty string.
    let commands: Vec<&str> = "GET SET INCR INCRBY DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SETRANGE GETEX GETDEL \
        GETSET MGET MSET MSETNX SETNX SETEX PSETEX DEL UNLINK EXISTS TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL \
        EXPIRETIME PERSIST RENAME RENAMENX KEYS SCAN RANDOMKEY TOUCH PING ECHO SELECT HSET HGET HGETALL HINCRBY \
        NOSUCHCMD get"
        .split_whitespace()
        .collect();
    let mut words: Vec<&str> = "k k2 {k}x 0 1 -1 10 1000000 9223372036854775807 -9223372036854775808 \
        9223372036854775808 1e308 inf -inf nan 3.5 EX PX EXAT PXAT NX XX GT LT KEEPTTL GET PERSIST MATCH COUNT TYPE \
        * [a- \\ AUTH 3 2"
        .split_whitespace()
        .collect();
    words.push("");
    let mut out = Vec::with_capacity(size + 256);
    // Mostly well-formed requests with odd arguments (each answered), then damage:
    // the first protocol error ends the connection, so it comes last.
    while out.len() < size * 9 / 10 {
        let argc = 1 + rng.below(6);
        let mut args = vec![rng.pick(&commands)];
        for _ in 1..argc {
            args.push(rng.pick(&words));
        }
        if rng.below(6) == 0 {
            out.extend(args.join(" ").as_bytes());
            out.extend(b"\r\n");
        } else {
            out.extend(encode(&args));
        }
    }
    while out.len() < size {
        match rng.below(4) {
            0 => {
                let mut req = encode(&[rng.pick(&commands), rng.pick(&words)]);
                req.truncate(rng.below(req.len()));
                out.extend(req);
            }
            1 => out.extend(format!("{}{}\r\n", ["*", "$"][rng.below(2)], rng.pick(&words)).as_bytes()),
            2 => out.extend([b"\r\n".as_slice(), b"\"", b"'", b"\n", b"\r", b"\0"][rng.below(6)]),
            _ => out.extend((0..rng.below(32)).map(|_| rng.next_u64() as u8)),
        }
    }
    out
}

#[tokio::test]
async fn request_shaped_garbage() {
    let (node, mut witness) = start().await;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut frames = 0;
    let started = Instant::now();
    // 64 connections of 16 KiB each: a protocol error ends a connection, so many short
    // ones reach further into the parser and the commands than one long one.
    for _ in 0..64 {
        let garbage = protocol_flavoured_garbage(&mut rng, 16 * 1024);
        let got = send_until_closed(&node, garbage).await;
        frames += assert_whole_frames(&got, seed);
        assert!(started.elapsed() < Duration::from_secs(120), "seed {seed}: garbage rounds are taking too long");
    }
    println!("{frames} reply frames");
    assert_serving(&node, &mut witness, "request garbage").await;
    node.stop().await;
}

// ---- command errors ------------------------------------------------------------------

#[tokio::test]
async fn wrong_arity_is_refused_and_changes_nothing() {
    let (node, mut witness) = start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    let arity = |name: &str| format!("-ERR wrong number of arguments for '{name}' command\r\n");
    assert_eq!(c.cmd(&["GET"]).await, arity("get"));
    assert_eq!(c.cmd(&["GET", "k", "extra"]).await, arity("get"));
    assert_eq!(c.cmd(&["SET", "k"]).await, arity("set"));
    assert_eq!(c.cmd(&["set", "k"]).await, arity("set"), "the name is reported in lower case");
    assert_eq!(c.cmd(&["INCR"]).await, arity("incr"));
    assert_eq!(c.cmd(&["MSET", "a", "1", "b"]).await, arity("mset"));
    assert_eq!(c.cmd(&["DEL"]).await, arity("del"));
    assert_eq!(c.cmd(&["EXPIRE", "k"]).await, arity("expire"));
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"));
    assert_eq!(c.cmd(&["EXISTS", "a", "b"]).await, ":0\r\n", "a refused MSET sets nothing");
    assert_eq!(c.cmd(&["TTL", "k"]).await, ":-1\r\n");
    assert_serving(&node, &mut witness, "arity").await;
    node.stop().await;
}

#[tokio::test]
async fn unknown_commands_in_redis_words() {
    let (node, mut witness) = start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["NOPE"]).await, "-ERR unknown command 'NOPE', with args beginning with: \r\n");
    assert_eq!(
        c.cmd(&["NOPE", "a", "b c"]).await,
        "-ERR unknown command 'NOPE', with args beginning with: 'a' 'b c' \r\n"
    );
    // CR and LF in an echoed argument become spaces, so the reply stays one line.
    assert_eq!(c.cmd(&["NOPE", "x\r\ny"]).await, "-ERR unknown command 'NOPE', with args beginning with: 'x  y' \r\n");
    assert_eq!(c.cmd(&[""]).await, "-ERR unknown command '', with args beginning with: \r\n");
    c.send(b"FOO bar\r\n").await;
    assert_eq!(c.reply().await, "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n");
    // The name is cut at 128 bytes.
    let long = "X".repeat(300);
    assert_eq!(
        c.cmd(&[&long]).await,
        format!("-ERR unknown command '{}', with args beginning with: \r\n", "X".repeat(128))
    );
    // Arguments are listed while the list is under 128 bytes, each cut to the room left.
    let (a, b) = ("a".repeat(100), "b".repeat(100));
    assert_eq!(
        c.cmd(&["NOPE", &a, &b, "c"]).await,
        format!("-ERR unknown command 'NOPE', with args beginning with: '{a}' '{}' \r\n", "b".repeat(25))
    );
    assert_eq!(
        c.cmd(&["NOPE", &"z".repeat(300), "c"]).await,
        format!("-ERR unknown command 'NOPE', with args beginning with: '{}' \r\n", "z".repeat(128))
    );
    assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n", "an unknown command does not close the connection");
    assert_serving(&node, &mut witness, "unknown").await;
    node.stop().await;
}

#[tokio::test]
async fn wrong_types_and_bad_values_change_nothing() {
    let (node, mut witness) = start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "s", "abc"]).await, "+OK\r\n");
    let not_int = "-ERR value is not an integer or out of range\r\n";
    assert_eq!(c.cmd(&["INCR", "s"]).await, not_int);
    assert_eq!(c.cmd(&["INCRBY", "s", "1"]).await, not_int);
    assert_eq!(c.cmd(&["SET", "n", "10"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["INCRBY", "n", "x"]).await, not_int);
    assert_eq!(c.cmd(&["INCRBY", "n", "9223372036854775807"]).await, "-ERR increment or decrement would overflow\r\n");
    assert_eq!(c.cmd(&["SET", "s", "v", "EX", "0"]).await, "-ERR invalid expire time in 'set' command\r\n");
    assert_eq!(c.cmd(&["SET", "s", "v", "EX", "x"]).await, not_int);
    assert_eq!(c.cmd(&["SET", "s", "v", "NX", "XX"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["SET", "s", "v", "EX"]).await, "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["GET", "s"]).await, bulk("abc"), "refused writes leave the value");
    assert_eq!(c.cmd(&["TTL", "s"]).await, ":-1\r\n", "... and its TTL");
    assert_eq!(c.cmd(&["GET", "n"]).await, bulk("10"));

    // WRONGTYPE: a command of one type against a key of another changes nothing.
    assert_eq!(c.cmd(&["HSET", "h", "f", "v"]).await, ":1\r\n");
    let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    assert_eq!(c.cmd(&["GET", "h"]).await, wrongtype);
    assert_eq!(c.cmd(&["INCR", "h"]).await, wrongtype);
    assert_eq!(c.cmd(&["APPEND", "h", "x"]).await, wrongtype);
    assert_eq!(c.cmd(&["HGET", "h", "f"]).await, bulk("v"), "the hash is untouched");
    assert_eq!(c.cmd(&["HSET", "s", "f", "v"]).await, wrongtype);
    assert_eq!(c.cmd(&["GET", "s"]).await, bulk("abc"));
    assert_serving(&node, &mut witness, "types").await;
    node.stop().await;
}
