//! PostgreSQL store figures for docs/BENCHMARKS.md: the import rate of N relationships
//! through the engine (COPY, one revision per 10,000) and the bootstrap time of a new
//! engine over that database (snapshot read + index build), in a fresh PostgreSQL schema.
//!
//! ```sh
//! cargo run --release --example pg_bench -- \
//!     postgres://arbiter:arbiter@127.0.0.1:5432/arbiter_test 1000000
//! ```
//!
//! It prints the schema it used, so that servers can then be started on the same data
//! (`options=-csearch_path%3DSCHEMA` in the url).
//!
//! With `--dataset DIR` it imports `DIR/relationships.txt` over `DIR/schema.zed` instead
//! (the issue-14 dataset of `examples/scaling --dataset N --dataset-dir DIR`: distinct
//! tuples, read and parsed inside the timing as `arbiter import` would). The built-in
//! generator repeats tuples: of its N relationships only 0.7625·N are distinct (its group
//! memberships cycle every 50,000), so its import mostly takes the merge path. `--twice`
//! imports the same input a second time (every tuple live already: the merge path).

use std::time::Instant;

use arbiter::engine::{Arbiter, Config};
use arbiter::model::Relationship;
use arbiter::store::{PgConfig, PgStore};

const SCHEMA: &str = "
definition user {}
definition group {
    relation member: user | group#member
}
definition document {
    relation viewer: user | group#member
    relation owner: user
    permission view = viewer | owner
}
";

fn relationship(idx: usize) -> Relationship {
    let text = match idx % 4 {
        0 => format!("group:g{}#member@user:u{}", idx % 5_000, idx % 50_000),
        1 => format!("document:d{}#viewer@group:g{}#member", idx / 4, idx % 5_000),
        2 => format!("document:d{}#owner@user:u{}", idx / 4, idx % 50_000),
        _ => format!("document:d{}#viewer@user:u{}", idx / 4, (idx * 7) % 50_000),
    };
    text.parse().unwrap_or_else(|err| panic!("{text}: {err}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let usage = "usage: pg_bench POSTGRES_URL [N_RELATIONSHIPS | --dataset DIR] [--twice]";
    let url = args.next().ok_or(usage)?;
    let (mut n, mut dataset, mut twice) = (1_000_000, None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dataset" => dataset = Some(std::path::PathBuf::from(args.next().ok_or(usage)?)),
            "--twice" => twice = true,
            other => n = other.parse()?,
        }
    }
    let schema = format!("bench_{}", std::process::id());
    let mut config = PgConfig::new(&url)?;
    config.schema = Some(schema.clone());
    println!("schema {schema}");

    let engine = Arbiter::with_store(Box::new(PgStore::open(config.clone())?), Config::default())?;
    match &dataset {
        Some(dir) => engine.write_schema(&std::fs::read_to_string(dir.join("schema.zed"))?)?,
        None => engine.write_schema(SCHEMA)?,
    };
    for round in 0..if twice { 2 } else { 1 } {
        let started = Instant::now();
        let (revision, count) = match &dataset {
            Some(dir) => {
                let file =
                    std::io::BufReader::new(std::fs::File::open(dir.join("relationships.txt"))?);
                let mut count = 0;
                let mut lines = std::io::BufRead::lines(file)
                    .map_while(Result::ok)
                    .map(|line| {
                        count += 1;
                        line.parse::<Relationship>()
                            .unwrap_or_else(|err| panic!("{line}: {err}"))
                    });
                (engine.import(&mut lines)?, count)
            }
            None => (engine.import(&mut (0..n).map(relationship))?, n),
        };
        n = count;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "import {n} relationships (round {}): {seconds:.1} s, {:.0}/s, head {revision}",
            round + 1,
            n as f64 / seconds
        );
    }
    drop(engine);

    let started = Instant::now();
    let engine = Arbiter::with_store(Box::new(PgStore::open(config)?), Config::default())?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "bootstrap of a new engine at {n}: {seconds:.1} s (head {})",
        engine.head()
    );
    Ok(())
}
