//! Numbers every command and subcommand of the command table once, so a user's command
//! permissions are a bitset and checking one is a bit test.
//!
//! Built lazily from [`crate::table::all`], the one source for commands; ids are stable
//! for the life of the process (they are never written anywhere).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::table::{self, CommandSpec};

pub struct CommandIndex {
    /// Per id: the spec, its full name (`config|get`) and its categories.
    entries: Vec<(&'static CommandSpec, String, u32)>,
    by_ptr: HashMap<usize, usize>,
    /// Rule names: `get` -> [get], `config` -> [config, config|get, ...], `config|get`.
    by_rule: HashMap<String, Vec<usize>>,
    full: Vec<u64>,
}

pub fn index() -> &'static CommandIndex {
    static INDEX: OnceLock<CommandIndex> = OnceLock::new();
    INDEX.get_or_init(CommandIndex::build)
}

impl CommandIndex {
    fn build() -> CommandIndex {
        let mut entries = Vec::new();
        let mut by_rule: HashMap<String, Vec<usize>> = HashMap::new();
        for c in table::all() {
            let id = entries.len();
            entries.push((c, c.name.to_string(), c.acl_categories()));
            by_rule.entry(c.name.to_string()).or_default().push(id);
            for s in c.subcommands() {
                let sid = entries.len();
                let full = format!("{}|{}", c.name, s.name);
                entries.push((s, full.clone(), s.acl_categories()));
                by_rule.entry(c.name.to_string()).or_default().push(sid);
                by_rule.entry(full).or_default().push(sid);
            }
        }
        let by_ptr = entries.iter().enumerate().map(|(i, (s, _, _))| (*s as *const CommandSpec as usize, i)).collect();
        let mut full = vec![0u64; entries.len().div_ceil(64)];
        for id in 0..entries.len() {
            full[id / 64] |= 1 << (id % 64);
        }
        CommandIndex { entries, by_ptr, by_rule, full }
    }

    /// u64 words a bitset over every id takes.
    pub fn words(&self) -> usize {
        self.full.len()
    }

    /// Every id set.
    pub fn full_mask(&self) -> &[u64] {
        &self.full
    }

    /// The id of a spec from the table (a command or a subcommand).
    pub fn id_of(&self, spec: &'static CommandSpec) -> Option<usize> {
        self.by_ptr.get(&(spec as *const CommandSpec as usize)).copied()
    }

    /// The id of a top-level command or `container|sub` by name.
    pub fn id_of_name(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|(_, full, _)| full == name)
    }

    /// The ids a `+name` / `-name` rule covers (a container covers its subcommands).
    pub fn ids_for_rule(&self, name: &str) -> Option<Vec<usize>> {
        self.by_rule.get(name).cloned()
    }

    pub fn in_category(&self, bit: u32) -> impl Iterator<Item = usize> + '_ {
        self.entries.iter().enumerate().filter(move |(_, (_, _, c))| c & bit != 0).map(|(i, _)| i)
    }

    /// Full names of the commands in a category, for ACL CAT <category>.
    pub fn names_in_category(&self, bit: u32) -> Vec<&str> {
        self.in_category(bit).map(|i| self.entries[i].1.as_str()).collect()
    }

    /// The full name of an id (`config|get`).
    pub fn name(&self, id: usize) -> &str {
        self.entries.get(id).map_or("", |e| e.1.as_str())
    }
}
