//! The sets value type and its write ops (SADD SREM SPOP SMOVE and the *STORE commands).
//!
//! Being built: the type, its ops and their apply land here. Until then no command
//! creates a `SetValue`, and `SetOp` has no variants.

use crate::keyspace::WriteSet;
use crate::op::Output;

/// A set value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetValue {}

impl SetValue {
    /// Approximate heap bytes held.
    pub fn mem(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// Deterministic writes on sets.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SetOp {}

impl SetOp {
    /// Every key the op reads or writes (the keyspace locks their slots).
    pub fn for_each_key(&self, _f: &mut dyn FnMut(&[u8])) {
        match *self {}
    }
}

pub(crate) fn apply(_set: &mut WriteSet<'_>, op: &SetOp, _now: u64) -> Output {
    match *op {}
}
