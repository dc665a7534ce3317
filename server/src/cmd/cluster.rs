//! Cluster commands: CLUSTER KEYSLOT INFO MYID SLOTS SHARDS NODES COUNTKEYSINSLOT
//! GETKEYSINSLOT, rendered from the node's [`crate::topology::Topology`].

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
