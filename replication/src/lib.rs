//! prism-replication: Raft replication of a Prism shard group (issue 5).
//!
//! What is here (openraft 0.9, storage v2):
//! - [`types`]: the type config. A log entry's payload is a batch of engine writes;
//!   applying it returns their outputs.
//! - [`log_store`]: the Raft log in its own RocksDB instance; votes and appends are
//!   fsynced before they are acknowledged.
//! - [`state_machine`]: applies committed entries to a [`prism_engine::Keyspace`] and
//!   builds/installs snapshots of it; the last snapshot is kept on disk, so a restart is
//!   that snapshot plus log replay.
//! - [`snapshot`]: the snapshot format (per key: deadline and the engine's DUMP payload,
//!   restored through `Op::Restore`) and the consistent copy it is built from.
//!
//! Tests: openraft's storage conformance suite (`openraft::testing::Suite`) passes on
//! these two; beside it, durability across reopen, one WAL fsync per append, corrupt log
//! entries and snapshots as errors, snapshots of every value kind.
//!
//! The engine knows nothing of Raft; this crate depends on the engine and never on the
//! server or RESP.
//!
//! Next (not built yet):
//! - the peer network on its own port (client port + 10000), one connection per peer pair
//!   multiplexing every group, with a handshake the security issue extends;
//! - multi-raft: many groups per node, their log appends sharing one batched WAL sync (one
//!   RocksDB instance with group-prefixed keys), heartbeats spread out;
//! - bootstrap from the configured membership (exactly one node initializes; restarts
//!   never re-initialize) and membership changes as admin commands;
//! - server wiring: the node reads through the state machine's `keyspace()` handle (an
//!   installed snapshot swaps the keyspace); the write path proposes batches to the group
//!   leader (`-MOVED` on a replica, `-TRYAGAIN` without a leader), reads go through
//!   read-index, `WAIT`, INFO `replication`/`raft`;
//! - snapshots: chunked streaming to lagging replicas, log purge that waits for a replica
//!   still installing, copy-on-write slot tables so taking the snapshot's copy pauses
//!   applies for O(slots) rather than O(data);
//! - `appendfsync everysec` as the documented opt-out of the synced append.

// The storage error type is openraft's `StorageError` (over 200 bytes), fixed by its
// storage traits; helpers return it as is rather than boxing and unboxing it at every
// trait method. Errors are rare (they stop the group), so their size costs nothing.
#![allow(clippy::result_large_err)]

pub mod group;
pub mod log_store;
pub mod network;
pub mod snapshot;
mod snapshot_file;
pub mod state_machine;
pub mod types;

pub use group::{Committed, GroupOptions, Host, Leadership, ShardGroup, WriteError};
pub use log_store::{Durability, LogDb, RocksLogStore};
pub use network::{Groups, PeerNetwork};
pub use openraft::ServerState;
pub use state_machine::{ApplyHook, KeyspaceStateMachine, PlainApply};
pub use types::{GroupId, NodeId, Outputs, PeerNode, TypeConfig, WriteBatch};

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod single_node_tests;
#[cfg(test)]
mod state_machine_tests;
