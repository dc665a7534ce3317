//! Pub/sub commands. Being built.

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
