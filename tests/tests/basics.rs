//! Byte-exact basics over a real socket: strings, errors, pipelining, RESP3.

use prism_tests::{bulk, TestNode};

#[tokio::test]
async fn set_get_and_errors() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"));
    assert_eq!(c.cmd(&["GET", "missing"]).await, "$-1\r\n");
    assert_eq!(c.cmd(&["GET"]).await, "-ERR wrong number of arguments for 'get' command\r\n");
    assert_eq!(c.cmd(&["NOPE", "a"]).await, "-ERR unknown command 'NOPE', with args beginning with: 'a' \r\n");
    node.stop().await;
}

#[tokio::test]
async fn pipeline_replies_in_order() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n").await;
    assert_eq!(c.reply().await, "+OK\r\n");
    assert_eq!(c.reply().await, ":2\r\n");
    assert_eq!(c.reply().await, "+PONG\r\n");
    assert_eq!(c.reply().await, bulk("2"));
    node.stop().await;
}

#[tokio::test]
async fn expiry_follows_the_clock() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v", "PX", "100"]).await, "+OK\r\n");
    node.clock.advance_ms(99);
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"));
    node.clock.advance_ms(1);
    assert_eq!(c.cmd(&["GET", "k"]).await, "$-1\r\n");
    node.stop().await;
}

#[tokio::test]
async fn resp3_null() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    c.hello3().await;
    assert_eq!(c.cmd(&["GET", "missing"]).await, "_\r\n");
    node.stop().await;
}
