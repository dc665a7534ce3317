//! The wire: client requests in, RESP2/RESP3 replies out.
//!
//! Requests are parsed by hand ([`request`]) because a server must enforce its limits
//! *before* it buffers a claimed length and must accept inline commands, and because the
//! hot path wants zero-copy arguments without an intermediate frame tree. Replies are
//! written straight into the connection's output buffer ([`reply`]). The `redis-protocol`
//! crate is used by the integration tests as an independent decoder of what we send.

pub mod reply;
pub mod request;

pub use reply::{Proto, ReplyWriter, REPLY_FIRST};
pub use request::{ProtocolError, RequestParser};
