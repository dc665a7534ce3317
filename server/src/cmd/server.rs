//! Server commands: COMMAND, INFO, CONFIG, CLIENT, TIME, DBSIZE, FLUSHDB, FLUSHALL, WAIT.

use super::{CmdError, CmdResult};
use crate::table::CommandSpec;

/// The Redis version Prism reports to clients: the Redis 7 behaviour it implements.
pub const REDIS_VERSION: &str = "7.2.4";

pub const COMMANDS: &[CommandSpec] = &[];

/// Client names cannot contain spaces, newlines or other special characters.
pub fn validate_client_name(name: &[u8]) -> CmdResult<()> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(CmdError::msg("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(())
}
