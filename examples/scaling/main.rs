//! Scaling curves of arbiter's check and lookup, in-process, check cache off: how latency
//! grows with relationship count (10k → 1M, the engine bench's scenario generator), graph
//! depth (nested groups 1 → 30), fan-out (a group of 10 → 1,000,000 members, checked for a
//! member and a non-member; and a group of nested groups), intersection/exclusion width
//! (1 → 32 operands), subject fan-in (a subject holding 10 → 1,000,000 direct
//! relationships) and lookup-resources result size (10 → 100,000).
//!
//! Prints one JSON document (also written to `--out`); `scripts/plot.py` draws it into
//! `docs/img/` and prints the tables.
//!
//! ```sh
//! cargo run --release --example scaling -- --out docs/img/scaling.json
//! ```
//!
//! `--dataset N --dataset-dir DIR` writes the one-node dataset of issue 14 instead
//! (`dataset.rs`): `cargo run --release --example scaling -- --dataset 10000000
//! --dataset-dir /tmp/ds10m`.

#[path = "../../benches/common/scenario.rs"]
mod scenario;
#[path = "../replay/stats.rs"]
mod stats;

mod dataset;
mod fixtures;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use arbiter::engine::{Arbiter, CheckRequest, Config, Consistency, LookupResourcesRequest};
use arbiter::model::SubjectRef;
use clap::Parser;
use serde::Serialize;
use serde_json::json;

use crate::stats::Summary;

#[derive(Debug, Parser)]
#[command(about = "measure how arbiter's check and lookup latency grow")]
struct Args {
    /// Where to write the JSON (also printed on stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Relationship counts of the data-size curve.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000,30000,100000,300000,1000000"
    )]
    sizes: Vec<usize>,
    /// Group-chain depths.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,3,5,8,10,15,20,25,30"
    )]
    depths: Vec<usize>,
    /// Direct-member fan-outs.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,1000,10000,100000,1000000"
    )]
    fan_outs: Vec<usize>,
    /// Nested-group fan-outs.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,1000,10000,100000"
    )]
    subgroup_fan_outs: Vec<usize>,
    /// Direct relationships held by one subject (fan-in).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,1000,10000,100000,1000000"
    )]
    fan_ins: Vec<usize>,
    /// Lookup result sizes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,1000,10000,100000"
    )]
    lookup_sizes: Vec<usize>,
    /// Checks timed per point of the data-size curve.
    #[arg(long, default_value_t = 20_000)]
    checks: usize,
    /// Time budget per point of the fixture curves, in milliseconds (at least 5 calls).
    #[arg(long, default_value_t = 500)]
    budget_ms: u64,
    /// Instead of measuring: write the issue-14 dataset of this many relationships
    /// (`schema.zed`, `relationships.txt`) into `--dataset-dir`, and stop.
    #[arg(long, requires = "dataset_dir")]
    dataset: Option<usize>,
    /// Where `--dataset` writes.
    #[arg(long)]
    dataset_dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Point {
    /// The x value: relationships, levels, members, operands or resources.
    x: usize,
    /// What was asked and the answer it must give.
    case: String,
    allowed: bool,
    latency: Summary,
    loadavg: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (Some(n), Some(dir)) = (args.dataset, &args.dataset_dir) {
        return dataset::write(n, dir);
    }
    let uncached = Config {
        cache_capacity: 0,
        ..Config::default()
    };
    let mut report = json!({
        "loadavg_start": stats::load_average(),
        "cpus": std::thread::available_parallelism().map(|it| it.get()).unwrap_or(0),
        "budget_ms": args.budget_ms,
    });
    let budget = Duration::from_millis(args.budget_ms);

    // Data size: the scenario generator, a fresh engine per size.
    let mut by_size = Vec::new();
    for &target in &args.sizes {
        // A zero retention window, so that one collection after the import settles every
        // tuple, as a server restarted on the data holds it (docs/MEMORY.md).
        let engine = Arbiter::in_memory(Config {
            gc_retention: Duration::ZERO,
            ..uncached.clone()
        })?;
        engine.write_schema(scenario::SCHEMA)?;
        let relationships = scenario::relationships(target, 42, false);
        let n = relationships.len();
        let started = Instant::now();
        engine.import(&mut relationships.into_iter())?;
        engine.collect_garbage()?;
        let load_s = started.elapsed().as_secs_f64();
        let requests = scenario::checks(target, 7, args.checks);
        for request in requests.iter().take(1_000) {
            engine.check(request, Consistency::Full)?;
        }
        let mut samples = Vec::with_capacity(requests.len());
        let mut n_allowed = 0usize;
        let loop_started = Instant::now();
        for request in &requests {
            // As a server's request, just parsed: in the cache (`scenario::warm`).
            scenario::warm(request);
            let started = Instant::now();
            let decision = engine.check(black_box(request), Consistency::Full)?;
            samples.push(started.elapsed().as_nanos() as u64);
            n_allowed += usize::from(decision.allowed);
        }
        let wall = loop_started.elapsed().as_secs_f64();
        let latency = stats::summarize(&mut samples, Some(wall));
        eprintln!(
            "size {n}: p50 {} µs p99 {} µs",
            latency.p50_us, latency.p99_us
        );
        by_size.push(json!({
            "x": n,
            "load_s": stats::round2(load_s),
            "rss_mib": stats::rss_mib("self"),
            "index_bytes_per_relationship": stats::round2(
                engine.index_stats().approx_bytes as f64 / n.max(1) as f64
            ),
            "allowed_share": stats::round2(n_allowed as f64 / requests.len().max(1) as f64),
            "latency": latency,
            "loadavg": stats::load_average(),
        }));
    }
    report["size"] = json!(by_size);

    // Fixtures: one engine.
    let mut relationships = Vec::new();
    fixtures::depth(&args.depths, &mut relationships);
    fixtures::fan_out(&args.fan_outs, &mut relationships);
    fixtures::subgroup_fan_out(&args.subgroup_fan_outs, &mut relationships);
    fixtures::width(&mut relationships);
    fixtures::lookup(&args.lookup_sizes, &mut relationships);
    fixtures::fan_in(&args.fan_ins, &mut relationships);
    let engine = Arbiter::in_memory(uncached)?;
    engine.write_schema(&fixtures::schema())?;
    let n_fixture = relationships.len();
    let started = Instant::now();
    engine.import(&mut relationships.into_iter())?;
    report["fixture_relationships"] = json!(n_fixture);
    report["fixture_load_s"] = json!(stats::round2(started.elapsed().as_secs_f64()));
    eprintln!("fixtures: {n_fixture} relationships loaded");

    let mut depth = Vec::new();
    for &d in &args.depths {
        depth.push(check_point(
            &engine,
            d,
            &format!("doc:depth{d}"),
            "view",
            &format!("user:deep{d}"),
            true,
            budget,
        )?);
        depth.push(check_point(
            &engine,
            d,
            &format!("doc:depth{d}"),
            "view",
            "user:stranger",
            false,
            budget,
        )?);
    }
    report["depth"] = json!(depth);

    let mut fan_out = Vec::new();
    for &n in &args.fan_outs {
        let member = format!("user:f{n}m{}", n - 1);
        fan_out.push(check_point(
            &engine,
            n,
            &format!("doc:fan{n}"),
            "view",
            &member,
            true,
            budget,
        )?);
        fan_out.push(check_point(
            &engine,
            n,
            &format!("doc:fan{n}"),
            "view",
            "user:stranger",
            false,
            budget,
        )?);
    }
    for &n in &args.subgroup_fan_outs {
        let member = format!("user:sf{n}u{}", n - 1);
        let mut point = check_point(
            &engine,
            n,
            &format!("doc:subfan{n}"),
            "view",
            &member,
            true,
            budget,
        )?;
        point.case = format!("nested groups: {}", point.case);
        fan_out.push(point);
        let mut point = check_point(
            &engine,
            n,
            &format!("doc:subfan{n}"),
            "view",
            "user:stranger",
            false,
            budget,
        )?;
        point.case = format!("nested groups: {}", point.case);
        fan_out.push(point);
    }
    report["fan_out"] = json!(fan_out);

    let mut fan_in = Vec::new();
    for &n in &args.fan_ins {
        let hub = format!("user:hub{n}");
        fan_in.push(check_point(
            &engine,
            n,
            &format!("doc:in{n}_0"),
            "view",
            &hub,
            true,
            budget,
        )?);
        fan_in.push(check_point(
            &engine,
            n,
            "doc:depth5",
            "view",
            &hub,
            false,
            budget,
        )?);
    }
    report["fan_in"] = json!(fan_in);

    let mut width = Vec::new();
    for k in fixtures::WIDTHS {
        let doc = format!("doc:width{k}");
        width.push(check_point(
            &engine,
            k,
            &doc,
            &format!("all_{k}"),
            "user:all",
            true,
            budget,
        )?);
        width.push(check_point(
            &engine,
            k,
            &doc,
            &format!("all_{k}"),
            "user:most",
            false,
            budget,
        )?);
        width.push(check_point(
            &engine,
            k,
            &doc,
            &format!("but_{k}"),
            "user:none",
            true,
            budget,
        )?);
        width.push(check_point(
            &engine,
            k,
            &doc,
            &format!("but_{k}"),
            "user:all",
            false,
            budget,
        )?);
    }
    report["width"] = json!(width);

    let mut lookup = Vec::new();
    for &n in &args.lookup_sizes {
        let subject: SubjectRef = format!("user:looker{n}").parse()?;
        let mut samples = Vec::new();
        let started = Instant::now();
        while samples.len() < 5 || (started.elapsed() < budget && samples.len() < 200) {
            let call_started = Instant::now();
            let page = engine.lookup_resources(
                &LookupResourcesRequest::new("doc", "view", black_box(subject.clone())),
                Consistency::Full,
            )?;
            samples.push(call_started.elapsed().as_nanos() as u64);
            anyhow::ensure!(
                page.resources.len() == n,
                "lookup of {n} found {}",
                page.resources.len()
            );
        }
        let latency = stats::summarize(&mut samples, None);
        eprintln!("lookup {n}: p50 {} µs", latency.p50_us);
        lookup.push(Point {
            x: n,
            case: "lookup resources doc view".into(),
            allowed: true,
            latency,
            loadavg: stats::load_average(),
        });
    }
    report["lookup"] = json!(lookup);
    report["loadavg_end"] = json!(stats::load_average());
    report["rss_mib_end"] = json!(stats::rss_mib("self"));

    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    println!("{text}");
    Ok(())
}

/// Times one check repeatedly (at least 5 calls, then until the budget or 2,000 calls) and
/// fails if the answer is not `allowed`.
fn check_point(
    engine: &Arbiter,
    x: usize,
    resource: &str,
    permission: &str,
    subject: &str,
    allowed: bool,
    budget: Duration,
) -> anyhow::Result<Point> {
    let request = CheckRequest {
        resource: resource.parse()?,
        permission: permission.to_string(),
        subject: subject.parse()?,
        context: None,
    };
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < 5 || (started.elapsed() < budget && samples.len() < 2_000) {
        let call_started = Instant::now();
        let decision = engine.check(black_box(&request), Consistency::Full)?;
        samples.push(call_started.elapsed().as_nanos() as u64);
        anyhow::ensure!(
            decision.allowed == allowed,
            "{resource}#{permission}@{subject} answered {} instead of {allowed}",
            decision.allowed
        );
    }
    let latency = stats::summarize(&mut samples, None);
    let case = format!("{resource}#{permission}@{subject} → {allowed}");
    eprintln!("{case}: p50 {} µs", latency.p50_us);
    Ok(Point {
        x,
        case,
        allowed,
        latency,
        loadavg: stats::load_average(),
    })
}
