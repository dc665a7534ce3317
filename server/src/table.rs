//! The command table: every command registered once, with its arity, flags, key
//! positions, documentation and handler.
//!
//! This table is the one source for `COMMAND` (INFO, DOCS, COUNT, LIST, GETKEYS),
//! routing, slot checks, auth and OOM checks: nothing else hard-codes which argument of
//! a command is a key. Each command family module (`cmd/*.rs`) exports its own slice of
//! specs; [`families`] lists them.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use prism_engine::Op;

use crate::cmd::{self, CmdResult, Ctx};

/// Command flags, as `COMMAND` reports them.
pub mod flag {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const FAST: u32 = 1 << 9;
    pub const NO_AUTH: u32 = 1 << 10;
    pub const MAY_REPLICATE: u32 = 1 << 11;
    pub const NO_MULTI: u32 = 1 << 12;
    pub const ALLOW_BUSY: u32 = 1 << 13;
    pub const SKIP_SLOWLOG: u32 = 1 << 14;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// ACL categories (`ACL CAT`), derived from each command's flags and group the way
/// Redis derives its implicit ones: `write` -> @write, `readonly` -> @read, `admin` ->
/// @admin and @dangerous, `fast` -> @fast (else @slow), `blocking` -> @blocking, `pubsub`
/// -> @pubsub; the group gives the data-type category (@string, @graph, ...).
pub mod category {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const READ: u32 = 1 << 1;
    pub const WRITE: u32 = 1 << 2;
    pub const SET: u32 = 1 << 3;
    pub const SORTEDSET: u32 = 1 << 4;
    pub const LIST: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const STRING: u32 = 1 << 7;
    pub const FAST: u32 = 1 << 8;
    pub const SLOW: u32 = 1 << 9;
    pub const PUBSUB: u32 = 1 << 10;
    pub const ADMIN: u32 = 1 << 11;
    pub const DANGEROUS: u32 = 1 << 12;
    pub const CONNECTION: u32 = 1 << 13;
    pub const TRANSACTION: u32 = 1 << 14;
    pub const BLOCKING: u32 = 1 << 15;
    pub const GRAPH: u32 = 1 << 16;

    pub const NAMES: &[(u32, &str)] = &[
        (KEYSPACE, "keyspace"),
        (READ, "read"),
        (WRITE, "write"),
        (SET, "set"),
        (SORTEDSET, "sortedset"),
        (LIST, "list"),
        (HASH, "hash"),
        (STRING, "string"),
        (FAST, "fast"),
        (SLOW, "slow"),
        (PUBSUB, "pubsub"),
        (ADMIN, "admin"),
        (DANGEROUS, "dangerous"),
        (CONNECTION, "connection"),
        (TRANSACTION, "transaction"),
        (BLOCKING, "blocking"),
        (GRAPH, "graph"),
    ];

    /// The bit of a category name (without the `@`), case-insensitively.
    pub fn bit(name: &str) -> Option<u32> {
        NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(b, _)| *b)
    }

    /// Commands Redis files under @dangerous without the admin flag.
    pub(crate) const DANGEROUS_NAMES: &[&str] =
        &["flushall", "flushdb", "keys", "sort", "sort_ro", "migrate", "restore", "restore-asking", "swapdb"];
}

/// Which arguments are keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    None,
    /// Keys at `first`, `first + step`, ... up to `last`; a negative `last` counts from
    /// the end (-1: the last argument).
    Range {
        first: i32,
        last: i32,
        step: i32,
    },
    /// A count of keys at argument `numkeys_index`, then that many keys at `first`,
    /// `first + step`, ... (absolute argument indexes). `COMMAND` reports such commands
    /// with first/last/step 0, 0, 0 and the `movablekeys` flag (SINTERCARD, ZUNION, ...).
    Keynum {
        numkeys_index: usize,
        first: usize,
        step: usize,
    },
}

/// The command group, as `COMMAND DOCS` reports it; also the ACL category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Connection,
    Server,
    Generic,
    String,
    Hash,
    Set,
    SortedSet,
    List,
    Transactions,
    PubSub,
    Graph,
    Cluster,
}

impl Group {
    pub fn name(self) -> &'static str {
        match self {
            Group::Connection => "connection",
            Group::Server => "server",
            Group::Generic => "generic",
            Group::String => "string",
            Group::Hash => "hash",
            Group::Set => "set",
            Group::SortedSet => "sorted-set",
            Group::List => "list",
            Group::Transactions => "transactions",
            Group::PubSub => "pubsub",
            Group::Graph => "graph",
            Group::Cluster => "cluster",
        }
    }

    /// The ACL category of commands in this group.
    pub fn category(self) -> &'static str {
        match self {
            Group::Connection => "@connection",
            Group::Server | Group::Cluster => "@admin",
            Group::Generic => "@keyspace",
            Group::String => "@string",
            Group::Hash => "@hash",
            Group::Set => "@set",
            Group::SortedSet => "@sortedset",
            Group::List => "@list",
            Group::Transactions => "@transaction",
            Group::PubSub => "@pubsub",
            Group::Graph => "@graph",
        }
    }
}

/// How a command runs.
pub enum Handler {
    /// Runs against the node and writes its own reply (reads, connection and admin
    /// commands).
    Direct(fn(&mut Ctx<'_>, &[Bytes])),
    /// Builds a deterministic [`Op`]; the write path applies it and the reply is the op's
    /// output. Argument errors are replied before any op exists.
    Write(fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult<Op>),
    /// A container (`CLUSTER`, `CLIENT`, ...) whose second argument names a subcommand.
    Container(&'static [CommandSpec]),
}

pub struct CommandSpec {
    /// Lower-case name; for a subcommand, the subcommand's own name.
    pub name: &'static str,
    /// Redis arity: N means exactly N arguments (name included), -N at least N.
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    pub group: Group,
    pub summary: &'static str,
    pub since: &'static str,
    pub complexity: &'static str,
    pub handler: Handler,
}

impl CommandSpec {
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// This command's ACL categories ([`category`]), from its flags and group.
    pub fn acl_categories(&self) -> u32 {
        use category as c;
        let mut cats = if self.has(flag::FAST) { c::FAST } else { c::SLOW };
        for (f, cat) in [
            (flag::WRITE, c::WRITE),
            (flag::READONLY, c::READ),
            (flag::ADMIN, c::ADMIN | c::DANGEROUS),
            (flag::BLOCKING, c::BLOCKING),
            (flag::PUBSUB, c::PUBSUB),
        ] {
            if self.has(f) {
                cats |= cat;
            }
        }
        cats |= match self.group {
            Group::Generic => c::KEYSPACE,
            Group::String => c::STRING,
            Group::Hash => c::HASH,
            Group::Set => c::SET,
            Group::SortedSet => c::SORTEDSET,
            Group::List => c::LIST,
            Group::Transactions => c::TRANSACTION,
            Group::PubSub => c::PUBSUB,
            Group::Connection => c::CONNECTION,
            Group::Graph => c::GRAPH,
            Group::Server | Group::Cluster => 0,
        };
        if c::DANGEROUS_NAMES.contains(&self.name) {
            cats |= c::DANGEROUS;
        }
        cats
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = self.arity as i64;
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    pub fn subcommands(&self) -> &'static [CommandSpec] {
        match self.handler {
            Handler::Container(subs) => subs,
            _ => &[],
        }
    }

    /// `(first, last, step)` as `COMMAND INFO` reports them.
    pub fn key_positions(&self) -> (i64, i64, i64) {
        match self.keys {
            KeySpec::None | KeySpec::Keynum { .. } => (0, 0, 0),
            KeySpec::Range { first, last, step } => (first as i64, last as i64, step as i64),
        }
    }

    /// True when the key positions depend on the arguments (`movablekeys`).
    pub fn movable_keys(&self) -> bool {
        matches!(self.keys, KeySpec::Keynum { .. })
    }

    /// Indexes of the key arguments of `args` (`args[0]` is the command name), reading a
    /// [`KeySpec::Keynum`] count from the arguments: none when the count is not a positive
    /// integer whose keys all fit, as Redis's key extraction; the command itself then
    /// answers the error. Routing uses this form.
    pub fn key_indexes_in(&self, args: &[Bytes]) -> impl Iterator<Item = usize> {
        let (first, end, step) = match self.keys {
            KeySpec::Keynum { numkeys_index, first, step } => {
                let step = step.max(1);
                let n = args.get(numkeys_index).and_then(|a| prism_engine::num::parse_i64(a)).unwrap_or(0);
                let end = usize::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .and_then(|n| (n - 1).checked_mul(step))
                    .and_then(|k| k.checked_add(first));
                match end {
                    Some(end) if end < args.len() => (first, end, step),
                    _ => (1, 0, 1),
                }
            }
            _ => self.span(args.len()),
        };
        span_iter(first, end, step)
    }

    /// Indexes of the key arguments in `args` (`args[0]` is the command name), from the
    /// argument count alone: nothing for a [`KeySpec::Keynum`] command, whose keys only
    /// [`CommandSpec::key_indexes_in`] can find.
    pub fn key_indexes(&self, argc: usize) -> impl Iterator<Item = usize> {
        let (first, end, step) = self.span(argc);
        span_iter(first, end, step)
    }

    /// `(first, end, step)` of the key arguments for `argc` arguments; empty when first > end.
    fn span(&self, argc: usize) -> (usize, usize, usize) {
        let (first, last, step) = match self.keys {
            KeySpec::None | KeySpec::Keynum { .. } => (1, 0, 1),
            KeySpec::Range { first, last, step } => {
                let last = if last < 0 { argc as i64 + last as i64 } else { last as i64 };
                (first as usize, last.max(0) as usize, step.max(1) as usize)
            }
        };
        let end = if last >= argc { argc.saturating_sub(1) } else { last };
        (first, end, step)
    }
}

fn span_iter(first: usize, end: usize, step: usize) -> impl Iterator<Item = usize> {
    (first..=end).step_by(step).filter(move |&i| i >= first && i <= end && first <= end)
}

/// Every command family, in the order `COMMAND` lists them.
pub fn families() -> &'static [&'static [CommandSpec]] {
    &[
        cmd::connection::COMMANDS,
        cmd::server::COMMANDS,
        cmd::command::COMMANDS,
        cmd::keys::COMMANDS,
        cmd::migrate::COMMANDS,
        crate::backup::save::COMMANDS,
        cmd::sort::COMMANDS,
        cmd::string::COMMANDS,
        cmd::hash::COMMANDS,
        cmd::set::COMMANDS,
        cmd::zset::COMMANDS,
        cmd::list::COMMANDS,
        cmd::multi::COMMANDS,
        cmd::pubsub::COMMANDS,
        cmd::graph::COMMANDS,
        cmd::blocking::COMMANDS,
        cmd::cluster::COMMANDS,
        cmd::reshard::COMMANDS,
        cmd::raft::COMMANDS,
        cmd::introspect::COMMANDS,
        cmd::acl::COMMANDS,
    ]
}

pub fn all() -> impl Iterator<Item = &'static CommandSpec> {
    families().iter().flat_map(|f| f.iter())
}

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    static INDEX: OnceLock<HashMap<&'static str, &'static CommandSpec, foldhash::fast::RandomState>> = OnceLock::new();
    let index = INDEX.get_or_init(|| all().map(|c| (c.name, c)).collect());
    let mut lower = [0u8; 32];
    if name.len() > lower.len() {
        return None;
    }
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let name = std::str::from_utf8(&lower[..name.len()]).ok()?;
    index.get(name).copied()
}

/// Looks a subcommand of `container` up by name, case-insensitively.
pub fn lookup_sub(container: &'static CommandSpec, name: &[u8]) -> Option<&'static CommandSpec> {
    container.subcommands().iter().find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for c in all() {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            assert!(c.name.len() <= 32);
            let mut subs = std::collections::HashSet::new();
            for s in c.subcommands() {
                assert!(subs.insert(s.name), "duplicate {}|{}", c.name, s.name);
            }
        }
    }

    #[test]
    fn key_indexes() {
        let spec = |first, last, step| CommandSpec {
            name: "x",
            arity: -1,
            flags: 0,
            keys: KeySpec::Range { first, last, step },
            group: Group::Generic,
            summary: "",
            since: "",
            complexity: "",
            handler: Handler::Direct(|_, _| {}),
        };
        assert_eq!(spec(1, 1, 1).key_indexes(3).collect::<Vec<_>>(), vec![1]);
        assert_eq!(spec(1, -1, 1).key_indexes(4).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(spec(1, -1, 2).key_indexes(5).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(spec(1, 2, 1).key_indexes(3).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(spec(1, 1, 1).key_indexes(1).collect::<Vec<_>>(), Vec::<usize>::new());
    }

    #[test]
    fn keynum_key_indexes() {
        let spec = CommandSpec {
            name: "x",
            arity: -3,
            flags: 0,
            keys: KeySpec::Keynum { numkeys_index: 1, first: 2, step: 1 },
            group: Group::Set,
            summary: "",
            since: "",
            complexity: "",
            handler: Handler::Direct(|_, _| {}),
        };
        let args = |a: &[&str]| a.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect::<Vec<_>>();
        let keys = |a: &[&str]| spec.key_indexes_in(&args(a)).collect::<Vec<_>>();
        assert_eq!(keys(&["x", "2", "a", "b", "LIMIT", "1"]), vec![2, 3]);
        assert_eq!(keys(&["x", "1", "a"]), vec![2]);
        assert_eq!(keys(&["x", "3", "a", "b"]), Vec::<usize>::new(), "more keys than arguments");
        assert_eq!(keys(&["x", "0", "a"]), Vec::<usize>::new());
        assert_eq!(keys(&["x", "-1", "a"]), Vec::<usize>::new());
        assert_eq!(keys(&["x", "nope", "a"]), Vec::<usize>::new());
        assert_eq!(keys(&["x", "-9223372036854775808", "a"]), Vec::<usize>::new());
        assert_eq!(keys(&["x", "9223372036854775807", "a"]), Vec::<usize>::new());
        assert_eq!(spec.key_positions(), (0, 0, 0));
        assert!(spec.movable_keys());
        assert_eq!(spec.key_indexes(6).count(), 0);
    }
}

#[cfg(test)]
mod docs_tests {
    /// docs/commands.md names every command (and every subcommand as `CONTAINER SUB`).
    #[test]
    fn every_command_is_documented() {
        let doc = include_str!("../../docs/commands.md");
        for c in super::all() {
            if c.subcommands().is_empty() {
                let entry = format!("`{}`", c.name.to_ascii_uppercase());
                assert!(doc.contains(&entry), "docs/commands.md does not list {entry}");
            }
            for s in c.subcommands() {
                let entry = format!("`{} {}`", c.name.to_ascii_uppercase(), s.name.to_ascii_uppercase());
                assert!(doc.contains(&entry), "docs/commands.md does not list {entry}");
            }
        }
    }
}
