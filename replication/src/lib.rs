//! prism-replication: Raft replication of a Prism shard group (issue 5).
//!
//! What is here (openraft 0.9, storage v2); the design and its guarantees for users are in
//! docs/replication.md:
//! - [`types`]: the type config. A log entry's payload is a batch of engine writes;
//!   applying it returns their outputs.
//! - [`log_store`]: every group's Raft log in one RocksDB instance per node (keys prefixed
//!   by group id); votes are synced writes, appends are durable (one fsync thread, shared
//!   by every group) before openraft is told so.
//! - [`state_machine`]: applies committed entries to the node's [`prism_engine::Keyspace`]
//!   through an [`ApplyHook`], and builds/installs snapshots of it; the last snapshot is
//!   kept on disk, so a restart is that snapshot plus log replay.
//! - [`snapshot`]: the snapshot format (per key: deadline and the engine's DUMP payload,
//!   restored through `Op::Restore`) and the consistent copy it is built from.
//! - [`network`]: the peer network, one multiplexed TCP connection per node pair, every
//!   group's RPCs tagged with its id.
//! - [`election`]: elections beyond openraft's timer: the hints that make failover take
//!   one round, and leadership transfer on demand.
//! - [`runtime`]: openraft's tokio runtime with a seedable election-timeout generator
//!   (for the deterministic simulation in sim/).
//! - [`recovery`]: offline: a stopped node's view of its groups, and making one survivor
//!   the only voter of a group that lost its majority for good.
//! - [`group`]: a group as a node runs it: bootstrap, the proposer that batches client
//!   writes into entries, the read fence (read-index) and leadership tracking.
//!
//! Tests: openraft's storage conformance suite (`openraft::testing::Suite`) passes on the
//! log store and state machine; beside it, durability across reopen, one WAL fsync per
//! append, groups sharing a database, `everysec`, corrupt log entries and snapshots as
//! errors, snapshots of every value kind. The three-process tests (functional, and faults
//! under a linearizability checker) are in the tests crate.
//!
//! The engine knows nothing of Raft; this crate depends on the engine and never on the
//! server or RESP.
//!
//! Not yet: log purge that waits for a member still installing a snapshot (openraft keeps `max_in_snapshot_log_to_keep` entries meanwhile).

// The storage error type is openraft's `StorageError` (over 200 bytes), fixed by its
// storage traits; helpers return it as is rather than boxing and unboxing it at every
// trait method. Errors are rare (they stop the group), so their size costs nothing.
#![allow(clippy::result_large_err)]

pub mod election;
pub mod group;
pub mod log_store;
pub mod network;
pub mod recovery;
pub mod runtime;
pub mod snapshot;
mod snapshot_file;
pub mod state_machine;
pub mod types;

pub use election::{Elections, TransferError};
pub use group::{Committed, GroupOptions, Host, Leadership, ShardGroup, WriteError};
pub use log_store::{Durability, LogDb, RocksLogStore};
pub use network::{Groups, LinkDirection, LinkInfo, PeerAuth, PeerNetwork, PeerTls};
pub use openraft::ServerState;
pub use state_machine::{ApplyHook, KeyspaceStateMachine, PlainApply, SnapshotView};
pub use types::{GroupId, NodeId, NodeStatus, Outputs, PeerNode, TypeConfig, WriteBatch};

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod single_node_tests;
#[cfg(test)]
mod state_machine_tests;
