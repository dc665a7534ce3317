//! The sorted sets value type and its write ops (ZADD ZREM ZINCRBY ZPOP* ZREMRANGE* and the *STORE commands).
//!
//! Being built: the type, its ops and their apply land here. Until then no command
//! creates a `ZSetValue`, and `ZSetOp` has no variants.

use crate::keyspace::WriteSet;
use crate::op::Output;

/// A zset value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZSetValue {}

impl ZSetValue {
    /// Approximate heap bytes held.
    pub fn mem(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// Deterministic writes on sorted sets.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ZSetOp {}

impl ZSetOp {
    /// Every key the op reads or writes (the keyspace locks their slots).
    pub fn for_each_key(&self, _f: &mut dyn FnMut(&[u8])) {
        match *self {}
    }
}

pub(crate) fn apply(_set: &mut WriteSet<'_>, op: &ZSetOp, _now: u64) -> Output {
    match *op {}
}
