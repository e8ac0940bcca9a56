//! Check, cached check, depth and lookup latency on the DESIGN §1 scenario data at 10k,
//! 100k and 1M relationships (in-memory store; the engine reads only its index).
//!
//! Prints a percentile table from its own timing loop (criterion reports medians only),
//! then runs the criterion benches. `ARBITER_BENCH_SIZES=10000,100000` picks the sizes.
//!
//! Run: `cargo bench --bench check`

#[path = "common/scenario.rs"]
mod scenario;

use std::hint::black_box;
use std::time::Instant;

use arbiter::engine::{Arbiter, CheckRequest, Consistency, LookupResourcesRequest};
use criterion::Criterion;

/// Times each request once per round; returns per-check nanoseconds and the allowed share.
fn time_checks(engine: &Arbiter, requests: &[CheckRequest], rounds: usize) -> (Vec<u64>, f64) {
    let mut samples = Vec::with_capacity(requests.len() * rounds);
    let mut allowed = 0usize;
    for _ in 0..rounds {
        for request in requests {
            let start = Instant::now();
            let decision = engine.check(black_box(request), Consistency::Full);
            samples.push(start.elapsed().as_nanos() as u64);
            if decision.expect("check").allowed {
                allowed += 1;
            }
        }
    }
    let share = allowed as f64 / (requests.len() * rounds) as f64;
    (samples, share)
}

/// p50 / p99 per `type#permission` of one timed round (samples in request order).
fn by_scenario(n: usize, requests: &[CheckRequest], samples: &[u64]) {
    let mut groups: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for (request, ns) in requests.iter().zip(samples) {
        let label = format!("{}#{}", request.resource.object_type, request.permission);
        groups.entry(label).or_default().push(*ns);
    }
    for (label, mut group) in groups {
        let [p50, _, p99, _] = scenario::percentiles(&mut group);
        println!(
            "| {n} | uncached, {label} | {} | | {} | | | |",
            fmt_us(p50),
            fmt_us(p99)
        );
    }
}

fn fmt_us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    println!("| relationships | mode | p50 µs | p90 µs | p99 µs | p99.9 µs | allowed | RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|");
    for target in scenario::sizes(&[10_000, 100_000, 1_000_000]) {
        let requests = scenario::checks(target, 7, 20_000);
        {
            let (engine, n) = scenario::engine(target, 0);
            let (samples, share) = time_checks(&engine, &requests, 1);
            let [p50, p90, p99, p999] = scenario::percentiles(&mut samples.clone());
            println!(
                "| {n} | uncached | {} | {} | {} | {} | {share:.2} | {:.0} |",
                fmt_us(p50),
                fmt_us(p90),
                fmt_us(p99),
                fmt_us(p999),
                scenario::rss_mib()
            );
            by_scenario(n, &requests, &samples);
            for d in 1..=scenario::MAX_CHAIN {
                let request = scenario::request(
                    &format!("model:chain{d}"),
                    "execute",
                    &format!("user:deep{d}"),
                );
                let (mut samples, share) =
                    time_checks(&engine, std::slice::from_ref(&request), 2_000);
                assert!(share == 1.0, "depth {d} must be allowed");
                let [p50, _, p99, _] = scenario::percentiles(&mut samples);
                println!(
                    "| {n} | uncached, group depth {d} | {} | | {} | | 1.00 | |",
                    fmt_us(p50),
                    fmt_us(p99)
                );
            }
            let looker: arbiter::model::SubjectRef = "user:looker".parse().expect("subject");
            let mut lookup_samples = Vec::new();
            for _ in 0..20 {
                let start = Instant::now();
                let page = engine
                    .lookup_resources(
                        &LookupResourcesRequest::new("model", "execute", looker.clone()),
                        Consistency::Full,
                    )
                    .expect("lookup");
                lookup_samples.push(start.elapsed().as_nanos() as u64);
                assert!(page.resources.len() >= scenario::BIG_LOOKUP);
            }
            let [p50, _, p99, _] = scenario::percentiles(&mut lookup_samples);
            println!(
                "| {n} | lookup resources → {} models | {} | | {} | | | |",
                scenario::BIG_LOOKUP,
                fmt_us(p50),
                fmt_us(p99)
            );
            let mut group = criterion.benchmark_group(format!("check_{target}"));
            let mut idx = 0;
            group.bench_function("uncached", |b| {
                b.iter(|| {
                    idx = (idx + 1) % requests.len();
                    engine.check(black_box(&requests[idx]), Consistency::Full)
                })
            });
            let deep = scenario::request(
                &format!("model:chain{}", scenario::MAX_CHAIN),
                "execute",
                &format!("user:deep{}", scenario::MAX_CHAIN),
            );
            group.bench_function("uncached_depth5", |b| {
                b.iter(|| engine.check(black_box(&deep), Consistency::Full))
            });
            group.sample_size(10);
            group.bench_function("lookup_10k", |b| {
                b.iter(|| {
                    engine.lookup_resources(
                        &LookupResourcesRequest::new("model", "execute", looker.clone()),
                        Consistency::Full,
                    )
                })
            });
            group.finish();
        }
        {
            let (engine, n) = scenario::engine(target, 1_000_000);
            // Warm the cache, then time hits.
            time_checks(&engine, &requests, 1);
            let (mut samples, share) = time_checks(&engine, &requests, 3);
            let [p50, p90, p99, p999] = scenario::percentiles(&mut samples);
            let stats = engine.cache_stats();
            println!(
                "| {n} | cached (hits {} / misses {}) | {} | {} | {} | {} | {share:.2} | {:.0} |",
                stats.hits,
                stats.misses,
                fmt_us(p50),
                fmt_us(p90),
                fmt_us(p99),
                fmt_us(p999),
                scenario::rss_mib()
            );
            let mut group = criterion.benchmark_group(format!("check_{target}"));
            let mut idx = 0;
            group.bench_function("cached", |b| {
                b.iter(|| {
                    idx = (idx + 1) % requests.len();
                    engine.check(black_box(&requests[idx]), Consistency::Full)
                })
            });
            group.finish();
        }
    }
    criterion.final_summary();
}
