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
//! Here: the object format ([`format`]), the store ([`store`]), the replicated manifest
//! ([`manifest`]: which slots are cold, under which object; a cold slot's table is its
//! delta) and the encodes of one slot ([`partition`]: a spill, a compaction of object +
//! delta). The policy (watermarks, loads, compaction) runs on the node
//! (`server/src/tier.rs`). Nothing here runs inside apply: loading waits on the store, so
//! it happens outside it, and only the final restore goes through the write path
//! (invariant 2).

pub mod format;
pub mod manifest;
pub mod partition;
pub mod store;
#[cfg(test)]
mod tests;

pub use format::{EncodedPartition, FormatError, Partition, Row};
pub use partition::{compact_slot, load_into, spill_slot, LoadError, RestoreTarget, SpillStats};
pub use store::{ColdStore, ObjectRef, StoreError};
