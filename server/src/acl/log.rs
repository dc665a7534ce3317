//! ACL LOG: the most recent denied commands, keys, channels and failed AUTHs, as Redis
//! keeps them.
//!
//! Invariants: at most [`MAX_ENTRIES`] entries (the oldest go first); a denial like one
//! logged less than [`GROUP_MS`] ago (same reason, context, object and user) bumps that
//! entry's count instead of adding one, so a client retrying in a loop cannot flush the
//! log of everything else. Passwords are never recorded.

use std::collections::VecDeque;

use parking_lot::Mutex;

pub const MAX_ENTRIES: usize = 128;
const GROUP_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Command,
    Key,
    Channel,
    Auth,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub count: u64,
    pub reason: Reason,
    /// `toplevel` or `multi`.
    pub context: &'static str,
    /// The command's full name, the key, the channel, or `AUTH`.
    pub object: String,
    pub username: String,
    pub client_info: String,
    pub entry_id: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
}

#[derive(Debug, Default)]
pub struct AclLog {
    inner: Mutex<(VecDeque<Entry>, u64)>,
}

impl AclLog {
    /// Records one denial at `now_ms`.
    pub fn add(
        &self,
        reason: Reason,
        context: &'static str,
        object: String,
        username: String,
        client_info: String,
        now_ms: u64,
    ) {
        let mut guard = self.inner.lock();
        let (entries, next_id) = &mut *guard;
        if let Some(e) = entries.iter_mut().find(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && now_ms.saturating_sub(e.updated_ms) < GROUP_MS
        }) {
            e.count += 1;
            e.updated_ms = now_ms;
            e.client_info = client_info;
            return;
        }
        let entry_id = *next_id;
        *next_id += 1;
        entries.push_front(Entry {
            count: 1,
            reason,
            context,
            object,
            username,
            client_info,
            entry_id,
            created_ms: now_ms,
            updated_ms: now_ms,
        });
        entries.truncate(MAX_ENTRIES);
    }

    /// The newest `n` entries, newest first.
    pub fn recent(&self, n: usize) -> Vec<Entry> {
        self.inner.lock().0.iter().take(n).cloned().collect()
    }

    pub fn reset(&self) {
        self.inner.lock().0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_grouped() {
        let log = AclLog::default();
        for i in 0..200u64 {
            log.add(Reason::Key, "toplevel", format!("k{i}"), "u".into(), String::new(), 1000);
        }
        assert_eq!(log.recent(1000).len(), MAX_ENTRIES);
        assert_eq!(log.recent(1)[0].object, "k199");
        log.reset();
        log.add(Reason::Auth, "toplevel", "AUTH".into(), "u".into(), String::new(), 1000);
        log.add(Reason::Auth, "toplevel", "AUTH".into(), "u".into(), String::new(), 2000);
        let e = log.recent(10);
        assert_eq!((e.len(), e[0].count), (1, 2));
    }
}
