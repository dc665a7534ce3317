//! The cold tier on a node: the cold store, the background spiller and on-demand loads
//! (the engine's manifest, `prism_engine::tier::manifest`, is the replicated truth).
//!
//! Spill (leader or standalone node only, a few slots at a time): when used memory passes
//! `tier-high-watermark` percent of `maxmemory`, the least recently touched hot slot is
//! encoded (under its read lock, off the async runtime), its object is stored (complete
//! and checksummed first: invariant 3), then `TierOp::Spilled` is proposed; it applies
//! only if no write reached the slot since the encode. Repeats until below
//! `tier-low-watermark`. Nothing happens when `maxmemory` is 0. A write that finds used
//! memory over `maxmemory` (a writer faster than the spiller) waits for the spiller as
//! long as spills keep finishing, and is refused with Redis's OOM error only when they
//! stop ([`wait_for_memory`]): backpressure instead of errors, as Redis evicts before
//! a write.
//!
//! Compaction: a cold slot whose delta (whole-value writes since the spill, held in its
//! table) holds memory is picked like a hot slot; its object is fetched, the delta merged
//! over it into a new object, and `TierOp::Compacted` proposed (a no-op if a write or a
//! load came in between).
//!
//! Load: a request whose key is in a cold slot (and not decided by its delta) waits for
//! [`load`]: one load per slot at a
//! time (a per-slot async mutex; whoever waited finds the slot hot and goes on), which
//! gets the object (its checksum verified), decodes it off the runtime and proposes
//! `TierOp::Loaded` with the rows; then the request runs again. Failures answer
//! `-TRYAGAIN cold partition unavailable: <reason>` and count for INFO.
//!
//! Invariants: apply never waits on the store (all store I/O happens here, before a
//! proposal); an object that no applied `Spilled` references is deleted at once (the
//! verdict is the same on every member), and a referenced one is never deleted here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use prism_engine::tier::manifest::TierOp;
use prism_engine::tier::{self, ColdStore, StoreError};
use prism_engine::{Op, Output, Slot, Write, SLOT_COUNT};
use tokio::sync::{mpsc, watch};

use crate::cmd::CmdError;
use crate::node::Node;

/// How often the spiller looks at memory.
const TICK: Duration = Duration::from_millis(20);
/// Access ticks (one per [`TICK`], and one per spill round) after which an untouched
/// slot is idle: the spiller weighs idle slots by age x bytes ([`coldest`]).
const IDLE_TICKS: u32 = 50;
/// Slots spilled at once: their encodes and store writes (an fsync each, locally)
/// overlap, which matters when slots are small.
const SPILL_CONCURRENCY: usize = 16;
/// A write over `maxmemory` is refused OOM once the spiller has finished no spill for
/// this long (the store is down, or nothing is left to spill)...
const MEMORY_STALL: Duration = Duration::from_secs(2);
/// ... or once it has waited this long in all.
const MEMORY_WAIT_MAX: Duration = Duration::from_secs(30);

/// The node's tiering state (counters are INFO's `tiering` section).
#[derive(Default)]
pub struct Tiering {
    store: OnceLock<ColdStore>,
    /// Per-slot load locks (module header); at most one entry per slot.
    loading: Mutex<HashMap<u16, Arc<tokio::sync::Mutex<()>>>>,
    /// The access clock: advanced by the spiller every tick, stored per slot on access.
    tick: AtomicU32,
    /// Wakes the spiller before its tick: a write is waiting for memory.
    wake: tokio::sync::Notify,
    /// Wakes writers waiting for memory: a spill finished.
    spilled: tokio::sync::Notify,
    pub spills: AtomicU64,
    /// Spills that named the object the slot was loaded from ([`spill_unchanged`]).
    pub spills_unchanged: AtomicU64,
    /// Compactions proposed (a cold slot's delta merged into a new object; also in
    /// `spills` when applied).
    pub compactions: AtomicU64,
    pub loads: AtomicU64,
    /// Requests that waited for a load of their key's slot.
    pub cold_waits: AtomicU64,
    /// Writes (and loads) that found memory over `maxmemory` and waited for the spiller.
    pub memory_waits: AtomicU64,
    /// Spills between their start and their verdict (the spill queue's depth).
    pub spills_in_flight: AtomicU64,
    pub load_failures: AtomicU64,
    pub checksum_failures: AtomicU64,
    /// How long loads took (successful or not), for `/metrics`.
    pub load_latency: LoadLatency,
}

/// Upper bounds (seconds) of the load-duration histogram's buckets; one more bucket,
/// `+Inf`, takes the rest.
pub const LOAD_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A fixed-bucket histogram of load durations: lock-free counters, read at scrape time.
#[derive(Debug, Default)]
pub struct LoadLatency {
    /// Per bucket, not cumulative (the last is `+Inf`).
    counts: [AtomicU64; LOAD_BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl LoadLatency {
    pub fn record(&self, took: Duration) {
        let s = took.as_secs_f64();
        let i = LOAD_BUCKETS.iter().position(|&b| s <= b).unwrap_or(LOAD_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, [(upper bound, count in that bucket)])`, the last bound
    /// `f64::MAX` (rendered `+Inf`).
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let bounds = LOAD_BUCKETS.iter().copied().chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(&self.counts).map(|(b, c)| (b, c.load(Ordering::Relaxed))).collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        (self.sum_us.load(Ordering::Relaxed) as f64 / 1e6, count, buckets)
    }
}

impl Tiering {
    /// Opens the configured store (`cold-store`, default `<data-dir>/cold`).
    ///
    /// A shard group of several members gets no default: each member's `<data-dir>`
    /// is its own, so an object the leader spilled there would be out of reach of the
    /// next leader, and its keys with it. Such a group tiers only with a `cold-store`
    /// every member reaches (S3, or a directory they share); without one it keeps
    /// everything in memory and `maxmemory` refuses writes as in Redis (noeviction).
    pub fn open(&self, config: &crate::config::Config) -> Result<(), String> {
        let replicated = config.raft_group.len() > 1 || config.cluster_topology.is_some();
        let url = match &config.cold_store {
            // No cold tier: `maxmemory` refuses writes at once, as Redis's noeviction.
            Some(none) if none.eq_ignore_ascii_case("none") => return Ok(()),
            Some(url) => url.clone(),
            None if replicated => {
                if config.maxmemory > 0 {
                    tracing::warn!(
                        "cold tier off: a replicated shard needs a cold-store every member reaches (S3 or a shared directory); maxmemory refuses writes instead"
                    );
                }
                return Ok(());
            }
            None => config.data_dir.join("cold").display().to_string(),
        };
        let store = ColdStore::open(&url, config.cold_store_credentials.as_deref()).map_err(|e| e.to_string())?;
        let _ = self.store.set(store);
        Ok(())
    }

    pub fn store(&self) -> Option<&ColdStore> {
        self.store.get()
    }

    /// The current access tick.
    #[inline]
    pub fn tick(&self) -> u32 {
        self.tick.load(Ordering::Relaxed)
    }
}

/// The INFO `tiering` section's fields.
pub fn info(node: &Node, out: &mut String) {
    use std::fmt::Write as _;
    let (parts, rows, bytes) = node.keyspace.tier.totals();
    let t = &node.tiering;
    let gc = &node.cold_gc;
    let (delta_parts, delta_keys, delta_bytes) = node.keyspace.delta_totals();
    let hot = (node.keyspace.slots_with_keys() as u64).saturating_sub(delta_parts);
    let used = node.keyspace.used_memory();
    let waits = t.cold_waits.load(Ordering::Relaxed);
    let _ = write!(
        out,
        "# Tiering\r\ncold_store:{}\r\nhot_partitions:{hot}\r\nhot_bytes:{used}\r\n\
         cold_partitions:{parts}\r\ncold_rows:{rows}\r\ncold_bytes:{bytes}\r\n\
         delta_partitions:{delta_parts}\r\ndelta_keys:{delta_keys}\r\ndelta_bytes:{delta_bytes}\r\n\
         hot_hit_rate:{:.4}\r\ncold_waits:{waits}\r\nmemory_waits:{}\r\nspills_in_flight:{}\r\n\
         spills:{}\r\nspills_unchanged:{}\r\ncompactions:{}\r\nloads:{}\r\nload_failures:{}\r\nchecksum_failures:{}\r\n\
         gc_sweeps:{}\r\ngc_candidates:{}\r\ngc_deleted_objects:{}\r\ngc_deleted_bytes:{}\r\ngc_failures:{}\r\n",
        t.store().map_or("", |s| s.url()),
        hot_hit_rate(node, waits),
        t.memory_waits.load(Ordering::Relaxed),
        t.spills_in_flight.load(Ordering::Relaxed),
        t.spills.load(Ordering::Relaxed),
        t.spills_unchanged.load(Ordering::Relaxed),
        t.compactions.load(Ordering::Relaxed),
        t.loads.load(Ordering::Relaxed),
        t.load_failures.load(Ordering::Relaxed),
        t.checksum_failures.load(Ordering::Relaxed),
        gc.sweeps.load(Ordering::Relaxed),
        gc.candidates(),
        gc.deleted_objects.load(Ordering::Relaxed),
        gc.deleted_bytes.load(Ordering::Relaxed),
        gc.failures.load(Ordering::Relaxed),
    );
}

/// The share of key lookups that did not wait for a load: 1 - `cold_waits` / (keyspace
/// hits + misses), from the node-wide counters (a connection's own lookups join them
/// when it closes, so a long-lived connection's share shows late). 1 before any lookup.
pub fn hot_hit_rate(node: &Node, cold_waits: u64) -> f64 {
    let st = &node.stats;
    let lookups = st.keyspace_hits.load(Ordering::Relaxed) + st.keyspace_misses.load(Ordering::Relaxed);
    if lookups == 0 {
        return 1.0;
    }
    1.0 - (cold_waits as f64 / lookups as f64).min(1.0)
}

fn unavailable(reason: impl std::fmt::Display) -> CmdError {
    // One line: a RESP error cannot carry a newline.
    let text = reason.to_string().replace(['\r', '\n'], " ");
    CmdError::msg(format!("TRYAGAIN cold partition unavailable: {text}"))
}

/// Proposes `op` (standalone: applies it) and returns its output.
async fn propose(node: &Node, op: Op) -> Result<Output, String> {
    let write = Write { now_ms: node.now_ms(), op };
    match node.replica() {
        None => Ok(node.write_at(write.op, write.now_ms)),
        Some(r) => {
            let mut c = r.group.write(vec![write]).await.map_err(|e| e.to_string())?;
            Ok(c.outputs.pop().unwrap_or(Output::Nil))
        }
    }
}

/// Makes cold `slot` hot (module header). `Ok` also when it was hot already.
pub async fn load(node: &Node, slot: u16) -> Result<(), CmdError> {
    // A load adds the slot to memory: over `maxmemory`, it first lets the spiller make
    // room (then loads anyway: a read is served, not refused).
    if node.over_maxmemory() && spills_here(node) {
        let _ = wait_for_memory(node).await;
    }
    let lock = node.tiering.loading.lock().entry(slot).or_default().clone();
    let _guard = lock.lock().await;
    let Some(entry) = node.keyspace.tier.entry(slot) else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let result = load_entry(node, slot, entry.object).await;
    let t = &node.tiering;
    t.load_latency.record(started.elapsed());
    match &result {
        Ok(()) => t.loads.fetch_add(1, Ordering::Relaxed),
        Err(_) => t.load_failures.fetch_add(1, Ordering::Relaxed),
    };
    result
}

async fn load_entry(node: &Node, slot: u16, object: String) -> Result<(), CmdError> {
    if node.replica().is_some_and(|r| !r.is_leader()) {
        return Err(unavailable("only the leader loads cold partitions"));
    }
    let store = node.tiering.store().ok_or_else(|| unavailable("no cold store"))?;
    let bytes = store.get(&object).await.map_err(|e| {
        if matches!(e, StoreError::Checksum { .. }) {
            node.tiering.checksum_failures.fetch_add(1, Ordering::Relaxed);
        }
        unavailable(e)
    })?;
    // Decoding validates every row: CPU work, off the async runtime.
    let partition = tokio::task::spawn_blocking(move || tier::format::decode(bytes))
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
    if partition.slot.get() != slot {
        return Err(unavailable(format!("object {object} holds slot {}", partition.slot.get())));
    }
    let rows = partition.rows.into_iter().map(|r| (r.key, r.expire_at, r.payload)).collect();
    match propose(node, Op::Tier(TierOp::Loaded { slot, object, rows })).await.map_err(unavailable)? {
        Output::Err(e) => Err(unavailable(e)),
        // Int(0): the manifest moved on meanwhile (a FLUSHALL, another load); the
        // request runs again and sees whatever is current.
        _ => Ok(()),
    }
}

/// Spills a slot unchanged since its load by naming the object it was loaded from again:
/// no encode, no write (a read-mostly working set larger than memory moves slots in and
/// out all the time). `None` when that does not apply and the slot must be encoded.
///
/// Why the object is still there: the GC deletes only an object unreferenced for
/// `cold-gc-retention` since it first saw it so, which is after the load that
/// unreferenced it (`cold_gc.rs`). Reuse happens only within half that time of the
/// load on this member, with the object pinned from before that check until the
/// proposal's verdict (the GC checks pins right before each delete); after a commit the
/// live manifest names it.
async fn spill_unchanged(node: &Arc<Node>, slot: u16) -> Option<Result<(), String>> {
    let ks = &node.keyspace;
    let from = ks.tier.loaded_from(slot)?;
    let _pin = node.cold_gc.pin(vec![from.entry.object.clone()]);
    let retention = Duration::from_secs(node.config.read().cold_gc_retention);
    let s = Slot::new(u64::from(slot))?;
    // The row count too: a key removed without a version bump (none should be) would
    // make the object hold more than the slot.
    let unchanged = ks.slot_version(s) == from.slot_version && ks.slot(s).len() as u64 == from.entry.rows;
    if from.at.elapsed() >= retention / 2 || !unchanged {
        return None;
    }
    let e = from.entry;
    let op = Op::Tier(TierOp::Spilled {
        slot,
        object: e.object,
        crc32c: e.crc32c,
        rows: e.rows,
        bytes: e.bytes,
        slot_version: from.slot_version,
    });
    Some(match propose(node, op).await {
        Ok(Output::Int(1)) => {
            let t = &node.tiering;
            t.spills.fetch_add(1, Ordering::Relaxed);
            t.spills_unchanged.fetch_add(1, Ordering::Relaxed);
            t.spilled.notify_waiters();
            Ok(())
        }
        // Stale (a write landed): the object stays unreferenced, for the GC.
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    })
}

/// The spiller task (module header); stops when `stop` changes.
pub async fn spiller(node: Arc<Node>, mut stop: watch::Receiver<bool>, _done: mpsc::Sender<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = node.tiering.wake.notified() => {}
            _ = stop.changed() => return,
        }
        node.tiering.tick.fetch_add(1, Ordering::Relaxed);
        let max = node.limits.maxmemory.load(Ordering::Relaxed);
        if max == 0 || node.tiering.store().is_none() || node.replica().is_some_and(|r| !r.is_leader()) {
            continue;
        }
        let (high, low) = {
            let c = node.config.read();
            (c.tier_high_watermark, c.tier_low_watermark.min(c.tier_high_watermark))
        };
        let percent = |p: u64| (max as u128 * p as u128 / 100) as u64;
        if node.keyspace.used_memory() <= percent(high) {
            continue;
        }
        // Bounded: at most one pass over the slots per tick.
        for _ in 0..SLOT_COUNT / SPILL_CONCURRENCY {
            if node.keyspace.used_memory() <= percent(low) || *stop.borrow() {
                break;
            }
            // The clock moves on with each round too: slots written while a long spill
            // runs must stay younger than those written before it, or the slot a writer
            // is filling could tie with them and be spilled under it.
            node.tiering.tick.fetch_add(1, Ordering::Relaxed);
            let slots = coldest(&node, SPILL_CONCURRENCY);
            if slots.is_empty() {
                break;
            }
            let results = futures::future::join_all(slots.iter().map(|&slot| spill(&node, slot))).await;
            let failed: Vec<_> = slots.iter().zip(results).filter_map(|(s, r)| r.err().map(|e| (s, e))).collect();
            for (slot, e) in &failed {
                tracing::warn!("spilling slot {slot}: {e}");
            }
            if !failed.is_empty() {
                break;
            }
        }
    }
}

/// Whether this node's spiller makes room when memory runs out: it has a cold store and
/// spills (standalone, or the leader).
pub fn spills_here(node: &Node) -> bool {
    node.tiering.store().is_some() && node.replica().is_none_or(|r| r.is_leader())
}

/// Waits until used memory is at most `maxmemory`, keeping the spiller awake, while
/// spills keep finishing ([`MEMORY_STALL`], [`MEMORY_WAIT_MAX`]): a write over the limit
/// waits here (module header), then runs or is refused. True when memory is under the
/// limit, false when the wait gave up.
pub async fn wait_for_memory(node: &Node) -> bool {
    use tokio::time::Instant;
    let t = &node.tiering;
    t.memory_waits.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    let (mut seen, mut progress) = (t.spills.load(Ordering::Relaxed), start);
    while node.over_maxmemory() {
        let now = Instant::now();
        let spills = t.spills.load(Ordering::Relaxed);
        if spills != seen {
            (seen, progress) = (spills, now);
        }
        if now - progress > MEMORY_STALL || now - start > MEMORY_WAIT_MAX {
            return false;
        }
        // Registered before the wake, so a spill finishing in between is not missed.
        let spilled = t.spilled.notified();
        t.wake.notify_one();
        let _ = tokio::time::timeout(TICK, spilled).await;
    }
    true
}

/// Up to `n` locally owned slots holding keys in memory (hot slots, and cold slots'
/// deltas) to spill or compact. Every spill costs about the same (an object put, a
/// proposal), whatever it frees, so the choice weighs bytes as well as age:
/// - among slots untouched for at least [`IDLE_TICKS`], those with the highest age x
///   bytes: a big slot read once goes before a small delta of the same age, which is
///   cheap to keep and costs as much to compact;
/// - when fewer than `n` are that idle (a hot set, or a writer everywhere), the biggest
///   of the `4 n` touched longest ago: slots in use are never weighed by size alone.
fn coldest(node: &Node, n: usize) -> Vec<u16> {
    let ks = &node.keyspace;
    let now = node.tiering.tick();
    let mut aged: Vec<(u32, u64, u16)> = Slot::all()
        .filter(|s| ks.meta.serving(s.get()) == prism_engine::shard_meta::Serving::Owned)
        .filter_map(|s| {
            let bytes = ks.slot_memory(s) as u64;
            (bytes > 0).then(|| (now.wrapping_sub(ks.tier.touched(s.get())), bytes, s.get()))
        })
        .collect();
    let idle = aged.iter().filter(|(age, _, _)| *age >= IDLE_TICKS).count();
    let mut picked: Vec<(u64, u16)> = if idle >= n {
        aged.iter().filter(|(age, _, _)| *age >= IDLE_TICKS).map(|&(age, b, s)| (u64::from(age) * b, s)).collect()
    } else {
        let wide = 4 * n;
        if aged.len() > wide {
            aged.select_nth_unstable_by(wide, |a, b| b.0.cmp(&a.0));
            aged.truncate(wide);
        }
        aged.into_iter().map(|(_, b, s)| (b, s)).collect()
    };
    if picked.len() > n {
        picked.select_nth_unstable_by(n, |a, b| b.cmp(a));
        picked.truncate(n);
    }
    picked.into_iter().map(|(_, slot)| slot).collect()
}

/// Spills one slot (module header). `Ok` also when the spill turned out stale.
async fn spill(node: &Arc<Node>, slot: u16) -> Result<(), String> {
    let t = &node.tiering;
    t.spills_in_flight.fetch_add(1, Ordering::Relaxed);
    let result = spill_one(node, slot).await;
    t.spills_in_flight.fetch_sub(1, Ordering::Relaxed);
    result
}

async fn spill_one(node: &Arc<Node>, slot: u16) -> Result<(), String> {
    if let Some(base) = node.keyspace.tier.entry(slot) {
        return compact(node, slot, base.object).await;
    }
    if let Some(done) = spill_unchanged(node, slot).await {
        return done;
    }
    let ks = node.keyspace.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let s = Slot::new(u64::from(slot))?;
        // Versions change only under the slot's write lock, which the encode excludes:
        // equal before and after means the object is the slot at that version.
        let before = ks.slot_version(s);
        let r = tier::spill_slot(&ks, s);
        Some((before, ks.slot_version(s), r))
    })
    .await
    .map_err(|e| e.to_string())?;
    let Some((before, after, encoded)) = encoded else { return Ok(()) };
    let (obj, stats) = encoded.map_err(|e| e.to_string())?;
    if before != after {
        return Ok(());
    }
    let (_pin, stored) = put_object(node, slot, before, obj.bytes).await?;
    let op = Op::Tier(TierOp::Spilled {
        slot,
        object: stored.key.clone(),
        crc32c: stored.crc32c,
        rows: stats.rows,
        bytes: stored.len,
        slot_version: before,
    });
    settle(node, op, store_of(node)?, stored).await.map(drop)
}

fn store_of(node: &Node) -> Result<&ColdStore, String> {
    node.tiering.store().ok_or_else(|| "no cold store".to_string())
}

/// Stores a new object of `slot` encoded at `version`, pinned against the cold-object
/// GC until the returned pin drops (after the proposal naming it has its verdict).
async fn put_object(
    node: &Node,
    slot: u16,
    version: u64,
    bytes: bytes::Bytes,
) -> Result<(crate::cold_gc::Pin, tier::ObjectRef), String> {
    let store = store_of(node)?;
    let stem = format!("slot-{slot:05}/v{version}-{}", &crate::node::random_hex_id()[..12]);
    let pin = node.cold_gc.pin(vec![stem.clone()]);
    let stored = store.put(&stem, bytes).await.map_err(|e| e.to_string())?;
    Ok((pin, stored))
}

/// Proposes the op naming a just-stored object and settles it: applied, the spill counts
/// and waiting writers wake; not applied anywhere (the same verdict on every member),
/// nothing references the object and it is deleted; unknown, it stays (it may be
/// referenced) for the GC.
async fn settle(node: &Node, op: Op, store: &ColdStore, stored: tier::ObjectRef) -> Result<bool, String> {
    match propose(node, op).await {
        Ok(Output::Int(1)) => {
            node.tiering.spills.fetch_add(1, Ordering::Relaxed);
            node.tiering.spilled.notify_waiters();
            Ok(true)
        }
        Ok(_) => {
            let _ = store.delete(&stored.key).await;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Compacts cold `slot` (docs/tiering.md): its object `base` is fetched and decoded, its
/// delta merged over it into a new object, and `TierOp::Compacted` proposed; it applies
/// only if the slot is still cold on `base` with no write since the merge, and then the
/// delta leaves memory. `Ok` also when it turned out stale.
async fn compact(node: &Arc<Node>, slot: u16, base: String) -> Result<(), String> {
    let store = store_of(node)?;
    let bytes = store.get(&base).await.map_err(|e| {
        if matches!(e, StoreError::Checksum { .. }) {
            node.tiering.checksum_failures.fetch_add(1, Ordering::Relaxed);
        }
        e.to_string()
    })?;
    let (ks, now_ms, object) = (node.keyspace.clone(), node.now_ms(), base.clone());
    let encoded = tokio::task::spawn_blocking(move || {
        let partition = tier::format::decode(bytes).map_err(|e| e.to_string())?;
        let s = Slot::new(u64::from(slot)).ok_or("slot out of range")?;
        if partition.slot != s {
            return Err(format!("object {object} holds slot {}", partition.slot.get()));
        }
        let before = ks.slot_version(s);
        let r = tier::compact_slot(&ks, s, &partition, now_ms).map_err(|e| e.to_string())?;
        Ok((before, ks.slot_version(s), r))
    })
    .await
    .map_err(|e| e.to_string())??;
    let (before, after, (obj, stats)) = encoded;
    if before != after {
        return Ok(());
    }
    let (_pin, stored) = put_object(node, slot, before, obj.bytes).await?;
    let op = Op::Tier(TierOp::Compacted {
        slot,
        base,
        object: stored.key.clone(),
        crc32c: stored.crc32c,
        rows: stats.rows,
        bytes: stored.len,
        slot_version: before,
    });
    if settle(node, op, store, stored).await? {
        node.tiering.compactions.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
