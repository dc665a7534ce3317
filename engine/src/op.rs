//! Deterministic write operations: what a write command becomes before it is applied.
//!
//! A command handler turns a write command into an [`Op`] with everything that is not a
//! pure function of the current state already decided: absolute expiry deadlines rather
//! than relative TTLs, the write's time in [`Write::now_ms`], and (for commands that pick
//! at random) the chosen elements. Applying a `Write` is then a pure function of the
//! keyspace and the write, so every replica that applies the same log reaches the same
//! state (invariant 2). Today a node applies ops locally; the replication layer puts a
//! Raft log between creating and applying them without changing either side.
//!
//! Ops are serde-serializable because they are the payload of the replication log.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One write as it would appear in a log entry: the op and the leader's time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Write {
    /// The leader's clock when the write was created. Expiry during apply is judged
    /// against this time, never against the applying node's clock.
    pub now_ms: u64,
    pub op: Op,
}

/// Condition on the key's existence (`NX` / `XX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exists {
    Any,
    /// Only if the key does not exist (`NX`).
    Absent,
    /// Only if the key exists (`XX`).
    Present,
}

/// What a `SET`-like write does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TtlChange {
    /// Remove any TTL (the default for `SET`).
    Clear,
    /// Keep the existing TTL (`KEEPTTL`).
    Keep,
    /// Expire at this absolute time in ms.
    At(u64),
}

/// `EXPIRE` family conditions (Redis 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCond {
    Always,
    /// Only when the key has no TTL.
    Nx,
    /// Only when the key has a TTL.
    Xx,
    /// Only when the new deadline is later than the current one (no TTL counts as infinite).
    Gt,
    /// Only when the new deadline is earlier (no TTL counts as infinite).
    Lt,
    /// Only when the key has a TTL and the new deadline is earlier (`XX LT`).
    XxLt,
}

/// A deterministic write.
///
/// The replication log stores ops with bincode, which numbers enum variants by position:
/// add new variants (here and in the enums ops carry) at the end, never in between, and
/// never reorder or remove one, or logs written before the change decode as other ops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// DEL / UNLINK -> number of keys removed.
    Del {
        keys: Vec<Bytes>,
    },
    /// SET and its variants -> OK / nil, or the old value with `get`.
    Set {
        key: Bytes,
        value: Bytes,
        exists: Exists,
        ttl: TtlChange,
        get: bool,
    },
    /// MSET (`nx: false`) -> OK; MSETNX (`nx: true`) -> 1 if all were set, else 0.
    MSet {
        pairs: Vec<(Bytes, Bytes)>,
        nx: bool,
    },
    /// INCR / DECR / INCRBY / DECRBY -> the new value.
    IncrBy {
        key: Bytes,
        delta: i64,
    },
    /// INCRBYFLOAT -> the new value as a string.
    IncrByFloat {
        key: Bytes,
        delta: f64,
    },
    /// APPEND -> the new length.
    Append {
        key: Bytes,
        value: Bytes,
    },
    /// SETRANGE -> the new length.
    SetRange {
        key: Bytes,
        offset: usize,
        value: Bytes,
    },
    /// GETDEL -> the old value or nil.
    GetDel {
        key: Bytes,
    },
    /// GETEX -> the value or nil; changes the TTL when `ttl` is not `Keep`.
    GetEx {
        key: Bytes,
        ttl: TtlChange,
    },
    /// EXPIRE family with an absolute deadline -> 1 if the TTL was set (or the key deleted
    /// because the deadline has passed), 0 if not.
    Expire {
        key: Bytes,
        at_ms: i64,
        cond: ExpireCond,
    },
    /// PERSIST -> 1 if a TTL was removed.
    Persist {
        key: Bytes,
    },
    /// RENAME (`nx: false`) -> OK; RENAMENX (`nx: true`) -> 1 / 0. Missing source: error.
    Rename {
        src: Bytes,
        dst: Bytes,
        nx: bool,
    },
    /// HSET / HMSET -> number of new fields; with `nx`, HSETNX -> 1 / 0 (single pair).
    HSet {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
        nx: bool,
    },
    /// HDEL -> number of fields removed.
    HDel {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    /// HINCRBY -> the new value.
    HIncrBy {
        key: Bytes,
        field: Bytes,
        delta: i64,
    },
    /// HINCRBYFLOAT -> the new value as a string.
    HIncrByFloat {
        key: Bytes,
        field: Bytes,
        delta: f64,
    },
    /// FLUSHDB / FLUSHALL -> OK.
    FlushAll,
    /// Physical removal of keys found expired by active expiry: each key is removed only
    /// if it is still expired at the write's time -> number removed.
    PurgeExpired {
        keys: Vec<Bytes>,
    },
    /// COPY -> 1 if `dst` now holds a copy of `src` (TTL included), 0 if `src` is absent
    /// or `dst` exists without `replace` (see `dump` for what a vertex copy holds).
    Copy {
        src: Bytes,
        dst: Bytes,
        replace: bool,
    },
    /// RESTORE -> OK. The payload travels as DUMP made it (compact in the log) and is
    /// decoded and validated by apply: a bad one is an error that changes nothing.
    /// `expire_at` is an absolute deadline in ms fixed by the handler (0: no TTL).
    Restore {
        key: Bytes,
        payload: Bytes,
        expire_at: u64,
        replace: bool,
    },
    /// SORT ... STORE -> the length of the list stored at `dst` (deleted when empty).
    /// Sorted inside apply, so it is atomic with other writes (see `sort`).
    SortStore {
        key: Bytes,
        dst: Bytes,
        spec: crate::sort::SortSpec,
    },
    Sets(crate::set::SetOp),
    SortedSets(crate::zset::ZSetOp),
    Lists(crate::list::ListOp),
    Graph(crate::graph::GraphOp),
    /// A transaction (MULTI/EXEC): every op applies in order under one set of slot locks
    /// -> an array of each op's output; an op refused with an [`OpError`] leaves its error
    /// in the array and the others still apply, as Redis does.
    Multi(Vec<Op>),
    /// A transaction proposed by EXEC on a replicated shard: [`Guarded`] -> an array of
    /// each item's output as `Multi`, or nothing at all (the write is refused: the
    /// keyspace's apply answers `None`, EXEC a null array) when its WATCH guard fails.
    Guarded(Box<Guarded>),
    /// A change to the shard's slot ownership ([`crate::shard_meta`]) -> `Ok`, or
    /// [`OpError::SlotNotServed`] naming the slot it refused (nothing changed).
    Shard(crate::shard_meta::ShardOp),
    /// A change to the cold-tier manifest ([`crate::tier::manifest`]) -> `Int(1)` when it
    /// applied, `Int(0)` when it was stale (nothing changed).
    Tier(crate::tier::manifest::TierOp),
}

/// A replicated transaction: its items, the WATCH guard every member checks before any
/// item applies, and the tag the proposing node knows it by.
///
/// The guard is decided from replicated state only (slot versions, the write's time), so
/// every member reaches the same verdict. It is per slot: a write to another key of a
/// watched slot also aborts the transaction (a false abort, which WATCH clients retry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guarded {
    /// Names the transaction to the node that proposed it, which runs the transaction's
    /// reads between the items when it applies the entry (0: none). Other members, and
    /// that node once the client is gone, apply the items alone: reads change nothing.
    pub tag: u64,
    /// `(slot, version)`: each watched key's slot and its `Keyspace::slot_version` when
    /// the key was watched. The guard holds while every version is unchanged.
    pub versions: Vec<(u16, u64)>,
    /// The earliest deadline a watched key had when watched (0: none). A key that expires
    /// after WATCH counts as changed (Redis 7): the guard fails once the write's time
    /// reaches it.
    pub expires_at: u64,
    pub ops: Vec<Op>,
}

impl Guarded {
    /// True when no write named a watched slot and no watched key expired: `version`
    /// reads a slot's current version, `now_ms` is the write's time.
    pub fn holds(&self, version: impl Fn(u16) -> u64, now_ms: u64) -> bool {
        (self.expires_at == 0 || now_ms < self.expires_at) && self.versions.iter().all(|&(s, v)| version(s) == v)
    }

    /// The watched slots, ascending and without duplicates.
    pub fn slots(&self) -> Vec<crate::Slot> {
        let mut slots: Vec<crate::Slot> =
            self.versions.iter().filter_map(|&(s, _)| crate::Slot::new(u64::from(s))).collect();
        slots.sort_unstable_by_key(|s| s.get());
        slots.dedup();
        slots
    }
}

impl Op {
    /// Calls `f` with every key the op may read or write. The keyspace locks exactly the
    /// slots of these keys while applying.
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8])) {
        self.visit_keys(&mut f)
    }

    /// True when applying the op clears every slot (FLUSHALL, alone or in a transaction).
    pub fn flushes_all(&self) -> bool {
        match self {
            Op::FlushAll => true,
            Op::Multi(ops) => ops.iter().any(Op::flushes_all),
            Op::Guarded(g) => g.ops.iter().any(Op::flushes_all),
            _ => false,
        }
    }

    /// True when the op replaces each key it names with a whole new value and its output
    /// does not depend on what was there (plain SET, SETEX, PSETEX, MSET): such a write
    /// may go to a cold slot's delta without loading the slot (docs/tiering.md).
    pub fn overwrites_blindly(&self) -> bool {
        matches!(
            self,
            Op::Set { exists: Exists::Any, get: false, ttl: TtlChange::Clear | TtlChange::At(_), .. }
                | Op::MSet { nx: false, .. }
        )
    }

    // Recursion for `Op::Multi` needs one concrete closure type.
    fn visit_keys(&self, mut f: &mut dyn FnMut(&[u8])) {
        match self {
            Op::Del { keys } | Op::PurgeExpired { keys } => keys.iter().for_each(|k| f(k)),
            Op::MSet { pairs, .. } => pairs.iter().for_each(|(k, _)| f(k)),
            Op::Rename { src, dst, .. } | Op::Copy { src, dst, .. } | Op::SortStore { key: src, dst, .. } => {
                f(src);
                f(dst);
            }
            Op::Set { key, .. }
            | Op::IncrBy { key, .. }
            | Op::IncrByFloat { key, .. }
            | Op::Append { key, .. }
            | Op::SetRange { key, .. }
            | Op::GetDel { key }
            | Op::GetEx { key, .. }
            | Op::Expire { key, .. }
            | Op::Persist { key }
            | Op::Restore { key, .. }
            | Op::HSet { key, .. }
            | Op::HDel { key, .. }
            | Op::HIncrBy { key, .. }
            | Op::HIncrByFloat { key, .. } => f(key),
            Op::FlushAll | Op::Tier(_) => {}
            Op::Shard(op) => op.for_each_key(f),
            Op::Sets(op) => op.for_each_key(&mut f),
            Op::SortedSets(op) => op.for_each_key(&mut f),
            Op::Lists(op) => op.for_each_key(&mut f),
            Op::Graph(op) => op.for_each_key(&mut f),
            Op::Multi(ops) => ops.iter().for_each(|op| op.visit_keys(f)),
            Op::Guarded(g) => g.ops.iter().for_each(|op| op.visit_keys(f)),
        }
    }
}

/// The result of applying a write; the server renders it as a RESP reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Output {
    Ok,
    Nil,
    Int(i64),
    Bulk(Bytes),
    /// A double: a RESP3 double, a bulk string in RESP2 (ZSCORE, ZINCRBY).
    Double(f64),
    Array(Vec<Output>),
    /// Pairs: a RESP3 map, a flat array in RESP2.
    Map(Vec<(Output, Output)>),
    Err(OpError),
}

/// Why a write was refused. Refused writes change nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OpError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR hash value is not an integer")]
    HashNotInteger,
    #[error("ERR hash value is not a float")]
    HashNotFloat,
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    /// ZADD INCR / ZINCRBY adding +inf and -inf.
    #[error("ERR resulting score is not a number (NaN)")]
    ScoreNan,
    #[error("ERR index out of range")]
    IndexOutOfRange,
    /// RESTORE without REPLACE onto an existing key.
    #[error("BUSYKEY Target key name already exists.")]
    BusyKey,
    /// A write that reached a replicated node's engine without going through its shard
    /// group (a server bug; refused so members never diverge).
    #[error("ERR internal error: write not replicated")]
    NotReplicated,
    /// RESTORE of a payload with a wrong magic, a newer version or a bad checksum.
    #[error("ERR DUMP payload version or checksum are wrong")]
    BadPayload,
    /// RESTORE of a payload whose envelope is intact but whose body is not a valid value.
    #[error("ERR Bad data format")]
    BadDataFormat,
    /// SORT of a value (or BY weight) that is not a number, without ALPHA.
    #[error("ERR One or more scores can't be converted into double")]
    NotDouble,
    /// A write to a slot this shard no longer (or not yet) serves, or only takes guarded
    /// writes for while migrating it (`shard_meta` invariants); the client retries and is
    /// redirected. The slot is in the error so the server can name the new owner.
    #[error("TRYAGAIN slot {0} is moving between shards; retry")]
    SlotNotServed(u16),
    /// A write to a slot whose data is in the cold tier: it must be loaded first (the
    /// server does, and retries); applying to the empty table would lose data.
    #[error("TRYAGAIN slot {0} is in the cold tier; retry")]
    Cold(u16),
}
