//! The lists value type and its write ops (pushes, pops, LSET LREM LTRIM LINSERT LMOVE).
//!
//! Being built: the type, its ops and their apply land here. Until then no command
//! creates a `ListValue`, and `ListOp` has no variants.

use crate::keyspace::WriteSet;
use crate::op::Output;

/// A list value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListValue {}

impl ListValue {
    /// Approximate heap bytes held.
    pub fn mem(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// Deterministic writes on lists.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ListOp {}

impl ListOp {
    /// Every key the op reads or writes (the keyspace locks their slots).
    pub fn for_each_key(&self, _f: &mut dyn FnMut(&[u8])) {
        match *self {}
    }
}

pub(crate) fn apply(_set: &mut WriteSet<'_>, op: &ListOp, _now: u64) -> Output {
    match *op {}
}
