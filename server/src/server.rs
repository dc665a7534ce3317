//! Starting and stopping a node: bind, accept, background tasks, graceful shutdown.
//!
//! Clients arrive on the plain port (`port`), the TLS port (`tls-port`, tls.rs) or both;
//! `port 0` with a `tls-port` serves TLS only, as Redis. Both ports run the same
//! [`run_connection`], so protected mode, `maxclients`, AUTH and the connection metrics
//! treat them alike.
//!
//! Shutdown follows mini-redis: one watch channel tells every task to stop, and
//! [`ServerHandle::shutdown`] waits until every connection task has dropped its
//! completion sender, so a stopped server holds no sockets.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prism_engine::clock::Clock;
use prism_engine::keyspace::ExpiryCursor;
use prism_engine::Op;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::conn;
use crate::node::{random_hex_id, Node};
use crate::replica::Replica;
use crate::topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot use data directory {path}: {source}")]
    DataDir { path: String, source: io::Error },
    #[error("cannot read requirepass-file {path}: {why}")]
    Password { path: String, why: String },
    #[error("cannot join the shard group: {0}")]
    Raft(String),
    #[error("cannot open the cold store: {0}")]
    ColdStore(String),
    #[error("cannot read {key} {path}: {why}")]
    Secret { key: &'static str, path: String, why: String },
    #[error("cannot load aclfile: {0}")]
    Acl(String),
    #[error("{0}")]
    Tls(String),
}

/// A running node.
pub struct ServerHandle {
    /// The plain client port's address (the TLS port's when the node serves TLS only).
    pub addr: SocketAddr,
    /// The TLS port's address (`tls-port`), when it listens.
    pub tls_addr: Option<SocketAddr>,
    /// The admin HTTP port's address (`admin-port`), when it listens.
    pub admin_addr: Option<SocketAddr>,
    pub node: Arc<Node>,
    stop: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
}

impl ServerHandle {
    /// Stops accepting, closes every connection, and waits for all tasks to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        // Every task holds a sender; recv() returns None once all have dropped.
        let _ = self.done.recv().await;
        if let Some(replica) = self.node.replica() {
            replica.shutdown().await;
        }
    }
}

/// Starts a node: validates the data directory and secrets, binds the client port and
/// spawns the accept loop and background tasks.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<ServerHandle, StartError> {
    let node_id = load_or_create_node_id(&config.data_dir)?;
    let password = match &config.requirepass_file {
        Some(path) => Some(read_password(path)?),
        None => None,
    };
    let secret = cluster_secret(&config).map_err(|why| {
        let path = config.cluster_secret_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        StartError::Secret { key: "cluster-secret-file", path, why }
    })?;
    if secret.is_none() && !config.tls_cluster && (!config.raft_group.is_empty() || config.cluster_topology.is_some()) {
        tracing::warn!(
            "no cluster-secret-file: peers are not authenticated, anyone who reaches the peer port can join the shard group (docs/security.md)"
        );
    }
    let tls_acceptor = crate::tls::client_acceptor(&config).map_err(StartError::Tls)?;
    // Checked here too, so that a bad peer TLS file fails the start before anything binds.
    crate::tls::peer_tls(&config).map_err(StartError::Tls)?;
    let tls_listener = match &tls_acceptor {
        Some(_) => {
            let addr = SocketAddr::new(config.bind, config.tls_port);
            let l = listen(addr, config.tcp_backlog).map_err(|source| StartError::Bind { addr, source })?;
            let bound = l.local_addr().map_err(|source| StartError::Bind { addr, source })?;
            Some((l, bound))
        }
        None => None,
    };
    let tls_addr = tls_listener.as_ref().map(|(_, a)| *a);
    // Port 0 with a TLS port: TLS only. Port 0 alone (tests only: Config::set refuses
    // it without a tls-port) lets the OS pick a port.
    let listener = match tls_addr {
        Some(_) if config.port == 0 => None,
        _ => {
            let addr = SocketAddr::new(config.bind, config.port);
            let l = listen(addr, config.tcp_backlog).map_err(|source| StartError::Bind { addr, source })?;
            let bound = l.local_addr().map_err(|source| StartError::Bind { addr, source })?;
            Some((l, bound))
        }
    };
    let plain_addr = listener.as_ref().map(|(_, a)| *a);
    let Some(addr) = plain_addr.or(tls_addr) else {
        return Err(StartError::Tls("port 0 needs a tls-port: the node would have no client port".into()));
    };
    let admin_listener = bind_admin(&config, addr.port()).await?;
    let ip = match &config.announce_ip {
        Some(ip) => ip.clone(),
        None if config.bind.is_unspecified() => String::new(),
        None => config.bind.to_string(),
    };
    let mut config = config;
    config.port = plain_addr.map_or(0, |a| a.port());
    config.tls_port = tls_addr.map_or(0, |a| a.port());
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
    // CONFIG GET admin-port then names the port actually in use (0: none).
    config.admin_port = admin_addr.map_or(crate::config::AdminPort::Off, |a| crate::config::AdminPort::Port(a.port()));
    let topology = Topology::single(node_id, ip, addr.port());
    let replication = config.clone();
    let aclfile = config.aclfile.clone();
    let node = Arc::new(Node::new(config, clock, password, topology));
    // Before the log replays: nothing is loaded or spilled until requests arrive anyway,
    // but a bad `cold-store` is a startup error, not a surprise at the first spill.
    node.tiering.open(&replication).map_err(StartError::ColdStore)?;
    if let Some(path) = &aclfile {
        node.acl.load_file(None, path).map_err(StartError::Acl)?;
    }
    if let Some(replica) = Replica::start(&node, &replication).await.map_err(StartError::Raft)? {
        let _ = node.replica.set(replica);
    }

    let (stop, stop_rx) = watch::channel(false);
    let (done_tx, done) = mpsc::channel::<()>(1);
    if let Some((listener, _)) = listener {
        tokio::spawn(accept_loop(node.clone(), listener, stop_rx.clone(), done_tx.clone()));
    }
    if let (Some((listener, _)), Some(acceptor)) = (tls_listener, tls_acceptor) {
        tokio::spawn(crate::tls::accept_loop(node.clone(), listener, acceptor, stop_rx.clone(), done_tx.clone()));
    }
    if let Some(listener) = admin_listener {
        crate::admin::spawn(node.clone(), listener, stop_rx.clone(), done_tx.clone());
    }
    tokio::spawn(crate::tier::spiller(node.clone(), stop_rx.clone(), done_tx.clone()));
    tokio::spawn(crate::cold_gc::collector(node.clone(), stop_rx.clone(), done_tx.clone()));
    tokio::spawn(active_expiry(node.clone(), stop_rx, done_tx));
    tracing::info!(%addr, tls = ?tls_addr, admin = ?admin_addr, "prism node ready");
    Ok(ServerHandle { addr, tls_addr, admin_addr, node, stop, done })
}

/// The client listener, with `backlog` places in its accept queue (tokio's `bind` gives
/// 128, which a burst of connects overflows: each overflowed connect then waits for a SYN
/// retransmit, a second).
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Binds the admin port (admin.rs) before anything starts, so a taken fixed port fails the
/// start like a taken client port; a taken `auto` port only warns, since the node did
/// not ask for that port by name.
async fn bind_admin(config: &Config, client_port: u16) -> Result<Option<TcpListener>, StartError> {
    // `auto` counts from the client port the user named (0: chosen by the OS, no auto).
    let named = if config.port == 0 && config.tls_port != 0 { client_port } else { config.port };
    let Some((addr, required)) = crate::admin::admin_addr(config, named) else { return Ok(None) };
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(source) if required => Err(StartError::Bind { addr, source }),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "admin-port auto: cannot listen, running without the admin port");
            Ok(None)
        }
    }
}

/// The next connection on `listener`, or `None` once `stop` changes. An accept error
/// (out of file descriptors and the like) is logged, naming `port`, and retried after a
/// short back-off instead of spinning. Every accept loop (client, TLS, admin) uses it.
pub(crate) async fn accept_next(
    listener: &TcpListener,
    stop: &mut watch::Receiver<bool>,
    port: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return None,
        };
        match accepted {
            Ok(x) => return Some(x),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed on the {port} port");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn accept_loop(node: Arc<Node>, listener: TcpListener, mut stop: watch::Receiver<bool>, done: mpsc::Sender<()>) {
    while let Some((stream, peer)) = accept_next(&listener, &mut stop, "client").await {
        node.stats.connections_received.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let node2 = node.clone();
        let stop2 = stop.clone();
        let done2 = done.clone();
        tokio::spawn(async move {
            let _done = done2;
            let laddr = stream.local_addr().unwrap_or(peer);
            let fd = raw_fd(&stream);
            run_connection(node2, stream, peer, laddr, fd, stop2).await;
        });
    }
}

/// Serves one accepted client (after its TLS handshake, on the TLS port): protected
/// mode and `maxclients` first, then the connection loop.
pub(crate) async fn run_connection<S: conn::ClientStream>(
    node: Arc<Node>,
    mut stream: S,
    peer: SocketAddr,
    laddr: SocketAddr,
    fd: i64,
    stop: watch::Receiver<bool>,
) {
    let max = node.limits.maxclients.load(Ordering::Relaxed);
    if crate::acl::protected_refuses(node.config.read().protected_mode, node.requires_auth(), peer.ip()) {
        node.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, "protected mode: refused a non-loopback client (no password is set)");
        refuse(&mut stream, crate::acl::DENIED.as_bytes()).await;
        return;
    }
    let Some(reg) = node.clients.register(peer, laddr, fd, max) else {
        node.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
        refuse(&mut stream, b"-ERR max number of clients reached\r\n").await;
        return;
    };
    reg.handle.acl.set(node.acl.default_user());
    conn::serve(node.clone(), stream, reg.handle.clone(), stop).await;
}

/// Answers a refused client and closes; bounded, since a TLS client that does not read
/// could otherwise hold the task.
async fn refuse<S: conn::ClientStream>(stream: &mut S, reply: &[u8]) {
    let bye = async {
        let _ = stream.write_all(reply).await;
        let _ = stream.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
}

#[cfg(unix)]
pub(crate) fn raw_fd(stream: &TcpStream) -> i64 {
    use std::os::fd::AsRawFd;
    stream.as_raw_fd() as i64
}

#[cfg(not(unix))]
pub(crate) fn raw_fd(_: &TcpStream) -> i64 {
    -1
}

/// Removes expired keys in the background, bounded per tick: each tick examines at most
/// a fixed number of entries and removes what it found through the write path, so the
/// removal is an ordinary deterministic write.
async fn active_expiry(node: Arc<Node>, mut stop: watch::Receiver<bool>, _done: mpsc::Sender<()>) {
    const BUDGET: usize = 2_000;
    let mut cursor = ExpiryCursor::default();
    loop {
        let hz = node.config.read().hz.max(1);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(1000 / hz as u64)) => {}
            _ = stop.changed() => return,
        }
        let replica = node.replica();
        // Only a leader removes keys (through the log); replicas' reads skip expired keys.
        if replica.is_some_and(|r| !r.is_leader()) {
            continue;
        }
        let expired = node.keyspace.find_expired(&mut cursor, node.now_ms(), BUDGET);
        if expired.is_empty() {
            continue;
        }
        let op = Op::PurgeExpired { keys: expired };
        match replica {
            None => {
                node.write(op);
            }
            Some(r) => {
                let _ = r.group.write(vec![prism_engine::Write { now_ms: node.now_ms(), op }]).await;
            }
        }
    }
}

fn load_or_create_node_id(dir: &Path) -> Result<String, StartError> {
    let err = |source| StartError::DataDir { path: dir.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    let path = dir.join("node.id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_string();
            if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(id.to_ascii_lowercase());
            }
            Err(err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} does not hold a 40-hex node id", path.display()),
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = random_hex_id();
            let tmp = dir.join("node.id.tmp");
            std::fs::write(&tmp, format!("{id}\n")).map_err(err)?;
            std::fs::rename(&tmp, &path).map_err(err)?;
            Ok(id)
        }
        Err(e) => Err(err(e)),
    }
}

/// The cluster secret from `cluster-secret-file`: the file's content, trimmed of
/// surrounding whitespace; an unreadable or empty file is an error (naming the key).
pub fn cluster_secret(config: &Config) -> Result<Option<Vec<u8>>, String> {
    let Some(path) = &config.cluster_secret_file else { return Ok(None) };
    let fail = |why: String| format!("cannot read cluster-secret-file {}: {why}", path.display());
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    Ok(Some(text.to_vec()))
}

fn read_password(path: &Path) -> Result<Vec<u8>, StartError> {
    let fail = |why: String| StartError::Password { path: path.display().to_string(), why };
    let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let pass = text.strip_suffix(b"\n").unwrap_or(&text);
    let pass = pass.strip_suffix(b"\r").unwrap_or(pass);
    if pass.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    Ok(pass.to_vec())
}
