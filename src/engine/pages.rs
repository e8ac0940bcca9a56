//! Paging of lookups: cursors, and a small bounded cache of the state a listing's next
//! page resumes from, so that a page costs in proportion to the page.
//!
//! A cursor is an opaque string `REVISION.OFFSET.DIGEST`: the revision every page of the
//! listing reads (pinned by the first page, like SpiceDB's cursors), how many results
//! the listing has returned so far, and a digest of their ids (a sum of 64-bit hashes of
//! each id: it names the set, whatever its order). Results come in one deterministic
//! order per listing, which is not sorted when streamed (see below).
//!
//! - **Lookup resources and lookup subjects without caveats** stream in the walk's order
//!   ([`super::lookup::ResourceWalk`], [`super::lookup::SubjectWalk`], depth first;
//!   [`super::lookup::Pausable`]): a page walks until it has found one
//!   result more than it returns, and the paused walk is kept under its next cursor; the
//!   next page takes it and goes on. When the walk is gone (evicted, or the cursor comes to
//!   another server sharing the database), the page walks again from the start at the
//!   cursor's revision, skips OFFSET results and checks that their digest is DIGEST: slower,
//!   never different. A server whose index lists that revision in another order (another
//!   process that loaded the same relationships in another order) finds another digest
//!   and refuses the cursor (restart the listing) rather than answer a duplicate or a gap.
//! - **Lookup resources with caveats or expiration** (the three-valued mode) streams the
//!   same way: its walk judges each resource it reaches with the clock of the listing's
//!   first page, and a kept walk that read a relationship expired since is not resumed.
//! - **Lookup subjects under a wildcard grant** (its `excluded` needs every candidate) or
//!   in the three-valued mode computes the whole result, sorted by byte order, and keeps
//!   it; a page is the slice at OFFSET, whose digest is checked against prefix digests
//!   computed once.
//!
//! With caveats and expiration (DESIGN §3) a result also depends on the request's context
//! and on the clock: the caller puts the context in the key, and a result that read an
//! expiring relationship keeps the earliest such expiration and is never served at or
//! after it. Conditional ids share the order (and the cursor) of definite ones.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::model::{Revision, Timestamp};

use super::lookup::{ResourceWalk, SubjectWalk};
use super::{ConditionalId, EngineError, LookupStats};

/// How many listings the cache keeps at most.
const MAX_ENTRIES: usize = 64;

/// How many entries (ids, or facts and pending steps of a walk) all kept listings may hold
/// together (some 100 MB); a larger single one is not kept, and its next page walks again.
const MAX_WEIGHT: usize = 4_000_000;

/// A position in a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The revision every page of the listing reads.
    pub revision: Revision,
    /// Results returned before this position.
    pub offset: u64,
    /// The sum of [`id_hash`] of those results.
    pub digest: u64,
}

impl Cursor {
    /// The start of a listing at `revision`.
    pub fn start(revision: Revision) -> Self {
        Self {
            revision,
            offset: 0,
            digest: 0,
        }
    }

    /// Parses a cursor this module wrote.
    pub fn parse(text: &str) -> Result<Self, EngineError> {
        let malformed = || {
            EngineError::invalid(
                "cursor",
                format!(
                    "malformed cursor `{}`: not a cursor of this server (start the listing again without one)",
                    clip(text)
                ),
            )
        };
        let mut parts = text.split('.');
        let (Some(revision), Some(offset), Some(digest), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let digits = |it: &str| !it.is_empty() && it.bytes().all(|b| b.is_ascii_digit());
        if !digits(revision) || !digits(offset) || digest.len() != 16 {
            return Err(malformed());
        }
        Ok(Self {
            revision: Revision(revision.parse().map_err(|_| malformed())?),
            offset: offset.parse().map_err(|_| malformed())?,
            digest: u64::from_str_radix(digest, 16).map_err(|_| malformed())?,
        })
    }

    /// The position after one more result, `id`.
    pub fn advance(&mut self, id: &str) {
        self.offset += 1;
        self.digest = self.digest.wrapping_add(id_hash(id));
    }

    /// The error for a cursor whose position this server cannot find.
    pub fn unknown(&self) -> EngineError {
        EngineError::invalid(
            "cursor",
            format!(
                "cursor `{self}` does not match the results before it at its revision (the listing changed order: start it again without a cursor)"
            ),
        )
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{:016x}",
            self.revision.0, self.offset, self.digest
        )
    }
}

/// A 64-bit hash of an id, the same in every process (FNV-1a, then a finalizer that
/// spreads the bits so that sums of hashes do not collide on similar ids).
pub(crate) fn id_hash(id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The cursor after each of `ids`, the results of one page in order, which started at
/// `cursor` (the start of the listing at `revision` when none): what a stream answers
/// with each result, so that a client may resume after any of them.
pub(crate) fn cursors_after<'i>(
    cursor: Option<&str>,
    revision: Revision,
    ids: impl Iterator<Item = &'i str>,
) -> Result<Vec<String>, EngineError> {
    let mut at = match cursor {
        Some(text) => Cursor::parse(text)?,
        None => Cursor::start(revision),
    };
    Ok(ids
        .map(|id| {
            at.advance(id);
            at.to_string()
        })
        .collect())
}

/// A page of a [`Sorted`] result: definite ids, conditional ids, the next cursor.
pub(crate) type SortedPage = (Vec<String>, Vec<ConditionalId>, Option<Cursor>);

/// One computed lookup: ids sorted by byte order, and (lookup subjects) the excluded ids.
#[derive(Debug, Default)]
pub(crate) struct Sorted {
    pub ids: Vec<String>,
    /// Empty, or parallel to `ids`: the missing caveat parameters of a conditional id,
    /// `None` for a definite one.
    pub missing: Vec<Option<Vec<String>>>,
    pub excluded: Vec<String>,
    /// The earliest expiration of a relationship the result read: not valid from then on.
    pub valid_until: Option<Timestamp>,
    /// `prefix[k]`: the digest of `ids[..k]`.
    prefix: Vec<u64>,
}

impl Sorted {
    /// A result; `ids` sorted, `missing` empty or parallel to `ids`.
    pub fn new(
        ids: Vec<String>,
        missing: Vec<Option<Vec<String>>>,
        excluded: Vec<String>,
        valid_until: Option<Timestamp>,
    ) -> Self {
        let mut prefix = Vec::with_capacity(ids.len() + 1);
        let mut digest = 0u64;
        prefix.push(digest);
        for id in &ids {
            digest = digest.wrapping_add(id_hash(id));
            prefix.push(digest);
        }
        Self {
            ids,
            missing,
            excluded,
            valid_until,
            prefix,
        }
    }

    /// A result without conditional ids that does not expire.
    pub fn plain(ids: Vec<String>, excluded: Vec<String>) -> Self {
        Self::new(ids, Vec::new(), excluded, None)
    }

    /// How much the result holds, for the cache's bound.
    fn weight(&self) -> usize {
        self.ids.len() + self.excluded.len() + 1
    }

    /// The page at `at`, at most `limit` ids (0 = all), split into definite and
    /// conditional ids, and the cursor of the next page when more follow. A cursor whose
    /// offset or digest does not match this result is refused.
    pub fn page(&self, at: Cursor, limit: usize) -> Result<SortedPage, EngineError> {
        let start = usize::try_from(at.offset).map_err(|_| at.unknown())?;
        if self.prefix.get(start) != Some(&at.digest) {
            return Err(at.unknown());
        }
        let end = if limit == 0 {
            self.ids.len()
        } else {
            self.ids.len().min(start.saturating_add(limit))
        };
        let next = (end < self.ids.len()).then(|| Cursor {
            revision: at.revision,
            offset: end as u64,
            digest: self.prefix.get(end).copied().unwrap_or_default(),
        });
        let range = start..end;
        if self.missing.is_empty() {
            // No conditional id: the page is a plain copy.
            let definite = self.ids.get(range).unwrap_or_default().to_vec();
            return Ok((definite, Vec::new(), next));
        }
        let mut definite = Vec::with_capacity(range.len());
        let mut conditional = Vec::new();
        for pos in range {
            let Some(id) = self.ids.get(pos) else {
                break;
            };
            match self.missing.get(pos) {
                Some(Some(missing)) => conditional.push(ConditionalId {
                    id: id.clone(),
                    missing_context: missing.clone(),
                }),
                _ => definite.push(id.clone()),
            }
        }
        Ok((definite, conditional, next))
    }
}

/// What the cache keeps for a listing.
pub(crate) enum Kept {
    /// A paused walk, under the key of the cursor it resumes at (taken out to be resumed).
    Resources(Box<ResourceWalk>),
    Subjects(Box<SubjectWalk>),
    /// A whole sorted result, under the key of its listing (shared by its pages).
    Sorted(Arc<Sorted>),
}

/// A walk the cache can keep.
pub(crate) trait KeptWalk {
    fn wrap(walk: Box<Self>) -> Kept;
    fn unwrap(kept: Kept) -> Option<Box<Self>>;
    /// Whether `kept` is a walk of this kind.
    fn is(kept: &Kept) -> bool;
    /// How much memory the walk holds, in entries.
    fn weight(&self) -> usize;
}

impl KeptWalk for ResourceWalk {
    fn wrap(walk: Box<Self>) -> Kept {
        Kept::Resources(walk)
    }

    fn unwrap(kept: Kept) -> Option<Box<Self>> {
        match kept {
            Kept::Resources(walk) => Some(walk),
            _ => None,
        }
    }

    fn is(kept: &Kept) -> bool {
        matches!(kept, Kept::Resources(_))
    }

    fn weight(&self) -> usize {
        ResourceWalk::weight(self)
    }
}

impl KeptWalk for SubjectWalk {
    fn wrap(walk: Box<Self>) -> Kept {
        Kept::Subjects(walk)
    }

    fn unwrap(kept: Kept) -> Option<Box<Self>> {
        match kept {
            Kept::Subjects(walk) => Some(walk),
            _ => None,
        }
    }

    fn is(kept: &Kept) -> bool {
        matches!(kept, Kept::Subjects(_))
    }

    fn weight(&self) -> usize {
        SubjectWalk::weight(self)
    }
}

struct Entry {
    key: String,
    kept: Kept,
    weight: usize,
}

/// The kept listings and the work counters.
pub(crate) struct PageCache {
    /// Least recently used first.
    entries: Mutex<VecDeque<Entry>>,
    max_entries: usize,
    max_weight: usize,
    walks: AtomicU64,
    steps: AtomicU64,
    resumed: AtomicU64,
}

impl Default for PageCache {
    fn default() -> Self {
        Self::with_bounds(MAX_ENTRIES, MAX_WEIGHT)
    }
}

/// At most 64 characters of `text`, for error messages.
fn clip(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

impl PageCache {
    /// A cache of at most `max_entries` listings holding `max_weight` entries together.
    pub fn with_bounds(max_entries: usize, max_weight: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            max_entries,
            max_weight,
            walks: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
        }
    }

    /// The sorted result kept under `key`, marked as recently used; none once `now`
    /// reached its [`Sorted::valid_until`] (the entry is dropped).
    pub fn sorted(&self, key: &str, now: Timestamp) -> Option<Arc<Sorted>> {
        let mut entries = self.entries.lock();
        let pos = entries
            .iter()
            .position(|it| it.key == key && matches!(it.kept, Kept::Sorted(_)))?;
        let entry = entries.remove(pos)?;
        let Kept::Sorted(sorted) = &entry.kept else {
            return None;
        };
        if sorted.valid_until.is_some_and(|until| until <= now) {
            return None;
        }
        let res = Arc::clone(sorted);
        entries.push_back(entry);
        self.resumed.fetch_add(1, Ordering::Relaxed);
        Some(res)
    }

    /// Takes the walk kept under `key` out of the cache (one page resumes it).
    pub fn take_walk<W: KeptWalk>(&self, key: &str) -> Option<Box<W>> {
        let mut entries = self.entries.lock();
        let pos = entries
            .iter()
            .position(|it| it.key == key && W::is(&it.kept))?;
        let entry = entries.remove(pos)?;
        let walk = W::unwrap(entry.kept)?;
        self.resumed.fetch_add(1, Ordering::Relaxed);
        Some(walk)
    }

    /// Keeps `sorted` under `key`.
    pub fn keep_sorted(&self, key: String, sorted: Arc<Sorted>) {
        let weight = sorted.weight();
        self.keep(key, Kept::Sorted(sorted), weight);
    }

    /// Keeps a paused walk under `key`.
    pub fn keep_walk<W: KeptWalk>(&self, key: String, walk: Box<W>) {
        let weight = walk.weight();
        self.keep(key, W::wrap(walk), weight);
    }

    /// Keeps `kept`, evicting the least recently used listings over the bounds; one over
    /// the weight bound alone is not kept.
    fn keep(&self, key: String, kept: Kept, weight: usize) {
        if weight > self.max_weight || self.max_entries == 0 {
            return;
        }
        let mut entries = self.entries.lock();
        entries.retain(|it| it.key != key);
        entries.push_back(Entry { key, kept, weight });
        let mut held: usize = entries.iter().map(|it| it.weight).sum();
        while entries.len() > self.max_entries || held > self.max_weight {
            let Some(evicted) = entries.pop_front() else {
                break;
            };
            held -= evicted.weight;
        }
    }

    /// Counts one lookup computed from its start (a whole result, or a walk begun).
    pub fn record_walk(&self) {
        self.walks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `steps` steps of lookup work.
    pub fn record_steps(&self, steps: u64) {
        self.steps.fetch_add(steps, Ordering::Relaxed);
    }

    pub fn stats(&self) -> LookupStats {
        LookupStats {
            walks: self.walks.load(Ordering::Relaxed),
            steps: self.steps.load(Ordering::Relaxed),
            resumed_pages: self.resumed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|it| it.to_string()).collect()
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let mut at = Cursor::start(Revision(17));
        at.advance("doc_9");
        let text = at.to_string();
        assert_eq!(Cursor::parse(&text).unwrap(), at);
        for foreign in [
            "",
            "doc_9",
            "17:doc_9",
            "x.1.0000000000000000",
            "17.1",
            "17.1.00",
            "17.1.000000000000000g",
            "17.-1.0000000000000000",
            "17.1.0000000000000000.",
            "99999999999999999999.1.0000000000000000",
        ] {
            let err = Cursor::parse(foreign).unwrap_err();
            assert!(
                matches!(
                    err,
                    EngineError::InvalidInput {
                        field: "cursor",
                        ..
                    }
                ),
                "{foreign}: {err:?}"
            );
        }
    }

    #[test]
    fn the_digest_names_the_set_whatever_its_order() {
        let (mut a, mut b) = (Cursor::start(Revision(1)), Cursor::start(Revision(1)));
        for id in ["x", "y", "z"] {
            a.advance(id);
        }
        for id in ["z", "x", "y"] {
            b.advance(id);
        }
        assert_eq!(a, b);
        let mut c = Cursor::start(Revision(1));
        for id in ["x", "y", "w"] {
            c.advance(id);
        }
        assert_ne!(a.digest, c.digest);
        assert_eq!(id_hash("doc:1"), id_hash("doc:1"));
    }

    #[test]
    fn cursors_after_each_result_resume_after_it() {
        let cursors = cursors_after(None, Revision(3), ["a", "b"].into_iter()).unwrap();
        let mut at = Cursor::start(Revision(3));
        at.advance("a");
        assert_eq!(cursors[0], at.to_string());
        let more = cursors_after(Some(&cursors[0]), Revision(3), ["b"].into_iter()).unwrap();
        assert_eq!(more[0], cursors[1]);
    }

    #[test]
    fn sorted_pages_resume_at_the_offset_and_check_the_digest() {
        let sorted = Sorted::plain(ids(&["a", "b", "c", "d", "e"]), Vec::new());
        let (first, _, next) = sorted.page(Cursor::start(Revision(3)), 2).unwrap();
        assert_eq!(first, ids(&["a", "b"]));
        let next = next.unwrap();
        let (second, _, next) = sorted.page(next, 2).unwrap();
        assert_eq!(second, ids(&["c", "d"]));
        let (last, _, end) = sorted.page(next.unwrap(), 2).unwrap();
        assert_eq!((last, end), (ids(&["e"]), None));
        let (all, _, end) = sorted.page(Cursor::start(Revision(3)), 0).unwrap();
        assert_eq!((all.len(), end), (5, None));
        // A cursor of another listing (other ids before it), or past the end, is refused.
        let mut foreign = Cursor::start(Revision(3));
        foreign.advance("a");
        foreign.advance("x");
        assert!(sorted.page(foreign, 2).is_err());
        let mut past = Cursor::start(Revision(3));
        past.offset = 9;
        assert!(sorted.page(past, 2).is_err());
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_the_least_recently_used() {
        let cache = PageCache::default();
        for n in 0..MAX_ENTRIES + 3 {
            cache.keep_sorted(n.to_string(), Arc::new(Sorted::default()));
        }
        let now = Timestamp::now();
        assert!(cache.sorted("0", now).is_none());
        assert!(cache.sorted(&(MAX_ENTRIES + 2).to_string(), now).is_some());
        cache.keep_sorted(
            "huge".to_string(),
            Arc::new(Sorted::plain(
                vec![String::new(); MAX_WEIGHT + 1],
                Vec::new(),
            )),
        );
        assert!(cache.sorted("huge", now).is_none());
        let none = PageCache::with_bounds(0, MAX_WEIGHT);
        none.keep_sorted("k".to_string(), Arc::new(Sorted::default()));
        assert!(none.sorted("k", now).is_none());
    }

    #[test]
    fn a_kept_walk_is_taken_once_and_only_as_its_kind() {
        use crate::engine::check::Subject;
        use crate::schema::{RelationId, TypeId};
        let cache = PageCache::default();
        let walk = ResourceWalk::new(Subject::Wildcard(0), "x", TypeId(0), RelationId(0));
        cache.keep_walk("k".to_string(), Box::new(walk));
        assert!(cache.take_walk::<SubjectWalk>("k").is_none());
        assert!(cache.take_walk::<ResourceWalk>("k").is_some());
        assert!(cache.take_walk::<ResourceWalk>("k").is_none(), "taken once");
        assert_eq!(cache.stats().resumed_pages, 1);
    }

    #[test]
    fn a_result_is_not_served_from_its_earliest_expiry_on() {
        let cache = PageCache::default();
        let until = Timestamp::from_unix(2_000_000_000, 0).unwrap();
        let sorted = Sorted::new(ids(&["a"]), Vec::new(), Vec::new(), Some(until));
        cache.keep_sorted("k".to_string(), Arc::new(sorted));
        let before = Timestamp::from_unix(1_999_999_999, 0).unwrap();
        assert!(cache.sorted("k", before).is_some());
        assert!(cache.sorted("k", until).is_none());
        assert!(
            cache.sorted("k", before).is_none(),
            "an expired entry is dropped"
        );
    }

    #[test]
    fn definite_and_conditional_ids_share_one_order_and_cursor() {
        let sorted = Sorted::new(
            ids(&["a", "b", "c"]),
            vec![None, Some(vec!["ip".to_string()]), None],
            Vec::new(),
            None,
        );
        let (definite, conditional, next) = sorted.page(Cursor::start(Revision(4)), 2).unwrap();
        assert_eq!(definite, ["a"]);
        assert_eq!(conditional.len(), 1);
        assert_eq!(conditional[0].id, "b");
        assert_eq!(conditional[0].missing_context, ["ip"]);
        let next = next.unwrap();
        assert_eq!(next.offset, 2);
        let (definite, conditional, next) = sorted.page(next, 2).unwrap();
        assert_eq!(
            (definite.as_slice(), conditional.len(), next),
            (&["c".to_string()][..], 0, None)
        );
    }
}
