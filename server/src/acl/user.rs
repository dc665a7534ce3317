//! One ACL user: whether it is enabled, its passwords (SHA-256 digests only: the clear
//! text is hashed the moment it arrives and never kept), the commands it may run and the
//! keys and channels it may touch, built from Redis's rule words (`on`, `>pass`, `~app:*`,
//! `+@read`, ...).
//!
//! Invariants:
//! - A `User` is immutable once published: ACL SETUSER applies its rules to a copy and
//!   swaps the copy in only when every rule parsed, so a bad rule changes nothing.
//! - The command rules are kept as given (after the `+@all`/`-@all` base they start from)
//!   so ACL LIST describes a user the way it was written; the bitset is what is checked.

use std::fmt::Write as _;

use super::commands::{self, CommandIndex};

/// A key pattern and what it grants (`~p`: both, `%R~p`: read, `%W~p`: write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Vec<u8>,
    pub read: bool,
    pub write: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// SHA-256 digests of the passwords.
    pub passwords: Vec<[u8; 32]>,
    /// One bit per command id ([`CommandIndex`]).
    allowed: Vec<u64>,
    /// Whether the command rules start from `+@all` (else `-@all`).
    base_all: bool,
    /// Command rules applied after the base, for describing the user.
    command_rules: Vec<String>,
    pub keys: Vec<KeyPattern>,
    pub all_channels: bool,
    pub channels: Vec<Vec<u8>>,
}

/// Why a rule was refused, in words for `ERR Error in ACL SETUSER modifier ...`.
pub type RuleError = String;

impl User {
    /// A new user as ACL SETUSER creates it: off, no passwords, no commands, no keys.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            allowed: vec![0; commands::index().words()],
            base_all: false,
            command_rules: Vec::new(),
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
        }
    }

    /// The default user with no password configured: may do everything.
    pub fn unrestricted(name: &str) -> User {
        let mut u = User::new(name);
        for rule in ["on", "nopass", "allkeys", "allchannels", "allcommands"] {
            let _ = u.apply(rule);
        }
        u
    }

    /// True when the user may run every command on every key and channel: connections
    /// of such a user skip the ACL check entirely.
    pub fn is_unrestricted(&self) -> bool {
        self.enabled
            && self.all_channels
            && self.keys.iter().any(|k| k.read && k.write && k.pattern == b"*")
            && self.allowed.iter().zip(commands::index().full_mask()).all(|(a, m)| a & m == *m)
    }

    pub fn may_run(&self, id: usize) -> bool {
        self.allowed.get(id / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    pub fn check_password(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let digest = super::sha256(pass);
        // Compare every stored digest in constant time, without stopping at a match.
        self.passwords.iter().fold(false, |found, p| found | super::ct_eq(p, &digest))
    }

    /// True when the user may read (`write` false) or write `key`.
    pub fn may_access_key(&self, key: &[u8], write: bool) -> bool {
        self.keys
            .iter()
            .any(|k| (if write { k.write } else { k.read }) && prism_engine::glob::glob_match(&k.pattern, key))
    }

    pub fn may_access_channel(&self, channel: &[u8]) -> bool {
        self.all_channels || self.channels.iter().any(|p| prism_engine::glob::glob_match(p, channel))
    }

    /// Applies rules in order to a copy; the copy only if all of them were accepted.
    pub fn with_rules<'a>(&self, rules: impl IntoIterator<Item = &'a str>) -> Result<User, (String, RuleError)> {
        let mut u = self.clone();
        for rule in rules {
            u.apply(rule).map_err(|why| (rule.to_string(), why))?;
        }
        Ok(u)
    }

    /// Applies one rule word.
    pub fn apply(&mut self, rule: &str) -> Result<(), RuleError> {
        let index = commands::index();
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.keys = vec![KeyPattern { pattern: b"*".to_vec(), read: true, write: true }],
            "resetkeys" => self.keys.clear(),
            "allchannels" => {
                self.all_channels = true;
                self.channels.clear();
            }
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            "allcommands" | "+@all" => self.set_base(true),
            "nocommands" | "-@all" => self.set_base(false),
            "reset" => {
                for r in ["resetpass", "resetkeys", "resetchannels", "off", "-@all"] {
                    self.apply(r)?;
                }
            }
            _ => return self.apply_prefixed(rule, index),
        }
        Ok(())
    }

    fn apply_prefixed(&mut self, rule: &str, index: &CommandIndex) -> Result<(), RuleError> {
        let bytes = rule.as_bytes();
        if let Some(pass) = rule.strip_prefix('>') {
            self.add_digest(super::sha256(pass.as_bytes()));
        } else if let Some(pass) = rule.strip_prefix('<') {
            self.remove_digest(&super::sha256(pass.as_bytes()))?;
        } else if let Some(hex) = rule.strip_prefix('#') {
            self.add_digest(parse_digest(hex)?);
        } else if let Some(hex) = rule.strip_prefix('!') {
            self.remove_digest(&parse_digest(hex)?)?;
        } else if let Some(p) = rule.strip_prefix('~') {
            self.add_keys(p, true, true);
        } else if bytes.first() == Some(&b'%') {
            let (perms, p) = rule[1..].split_once('~').ok_or("Syntax error")?;
            let perms = perms.to_ascii_uppercase();
            if perms.is_empty() || !perms.chars().all(|c| c == 'R' || c == 'W') {
                return Err("Syntax error".into());
            }
            self.add_keys(p, perms.contains('R'), perms.contains('W'));
        } else if let Some(p) = rule.strip_prefix('&') {
            if !self.all_channels && !self.channels.iter().any(|c| c == p.as_bytes()) {
                self.channels.push(p.as_bytes().to_vec());
            }
            if p == "*" {
                self.apply("allchannels")?;
            }
        } else if let Some(what) = rule.strip_prefix('+') {
            self.command_rule(index, what, true)?;
        } else if let Some(what) = rule.strip_prefix('-') {
            self.command_rule(index, what, false)?;
        } else {
            return Err("Syntax error".into());
        }
        Ok(())
    }

    fn add_digest(&mut self, d: [u8; 32]) {
        self.nopass = false;
        if !self.passwords.contains(&d) {
            self.passwords.push(d);
        }
    }

    fn remove_digest(&mut self, d: &[u8; 32]) -> Result<(), RuleError> {
        let before = self.passwords.len();
        self.passwords.retain(|p| p != d);
        if self.passwords.len() == before {
            return Err("The password you are trying to remove from the user does not exist".into());
        }
        Ok(())
    }

    fn add_keys(&mut self, pattern: &str, read: bool, write: bool) {
        let pattern = pattern.as_bytes().to_vec();
        match self.keys.iter_mut().find(|k| k.pattern == pattern) {
            Some(k) => {
                k.read |= read;
                k.write |= write;
            }
            None => self.keys.push(KeyPattern { pattern, read, write }),
        }
    }

    fn set_base(&mut self, all: bool) {
        self.base_all = all;
        self.command_rules.clear();
        let mask = commands::index().full_mask();
        for (w, m) in self.allowed.iter_mut().zip(mask) {
            *w = if all { *m } else { 0 };
        }
    }

    /// `+name`, `+name|sub`, `+@category` (and the `-` forms).
    fn command_rule(&mut self, index: &CommandIndex, what: &str, allow: bool) -> Result<(), RuleError> {
        let what = what.to_ascii_lowercase();
        let ids: Vec<usize> = if let Some(cat) = what.strip_prefix('@') {
            if cat == "all" {
                self.set_base(allow);
                return Ok(());
            }
            let bit = crate::table::category::bit(cat).ok_or("Unknown command or category name in ACL")?;
            index.in_category(bit).collect()
        } else {
            index.ids_for_rule(&what).ok_or("Unknown command or category name in ACL")?
        };
        for id in ids {
            let (word, bit) = (id / 64, 1u64 << (id % 64));
            if let Some(w) = self.allowed.get_mut(word) {
                if allow {
                    *w |= bit;
                } else {
                    *w &= !bit;
                }
            }
        }
        let text = format!("{}{what}", if allow { '+' } else { '-' });
        self.command_rules.retain(|r| *r != text);
        self.command_rules.push(text);
        Ok(())
    }

    /// The user as ACL LIST and the ACL file write it.
    pub fn describe(&self) -> String {
        let mut s = format!("user {} {}", self.name, if self.enabled { "on" } else { "off" });
        if self.nopass {
            s.push_str(" nopass");
        }
        for p in &self.passwords {
            let _ = write!(s, " #{}", hex(p));
        }
        let _ = write!(s, " {}", self.keys_text());
        let _ = write!(s, " {}", self.channels_text());
        let _ = write!(s, " {}", self.commands_text());
        // Collapse the spaces an empty section leaves.
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    pub fn keys_text(&self) -> String {
        let words: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                let p = String::from_utf8_lossy(&k.pattern);
                match (k.read, k.write) {
                    (true, true) => format!("~{p}"),
                    (true, false) => format!("%R~{p}"),
                    _ => format!("%W~{p}"),
                }
            })
            .collect();
        words.join(" ")
    }

    pub fn channels_text(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        let mut words = vec!["resetchannels".to_string()];
        words.extend(self.channels.iter().map(|c| format!("&{}", String::from_utf8_lossy(c))));
        words.join(" ")
    }

    pub fn commands_text(&self) -> String {
        let mut words = vec![if self.base_all { "+@all" } else { "-@all" }.to_string()];
        words.extend(self.command_rules.iter().cloned());
        words.join(" ")
    }

    /// The flags ACL GETUSER lists.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        f
    }
}

fn parse_digest(hex: &str) -> Result<[u8; 32], RuleError> {
    let err = || "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
    if hex.len() != 64 {
        return Err(err().into());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = hex.get(i * 2..i * 2 + 2).ok_or_else(err)?;
        if !pair.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(err().into());
        }
        *o = u8::from_str_radix(pair, 16).map_err(|_| err())?;
    }
    Ok(out)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_build_a_user_and_describe_it() {
        let u = User::new("alice").with_rules(["on", ">pw", "~app:*", "+@read"]).unwrap();
        assert!(u.enabled && u.check_password(b"pw") && !u.check_password(b"nope"));
        assert!(u.may_access_key(b"app:1", false) && !u.may_access_key(b"other:1", false));
        let get = commands::index().id_of_name("get").unwrap();
        let set = commands::index().id_of_name("set").unwrap();
        assert!(u.may_run(get) && !u.may_run(set));
        assert!(!u.is_unrestricted());
        let d = u.describe();
        assert!(d.starts_with("user alice on #"), "{d}");
        assert!(d.ends_with("~app:* resetchannels -@all +@read"), "{d}");
        assert!(User::unrestricted("default").is_unrestricted());
        assert_eq!(User::unrestricted("default").describe(), "user default on nopass ~* &* +@all");
    }

    #[test]
    fn a_bad_rule_changes_nothing() {
        let u = User::new("bob");
        let (rule, why) = u.with_rules(["on", "+nosuchcommand"]).unwrap_err();
        assert_eq!(rule, "+nosuchcommand");
        assert!(why.contains("Unknown command"), "{why}");
        assert!(u.with_rules(["#abc"]).is_err());
        assert!(u.with_rules(["<never-set"]).is_err());
        assert!(u.with_rules(["%X~k"]).is_err());
        assert!(u.with_rules(["bogus"]).is_err());
    }

    #[test]
    fn hashed_and_read_write_patterns() {
        let digest = hex(&crate::acl::sha256(b"secret"));
        let u = User::new("c").with_rules(["on", &format!("#{digest}"), "%R~r:*", "%W~w:*", "allcommands"]).unwrap();
        assert!(u.check_password(b"secret"));
        assert!(u.may_access_key(b"r:1", false) && !u.may_access_key(b"r:1", true));
        assert!(u.may_access_key(b"w:1", true) && !u.may_access_key(b"w:1", false));
        let u = u.with_rules(["-set", "+config|get", "off"]).unwrap();
        assert!(!u.check_password(b"secret"), "a disabled user cannot log in");
        assert!(!u.may_run(commands::index().id_of_name("set").unwrap()));
    }
}
