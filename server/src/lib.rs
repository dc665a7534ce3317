//! prism-server: the Prism node.
//!
//! Request path: a connection ([`conn`]) parses requests ([`resp`]), [`cmd::execute`]
//! looks each up in the command [`table`], checks arity, auth, routing ([`topology`]) and
//! memory, then runs the handler: reads go to the engine, writes become ops applied
//! through [`node::Node::write`]. [`server`] starts and stops the whole.

pub mod acl;
pub mod admin;
pub mod backup;
pub mod client;
pub mod clients;
pub mod cmd;
pub mod cold_gc;
pub mod config;
pub mod conn;
pub mod fleet;
pub mod histogram;
pub mod keywatch;
pub mod node;
pub mod pending;
pub mod pubsub;
pub mod replica;
pub mod resp;
pub mod server;
pub mod stats;
pub mod table;
pub mod tier;
pub mod tls;
pub mod topology;

pub use config::Config;
pub use server::{start, ServerHandle, StartError};
