//! Transactions (MULTI EXEC DISCARD WATCH UNWATCH). Being built.

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
