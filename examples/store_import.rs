//! Times the sled store's own bulk import and small writes (issue 14 item 3), without the
//! engine: loads a relationship file into a fresh database through `Store::import`, in
//! calls of CHUNK relationships (default: the whole file in one call), closes it, prints
//! the rate, the bytes on disk per relationship and the peak RSS; then, with `--writes N`,
//! reopens it and times N one-tuple `Store::write`s (new tuples), durable and not.
//!
//! ```text
//! cargo run --profile bench --example store_import -- FILE DIR [CHUNK] [--writes N]
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use arbiter::model::Relationship;
use arbiter::store::{SledConfig, SledStore, Store, Update, UpdateOp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `RUST_LOG=arbiter::store=debug` prints the import's phases.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, dir) = match args.as_slice() {
        [file, dir, ..] => (file, dir),
        _ => return Err("usage: store_import FILE DIR [CHUNK] [--writes N]".into()),
    };
    let mut chunk = usize::MAX;
    let mut writes = 0;
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--writes" => writes = rest.next().ok_or("--writes N")?.parse()?,
            n => chunk = n.parse()?,
        }
    }
    let started = Instant::now();
    let text = std::fs::read_to_string(file)?;
    let mut rels = Vec::new();
    for line in text.lines().filter(|it| !it.trim().is_empty()) {
        rels.push(line.parse::<Relationship>()?);
    }
    drop(text);
    let n = rels.len();
    println!("parsed {n} relationships in {:?}", started.elapsed());
    let store = SledStore::open_path(dir)?;
    let started = Instant::now();
    let mut revisions = 0;
    let mut input = rels.into_iter();
    loop {
        let mut part = (&mut input).take(chunk).peekable();
        if part.peek().is_none() {
            break;
        }
        revisions += store.import(&mut part)?.len();
    }
    let imported = started.elapsed();
    drop(store);
    let bytes = dir_bytes(Path::new(dir))?;
    println!(
        "import {imported:?}: {:.0}/s, {revisions} revisions, {:.0} bytes on disk per relationship, peak RSS {} MiB",
        n as f64 / imported.as_secs_f64(),
        bytes as f64 / n.max(1) as f64,
        peak_rss_kib() / 1024,
    );
    if writes > 0 {
        for durable in [false, true] {
            let config = SledConfig {
                durable,
                gc_interval: None,
                ..SledConfig::new(dir)
            };
            let store = SledStore::open(&config)?;
            let mut times = Vec::with_capacity(writes);
            for i in 0..writes {
                let rel: Relationship =
                    format!("document:w{durable}{i}#viewer@user:x{}", i * 7919 % 100_003)
                        .parse()?;
                let update = Update {
                    op: UpdateOp::Touch,
                    relationship: rel,
                };
                let started = Instant::now();
                store
                    .write(&[update], &[])?
                    .map_err(|it| format!("{it:?}"))?;
                times.push(started.elapsed());
            }
            times.sort();
            let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
            println!(
                "{writes} one-tuple writes, durable {durable}: p50 {:?}, p99 {:?}, mean {:?}",
                at(0.5),
                at(0.99),
                times.iter().sum::<Duration>() / writes as u32
            );
        }
        println!(
            "after the writes: {:.0} bytes on disk per relationship",
            dir_bytes(Path::new(dir))? as f64 / n.max(1) as f64
        );
    }
    Ok(())
}

/// Bytes of every file under `dir` (what `du -sb` counts, less the directories).
fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|it| it.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
