//! Per-command statistics, the slow log and the latency monitor: what INFO commandstats,
//! errorstats and latencystats, SLOWLOG, LATENCY and the command series of `/metrics`
//! report.
//!
//! Hot path. `cmd::execute` times each handler with one `Instant` pair and hands the
//! result to [`ran`] (or a refusal to [`rejected`]); both only touch the connection's
//! own [`ConnStats`], a short list of the commands seen in the current batch (usually
//! one or two, and the last one is checked first). The connection publishes that list
//! into the node's [`CommandStats`] once per batch (`conn::publish_counts`), so a
//! pipeline of N commands costs one atomic add per distinct command, not N. Latencies
//! go the same way: a pending entry keeps up to [`CONN_BUCKETS`] (bucket, count) pairs of
//! the command's latency histogram (`histogram.rs`), and a call in a fifth distinct bucket
//! within one batch is added to the node's histogram at once.
//!
//! Invariants:
//! - Counters are indexed by a dense id per table entry (commands and subcommands), built
//!   once from `table::all()`; a subcommand counts under `container|sub`, as Redis does.
//! - A call is counted once it ran; a request refused before its handler (arity, auth,
//!   routing, OOM, ...) counts as `rejected_calls` of the command it named, and not as a
//!   call; a call whose reply starts with an error counts as `failed_calls`. Every error
//!   reply counted either way is also counted under its code (the reply's first word, as
//!   Redis takes it: up to the first space within 32 bytes, else `ERR`) for errorstats.
//! - The slow log and the latency monitor are only locked when a command crossed their
//!   thresholds (or by their own commands); their thresholds are atomics mirrored from
//!   the config by [`CommandStats::configure`].
//! - Slow commands (those the slow log takes) and server-side failures (error replies of
//!   the kinds in [`SERVER_FAILURES`], committed writes' included) are logged at `warn`
//!   with a request id, `<client id>-<command number on that connection>`, the client id
//!   being CLIENT LIST's: at most [`LOG_LINES_PER_SECOND`] lines a second per node, the
//!   rest counted and reported with the next line. Arguments are never logged.
//! - Bounded: at most [`MAX_ERROR_CODES`] error codes are tracked (Redis's limit), the slow
//!   log holds at most `slowlog-max-len` entries of at most [`SLOWLOG_MAX_ARGC`] arguments
//!   of at most [`SLOWLOG_MAX_STRING`] bytes each, and each latency event keeps its last
//!   [`LATENCY_SAMPLES`] samples.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::config::Config;
use crate::conn::ConnState;
use crate::histogram::{self, Histogram};
use crate::node::Node;
use crate::resp::ReplyWriter;
use crate::table::{self, flag, CommandSpec, Handler};

/// Distinct error codes errorstats tracks, as Redis's `ERROR_STATS_NUMBER`.
pub const MAX_ERROR_CODES: usize = 128;
/// Arguments a slow log entry keeps; the last one then says how many were left out.
pub const SLOWLOG_MAX_ARGC: usize = 32;
/// Bytes of one argument a slow log entry keeps.
pub const SLOWLOG_MAX_STRING: usize = 128;
/// Samples kept per latency event, as Redis's `LATENCY_TS_LEN`.
pub const LATENCY_SAMPLES: usize = 160;
/// Error codes one connection buffers before publishing early.
const CONN_ERROR_CODES: usize = 8;
/// Distinct latency buckets one pending entry keeps before adding to the node's at once.
const CONN_BUCKETS: usize = 4;
/// Error reply kinds that say the node could not do what was asked (rather than that the
/// request was wrong): these are logged with their request id.
pub const SERVER_FAILURES: &[&str] =
    &["TIMEOUT", "TRYAGAIN", "CLUSTERDOWN", "OOM", "BUSY", "LOADING", "MASTERDOWN", "IOERR", "READONLY"];
/// Slow-command and failure log lines one node writes per second at most.
pub const LOG_LINES_PER_SECOND: u64 = 20;

/// The per-second budget of slow-command and failure log lines.
#[derive(Debug, Default)]
struct LogBudget {
    /// The second the budget is for, and lines written in it (packed: second << 16 | n).
    window: AtomicU64,
    /// Lines left out since the last one written.
    suppressed: AtomicU64,
}

impl LogBudget {
    /// Whether a line may be written at unix second `now_s`; if so, also how many were
    /// left out before it.
    fn take(&self, now_s: u64) -> Option<u64> {
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (second, used) = (cur >> 16, cur & 0xffff);
            let next = if second == now_s {
                if used >= LOG_LINES_PER_SECOND {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                cur + 1
            } else {
                (now_s << 16) | 1
            };
            match self.window.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(actual) => cur = actual,
            }
        }
    }
}

/// The dense id and full name (`client|list`) of every table entry, by address.
struct Ids {
    /// Sorted by address, for a binary search.
    by_addr: Vec<(usize, u16)>,
    names: Vec<String>,
}

fn ids() -> &'static Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    IDS.get_or_init(|| {
        let mut by_addr = Vec::new();
        let mut names = Vec::new();
        let mut add = |spec: &'static CommandSpec, name: String| {
            by_addr.push((spec as *const CommandSpec as usize, names.len() as u16));
            names.push(name);
        };
        for c in table::all() {
            add(c, c.name.to_string());
            for s in c.subcommands() {
                add(s, format!("{}|{}", c.name, s.name));
            }
        }
        by_addr.sort_unstable();
        Ids { by_addr, names }
    })
}

fn id_of(spec: &'static CommandSpec) -> Option<usize> {
    let addr = spec as *const CommandSpec as usize;
    let ids = ids();
    ids.by_addr.binary_search_by_key(&addr, |&(a, _)| a).ok().map(|i| ids.by_addr[i].1 as usize)
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    usec: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    /// Made on the command's first call: most of the table is never called.
    latency: OnceLock<Histogram>,
}

/// One command's figures as INFO commandstats prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFigures {
    pub name: &'static str,
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
}

/// One slow log entry.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    pub id: u64,
    /// Unix seconds at which the command ran.
    pub time: u64,
    pub usec: u64,
    /// The arguments, already cut as Redis cuts them.
    pub args: Vec<Bytes>,
    pub addr: String,
    pub name: Bytes,
}

#[derive(Debug, Default)]
struct SlowLog {
    /// Newest first.
    entries: VecDeque<SlowEntry>,
    next_id: u64,
}

/// One latency event's samples: `(unix seconds, ms)`, oldest first, at most one per second.
#[derive(Debug, Default, Clone)]
pub struct LatencySeries {
    pub samples: VecDeque<(u64, u64)>,
    /// Highest latency ever recorded for the event (since its last reset).
    pub max: u64,
}

/// The node's command statistics, slow log and latency monitor.
#[derive(Debug)]
pub struct CommandStats {
    counters: Box<[Counters]>,
    errors: Mutex<BTreeMap<String, u64>>,
    slowlog: Mutex<SlowLog>,
    latency: Mutex<BTreeMap<&'static str, LatencySeries>>,
    slower_than_us: AtomicI64,
    slowlog_max_len: AtomicU64,
    latency_threshold_ms: AtomicU64,
    /// A replicated node's wait for each write batch to commit and apply (`pending.rs`):
    /// what a write's reply waits for beyond its command's own time.
    pub write_commit: Histogram,
    log_budget: LogBudget,
}

impl CommandStats {
    pub fn new(config: &Config) -> CommandStats {
        let s = CommandStats {
            counters: (0..ids().names.len()).map(|_| Counters::default()).collect(),
            errors: Mutex::default(),
            slowlog: Mutex::default(),
            latency: Mutex::default(),
            slower_than_us: AtomicI64::new(0),
            slowlog_max_len: AtomicU64::new(0),
            latency_threshold_ms: AtomicU64::new(0),
            write_commit: Histogram::default(),
            log_budget: LogBudget::default(),
        };
        s.configure(config);
        s
    }

    /// Takes the thresholds from a (changed) config.
    pub fn configure(&self, config: &Config) {
        self.slower_than_us.store(config.slowlog_log_slower_than, Ordering::Relaxed);
        self.slowlog_max_len.store(config.slowlog_max_len, Ordering::Relaxed);
        self.latency_threshold_ms.store(config.latency_monitor_threshold, Ordering::Relaxed);
    }

    /// Adds a connection's batch into the node's figures and empties it.
    pub fn publish(&self, conn: &mut ConnStats) {
        for p in conn.pending.drain(..) {
            let Some(c) = id_of(p.spec).and_then(|i| self.counters.get(i)) else { continue };
            let add = |a: &AtomicU64, n: u64| {
                if n > 0 {
                    a.fetch_add(n, Ordering::Relaxed);
                }
            };
            add(&c.calls, p.calls);
            add(&c.usec, p.usec);
            add(&c.rejected, p.rejected);
            add(&c.failed, p.failed);
            if p.buckets_len > 0 {
                let h = c.latency.get_or_init(Histogram::default);
                for &(i, n) in &p.buckets[..p.buckets_len as usize] {
                    h.add(i as usize, n as u64);
                }
                h.add_sum(p.usec);
            }
        }
        if conn.errors.iter().any(|(_, n)| *n > 0) {
            let mut errors = self.errors.lock();
            for (code, n) in conn.errors.iter_mut().filter(|(_, n)| *n > 0) {
                let n = std::mem::take(n);
                if let Some(total) = errors.get_mut(code.as_str()) {
                    *total += n;
                } else if errors.len() < MAX_ERROR_CODES {
                    errors.insert(code.clone(), n);
                }
            }
        }
    }

    /// CONFIG RESETSTAT: forgets commandstats and errorstats, and what `conn` has not
    /// published yet (it predates the reset). The slow log and latency samples stay, as
    /// in Redis (SLOWLOG RESET and LATENCY RESET clear those).
    pub fn reset(&self, conn: &mut ConnStats) {
        conn.pending.clear();
        conn.errors.iter_mut().for_each(|(_, n)| *n = 0);
        for c in self.counters.iter() {
            for a in [&c.calls, &c.usec, &c.rejected, &c.failed] {
                a.store(0, Ordering::Relaxed);
            }
            if let Some(h) = c.latency.get() {
                h.reset();
            }
        }
        self.write_commit.reset();
        self.errors.lock().clear();
    }

    /// Every command with anything to report, in table order.
    pub fn commands(&self) -> Vec<CommandFigures> {
        let names = &ids().names;
        self.counters
            .iter()
            .zip(names)
            .filter_map(|(c, name)| {
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let f = CommandFigures {
                    name: name.as_str(),
                    calls: get(&c.calls),
                    usec: get(&c.usec),
                    rejected: get(&c.rejected),
                    failed: get(&c.failed),
                };
                (f.calls > 0 || f.rejected > 0 || f.failed > 0).then_some(f)
            })
            .collect()
    }

    /// The latency histogram of every command called since the last reset, in table order.
    pub fn latencies(&self) -> Vec<(&'static str, histogram::Snapshot)> {
        let names = &ids().names;
        self.counters
            .iter()
            .zip(names)
            .filter_map(|(c, name)| {
                let s = c.latency.get()?.snapshot();
                (s.count() > 0).then_some((name.as_str(), s))
            })
            .collect()
    }

    /// INFO's `# Latencystats` section: p50, p99 and p99.9 per command, as Redis 7's
    /// `latency-tracking-info-percentiles` default.
    pub fn info_latencystats(&self, s: &mut String) {
        s.push_str("# Latencystats\r\n");
        for (name, h) in self.latencies() {
            let _ = write!(s, "latency_percentiles_usec_{name}:");
            for (j, (label, q)) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)].into_iter().enumerate() {
                let sep = if j == 0 { "" } else { "," };
                let _ = write!(s, "{sep}{label}={}.000", h.percentile(q));
            }
            s.push_str("\r\n");
        }
    }

    /// Error counts by code, in code order.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// INFO's `# Commandstats` section.
    pub fn info_commandstats(&self, s: &mut String) {
        s.push_str("# Commandstats\r\n");
        for f in self.commands() {
            let _ = write!(
                s,
                "cmdstat_{}:calls={},usec={},usec_per_call={},rejected_calls={},failed_calls={}\r\n",
                f.name,
                f.calls,
                f.usec,
                usec_per_call(&f),
                f.rejected,
                f.failed
            );
        }
    }

    /// INFO's `# Errorstats` section.
    pub fn info_errorstats(&self, s: &mut String) {
        s.push_str("# Errorstats\r\n");
        for (code, n) in self.errors() {
            let _ = write!(s, "errorstat_{code}:count={n}\r\n");
        }
    }

    // ---- slow log ----------------------------------------------------------------

    fn slowlog_push(&self, node: &Node, conn: &ConnState, args: &[Bytes], usec: u64) {
        let entry_args = slowlog_args(args);
        let name = conn.handle.name.lock().clone().unwrap_or_default();
        let max = self.slowlog_max_len.load(Ordering::Relaxed);
        let mut log = self.slowlog.lock();
        let id = log.next_id;
        log.next_id += 1;
        log.entries.push_front(SlowEntry {
            id,
            time: node.now_ms() / 1000,
            usec,
            args: entry_args,
            addr: conn.handle.addr.to_string(),
            name,
        });
        // Redis trims on insert, so lowering slowlog-max-len takes effect at the next entry.
        log.entries.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }

    /// The newest `count` entries, newest first.
    pub fn slowlog_get(&self, count: usize) -> Vec<SlowEntry> {
        self.slowlog.lock().entries.iter().take(count).cloned().collect()
    }

    pub fn slowlog_len(&self) -> usize {
        self.slowlog.lock().entries.len()
    }

    /// Empties the slow log; entry ids keep counting up, as in Redis.
    pub fn slowlog_reset(&self) {
        self.slowlog.lock().entries.clear();
    }

    // ---- latency monitor ---------------------------------------------------------

    fn latency_add(&self, event: &'static str, now_s: u64, ms: u64) {
        let mut events = self.latency.lock();
        let series = events.entry(event).or_default();
        series.max = series.max.max(ms);
        // One sample per second: a second sample in the same second keeps the higher.
        if let Some(last) = series.samples.back_mut() {
            if last.0 == now_s {
                last.1 = last.1.max(ms);
                return;
            }
        }
        if series.samples.len() == LATENCY_SAMPLES {
            series.samples.pop_front();
        }
        series.samples.push_back((now_s, ms));
    }

    /// Every event with samples.
    pub fn latency_events(&self) -> Vec<(&'static str, LatencySeries)> {
        self.latency.lock().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Resets the named events (all when `events` is empty); returns how many existed.
    pub fn latency_reset(&self, events: &[Bytes]) -> usize {
        let mut map = self.latency.lock();
        if events.is_empty() {
            let n = map.len();
            map.clear();
            return n;
        }
        let mut n = 0;
        for e in events {
            let found = map.keys().find(|k| k.as_bytes() == e.as_ref()).copied();
            if let Some(k) = found {
                map.remove(k);
                n += 1;
            }
        }
        n
    }
}

/// The arguments as a slow log entry keeps them: at most [`SLOWLOG_MAX_ARGC`], the last
/// kept one then replaced by `... (N more arguments)`; each cut at [`SLOWLOG_MAX_STRING`]
/// bytes followed by `... (N more bytes)`; passwords of AUTH and HELLO replaced by
/// `(redacted)`, as Redis does.
pub fn slowlog_args(args: &[Bytes]) -> Vec<Bytes> {
    let argc = args.len();
    let kept = argc.min(SLOWLOG_MAX_ARGC);
    let redacted = redacted_positions(args);
    (0..kept)
        .map(|j| {
            if kept != argc && j == kept - 1 {
                Bytes::from(format!("... ({} more arguments)", argc - kept + 1))
            } else if redacted.contains(&j) {
                Bytes::from_static(b"(redacted)")
            } else if args[j].len() > SLOWLOG_MAX_STRING {
                let mut s = args[j][..SLOWLOG_MAX_STRING].to_vec();
                s.extend_from_slice(format!("... ({} more bytes)", args[j].len() - SLOWLOG_MAX_STRING).as_bytes());
                Bytes::from(s)
            } else {
                args[j].clone()
            }
        })
        .collect()
}

/// Argument positions Redis redacts: AUTH's user and password, HELLO's after AUTH.
fn redacted_positions(args: &[Bytes]) -> Vec<usize> {
    let name = &args[0];
    if name.eq_ignore_ascii_case(b"auth") {
        return (1..args.len()).collect();
    }
    if name.eq_ignore_ascii_case(b"hello") {
        if let Some(i) = args.iter().position(|a| a.eq_ignore_ascii_case(b"auth")) {
            return vec![i + 1, i + 2];
        }
    }
    Vec::new()
}

/// One command's figures for the current batch.
struct Pending {
    spec: &'static CommandSpec,
    calls: u64,
    usec: u64,
    rejected: u64,
    failed: u64,
    /// (latency bucket, calls in it); the first `buckets_len` are used.
    buckets: [(u16, u32); CONN_BUCKETS],
    buckets_len: u8,
}

impl Pending {
    /// Counts a call of `us` microseconds in the batch's histogram; false if the call
    /// fell in a fifth distinct bucket (the caller adds it to the node's at once).
    #[inline]
    fn bucket(&mut self, us: u64) -> bool {
        let i = histogram::bucket(us) as u16;
        let used = &mut self.buckets[..self.buckets_len as usize];
        if let Some(b) = used.iter_mut().find(|b| b.0 == i) {
            b.1 += 1;
            return true;
        }
        if (self.buckets_len as usize) < CONN_BUCKETS {
            self.buckets[self.buckets_len as usize] = (i, 1);
            self.buckets_len += 1;
            return true;
        }
        false
    }
}

/// A connection's not yet published figures (see the module doc).
#[derive(Default)]
pub struct ConnStats {
    /// Commands this connection has run: the second half of a request id.
    requests: u64,
    pending: Vec<Pending>,
    /// Error codes seen, with counts since the last publish; codes stay (at 0) so a
    /// repeated error does not allocate again.
    errors: Vec<(String, u64)>,
}

impl ConnStats {
    #[inline]
    fn entry(&mut self, spec: &'static CommandSpec) -> &mut Pending {
        let i = match self.pending.iter().rposition(|p| std::ptr::eq(p.spec, spec)) {
            Some(i) => i,
            None => {
                self.pending.push(Pending {
                    spec,
                    calls: 0,
                    usec: 0,
                    rejected: 0,
                    failed: 0,
                    buckets: [(0, 0); CONN_BUCKETS],
                    buckets_len: 0,
                });
                self.pending.len() - 1
            }
        };
        &mut self.pending[i]
    }

    fn error(&mut self, code: &[u8]) {
        if let Some(e) = self.errors.iter_mut().find(|(c, _)| c.as_bytes() == code) {
            e.1 += 1;
            return;
        }
        if self.errors.len() >= CONN_ERROR_CODES {
            // Forget codes with nothing pending to make room; a connection seeing many
            // distinct codes in one batch is rare, and the code is then only re-allocated.
            self.errors.retain(|(_, n)| *n > 0);
            if self.errors.len() >= CONN_ERROR_CODES {
                return;
            }
        }
        self.errors.push((String::from_utf8_lossy(code).into_owned(), 1));
    }
}

/// `<client id>-<command number on the connection>`: what a log line names a request by.
/// For a replicated write's failure, rendered after its commit, the number is the last
/// command of the batch it went in.
fn request_id(conn: &ConnState) -> String {
    format!("{}-{}", conn.handle.id, conn.cmd_stats.requests)
}

/// Logs an error reply `line` (without the `-`) if it is a server-side failure.
fn log_failure(node: &Node, conn: &ConnState, command: &[u8], line: &[u8]) {
    let code = error_code(line);
    if !SERVER_FAILURES.iter().any(|k| k.as_bytes() == code) {
        return;
    }
    if let Some(suppressed) = node.cmd_stats.log_budget.take(node.now_ms() / 1000) {
        tracing::warn!(
            request_id = %request_id(conn),
            command = %String::from_utf8_lossy(command).to_ascii_lowercase(),
            error = %String::from_utf8_lossy(&line[..line.len().min(200)]),
            suppressed,
            "command failed"
        );
    }
}

/// The code of an error reply's text (without the leading `-`), as Redis takes it.
fn error_code(text: &[u8]) -> &[u8] {
    let head = &text[..text.len().min(32)];
    match head.iter().position(|&b| b == b' ') {
        Some(end) if end > 0 => &text[..end],
        _ => b"ERR",
    }
}

/// Records a command whose handler ran: `started` was taken just before the handler and
/// its reply starts at `out.buf[mark]`. A command that blocked is recorded when it is
/// finally served.
#[inline]
pub fn ran(
    node: &Node,
    conn: &mut ConnState,
    out: &ReplyWriter,
    spec: &'static CommandSpec,
    args: &[Bytes],
    mark: usize,
    started: Instant,
) {
    let end = Instant::now();
    let usec = end.duration_since(started).as_micros() as u64;
    conn.clock_mark = Some(end);
    if conn.blocked.is_some() {
        return;
    }
    conn.cmd_stats.requests += 1;
    let failed = out.buf.get(mark) == Some(&b'-');
    let p = conn.cmd_stats.entry(spec);
    p.calls += 1;
    p.usec += usec;
    if !p.bucket(usec) {
        // Its usec is in `p.usec`, published with the batch: only the count goes now.
        if let Some(c) = id_of(spec).and_then(|i| node.cmd_stats.counters.get(i)) {
            c.latency.get_or_init(Histogram::default).add(histogram::bucket(usec), 1);
        }
    }
    if failed {
        p.failed += 1;
        let reply = &out.buf[mark + 1..];
        let line = &reply[..reply.iter().position(|&b| b == b'\r').unwrap_or(reply.len())];
        conn.cmd_stats.error(error_code(line));
        log_failure(node, conn, &args[0], line);
    }
    let stats = &node.cmd_stats;
    let slower_than = stats.slower_than_us.load(Ordering::Relaxed);
    let threshold_ms = stats.latency_threshold_ms.load(Ordering::Relaxed);
    if slower_than >= 0 && usec >= slower_than as u64 && !spec.has(flag::SKIP_SLOWLOG) {
        stats.slowlog_push(node, conn, args, usec);
        if let Some(suppressed) = stats.log_budget.take(node.now_ms() / 1000) {
            tracing::warn!(
                request_id = %request_id(conn),
                command = %String::from_utf8_lossy(&args[0]).to_ascii_lowercase(),
                usec,
                suppressed,
                "slow command"
            );
        }
    }
    if threshold_ms > 0 && usec / 1000 >= threshold_ms {
        let event = if spec.has(flag::FAST) { "fast-command" } else { "command" };
        stats.latency_add(event, node.now_ms() / 1000, usec / 1000);
    }
}

/// Records the error code of a reply written at `out.buf[mark..]` if it is an error: a
/// replicated write's reply, rendered after its commit (its call was recorded by [`ran`]
/// when it was queued, before its outcome was known).
pub fn committed_reply(node: &Node, conn: &mut ConnState, out: &ReplyWriter, mark: usize) {
    if out.buf.get(mark) == Some(&b'-') {
        let reply = &out.buf[mark + 1..];
        let line = &reply[..reply.iter().position(|&b| b == b'\r').unwrap_or(reply.len())];
        conn.cmd_stats.error(error_code(line));
        log_failure(node, conn, b"(replicated write)", line);
    }
}

/// Records a request refused before it ran, with the error it got: a rejected call of
/// the command (or subcommand) it named, if any, and the error's code.
pub fn rejected(node: &Node, conn: &mut ConnState, args: &[Bytes], error: &str) {
    conn.cmd_stats.requests += 1;
    if let Some(spec) = named_command(args) {
        conn.cmd_stats.entry(spec).rejected += 1;
    }
    conn.cmd_stats.error(error_code(error.as_bytes()));
    let command = args.first().map_or(&b""[..], |a| a.as_ref());
    log_failure(node, conn, command, error.as_bytes());
}

/// The table entry a request names: a subcommand when its container has it (whatever
/// the arity), else the command; `None` for an unknown command or subcommand.
fn named_command(args: &[Bytes]) -> Option<&'static CommandSpec> {
    let spec = table::lookup(args.first()?)?;
    match spec.handler {
        Handler::Container(_) if args.len() >= 2 => table::lookup_sub(spec, &args[1]),
        _ => Some(spec),
    }
}

/// Per-command figures as `usec_per_call` wants them: two decimals, 0 without calls.
pub fn usec_per_call(f: &CommandFigures) -> String {
    if f.calls == 0 {
        "0.00".to_string()
    } else {
        format!("{:.2}", f.usec as f64 / f.calls as f64)
    }
}

/// The full name of a table entry (`client|list` for a subcommand).
pub fn full_name(spec: &'static CommandSpec) -> Option<&'static str> {
    id_of(spec).map(|i| ids().names[i].as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn error_codes_like_redis() {
        assert_eq!(error_code(b"WRONGTYPE Operation against a key"), b"WRONGTYPE");
        assert_eq!(error_code(b"ERR syntax error"), b"ERR");
        assert_eq!(error_code(b"NOSPACE"), b"ERR");
        assert_eq!(error_code(b" leading space"), b"ERR");
        let long = format!("{} x", "A".repeat(40));
        assert_eq!(error_code(long.as_bytes()), b"ERR");
    }

    #[test]
    fn slowlog_args_are_cut_as_redis_cuts_them() {
        let many: Vec<Bytes> = (0..40).map(|i| b(&i.to_string())).collect();
        let kept = slowlog_args(&many);
        assert_eq!(kept.len(), 32);
        assert_eq!(kept[30], b("30"));
        assert_eq!(kept[31], b("... (9 more arguments)"));
        let exactly: Vec<Bytes> = (0..32).map(|i| b(&i.to_string())).collect();
        assert_eq!(slowlog_args(&exactly), exactly);
        let long = vec![b("SET"), b("k"), Bytes::from(vec![b'x'; 200])];
        let kept = slowlog_args(&long);
        assert_eq!(kept[2], Bytes::from(format!("{}... (72 more bytes)", "x".repeat(128))));
        let at_limit = vec![b("SET"), b("k"), Bytes::from(vec![b'x'; 128])];
        assert_eq!(slowlog_args(&at_limit), at_limit);
        assert_eq!(slowlog_args(&[b("AUTH"), b("pw")]), vec![b("AUTH"), b("(redacted)")]);
        assert_eq!(
            slowlog_args(&[b("HELLO"), b("3"), b("AUTH"), b("u"), b("p")]),
            vec![b("HELLO"), b("3"), b("AUTH"), b("(redacted)"), b("(redacted)")]
        );
    }

    #[test]
    fn every_table_entry_has_an_id() {
        for c in table::all() {
            assert_eq!(full_name(c), Some(c.name));
            for s in c.subcommands() {
                assert_eq!(full_name(s).map(str::to_string), Some(format!("{}|{}", c.name, s.name)));
            }
        }
    }

    #[test]
    fn latency_keeps_one_sample_per_second_and_the_max() {
        let stats = CommandStats::new(&Config::default());
        stats.latency_add("command", 10, 5);
        stats.latency_add("command", 10, 3);
        stats.latency_add("command", 11, 2);
        let events = stats.latency_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1.samples, VecDeque::from(vec![(10, 5), (11, 2)]));
        assert_eq!(events[0].1.max, 5);
        for t in 0..200 {
            stats.latency_add("command", 100 + t, 1);
        }
        assert_eq!(stats.latency_events()[0].1.samples.len(), LATENCY_SAMPLES);
        assert_eq!(stats.latency_reset(&[b("nope")]), 0);
        assert_eq!(stats.latency_reset(&[]), 1);
    }
}
