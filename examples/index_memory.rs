//! What the in-memory index costs per relationship (issue 14 item 1): loads a
//! relationship file (text form, one per line) into an in-memory store, then opens an
//! engine over it — building the index is the only thing that allocates between the two
//! readings — and prints how much the resident set grew per live relationship (a floor:
//! memory the allocator had freed and reused is not counted), the build time, and the
//! index's own count of its heap from its capacities, the figure BENCHMARKS reports.
//!
//! ```sh
//! cargo build --profile bench --example index_memory
//! target/release/examples/index_memory /tmp/i14/rels1m.txt
//! ```

use std::io::BufRead;
use std::time::Instant;

use anyhow::Context;
use arbiter::engine::{Arbiter, Config};
use arbiter::model::Relationship;
use arbiter::store::{MemoryStore, Store};

/// The resident set of this process, in bytes (Linux `/proc/self/statm`).
fn resident_bytes() -> anyhow::Result<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("read /proc/self/statm")?;
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|it| it.parse().ok())
        .context("parse /proc/self/statm")?;
    Ok(pages * 4096)
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: index_memory RELATIONSHIPS.txt")?;
    let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
    let mut relationships = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let relationship: Relationship = line
            .parse()
            .map_err(|err| anyhow::anyhow!("line {}: {err}", number + 1))?;
        relationships.push(relationship);
    }
    let count = relationships.len();
    let store = MemoryStore::new();
    // Cloned, and the originals kept until the end: nothing is freed before the index is
    // built (the change sets are kept too), so the index cannot reuse freed memory and
    // look smaller than it is.
    let change_sets = store.import(&mut relationships.iter().cloned())?;
    // The store's own scan, timed alone, so that the build time below can be told apart
    // from it.
    let scan_started = Instant::now();
    let mut scanned = 0usize;
    store.for_each_live(&mut |_| scanned += 1)?;
    let scan = scan_started.elapsed();
    let before = resident_bytes()?;
    let started = Instant::now();
    let config = Config {
        cache_capacity: 0,
        ..Config::default()
    };
    let engine = Arbiter::with_store(Box::new(store), config)?;
    let built = started.elapsed();
    let after = resident_bytes()?;
    let held = after.saturating_sub(before);
    let stats = engine.index_stats();
    println!(
        "{count} relationships: the resident set grew by {held} bytes ({:.1} per relationship; \
         a floor: memory the allocator reused is not counted), \
         opened in {:.0} ms of which the store's scan of {scanned} took {:.0} ms; its own \
         estimate {:.1} per relationship, {} symbols",
        held as f64 / count.max(1) as f64,
        built.as_secs_f64() * 1e3,
        scan.as_secs_f64() * 1e3,
        stats.approx_bytes as f64 / count.max(1) as f64,
        stats.symbols,
    );
    drop((relationships, change_sets));
    Ok(())
}
