//! Replays a peer-harness workload (`../shared/peers/spicedb/bench.py`: the same schema,
//! relationships, checks and lookups SpiceDB answered) against arbiter, in-process through
//! the library API and over HTTP against `arbiter serve`, and reports latency, throughput,
//! load time and resident memory as JSON.
//!
//! With `--expect` (SpiceDB's answers: an `oracle.py` output or a `bench.py` results file)
//! every check and lookup answer is compared first and the agreement is printed; a
//! disagreement makes the run fail (exit 1), because timings of wrong answers count for
//! nothing.
//!
//! ```sh
//! cargo build --release --bin arbiter --example replay
//! target/release/examples/replay --workload /tmp/wl/workload-10000.json \
//!     --expect /tmp/wl/workload-10000.spicedb.json --out /tmp/wl/arbiter-10000.json
//! ```

mod client;
mod http;
mod inproc;
mod stats;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use crate::inproc::StoreKind;

#[derive(Debug, Parser)]
#[command(about = "replay a SpiceDB peer-harness workload against arbiter and time it")]
struct Args {
    /// Workload JSON (`bench.py --generate-only --out FILE`).
    #[arg(long)]
    workload: PathBuf,
    /// SpiceDB's answers to compare with (oracle output or bench.py results file).
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Where to write the JSON report (also printed on stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to write arbiter's answers in the oracle output format.
    #[arg(long)]
    answers: Option<PathBuf>,
    /// Skip the in-process replay.
    #[arg(long)]
    no_inproc: bool,
    /// Skip the HTTP replay.
    #[arg(long)]
    no_http: bool,
    /// Store of the in-process engine.
    #[arg(long, value_enum, default_value_t = StoreKind::Memory)]
    store: StoreKind,
    /// Check-cache capacity (0 = off, the fair setting: the embedded SpiceDB runs without
    /// caches and the workload's checks are nearly all distinct).
    #[arg(long, default_value_t = 0)]
    cache_capacity: usize,
    /// Timed passes over the checks; the pass with the lowest p50 is reported (bench.py's
    /// `--repeat` rule).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// The `arbiter` binary to serve with.
    #[arg(long, default_value = "target/release/arbiter")]
    server_bin: PathBuf,
    /// Concurrent-connection runs, comma separated.
    #[arg(long, default_value = "1,64", value_delimiter = ',')]
    connections: Vec<usize>,
    /// Seconds each concurrent run is measured (after one second of warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("replay: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the replays; `Ok(false)` when an answer disagrees with SpiceDB's.
fn run(args: &Args) -> anyhow::Result<bool> {
    let workload = workload::read_workload(&args.workload)?;
    let expected = args
        .expect
        .as_deref()
        .map(workload::read_expected)
        .transpose()?;
    eprintln!(
        "replay: {} relationships, {} checks, {} lookups (load average {:?})",
        workload.relationships.len(),
        workload.checks.len(),
        workload.lookups.len(),
        stats::load_average()
    );
    let mut report = json!({
        "workload": args.workload,
        "meta": workload.meta,
        "machine": {
            "cpus": std::thread::available_parallelism().map(|it| it.get()).unwrap_or(0),
        },
    });
    let mut all_agree = true;
    let mut answers_out = None;

    if !args.no_inproc {
        let inproc = inproc::run(&workload, args.store, args.cache_capacity, args.repeat)?;
        eprintln!(
            "in-process: load {:.2}s, check p50 {} µs p99 {} µs, {} checks/s",
            inproc.load_s,
            inproc.check.p50_us,
            inproc.check.p99_us,
            inproc.check.per_s.unwrap_or(0.0)
        );
        if let Some(expected) = &expected {
            let agreement =
                workload::compare(&workload, expected, &inproc.answers, &inproc.lookup_answers);
            eprintln!("{}", agreement.line("in-process"));
            for line in &agreement.examples {
                eprintln!("  {line}");
            }
            all_agree &= agreement.all_agree();
            report["inproc_agreement"] = serde_json::to_value(&agreement)?;
        }
        answers_out = Some(json!({
            "checks": inproc.answers.iter().map(workload::Answer::to_json).collect::<Vec<_>>(),
            "lookups": inproc.lookup_answers.iter().map(workload::lookup_to_json).collect::<Vec<_>>(),
        }));
        report["inproc"] = serde_json::to_value(&inproc)?;
    }

    if !args.no_http {
        let options = http::HttpOptions {
            server_bin: &args.server_bin,
            cache_capacity: args.cache_capacity,
            connections: &args.connections,
            duration: Duration::from_secs_f64(args.duration),
            repeat: args.repeat,
        };
        let http = http::run(&workload, &options)?;
        eprintln!(
            "http: load {:.2}s, 1 connection p50 {} µs p99 {} µs; {}",
            http.load_s,
            http.check_sequential.p50_us,
            http.check_sequential.p99_us,
            http.check_concurrent
                .iter()
                .map(|run| format!("{} conn {} checks/s", run.connections, run.checks_per_s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(expected) = &expected {
            let agreement =
                workload::compare(&workload, expected, &http.answers, &http.lookup_answers);
            eprintln!("{}", agreement.line("http"));
            for line in &agreement.examples {
                eprintln!("  {line}");
            }
            all_agree &= agreement.all_agree();
            report["http_agreement"] = serde_json::to_value(&agreement)?;
        }
        report["http"] = serde_json::to_value(&http)?;
    }

    report["loadavg_end"] = json!(stats::load_average());
    report["all_agree"] = json!(expected.is_some().then_some(all_agree));
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &text)?;
    }
    if let (Some(path), Some(answers)) = (&args.answers, &answers_out) {
        std::fs::write(path, serde_json::to_string(answers)?)?;
    }
    println!("{text}");
    Ok(all_agree)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness's hand-checked example (union, intersection, exclusion, arrows,
    /// wildcards, nested groups, errors) replayed in-process agrees with its answers.
    #[test]
    fn the_harness_basic_example_agrees_in_process() {
        let examples =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/spicedb/examples");
        let workload = workload::read_workload(&examples.join("basic.json")).expect("workload");
        let expected =
            workload::read_expected(&examples.join("basic.expected.json")).expect("answers");
        let report = inproc::run(&workload, StoreKind::Memory, 0, 1).expect("replay");
        let agreement = workload::compare(
            &workload,
            &expected,
            &report.answers,
            &report.lookup_answers,
        );
        assert!(agreement.all_agree(), "{agreement:?}");
        assert_eq!(agreement.checks_compared, workload.checks.len());
        assert_eq!(report.check.n, workload.checks.len());
    }
}
