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
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: pg_bench POSTGRES_URL [N_RELATIONSHIPS]")?;
    let n: usize = args.next().map_or(Ok(1_000_000), |it| it.parse())?;
    let schema = format!("bench_{}", std::process::id());
    let mut config = PgConfig::new(&url)?;
    config.schema = Some(schema.clone());
    println!("schema {schema}");

    let engine = Arbiter::with_store(Box::new(PgStore::open(config.clone())?), Config::default())?;
    engine.write_schema(SCHEMA)?;
    let started = Instant::now();
    let revision = engine.import(&mut (0..n).map(relationship))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "import {n} relationships: {seconds:.1} s, {:.0}/s, head {revision}",
        n as f64 / seconds
    );
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
