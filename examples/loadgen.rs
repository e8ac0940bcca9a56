//! Load generator for a running arbiter server: loads a workload (generated, or a SpiceDB
//! peer-harness workload JSON `{"schema", "relationships", "checks", "lookups"}`), then
//! drives `POST /v1/check` from N keep-alive connections for a fixed time and prints
//! p50/p90/p99 latency and checks per second, for each requested concurrency. With
//! `--protocol grpc` the same checks go through SpiceDB's gRPC CheckPermission on the same
//! port instead (a tonic client, one HTTP/2 connection per worker); `--protocol grpc-raw`
//! sends the same calls as pre-encoded HTTP/2 frames (headers indexed in HPACK's dynamic
//! table, as gRPC clients do), a client as cheap as the JSON one, so that the server's
//! cost per call can be compared fairly; `--protocol paired` asks every check both ways,
//! JSON on one HTTP/1.1 connection and `grpc-raw` on one HTTP/2 connection, one call at a
//! time, the order alternating, and reports each protocol's percentiles and the median of
//! the per-pair difference (both calls of a pair meet the machine in the same state, so
//! the difference is steadier than two runs' p50s on a noisy machine); `--protocol noop` sends `GET /healthz` through
//! the same router-wide layer: the server's no-op round trip, the ceiling for checks over
//! HTTP/1.1.
//!
//! ```sh
//! cargo run --release -- serve --memory &
//! cargo run --release --example loadgen -- --concurrency 1,64 --duration 10
//! cargo run --release --example loadgen -- --workload ../shared/peers/spicedb/examples/basic.json
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "drive a running arbiter server with checks and report latency and throughput")]
struct Args {
    /// Server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token of the server.
    #[arg(long, env = "ARBITER_TOKEN")]
    token: Option<String>,
    /// Replay this workload JSON instead of generating one.
    #[arg(long)]
    workload: Option<std::path::PathBuf>,
    /// Comma-separated connection counts to measure, one run each.
    #[arg(long, default_value = "1,64", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Seconds to measure each run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of unmeasured warm-up before each run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Generated workload: number of users.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Generated workload: number of documents.
    #[arg(long, default_value_t = 20_000)]
    documents: usize,
    /// Generated workload: number of groups (nested two deep).
    #[arg(long, default_value_t = 500)]
    groups: usize,
    /// Generated workload: number of distinct checks cycled through.
    #[arg(long, default_value_t = 50_000)]
    checks: usize,
    /// Consistency mode of the checks: full or minimize_latency.
    #[arg(long, default_value = "full")]
    consistency: String,
    /// Skip loading the schema and relationships (the server already has them).
    #[arg(long)]
    no_setup: bool,
    /// Seed of the generator.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// How checks are sent: `json` (POST /v1/check), `grpc` (CheckPermission, tonic
    /// client), `grpc-raw` (CheckPermission as pre-encoded HTTP/2 frames), `paired`
    /// (each check as `json` and as `grpc-raw`, one call at a time, compared pair by pair;
    /// `--concurrency` is ignored) or `noop` (`GET /healthz`, the no-op round trip).
    #[arg(long, default_value = "json")]
    protocol: String,
    /// gRPC modes: calls in flight on each HTTP/2 connection. A run at concurrency C
    /// opens C / streams connections, each carrying `streams` concurrent calls (gRPC
    /// clients multiplex one channel); 1 is one call at a time per connection.
    #[arg(long, default_value_t = 1)]
    streams: usize,
}

#[derive(Debug, Deserialize)]
struct Workload {
    schema: String,
    relationships: Vec<String>,
    checks: Vec<Check>,
}

#[derive(Clone, Debug, Deserialize)]
struct Check {
    resource: String,
    permission: String,
    subject: String,
}

/// The generated workload's schema: nested groups, owners, viewers, a banned exclusion and
/// an arrow to a parent folder.
const SCHEMA: &str = "
definition user {}
definition group {
    relation member: user | group#member
}
definition folder {
    relation viewer: user | group#member
}
definition document {
    relation parent: folder
    relation owner: user
    relation viewer: user | group#member
    relation banned: user
    permission edit = owner
    permission view = (viewer | edit | parent.viewer) - banned
}
";

/// A small deterministic generator (splitmix64), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn generate(args: &Args) -> Workload {
    let mut rng = Rng(args.seed);
    let mut relationships = Vec::new();
    let folders = (args.documents / 50).max(1);
    for group in 0..args.groups {
        for _ in 0..20 {
            relationships.push(format!(
                "group:g{group}#member@user:u{}",
                rng.below(args.users)
            ));
        }
        // Every tenth group contains another group.
        if group % 10 == 0 && group + 1 < args.groups {
            relationships.push(format!("group:g{group}#member@group:g{}#member", group + 1));
        }
    }
    for folder in 0..folders {
        relationships.push(format!(
            "folder:f{folder}#viewer@group:g{}#member",
            rng.below(args.groups)
        ));
    }
    for doc in 0..args.documents {
        relationships.push(format!(
            "document:d{doc}#owner@user:u{}",
            rng.below(args.users)
        ));
        relationships.push(format!(
            "document:d{doc}#parent@folder:f{}",
            rng.below(folders)
        ));
        relationships.push(format!(
            "document:d{doc}#viewer@group:g{}#member",
            rng.below(args.groups)
        ));
        if doc % 7 == 0 {
            relationships.push(format!(
                "document:d{doc}#banned@user:u{}",
                rng.below(args.users)
            ));
        }
    }
    relationships.sort();
    relationships.dedup();
    let checks = (0..args.checks)
        .map(|_| Check {
            resource: format!("document:d{}", rng.below(args.documents)),
            permission: if rng.below(4) == 0 { "edit" } else { "view" }.to_string(),
            subject: format!("user:u{}", rng.below(args.users)),
        })
        .collect();
    Workload {
        schema: SCHEMA.to_string(),
        relationships,
        checks,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

async fn post(
    http: &reqwest::Client,
    args: &Args,
    path: &str,
    body: &Value,
) -> Result<Value, String> {
    let mut request = http.post(format!("{}{path}", args.server)).json(body);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|err| err.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|err| err.to_string())?;
    if !status.is_success() {
        return Err(format!("{path} answered {status}: {body}"));
    }
    Ok(body)
}

async fn setup(args: &Args, workload: &Workload) -> Result<(), String> {
    let http = client();
    let started = Instant::now();
    post(
        &http,
        args,
        "/v1/schema",
        &json!({"schema": workload.schema}),
    )
    .await?;
    for chunk in workload.relationships.chunks(500) {
        let updates: Vec<Value> = chunk
            .iter()
            .map(|rel| json!({"op": "touch", "relationship": rel}))
            .collect();
        post(
            &http,
            args,
            "/v1/relationships/write",
            &json!({"updates": updates}),
        )
        .await?;
    }
    println!(
        "loaded {} relationships in {:.1}s",
        workload.relationships.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A minimal HTTP/1.1 keep-alive client for the measured loop: the requests are
/// pre-encoded bytes and the answer is read by `Content-Length`, so the generator spends
/// as little CPU as possible next to the server it measures (like `wrk`).
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(host: &str) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|err| format!("cannot connect to {host}: {err}"))?;
        stream.set_nodelay(true).map_err(|err| err.to_string())?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one pre-encoded request; answers the status and whether the body says
    /// `"allowed":true`.
    async fn send(&mut self, request: &[u8]) -> Result<(u16, bool), String> {
        use tokio::io::AsyncWriteExt;
        self.stream
            .write_all(request)
            .await
            .map_err(|err| err.to_string())?;
        self.buf.clear();
        let (head_end, body_len) = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..pos]).map_err(|err| err.to_string())?;
                let body_len = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .ok_or("answer without content-length")?;
                break (pos + 4, body_len);
            }
            self.read_more().await?;
        };
        while self.buf.len() < head_end + body_len {
            self.read_more().await?;
        }
        let status = std::str::from_utf8(self.buf.get(9..12).unwrap_or_default())
            .ok()
            .and_then(|it| it.parse().ok())
            .unwrap_or(0);
        let allowed = find(&self.buf[head_end..], b"\"allowed\":true").is_some();
        Ok((status, allowed))
    }

    async fn read_more(&mut self) -> Result<(), String> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|err| err.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".to_string());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|it| it == needle)
}

/// One measured run at `connections` concurrent keep-alive connections.
async fn run(
    args: Arc<Args>,
    requests: Arc<Vec<Vec<u8>>>,
    connections: usize,
) -> Result<(), String> {
    let label = if args.protocol == "noop" { "noop " } else { "" };
    let host = host_of(&args.server);
    let warmup = Duration::from_secs_f64(args.warmup);
    let measure = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..connections {
        let requests = Arc::clone(&requests);
        let host = host.clone();
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::open(&host).await?;
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut allowed = 0usize;
            let mut total = 0usize;
            let mut idx = worker * 7919;
            loop {
                let sent = Instant::now();
                if sent >= start + warmup + measure {
                    break;
                }
                let request = &requests[idx % requests.len()];
                idx += 1;
                let (status, is_allowed) = conn.send(request).await?;
                let took = sent.elapsed();
                total += 1;
                if status != 200 {
                    return Err(format!("request answered status {status}"));
                }
                if sent >= start + warmup {
                    latencies.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
                    allowed += usize::from(is_allowed);
                }
            }
            Ok::<_, String>((latencies, allowed, total))
        }));
    }
    let mut results = Vec::new();
    for worker in workers {
        results.push(worker.await.map_err(|err| err.to_string())??);
    }
    report(label, connections, measure, results)
}

/// What one worker measured: the latencies after the warm-up, how many of those were
/// allowed, and how many calls it completed in all (warm-up included, to divide the
/// server's CPU time by).
type Measured = (Vec<u32>, usize, usize);

/// Prints one run's throughput and latency percentiles.
fn report(
    label: &str,
    connections: usize,
    measure: Duration,
    results: Vec<Measured>,
) -> Result<(), String> {
    let mut latencies = Vec::new();
    let mut allowed = 0;
    let mut total = 0;
    for (mut lat, n_allowed, n_total) in results {
        latencies.append(&mut lat);
        allowed += n_allowed;
        total += n_total;
    }
    latencies.sort_unstable();
    let n = latencies.len();
    if n == 0 {
        return Err("no check completed".to_string());
    }
    let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "{label}connections={connections:<4} checks={n:<8} checks/s={:<9.0} p50={}µs p90={}µs p99={}µs max={}µs allowed={:.1}% calls_with_warmup={total}",
        n as f64 / measure.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies[n - 1],
        100.0 * allowed as f64 / n as f64,
    );
    Ok(())
}

/// `HOST:PORT` of an `http://HOST:PORT` URL.
fn host_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// The bytes of one `POST /v1/check` request.
fn encode(args: &Args, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    let auth = args
        .token
        .as_ref()
        .map(|token| format!("authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /v1/check HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{auth}\r\n{body}",
        host_of(&args.server),
        body.len()
    )
    .into_bytes()
}

/// The bytes of one `GET /healthz` request: the no-op round trip through the same
/// middleware stack (observe, body limit, deadline, query guard) as a check.
fn noop_request(args: &Args) -> Vec<u8> {
    format!(
        "GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n",
        host_of(&args.server)
    )
    .into_bytes()
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.streams == 0 || (args.streams > 1 && !args.protocol.starts_with("grpc")) {
        eprintln!("error: `--streams` is at least 1, and above 1 only for the gRPC modes");
        return std::process::ExitCode::from(2);
    }
    if !["json", "grpc", "grpc-raw", "paired", "noop"].contains(&args.protocol.as_str()) {
        eprintln!(
            "error: `--protocol {}` is not one of json, grpc, grpc-raw, paired, noop",
            args.protocol
        );
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let res = runtime.block_on(async {
        let workload = match &args.workload {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|err| format!("{}: {err}", file.display()))?;
                serde_json::from_str::<Workload>(&text)
                    .map_err(|err| format!("{}: {err}", file.display()))?
            }
            None => generate(&args),
        };
        if workload.checks.is_empty() {
            return Err("the workload has no checks".to_string());
        }
        if !args.no_setup {
            setup(&args, &workload).await?;
        }
        let consistency = json!({"mode": args.consistency});
        let requests: Vec<Vec<u8>> = workload
            .checks
            .iter()
            .map(|check| {
                let body = json!({"resource": check.resource, "permission": check.permission,
                       "subject": check.subject, "consistency": consistency});
                encode(&args, &body)
            })
            .collect();
        let requests = if args.protocol == "noop" {
            vec![noop_request(&args)]
        } else {
            requests
        };
        let requests = Arc::new(requests);
        let args = Arc::new(args);
        if args.protocol == "paired" {
            let checks = grpc::requests(&args, &workload.checks)?;
            let calls = h2raw::encode_calls(&args, &checks)?;
            return h2raw::paired(&args, &calls, &requests).await;
        }
        if args.protocol == "grpc-raw" {
            let checks = grpc::requests(&args, &workload.checks)?;
            let calls = Arc::new(h2raw::encode_calls(&args, &checks)?);
            for &connections in &args.concurrency {
                h2raw::run(Arc::clone(&args), Arc::clone(&calls), connections).await?;
            }
            return Ok(());
        }
        if args.protocol == "grpc" {
            let checks = Arc::new(grpc::requests(&args, &workload.checks)?);
            for &connections in &args.concurrency {
                grpc::run(Arc::clone(&args), Arc::clone(&checks), connections).await?;
            }
            return Ok(());
        }
        for &connections in &args.concurrency {
            run(Arc::clone(&args), Arc::clone(&requests), connections).await?;
        }
        Ok::<_, String>(())
    });
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The gRPC mode: the same checks as SpiceDB `CheckPermission` calls.
mod grpc {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use spicedb_rs_proto::authzed::api::v1 as pb;
    use spicedb_rs_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
    use tonic::metadata::MetadataValue;

    use super::{Args, Check};

    fn object(text: &str) -> Result<pb::ObjectReference, String> {
        let (object_type, object_id) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not `type:id`"))?;
        Ok(pb::ObjectReference {
            object_type: object_type.to_string(),
            object_id: object_id.to_string(),
        })
    }

    /// One `CheckPermissionRequest` per workload check.
    pub fn requests(
        args: &Args,
        checks: &[Check],
    ) -> Result<Vec<pb::CheckPermissionRequest>, String> {
        use pb::consistency::Requirement;
        let requirement = match args.consistency.as_str() {
            "full" => Requirement::FullyConsistent(true),
            "minimize_latency" => Requirement::MinimizeLatency(true),
            other => {
                return Err(format!(
                    "consistency `{other}` is not full or minimize_latency"
                ));
            }
        };
        checks
            .iter()
            .map(|check| {
                let (subject, relation) = check
                    .subject
                    .split_once('#')
                    .unwrap_or((check.subject.as_str(), ""));
                Ok(pb::CheckPermissionRequest {
                    consistency: Some(pb::Consistency {
                        requirement: Some(requirement.clone()),
                    }),
                    resource: Some(object(&check.resource)?),
                    permission: check.permission.clone(),
                    subject: Some(pb::SubjectReference {
                        object: Some(object(subject)?),
                        optional_relation: relation.to_string(),
                    }),
                    context: None,
                    with_tracing: false,
                })
            })
            .collect()
    }

    /// One measured run at `connections` concurrent HTTP/2 connections.
    pub async fn run(
        args: Arc<Args>,
        requests: Arc<Vec<pb::CheckPermissionRequest>>,
        connections: usize,
    ) -> Result<(), String> {
        let warmup = Duration::from_secs_f64(args.warmup);
        let measure = Duration::from_secs_f64(args.duration);
        let auth: Option<MetadataValue<_>> = match &args.token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| "the token is not valid metadata".to_string())?,
            ),
            None => None,
        };
        let mut channels = Vec::new();
        for _ in 0..connections.div_ceil(args.streams) {
            channels.push(
                tonic::transport::Channel::from_shared(args.server.clone())
                    .map_err(|err| err.to_string())?
                    .connect()
                    .await
                    .map_err(|err| err.to_string())?,
            );
        }
        let start = Instant::now();
        let mut workers = Vec::new();
        for worker in 0..connections {
            let requests = Arc::clone(&requests);
            let auth = auth.clone();
            let channel = channels[worker / args.streams].clone();
            workers.push(tokio::spawn(async move {
                let mut client = PermissionsServiceClient::new(channel);
                let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
                let mut allowed = 0usize;
                let mut total = 0usize;
                let mut idx = worker * 7919;
                loop {
                    let sent = Instant::now();
                    if sent >= start + warmup + measure {
                        break;
                    }
                    let mut request = tonic::Request::new(requests[idx % requests.len()].clone());
                    idx += 1;
                    if let Some(auth) = &auth {
                        request.metadata_mut().insert("authorization", auth.clone());
                    }
                    let answer = client
                        .check_permission(request)
                        .await
                        .map_err(|err| format!("check failed: {err}"))?;
                    let took = sent.elapsed();
                    total += 1;
                    if sent >= start + warmup {
                        latencies.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
                        let has =
                            pb::check_permission_response::Permissionship::HasPermission as i32;
                        allowed += usize::from(answer.into_inner().permissionship == has);
                    }
                }
                Ok::<_, String>((latencies, allowed, total))
            }));
        }
        let mut results = Vec::new();
        for worker in workers {
            results.push(worker.await.map_err(|err| err.to_string())??);
        }
        super::report("grpc ", connections, measure, results)
    }
}

/// The `grpc-raw` mode: CheckPermission calls written as pre-encoded HTTP/2 frames on a
/// bare TCP connection, one call at a time per connection, the answer read frame by
/// frame. Per call it writes a stream id into prepared bytes and decodes one small
/// protobuf message, so it costs about what the raw JSON generator costs and the two
/// protocols can be compared by the server's cost alone. A call that ends without a
/// message (a trailers-only gRPC error), a reset stream or a GOAWAY stops the run.
mod h2raw {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use std::collections::HashMap;

    use prost::Message;
    use spicedb_rs_proto::authzed::api::v1 as pb;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{Args, host_of};

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const PATH: &str = "/authzed.api.v1.PermissionsService/CheckPermission";
    const DATA: u8 = 0x0;
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const GOAWAY: u8 = 0x7;
    const WINDOW_UPDATE: u8 = 0x8;
    const END_STREAM: u8 = 0x1;
    const ACK: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    const INITIAL_WINDOW_SIZE: u16 = 0x4;
    const MAX_WINDOW: u32 = 0x7fff_ffff;

    /// The prepared calls: the HPACK header blocks (the first call's on each connection,
    /// then every other's) and one gRPC-framed body per check.
    pub struct Calls {
        first_headers: Vec<u8>,
        headers: Vec<u8>,
        bodies: Vec<Vec<u8>>,
    }

    /// An HPACK integer with an `bits`-bit prefix after the pattern `flags` (RFC 7541 §5.1).
    fn integer(out: &mut Vec<u8>, bits: u32, flags: u8, value: usize) {
        let max = (1usize << bits) - 1;
        if value < max {
            out.push(flags | value as u8);
            return;
        }
        out.push(flags | max as u8);
        let mut rest = value - max;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }

    /// An HPACK string literal, not Huffman-coded.
    fn string(out: &mut Vec<u8>, text: &str) {
        integer(out, 7, 0x00, text.len());
        out.extend_from_slice(text.as_bytes());
    }

    /// The header blocks of the calls, encoded as gRPC clients encode them: the first call
    /// on a connection adds each header to the server's HPACK dynamic table ("literal with
    /// incremental indexing", RFC 7541 §6.2.1), every later call names the entries by
    /// index, one byte each. So the server decodes what it decodes for a real client.
    fn header_blocks(args: &Args) -> (Vec<u8>, Vec<u8>) {
        // (static-table index of the name, or 0 for a literal name; name; value)
        let mut entries = vec![
            (4, ":path", PATH.to_string()),
            (1, ":authority", host_of(&args.server)),
            (31, "content-type", "application/grpc".to_string()),
            (0, "te", "trailers".to_string()),
        ];
        if let Some(token) = &args.token {
            entries.push((23, "authorization", format!("Bearer {token}")));
        }
        // :method POST and :scheme http are static-table entries 3 and 6.
        let mut first = vec![0x83, 0x86];
        for (index, name, value) in &entries {
            integer(&mut first, 6, 0x40, *index);
            if *index == 0 {
                string(&mut first, name);
            }
            string(&mut first, value);
        }
        // The newest entry of the dynamic table has index 62.
        let mut repeat = vec![0x83, 0x86];
        for position in 0..entries.len() {
            integer(&mut repeat, 7, 0x80, 62 + entries.len() - 1 - position);
        }
        (first, repeat)
    }

    /// The header blocks and the bodies of every check.
    pub fn encode_calls(
        args: &Args,
        checks: &[pb::CheckPermissionRequest],
    ) -> Result<Calls, String> {
        let (first_headers, headers) = header_blocks(args);
        let bodies = checks
            .iter()
            .map(|check| {
                let message = check.encode_to_vec();
                let len = u32::try_from(message.len()).map_err(|err| err.to_string())?;
                let mut body = vec![0u8];
                body.extend_from_slice(&len.to_be_bytes());
                body.extend_from_slice(&message);
                Ok(body)
            })
            .collect::<Result<_, String>>()?;
        Ok(Calls {
            first_headers,
            headers,
            bodies,
        })
    }

    fn frame_head(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, len: usize) {
        out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
    }

    /// One HTTP/2 connection that runs one call at a time.
    struct Conn {
        stream: tokio::net::TcpStream,
        buf: Vec<u8>,
        /// Where the next unread frame starts in `buf`.
        at: usize,
        out: Vec<u8>,
        next_stream: u32,
        /// What the server lets us send on the connection (RFC 9113 §6.9).
        send_window: i64,
    }

    /// A frame read from the server, with its payload at `buf[start..end]`.
    struct Frame {
        kind: u8,
        flags: u8,
        stream: u32,
        start: usize,
        end: usize,
    }

    impl Conn {
        async fn open(host: &str) -> Result<Self, String> {
            let stream = tokio::net::TcpStream::connect(host)
                .await
                .map_err(|err| format!("cannot connect to {host}: {err}"))?;
            stream.set_nodelay(true).map_err(|err| err.to_string())?;
            let mut conn = Self {
                stream,
                buf: Vec::with_capacity(16 * 1024),
                at: 0,
                out: Vec::with_capacity(1024),
                next_stream: 1,
                send_window: 65_535,
            };
            // Our settings: a stream window large enough never to need updating; then
            // the same for the connection's window.
            let mut hello = PREFACE.to_vec();
            frame_head(&mut hello, SETTINGS, 0, 0, 6);
            hello.extend_from_slice(&INITIAL_WINDOW_SIZE.to_be_bytes());
            hello.extend_from_slice(&MAX_WINDOW.to_be_bytes());
            frame_head(&mut hello, WINDOW_UPDATE, 0, 0, 4);
            hello.extend_from_slice(&(MAX_WINDOW - 65_535).to_be_bytes());
            conn.write(&hello).await?;
            Ok(conn)
        }

        async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
            self.stream
                .write_all(bytes)
                .await
                .map_err(|err| err.to_string())
        }

        /// The next frame; answers SETTINGS and PING, counts WINDOW_UPDATEs, fails on
        /// GOAWAY.
        async fn frame(&mut self) -> Result<Frame, String> {
            loop {
                if self.buf.len() - self.at >= 9 {
                    let head = &self.buf[self.at..self.at + 9];
                    let len = usize::from(head[0]) << 16
                        | usize::from(head[1]) << 8
                        | usize::from(head[2]);
                    if self.buf.len() - self.at >= 9 + len {
                        let frame = Frame {
                            kind: head[3],
                            flags: head[4],
                            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]])
                                & MAX_WINDOW,
                            start: self.at + 9,
                            end: self.at + 9 + len,
                        };
                        self.at = frame.end;
                        if self.control(&frame).await? {
                            continue;
                        }
                        return Ok(frame);
                    }
                }
                if self.at > 0 {
                    self.buf.drain(..self.at);
                    self.at = 0;
                }
                if !self.out.is_empty() {
                    let out = std::mem::take(&mut self.out);
                    let written = self.write(&out).await;
                    self.out = out;
                    self.out.clear();
                    written?;
                }
                let mut chunk = [0u8; 16 * 1024];
                let n = self
                    .stream
                    .read(&mut chunk)
                    .await
                    .map_err(|err| err.to_string())?;
                if n == 0 {
                    return Err("the server closed the connection".to_string());
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }

        /// Handles a connection-level frame; `true` when it was one.
        async fn control(&mut self, frame: &Frame) -> Result<bool, String> {
            match frame.kind {
                SETTINGS if frame.flags & ACK == 0 => {
                    let mut ack = Vec::with_capacity(9);
                    frame_head(&mut ack, SETTINGS, ACK, 0, 0);
                    self.write(&ack).await?;
                    Ok(true)
                }
                PING if frame.flags & ACK == 0 => {
                    let mut pong = Vec::with_capacity(17);
                    frame_head(&mut pong, PING, ACK, 0, 8);
                    pong.extend_from_slice(&self.buf[frame.start..frame.end]);
                    self.write(&pong).await?;
                    Ok(true)
                }
                WINDOW_UPDATE if frame.stream == 0 && frame.end - frame.start == 4 => {
                    let p = &self.buf[frame.start..frame.end];
                    let inc = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & MAX_WINDOW;
                    self.send_window += i64::from(inc);
                    Ok(true)
                }
                GOAWAY => Err("the server sent GOAWAY".to_string()),
                SETTINGS | PING | WINDOW_UPDATE => Ok(true),
                _ => Ok(false),
            }
        }

        /// Appends one call's frames to the output (the connection's first call carries
        /// the header block that fills HPACK's dynamic table, every later one the indexed
        /// block) and answers its stream id.
        fn queue_call(&mut self, calls: &Calls, body: &[u8]) -> u32 {
            let headers = if self.next_stream == 1 {
                &calls.first_headers
            } else {
                &calls.headers
            };
            let id = self.next_stream;
            self.next_stream += 2;
            frame_head(&mut self.out, HEADERS, END_HEADERS, id, headers.len());
            self.out.extend_from_slice(headers);
            frame_head(&mut self.out, DATA, END_STREAM, id, body.len());
            self.out.extend_from_slice(body);
            self.send_window -= body.len() as i64;
            id
        }

        /// Keeps `streams` calls in flight until `end`, writing the calls queued since
        /// the last read in one go before the next read; answers the latencies of the
        /// calls sent from `measured` on, how many of those were allowed, and how many
        /// calls completed in all.
        async fn drive(
            &mut self,
            calls: &Calls,
            streams: usize,
            mut idx: usize,
            measured: Instant,
            end: Instant,
        ) -> Result<(Vec<u32>, usize, usize), String> {
            let mut inflight: HashMap<u32, (Instant, Option<bool>)> = HashMap::new();
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let (mut allowed, mut total) = (0usize, 0usize);
            loop {
                while inflight.len() < streams && Instant::now() < end {
                    let body = &calls.bodies[idx % calls.bodies.len()];
                    if self.send_window < body.len() as i64 {
                        break;
                    }
                    idx += 1;
                    let id = self.queue_call(calls, body);
                    inflight.insert(id, (Instant::now(), None));
                }
                if inflight.is_empty() && Instant::now() >= end {
                    break;
                }
                let frame = self.frame().await?;
                let Some(call) = inflight.get_mut(&frame.stream) else {
                    continue;
                };
                if let Some(is_allowed) = self.answer_in(&frame)? {
                    call.1 = Some(is_allowed);
                }
                if frame.flags & END_STREAM != 0 && matches!(frame.kind, DATA | HEADERS) {
                    let (sent, answer) = inflight.remove(&frame.stream).unwrap_or((end, None));
                    let is_allowed =
                        answer.ok_or("a call ended without an answer (a gRPC error)")?;
                    total += 1;
                    if sent >= measured {
                        let took = sent.elapsed().as_micros();
                        latencies.push(took.min(u128::from(u32::MAX)) as u32);
                        allowed += usize::from(is_allowed);
                    }
                }
            }
            Ok((latencies, allowed, total))
        }
    }

    impl Conn {
        /// What a call's frame says: whether it was allowed (a DATA frame), nothing (any
        /// other), or an error (the stream was reset, or the answer does not decode).
        fn answer_in(&self, frame: &Frame) -> Result<Option<bool>, String> {
            let has = pb::check_permission_response::Permissionship::HasPermission as i32;
            match frame.kind {
                DATA => {
                    let payload = self.buf.get(frame.start + 5..frame.end).unwrap_or_default();
                    let decoded = pb::CheckPermissionResponse::decode(payload)
                        .map_err(|err| format!("undecodable answer: {err}"))?;
                    Ok(Some(decoded.permissionship == has))
                }
                RST_STREAM => Err(format!("the server reset stream {}", frame.stream)),
                _ => Ok(None),
            }
        }

        /// One call, alone on the connection: whether it was allowed.
        async fn call_once(&mut self, calls: &Calls, idx: usize) -> Result<bool, String> {
            let body = &calls.bodies[idx % calls.bodies.len()];
            if self.send_window < body.len() as i64 {
                return Err("the server's connection window is exhausted".to_string());
            }
            let id = self.queue_call(calls, body);
            let mut answer = None;
            loop {
                let frame = self.frame().await?;
                if frame.stream != id {
                    continue;
                }
                if let Some(is_allowed) = self.answer_in(&frame)? {
                    answer = Some(is_allowed);
                }
                if frame.flags & END_STREAM != 0 && matches!(frame.kind, DATA | HEADERS) {
                    return answer.ok_or("a call ended without an answer (a gRPC error)".into());
                }
            }
        }
    }

    /// `--protocol paired`: every check as JSON (`json[i]`) and as gRPC (`calls`' body
    /// `i`, the same check), one call at a time on one connection each, the order
    /// alternating from pair to pair; prints both protocols' figures and the median of
    /// the per-pair differences. Fails if the two answers of a pair differ.
    pub async fn paired(args: &Args, calls: &Calls, json: &[Vec<u8>]) -> Result<(), String> {
        let host = host_of(&args.server);
        let mut h2 = Conn::open(&host).await?;
        let mut http1 = super::Conn::open(&host).await?;
        let start = Instant::now();
        let measured = start + Duration::from_secs_f64(args.warmup);
        let end = measured + Duration::from_secs_f64(args.duration);
        let (mut json_us, mut grpc_us, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
        let (mut allowed, mut total) = (0usize, 0usize);
        let mut idx = 0usize;
        while Instant::now() < end {
            let grpc_call = async |h2: &mut Conn| {
                let sent = Instant::now();
                let allowed = h2.call_once(calls, idx).await?;
                Ok::<_, String>((sent.elapsed(), allowed))
            };
            let request = &json[idx % json.len()];
            let (grpc, json_call) = if idx.is_multiple_of(2) {
                let sent = Instant::now();
                let answer = http1.send(request).await?;
                let json_call = (sent.elapsed(), answer);
                (grpc_call(&mut h2).await?, json_call)
            } else {
                let grpc = grpc_call(&mut h2).await?;
                let sent = Instant::now();
                let answer = http1.send(request).await?;
                (grpc, (sent.elapsed(), answer))
            };
            let (json_took, (status, json_allowed)) = json_call;
            if status != 200 {
                return Err(format!("request answered status {status}"));
            }
            if json_allowed != grpc.1 {
                return Err(format!("check {idx}: JSON and gRPC answered differently"));
            }
            total += 1;
            idx += 1;
            if Instant::now() >= measured {
                let (j, g) = (json_took.as_nanos() as i64, grpc.0.as_nanos() as i64);
                json_us.push((j / 1000).min(i64::from(u32::MAX)) as u32);
                grpc_us.push((g / 1000).min(i64::from(u32::MAX)) as u32);
                diffs.push(g - j);
                allowed += usize::from(json_allowed);
            }
        }
        let measure = end - measured;
        super::report("paired json ", 1, measure, vec![(json_us, allowed, total)])?;
        super::report(
            "paired grpc-raw ",
            1,
            measure,
            vec![(grpc_us, allowed, total)],
        )?;
        diffs.sort_unstable();
        let n = diffs.len();
        let at = |q: f64| diffs[((n as f64 * q) as usize).min(n - 1)] as f64 / 1000.0;
        let faster = diffs.iter().filter(|it| **it < 0).count();
        println!(
            "paired difference (gRPC - JSON, same check, same moment): pairs={n} p25={:.1}µs median={:.1}µs p75={:.1}µs gRPC faster in {:.1}% of pairs",
            at(0.25),
            at(0.5),
            at(0.75),
            100.0 * faster as f64 / n.max(1) as f64
        );
        Ok(())
    }

    /// One measured run at `connections` concurrent calls, `args.streams` of them on each
    /// HTTP/2 connection.
    pub async fn run(args: Arc<Args>, calls: Arc<Calls>, connections: usize) -> Result<(), String> {
        let host = host_of(&args.server);
        let warmup = Duration::from_secs_f64(args.warmup);
        let measure = Duration::from_secs_f64(args.duration);
        let start = Instant::now();
        let mut workers = Vec::new();
        let streams = args.streams;
        for worker in 0..connections.div_ceil(streams) {
            let calls = Arc::clone(&calls);
            let host = host.clone();
            let in_flight = streams.min(connections - worker * streams);
            workers.push(tokio::spawn(async move {
                let mut conn = Conn::open(&host).await?;
                conn.drive(
                    &calls,
                    in_flight,
                    worker * 7919,
                    start + warmup,
                    start + warmup + measure,
                )
                .await
            }));
        }
        let mut results = Vec::new();
        for worker in workers {
            results.push(worker.await.map_err(|err| err.to_string())??);
        }
        super::report("grpc-raw ", connections, measure, results)
    }
}
