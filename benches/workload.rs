//! Criterion over a peer-harness workload (`../shared/peers/spicedb/bench.py` JSON: the
//! schema, relationships, checks and lookups SpiceDB answered): loads it into an in-memory
//! engine with the check cache off, compares every answer with SpiceDB's when answers are
//! given (and refuses to time wrong answers), then benches the checks and the lookups
//! round-robin.
//!
//! `ARBITER_WORKLOAD=FILE` picks the workload (default: the harness's `examples/basic.json`)
//! and `ARBITER_EXPECT=FILE` SpiceDB's answers (default: `basic.expected.json` with the
//! default workload). Run: `cargo bench --bench workload`; for the 10k comparison workload
//! `ARBITER_WORKLOAD=/tmp/arbiter-compare/workload-10000-s42.json
//! ARBITER_EXPECT=/tmp/arbiter-compare/spicedb-10000-s42.json cargo bench --bench workload`.

#[path = "../examples/replay/workload.rs"]
#[expect(dead_code, reason = "shared with examples/replay, which uses the rest")]
mod workload;

use std::hint::black_box;
use std::path::PathBuf;

use arbiter::engine::{Arbiter, CheckRequest, Config, Consistency, LookupResourcesRequest};
use arbiter::model::{Relationship, SubjectRef};
use criterion::Criterion;

use crate::workload::{Answer, LookupAnswer};

fn main() {
    let peer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/spicedb/examples");
    let (path, expect) = match std::env::var_os("ARBITER_WORKLOAD") {
        Some(path) => (
            PathBuf::from(path),
            std::env::var_os("ARBITER_EXPECT").map(PathBuf::from),
        ),
        None => (
            peer.join("basic.json"),
            Some(peer.join("basic.expected.json")),
        ),
    };
    let workload = workload::read_workload(&path).expect("workload");
    let engine = Arbiter::in_memory(Config {
        cache_capacity: 0,
        ..Config::default()
    })
    .expect("engine");
    engine.write_schema(&workload.schema).expect("schema");
    let relationships: Vec<Relationship> = workload
        .relationships
        .iter()
        .map(|text| text.parse().expect("relationship"))
        .collect();
    engine
        .import(&mut relationships.into_iter())
        .expect("import");

    let requests: Vec<Option<CheckRequest>> = workload
        .checks
        .iter()
        .map(|spec| {
            Some(CheckRequest {
                resource: spec.resource.parse().ok()?,
                permission: spec.permission.clone(),
                subject: spec.subject.parse().ok()?,
                context: None,
            })
        })
        .collect();
    let lookups: Vec<Option<(String, String, SubjectRef)>> = workload
        .lookups
        .iter()
        .map(|spec| {
            let subject = spec.subject.parse().ok()?;
            Some((spec.resource_type.clone(), spec.permission.clone(), subject))
        })
        .collect();

    if let Some(expect) = expect {
        let expected = workload::read_expected(&expect).expect("answers");
        let answers: Vec<Answer> = requests
            .iter()
            .map(|request| match request {
                None => Answer::Error("unparsable".into()),
                Some(request) => match engine.check(request, Consistency::Full) {
                    Ok(decision) if decision.allowed => Answer::Allowed,
                    Ok(_) => Answer::Denied,
                    Err(err) => Answer::Error(err.to_string()),
                },
            })
            .collect();
        let lookup_answers: Vec<LookupAnswer> = lookups
            .iter()
            .map(|lookup| match lookup {
                None => Err("unparsable".into()),
                Some((resource_type, permission, subject)) => engine
                    .lookup_resources(
                        &LookupResourcesRequest::new(resource_type, permission, subject.clone()),
                        Consistency::Full,
                    )
                    // Walk order: compared sorted.
                    .map(|mut page| {
                        page.resources.sort_unstable();
                        page.resources
                    })
                    .map_err(|err| err.to_string()),
            })
            .collect();
        let agreement = workload::compare(&workload, &expected, &answers, &lookup_answers);
        println!("{}", agreement.line("workload"));
        assert!(
            agreement.all_agree(),
            "answers disagree with SpiceDB's: {:?}",
            agreement.examples
        );
    }

    let requests: Vec<CheckRequest> = requests.into_iter().flatten().collect();
    let lookups: Vec<(String, String, SubjectRef)> = lookups.into_iter().flatten().collect();
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("workload");
    if !requests.is_empty() {
        let mut idx = 0;
        group.bench_function("check_round_robin", |b| {
            b.iter(|| {
                idx = (idx + 1) % requests.len();
                engine.check(black_box(&requests[idx]), Consistency::Full)
            })
        });
    }
    if !lookups.is_empty() {
        let mut idx = 0;
        group.bench_function("lookup_resources_round_robin", |b| {
            b.iter(|| {
                idx = (idx + 1) % lookups.len();
                let (resource_type, permission, subject) = &lookups[idx];
                engine.lookup_resources(
                    &LookupResourcesRequest::new(
                        resource_type,
                        permission,
                        black_box(subject).clone(),
                    ),
                    Consistency::Full,
                )
            })
        });
    }
    group.finish();
    criterion.final_summary();
}
