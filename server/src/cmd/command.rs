//! The COMMAND family (COUNT, INFO, DOCS, LIST, GETKEYS, HELP), generated from the
//! command table.

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
