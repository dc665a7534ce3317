//! The the graph value type and its write ops (vertices, edges, their two halves and degree counts).
//!
//! Being built: the type, its ops and their apply land here. Until then no command
//! creates a `Vertex`, and `GraphOp` has no variants.

use crate::keyspace::WriteSet;
use crate::op::Output;

/// A vertex value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vertex {}

impl Vertex {
    /// Approximate heap bytes held.
    pub fn mem(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// Deterministic writes on the graph.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum GraphOp {}

impl GraphOp {
    /// Every key the op reads or writes (the keyspace locks their slots).
    pub fn for_each_key(&self, _f: &mut dyn FnMut(&[u8])) {
        match *self {}
    }
}

pub(crate) fn apply(_set: &mut WriteSet<'_>, op: &GraphOp, _now: u64) -> Output {
    match *op {}
}
