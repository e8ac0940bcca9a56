//! A minimal HTTP/1.1 keep-alive client for the replay: one TCP connection, requests
//! pre-serialized to bytes, answers read by `Content-Length`. It does far less per call
//! than a general client, so the measured time is mostly the server's (and the kernel's).
//! Like any keep-alive client it reconnects once when the server closed the connection
//! while it sat idle (arbiter closes a connection that sends no request head within its
//! header timeout, 10 s by default, idle keep-alive connections included).

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection to the server.
pub struct Connection {
    address: String,
    stream: TcpStream,
    /// Bytes read past the previous answer (none in practice: one request at a time).
    buffer: Vec<u8>,
}

/// `POST path` with a JSON body, as bytes ready to write.
pub fn post_bytes(host: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut res = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    res.extend_from_slice(body);
    res
}

impl Connection {
    pub async fn open(address: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to `{address}`"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            address: address.to_string(),
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends one request (from [`post_bytes`]) and returns the status and the body.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        match self.exchange(request).await {
            Err(Closed) => {
                // Closed while idle, before any byte of this answer: a fresh connection.
                *self = Self::open(&self.address).await?;
                self.exchange(request).await.map_err(|Closed| {
                    anyhow::anyhow!("server closed a fresh connection before answering")
                })?
            }
            Ok(answer) => answer,
        }
    }

    /// One request and its answer; `Err(Closed)` when the server had closed the connection
    /// before answering, any other failure inside `Ok(Err(..))`.
    async fn exchange(&mut self, request: &[u8]) -> Result<anyhow::Result<(u16, Vec<u8>)>, Closed> {
        if self.stream.write_all(request).await.is_err() {
            return Err(Closed);
        }
        match self.fill().await {
            Ok(()) => {}
            Err(_) if self.buffer.is_empty() => return Err(Closed),
            Err(err) => return Ok(Err(err)),
        }
        Ok(self.read_answer().await)
    }

    async fn read_answer(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        let header_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..header_end]).context("header is not text")?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|it| it.parse().ok())
            .context("no status line")?;
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .context("answer without content-length")?;
        while self.buffer.len() < header_end + length {
            self.fill().await?;
        }
        let body = self.buffer[header_end..header_end + length].to_vec();
        self.buffer.drain(..header_end + length);
        Ok((status, body))
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("server closed the connection");
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// The server closed the connection before answering.
struct Closed;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
