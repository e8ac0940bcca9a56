//! Instruction counts of in-process checks, for callgrind: builds the `benches/check.rs`
//! scenario engine (cache off), then answers the same seeded checks, each in one call of
//! `run_checks`, the only function callgrind is told to count.
//!
//! Each request is read once just before it is asked ([`scenario::warm`]), outside what is
//! counted or timed: a server asks about a request it has just parsed, whose strings are
//! in the cache, while these were built before a possibly much larger index and would
//! otherwise be read cold at a million relationships, charging the check for misses a
//! server does not take (docs/BENCHMARKS.md, "Check p50 at 1M, stop 32").
//!
//! Run (docs/BENCHMARKS.md, "Explain: what a check without it pays"):
//! `cargo build --release --example check_cost` then
//! `valgrind --tool=callgrind --toggle-collect='*run_checks*' \
//!   target/release/examples/check_cost 10000 20000 [settled]`; the total `Ir` divided by the
//! number of checks is the instructions per check. `settled` measures the index as a
//! restarted server holds it (every tuple settled) instead of right after an import.
//!
//! A fourth argument `ROUNDS` then times every check of that many more rounds and prints
//! each round's p50 and p90 (`check_cost 1000000 20000 settled 9`): on this noisy machine the
//! lowest round p50 of one process, alternated with another build's, compares two
//! builds more steadily than one run each of `examples/scaling`.

#[path = "../benches/common/scenario.rs"]
mod scenario;

use std::hint::black_box;

use arbiter::engine::{Arbiter, CheckRequest, Consistency};

/// Answers one request; the only code callgrind counts.
#[inline(never)]
fn run_checks(engine: &Arbiter, request: &CheckRequest) -> bool {
    engine
        .check(black_box(request), Consistency::Full)
        .expect("check")
        .allowed
}

/// Answers every request once, each read just before (not counted); how many are allowed.
fn answer_all(engine: &Arbiter, requests: &[CheckRequest]) -> usize {
    requests
        .iter()
        .filter(|request| {
            scenario::warm(request);
            run_checks(engine, request)
        })
        .count()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    // `settled`: one collection with a zero retention window after the import, so every
    // tuple is settled as on a server restarted on the data (docs/MEMORY.md); otherwise
    // every tuple is a recent version, as right after the import.
    let settled = args.next().as_deref() == Some("settled");
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let requests = scenario::checks(size, 7, n);
    let (engine, relationships) = if settled {
        let engine = Arbiter::in_memory(arbiter::engine::Config {
            cache_capacity: 0,
            gc_retention: std::time::Duration::ZERO,
            ..arbiter::engine::Config::default()
        })
        .expect("open engine");
        engine.write_schema(scenario::SCHEMA).expect("schema");
        let rels = scenario::relationships(size, 42, true);
        let n = rels.len();
        engine.import(&mut rels.into_iter()).expect("import");
        engine.collect_garbage().expect("collect");
        (engine, n)
    } else {
        scenario::engine(size, 0)
    };
    let started = std::time::Instant::now();
    let allowed = answer_all(&engine, &requests);
    // Wall time, for orientation only: it moves with the machine's load.
    let ns = started.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("{relationships} relationships, {n} checks, {allowed} allowed, {ns:.0} ns/check");
    let mut p50s = Vec::new();
    for round in 0..rounds {
        let mut samples: Vec<u64> = requests
            .iter()
            .map(|request| {
                scenario::warm(request);
                let started = std::time::Instant::now();
                black_box(
                    engine
                        .check(black_box(request), Consistency::Full)
                        .expect("check"),
                );
                started.elapsed().as_nanos() as u64
            })
            .collect();
        let [p50, p90, ..] = scenario::percentiles(&mut samples);
        println!("round {round}: p50 {p50} ns, p90 {p90} ns");
        p50s.push(p50);
    }
    if let Some(best) = p50s.iter().min() {
        println!("lowest round p50: {best} ns");
    }
}
