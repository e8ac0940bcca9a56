//! What the collector (`gc.rs`) may skip: two durable marks in `meta` that say when a walk
//! of the whole resource index cannot find anything, so that a store with nothing to
//! collect reads none of its blocks each minute (and does not fill sled's page cache with
//! them).
//!
//! - `expires_from` (`keys::META_EXPIRES_FROM`): no live version expires before this
//!   second. Lowered in the same commit as any version with an earlier expiration that a
//!   write, sync or import stores (an import: in its marker's commit, before any version),
//!   and to the beginning of time before a rollback at open makes versions live again.
//!   The expired sweep at `before` walks only when it is at most `before`; a walk that
//!   saw no expiring write committed meanwhile ([`Marks::expiring_writes`], compared
//!   under the writer mutex) raises it to the earliest expiration left (or to "never").
//! - `ended_since` (`keys::META_ENDED_SINCE`): lowered in the same commit as (or a commit
//!   before) any version a write, delete, sync or import ends; a version-GC pass at
//!   horizon `H` walks only when it is at most `H`, and afterwards raises it to the
//!   oldest ended revision it saw above `H` (or to the first revision a write may have
//!   ended meanwhile, [`Marks::newest_ended`]).
//!
//! Crash safety: a mark is lowered before or with what it covers and raised only after a
//! walk proved it, so a crash can make a later pass walk needlessly, never skip a pass it
//! needed. A database without the keys (older than the marks) walks once, and so does one
//! that a binary without the marks wrote to since (`keys::META_MARKS_HEAD`, written with
//! every head, then differs from the head).
//!
//! The cached values are changed under the writer mutex only (or at open, alone), after
//! the commit that wrote them, so a write adds a mark's key only when its value changes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use ::sled::Tree;

use super::{Op, TreeSlot, corrupt, io};
use crate::model::{Revision, Timestamp};
use crate::store::StoreError;
use crate::store::keys;

/// `expires_from` when no live version expires.
pub(super) const NEVER: i64 = i64::MAX;

/// The cached marks, the counters that validate raising them, and walk statistics.
pub(super) struct Marks {
    /// `meta/expires_from` as last committed: seconds since the epoch.
    expires_from: AtomicI64,
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
    expires_from: Option<i64>,
    ended_since: Option<u64>,
}

impl Marks {
    /// The marks a new database starts with: nothing expires, nothing ended.
    pub(super) fn init_fresh(meta: &Tree) -> Result<(), StoreError> {
        Self::store(meta, NEVER, u64::MAX, 0)
    }

    /// Writes both marks, then the head they are kept up to (a crash in between leaves
    /// the old head: both due at the next open).
    fn store(
        meta: &Tree,
        expires_from: i64,
        ended_since: u64,
        head: u64,
    ) -> Result<(), StoreError> {
        meta.insert(keys::META_EXPIRES_FROM, &encode_i64(expires_from))
            .map_err(io)?;
        meta.insert(keys::META_ENDED_SINCE, &keys::encode_u64(ended_since))
            .map_err(io)?;
        meta.insert(keys::META_MARKS_HEAD, &keys::encode_u64(head))
            .map_err(io)?;
        Ok(())
    }

    /// The marks as stored for the database at `head`. Absent keys (an older database)
    /// or marks kept up to another head (an older binary wrote since) are stored as due
    /// first, so each pass walks once.
    pub(super) fn load(meta: &Tree, head: u64) -> Result<Self, StoreError> {
        let read = |key: &[u8]| -> Result<Option<u64>, StoreError> {
            match meta.get(key).map_err(io)? {
                Some(bytes) => keys::decode_u64(&bytes).map(Some).map_err(corrupt),
                None => Ok(None),
            }
        };
        let kept = read(keys::META_MARKS_HEAD)? == Some(head);
        let (expires_from, ended_since) = match (
            read(keys::META_EXPIRES_FROM)?,
            read(keys::META_ENDED_SINCE)?,
        ) {
            (Some(expires_from), Some(ended_since)) if kept => {
                (decode_i64(expires_from), ended_since)
            }
            _ => {
                Self::store(meta, i64::MIN, 0, head)?;
                (i64::MIN, 0)
            }
        };
        Ok(Self {
            expires_from: AtomicI64::new(expires_from),
            expiring_writes: AtomicU64::new(0),
            ended_since: AtomicU64::new(ended_since),
            newest_ended: AtomicU64::new(0),
            expired_walks: AtomicU64::new(0),
            garbage_walks: AtomicU64::new(0),
        })
    }

    /// Called under the writer mutex before a commit that stores live versions expiring
    /// at `earliest` or later and/or ends versions at revision `ended`: pushes the meta
    /// ops that lower the marks if they change, and counts the write for the collector.
    pub(super) fn note(
        &self,
        earliest: Option<Timestamp>,
        ended: Option<Revision>,
        ops: &mut Vec<Op>,
    ) -> Note {
        let mut note = Note::default();
        if let Some(earliest) = earliest {
            self.lower_expires_from(earliest.unix_seconds(), &mut note, ops);
        }
        if let Some(ended) = ended {
            self.newest_ended.fetch_max(ended.0, Ordering::AcqRel);
            if self.ended_since.load(Ordering::Acquire) > ended.0 {
                note.ended_since = Some(ended.0);
                ops.push(meta_op(keys::META_ENDED_SINCE, keys::encode_u64(ended.0)));
            }
        }
        note
    }

    fn lower_expires_from(&self, seconds: i64, note: &mut Note, ops: &mut Vec<Op>) {
        self.expiring_writes.fetch_add(1, Ordering::AcqRel);
        if self.expires_from.load(Ordering::Acquire) > seconds {
            note.expires_from = Some(seconds);
            ops.push(meta_op(keys::META_EXPIRES_FROM, encode_i64(seconds)));
        }
    }

    /// Marks, before a rollback makes versions live again, that they may expire at any
    /// time. The caller holds the writer mutex or is alone (at open).
    pub(super) fn before_revival(&self, ops: &mut Vec<Op>) -> Note {
        let mut note = Note::default();
        self.lower_expires_from(i64::MIN, &mut note, ops);
        note
    }

    /// Counts versions a write is about to end at revisions up to `newest` (an import
    /// ends them at several; [`Marks::note`] counts the one it is given).
    pub(super) fn will_end_through(&self, newest: Revision) {
        self.newest_ended.fetch_max(newest.0, Ordering::AcqRel);
    }

    /// Caches what `note`'s commit wrote (call after it landed, under the writer mutex).
    pub(super) fn committed(&self, note: Note) {
        if let Some(seconds) = note.expires_from {
            self.expires_from.fetch_min(seconds, Ordering::AcqRel);
        }
        if let Some(ended) = note.ended_since {
            self.ended_since.fetch_min(ended, Ordering::AcqRel);
        }
    }

    /// `meta/expires_from` as last committed: no live version expires before this second.
    pub(super) fn expires_from(&self) -> i64 {
        self.expires_from.load(Ordering::Acquire)
    }

    /// How many commits may have stored an expiring version since open.
    pub(super) fn expiring_writes(&self) -> u64 {
        self.expiring_writes.load(Ordering::Acquire)
    }

    /// The op that sets `expires_from` to `seconds`, if that changes it; the caller holds
    /// the writer mutex, proved it, and caches it with [`Marks::raised_expires_from`]
    /// once committed.
    pub(super) fn expires_from_op(&self, seconds: i64) -> Option<Op> {
        (self.expires_from() != seconds)
            .then(|| meta_op(keys::META_EXPIRES_FROM, encode_i64(seconds)))
    }

    /// Caches a committed [`Marks::expires_from_op`].
    pub(super) fn raised_expires_from(&self, seconds: i64) {
        self.expires_from.store(seconds, Ordering::Release);
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
        (self.ended_since() != value)
            .then(|| meta_op(keys::META_ENDED_SINCE, keys::encode_u64(value)))
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

/// The earlier of two optional expirations (`None`: no expiration).
pub(super) fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Seconds stored as a u64 of the same bits (two's complement, big-endian).
fn encode_i64(seconds: i64) -> [u8; 8] {
    seconds.to_be_bytes()
}

/// The inverse of [`encode_i64`] after `keys::decode_u64`.
pub(super) fn decode_i64(bits: u64) -> i64 {
    i64::from_be_bytes(bits.to_be_bytes())
}

/// A `meta` key set to 8 bytes.
fn meta_op(key: &[u8], value: [u8; 8]) -> Op {
    Op {
        tree: TreeSlot::Meta,
        key: key.to_vec(),
        value: Some(value.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    //! The marks' invariants after every step of seeded random histories (writes,
    //! deletes, imports, syncs, sweeps, GC passes at random horizons, reopens): every
    //! ended version left was ended at or after `ended_since`, every live version expires
    //! at or after `expires_from`, and the cache equals the disk.

    use super::{NEVER, decode_i64};
    use crate::model::{Relationship, Revision, Timestamp};
    use crate::store::keys::{self, LIVE};
    use crate::store::{RelationshipFilter, SledConfig, SledStore, Store, Update, UpdateOp};

    use crate::model::test_rng::Rng;

    fn random_rel(rng: &mut Rng) -> Relationship {
        let conditions = [
            "",
            "[expiration:2001-01-01T00:00:00Z]",
            "[expiration:2400-01-01T00:00:00Z]",
            "[expiration:2999-01-01T00:00:00Z]",
            r#"[cav:{"k":1}]"#,
        ][rng.below(5) as usize];
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
        let mut earliest_expiring = NEVER;
        inner
            .scan_versions(&RelationshipFilter::default(), &mut |rel, _, deleted| {
                if deleted != LIVE {
                    oldest_ended = oldest_ended.min(deleted);
                } else if let Some(at) = rel.expiration {
                    earliest_expiring = earliest_expiring.min(at.unix_seconds());
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
        let expires_from = decode_i64(stored(keys::META_EXPIRES_FROM));
        let ended_since = stored(keys::META_ENDED_SINCE);
        assert!(
            earliest_expiring >= expires_from,
            "{context}: a live version expires at {earliest_expiring} < {expires_from}"
        );
        assert!(
            oldest_ended >= ended_since,
            "{context}: a version ended at {oldest_ended} < ended_since {ended_since}"
        );
        assert_eq!(inner.marks.expires_from(), expires_from, "{context}: cache");
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
