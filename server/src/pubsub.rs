//! Pub/sub delivery: which connections subscribe to which channels and patterns, and the
//! bounded queue that carries messages to each of them.
//!
//! Invariants:
//! - PUBLISH never blocks and never buffers without bound: each subscriber has a queue
//!   whose pending bytes count against `client-output-buffer-limit pubsub`; a subscriber
//!   over the hard limit, or over the soft limit for longer than its seconds, is
//!   disconnected (CLIENT KILL semantics) and its messages dropped, as Redis does.
//! - A subscriber is in the registry exactly while its connection holds a
//!   [`Subscriber`]; dropping it (disconnect, RESET) removes every subscription.
//! - Sharded channels (SSUBSCRIBE/SPUBLISH) live in their own namespace, as in Redis 7.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::clients::ClientHandle;
use crate::config::OutputLimit;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Message {
    Channel { channel: Bytes, payload: Bytes },
    Pattern { pattern: Bytes, channel: Bytes, payload: Bytes },
    Shard { channel: Bytes, payload: Bytes },
}

impl Message {
    fn size(&self) -> usize {
        match self {
            Message::Channel { channel, payload } | Message::Shard { channel, payload } => {
                channel.len() + payload.len() + 32
            }
            Message::Pattern { pattern, channel, payload } => pattern.len() + channel.len() + payload.len() + 48,
        }
    }
}

/// The sending side of one subscriber's queue.
#[derive(Debug)]
struct Mailbox {
    tx: mpsc::UnboundedSender<Message>,
    pending: Arc<AtomicUsize>,
    /// Milliseconds since `epoch` at which pending first exceeded the soft limit (0: not).
    over_soft_since: AtomicU64,
    client: Arc<ClientHandle>,
}

/// The three namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

#[derive(Debug, Default)]
struct Maps {
    channels: HashMap<Bytes, HashMap<u64, Arc<Mailbox>>>,
    patterns: HashMap<Bytes, HashMap<u64, Arc<Mailbox>>>,
    shards: HashMap<Bytes, HashMap<u64, Arc<Mailbox>>>,
}

impl Maps {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, HashMap<u64, Arc<Mailbox>>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shards,
        }
    }
}

#[derive(Debug)]
pub struct PubSub {
    maps: RwLock<Maps>,
    epoch: Instant,
    /// Subscribers disconnected for exceeding the pubsub output limit.
    pub disconnections: AtomicU64,
}

impl Default for PubSub {
    fn default() -> Self {
        PubSub { maps: RwLock::default(), epoch: Instant::now(), disconnections: AtomicU64::new(0) }
    }
}

/// A connection's subscriptions and the receiving end of its queue.
pub struct Subscriber {
    id: u64,
    mailbox: Arc<Mailbox>,
    rx: mpsc::UnboundedReceiver<Message>,
    subs: HashMap<Kind, HashSet<Bytes>>,
    registry: Arc<PubSub>,
}

impl PubSub {
    /// A subscriber for a connection; it subscribes to nothing yet.
    pub fn subscriber(self: &Arc<Self>, client: Arc<ClientHandle>) -> Subscriber {
        let (tx, rx) = mpsc::unbounded_channel();
        let mailbox = Arc::new(Mailbox {
            tx,
            pending: Arc::default(),
            over_soft_since: AtomicU64::new(0),
            client: client.clone(),
        });
        Subscriber { id: client.id, mailbox, rx, subs: HashMap::new(), registry: self.clone() }
    }

    /// Delivers a message to every subscriber of `channel` (and, for plain channels, of
    /// every matching pattern). Returns how many received it.
    pub fn publish(&self, kind: Kind, channel: &Bytes, payload: &Bytes, limit: OutputLimit) -> usize {
        let maps = self.maps.read();
        let mut count = 0;
        let direct = match kind {
            Kind::Shard => maps.shards.get(channel),
            _ => maps.channels.get(channel),
        };
        if let Some(subs) = direct {
            for mb in subs.values() {
                let msg = match kind {
                    Kind::Shard => Message::Shard { channel: channel.clone(), payload: payload.clone() },
                    _ => Message::Channel { channel: channel.clone(), payload: payload.clone() },
                };
                count += self.deliver(mb, msg, limit) as usize;
            }
        }
        if kind == Kind::Channel {
            for (pattern, subs) in &maps.patterns {
                if prism_engine::glob::glob_match(pattern, channel) {
                    for mb in subs.values() {
                        let msg = Message::Pattern {
                            pattern: pattern.clone(),
                            channel: channel.clone(),
                            payload: payload.clone(),
                        };
                        count += self.deliver(mb, msg, limit) as usize;
                    }
                }
            }
        }
        count
    }

    fn deliver(&self, mb: &Mailbox, msg: Message, limit: OutputLimit) -> bool {
        if mb.client.is_killed() {
            return false;
        }
        let size = msg.size();
        let pending = mb.pending.fetch_add(size, Ordering::SeqCst) + size;
        let over_hard = limit.hard != 0 && pending as u64 > limit.hard;
        let mut over_soft_too_long = false;
        if limit.soft != 0 && pending as u64 > limit.soft {
            let now = self.epoch.elapsed().as_millis() as u64 + 1;
            let since = match mb.over_soft_since.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => now,
                Err(s) => s,
            };
            over_soft_too_long = now.saturating_sub(since) > limit.soft_seconds * 1000;
        } else {
            mb.over_soft_since.store(0, Ordering::SeqCst);
        }
        if over_hard || over_soft_too_long {
            mb.pending.fetch_sub(size, Ordering::SeqCst);
            self.disconnections.fetch_add(1, Ordering::Relaxed);
            mb.client.kill();
            return false;
        }
        // The receiver is gone only when the connection ended; count it as not delivered.
        mb.tx.send(msg).is_ok()
    }

    /// Active channels (with at least one subscriber) of a namespace matching `pattern`.
    pub fn active(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut maps = self.maps.write();
        maps.map(kind)
            .iter()
            .filter(|(_, subs)| !subs.is_empty())
            .filter(|(name, _)| pattern.is_none_or(|p| prism_engine::glob::glob_match(p, name)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn count(&self, kind: Kind, name: &[u8]) -> usize {
        let mut maps = self.maps.write();
        maps.map(kind).get(name).map_or(0, |s| s.len())
    }

    /// Number of distinct patterns subscribed to.
    pub fn pattern_count(&self) -> usize {
        self.maps.read().patterns.len()
    }

    fn add(&self, kind: Kind, name: &Bytes, id: u64, mb: &Arc<Mailbox>) {
        self.maps.write().map(kind).entry(name.clone()).or_default().insert(id, mb.clone());
    }

    fn remove(&self, kind: Kind, name: &[u8], id: u64) {
        let mut maps = self.maps.write();
        let map = maps.map(kind);
        if let Some(subs) = map.get_mut(name) {
            subs.remove(&id);
            if subs.is_empty() {
                map.remove(name);
            }
        }
    }
}

impl Subscriber {
    /// Subscribes; returns false if already subscribed.
    pub fn subscribe(&mut self, kind: Kind, name: &Bytes) -> bool {
        let new = self.subs.entry(kind).or_default().insert(name.clone());
        if new {
            self.registry.add(kind, name, self.id, &self.mailbox);
        }
        new
    }

    /// Unsubscribes; returns false if not subscribed.
    pub fn unsubscribe(&mut self, kind: Kind, name: &[u8]) -> bool {
        let gone = self.subs.get_mut(&kind).is_some_and(|s| s.remove(name));
        if gone {
            self.registry.remove(kind, name, self.id);
        }
        gone
    }

    /// Current subscriptions of a namespace.
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        let mut v: Vec<Bytes> = self.subs.get(&kind).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }

    /// Channels + patterns (what SUBSCRIBE/UNSUBSCRIBE replies count).
    pub fn count(&self) -> usize {
        self.count_of(Kind::Channel) + self.count_of(Kind::Pattern)
    }

    pub fn count_of(&self, kind: Kind) -> usize {
        self.subs.get(&kind).map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.subs.values().all(|s| s.is_empty())
    }

    /// The next message; marks its bytes as no longer pending.
    pub async fn recv(&mut self) -> Option<Message> {
        let msg = self.rx.recv().await?;
        self.mailbox.pending.fetch_sub(msg.size(), Ordering::SeqCst);
        Some(msg)
    }

    /// A message already queued, if any.
    pub fn try_recv(&mut self) -> Option<Message> {
        let msg = self.rx.try_recv().ok()?;
        self.mailbox.pending.fetch_sub(msg.size(), Ordering::SeqCst);
        Some(msg)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        for (kind, names) in std::mem::take(&mut self.subs) {
            for name in names {
                self.registry.remove(kind, &name, self.id);
            }
        }
    }
}
