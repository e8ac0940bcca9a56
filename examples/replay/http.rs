//! The HTTP replay: starts `arbiter serve --memory` as a child process (so its resident
//! memory is its own), loads the workload through `POST /v1/relationships/write` (500
//! touches per call, the store's cap per write; the peer harness writes 1,000 per
//! WriteRelationships call), then answers the
//! checks over one keep-alive connection (one call at a time) and drives it from N
//! connections at once for a fixed time.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::{Connection, post_bytes};
use crate::stats::{self, Summary, round2};
use crate::workload::{Answer, LookupAnswer, Workload};

/// Relationships per write call: `arbiter::store::MAX_WRITE_UPDATES`, the most one write
/// may hold.
const WRITE_BATCH: usize = arbiter::store::MAX_WRITE_UPDATES;

/// How the server is started and driven.
pub struct HttpOptions<'a> {
    pub server_bin: &'a Path,
    pub cache_capacity: usize,
    pub connections: &'a [usize],
    pub duration: Duration,
    pub repeat: usize,
}

#[derive(Debug, Serialize)]
pub struct HttpReport {
    pub cache_capacity: usize,
    pub relationships: usize,
    pub load_s: f64,
    pub load_rels_per_s: f64,
    pub server_rss_mib_started: Option<f64>,
    pub server_rss_mib_after_load: Option<f64>,
    pub server_rss_mib_end: Option<f64>,
    /// One connection, one call at a time, every workload check once (best run by p50).
    pub check_sequential: Summary,
    pub check_sequential_runs: Vec<Summary>,
    /// N connections for a fixed time: latency per call and checks/s over the window.
    pub check_concurrent: Vec<ConcurrentRun>,
    pub lookup: Summary,
    pub loadavg_before: Option<f64>,
    pub loadavg_after: Option<f64>,
    #[serde(skip)]
    pub answers: Vec<Answer>,
    #[serde(skip)]
    pub lookup_answers: Vec<LookupAnswer>,
}

#[derive(Debug, Serialize)]
pub struct ConcurrentRun {
    pub connections: usize,
    pub latency: Summary,
    pub checks_per_s: f64,
    pub errors: usize,
    pub loadavg_after: Option<f64>,
}

/// The server child; killed when dropped so that no run leaves one behind.
struct Server {
    child: Child,
    address: String,
    _schema_file: tempfile::NamedTempFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(bin: &Path, schema: &str, cache_capacity: usize) -> anyhow::Result<Self> {
        let schema_file = tempfile::NamedTempFile::new()?;
        std::fs::write(schema_file.path(), schema)?;
        let mut child = Command::new(bin)
            .args(["serve", "--memory", "--addr", "127.0.0.1:0", "--schema"])
            .arg(schema_file.path())
            .args(["--cache-capacity", &cache_capacity.to_string()])
            .args(["--max-page", "1000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start `{}`", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let address = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                bail!("the server exited before it listened");
            };
            if let Some(rest) = line?.strip_prefix("listening on http://") {
                break rest.trim().to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            address,
            _schema_file: schema_file,
        })
    }

    fn rss(&self) -> Option<f64> {
        stats::rss_mib(&self.child.id().to_string())
    }
}

pub fn run(workload: &Workload, options: &HttpOptions<'_>) -> anyhow::Result<HttpReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let loadavg_before = stats::load_average();
    let server = Server::start(options.server_bin, &workload.schema, options.cache_capacity)?;
    let server_rss_mib_started = server.rss();
    let host = server.address.clone();
    runtime.block_on(async move {
        let mut connection = Connection::open(&host).await?;

        let started = Instant::now();
        for chunk in workload.relationships.chunks(WRITE_BATCH) {
            let updates: Vec<Value> = chunk
                .iter()
                .map(|rel| json!({"op": "touch", "relationship": rel}))
                .collect();
            let body = serde_json::to_vec(&json!({ "updates": updates }))?;
            let (status, answer) = connection
                .send(&post_bytes(&host, "/v1/relationships/write", &body))
                .await?;
            if status != 200 {
                bail!(
                    "write answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                );
            }
        }
        let load_s = started.elapsed().as_secs_f64();
        let server_rss_mib_after_load = server.rss();

        let requests: Vec<Vec<u8>> = workload
            .checks
            .iter()
            .map(|spec| {
                post_bytes(
                    &host,
                    "/v1/check",
                    &serde_json::to_vec(spec).unwrap_or_default(),
                )
            })
            .collect();
        for idx in (0..requests.len().min(200)).map(|it| (it * 7919) % requests.len()) {
            connection.send(&requests[idx]).await?;
        }
        let mut runs = Vec::new();
        let mut best: Option<(Summary, Vec<Answer>)> = None;
        for _ in 0..options.repeat.max(1) {
            let mut samples = Vec::with_capacity(requests.len());
            let mut answers = Vec::with_capacity(requests.len());
            let loop_started = Instant::now();
            for request in &requests {
                let call_started = Instant::now();
                let (status, body) = connection.send(request).await?;
                samples.push(call_started.elapsed().as_nanos() as u64);
                answers.push(check_answer(status, &body));
            }
            let wall = loop_started.elapsed().as_secs_f64();
            let summary = stats::summarize(&mut samples, Some(wall));
            runs.push(summary.clone());
            if best
                .as_ref()
                .is_none_or(|(it, _)| summary.p50_us < it.p50_us)
            {
                best = Some((summary, answers));
            }
        }
        let (check_sequential, answers) = best.unwrap_or_default();

        let mut check_concurrent = Vec::new();
        for &n in options.connections {
            check_concurrent.push(concurrent(&host, &requests, n, options.duration).await?);
        }

        let mut lookup_samples = Vec::new();
        let mut lookup_answers = Vec::new();
        for spec in &workload.lookups {
            let started = Instant::now();
            let answer = lookup(&mut connection, &host, spec).await?;
            lookup_samples.push(started.elapsed().as_nanos() as u64);
            lookup_answers.push(answer);
        }

        Ok(HttpReport {
            cache_capacity: options.cache_capacity,
            relationships: workload.relationships.len(),
            load_s: (load_s * 1000.0).round() / 1000.0,
            load_rels_per_s: (workload.relationships.len() as f64 / load_s).round(),
            server_rss_mib_started,
            server_rss_mib_after_load,
            server_rss_mib_end: server.rss(),
            check_sequential,
            check_sequential_runs: runs,
            check_concurrent,
            lookup: stats::summarize(&mut lookup_samples, None),
            loadavg_before,
            loadavg_after: stats::load_average(),
            answers,
            lookup_answers,
        })
    })
}

fn check_answer(status: u16, body: &[u8]) -> Answer {
    #[derive(serde::Deserialize)]
    struct CheckAnswer {
        allowed: bool,
    }
    if status != 200 {
        return Answer::Error(format!("{status} {}", String::from_utf8_lossy(body)));
    }
    match serde_json::from_slice::<CheckAnswer>(body) {
        Ok(it) if it.allowed => Answer::Allowed,
        Ok(_) => Answer::Denied,
        Err(err) => Answer::Error(format!("unreadable answer: {err}")),
    }
}

/// Every page of one lookup, following the cursor.
async fn lookup(
    connection: &mut Connection,
    host: &str,
    spec: &crate::workload::LookupSpec,
) -> anyhow::Result<LookupAnswer> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let body = json!({
            "resource_type": spec.resource_type,
            "permission": spec.permission,
            "subject": spec.subject,
            "limit": 1000,
            "cursor": cursor,
        });
        let request = post_bytes(host, "/v1/lookup/resources", &serde_json::to_vec(&body)?);
        let (status, answer) = connection.send(&request).await?;
        if status != 200 {
            return Ok(Err(format!(
                "{status} {}",
                String::from_utf8_lossy(&answer)
            )));
        }
        let page: Value = serde_json::from_slice(&answer)?;
        ids.extend(
            page["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|it| it.as_str().map(str::to_string)),
        );
        match page["cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    ids.sort_unstable();
    Ok(Ok(ids))
}

/// `n` connections each sending the workload's checks (from different offsets) back to
/// back for `duration`, after one second of unmeasured warm-up.
async fn concurrent(
    host: &str,
    requests: &[Vec<u8>],
    n: usize,
    duration: Duration,
) -> anyhow::Result<ConcurrentRun> {
    let requests = std::sync::Arc::new(requests.to_vec());
    let warmup = Duration::from_secs(1);
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + warmup;
    let measure_until = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for task_idx in 0..n {
        let requests = std::sync::Arc::clone(&requests);
        let host = host.to_string();
        tasks.spawn(async move {
            let mut connection = Connection::open(&host).await?;
            tokio::time::sleep_until(start.into()).await;
            let mut samples = Vec::new();
            let mut errors = 0usize;
            let mut idx = task_idx * requests.len() / n.max(1);
            loop {
                let call_started = Instant::now();
                if call_started >= measure_until {
                    break;
                }
                let (status, _) = connection.send(&requests[idx % requests.len()]).await?;
                if call_started >= measure_from {
                    samples.push(call_started.elapsed().as_nanos() as u64);
                    if status != 200 {
                        errors += 1;
                    }
                }
                idx += 1;
            }
            anyhow::Ok((samples, errors))
        });
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (task_samples, task_errors) = joined??;
        samples.extend(task_samples);
        errors += task_errors;
    }
    let wall = duration.as_secs_f64();
    let latency = stats::summarize(&mut samples, Some(wall));
    Ok(ConcurrentRun {
        connections: n,
        checks_per_s: round2(latency.n as f64 / wall),
        latency,
        errors,
        loadavg_after: stats::load_average(),
    })
}
