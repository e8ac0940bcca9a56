//! TLS on the API port (issue 16): with a self-signed certificate made here, a client that
//! trusts it talks HTTP/1.1 and HTTP/2 (chosen by ALPN) to the same port, a plain-text
//! client gets no HTTP answer, and a certificate that does not match its key is refused
//! before the server starts.

use std::path::Path;
use std::sync::Arc;

use arbiter::engine::{self, Arbiter};
use arbiter::server::tls::{self, TlsError};
use arbiter::server::{AppState, ServerConfig, serve_tls};
use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Pem {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    der: CertificateDer<'static>,
}

fn self_signed() -> Pem {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    Pem {
        der: made.cert.der().clone(),
        _dir: dir,
        cert,
        key,
    }
}

fn connector(trusted: &CertificateDer<'static>, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn start(pem: &Pem) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    let state = AppState::new(engine, ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls::acceptor(&pem.cert, &pem.key).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_tls(listener, acceptor, state, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

async fn healthz(
    addr: std::net::SocketAddr,
    der: &CertificateDer<'static>,
    alpn: &[u8],
) -> (u16, hyper::Version) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector(der, alpn)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    let io = TokioIo::new(tls);
    let request = hyper::Request::get("https://localhost/healthz")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = if alpn == b"h2" {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    };
    let version = response.version();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("ok"), "{body:?}");
    (status, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_tls_serves_http1_and_http2_by_alpn_and_refuses_plain_text() {
    let pem = self_signed();
    let (addr, stop) = start(&pem).await;
    assert_eq!(
        healthz(addr, &pem.der, b"h2").await,
        (200, hyper::Version::HTTP_2)
    );
    assert_eq!(
        healthz(addr, &pem.der, b"http/1.1").await,
        (200, hyper::Version::HTTP_11)
    );

    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        plain.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the server kept a plain-text connection open");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "a plain-text client got an HTTP answer"
    );

    // A client that does not trust the certificate cannot connect either.
    let other = self_signed();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let res = connector(&other.der, b"h2")
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(res.is_err());
    let _ = stop.send(());
}

fn refused(cert: &Path, key: &Path) -> TlsError {
    match tls::acceptor(cert, key) {
        Ok(_) => panic!("{} with {} was accepted", cert.display(), key.display()),
        Err(err) => err,
    }
}

#[test]
fn issue16_certificate_not_matching_its_key_is_refused() {
    let first = self_signed();
    let second = self_signed();
    let err = refused(&first.cert, &second.key);
    assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("do not go together"), "{err}");
    let err = refused(&first.key, &first.key);
    assert!(matches!(err, TlsError::NoCertificate(_)), "{err}");
    let err = refused(&first.cert, &first.cert);
    assert!(matches!(err, TlsError::Key { .. }), "{err}");
    let err = refused(Path::new("/nonexistent/cert.pem"), &first.key);
    assert!(matches!(err, TlsError::Certificate { .. }), "{err}");
}

#[test]
fn issue16_serve_with_a_mismatched_key_does_not_start() {
    let first = self_signed();
    let second = self_signed();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["serve", "--memory", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(&first.cert)
        .arg("--tls-key")
        .arg(&second.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("do not go together"), "{message}");
    assert!(out.stdout.is_empty(), "it announced a listener: {out:?}");
}
