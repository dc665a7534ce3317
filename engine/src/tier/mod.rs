//! Tiering: cold partitions as immutable objects in object storage (issue 7, first part).
//!
//! Direction of data: memory -> encoder -> object store; the store never holds a
//! reference into memory, and an object is complete, durable and checksummed before
//! anything may reference it (invariant 3).
//!
//! ```text
//!   hot ──spill──▶ spilling ──object put──▶ cold ──load──▶ loading ──restore──▶ hot
//!        (encode under the       (manifest entry,        (get + verify +
//!         slot's read lock)       next step)              decode, then apply)
//! ```
//! What exists: the object format ([`format`]), the store ([`store`]) and the round trip
//! of one slot ([`partition`]). What is next: the replicated manifest (the leader writes
//! the object, then proposes its reference through Raft; replicas drop the in-memory
//! copy), the spill policy (maxmemory watermarks), deltas over cold partitions, backups.
//! Nothing here runs inside apply: loading waits on the store, so it happens outside it,
//! and only the final restore goes through the write path (invariant 2).

pub mod format;
pub mod manifest;
pub mod partition;
pub mod store;
#[cfg(test)]
mod tests;

pub use format::{EncodedPartition, FormatError, Partition, Row};
pub use partition::{load_into, spill_slot, LoadError, RestoreTarget, SpillStats};
pub use store::{ColdStore, ObjectRef, StoreError};
