//! The registry of connected clients: what `CLIENT LIST/INFO/KILL` see and what
//! `maxclients` counts.
//!
//! A connection registers on accept and is removed when its [`Registration`] drops, so
//! the count can never leak. Killing a client only sets a flag and wakes its task; the
//! task closes its own socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// What one connection shares with the rest of the node.
#[derive(Debug)]
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i64,
    pub created: Instant,
    pub name: Mutex<Option<Bytes>>,
    pub lib_name: Mutex<Option<Bytes>>,
    pub lib_ver: Mutex<Option<Bytes>>,
    /// Full name of the last command run (`client|list`), for CLIENT LIST.
    pub last_cmd: Mutex<&'static str>,
    /// Milliseconds since `created` at the last command.
    pub last_active_ms: AtomicU64,
    pub resp: AtomicU8,
    pub no_evict: AtomicBool,
    pub no_touch: AtomicBool,
    /// The ACL user this client runs as (`crate::acl`).
    pub acl: crate::acl::ClientAcl,
    killed: AtomicBool,
    kill: Notify,
}

impl ClientHandle {
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Resolves when the client is killed.
    pub async fn killed(&self) {
        if self.is_killed() {
            return;
        }
        self.kill.notified().await
    }

    /// Records the command a client runs and when (`at`, a time the caller already read:
    /// clock reads are not free on every machine).
    pub fn touch(&self, cmd: &'static str, at: Instant) {
        self.last_active_ms.store(at.saturating_duration_since(self.created).as_millis() as u64, Ordering::Relaxed);
        *self.last_cmd.lock() = cmd;
    }

    /// One line of CLIENT LIST / the reply of CLIENT INFO.
    pub fn describe(&self) -> String {
        let age = self.created.elapsed();
        let idle_ms = (age.as_millis() as u64).saturating_sub(self.last_active_ms.load(Ordering::Relaxed));
        let text = |m: &Mutex<Option<Bytes>>| {
            m.lock().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
        };
        let mut flags = String::new();
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if self.no_touch.load(Ordering::Relaxed) {
            flags.push('T');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub=0 psub=0 ssub=0 multi=-1 cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            text(&self.name),
            age.as_secs(),
            idle_ms / 1000,
            flags,
            self.last_cmd.lock(),
            self.acl.user().name,
            self.resp.load(Ordering::Relaxed),
            text(&self.lib_name),
            text(&self.lib_ver),
        )
    }
}

#[derive(Debug, Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    count: AtomicUsize,
    map: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
}

/// Keeps a client registered; unregisters on drop.
pub struct Registration<'a> {
    registry: &'a ClientRegistry,
    pub handle: Arc<ClientHandle>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.map.lock().remove(&self.handle.id);
        self.registry.count.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ClientRegistry {
    /// Registers a client unless `max` are connected already.
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr, fd: i64, max: usize) -> Option<Registration<'_>> {
        if self.count.fetch_add(1, Ordering::SeqCst) >= max {
            self.count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let handle = Arc::new(ClientHandle {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            last_cmd: Mutex::new("NULL"),
            last_active_ms: AtomicU64::new(0),
            resp: AtomicU8::new(2),
            no_evict: AtomicBool::new(false),
            no_touch: AtomicBool::new(false),
            acl: crate::acl::ClientAcl::default(),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        });
        self.map.lock().insert(id, handle.clone());
        Some(Registration { registry: self, handle })
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn list(&self) -> Vec<Arc<ClientHandle>> {
        self.map.lock().values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.map.lock().get(&id).cloned()
    }
}
