//! What the collector (`gc.rs`) may skip: two durable marks in `meta` that say when a walk
//! of the whole resource index cannot find anything, so that a store that never wrote an
//! expiring relationship nor ended a version reads none of its blocks each minute (and
//! does not fill sled's page cache with them).
//!
//! - `may_expire` (`keys::META_MAY_EXPIRE`): set in the same commit as any version with
//!   an expiration that a write, sync or import stores (and before a rollback at open
//!   makes versions live again); cleared by an expired sweep that walked everything,
//!   found no live version with an expiration left, and saw no expiring write committed
//!   meanwhile ([`Marks::expiring_writes`], compared under the writer mutex).
//! - `ended_since` (`keys::META_ENDED_SINCE`): lowered in the same commit as (or a commit
//!   before) any version a write, delete, sync or import ends; a version-GC pass at
//!   horizon `H` walks only when it is at most `H`, and afterwards raises it to the
//!   oldest ended revision it saw above `H` (or to the first revision a write may have
//!   ended meanwhile, [`Marks::newest_ended`]).
//!
//! Crash safety: a mark is set before or with what it covers and cleared only after a
//! walk proved it needless, so a crash can make a later pass walk needlessly, never skip
//! a pass it needed. A database without the keys (older than the marks) walks once.
//!
//! The cached values are changed under the writer mutex only (or at open, alone), after
//! the commit that wrote them, so a write adds a mark's key only when its value changes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ::sled::Tree;

use super::{Op, TreeSlot, corrupt, io};
use crate::model::Revision;
use crate::store::StoreError;
use crate::store::keys;

/// The cached marks, the counters that validate clearing them, and walk statistics.
pub(super) struct Marks {
    /// `meta/may_expire` as last committed.
    may_expire: AtomicBool,
    /// Bumped, under the writer mutex, before every commit that may store an expiring
    /// live version.
    expiring_writes: AtomicU64,
    /// `meta/ended_since` as last committed.
    ended_since: AtomicU64,
    /// The newest revision at which a write ended (or is ending) a version since open;
    /// raised under the writer mutex before the commit.
    newest_ended: AtomicU64,
    /// Walks of the whole resource index by the expired sweep since open.
    expired_walks: AtomicU64,
    /// Walks of the whole resource index by version GC since open.
    garbage_walks: AtomicU64,
}

/// What one write changes in the marks: its ops carry the new values, and
/// [`Marks::committed`] caches them once its commit landed.
#[derive(Clone, Copy, Default)]
#[must_use]
pub(super) struct Note {
    set_may_expire: bool,
    ended_since: Option<u64>,
}

impl Marks {
    /// The marks a new database starts with: nothing may expire, nothing ended.
    pub(super) fn init_fresh(meta: &Tree) -> Result<(), StoreError> {
        meta.insert(keys::META_MAY_EXPIRE, &keys::encode_u64(0))
            .map_err(io)?;
        meta.insert(keys::META_ENDED_SINCE, &keys::encode_u64(u64::MAX))
            .map_err(io)?;
        Ok(())
    }

    /// The marks as stored; absent keys (an older database) ask for one walk each.
    pub(super) fn load(meta: &Tree) -> Result<Self, StoreError> {
        let read = |key: &[u8], absent: u64| -> Result<u64, StoreError> {
            match meta.get(key).map_err(io)? {
                Some(bytes) => keys::decode_u64(&bytes).map_err(corrupt),
                None => Ok(absent),
            }
        };
        Ok(Self {
            may_expire: AtomicBool::new(read(keys::META_MAY_EXPIRE, 1)? != 0),
            expiring_writes: AtomicU64::new(0),
            ended_since: AtomicU64::new(read(keys::META_ENDED_SINCE, 0)?),
            newest_ended: AtomicU64::new(0),
            expired_walks: AtomicU64::new(0),
            garbage_walks: AtomicU64::new(0),
        })
    }

    /// Called under the writer mutex before a commit that stores a live version with an
    /// expiration (`expiring`) and/or ends versions at revision `ended`: pushes the meta
    /// ops that set the marks if they change, and counts the write for the collector.
    pub(super) fn note(&self, expiring: bool, ended: Option<Revision>, ops: &mut Vec<Op>) -> Note {
        let mut note = Note::default();
        if expiring {
            self.expiring_writes.fetch_add(1, Ordering::AcqRel);
            if !self.may_expire.load(Ordering::Acquire) {
                note.set_may_expire = true;
                ops.push(meta_op(keys::META_MAY_EXPIRE, 1));
            }
        }
        if let Some(ended) = ended {
            self.newest_ended.fetch_max(ended.0, Ordering::AcqRel);
            if self.ended_since.load(Ordering::Acquire) > ended.0 {
                note.ended_since = Some(ended.0);
                ops.push(meta_op(keys::META_ENDED_SINCE, ended.0));
            }
        }
        note
    }

    /// Counts versions a write is about to end at revisions up to `newest` (an import
    /// ends them at several; [`Marks::note`] counts the one it is given).
    pub(super) fn will_end_through(&self, newest: Revision) {
        self.newest_ended.fetch_max(newest.0, Ordering::AcqRel);
    }

    /// Caches what `note`'s commit wrote (call after it landed, under the writer mutex).
    pub(super) fn committed(&self, note: Note) {
        if note.set_may_expire {
            self.may_expire.store(true, Ordering::Release);
        }
        if let Some(ended) = note.ended_since {
            self.ended_since.fetch_min(ended, Ordering::AcqRel);
        }
    }

    /// Whether the expired sweep must walk.
    pub(super) fn may_expire(&self) -> bool {
        self.may_expire.load(Ordering::Acquire)
    }

    /// How many commits may have stored an expiring version since open.
    pub(super) fn expiring_writes(&self) -> u64 {
        self.expiring_writes.load(Ordering::Acquire)
    }

    /// The op that clears `may_expire`, and the cache once it is committed: the caller
    /// holds the writer mutex and proved nothing may expire.
    pub(super) fn clear_may_expire_op() -> Op {
        meta_op(keys::META_MAY_EXPIRE, 0)
    }

    /// Caches a committed [`Marks::clear_may_expire_op`].
    pub(super) fn cleared_may_expire(&self) {
        self.may_expire.store(false, Ordering::Release);
    }

    /// Marks `may_expire` before a rollback makes versions live again (they may expire).
    /// The caller holds the writer mutex or is alone (at open).
    pub(super) fn before_revival(&self, ops: &mut Vec<Op>) -> Note {
        self.note(true, None, ops)
    }

    /// `meta/ended_since` as last committed.
    pub(super) fn ended_since(&self) -> u64 {
        self.ended_since.load(Ordering::Acquire)
    }

    /// The newest revision a write ended a version at since open (0: none).
    pub(super) fn newest_ended(&self) -> u64 {
        self.newest_ended.load(Ordering::Acquire)
    }

    /// The op that sets `ended_since` to `value`, if that changes it; the caller holds
    /// the writer mutex and caches it with [`Marks::raised_ended_since`] once committed.
    pub(super) fn ended_since_op(&self, value: u64) -> Option<Op> {
        (self.ended_since() != value).then(|| meta_op(keys::META_ENDED_SINCE, value))
    }

    /// Caches a committed [`Marks::ended_since_op`].
    pub(super) fn raised_ended_since(&self, value: u64) {
        self.ended_since.store(value, Ordering::Release);
    }

    /// Counts one walk of the expired sweep.
    pub(super) fn count_expired_walk(&self) {
        self.expired_walks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one walk of version GC.
    pub(super) fn count_garbage_walk(&self) {
        self.garbage_walks.fetch_add(1, Ordering::Relaxed);
    }

    /// Walks of the expired sweep and of version GC since open.
    pub(super) fn walks(&self) -> (u64, u64) {
        (
            self.expired_walks.load(Ordering::Relaxed),
            self.garbage_walks.load(Ordering::Relaxed),
        )
    }
}

/// A `meta` key set to a u64.
fn meta_op(key: &[u8], value: u64) -> Op {
    Op {
        tree: TreeSlot::Meta,
        key: key.to_vec(),
        value: Some(keys::encode_u64(value).to_vec()),
    }
}

#[cfg(test)]
mod tests {
    //! The marks' invariants after every step of seeded random histories (writes,
    //! deletes, imports, syncs, sweeps, GC passes at random horizons, reopens): every
    //! ended version left was ended at or after `ended_since`, a live version with an
    //! expiration exists only while `may_expire` is set, and the cache equals the disk.

    use crate::model::{Relationship, Revision, Timestamp};
    use crate::store::keys::{self, LIVE};
    use crate::store::{RelationshipFilter, SledConfig, SledStore, Store, Update, UpdateOp};

    /// A small deterministic generator (xorshift64).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn random_rel(rng: &mut Rng) -> Relationship {
        let conditions = [
            "",
            "[expiration:2001-01-01T00:00:00Z]",
            "[expiration:2999-01-01T00:00:00Z]",
            r#"[cav:{"k":1}]"#,
        ][rng.below(4) as usize];
        let text = format!(
            "doc:d{}#viewer@user:u{}{conditions}",
            rng.below(4),
            rng.below(3)
        );
        text.parse().unwrap()
    }

    fn check(store: &SledStore, context: &str) {
        let inner = store.inner().unwrap();
        let mut oldest_ended = u64::MAX;
        let mut live_expiring = false;
        inner
            .scan_versions(&RelationshipFilter::default(), &mut |rel, _, deleted| {
                if deleted == LIVE {
                    live_expiring |= rel.expiration.is_some();
                } else {
                    oldest_ended = oldest_ended.min(deleted);
                }
                true
            })
            .unwrap();
        let stored = |key: &[u8]| {
            let bytes = inner
                .meta
                .get(key)
                .unwrap()
                .expect("a new store has the marks");
            keys::decode_u64(&bytes).unwrap()
        };
        let (may_expire, ended_since) = (
            stored(keys::META_MAY_EXPIRE),
            stored(keys::META_ENDED_SINCE),
        );
        assert!(
            !live_expiring || may_expire == 1,
            "{context}: a live expiring version, may_expire {may_expire}"
        );
        assert!(
            oldest_ended >= ended_since,
            "{context}: a version ended at {oldest_ended} < ended_since {ended_since}"
        );
        assert_eq!(
            inner.marks.may_expire(),
            may_expire == 1,
            "{context}: cache"
        );
        assert_eq!(inner.marks.ended_since(), ended_since, "{context}: cache");
    }

    #[test]
    fn issue14_marks_cover_every_version_left_in_random_histories() {
        for seed in 1..=6_u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let dir = tempfile::tempdir().unwrap();
            let config = SledConfig {
                gc_interval: None,
                durable: false,
                ..SledConfig::new(dir.path())
            };
            let mut store = SledStore::open(&config).unwrap();
            for step in 0..150 {
                let action = rng.below(9);
                let update = |rng: &mut Rng| Update {
                    op: [UpdateOp::Touch, UpdateOp::Create, UpdateOp::Delete]
                        [rng.below(3) as usize],
                    relationship: random_rel(rng),
                };
                match action {
                    0..=2 => {
                        let updates: Vec<Update> =
                            (0..=rng.below(2)).map(|_| update(&mut rng)).collect();
                        // A rejected batch (a duplicate, a create of a live tuple) changes nothing.
                        let _ = store.write(&updates, &[]).unwrap();
                    }
                    3 => {
                        let filter = RelationshipFilter {
                            resource_id: Some(format!("d{}", rng.below(4))),
                            ..Default::default()
                        };
                        store.delete_by_filter(&filter, 0).unwrap();
                    }
                    4 => {
                        let rels: Vec<Relationship> =
                            (0..=rng.below(3)).map(|_| random_rel(&mut rng)).collect();
                        store.import(&mut rels.into_iter()).unwrap();
                    }
                    5 => {
                        let updates: Vec<Update> = (0..=rng.below(2))
                            .map(|_| update(&mut rng))
                            .filter(|it| it.op != UpdateOp::Create)
                            .collect();
                        store.apply_at_one_revision(&updates, None).unwrap();
                    }
                    6 => {
                        let before = [
                            "2000-01-01T00:00:00Z",
                            "2500-01-01T00:00:00Z",
                            "3000-01-01T00:00:00Z",
                        ][rng.below(3) as usize];
                        store
                            .collect_expired_relationships(before.parse::<Timestamp>().unwrap())
                            .unwrap();
                    }
                    7 => {
                        let head = store.head().unwrap().0;
                        let oldest = store.oldest_readable().unwrap().0;
                        if head > oldest {
                            let horizon = oldest + 1 + rng.below(head - oldest);
                            store.collect_garbage(Revision(horizon)).unwrap();
                        }
                    }
                    _ => {
                        store.flush().unwrap();
                        drop(store);
                        store = SledStore::open(&config).unwrap();
                    }
                }
                check(&store, &format!("seed {seed} step {step} action {action}"));
            }
        }
    }
}
