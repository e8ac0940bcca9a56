//! Issue 10, item 6: slow or piled-up connections cannot exhaust the server. A client
//! trickling its request head is cut off after the header timeout, one trickling its body
//! gets 408, and connections past the cap wait in the listen backlog until a served one
//! closes. Bounds are generous: the assertions are about "eventually, well before
//! forever", never about exact timings.

mod support;

use std::time::Duration;

use arbiter::server::ServerConfig;
use support::{TestServer, start_with_schema};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than any timeout under test, so a loaded machine cannot fail the tests.
const PATIENCE: Duration = Duration::from_secs(30);

async fn server(config: ServerConfig) -> TestServer {
    start_with_schema(config).await
}

/// Reads until the server closes the connection or `PATIENCE` runs out; answers what was
/// read and whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&answer).to_string(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_a_client_sending_one_byte_at_a_time_is_cut_off_after_the_header_timeout() {
    let server = server(ServerConfig {
        header_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = std::time::Instant::now();
    let mut cut_off = false;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        // A peek that finds the connection closed also ends the trickle.
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {
                cut_off = true;
                break;
            }
            Err(_) => {}
        }
        if started.elapsed() > PATIENCE {
            break;
        }
    }
    assert!(
        cut_off,
        "the server kept a trickling connection open for {:?}",
        started.elapsed()
    );
    // The server still answers others.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_a_body_that_never_arrives_answers_408() {
    let server = server(ServerConfig {
        body_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/check HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"res",
        )
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_connections_beyond_the_cap_wait_until_one_closes() {
    let server = server(ServerConfig {
        max_connections: 2,
        header_timeout: PATIENCE,
        ..ServerConfig::default()
    })
    .await;
    // Two idle connections take both slots.
    let idle_1 = TcpStream::connect(server.addr).await.unwrap();
    let idle_2 = TcpStream::connect(server.addr).await.unwrap();
    // A third connects (the kernel's backlog accepts it) but is not served yet.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "a connection past the cap was served");
    // Closing one idle connection lets the third in.
    drop(idle_1);
    let (answer, closed) = read_until_closed(&mut third).await;
    assert!(closed, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(idle_2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_waits_for_in_flight_requests_and_closes_idle_connections() {
    let server = server(ServerConfig::default()).await;
    let idle = TcpStream::connect(server.addr).await.unwrap();
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    tokio::time::timeout(PATIENCE, server.stop())
        .await
        .expect("shutdown finished");
    drop(idle);
}
