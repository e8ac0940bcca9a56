//! The in-process replay: the workload answered through the library API ([`Arbiter`]), one
//! call at a time on one thread, the way `bench.py` times SpiceDB's FFI check.

use std::time::Instant;

use anyhow::Context;
use arbiter::engine::{Arbiter, CheckRequest, Config, Consistency, LookupResourcesRequest};
use arbiter::model::{Relationship, SubjectRef};
use serde::Serialize;

use crate::stats::{self, Summary, round2};
use crate::workload::{Answer, LookupAnswer, Workload};

/// Which store the engine runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// `Arbiter::in_memory`: like SpiceDB's memdb, nothing persists.
    Memory,
    /// `Arbiter::temporary`: a sled database in a temporary directory, durable writes.
    Sled,
}

#[derive(Debug, Serialize)]
pub struct InprocReport {
    pub store: StoreKind,
    pub cache_capacity: usize,
    pub relationships: usize,
    pub parse_s: f64,
    pub load_s: f64,
    pub load_rels_per_s: f64,
    pub rss_mib_before: Option<f64>,
    pub rss_mib_after_load: Option<f64>,
    /// The best run (lowest p50) of the timed check loop.
    pub check: Summary,
    pub check_runs: Vec<Summary>,
    pub check_allowed: Summary,
    pub check_denied: Summary,
    /// The best run split by `resource type#permission`, as bench.py splits SpiceDB's.
    pub check_by_permission: std::collections::BTreeMap<String, Summary>,
    pub lookup: Summary,
    pub lookup_result_sizes: Vec<usize>,
    pub loadavg_before: Option<f64>,
    pub loadavg_after: Option<f64>,
    #[serde(skip)]
    pub answers: Vec<Answer>,
    #[serde(skip)]
    pub lookup_answers: Vec<LookupAnswer>,
}

pub fn run(
    workload: &Workload,
    store: StoreKind,
    cache_capacity: usize,
    repeat: usize,
) -> anyhow::Result<InprocReport> {
    let loadavg_before = stats::load_average();
    let rss_mib_before = stats::rss_mib("self");
    let started = Instant::now();
    let relationships = workload
        .relationships
        .iter()
        .map(|text| {
            text.parse::<Relationship>()
                .map_err(|err| anyhow::anyhow!("relationship `{text}`: {err}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let parse_s = started.elapsed().as_secs_f64();
    let n_relationships = relationships.len();

    let config = Config {
        cache_capacity,
        ..Config::default()
    };
    let engine = match store {
        StoreKind::Memory => Arbiter::in_memory(config),
        StoreKind::Sled => Arbiter::temporary(config),
    }
    .context("cannot open the engine")?;
    let started = Instant::now();
    engine
        .write_schema(&workload.schema)
        .context("the workload schema does not load")?;
    engine
        .import(&mut relationships.into_iter())
        .context("the workload relationships do not load")?;
    let load_s = started.elapsed().as_secs_f64();
    let rss_mib_after_load = stats::rss_mib("self");

    let requests: Vec<Result<CheckRequest, String>> = workload
        .checks
        .iter()
        .map(|spec| {
            Ok(CheckRequest {
                resource: spec.resource.parse().map_err(|err| format!("{err}"))?,
                permission: spec.permission.clone(),
                subject: spec.subject.parse().map_err(|err| format!("{err}"))?,
                context: None,
            })
        })
        .collect();
    let ask = |request: &Result<CheckRequest, String>| match request {
        Ok(request) => match engine.check(std::hint::black_box(request), Consistency::Full) {
            Ok(decision) if decision.allowed => Answer::Allowed,
            Ok(_) => Answer::Denied,
            Err(err) => Answer::Error(err.to_string()),
        },
        Err(message) => Answer::Error(message.clone()),
    };

    // Warm-up in another order than the timed loop (as bench.py does).
    for idx in (0..requests.len().min(200)).map(|it| (it * 7919) % requests.len()) {
        ask(&requests[idx]);
    }
    let mut runs = Vec::new();
    let mut best: Option<(Summary, Vec<u64>, Vec<Answer>)> = None;
    for _ in 0..repeat.max(1) {
        let mut samples = Vec::with_capacity(requests.len());
        let mut answers = Vec::with_capacity(requests.len());
        let loop_started = Instant::now();
        for request in &requests {
            let call_started = Instant::now();
            let answer = ask(request);
            samples.push(call_started.elapsed().as_nanos() as u64);
            answers.push(answer);
        }
        let wall = loop_started.elapsed().as_secs_f64();
        let summary = stats::summarize(&mut samples.clone(), Some(wall));
        runs.push(summary.clone());
        if best
            .as_ref()
            .is_none_or(|(it, _, _)| summary.p50_us < it.p50_us)
        {
            best = Some((summary, samples, answers));
        }
    }
    let (check, samples, answers) = best.unwrap_or_default();
    let split = |want: &Answer| {
        let mut picked: Vec<u64> = samples
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| *answer == want)
            .map(|(ns, _)| *ns)
            .collect();
        stats::summarize(&mut picked, None)
    };
    let check_allowed = split(&Answer::Allowed);
    let check_denied = split(&Answer::Denied);
    let mut by_permission: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for (spec, ns) in workload.checks.iter().zip(&samples) {
        let resource_type = spec.resource.split(':').next().unwrap_or_default();
        by_permission
            .entry(format!("{resource_type}#{}", spec.permission))
            .or_default()
            .push(*ns);
    }
    let check_by_permission = by_permission
        .into_iter()
        .map(|(key, mut samples)| (key, stats::summarize(&mut samples, None)))
        .collect();

    let mut lookup_samples = Vec::new();
    let mut lookup_answers = Vec::new();
    for spec in &workload.lookups {
        let started = Instant::now();
        let answer = spec
            .subject
            .parse::<SubjectRef>()
            .map_err(|err| err.to_string())
            .and_then(|subject| {
                engine
                    .lookup_resources(
                        &LookupResourcesRequest::new(
                            &spec.resource_type,
                            &spec.permission,
                            subject.clone(),
                        ),
                        Consistency::Full,
                    )
                    .map(|page| page.resources)
                    .map_err(|err| err.to_string())
            });
        lookup_samples.push(started.elapsed().as_nanos() as u64);
        // The engine lists in walk order; answers are compared sorted (outside the timing).
        let answer = answer.map(|mut ids| {
            ids.sort_unstable();
            ids
        });
        lookup_answers.push(answer);
    }
    let lookup_result_sizes = lookup_answers
        .iter()
        .filter_map(|it| it.as_ref().ok().map(Vec::len))
        .collect();

    Ok(InprocReport {
        store,
        cache_capacity,
        relationships: n_relationships,
        parse_s: round2(parse_s),
        load_s: (load_s * 1000.0).round() / 1000.0,
        load_rels_per_s: (n_relationships as f64 / load_s).round(),
        rss_mib_before,
        rss_mib_after_load,
        check,
        check_runs: runs,
        check_allowed,
        check_denied,
        check_by_permission,
        lookup: stats::summarize(&mut lookup_samples, None),
        lookup_result_sizes,
        loadavg_before,
        loadavg_after: stats::load_average(),
        answers,
        lookup_answers,
    })
}
