//! The engine's in-memory read path (DESIGN §4): forward read of one (resource, relation)
//! and reverse read of one (subject, resource type, relation), at 10k, 100k and 1M
//! relationships, through `Arbiter::read_subjects` / `Arbiter::read_resources`.
//!
//! Prints p50/p99 from its own loop and the resident memory after loading, then runs the
//! criterion benches. `ARBITER_BENCH_SIZES` picks the sizes. Run: `cargo bench --bench read_path`

#[path = "common/scenario.rs"]
mod scenario;

use std::hint::black_box;
use std::time::Instant;

use arbiter::engine::Consistency;
use arbiter::model::{ObjectRef, SubjectRef};
use criterion::Criterion;

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    println!(
        "| relationships | read | p50 µs | p99 µs | RSS MiB after load (index + memory store) | index heap MiB (estimate) |"
    );
    println!("|---|---|---|---|---|---|");
    for target in scenario::sizes(&[10_000, 100_000, 1_000_000]) {
        let before = scenario::rss_mib();
        let (engine, n) = scenario::engine(target, 0);
        let rss = scenario::rss_mib() - before;
        let index_mib = engine.index_stats().approx_bytes as f64 / (1024.0 * 1024.0);
        let mut rng = scenario::Rng::new(3);
        let n_orgs = (target / 520).max(1);
        let forward: Vec<ObjectRef> = (0..10_000)
            .map(|_| {
                format!("project:o{}p{}", rng.below(n_orgs), rng.below(20))
                    .parse()
                    .expect("object")
            })
            .collect();
        let reverse: Vec<SubjectRef> = (0..10_000)
            .map(|_| {
                format!("group:o{}t{}#member", rng.below(n_orgs), rng.below(10))
                    .parse()
                    .expect("subject")
            })
            .collect();
        let mut forward_ns = Vec::new();
        for resource in &forward {
            let start = Instant::now();
            let res = engine.read_subjects(black_box(resource), "member", Consistency::Full);
            forward_ns.push(start.elapsed().as_nanos() as u64);
            assert!(!res.expect("read").0.is_empty());
        }
        let mut reverse_ns = Vec::new();
        for subject in &reverse {
            let start = Instant::now();
            let res =
                engine.read_resources(black_box(subject), "project", "member", Consistency::Full);
            reverse_ns.push(start.elapsed().as_nanos() as u64);
            black_box(res.expect("read"));
        }
        let [f50, _, f99, _] = scenario::percentiles(&mut forward_ns);
        let [r50, _, r99, _] = scenario::percentiles(&mut reverse_ns);
        println!(
            "| {n} | forward project#member | {:.2} | {:.2} | {rss:.0} | {index_mib:.0} |",
            f50 as f64 / 1000.0,
            f99 as f64 / 1000.0
        );
        println!(
            "| {n} | reverse group#member → project#member | {:.2} | {:.2} | | |",
            r50 as f64 / 1000.0,
            r99 as f64 / 1000.0
        );
        let mut group = criterion.benchmark_group(format!("read_path_{target}"));
        let mut idx = 0;
        group.bench_function("forward", |b| {
            b.iter(|| {
                idx = (idx + 1) % forward.len();
                engine.read_subjects(black_box(&forward[idx]), "member", Consistency::Full)
            })
        });
        group.bench_function("reverse", |b| {
            b.iter(|| {
                idx = (idx + 1) % reverse.len();
                engine.read_resources(
                    black_box(&reverse[idx]),
                    "project",
                    "member",
                    Consistency::Full,
                )
            })
        });
        group.finish();
    }
    wide_group();
    criterion.final_summary();
}

/// A check against a group of a million direct members (plus a nested group): one hash
/// probe for a member, no per-member work and no recursion.
fn wide_group() {
    use arbiter::engine::{Arbiter, Config};
    use arbiter::model::Relationship;
    let engine = Arbiter::in_memory(Config {
        cache_capacity: 0,
        ..Config::default()
    })
    .expect("engine");
    engine.write_schema(scenario::SCHEMA).expect("schema");
    let members = (0..1_000_000).map(|i| {
        format!("group:wide#member@user:w{i}")
            .parse::<Relationship>()
            .expect("relationship")
    });
    let extra = [
        "group:wide#member@group:inner#member",
        "group:inner#member@user:nested",
        "model:wide#guest@group:wide#member",
    ]
    .map(|text| text.parse::<Relationship>().expect("relationship"));
    engine.import(&mut members.chain(extra)).expect("import");
    for subject in ["user:w999999", "user:nested", "user:stranger"] {
        let request = scenario::request("model:wide", "execute", subject);
        let mut samples = Vec::new();
        let mut allowed = false;
        for _ in 0..2_000 {
            let start = Instant::now();
            allowed = engine
                .check(&request, Consistency::Full)
                .expect("check")
                .allowed;
            samples.push(start.elapsed().as_nanos() as u64);
        }
        let [p50, _, p99, _] = scenario::percentiles(&mut samples);
        println!(
            "| 1000003 | check, group of 1M members, {subject} (allowed: {allowed}) | {:.2} | {:.2} | | |",
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0
        );
    }
}
