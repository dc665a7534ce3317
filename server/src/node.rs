//! A node's shared state, and its write path.
//!
//! A standalone node applies writes itself: [`Node::write`] stamps the time and applies
//! the [`Write`] to the engine. A node in a replicated shard group ([`Node::replica`])
//! never does: its connections hand writes to the group ([`crate::replica`]), and the
//! group's state machine applies committed ones through [`Node::apply_committed`]. Both
//! paths end in the same [`Node::apply_write`], so watchers are told the same way.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use prism_engine::clock::Clock;
use prism_engine::keyspace::{LockScope, NoHooks, WriteHooks};
use prism_engine::{Keyspace, Op, Output, Write};

use crate::clients::ClientRegistry;
use crate::config::{Config, OutputLimits};
use crate::keywatch::KeyWatches;
use crate::pubsub::PubSub;
use crate::topology::Topology;

/// Counters for INFO stats. Connections add their counts once per batch, not per
/// command, to keep these cache lines cold.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub output_buffer_disconnections: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub error_replies: AtomicU64,
    /// Highest `used_memory` seen after a write (INFO used_memory_peak). Memory only
    /// grows through writes, so sampling after each one sees every peak.
    pub used_memory_peak: AtomicU64,
    /// The engine's expired-removed total at the last CONFIG RESETSTAT: INFO's
    /// expired_keys counts from here, since the engine's own counter never resets.
    pub expired_keys_base: AtomicU64,
}

/// Limits read on the hot path, kept as atomics so `CONFIG SET` can change them live.
#[derive(Debug)]
pub struct Limits {
    pub maxclients: AtomicUsize,
    pub maxmemory: AtomicU64,
    pub proto_max_bulk_len: AtomicU64,
    pub timeout_secs: AtomicU64,
    pub output: RwLock<OutputLimits>,
}

pub struct Node {
    /// Shared with the shard group's state machine when the node is replicated.
    pub keyspace: Arc<Keyspace>,
    /// Set once at start when the node is a member of a replicated shard group.
    pub replica: OnceLock<Arc<crate::replica::Replica>>,
    pub clock: Arc<dyn Clock>,
    pub config: RwLock<Config>,
    pub limits: Limits,
    /// The password from `requirepass-file`, if any.
    pub password: RwLock<Option<Vec<u8>>>,
    /// ACL users (the default one from `requirepass-file`) and ACL LOG.
    pub acl: crate::acl::Acl,
    /// Read on every keyed command; swapped whole when it changes (rarely), so readers
    /// never write a shared cache line.
    pub topology: ArcSwap<Topology>,
    pub clients: ClientRegistry,
    /// Clients waiting on keys: WATCH and blocking commands.
    pub watches: KeyWatches,
    pub pubsub: Arc<PubSub>,
    pub stats: Stats,
    /// Per-command statistics, the slow log and the latency monitor.
    pub cmd_stats: crate::stats::CommandStats,
    pub started: Instant,
    /// Random per process start, as Redis's run_id.
    pub run_id: String,
    /// Random per process start, as Redis's master_replid (INFO replication).
    pub repl_id: String,
    /// Fired by SHUTDOWN: whoever runs the node (the binary) stops it as on SIGTERM.
    pub shutdown_requested: tokio::sync::Notify,
    /// Replicated node: transactions this node proposed whose reads run when it applies
    /// them (`cmd/multi/replicated.rs`).
    pub execs: Arc<crate::cmd::multi::replicated::ExecRegistry>,
    /// The cold tier: store, spiller state, load locks, counters (`tier.rs`).
    pub tiering: crate::tier::Tiering,
    /// The cold-object GC: candidates, pins, counters (`cold_gc.rs`).
    pub cold_gc: Arc<crate::cold_gc::ColdGc>,
}

impl Node {
    pub fn new(config: Config, clock: Arc<dyn Clock>, password: Option<Vec<u8>>, topology: Topology) -> Node {
        let limits = Limits {
            maxclients: AtomicUsize::new(config.maxclients),
            maxmemory: AtomicU64::new(config.maxmemory),
            proto_max_bulk_len: AtomicU64::new(config.proto_max_bulk_len),
            timeout_secs: AtomicU64::new(config.timeout),
            output: RwLock::new(config.client_output_buffer_limit),
        };
        let cmd_stats = crate::stats::CommandStats::new(&config);
        Node {
            keyspace: Arc::new(Keyspace::new()),
            replica: OnceLock::new(),
            clock,
            config: RwLock::new(config),
            limits,
            acl: crate::acl::Acl::new(password.as_deref()),
            password: RwLock::new(password),
            topology: ArcSwap::from_pointee(topology),
            clients: ClientRegistry::default(),
            watches: KeyWatches::default(),
            pubsub: Arc::default(),
            stats: Stats::default(),
            cmd_stats,
            started: Instant::now(),
            run_id: random_hex_id(),
            repl_id: random_hex_id(),
            shutdown_requested: tokio::sync::Notify::new(),
            execs: Arc::default(),
            tiering: Default::default(),
            cold_gc: Default::default(),
        }
    }

    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The shard group this node is a member of, if replicated.
    #[inline]
    pub fn replica(&self) -> Option<&crate::replica::Replica> {
        self.replica.get().map(|r| &**r)
    }

    /// Applies a write and returns its output: the only way a standalone node's state
    /// changes. A replicated node's writes go through its group; this refuses them.
    pub fn write(&self, op: Op) -> Output {
        self.write_at(op, self.now_ms())
    }

    /// [`Node::write`] stamped with a time the caller already read (a connection's
    /// per-batch time): the leader chooses a write's time, so any recent reading will do,
    /// and clock reads cost tens of nanoseconds on some machines.
    pub fn write_at(&self, op: Op, now_ms: u64) -> Output {
        self.write_hooked_at(op, now_ms, LockScope::Op, &mut NoHooks).unwrap_or(Output::Nil)
    }

    /// [`Node::write`] with `hooks` called while the write's slot tables (and those of
    /// `scope`) are locked: EXEC checks its WATCHed keys and runs its reads this way.
    /// `None` when `hooks.begin` refused the write.
    pub fn write_hooked(&self, op: Op, scope: LockScope<'_>, hooks: &mut dyn WriteHooks) -> Option<Output> {
        self.write_hooked_at(op, self.now_ms(), scope, hooks)
    }

    fn write_hooked_at(&self, op: Op, now_ms: u64, scope: LockScope<'_>, hooks: &mut dyn WriteHooks) -> Option<Output> {
        if self.replica().is_some() {
            // Every replicated write must be a log entry; reaching here is a bug, answered
            // as an error rather than applied to one member only.
            tracing::error!("a write bypassed the shard group");
            return Some(Output::Err(prism_engine::OpError::NotReplicated));
        }
        self.apply_write(&Write { now_ms, op }, scope, hooks)
    }

    /// Applies a committed write of the shard group (the state machine's apply hook).
    pub fn apply_committed(&self, w: &Write) -> Output {
        if let Op::Guarded(g) = &w.op {
            // A transaction: the proposing connection's reads run between its items here.
            return crate::cmd::multi::replicated::apply(self, w, g);
        }
        self.apply_write(w, LockScope::Op, &mut NoHooks).unwrap_or(Output::Nil)
    }

    /// [`Node::apply_committed`] with `hooks` under the locks of the write and `scope`.
    pub(crate) fn apply_committed_hooked(
        &self,
        w: &Write,
        scope: LockScope<'_>,
        hooks: &mut dyn WriteHooks,
    ) -> Option<Output> {
        self.apply_write(w, scope, hooks)
    }

    fn apply_write(&self, w: &Write, scope: LockScope<'_>, hooks: &mut dyn WriteHooks) -> Option<Output> {
        let out = self.keyspace.apply_hooked(w, scope, &mut TouchWatchers { node: self, inner: hooks });
        // A load first keeps the common case (no new peak) a read of a shared line.
        let used = self.keyspace.used_memory();
        if used > self.stats.used_memory_peak.load(Ordering::Relaxed) {
            self.stats.used_memory_peak.fetch_max(used, Ordering::Relaxed);
        }
        out
    }

    pub fn requires_auth(&self) -> bool {
        self.acl.requires_auth()
    }

    /// True when `maxmemory` is set and exceeded.
    pub fn over_maxmemory(&self) -> bool {
        let max = self.limits.maxmemory.load(Ordering::Relaxed);
        max != 0 && self.keyspace.used_memory() > max
    }

    /// Pushes a config change into the live limits.
    pub fn apply_config(&self, config: Config) {
        self.limits.maxclients.store(config.maxclients, Ordering::Relaxed);
        self.limits.maxmemory.store(config.maxmemory, Ordering::Relaxed);
        self.limits.proto_max_bulk_len.store(config.proto_max_bulk_len, Ordering::Relaxed);
        self.limits.timeout_secs.store(config.timeout, Ordering::Relaxed);
        *self.limits.output.write() = config.client_output_buffer_limit;
        self.cmd_stats.configure(&config);
        *self.config.write() = config;
    }
}

/// 40 random lower-case hex characters.
pub fn random_hex_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..40).map(|_| std::char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}

/// Tells watchers (WATCH, blocked clients) of a write while its slots are still locked:
/// before its reply leaves, and before a transaction that locks the same slots can check
/// its WATCHed keys, so such a check never misses a write that already applied.
struct TouchWatchers<'a> {
    node: &'a Node,
    inner: &'a mut dyn WriteHooks,
}

impl WriteHooks for TouchWatchers<'_> {
    fn begin(&mut self) -> bool {
        self.inner.begin()
    }

    fn between(&mut self, i: usize) {
        self.inner.between(i)
    }

    fn end(&mut self, op: &Op) {
        self.inner.end(op);
        let watches = &self.node.watches;
        if !watches.is_empty() {
            if op.flushes_all() {
                watches.touch_all();
            } else {
                op.for_each_key(|k| watches.touch_key(k));
            }
        }
    }
}
