//! TLS for clients (`tls-port`, `tls-cert-file`, `tls-key-file`, `tls-ca-cert-file`,
//! `tls-auth-clients`) and for peers (`tls-cluster`): the rustls configurations built from
//! the PEM files, the TLS port's accept loop, and the TLS stream's side of
//! [`ClientStream`](crate::conn::ClientStream).
//!
//! Invariants:
//! - Every file is read once, at start; a missing, unreadable or empty file, a key that
//!   does not match its certificate, or a setting that needs a file nobody named is a
//!   startup error naming the key and the path. A node never falls back to plain text.
//! - One crypto provider, ring, chosen explicitly: another crate of the build enables
//!   aws-lc-rs, so rustls's process default would be ambiguous.
//! - The TLS handshake runs in the connection's own task under [`HANDSHAKE_TIMEOUT`],
//!   never in the accept loop; handshakes in flight are bounded by `maxclients`, so a
//!   flood of silent connections costs at most that many tasks for that long.
//! - Peers use mutual TLS: each side presents the node certificate and checks the
//!   other's against `tls-ca-cert-file`. Host names are not checked (nodes are addressed
//!   by IP and port, and Redis does not check them either); the chain is.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{Config, TlsAuthClients};
use crate::node::Node;

/// How long a client has to complete the TLS handshake after connecting.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn unreadable(key: &str, path: &Path, why: impl std::fmt::Display) -> String {
    format!("cannot read {key} {}: {why}", path.display())
}

fn required<'a>(key: &str, path: &'a Option<PathBuf>, why: &str) -> Result<&'a Path, String> {
    path.as_deref().ok_or_else(|| format!("{key} is not set: {why}"))
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(key, path, e))?;
    if certs.is_empty() {
        return Err(unreadable(key, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| unreadable("tls-key-file", path, e))
}

fn read_ca(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("tls-ca-cert-file", path)? {
        roots.add(cert).map_err(|e| unreadable("tls-ca-cert-file", path, e))?;
    }
    Ok(Arc::new(roots))
}

/// The node certificate and key (`tls-cert-file`, `tls-key-file`), for `why`.
fn identity(config: &Config, why: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let cert = required("tls-cert-file", &config.tls_cert_file, why)?;
    let key = required("tls-key-file", &config.tls_key_file, why)?;
    Ok((read_certs("tls-cert-file", cert)?, read_key(key)?))
}

fn key_mismatch(config: &Config, e: rustls::Error) -> String {
    let path = config.tls_key_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
    format!("invalid tls-key-file {path}: {e} (does it match tls-cert-file?)")
}

/// The TLS port's acceptor, `None` when no `tls-port` is set; `Err` names the key.
pub fn client_acceptor(config: &Config) -> Result<Option<TlsAcceptor>, String> {
    if config.tls_port == 0 {
        return Ok(None);
    }
    let (certs, key) = identity(config, "tls-port needs a certificate and its key")?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match config.tls_auth_clients {
        TlsAuthClients::No => builder.with_no_client_auth(),
        auth => {
            // As Redis: checking client certificates needs the CA they chain to.
            let ca = required(
                "tls-ca-cert-file",
                &config.tls_ca_cert_file,
                "tls-auth-clients yes or optional checks client certificates against it (or set tls-auth-clients no)",
            )?;
            let verifier = WebPkiClientVerifier::builder_with_provider(read_ca(ca)?, provider());
            let verifier = if auth == TlsAuthClients::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| unreadable("tls-ca-cert-file", ca, e))?)
        }
    };
    let server = builder.with_single_cert(certs, key).map_err(|e| key_mismatch(config, e))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// The peer port's TLS (`tls-cluster yes`), `None` when off; `Err` names the key.
pub fn peer_tls(config: &Config) -> Result<Option<prism_replication::network::PeerTls>, String> {
    if !config.tls_cluster {
        return Ok(None);
    }
    let why = "tls-cluster yes needs the node certificate, its key and the CA peers are checked against";
    let (certs, key) = identity(config, why)?;
    let ca_path = required("tls-ca-cert-file", &config.tls_ca_cert_file, why)?;
    let roots = read_ca(ca_path)?;
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| unreadable("tls-ca-cert-file", ca_path, e))?;
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| key_mismatch(config, e))?;
    let chain = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| unreadable("tls-ca-cert-file", ca_path, e))?;
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
        .with_client_auth_cert(certs, key)
        .map_err(|e| key_mismatch(config, e))?;
    Ok(Some(prism_replication::network::PeerTls::new(
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    )))
}

/// Checks a peer's certificate chain against the CA but not its name: peers are dialled
/// by address, and one certificate may serve every node of a fleet.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last, after the chain, expiry and usage: a name
        // mismatch therefore means everything else passed.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl crate::conn::ClientStream for TlsStream<TcpStream> {
    const TLS: bool = true;

    /// Hands rustls what it takes without waiting (it encrypts into its own bounded
    /// buffer and sends what the socket takes); the caller flushes at the end of a batch.
    fn try_write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(self).poll_write(&mut cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// Accepts TLS clients on `listener`; each connection's handshake and service run in its
/// own task (see the module invariants).
pub async fn accept_loop(
    node: Arc<Node>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let handshaking = Arc::new(AtomicUsize::new(0));
    while let Some((stream, peer)) = crate::server::accept_next(&listener, &mut stop, "TLS").await {
        node.stats.connections_received.fetch_add(1, Ordering::Relaxed);
        let max = node.limits.maxclients.load(Ordering::Relaxed);
        if handshaking.load(Ordering::Relaxed) >= max.max(1) {
            node.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (node2, stop2, done2, acceptor2) = (node.clone(), stop.clone(), done.clone(), acceptor.clone());
        let counter = handshaking.clone();
        counter.fetch_add(1, Ordering::Relaxed);
        let mut stop3 = stop.clone();
        tokio::spawn(async move {
            let _done = done2;
            let laddr = stream.local_addr().unwrap_or(peer);
            let fd = crate::server::raw_fd(&stream);
            let shaken = tokio::select! {
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor2.accept(stream)) => r,
                _ = stop3.changed() => {
                    counter.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
            };
            counter.fetch_sub(1, Ordering::Relaxed);
            match shaken {
                Ok(Ok(tls)) => crate::server::run_connection(node2, tls, peer, laddr, fd, stop2).await,
                Ok(Err(e)) => refused(&node2, peer, &e.to_string()),
                Err(_) => refused(&node2, peer, "handshake timed out"),
            }
        });
    }
}

/// A client that did not complete the TLS handshake: a plain-text client, a missing or
/// untrusted certificate, or silence.
fn refused(node: &Node, peer: SocketAddr, why: &str) {
    node.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, "TLS client refused: {why}");
}

/// The ports a TLS client is told about, as Redis 7.2 does: TLS clients see TLS ports
/// (CLUSTER SLOTS/SHARDS/NODES, `-MOVED`, `-ASK`), plain-text clients plain ports. Other
/// nodes' TLS ports are taken to sit at the same offset from their plain port as this
/// node's (a fleet configures them uniformly); a node serving TLS only already
/// announces its TLS port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsPorts {
    /// This node's plain port (0: TLS only).
    pub plain: u16,
    pub tls: u16,
}

impl TlsPorts {
    pub fn of(node: &Node) -> TlsPorts {
        let c = node.config.read();
        TlsPorts { plain: c.port, tls: c.tls_port }
    }

    /// The TLS port of the node announcing plain port `port`.
    pub fn port_of(&self, port: u16) -> u16 {
        if self.plain == 0 || self.tls == 0 {
            return port;
        }
        let shifted = i32::from(port) + i32::from(self.tls) - i32::from(self.plain);
        u16::try_from(shifted).ok().filter(|p| *p != 0).unwrap_or(port)
    }

    /// A `-MOVED` / `-ASK` redirect with the target's TLS port; other errors unchanged.
    pub fn redirect(&self, e: crate::cmd::CmdError) -> crate::cmd::CmdError {
        let text = &e.0;
        if !(text.starts_with("MOVED ") || text.starts_with("ASK ")) {
            return e;
        }
        let Some((head, port)) = text.rsplit_once(':') else { return e };
        match port.parse::<u16>() {
            Ok(p) => crate::cmd::CmdError::msg(format!("{head}:{}", self.port_of(p))),
            Err(_) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TlsPorts;
    use crate::cmd::CmdError;

    #[test]
    fn tls_clients_are_sent_to_tls_ports() {
        let t = TlsPorts { plain: 7000, tls: 17000 };
        assert_eq!(t.port_of(7000), 17000);
        assert_eq!(t.port_of(7001), 17001);
        assert_eq!(t.redirect(CmdError::msg("MOVED 3999 10.0.0.2:7001")).0, "MOVED 3999 10.0.0.2:17001");
        assert_eq!(t.redirect(CmdError::msg("ASK 1 ::1:7002")).0, "ASK 1 ::1:17002");
        assert_eq!(t.redirect(CmdError::msg("ERR no")).0, "ERR no");
        // Out of range: the announced port, rather than a made-up one.
        assert_eq!(TlsPorts { plain: 60000, tls: 1000 }.port_of(1000), 1000);
        // TLS only: the topology already holds TLS ports.
        assert_eq!(TlsPorts { plain: 0, tls: 6380 }.port_of(6380), 6380);
    }
}
