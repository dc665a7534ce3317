//! A TCP link proxy that fault tests put in front of one address (a node's peer port) to cut,
//! heal and slow one directed link, since `tc netem` and network namespaces are not
//! available on the test machines.
//!
//! Each proxy owns a thread running a single-threaded tokio runtime; the test controls it
//! through a `watch` channel, so every control call is synchronous and takes effect at once.
//!
//! Invariants:
//! - While partitioned, no byte crosses the link: established connections are closed when
//!   the partition starts, and new connections are accepted but blackholed (held open, their
//!   input discarded, nothing forwarded), as a connect into a real partition hangs.
//! - Healing closes the blackholed connections (their streams lost bytes, so they must not
//!   be reused); connections made after the heal are forwarded.
//! - A delay holds every chunk for at least the delay of its direction, in order; a
//!   direction's buffer is bounded (the reader waits when it is full).
//! - Dropping the proxy closes its listener and every connection through it.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Which way bytes flow through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting side to the target.
    ToTarget,
    /// From the target back to the connecting side.
    ToClient,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LinkState {
    partitioned: bool,
    delay_to_target: Duration,
    delay_to_client: Duration,
    stopped: bool,
}

impl LinkState {
    fn delay(&self, dir: Direction) -> Duration {
        match dir {
            Direction::ToTarget => self.delay_to_target,
            Direction::ToClient => self.delay_to_client,
        }
    }

    /// Whether a connection accepted as `blackholed` (or not) must now be closed.
    fn ends(&self, blackholed: bool) -> bool {
        self.stopped || self.partitioned != blackholed
    }
}

/// A proxy listening on a loopback port and forwarding to `target`.
pub struct LinkProxy {
    addr: SocketAddr,
    target: SocketAddr,
    control: watch::Sender<LinkState>,
    thread: Option<JoinHandle<()>>,
}

impl LinkProxy {
    /// Binds a free loopback port and starts forwarding to `target` (which need not be
    /// listening yet: a connection made while it is down is closed at once).
    pub fn start(target: SocketAddr) -> std::io::Result<LinkProxy> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (control, watcher) = watch::channel(LinkState::default());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name(format!("proxy-{addr}")).spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(std_listener) {
                    Ok(listener) => accept_loop(listener, target, watcher).await,
                    Err(e) => eprintln!("proxy {addr}: cannot register the listener: {e}"),
                }
            });
            // Dropping the runtime here cancels every connection task, closing its sockets.
        })?;
        Ok(LinkProxy { addr, target, control, thread: Some(thread) })
    }

    /// Where connecting sides should connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Cuts the link: closes established connections and blackholes new ones.
    pub fn partition(&self) {
        self.control.send_modify(|s| s.partitioned = true);
    }

    /// Restores the link: blackholed connections are closed, new ones are forwarded.
    pub fn heal(&self) {
        self.control.send_modify(|s| s.partitioned = false);
    }

    pub fn is_partitioned(&self) -> bool {
        self.control.borrow().partitioned
    }

    /// Holds every chunk flowing in `dir` for `delay` (zero turns it off).
    pub fn set_delay(&self, dir: Direction, delay: Duration) {
        self.control.send_modify(|s| match dir {
            Direction::ToTarget => s.delay_to_target = delay,
            Direction::ToClient => s.delay_to_client = delay,
        });
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.control.send_modify(|s| s.stopped = true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, mut control: watch::Receiver<LinkState>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let state = *control.borrow();
                if state.stopped {
                    return;
                }
                tokio::spawn(connection(client, target, control.clone(), state.partitioned));
            }
            changed = control.changed() => {
                if changed.is_err() || control.borrow().stopped {
                    return;
                }
            }
        }
    }
}

/// Resolves once the link state says a connection accepted as `blackholed` must close.
async fn until_ended(mut control: watch::Receiver<LinkState>, blackholed: bool) {
    loop {
        if control.borrow_and_update().ends(blackholed) {
            return;
        }
        if control.changed().await.is_err() {
            return;
        }
    }
}

async fn connection(client: TcpStream, target: SocketAddr, control: watch::Receiver<LinkState>, blackholed: bool) {
    if blackholed {
        let (mut rd, _wr) = client.into_split();
        let discard = async {
            let mut sink = vec![0u8; 16 * 1024];
            while let Ok(n) = rd.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        tokio::select! {
            _ = discard => {}
            _ = until_ended(control, true) => {}
        }
        return;
    }
    let server = tokio::select! {
        s = TcpStream::connect(target) => s,
        _ = until_ended(control.clone(), false) => return,
    };
    // Target down: closing the client side is what a refused connection looks like to it.
    let Ok(server) = server else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_rd, client_wr) = client.into_split();
    let (server_rd, server_wr) = server.into_split();
    let up = pump(client_rd, server_wr, control.clone(), Direction::ToTarget);
    let down = pump(server_rd, client_wr, control.clone(), Direction::ToClient);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = until_ended(control, false) => {}
    }
}

/// Copies one direction, holding each chunk for that direction's current delay; half-closes
/// the destination when the source ends.
async fn pump(mut rd: OwnedReadHalf, mut wr: OwnedWriteHalf, control: watch::Receiver<LinkState>, dir: Direction) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = Instant::now() + control.borrow().delay(dir);
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// Echoes every byte back, one thread per connection.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(addr: SocketAddr, read_timeout: Duration) -> TcpStream {
        let s = TcpStream::connect(addr).expect("connect to the proxy");
        s.set_read_timeout(Some(read_timeout)).expect("timeout");
        s
    }

    fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).expect("write");
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).expect("echo arrives");
        got
    }

    /// True if the stream was closed by the other side (EOF or reset) within its timeout.
    fn closed(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }

    /// True if nothing at all arrives within the stream's (short) read timeout.
    fn silent(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
    }

    #[test]
    fn forwards_both_ways_over_many_connections() {
        let proxy = LinkProxy::start(echo_server()).expect("proxy");
        for i in 0..5 {
            let mut s = connect(proxy.addr(), Duration::from_secs(10));
            let msg = format!("hello {i}").repeat(1000);
            assert_eq!(roundtrip(&mut s, msg.as_bytes()), msg.as_bytes());
        }
    }

    #[test]
    fn partition_closes_established_blackholes_new_and_heal_restores() {
        let proxy = LinkProxy::start(echo_server()).expect("proxy");
        let mut before = connect(proxy.addr(), Duration::from_secs(10));
        assert_eq!(roundtrip(&mut before, b"ping"), b"ping");

        proxy.partition();
        assert!(proxy.is_partitioned());
        assert!(closed(&mut before), "an established connection survived the partition");
        let mut during = connect(proxy.addr(), Duration::from_millis(300));
        during.write_all(b"lost").expect("a blackholed connection still accepts bytes");
        assert!(silent(&mut during), "bytes crossed a partitioned link");

        proxy.heal();
        during.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        assert!(closed(&mut during), "a blackholed connection was kept after the heal");
        let mut after = connect(proxy.addr(), Duration::from_secs(10));
        assert_eq!(roundtrip(&mut after, b"pong"), b"pong");
    }

    #[test]
    fn delay_holds_each_direction_for_at_least_its_delay() {
        let proxy = LinkProxy::start(echo_server()).expect("proxy");
        let mut s = connect(proxy.addr(), Duration::from_secs(10));
        let delay = Duration::from_millis(150);
        for dir in [Direction::ToTarget, Direction::ToClient] {
            proxy.set_delay(dir, delay);
            let started = std::time::Instant::now();
            assert_eq!(roundtrip(&mut s, b"slow"), b"slow");
            // A lower bound only: the proxy must not deliver early; how late is a benchmark.
            assert!(started.elapsed() >= delay, "{dir:?} delivered before its delay");
            proxy.set_delay(dir, Duration::ZERO);
        }
        assert_eq!(roundtrip(&mut s, b"fast"), b"fast");
    }

    #[test]
    fn a_dead_target_closes_the_client_side_and_drop_closes_everything() {
        let dead = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let proxy = LinkProxy::start(dead).expect("proxy");
        let mut s = connect(proxy.addr(), Duration::from_secs(10));
        assert!(closed(&mut s), "a connection to a dead target stayed open");

        let proxy = LinkProxy::start(echo_server()).expect("proxy");
        let addr = proxy.addr();
        let mut s = connect(addr, Duration::from_secs(10));
        assert_eq!(roundtrip(&mut s, b"x"), b"x");
        drop(proxy);
        assert!(closed(&mut s), "a connection outlived its proxy");
        assert!(TcpStream::connect(addr).is_err(), "the proxy still listens after drop");
    }
}
