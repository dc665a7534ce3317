//! Pub/sub through real sockets: confirmations, delivery, patterns, sharded channels,
//! RESP2's subscribed context, RESP3 push frames, introspection, and the output limit
//! that disconnects a subscriber that does not read.

use std::time::{Duration, Instant};

use prism_tests::{bulk, TestNode};

/// Polls `f` until it is true, for at most 10 s.
async fn eventually(mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn subscribe_publish_unsubscribe_resp2() {
    let node = TestNode::start().await;
    let mut sub = node.raw().await;
    let mut publisher = node.raw().await;
    sub.send(&prism_tests::encode(&["SUBSCRIBE", "news", "sport"])).await;
    assert_eq!(sub.reply().await, "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    assert_eq!(sub.reply().await, "*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n");
    assert_eq!(publisher.cmd(&["PUBLISH", "news", "hello"]).await, ":1\r\n");
    assert_eq!(publisher.cmd(&["PUBLISH", "nobody", "x"]).await, ":0\r\n");
    assert_eq!(sub.reply().await, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");

    // RESP2 subscribed context: only the pub/sub commands, PING, QUIT and RESET.
    assert_eq!(
        sub.cmd(&["GET", "k"]).await,
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(sub.cmd(&["PING"]).await, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(sub.cmd(&["PING", "hi"]).await, "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n");

    assert_eq!(
        publisher.cmd(&["PUBSUB", "NUMSUB", "news", "none"]).await,
        "*4\r\n$4\r\nnews\r\n:1\r\n$4\r\nnone\r\n:0\r\n"
    );
    assert_eq!(publisher.cmd(&["PUBSUB", "CHANNELS"]).await, "*2\r\n$4\r\nnews\r\n$5\r\nsport\r\n");
    assert_eq!(publisher.cmd(&["PUBSUB", "CHANNELS", "s*"]).await, "*1\r\n$5\r\nsport\r\n");

    sub.send(&prism_tests::encode(&["UNSUBSCRIBE"])).await;
    assert_eq!(sub.reply().await, "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    assert_eq!(sub.reply().await, "*3\r\n$11\r\nunsubscribe\r\n$5\r\nsport\r\n:0\r\n");
    // Out of the subscribed context, ordinary commands work again.
    assert_eq!(sub.cmd(&["GET", "k"]).await, "$-1\r\n");
    assert_eq!(sub.cmd(&["UNSUBSCRIBE"]).await, "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    assert_eq!(publisher.cmd(&["PUBLISH", "news", "again"]).await, ":0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn patterns_and_counts() {
    let node = TestNode::start().await;
    let mut sub = node.raw().await;
    let mut publisher = node.raw().await;
    sub.send(&prism_tests::encode(&["PSUBSCRIBE", "user.*"])).await;
    assert_eq!(sub.reply().await, "*3\r\n$10\r\npsubscribe\r\n$6\r\nuser.*\r\n:1\r\n");
    sub.send(&prism_tests::encode(&["SUBSCRIBE", "user.1"])).await;
    assert_eq!(sub.reply().await, "*3\r\n$9\r\nsubscribe\r\n$6\r\nuser.1\r\n:2\r\n");
    // One message per matching subscription: the channel and the pattern.
    assert_eq!(publisher.cmd(&["PUBLISH", "user.1", "m"]).await, ":2\r\n");
    let mut got = vec![sub.reply().await, sub.reply().await];
    got.sort();
    assert_eq!(
        got,
        vec![
            "*3\r\n$7\r\nmessage\r\n$6\r\nuser.1\r\n$1\r\nm\r\n".to_string(),
            "*4\r\n$8\r\npmessage\r\n$6\r\nuser.*\r\n$6\r\nuser.1\r\n$1\r\nm\r\n".to_string(),
        ]
    );
    assert_eq!(publisher.cmd(&["PUBSUB", "NUMPAT"]).await, ":1\r\n");
    sub.send(&prism_tests::encode(&["PUNSUBSCRIBE", "user.*"])).await;
    assert_eq!(sub.reply().await, "*3\r\n$12\r\npunsubscribe\r\n$6\r\nuser.*\r\n:1\r\n");
    assert_eq!(publisher.cmd(&["PUBSUB", "NUMPAT"]).await, ":0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn sharded_channels() {
    let node = TestNode::start().await;
    let mut sub = node.raw().await;
    let mut publisher = node.raw().await;
    sub.send(&prism_tests::encode(&["SSUBSCRIBE", "{orders}.eu", "{orders}.us"])).await;
    assert_eq!(sub.reply().await, "*3\r\n$10\r\nssubscribe\r\n$11\r\n{orders}.eu\r\n:1\r\n");
    assert_eq!(sub.reply().await, "*3\r\n$10\r\nssubscribe\r\n$11\r\n{orders}.us\r\n:2\r\n");
    // The plain namespace does not see shard channels.
    assert_eq!(publisher.cmd(&["PUBLISH", "{orders}.eu", "x"]).await, ":0\r\n");
    assert_eq!(publisher.cmd(&["SPUBLISH", "{orders}.eu", "x"]).await, ":1\r\n");
    assert_eq!(sub.reply().await, "*3\r\n$8\r\nsmessage\r\n$11\r\n{orders}.eu\r\n$1\r\nx\r\n");
    assert_eq!(publisher.cmd(&["PUBSUB", "SHARDCHANNELS"]).await, "*2\r\n$11\r\n{orders}.eu\r\n$11\r\n{orders}.us\r\n");
    assert_eq!(publisher.cmd(&["PUBSUB", "SHARDNUMSUB", "{orders}.us"]).await, "*2\r\n$11\r\n{orders}.us\r\n:1\r\n");
    assert_eq!(publisher.cmd(&["PUBSUB", "CHANNELS"]).await, "*0\r\n");
    node.stop().await;
}

#[tokio::test]
async fn resp3_push_frames_and_normal_commands() {
    let node = TestNode::start().await;
    let mut sub = node.raw().await;
    sub.hello3().await;
    let mut publisher = node.raw().await;
    sub.send(&prism_tests::encode(&["SUBSCRIBE", "c"])).await;
    assert_eq!(sub.reply().await, ">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n");
    // RESP3 clients may run any command while subscribed.
    assert_eq!(sub.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    assert_eq!(sub.cmd(&["GET", "k"]).await, bulk("v"));
    assert_eq!(sub.cmd(&["PING"]).await, "+PONG\r\n");
    assert_eq!(publisher.cmd(&["PUBLISH", "c", "hi"]).await, ":1\r\n");
    assert_eq!(sub.reply().await, ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n");
    assert_eq!(sub.cmd(&["UNSUBSCRIBE", "nope"]).await, ">3\r\n$11\r\nunsubscribe\r\n$4\r\nnope\r\n:1\r\n");
    node.stop().await;
}

#[tokio::test]
async fn disconnect_and_reset_drop_subscriptions() {
    let node = TestNode::start().await;
    let mut publisher = node.raw().await;
    {
        let mut sub = node.raw().await;
        sub.send(&prism_tests::encode(&["SUBSCRIBE", "gone"])).await;
        sub.reply().await;
    }
    assert!(
        eventually(async || publisher.cmd(&["PUBSUB", "NUMSUB", "gone"]).await.ends_with(":0\r\n")).await,
        "a closed subscriber leaves its channels"
    );
    let mut sub = node.raw().await;
    sub.send(&prism_tests::encode(&["SUBSCRIBE", "r"])).await;
    sub.reply().await;
    assert_eq!(sub.cmd(&["RESET"]).await, "+RESET\r\n");
    assert_eq!(publisher.cmd(&["PUBLISH", "r", "x"]).await, ":0\r\n");
    assert_eq!(sub.cmd(&["GET", "k"]).await, "$-1\r\n");
    node.stop().await;
}

#[tokio::test]
async fn subscriber_that_does_not_read_is_disconnected_at_the_limit() {
    let node = TestNode::start_with(|c| c.set("client-output-buffer-limit", "pubsub 256kb 0 0").unwrap()).await;
    let mut slow = node.raw().await;
    slow.send(&prism_tests::encode(&["SUBSCRIBE", "firehose"])).await;
    slow.reply().await;
    // Never read from `slow` again; publish far more than socket buffers and the limit hold.
    let mut publisher = node.raw().await;
    let payload = "x".repeat(64 * 1024);
    let mut delivered_to_none = false;
    for _ in 0..2000 {
        let r = publisher.cmd(&["PUBLISH", "firehose", &payload]).await;
        if r == ":0\r\n" {
            delivered_to_none = true;
            break;
        }
    }
    assert!(delivered_to_none, "the slow subscriber was dropped before 2000 x 64 KiB were queued");
    assert!(slow.closed().await, "the slow subscriber's connection is closed");
    assert_eq!(publisher.cmd(&["PING"]).await, "+PONG\r\n");
    node.stop().await;
}
