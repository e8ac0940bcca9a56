//! Times the scan that builds the in-memory index at open (`Store::for_each_live`) on a
//! sled database, and what a scan of the same keys costs without building owned
//! relationships (issue 14 item 2: is the store's part of a restart the bottleneck?).
//!
//! ```text
//! cargo run --profile bench --example store_scan -- DIR          # for_each_live
//! cargo run --profile bench --example store_scan -- DIR --raw [TREE]  # sled alone, borrowed names
//! ```
//!
//! `--raw` opens the sled database directly and walks one tree (`by_resource` unless
//! named) twice: once touching only the bytes, once splitting each key into six `&str` names
//! without allocating (what a borrowed callback would cost).

use std::time::Instant;

use arbiter::store::{SledStore, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: store_scan DIR [--raw]")?;
    if args.next().as_deref() == Some("--raw") {
        let tree = args.next().unwrap_or_else(|| "by_resource".to_string());
        return raw(&dir, &tree);
    }
    let started = Instant::now();
    let store = SledStore::open_path(&dir)?;
    let opened = started.elapsed();
    let started = Instant::now();
    let mut count = 0_u64;
    let mut bytes = 0_usize;
    let head = store.for_each_live(&mut |rel| {
        count += 1;
        bytes += rel.resource.object_id.len();
    })?;
    let scanned = started.elapsed();
    println!(
        "open {opened:?}, for_each_live {scanned:?}: {count} live relationships at revision {head} ({:.0} ns each; {bytes} id bytes)",
        scanned.as_nanos() as f64 / count.max(1) as f64
    );
    Ok(())
}

fn raw(dir: &str, tree: &str) -> Result<(), Box<dyn std::error::Error>> {
    let db = sled::Config::new().path(dir).open()?;
    let tree = db.open_tree(tree)?;
    let started = Instant::now();
    let mut count = 0_u64;
    let mut total = 0_usize;
    for item in tree.iter() {
        let (key, value) = item?;
        count += 1;
        total += key.len() + value.len();
    }
    let walked = started.elapsed();
    let started = Instant::now();
    let mut names_len = 0_usize;
    for item in tree.iter() {
        let (key, _) = item?;
        let names = key.get(..key.len().saturating_sub(8)).unwrap_or_default();
        for name in names.split(|b| *b == 0) {
            names_len += std::str::from_utf8(name)?.len();
        }
    }
    let split = started.elapsed();
    println!(
        "raw walk {walked:?} ({count} keys, {total} bytes); walk + borrowed names {split:?} ({names_len} name bytes)"
    );
    Ok(())
}
