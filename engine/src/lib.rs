//! prism-engine: the data side of a Prism node.
//!
//! It owns slot math ([`slot`]), the keyspace and its value types ([`keyspace`],
//! [`value`]) and the deterministic write ops ([`op`]) that are the only way state
//! changes. It knows nothing of sockets, RESP, Raft or RocksDB: the server turns commands
//! into ops and renders outputs; the replication layer orders ops in a log.

mod apply;
pub mod clock;
pub mod compact;
pub mod dump;
pub mod glob;
pub mod graph;
pub mod keyspace;
pub mod list;
pub mod num;
pub mod op;
pub mod set;
pub mod shard_meta;
pub mod slot;
pub mod sort;
pub mod tier;
pub mod value;
pub mod zset;

pub use apply::MAX_STRING_LEN;
pub use compact::CompactBytes;
pub use keyspace::{Entry, Keyspace};
pub use op::{Exists, ExpireCond, Op, OpError, Output, TtlChange, Write};
pub use slot::{Slot, SLOT_COUNT};
pub use value::{HashValue, Value, ValueKind};
