//! Checks once caveats are in the data, on the DESIGN §1 scenario at `ARBITER_BENCH_SIZES`
//! relationships (default 1M), in-memory store, cache off:
//! - plain checks before any caveated tuple exists (the two-valued walk);
//! - the same plain checks after ONE caveated tuple was written (every check then takes the
//!   three-valued walk: what a store with some caveats costs its plain questions);
//! - a check through one caveated tuple (an API key's IP allow-list), with the request's ip
//!   inside the range, outside it, and missing (conditional).
//!
//! Prints a percentile table from its own timing loop.
//!
//! Run: `cargo bench --bench caveat_check`

#[path = "common/scenario.rs"]
mod scenario;

use std::hint::black_box;
use std::time::Instant;

use arbiter::engine::{Arbiter, CheckRequest, Config, Consistency, Context, Permissionship};
use arbiter::store::{Update, UpdateOp};

/// The scenario schema plus a gateway whose keys are limited to an IP range.
fn schema() -> String {
    format!(
        "{}\ncaveat ip_allowlist(user_ip ipaddress, cidr string) {{ user_ip.in_cidr(cidr) }}\n\
         definition gateway {{\n    relation key: apikey with ip_allowlist\n    permission call = key\n}}\n",
        scenario::SCHEMA
    )
}

fn time(
    engine: &Arbiter,
    requests: &[CheckRequest],
    context: Option<&Context>,
    rounds: usize,
) -> (Vec<u64>, Permissionship) {
    let requests: Vec<CheckRequest> = requests
        .iter()
        .map(|it| CheckRequest {
            context: context.cloned(),
            ..it.clone()
        })
        .collect();
    let mut samples = Vec::with_capacity(requests.len() * rounds);
    let mut last = Permissionship::NoPermission;
    for _ in 0..rounds {
        for request in &requests {
            let start = Instant::now();
            let decision = engine.check(black_box(request), Consistency::Full);
            samples.push(start.elapsed().as_nanos() as u64);
            last = decision.expect("check").permissionship;
        }
    }
    (samples, last)
}

fn row(n: usize, mode: &str, samples: &mut [u64], extra: &str) {
    let [p50, p90, p99, p999] = scenario::percentiles(samples);
    let us = |ns: u64| format!("{:.2}", ns as f64 / 1000.0);
    println!(
        "| {n} | {mode} | {} | {} | {} | {} | {extra} |",
        us(p50),
        us(p90),
        us(p99),
        us(p999)
    );
}

fn context(ip: &str) -> Context {
    let mut context = Context::new();
    context.insert(
        "user_ip".to_string(),
        serde_json::Value::String(ip.to_string()),
    );
    context
}

fn main() {
    println!("| relationships | mode | p50 µs | p90 µs | p99 µs | p99.9 µs | answer |");
    println!("|---|---|---|---|---|---|---|");
    for target in scenario::sizes(&[1_000_000]) {
        let config = Config {
            cache_capacity: 0,
            ..Config::default()
        };
        let engine = Arbiter::in_memory(config).expect("open engine");
        engine.write_schema(&schema()).expect("schema");
        let rels = scenario::relationships(target, 42, true);
        let n = rels.len();
        engine.import(&mut rels.into_iter()).expect("import");
        let requests = scenario::checks(target, 7, 20_000);

        let (mut samples, _) = time(&engine, &requests, None, 1);
        row(n, "plain checks, no caveated tuple", &mut samples, "");

        let update = Update {
            op: UpdateOp::Touch,
            relationship: r#"gateway:g1#key@apikey:k1[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#
                .parse()
                .expect("caveated relationship"),
        };
        engine
            .write(&[update], &[])
            .expect("write")
            .expect("no precondition");
        let (mut samples, _) = time(&engine, &requests, None, 1);
        row(
            n + 1,
            "plain checks, one caveated tuple stored",
            &mut samples,
            "",
        );

        let gateway = [scenario::request("gateway:g1", "call", "apikey:k1")];
        for (mode, ip) in [
            ("caveated check, ip inside", Some("10.1.2.3")),
            ("caveated check, ip outside", Some("192.168.1.1")),
            ("caveated check, no ip", None),
        ] {
            let context = ip.map(context);
            let (mut samples, answer) = time(&engine, &gateway, context.as_ref(), 20_000);
            row(n + 1, mode, &mut samples, &format!("{answer:?}"));
        }
    }
}
