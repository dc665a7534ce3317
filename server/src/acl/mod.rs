//! Access control: users, their passwords and permissions ([`user`]), the check every
//! command of a restricted user passes ([`permit`]), ACL LOG ([`log`]), the ACL file,
//! protected mode ([`protected_refuses`]) and the audit line for admin commands
//! ([`audit`]).
//!
//! Invariants:
//! - The default user is `requirepass-file`'s password (or `nopass`), all commands, all
//!   keys; an `aclfile` may redefine it. Passwords are kept only as SHA-256 digests.
//! - The per-command cost for a user who may do everything is one relaxed atomic load on
//!   the connection's own [`ClientAcl`] (no lock, no allocation, no hashing): only
//!   restricted users pay for the bitset and key-pattern checks.
//! - A change to a user (SETUSER, DELUSER, LOAD) reaches its connected clients before
//!   the command that made it replies; a deleted user's clients are disconnected.

pub mod commands;
pub mod log;
pub mod user;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::RwLock;

pub use log::{AclLog, Reason};
pub use user::User;

use crate::cmd::CmdError;
use crate::conn::ConnState;
use crate::node::Node;
use crate::table::CommandSpec;

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equal in time independent of where the inputs differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The users of a node and its ACL LOG.
pub struct Acl {
    users: RwLock<BTreeMap<String, Arc<User>>>,
    pub log: AclLog,
}

impl Acl {
    /// The default user alone: `password`'s digest, or `nopass`.
    pub fn new(password: Option<&[u8]>) -> Acl {
        let acl = Acl { users: RwLock::new(BTreeMap::new()), log: AclLog::default() };
        acl.users.write().insert("default".into(), Arc::new(default_user(password)));
        acl
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    pub fn default_user(&self) -> Arc<User> {
        self.user("default").unwrap_or_else(|| Arc::new(User::new("default")))
    }

    /// False when a new connection is logged in as `default` without AUTH (Redis: the
    /// default user is on and `nopass`).
    pub fn requires_auth(&self) -> bool {
        let d = self.default_user();
        !(d.enabled && d.nopass)
    }

    /// The user `name` if `pass` is one of its passwords and it is enabled.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<User>> {
        let user = self.user(std::str::from_utf8(name).ok()?)?;
        user.check_password(pass).then_some(user)
    }

    pub fn names(&self) -> Vec<String> {
        self.users.read().keys().cloned().collect()
    }

    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    /// ACL SETUSER: creates the user if needed and applies `rules` (all or nothing).
    pub fn set_user(&self, node: &Node, name: &str, rules: &[&str]) -> Result<(), CmdError> {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(CmdError::msg("ERR Usernames can't contain spaces or null characters"));
        }
        let updated = {
            let mut users = self.users.write();
            let base = users.get(name).map(|u| (**u).clone()).unwrap_or_else(|| User::new(name));
            let u = base.with_rules(rules.iter().copied()).map_err(|(rule, why)| {
                CmdError::msg(format!("ERR Error in ACL SETUSER modifier '{}': {why}", redact_rule(&rule)))
            })?;
            let u = Arc::new(u);
            users.insert(name.to_string(), u.clone());
            u
        };
        refresh_clients(node, name, Some(updated));
        Ok(())
    }

    /// ACL DELUSER: how many of `names` existed; `default` cannot go.
    pub fn del_users(&self, node: &Node, names: &[String]) -> Result<usize, CmdError> {
        if names.iter().any(|n| n == "default") {
            return Err(CmdError::msg("ERR The 'default' user cannot be removed"));
        }
        let removed: Vec<String> = {
            let mut users = self.users.write();
            names.iter().filter(|n| users.remove(n.as_str()).is_some()).cloned().collect()
        };
        for n in &removed {
            refresh_clients(node, n, None);
        }
        Ok(removed.len())
    }

    /// Replaces every user with those of `path` (ACL LOAD, and the start): all or
    /// nothing. A file without a `default` user keeps the current default (so a node
    /// protected by `requirepass-file` stays protected).
    pub fn load_file(&self, node: Option<&Node>, path: &Path) -> Result<(), String> {
        let mut users = parse_file(path)?;
        let old = {
            let mut current = self.users.write();
            if !users.contains_key("default") {
                let d = current.get("default").cloned().unwrap_or_else(|| Arc::new(default_user(None)));
                users.insert("default".into(), d);
            }
            std::mem::replace(&mut *current, users.clone())
        };
        if let Some(node) = node {
            for name in old.keys().chain(users.keys()) {
                refresh_clients(node, name, users.get(name).cloned());
            }
        }
        Ok(())
    }

    /// ACL SAVE: every user, one line each, written to a temporary file then renamed.
    pub fn save_file(&self, path: &Path) -> Result<(), String> {
        let text: String = self.users().iter().map(|u| format!("{}\n", u.describe())).collect();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn default_user(password: Option<&[u8]>) -> User {
    let u = User::unrestricted("default");
    match password {
        Some(p) => {
            let mut u = u.with_rules(["resetpass"]).unwrap_or_else(|_| User::new("default"));
            let digest = user::hex(&sha256(p));
            let _ = u.apply(&format!("#{digest}"));
            u
        }
        None => u,
    }
}

/// Parses an ACL file: `user <name> <rule> ...` per line; blank lines and `#` comments
/// are skipped; any bad line fails the whole file, naming the line.
fn parse_file(path: &Path) -> Result<BTreeMap<String, Arc<User>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut users = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let mut words = line.split_whitespace();
        if words.next() != Some("user") {
            return Err(format!("{}: should start with user keyword", at()));
        }
        let name = words.next().ok_or_else(|| format!("{}: missing user name", at()))?;
        if users.contains_key(name) {
            return Err(format!("{}: duplicate user '{name}'", at()));
        }
        let u = User::new(name)
            .with_rules(words)
            .map_err(|(rule, why)| format!("{}: error in user rule '{}': {why}", at(), redact_rule(&rule)))?;
        users.insert(name.to_string(), Arc::new(u));
    }
    Ok(users)
}

/// A rule as it may be shown: clear-text passwords hidden.
pub fn redact_rule(rule: &str) -> String {
    match rule.as_bytes().first() {
        Some(b'>') | Some(b'<') => format!("{}(redacted)", &rule[..1]),
        _ => rule.to_string(),
    }
}

/// Points the clients logged in as `name` at its new definition, or disconnects them
/// when it was deleted.
fn refresh_clients(node: &Node, name: &str, user: Option<Arc<User>>) {
    for h in node.clients.list() {
        if h.acl.user().name == name {
            match &user {
                Some(u) => h.acl.set(u.clone()),
                None => h.kill(),
            }
        }
    }
}

/// The user a connection runs as, on its [`crate::clients::ClientHandle`].
#[derive(Debug)]
pub struct ClientAcl {
    restricted: AtomicBool,
    user: ArcSwap<User>,
}

impl Default for ClientAcl {
    fn default() -> Self {
        ClientAcl { restricted: AtomicBool::new(false), user: ArcSwap::from_pointee(User::unrestricted("default")) }
    }
}

impl ClientAcl {
    /// True when the user may not do everything: the command path checks permissions.
    #[inline]
    pub fn restricted(&self) -> bool {
        self.restricted.load(Ordering::Acquire)
    }

    pub fn user(&self) -> Arc<User> {
        self.user.load_full()
    }

    pub fn set(&self, user: Arc<User>) {
        let restricted = !user.is_unrestricted();
        self.user.store(user);
        self.restricted.store(restricted, Ordering::Release);
    }
}

/// Checks a restricted user's permission to run `spec` (resolved to its subcommand) with
/// `args`; a denial is logged to ACL LOG and returned as Redis's NOPERM error.
pub fn permit(node: &Node, conn: &ConnState, spec: &'static CommandSpec, args: &[Bytes]) -> Result<(), CmdError> {
    let user = conn.handle.acl.user();
    let Some((reason, object)) = evaluate(&user, spec, args) else { return Ok(()) };
    let context = if conn.multi.is_some() { "multi" } else { "toplevel" };
    node.acl.log.add(reason, context, object.clone(), user.name.clone(), conn.handle.describe(), node.now_ms());
    Err(CmdError::msg(match reason {
        Reason::Command => format!("NOPERM User {} has no permissions to run the '{object}' command", user.name),
        Reason::Key => "NOPERM No permissions to access a key".to_string(),
        _ => "NOPERM No permissions to access a channel".to_string(),
    }))
}

/// Why `user` may not run `spec` with `args` (the command's full name, the key or the
/// channel refused), or `None` when it may. Keys of a write command need write access,
/// other keys read access.
pub fn evaluate(user: &User, spec: &'static CommandSpec, args: &[Bytes]) -> Option<(Reason, String)> {
    let index = commands::index();
    match index.id_of(spec) {
        Some(id) if !user.may_run(id) => Some((Reason::Command, index.name(id).to_string())),
        None => Some((Reason::Command, spec.name.to_string())),
        Some(_) => {
            let write = spec.has(crate::table::flag::WRITE);
            let key = spec.key_indexes_in(args).find(|&i| !user.may_access_key(&args[i], write));
            match key {
                Some(i) => Some((Reason::Key, String::from_utf8_lossy(&args[i]).into_owned())),
                None => channel_denied(user, spec, args).map(|c| (Reason::Channel, c)),
            }
        }
    }
}

/// The first channel argument `user` may not use, for the pub/sub commands that name
/// channels (patterns of PSUBSCRIBE must be granted literally, as in Redis).
fn channel_denied(user: &User, spec: &CommandSpec, args: &[Bytes]) -> Option<String> {
    if user.all_channels {
        return None;
    }
    let (from, to, literal) = match spec.name {
        "publish" | "spublish" => (1, 2.min(args.len()), false),
        "subscribe" | "ssubscribe" => (1, args.len(), false),
        "psubscribe" => (1, args.len(), true),
        _ => return None,
    };
    args.get(from..to)?
        .iter()
        .find(|c| if literal { !user.channels.iter().any(|p| p == &c[..]) } else { !user.may_access_channel(c) })
        .map(|c| String::from_utf8_lossy(c).into_owned())
}

/// Protected mode's decision: with `protected-mode yes` and no password for the default
/// user, only loopback clients may connect (an IPv4-mapped loopback counts as loopback).
pub fn protected_refuses(protected_mode: bool, default_has_password: bool, peer: IpAddr) -> bool {
    let loopback = match peer {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    };
    protected_mode && !default_has_password && !loopback
}

/// What a protected node answers a refused client before closing (Redis's words, with
/// Prism's ways to set a password).
pub const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Prism you may adopt one of the following solutions: 1) Set a password for the default user with requirepass-file, or define users in an aclfile. 2) Disable protected mode with 'CONFIG SET protected-mode no' from the loopback interface, making sure the node is not reachable from the internet. 3) Restart the node with '--protected-mode no'. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Logs an audit line (tracing target `audit`) for the admin commands that change the
/// node, the fleet or its users: who, from where, and the arguments with passwords
/// redacted. Called before the command runs, so a command that never returns (SHUTDOWN)
/// is audited too.
pub fn audit(conn: &ConnState, full_name: &str, args: &[Bytes]) {
    let audited = matches!(
        full_name,
        "config|set"
            | "config|resetstat"
            | "flushall"
            | "flushdb"
            | "shutdown"
            | "acl|setuser"
            | "acl|deluser"
            | "acl|load"
            | "acl|save"
            | "client|kill"
            | "debug"
            | "backup|save"
    ) || full_name.starts_with("raft|")
        || (full_name.starts_with("cluster|") && !is_cluster_read(full_name));
    if !audited {
        return;
    }
    let acl_setuser = full_name == "acl|setuser";
    let shown: Vec<String> = args
        .iter()
        .take(32)
        .enumerate()
        .map(|(i, a)| {
            let text = String::from_utf8_lossy(&a[..a.len().min(128)]).into_owned();
            if acl_setuser && i >= 3 {
                redact_rule(&text)
            } else {
                text
            }
        })
        .collect();
    tracing::info!(
        target: "audit",
        user = %conn.handle.acl.user().name,
        client = %conn.handle.addr,
        command = full_name,
        args = ?shown,
        "admin command"
    );
}

fn is_cluster_read(full_name: &str) -> bool {
    matches!(
        full_name,
        "cluster|info"
            | "cluster|nodes"
            | "cluster|slots"
            | "cluster|shards"
            | "cluster|myid"
            | "cluster|myshardid"
            | "cluster|keyslot"
            | "cluster|countkeysinslot"
            | "cluster|getkeysinslot"
            | "cluster|help"
            | "cluster|links"
            | "cluster|replicas"
            | "cluster|slaves"
            | "cluster|count-failure-reports"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_decision() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let far: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(protected_refuses(true, false, far));
        assert!(!protected_refuses(true, false, lo) && !protected_refuses(true, false, lo6));
        assert!(!protected_refuses(true, false, mapped));
        assert!(!protected_refuses(true, true, far), "a password lifts it");
        assert!(!protected_refuses(false, false, far), "protected-mode no lifts it");
    }

    #[test]
    fn default_user_from_requirepass() {
        let acl = Acl::new(Some(b"pw"));
        assert!(acl.requires_auth());
        assert!(acl.authenticate(b"default", b"pw").is_some());
        assert!(acl.authenticate(b"default", b"nope").is_none());
        assert!(acl.default_user().is_unrestricted());
        assert!(!Acl::new(None).requires_auth());
    }

    #[test]
    fn acl_file_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.acl");
        std::fs::write(&path, "# users\nuser alice on >pw ~app:* +@read\n\nuser default on nopass ~* &* +@all\n")
            .unwrap();
        let acl = Acl::new(None);
        acl.load_file(None, &path).unwrap();
        assert_eq!(acl.names(), vec!["alice", "default"]);
        let text = std::fs::read_to_string(&path).unwrap();
        acl.save_file(&path).unwrap();
        let saved = std::fs::read_to_string(&path).unwrap();
        assert!(!saved.contains(">pw") && saved.contains("user alice on #"), "{saved} (from {text})");
        let again = Acl::new(None);
        again.load_file(None, &path).unwrap();
        assert!(again.authenticate(b"alice", b"pw").is_some());
        std::fs::write(&path, "user bob on +nosuch\n").unwrap();
        let e = again.load_file(None, &path).unwrap_err();
        assert!(e.contains(":1: error in user rule '+nosuch'"), "{e}");
        assert!(again.user("alice").is_some(), "a bad file changes nothing");
    }
}
