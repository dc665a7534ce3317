//! TLS for clients (`tls-port`, `tls-cert-file`, `tls-key-file`, `tls-ca-cert-file`,
//! `tls-auth-clients`).
//!
//! Not built yet: the keys are parsed so that a config naming them is understood, and a
//! node asked for a TLS port refuses to start rather than silently serving clients in
//! plain text only (docs/security.md). The plan: a rustls acceptor (ring provider) in
//! front of the same connection loop, which then needs to be generic over its stream.

use crate::config::Config;

/// Checks the TLS settings: `Err` (naming the key) when a TLS port is asked for.
pub fn acceptor(config: &Config) -> Result<Option<()>, String> {
    if config.tls_port != 0 {
        return Err("invalid value for 'tls-port': TLS for clients is not available in this build".into());
    }
    Ok(None)
}
