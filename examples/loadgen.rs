//! Load generator for a running arbiter server: loads a workload (generated, or a SpiceDB
//! peer-harness workload JSON `{"schema", "relationships", "checks", "lookups"}`), then
//! drives `POST /v1/check` from N keep-alive connections for a fixed time and prints
//! p50/p90/p99 latency and checks per second, for each requested concurrency. With
//! `--protocol grpc` the same checks go through SpiceDB's gRPC CheckPermission on the same
//! port instead (a tonic client, one HTTP/2 connection per worker).
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
    /// How checks are sent: `json` (POST /v1/check) or `grpc` (CheckPermission).
    #[arg(long, default_value = "json")]
    protocol: String,
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
                if status != 200 {
                    return Err(format!("check answered status {status}"));
                }
                if sent >= start + warmup {
                    latencies.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
                    allowed += usize::from(is_allowed);
                }
            }
            Ok::<_, String>((latencies, allowed))
        }));
    }
    let mut latencies = Vec::new();
    let mut allowed = 0;
    for worker in workers {
        let (mut lat, n_allowed) = worker.await.map_err(|err| err.to_string())??;
        latencies.append(&mut lat);
        allowed += n_allowed;
    }
    latencies.sort_unstable();
    let n = latencies.len();
    if n == 0 {
        return Err("no check completed".to_string());
    }
    let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "connections={connections:<4} checks={n:<8} checks/s={:<9.0} p50={}µs p90={}µs p99={}µs max={}µs allowed={:.1}%",
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

fn main() -> std::process::ExitCode {
    let args = Args::parse();
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
        let requests = Arc::new(requests);
        let args = Arc::new(args);
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
        let start = Instant::now();
        let mut workers = Vec::new();
        for worker in 0..connections {
            let requests = Arc::clone(&requests);
            let server = args.server.clone();
            let auth = auth.clone();
            workers.push(tokio::spawn(async move {
                let channel = tonic::transport::Channel::from_shared(server)
                    .map_err(|err| err.to_string())?
                    .connect()
                    .await
                    .map_err(|err| err.to_string())?;
                let mut client = PermissionsServiceClient::new(channel);
                let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
                let mut allowed = 0usize;
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
                    if sent >= start + warmup {
                        latencies.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
                        let has =
                            pb::check_permission_response::Permissionship::HasPermission as i32;
                        allowed += usize::from(answer.into_inner().permissionship == has);
                    }
                }
                Ok::<_, String>((latencies, allowed))
            }));
        }
        let mut latencies = Vec::new();
        let mut allowed = 0;
        for worker in workers {
            let (mut lat, n_allowed) = worker.await.map_err(|err| err.to_string())??;
            latencies.append(&mut lat);
            allowed += n_allowed;
        }
        latencies.sort_unstable();
        let n = latencies.len();
        if n == 0 {
            return Err("no check completed".to_string());
        }
        let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)];
        println!(
            "grpc connections={connections:<4} checks={n:<8} checks/s={:<9.0} p50={}µs p90={}µs p99={}µs max={}µs allowed={:.1}%",
            n as f64 / measure.as_secs_f64(),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            latencies[n - 1],
            100.0 * allowed as f64 / n as f64,
        );
        Ok(())
    }
}
