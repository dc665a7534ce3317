//! Graph commands (V.*, E.*, G.*). Being built.

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
