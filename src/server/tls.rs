//! TLS for the API port (`--tls-cert FILE --tls-key FILE`), with rustls and its `ring`
//! provider: HTTP/1.1 and HTTP/2 (and so gRPC) on the same port, chosen by ALPN.
//!
//! [`acceptor`] reads the PEM files and refuses, before the server starts, a certificate
//! that does not match its key. [`TlsListener`] turns a bound TCP listener into a stream of
//! finished TLS connections for `axum::serve`: handshakes run in their own tasks with a
//! deadline, so a slow or plain-text client never holds up the others, and a connection
//! whose handshake fails (a plain-text client, a client that does not trust the
//! certificate) is closed and logged at debug level.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to pick them up.
const BACKLOG: usize = 64;

/// Why TLS cannot be set up; the server does not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read the certificate: {message}", .file.display())]
    Certificate { file: PathBuf, message: String },
    #[error("{}: no certificate in the file (expected PEM `CERTIFICATE` blocks)", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: cannot read the private key: {message}", .file.display())]
    Key { file: PathBuf, message: String },
    #[error("the certificate `{}` and the key `{}` do not go together: {message}", .cert.display(), .key.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// A TLS acceptor for the certificate chain in `cert` and the private key in `key` (PEM),
/// offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|err| TlsError::Certificate {
            file: cert.to_path_buf(),
            message: err.to_string().to_lowercase(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|err| TlsError::Key {
        file: key.to_path_buf(),
        message: err.to_string().to_lowercase(),
    })?;
    let mismatch = |message: String| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(private_key)
        .map_err(|err| mismatch(err.to_string().to_lowercase()))?;
    let certified = rustls::sign::CertifiedKey::new(certs, signing_key);
    // INVARIANT: a certificate whose public key is not the key's is refused here, before
    // the server starts, rather than failing every handshake later.
    certified
        .keys_match()
        .map_err(|err| mismatch(err.to_string().to_lowercase()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| mismatch(err.to_string().to_lowercase()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener of finished TLS connections, for `axum::serve`.
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts TCP connections on `listener` and hands out those whose TLS handshake
    /// succeeds. Must be called inside a Tokio runtime.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, incoming) = mpsc::channel(BACKLOG);
        let accept_task = tokio::spawn(accept_loop(listener, acceptor, sender));
        Ok(Self {
            incoming,
            local,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = sender.send((tls, peer)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "tls handshake failed"),
                Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
            }
        });
    }
}
