//! What sled 0.34 can write here, whatever arbiter does above it (issue 14 item 3): loads
//! a relationship file into a fresh sled database in three layouts and prints the time
//! of the sled writes and the bytes on disk, so the store's format is chosen on numbers.
//!
//! ```text
//! cargo run --profile bench --example sled_ceiling -- FILE DIR keys      # 2 keys per relationship, file order
//! cargo run --profile bench --example sled_ceiling -- FILE DIR sorted    # the same keys, sorted
//! cargo run --profile bench --example sled_ceiling -- FILE DIR packed    # sorted blocks of 64, one key each
//! cargo run --profile bench --example sled_ceiling -- FILE DIR rewrites  # packed, then 20,000 block rewrites
//! ```
//!
//! `rewrites` measures what a small write costs in the packed layout: after loading, it
//! rewrites 20,000 blocks picked at random (find the block holding a key with a backward
//! range scan, write it back changed), one sled insert each, as a one-tuple write would.
//!
//! Every layout writes the format-2 version keys of both indexes (`by_resource` and
//! `by_subject`, see `src/store/keys.rs`) with a live version value, in one tree with a
//! one-byte index prefix, by `apply_batch` of 1,000 sled keys (the cheapest atomic sled
//! write; no read before writing, no change log). `packed` front-codes 64 consecutive
//! entries of one index into one value (shared prefix length, suffix, value), keyed by
//! the first entry: the block layout `docs/STORAGE.md` proposes for format 3. `du -sb DIR`
//! after the run gives the bytes on disk.

use std::time::Instant;

use arbiter::model::{Relationship, Revision};
use arbiter::store::keys::{self, Index};

type Entry = (Vec<u8>, Vec<u8>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, dir, layout] = args.as_slice() else {
        return Err("usage: sled_ceiling FILE DIR keys|sorted|packed".into());
    };
    let text = std::fs::read_to_string(file)?;
    let mut rels = Vec::new();
    for line in text.lines().filter(|it| !it.trim().is_empty()) {
        rels.push(line.parse::<Relationship>()?);
    }
    let started = Instant::now();
    let mut entries: Vec<Entry> = Vec::with_capacity(rels.len() * 2);
    for rel in &rels {
        for (tag, index) in [(b'r', Index::Resource), (b's', Index::Subject)] {
            let mut key = vec![tag];
            key.extend(keys::version_key(index, rel, Revision(1)));
            entries.push((key, keys::encode_version_value(keys::LIVE, rel)));
        }
    }
    match layout.as_str() {
        "keys" => {}
        "sorted" => entries.sort_unstable(),
        "packed" | "rewrites" => {
            entries.sort_unstable();
            entries = pack(&entries)?;
        }
        other => return Err(format!("unknown layout `{other}`").into()),
    }
    let prepared = started.elapsed();
    let started = Instant::now();
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(256 << 20)
        .open()?;
    let tree = db.open_tree("t")?;
    for chunk in entries.chunks(1_000) {
        let mut batch = sled::Batch::default();
        for (key, value) in chunk {
            batch.insert(key.as_slice(), value.as_slice());
        }
        tree.apply_batch(batch)?;
    }
    db.flush()?;
    let written = started.elapsed();
    if layout == "rewrites" {
        rewrite_blocks(&tree, &rels)?;
    }
    let raw: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
    println!(
        "{layout}: {} relationships as {} sled keys ({raw} bytes): prepared in {prepared:?}, written and flushed in {written:?} ({:.0} relationships/s)",
        rels.len(),
        entries.len(),
        rels.len() as f64 / written.as_secs_f64()
    );
    Ok(())
}

/// Rewrites 20,000 blocks holding relationships picked at random (a fixed LCG, so runs
/// repeat), each with one sled insert, and prints the mean time per rewrite.
fn rewrite_blocks(
    tree: &sled::Tree,
    rels: &[Relationship],
) -> Result<(), Box<dyn std::error::Error>> {
    const N: usize = 20_000;
    let mut seed: u64 = 7;
    let started = Instant::now();
    for _ in 0..N {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let rel = &rels[(seed >> 33) as usize % rels.len().max(1)];
        let mut key = vec![b'r'];
        key.extend(keys::version_key(Index::Resource, rel, Revision(1)));
        let Some(found) = tree.range(..=key).next_back() else {
            continue;
        };
        let (block_key, block) = found?;
        let mut block = block.to_vec();
        if let Some(last) = block.last_mut() {
            *last ^= 1;
        }
        tree.insert(block_key, block)?;
    }
    tree.flush()?;
    let took = started.elapsed();
    println!(
        "{N} block rewrites and a flush in {took:?} ({:.1} us each)",
        took.as_micros() as f64 / N as f64
    );
    Ok(())
}

/// Sorted entries as blocks of 64 of one index: each entry is its shared-prefix length with
/// the previous key (u16), the suffix length (u16), the suffix, the value length (u16), the
/// value.
fn pack(sorted: &[Entry]) -> Result<Vec<Entry>, Box<dyn std::error::Error>> {
    let mut blocks = Vec::new();
    for tag in [b'r', b's'] {
        let of_index: Vec<&Entry> = sorted
            .iter()
            .filter(|it| it.0.first() == Some(&tag))
            .collect();
        for block in of_index.chunks(64) {
            let mut value = Vec::new();
            let mut prev: &[u8] = &[];
            for (key, version) in block {
                let shared = key.iter().zip(prev).take_while(|(a, b)| a == b).count();
                value.extend_from_slice(&u16::try_from(shared)?.to_be_bytes());
                value.extend_from_slice(&u16::try_from(key.len() - shared)?.to_be_bytes());
                value.extend_from_slice(&key[shared..]);
                value.extend_from_slice(&u16::try_from(version.len())?.to_be_bytes());
                value.extend_from_slice(version);
                prev = key;
            }
            if let Some(first) = block.first() {
                blocks.push((first.0.clone(), value));
            }
        }
    }
    Ok(blocks)
}
