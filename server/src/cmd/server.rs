//! Server and admin commands: INFO, CONFIG, CLIENT, TIME, DBSIZE, FLUSHDB, FLUSHALL,
//! WAIT.
//!
//! Invariants:
//! - Every number INFO reports is measured, never made up: counters come from
//!   [`Stats`](crate::node::Stats) (plus this connection's not yet published batch
//!   counts), memory from the keyspace and `/proc`, time from the node's clock. A field
//!   Prism cannot measure is left out rather than faked (`instantaneous_ops_per_sec`
//!   needs a sampling tick that does not exist yet; `used_memory_rss` and `used_cpu_*`
//!   are omitted where `/proc` is unreadable).
//! - CONFIG SET is all-or-nothing: every name is checked first, then every value is set
//!   on a clone of the config, and only a fully valid clone reaches
//!   [`Node::apply_config`](crate::node::Node::apply_config). Concurrent CONFIG SETs are
//!   serialized so neither loses the other's change.
//! - CLIENT KILL only flags other clients (their tasks close their own sockets); killing
//!   the current client closes it after this reply is written, as QUIT does. A killed
//!   client is left out of CLIENT LIST and KILL at once, as Redis frees it at once, even
//!   though its task may not have closed its socket yet.
//! - WAIT replies how many other members of the shard group hold the connection's last
//!   committed write, waiting (up to the timeout; 0: for ever) until that many do. A
//!   standalone node, or a member that does not lead, has no replicas and answers 0 at
//!   once: no replica can ever acknowledge, so waiting would only stall the client.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use parking_lot::Mutex;
use prism_engine::glob::glob_match;
use prism_engine::Op;

use super::{arg_i64, container_help, is, text, CmdError, CmdResult, Ctx};
use crate::config::{self, Config, ConfigError};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

/// The Redis version Prism reports to clients: the Redis 7 behaviour it implements.
pub const REDIS_VERSION: &str = "7.2.4";

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    since: &'static str,
    complexity: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec { name, arity, flags, keys: KeySpec::None, group: Group::Server, summary, since, complexity, handler }
}

const ADMIN_FLAGS: u32 = ADMIN | NOSCRIPT | LOADING | STALE;
const CLIENT_FLAGS: u32 = NOSCRIPT | LOADING | STALE;

const CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "get",
        -3,
        ADMIN_FLAGS,
        "Returns the effective values of configuration parameters.",
        "2.0.0",
        "O(N) when N is the number of configuration parameters provided",
        Handler::Direct(config_get),
    ),
    spec(
        "set",
        -4,
        ADMIN_FLAGS,
        "Sets configuration parameters in-flight.",
        "2.0.0",
        "O(N) when N is the number of configuration parameters provided",
        Handler::Direct(config_set),
    ),
    spec(
        "resetstat",
        2,
        ADMIN_FLAGS,
        "Resets the server's statistics.",
        "2.0.0",
        "O(1)",
        Handler::Direct(config_resetstat),
    ),
    spec(
        "help",
        2,
        LOADING | STALE,
        "Returns helpful text about the different subcommands.",
        "5.0.0",
        "O(1)",
        Handler::Direct(config_help),
    ),
];

const CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "id",
        2,
        CLIENT_FLAGS,
        "Returns the unique client ID of the connection.",
        "5.0.0",
        "O(1)",
        Handler::Direct(client_id),
    ),
    spec("setname", 3, CLIENT_FLAGS, "Sets the connection name.", "2.6.9", "O(1)", Handler::Direct(client_setname)),
    spec(
        "getname",
        2,
        CLIENT_FLAGS,
        "Returns the name of the connection.",
        "2.6.9",
        "O(1)",
        Handler::Direct(client_getname),
    ),
    spec(
        "list",
        -2,
        ADMIN_FLAGS,
        "Lists open connections.",
        "2.4.0",
        "O(N) where N is the number of client connections",
        Handler::Direct(client_list),
    ),
    spec(
        "info",
        2,
        CLIENT_FLAGS,
        "Returns information about the connection.",
        "6.2.0",
        "O(1)",
        Handler::Direct(client_info),
    ),
    spec(
        "kill",
        -3,
        ADMIN_FLAGS,
        "Terminates open connections.",
        "2.4.0",
        "O(N) where N is the number of client connections",
        Handler::Direct(client_kill),
    ),
    spec(
        "setinfo",
        4,
        CLIENT_FLAGS,
        "Sets information specific to the client or connection.",
        "7.2.0",
        "O(1)",
        Handler::Direct(client_setinfo),
    ),
    spec(
        "no-evict",
        3,
        ADMIN_FLAGS,
        "Sets the client eviction mode of the connection.",
        "7.0.0",
        "O(1)",
        Handler::Direct(client_no_evict),
    ),
    spec(
        "no-touch",
        3,
        CLIENT_FLAGS,
        "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.",
        "7.2.0",
        "O(1)",
        Handler::Direct(client_no_touch),
    ),
    spec(
        "tracking",
        -3,
        CLIENT_FLAGS,
        "Controls server-assisted client-side caching for the connection.",
        "6.0.0",
        "O(1). Some options may introduce additional complexity.",
        Handler::Direct(super::introspect::client_tracking),
    ),
    spec(
        "getredir",
        2,
        CLIENT_FLAGS,
        "Returns the client ID to which the connection's tracking notifications are redirected.",
        "6.0.0",
        "O(1)",
        Handler::Direct(super::introspect::client_getredir),
    ),
    spec(
        "trackinginfo",
        2,
        CLIENT_FLAGS,
        "Returns information about server-assisted client-side caching for the connection.",
        "6.2.0",
        "O(1)",
        Handler::Direct(super::introspect::client_trackinginfo),
    ),
    spec(
        "help",
        2,
        LOADING | STALE,
        "Returns helpful text about the different subcommands.",
        "5.0.0",
        "O(1)",
        Handler::Direct(client_help),
    ),
];

pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "info",
        -1,
        LOADING | STALE,
        "Returns information and statistics about the server.",
        "1.0.0",
        "O(1)",
        Handler::Direct(info),
    ),
    spec(
        "config",
        -2,
        0,
        "A container for server configuration commands.",
        "2.0.0",
        "Depends on subcommand.",
        Handler::Container(CONFIG_SUBCOMMANDS),
    ),
    spec(
        "client",
        -2,
        0,
        "A container for client connection commands.",
        "2.4.0",
        "Depends on subcommand.",
        Handler::Container(CLIENT_SUBCOMMANDS),
    ),
    spec("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY, "Synchronously saves the database(s) to disk and shuts down the Redis server.", "1.0.0", "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)", Handler::Direct(shutdown)),
    spec("time", 1, LOADING | STALE | FAST, "Returns the server time.", "2.6.0", "O(1)", Handler::Direct(time)),
    spec("dbsize", 1, READONLY | FAST, "Returns the number of keys in the database.", "1.0.0", "O(1)", Handler::Direct(dbsize)),
    spec(
        "flushdb",
        -1,
        WRITE,
        "Removes all keys from the current database.",
        "1.0.0",
        "O(N) where N is the number of keys in the selected database",
        Handler::Write(flush),
    ),
    spec(
        "flushall",
        -1,
        WRITE,
        "Removes all keys from all databases.",
        "1.0.0",
        "O(N) where N is the total number of keys in all databases",
        Handler::Write(flush),
    ),
    spec(
        "wait",
        3,
        NOSCRIPT,
        "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
        "3.0.0",
        "O(1)",
        Handler::Direct(wait),
    ),
];

/// Client names cannot contain spaces, newlines or other special characters.
pub fn validate_client_name(name: &[u8]) -> CmdResult<()> {
    if !is_printable_word(name) {
        return Err(CmdError::msg("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(())
}

/// Redis's rule for client attributes: printable ASCII, no spaces.
fn is_printable_word(s: &[u8]) -> bool {
    s.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// Writes an error reply and counts it for INFO's total_error_replies.
fn error(ctx: &mut Ctx<'_>, msg: &str) {
    ctx.conn.errors += 1;
    ctx.out.error(msg);
}

// ---- INFO -------------------------------------------------------------------------

/// Sections in the order Redis prints them.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
    "tiering",
    "raft",
    "metadata",
];
/// Sections printed only by `INFO all`/`everything` or by name, as in Redis.
/// Tiering too: the default INFO keeps Redis's shape (docs/tiering.md).
const NOT_DEFAULT: &[&str] = &["commandstats", "latencystats", "tiering"];

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let default: [bool; SECTIONS.len()] = std::array::from_fn(|i| !NOT_DEFAULT.contains(&SECTIONS[i]));
    let mut wanted = if args.len() == 1 { default } else { [false; SECTIONS.len()] };
    for a in &args[1..] {
        if is(a, "all") || is(a, "everything") {
            wanted = [true; SECTIONS.len()];
        } else if is(a, "default") {
            wanted.iter_mut().zip(default).for_each(|(w, d)| *w |= d);
        } else if let Some(i) = SECTIONS.iter().position(|s| is(a, s)) {
            wanted[i] = true;
        }
        // Sections Prism does not have (modules, ...) add nothing, as an
        // unknown section does in Redis.
    }
    // This connection's command figures so far (not this INFO, which counts once it ran).
    ctx.node.cmd_stats.publish(&mut ctx.conn.cmd_stats);
    let mut text = String::with_capacity(2048);
    for (i, name) in SECTIONS.iter().enumerate() {
        // Only a replicated node has the raft section (a standalone one keeps Redis's shape).
        let absent = match *name {
            "raft" => ctx.node.replica().is_none(),
            // Only a fleet node is in the metadata group.
            "metadata" => ctx.node.replica().is_none_or(|r| r.catalog.is_none()),
            _ => false,
        };
        if !wanted[i] || absent {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        section(ctx, name, &mut text);
    }
    ctx.out.verbatim(&text);
}

fn section(ctx: &Ctx<'_>, name: &str, s: &mut String) {
    let node = ctx.node;
    // `write!` into a String cannot fail.
    macro_rules! field {
        ($k:expr, $v:expr) => {
            let _ = write!(s, "{}:{}\r\n", $k, $v);
        };
    }
    match name {
        "server" => {
            let config = node.config.read();
            let uptime = node.started.elapsed().as_secs();
            s.push_str("# Server\r\n");
            field!("redis_version", REDIS_VERSION);
            field!("prism_version", env!("CARGO_PKG_VERSION"));
            field!("redis_mode", "cluster");
            field!("os", os_name());
            field!("arch_bits", usize::BITS);
            field!("process_id", std::process::id());
            field!("run_id", node.run_id);
            field!("tcp_port", config.port);
            field!("server_time_usec", node.now_ms().saturating_mul(1000));
            field!("uptime_in_seconds", uptime);
            field!("uptime_in_days", uptime / 86_400);
            field!("hz", config.hz);
            field!("executable", std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default());
            field!("config_file", config.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default());
        }
        "clients" => {
            s.push_str("# Clients\r\n");
            field!("connected_clients", node.clients.count());
            field!("maxclients", node.limits.maxclients.load(Ordering::Relaxed));
            field!("blocked_clients", 0);
        }
        "memory" => {
            let used = node.keyspace.used_memory();
            let peak = node.stats.used_memory_peak.fetch_max(used, Ordering::Relaxed).max(used);
            let max = node.limits.maxmemory.load(Ordering::Relaxed);
            s.push_str("# Memory\r\n");
            field!("used_memory", used);
            field!("used_memory_human", human_bytes(used));
            if let Some(rss) = rss_bytes() {
                field!("used_memory_rss", rss);
                field!("used_memory_rss_human", human_bytes(rss));
            }
            field!("used_memory_peak", peak);
            field!("used_memory_peak_human", human_bytes(peak));
            field!("maxmemory", max);
            field!("maxmemory_human", human_bytes(max));
            field!("maxmemory_policy", "noeviction");
        }
        "persistence" => {
            s.push_str("# Persistence\r\n");
            field!("loading", 0);
        }
        "stats" => {
            let st = &node.stats;
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            let expired = node.keyspace.stats().expired_removed.saturating_sub(get(&st.expired_keys_base));
            // This connection's batch is published after it ends; count it now, minus
            // this INFO itself, which Redis counts only once it has run.
            let c = &*ctx.conn;
            s.push_str("# Stats\r\n");
            field!("total_connections_received", get(&st.connections_received));
            field!("total_commands_processed", get(&st.commands_processed) + c.commands.saturating_sub(1));
            field!("total_net_input_bytes", get(&st.net_input_bytes));
            field!("total_net_output_bytes", get(&st.net_output_bytes));
            field!("rejected_connections", get(&st.rejected_connections));
            field!("expired_keys", expired);
            field!("evicted_keys", 0); // maxmemory-policy is noeviction
            field!("keyspace_hits", get(&st.keyspace_hits) + c.hits);
            field!("keyspace_misses", get(&st.keyspace_misses) + c.misses);
            field!("total_error_replies", get(&st.error_replies) + get(&st.protocol_errors) + c.errors);
            field!(
                "client_output_buffer_limit_disconnections",
                get(&st.output_buffer_disconnections) + get(&node.pubsub.disconnections)
            );
            field!("pubsub_channels", node.pubsub.active(crate::pubsub::Kind::Channel, None).len());
            field!("pubsub_patterns", node.pubsub.pattern_count());
            field!("pubsubshard_channels", node.pubsub.active(crate::pubsub::Kind::Shard, None).len());
        }
        "replication" => {
            s.push_str("# Replication\r\n");
            match node.replica() {
                Some(r) => {
                    r.info_replication(s);
                    field!("master_replid", node.repl_id);
                }
                None => {
                    field!("role", "master");
                    field!("connected_slaves", 0);
                    field!("master_replid", node.repl_id);
                    field!("master_repl_offset", 0);
                }
            }
        }
        "raft" => {
            if let Some(r) = node.replica() {
                r.info_raft(s);
            }
        }
        "metadata" => {
            if let Some(c) = node.replica().and_then(|r| r.catalog.clone()) {
                c.info(s);
            }
        }
        "cpu" => {
            s.push_str("# CPU\r\n");
            if let Some((user_us, sys_us)) = cpu_times_us() {
                field!("used_cpu_sys", seconds_text(sys_us));
                field!("used_cpu_user", seconds_text(user_us));
            }
        }
        "commandstats" => node.cmd_stats.info_commandstats(s),
        "latencystats" => node.cmd_stats.info_latencystats(s),
        "errorstats" => node.cmd_stats.info_errorstats(s),
        "cluster" => {
            s.push_str("# Cluster\r\n");
            field!("cluster_enabled", 1);
            // A fleet node's cross-shard edge outbox (docs/fleet.md): entries owed, the
            // oldest's age. (A single node has none: its section stays Redis's.)
            if node.replica().is_some_and(|r| r.fleet.is_some()) {
                let (outbox, oldest_s) = crate::fleet::outbox::lag(node);
                field!("outbox_entries", outbox);
                field!("outbox_oldest_age_ms", (oldest_s * 1000.0) as u64);
            }
        }
        "tiering" => crate::tier::info(node, s),
        "keyspace" => {
            let ks = node.keyspace.stats();
            s.push_str("# Keyspace\r\n");
            if ks.keys > 0 {
                let _ = write!(s, "db0:keys={},expires={},avg_ttl=0\r\n", ks.keys, ks.volatile);
            }
        }
        _ => {}
    }
}

/// Bytes as Redis's `bytesToHuman` prints them: `512B`, `1.50K`, `2.00M`, ...
fn human_bytes(n: u64) -> String {
    const UNITS: [(u32, char); 5] = [(10, 'K'), (20, 'M'), (30, 'G'), (40, 'T'), (50, 'P')];
    if n < 1024 {
        return format!("{n}B");
    }
    for (shift, unit) in UNITS {
        if n < 1u64 << (shift + 10) {
            return format!("{:.2}{unit}", n as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{n}B")
}

/// `seconds.micros`, as Redis prints CPU times.
fn seconds_text(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// `Linux 6.1.0 x86_64`, as Redis prints `uname` (sysname, release, machine).
fn os_name() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    match (read("/proc/sys/kernel/ostype"), read("/proc/sys/kernel/osrelease")) {
        (Some(os), Some(release)) => format!("{os} {release} {}", std::env::consts::ARCH),
        _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// Resident set size from `/proc/self/status` (reported there in kB, so no page-size
/// assumption is needed).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// (user, system) CPU time of the process in microseconds, from `/proc/self/stat`.
/// Those fields are in clock ticks of USER_HZ, which the kernel fixes at 100 per second
/// on the architectures Prism builds for (x86_64, aarch64).
fn cpu_times_us() -> Option<(u64, u64)> {
    const US_PER_TICK: u64 = 1_000_000 / 100;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain. After
    // the closing parenthesis, field 3 (state) is index 0, so utime (14) is index 11.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let sys: u64 = fields.next()?.parse().ok()?;
    Some((user.saturating_mul(US_PER_TICK), sys.saturating_mul(US_PER_TICK)))
}

// ---- CONFIG -----------------------------------------------------------------------

/// Serializes CONFIG SET's clone-modify-apply so concurrent calls cannot lose changes.
static CONFIG_SET_LOCK: Mutex<()> = Mutex::new(());

/// `dir`, Redis's name for the data directory.
const DIR_ALIAS: &str = "dir";

fn config_get(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let mut found: Vec<(&'static str, String)> = Vec::new();
    let mut seen: HashSet<&'static str> = HashSet::new();
    {
        let config = ctx.node.config.read();
        for pattern in &args[2..] {
            // Config names are lower case and Redis matches them ignoring case.
            let pattern = pattern.to_ascii_lowercase();
            let mut add = |name: &'static str, value: &dyn Fn() -> String| {
                if glob_match(&pattern, name.as_bytes()) && seen.insert(name) {
                    found.push((name, value()));
                }
            };
            for &(name, _) in config::KEYS {
                add(name, &|| config.get(name).unwrap_or_default());
            }
            add(DIR_ALIAS, &|| config.data_dir.display().to_string());
            for &(name, value) in config::COMPAT {
                add(name, &|| value.to_string());
            }
        }
    }
    ctx.out.map(found.len());
    for (name, value) in &found {
        ctx.out.bulk(name.as_bytes());
        ctx.out.bulk(value.as_bytes());
    }
}

fn config_set(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    if args.len() % 2 == 1 {
        return error(ctx, "ERR wrong number of arguments for 'config|set' command");
    }
    match config_set_all(ctx, &args[2..]) {
        Ok(()) => ctx.out.ok(),
        Err(e) => error(ctx, &e.0),
    }
}

fn config_set_all(ctx: &mut Ctx<'_>, pairs: &[Bytes]) -> CmdResult<()> {
    let failed = |name: &str, why: &str| {
        CmdError::msg(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"))
    };
    // Names first, as Redis does: an unknown or immutable name is reported even when an
    // earlier value is also bad.
    let mut seen: HashSet<String> = HashSet::new();
    // (name as given, config key, value)
    let mut sets: Vec<(String, String, String)> = Vec::new();
    for pair in pairs.chunks_exact(2) {
        let given = text(&pair[0]);
        let value = text(&pair[1]);
        let key = given.to_ascii_lowercase();
        let key = if key == DIR_ALIAS { "data-dir".to_string() } else { key };
        if !seen.insert(key.clone()) {
            return Err(failed(&given, "duplicate parameter"));
        }
        match Config::is_mutable(&key) {
            Some(true) => sets.push((given, key, value)),
            Some(false) => return Err(failed(&given, "can't set immutable config")),
            None => match config::COMPAT.iter().find(|(k, _)| *k == key) {
                // Read-only compatibility values: setting the value they already have
                // (`CONFIG SET save ""` from test harnesses) changes nothing and is fine.
                Some((_, current)) if current.eq_ignore_ascii_case(&value) => {}
                Some(_) => return Err(failed(&given, "can't set immutable config")),
                None => {
                    return Err(CmdError::msg(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{given}'"
                    )))
                }
            },
        }
    }
    let _serial = CONFIG_SET_LOCK.lock();
    let mut next = ctx.node.config.read().clone();
    for (given, key, value) in &sets {
        if let Err(e) = next.set(key, value) {
            let why = match e {
                ConfigError::BadValue { why, .. } => why,
                other => other.to_string(),
            };
            return Err(failed(given, &why));
        }
    }
    ctx.node.apply_config(next);
    Ok(())
}

fn config_resetstat(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let st = &ctx.node.stats;
    for counter in [
        &st.connections_received,
        &st.rejected_connections,
        &st.commands_processed,
        &st.keyspace_hits,
        &st.keyspace_misses,
        &st.net_input_bytes,
        &st.net_output_bytes,
        &st.output_buffer_disconnections,
        &st.protocol_errors,
        &st.error_replies,
        &ctx.node.pubsub.disconnections,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    st.expired_keys_base.store(ctx.node.keyspace.stats().expired_removed, Ordering::Relaxed);
    ctx.node.cmd_stats.reset(&mut ctx.conn.cmd_stats);
    // This connection's unpublished counts predate the reset too, except this command,
    // which Redis counts after it has run.
    let c = &mut *ctx.conn;
    (c.commands, c.hits, c.misses, c.errors) = (1, 0, 0, 0);
    ctx.out.ok();
}

fn config_help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    container_help(ctx, "config");
}

// ---- CLIENT -----------------------------------------------------------------------

fn client_id(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.out.int(ctx.conn.handle.id as i64);
}

fn client_setname(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    if let Err(e) = validate_client_name(&args[2]) {
        return error(ctx, &e.0);
    }
    // An empty name removes the name.
    *ctx.conn.handle.name.lock() = (!args[2].is_empty()).then(|| args[2].clone());
    ctx.out.ok();
}

fn client_getname(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let name = ctx.conn.handle.name.lock().clone();
    match name {
        Some(n) => ctx.out.bulk(&n),
        None => ctx.out.null(),
    }
}

/// Client types Redis knows; every Prism client is `normal` (no replicas or pub/sub
/// connections exist yet).
fn client_type_matches_normal(name: &[u8]) -> Option<bool> {
    if is(name, "normal") {
        Some(true)
    } else if is(name, "master") || is(name, "replica") || is(name, "slave") || is(name, "pubsub") {
        Some(false)
    } else {
        None
    }
}

fn client_list(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let clients = if args.len() == 4 && is(&args[2], "type") {
        match client_type_matches_normal(&args[3]) {
            Some(true) => ctx.node.clients.list(),
            Some(false) => Vec::new(),
            None => return error(ctx, &format!("ERR Unknown client type '{}'", text(&args[3]))),
        }
    } else if args.len() > 3 && is(&args[2], "id") {
        let mut ids = Vec::with_capacity(args.len() - 3);
        for a in &args[3..] {
            match arg_i64(a) {
                Ok(id) if id >= 1 => ids.push(id as u64),
                _ => return error(ctx, "ERR Invalid client ID"),
            }
        }
        ids.into_iter().filter_map(|id| ctx.node.clients.get(id)).collect()
    } else if args.len() != 2 {
        return error(ctx, &CmdError::SYNTAX.0);
    } else {
        ctx.node.clients.list()
    };
    let mut text = String::new();
    // A killed client is gone as far as commands can tell, though its task may not have
    // closed its socket yet.
    for c in clients.into_iter().filter(|c| !c.is_killed()) {
        text.push_str(&c.describe());
        text.push('\n');
    }
    ctx.out.verbatim(&text);
}

fn client_info(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let mut text = ctx.conn.handle.describe();
    text.push('\n');
    ctx.out.verbatim(&text);
}

/// What `CLIENT KILL`'s filters select.
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    /// False when TYPE names a class no Prism client belongs to.
    type_matches: bool,
    skipme: bool,
}

fn client_kill(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let old_form = args.len() == 3;
    let filter = if old_form {
        KillFilter { id: None, addr: Some(text(&args[2])), laddr: None, type_matches: true, skipme: false }
    } else {
        match kill_filter(&args[2..]) {
            Ok(f) => f,
            Err(e) => return error(ctx, &e.0),
        }
    };
    let me = ctx.conn.handle.id;
    let mut killed = 0i64;
    for c in ctx.node.clients.list() {
        let selected = !c.is_killed()
            && filter.type_matches
            && filter.id.is_none_or(|id| c.id == id)
            && filter.addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
            && filter.laddr.as_ref().is_none_or(|a| c.laddr.to_string() == *a)
            && !(filter.skipme && c.id == me);
        if !selected {
            continue;
        }
        // The current client is closed once this reply has been written; the flag
        // hides it from other CLIENT commands meanwhile.
        c.kill();
        if c.id == me {
            ctx.conn.close = true;
        }
        killed += 1;
    }
    if !old_form {
        ctx.out.int(killed);
    } else if killed == 0 {
        error(ctx, "ERR No such client");
    } else {
        ctx.out.ok();
    }
}

/// Parses the new form's `<filter> <value>` pairs.
fn kill_filter(pairs: &[Bytes]) -> CmdResult<KillFilter> {
    let mut f = KillFilter { id: None, addr: None, laddr: None, type_matches: true, skipme: true };
    if pairs.len() % 2 == 1 {
        return Err(CmdError::SYNTAX);
    }
    for pair in pairs.chunks_exact(2) {
        let (opt, value) = (&pair[0], &pair[1]);
        if is(opt, "id") {
            match arg_i64(value) {
                Ok(id) if id >= 1 => f.id = Some(id as u64),
                _ => return Err(CmdError::msg("ERR client-id should be greater than 0")),
            }
        } else if is(opt, "type") {
            match client_type_matches_normal(value) {
                Some(m) => f.type_matches = m,
                None => return Err(CmdError::msg(format!("ERR Unknown client type '{}'", text(value)))),
            }
        } else if is(opt, "addr") {
            f.addr = Some(text(value));
        } else if is(opt, "laddr") {
            f.laddr = Some(text(value));
        } else if is(opt, "user") {
            // Without ACLs, `default` is the only user and every client's.
            if value.as_ref() != b"default" {
                return Err(CmdError::msg(format!("ERR No such user '{}'", text(value))));
            }
        } else if is(opt, "skipme") {
            f.skipme = if is(value, "yes") {
                true
            } else if is(value, "no") {
                false
            } else {
                return Err(CmdError::SYNTAX);
            };
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    Ok(f)
}

fn client_setinfo(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let handle = ctx.conn.handle.clone();
    let slot = if is(&args[2], "lib-name") {
        &handle.lib_name
    } else if is(&args[2], "lib-ver") {
        &handle.lib_ver
    } else {
        return error(ctx, &format!("ERR Unrecognized option '{}'", text(&args[2])));
    };
    if !is_printable_word(&args[3]) {
        return error(ctx, &format!("ERR {} cannot contain spaces, newlines or special characters.", text(&args[2])));
    }
    *slot.lock() = (!args[3].is_empty()).then(|| args[3].clone());
    ctx.out.ok();
}

fn on_off(arg: &[u8]) -> Option<bool> {
    if is(arg, "on") {
        Some(true)
    } else if is(arg, "off") {
        Some(false)
    } else {
        None
    }
}

fn client_no_evict(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match on_off(&args[2]) {
        Some(v) => {
            ctx.conn.handle.no_evict.store(v, Ordering::Relaxed);
            ctx.out.ok();
        }
        None => error(ctx, &CmdError::SYNTAX.0),
    }
}

fn client_no_touch(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match on_off(&args[2]) {
        Some(v) => {
            ctx.conn.handle.no_touch.store(v, Ordering::Relaxed);
            ctx.out.ok();
        }
        None => error(ctx, &CmdError::SYNTAX.0),
    }
}

fn client_help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    container_help(ctx, "client");
}

// ---- TIME, DBSIZE, FLUSH, WAIT ----------------------------------------------------

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: stops the node as SIGTERM does. There is
/// nothing to save (data is in memory until replication lands), so SAVE and NOSAVE are
/// the same; ABORT has no shutdown in progress to abort. On success the client sees the
/// connection close, as with Redis.
fn shutdown(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let mut abort = false;
    for a in &args[1..] {
        if is(a, "ABORT") {
            abort = true;
        } else if !["NOSAVE", "SAVE", "NOW", "FORCE"].iter().any(|w| is(a, w)) {
            return ctx.out.error(&CmdError::SYNTAX.0);
        }
    }
    if abort {
        if args.len() > 2 {
            return ctx.out.error(&CmdError::SYNTAX.0);
        }
        return ctx.out.error("ERR No shutdown in progress.");
    }
    tracing::warn!(client = ctx.conn.handle.id, "SHUTDOWN requested by a client");
    ctx.node.shutdown_requested.notify_one();
    ctx.conn.close = true;
}

fn time(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let now = ctx.now_ms();
    let mut buf = itoa::Buffer::new();
    ctx.out.array(2);
    ctx.out.bulk(buf.format(now / 1000).as_bytes());
    ctx.out.bulk(buf.format((now % 1000) * 1000).as_bytes());
}

fn dbsize(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    // Cold rows count: they are keys, only not in memory (docs/tiering.md).
    let (_, cold_rows, _) = ctx.node.keyspace.tier.totals();
    ctx.out.int((ctx.node.keyspace.key_count() + cold_rows) as i64);
}

/// FLUSHDB and FLUSHALL: one database, so both empty the whole keyspace. ASYNC and SYNC
/// are accepted; the flush is synchronous either way.
fn flush(_: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult<Op> {
    match args.len() {
        1 => Ok(Op::FlushAll),
        2 if is(&args[1], "sync") || is(&args[1], "async") => Ok(Op::FlushAll),
        _ => Err(CmdError::SYNTAX),
    }
}

fn wait(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    if let Err(e) = arg_i64(&args[1]) {
        return error(ctx, &e.0);
    }
    let timeout = match arg_i64(&args[2]) {
        Ok(t) if t < 0 => return error(ctx, "ERR timeout is negative"),
        Ok(t) => t as u64,
        Err(_) => return error(ctx, "ERR timeout is not an integer or out of range"),
    };
    let Some(r) = ctx.node.replica.get().cloned() else {
        // A standalone node has no replicas: none has acknowledged anything.
        return ctx.out.int(0);
    };
    if !r.is_leader() {
        return ctx.out.int(0);
    }
    let index = ctx.conn.last_write_index;
    // The connection waits for the group's replicas and answers (see `conn::run`); a
    // write it acknowledged is already on a majority, so WAIT 1 returns at once.
    let want = arg_i64(&args[1]).map_or(0, |n| n.clamp(0, 1 << 20) as usize);
    let deadline = (timeout > 0).then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(timeout));
    ctx.conn.deferred = Some(Box::pin(async move {
        let held = r.group.replicas_holding(index, want, deadline).await;
        Box::new(move |out: &mut crate::resp::ReplyWriter| out.int(held as i64)) as crate::conn::DeferredReply
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_like_redis() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1024), "1.00K");
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(3 << 20), "3.00M");
        assert_eq!(human_bytes(5 << 30), "5.00G");
    }

    #[test]
    fn cpu_seconds_format() {
        assert_eq!(seconds_text(1_234_567), "1.234567");
        assert_eq!(seconds_text(10_000), "0.010000");
    }

    #[test]
    fn proc_readers_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes().is_some_and(|b| b > 0));
            assert!(cpu_times_us().is_some());
        }
    }
}
