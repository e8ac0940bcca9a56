//! Lookup pages at size (issue 14 item 4): lookup resources with 100,000 results among
//! about 1,000,000 relationships, paged 1,000 at a time. Measures, in-process:
//! - the first page of a new listing (no cached state for it);
//! - every page of one listing, first to last;
//! - one page resumed from a cursor whose server-side state was evicted (a re-walk);
//! - the unpaged answer (`limit = 0`), for reference;
//! - lookup subjects with as many results: first page and all pages.
//!
//! The data: `user:lookerJ` (J < `--listings`) are members of `group:big`, which views
//! `doc:rI` for I < `--results`; `user:hub` views `doc:hI` directly (the same count); the
//! `group:crowd` has `--results` members and views `doc:crowdJ` (one per listing); the
//! rest are filler documents viewed by other users, up to `--total` relationships.
//! Each listing uses its own looker, so no listing finds another's state.
//!
//! ```sh
//! cargo run --release --example lookup_pages -- --results 100000 --total 1000000
//! cargo run --release --example lookup_pages -- --results 100000 --total 1000000 --caveated
//! ```
//!
//! `--caveated` stores one caveated relationship more, which puts every lookup in the
//! three-valued mode (each resource judged by the three-valued check).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arbiter::engine::{
    Arbiter, Config, Consistency, LookupResourcesRequest, LookupSubjectsRequest,
};
use arbiter::model::{ObjectRef, Relationship, SubjectRef};
use clap::Parser;

const SCHEMA: &str = "\
definition user {}
definition group {
    relation member: user | group#member
}
definition doc {
    relation viewer: user | group#member
    permission view = viewer
}
";

#[derive(Debug, Parser)]
#[command(about = "measure the cost of lookup resources pages at size")]
struct Args {
    /// Resources each measured lookup returns.
    #[arg(long, default_value_t = 100_000)]
    results: usize,
    /// Relationships in the store (filler makes up the difference).
    #[arg(long, default_value_t = 1_000_000)]
    total: usize,
    /// Page size.
    #[arg(long, default_value_t = 1_000)]
    page: usize,
    /// Listings measured (each with its own subject).
    #[arg(long, default_value_t = 9)]
    listings: usize,
    /// Store one caveated relationship (on a filler document), which puts every lookup in
    /// the three-valued mode.
    #[arg(long)]
    caveated: bool,
}

/// [`SCHEMA`] with a caveat documents' viewers may carry (`--caveated`).
const CAVEATED_SCHEMA: &str = "\
caveat has_tier(tier int) {
  tier >= 2
}
definition user {}
definition group {
    relation member: user | group#member
}
definition doc {
    relation viewer: user | group#member | user with has_tier
    permission view = viewer
}
";

fn rel(text: &str) -> anyhow::Result<Relationship> {
    text.parse()
        .map_err(|err| anyhow::anyhow!("generated `{text}`: {err}"))
}

fn subject(text: &str) -> anyhow::Result<SubjectRef> {
    text.parse()
        .map_err(|err| anyhow::anyhow!("subject `{text}`: {err}"))
}

fn relationships(args: &Args) -> anyhow::Result<Vec<Relationship>> {
    let mut out = Vec::with_capacity(args.total);
    for idx in 0..args.results {
        out.push(rel(&format!("doc:r{idx}#viewer@group:big#member"))?);
        out.push(rel(&format!("doc:h{idx}#viewer@user:hub"))?);
    }
    for idx in 0..args.results {
        out.push(rel(&format!("group:crowd#member@user:s{idx}"))?);
    }
    for idx in 0..args.listings {
        out.push(rel(&format!("doc:crowd{idx}#viewer@group:crowd#member"))?);
    }
    // Lookers for the listings, plus a few spare ones for evicting.
    for idx in 0..args.listings + 64 {
        out.push(rel(&format!("group:big#member@user:looker{idx}"))?);
    }
    let mut idx = 0usize;
    while out.len() < args.total {
        out.push(rel(&format!("doc:f{idx}#viewer@user:u{}", idx % 50_000))?);
        idx += 1;
    }
    Ok(out)
}

/// Pages through one listing; the time of the first page and of all pages, and the ids.
fn listing(
    engine: &Arbiter,
    who: &SubjectRef,
    page: usize,
) -> anyhow::Result<(Duration, Duration, usize, Vec<Option<String>>)> {
    let started = Instant::now();
    let mut first = None;
    let mut cursor: Option<String> = None;
    let mut cursors = Vec::new();
    let mut count = 0;
    loop {
        let answer = engine.lookup_resources(
            &LookupResourcesRequest {
                limit: page,
                cursor: cursor.clone(),
                ..LookupResourcesRequest::new("doc", "view", who.clone())
            },
            Consistency::Full,
        )?;
        first.get_or_insert_with(|| started.elapsed());
        count += answer.resources.len();
        cursors.push(answer.cursor.clone());
        match answer.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let first = first.context("no page")?;
    Ok((first, started.elapsed(), count, cursors))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let engine = Arbiter::in_memory(Config {
        cache_capacity: 0,
        ..Config::default()
    })?;
    engine.write_schema(if args.caveated {
        CAVEATED_SCHEMA
    } else {
        SCHEMA
    })?;
    let mut data = relationships(&args)?;
    if args.caveated {
        data.push(rel("doc:caveated#viewer@user:someone[has_tier]")?);
    }
    let total = data.len();
    let started = Instant::now();
    engine.import(&mut data.into_iter())?;
    eprintln!(
        "{total} relationships loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    for (name, base) in [("through a group", "looker"), ("direct", "hub")] {
        let mut firsts = Vec::new();
        let mut alls = Vec::new();
        let mut last_cursors = Vec::new();
        for idx in 0..args.listings {
            let who = if base == "hub" {
                // One subject: a write between listings gives each a new revision.
                engine.import(&mut std::iter::once(rel(&format!(
                    "doc:tick{idx}#viewer@user:ticker"
                ))?))?;
                subject("user:hub")?
            } else {
                subject(&format!("user:looker{idx}"))?
            };
            let (first, all, count, cursors) = listing(&engine, &who, args.page)?;
            if count != args.results {
                bail!(
                    "{name}: listed {count} resources, expected {}",
                    args.results
                );
            }
            firsts.push(first);
            alls.push(all);
            last_cursors = cursors;
        }
        println!(
            "{name}: first page of {}: median {} ms, max {} ms; all {} pages: median {} ms, max {} ms",
            args.page,
            ms(median(&mut firsts)),
            ms(firsts.iter().max().copied().unwrap_or_default()),
            args.results.div_ceil(args.page),
            ms(median(&mut alls)),
            ms(alls.iter().max().copied().unwrap_or_default()),
        );

        // The last page of the last listing, after other listings evicted its state.
        let who = if base == "hub" {
            subject("user:hub")?
        } else {
            subject(&format!("user:looker{}", args.listings - 1))?
        };
        let before_last = last_cursors
            .iter()
            .rev()
            .flatten()
            .next()
            .cloned()
            .context("one page only")?;
        for idx in 0..64 {
            let other = subject(&format!("user:looker{}", args.listings + idx))?;
            engine.lookup_resources(
                &LookupResourcesRequest {
                    limit: 1,
                    ..LookupResourcesRequest::new("doc", "view", other.clone())
                },
                Consistency::Full,
            )?;
        }
        let started = Instant::now();
        let page = engine.lookup_resources(
            &LookupResourcesRequest {
                limit: args.page,
                cursor: Some(before_last),
                ..LookupResourcesRequest::new("doc", "view", who.clone())
            },
            Consistency::Full,
        )?;
        println!(
            "{name}: last page resumed after eviction: {} ms ({} ids)",
            ms(started.elapsed()),
            page.resources.len()
        );

        let mut whole = Vec::new();
        for round in 0..3 {
            // A new revision: nothing cached from an earlier answer applies.
            engine.import(&mut std::iter::once(rel(&format!(
                "doc:whole{round}{base}#viewer@user:ticker"
            ))?))?;
            let started = Instant::now();
            let page = engine.lookup_resources(
                &LookupResourcesRequest::new("doc", "view", who.clone()),
                Consistency::Full,
            )?;
            whole.push(started.elapsed());
            if page.resources.len() != args.results {
                bail!("{name}: unpaged answer has {} ids", page.resources.len());
            }
        }
        println!(
            "{name}: unpaged (limit 0): median {} ms",
            ms(median(&mut whole))
        );
    }
    subjects(&engine, &args)
}

/// Lookup subjects of `doc:crowdJ` (as many subjects as `--results`), one listing per J.
fn subjects(engine: &Arbiter, args: &Args) -> anyhow::Result<()> {
    let mut firsts = Vec::new();
    let mut alls = Vec::new();
    for idx in 0..args.listings {
        let resource: ObjectRef = format!("doc:crowd{idx}")
            .parse()
            .map_err(|err| anyhow::anyhow!("resource: {err}"))?;
        let started = Instant::now();
        let mut first = None;
        let mut cursor: Option<String> = None;
        let mut count = 0;
        loop {
            let answer = engine.lookup_subjects(
                &LookupSubjectsRequest {
                    limit: args.page,
                    cursor: cursor.clone(),
                    ..LookupSubjectsRequest::new(resource.clone(), "view", "user")
                },
                Consistency::Full,
            )?;
            first.get_or_insert_with(|| started.elapsed());
            count += answer.subjects.len();
            match answer.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if count != args.results {
            bail!("subjects: listed {count}, expected {}", args.results);
        }
        firsts.push(first.context("no page")?);
        alls.push(started.elapsed());
    }
    println!(
        "lookup subjects: first page of {}: median {} ms, max {} ms; all pages: median {} ms, max {} ms",
        args.page,
        ms(median(&mut firsts)),
        ms(firsts.iter().max().copied().unwrap_or_default()),
        ms(median(&mut alls)),
        ms(alls.iter().max().copied().unwrap_or_default()),
    );
    Ok(())
}
