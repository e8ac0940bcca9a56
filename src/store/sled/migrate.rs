//! Opening a database of an older format (1 or 2, see `keys`): one sequential pass packs
//! the one-key-per-version trees `by_resource` and `by_subject` into blocks, then
//! `meta/format` switches to 3, then the old trees are dropped.
//!
//! Crash safety: the block trees are invisible until the switch, so a crash before it
//! leaves the old format whole (the next open clears the half-written blocks and starts
//! over); a crash after it leaves only the old trees to drop, which every format-3 open
//! does ([`drop_old_trees`]).

use ::sled::{Batch, Db, Tree};

use super::{blocks, io};
use crate::store::StoreError;
use crate::store::keys;

/// Blocks written per sled batch during the migration.
const BLOCKS_PER_BATCH: usize = 256;

/// Migrates a database of format `from` (1 or 2) to blocks, as the module docs say.
pub(super) fn to_blocks(db: &Db, meta: &Tree, from: u32) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let mut n_entries = 0_usize;
    for (old, new) in [
        (keys::TREE_BY_RESOURCE, keys::TREE_RESOURCE_BLOCKS),
        (keys::TREE_BY_SUBJECT, keys::TREE_SUBJECT_BLOCKS),
    ] {
        let old = db.open_tree(old).map_err(io)?;
        let new = db.open_tree(new).map_err(io)?;
        new.clear().map_err(io)?;
        let mut entries: Vec<(::sled::IVec, ::sled::IVec)> = Vec::with_capacity(blocks::TARGET);
        let mut batch = Batch::default();
        let mut in_batch = 0;
        for item in old.iter() {
            entries.push(item.map_err(io)?);
            n_entries += 1;
            if entries.len() == blocks::TARGET {
                batch.insert(entries[0].0.clone(), keys::encode_block(&entries));
                entries.clear();
                in_batch += 1;
                if in_batch == BLOCKS_PER_BATCH {
                    new.apply_batch(std::mem::take(&mut batch)).map_err(io)?;
                    in_batch = 0;
                }
            }
        }
        if let Some((first, _)) = entries.first() {
            batch.insert(first.clone(), keys::encode_block(&entries));
        }
        new.apply_batch(batch).map_err(io)?;
    }
    db.flush().map_err(io)?;
    meta.insert(keys::META_FORMAT, &keys::encode_u32(keys::FORMAT_VERSION))
        .map_err(io)?;
    db.flush().map_err(io)?;
    drop_old_trees(db)?;
    tracing::info!(
        from,
        to = keys::FORMAT_VERSION,
        n_entries,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "migrated the store format"
    );
    Ok(())
}

/// Drops the format-1/2 index trees if they are still there.
pub(super) fn drop_old_trees(db: &Db) -> Result<(), StoreError> {
    let names = db.tree_names();
    for old in [keys::TREE_BY_RESOURCE, keys::TREE_BY_SUBJECT] {
        if names.iter().any(|name| name.as_ref() == old.as_bytes()) {
            db.drop_tree(old).map_err(io)?;
        }
    }
    Ok(())
}
