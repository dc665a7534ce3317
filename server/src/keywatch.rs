//! Who is waiting on which keys: WATCHed keys of transactions and keys a blocked client
//! (BLPOP and friends) waits on.
//!
//! Invariants:
//! - [`KeyWatches::touch`] runs after every applied write, with the write's keys, so a
//!   watcher learns of any write to its key before the writer's reply is sent.
//! - When nothing is watched (the common case) a write pays one atomic load.
//! - A watch is removed by whoever registered it ([`KeyWatches::unwatch`]); a watch whose
//!   client vanished without unwatching is dropped when its key is next touched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// One client's interest in some keys.
#[derive(Debug, Default)]
pub struct KeyWatch {
    dirty: AtomicBool,
    notify: Notify,
}

impl KeyWatch {
    pub fn new() -> Arc<KeyWatch> {
        Arc::new(KeyWatch::default())
    }

    /// True once any watched key was written since the watch (or the last `reset`).
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.dirty.store(false, Ordering::SeqCst);
    }

    /// Resolves when a watched key is written (at once if one was since the last wait).
    pub async fn touched(&self) {
        self.notify.notified().await
    }

    fn fire(&self) {
        self.dirty.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

#[derive(Debug, Default)]
pub struct KeyWatches {
    map: Mutex<HashMap<Bytes, Vec<Weak<KeyWatch>>>>,
    /// Number of registrations, so writes skip the map when it is empty.
    count: AtomicUsize,
}

impl KeyWatches {
    pub fn watch(&self, key: Bytes, w: &Arc<KeyWatch>) {
        self.map.lock().entry(key).or_default().push(Arc::downgrade(w));
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub fn unwatch(&self, key: &[u8], w: &Arc<KeyWatch>) {
        let mut map = self.map.lock();
        if let Some(list) = map.get_mut(key) {
            let before = list.len();
            list.retain(|x| !std::ptr::eq(x.as_ptr(), Arc::as_ptr(w)));
            self.count.fetch_sub(before - list.len(), Ordering::SeqCst);
            if list.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Marks every watcher of `key` dirty and wakes it.
    pub fn touch_key(&self, key: &[u8]) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut map = self.map.lock();
        if let Some(list) = map.get_mut(key) {
            let before = list.len();
            list.retain(|w| match w.upgrade() {
                Some(w) => {
                    w.fire();
                    true
                }
                None => false,
            });
            self.count.fetch_sub(before - list.len(), Ordering::SeqCst);
            if list.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Marks every watcher dirty (FLUSHALL).
    pub fn touch_all(&self) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        for list in self.map.lock().values() {
            list.iter().filter_map(Weak::upgrade).for_each(|w| w.fire());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::SeqCst) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_marks_only_watchers_of_the_key() {
        let ws = KeyWatches::default();
        let a = KeyWatch::new();
        let b = KeyWatch::new();
        ws.watch(Bytes::from_static(b"k1"), &a);
        ws.watch(Bytes::from_static(b"k2"), &b);
        ws.touch_key(b"k1");
        assert!(a.is_dirty() && !b.is_dirty());
        ws.unwatch(b"k2", &b);
        ws.touch_key(b"k2");
        assert!(!b.is_dirty());
        assert!(!ws.is_empty());
        ws.unwatch(b"k1", &a);
        assert!(ws.is_empty());
    }

    #[test]
    fn dropped_watchers_are_pruned() {
        let ws = KeyWatches::default();
        ws.watch(Bytes::from_static(b"k"), &KeyWatch::new());
        ws.touch_key(b"k");
        assert!(ws.is_empty());
    }
}
