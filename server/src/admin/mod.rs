//! The admin HTTP port (`admin-port`): `/healthz`, `/readyz` and `/metrics` for
//! orchestrators, load balancers and Prometheus (design invariant 8).
//!
//! A small HTTP/1.1 server (hyper) on the node's runtime, started and stopped with the
//! node ([`crate::server`]): it shares the node's stop signal and completion channel, so a
//! stopped node holds no admin sockets either.
//!
//! Invariants:
//! - Bounded: at most [`MAX_CONNECTIONS`] connections at once (more are closed on accept),
//!   request heads of at most [`MAX_HEAD_BYTES`] (hyper answers 431 and closes), headers
//!   read within [`HEAD_TIMEOUT`], and no connection lives longer than [`CONN_LIFETIME`],
//!   so a slow or idle client cannot pin a task. Request bodies are never read.
//! - Read-only: nothing reachable from this port changes the node. Every answer is built
//!   from counters and metrics the node already keeps; a scrape takes no lock a command
//!   holds for longer than a counter read (the per-slot key counts of `INFO keyspace`).
//! - Bad requests (unknown path, other methods, oversized heads) get an HTTP error and
//!   change nothing.

mod health;
mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::node::Node;

pub use health::{readiness, Readiness, READY_APPLY_LAG};

/// Admin connections served at once; Prometheus and a prober or two need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request head (request line and headers) hyper buffers (its minimum is 8 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest wait for a complete request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest an admin connection stays open, keep-alive included.
pub const CONN_LIFETIME: Duration = Duration::from_secs(60);

const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Spawns the accept loop on `listener`. The loop and every connection hold a clone of
/// `done` until they end, and all stop when `stop` turns true.
pub fn spawn(node: Arc<Node>, listener: TcpListener, stop: watch::Receiver<bool>, done: mpsc::Sender<()>) {
    tokio::spawn(accept_loop(node, listener, stop, done));
}

async fn accept_loop(node: Arc<Node>, listener: TcpListener, mut stop: watch::Receiver<bool>, done: mpsc::Sender<()>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    while let Some((stream, peer)) = crate::server::accept_next(&listener, &mut stop, "admin").await {
        // Full: close at once (the client sees a reset), rather than queue without bound.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin connection refused: {MAX_CONNECTIONS} open");
            continue;
        };
        let node = node.clone();
        let mut stop = stop.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let _done = done;
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let node = node.clone();
                async move { Ok::<_, Infallible>(route(&node, &req)) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .max_headers(64);
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "admin connection ended");
                    }
                }
                _ = tokio::time::sleep(CONN_LIFETIME) => {}
                _ = stop.changed() => {}
            }
        });
    }
}

fn route(node: &Node, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/healthz" | "/readyz" | "/metrics");
    if !known {
        return reply(StatusCode::NOT_FOUND, TEXT, "not found: try /healthz, /readyz or /metrics\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET and HEAD\n".into());
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/healthz" => reply(StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" => match readiness(node) {
            Readiness::Ready(why) => reply(StatusCode::OK, TEXT, format!("ready: {why}\n")),
            Readiness::NotReady(why) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("not ready: {why}\n")),
        },
        _ => match metrics::render(node) {
            Ok(text) => reply(StatusCode::OK, OPENMETRICS, text),
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode metrics");
                reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, "cannot encode metrics\n".into())
            }
        },
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Where `admin-port` says to listen, given the client port actually bound (`None`: off).
/// `auto` is the client port + 20000, off when the client port was OS-chosen (tests) or
/// the sum is over 65535.
pub fn admin_addr(config: &crate::config::Config, client_port_configured: u16) -> Option<(SocketAddr, bool)> {
    use crate::config::{AdminPort, ADMIN_PORT_OFFSET};
    let (port, required) = match config.admin_port {
        AdminPort::Off => return None,
        AdminPort::Any => (0, true),
        AdminPort::Port(p) => (p, true),
        AdminPort::Auto if client_port_configured == 0 => return None,
        AdminPort::Auto => (client_port_configured.checked_add(ADMIN_PORT_OFFSET)?, false),
    };
    Some((SocketAddr::new(config.bind, port), required))
}
