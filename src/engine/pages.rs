//! Paging of lookups: the sorted result of a lookup is computed once and kept in a small
//! bounded cache, so that the next page resumes at the cursor (a binary search and a copy
//! of the page) instead of recomputing and sorting the whole result.
//!
//! A cursor is `REVISION:LAST_ID` (ids never contain `:`): it pins the revision of the
//! first page, like SpiceDB's cursors, so every page of one listing comes from the same
//! snapshot and from the cache while the entry lives. A cursor that is a bare id (the
//! older form) resumes after that id at the revision the consistency mode picks. When the
//! entry was evicted, the page is recomputed: slower, never different.
//!
//! With caveats and expiration (DESIGN §3) a result also depends on the request's context
//! and on the clock: the caller puts the context in the key, and a result that read an
//! expiring relationship keeps the earliest such expiration and is never served at or
//! after it. Conditional ids share the sorted order (and the cursor) of definite ones.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::model::{Revision, Timestamp};

use super::{ConditionalId, EngineError, LookupStats};

/// How many lookup results the cache keeps at most.
const MAX_ENTRIES: usize = 32;

/// How many ids all kept results may hold together (about 100 MB of short ids); a larger
/// single result is not kept, and each of its pages recomputes it.
const MAX_IDS: usize = 2_000_000;

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
}

impl Sorted {
    /// A result without conditional ids that does not expire.
    pub fn plain(ids: Vec<String>, excluded: Vec<String>) -> Self {
        Self {
            ids,
            missing: Vec::new(),
            excluded,
            valid_until: None,
        }
    }

    /// The page after `after`, at most `limit` ids (0 = all), split into definite and
    /// conditional ids, and the cursor of the next page (pinned to `revision`).
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> (Vec<String>, Vec<ConditionalId>, Option<String>) {
        let (range, cursor) = page_range(&self.ids, after, limit, revision);
        if self.missing.is_empty() {
            // No conditional id: the page is a plain copy (the path before caveats).
            let definite = self.ids.get(range).unwrap_or_default().to_vec();
            return (definite, Vec::new(), cursor);
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
        (definite, conditional, cursor)
    }
}

/// The kept results and the work counters.
#[derive(Default)]
pub(crate) struct PageCache {
    /// Least recently used first.
    entries: Mutex<VecDeque<(String, Arc<Sorted>)>>,
    walks: AtomicU64,
    steps: AtomicU64,
    resumed: AtomicU64,
}

/// A decoded cursor: the revision it pins (if any) and the last id of the previous page.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cursor<'c> {
    pub revision: Option<Revision>,
    pub after: &'c str,
}

impl<'c> Cursor<'c> {
    /// Parses `REVISION:LAST_ID` or a bare `LAST_ID`.
    pub fn parse(text: &'c str) -> Result<Self, EngineError> {
        match text.split_once(':') {
            None => Ok(Self {
                revision: None,
                after: text,
            }),
            Some((revision, after)) => {
                let revision = revision.parse::<u64>().map_err(|_| {
                    EngineError::invalid("cursor", format!("malformed cursor `{}`", clip(text)))
                })?;
                Ok(Self {
                    revision: Some(Revision(revision)),
                    after,
                })
            }
        }
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
    /// The result kept under `key`, marked as recently used; none once `now` reached its
    /// [`Sorted::valid_until`] (the entry is dropped).
    pub fn get(&self, key: &str, now: Timestamp) -> Option<Arc<Sorted>> {
        let mut entries = self.entries.lock();
        let pos = entries.iter().position(|(it, _)| it == key)?;
        let entry = entries.remove(pos)?;
        if entry.1.valid_until.is_some_and(|until| until <= now) {
            return None;
        }
        let res = Arc::clone(&entry.1);
        entries.push_back(entry);
        self.resumed.fetch_add(1, Ordering::Relaxed);
        Some(res)
    }

    /// Keeps `sorted` under `key`, evicting the least recently used results over the bounds.
    pub fn insert(&self, key: String, sorted: Arc<Sorted>) {
        let size = sorted.ids.len() + sorted.excluded.len();
        if size > MAX_IDS {
            return;
        }
        let mut entries = self.entries.lock();
        entries.retain(|(it, _)| *it != key);
        entries.push_back((key, sorted));
        let mut held: usize = entries
            .iter()
            .map(|(_, it)| it.ids.len() + it.excluded.len())
            .sum();
        while entries.len() > MAX_ENTRIES || held > MAX_IDS {
            let Some((_, evicted)) = entries.pop_front() else {
                break;
            };
            held -= evicted.ids.len() + evicted.excluded.len();
        }
    }

    /// Counts one full lookup computation of `steps` steps.
    pub fn record_walk(&self, steps: u64) {
        self.walks.fetch_add(1, Ordering::Relaxed);
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

/// The page of `ids` (sorted) after `after`, at most `limit` (0 = all), and the cursor of
/// the next page (pinned to `revision`) when more follow.
#[cfg(test)]
pub(crate) fn page(
    ids: &[String],
    after: Option<&str>,
    limit: usize,
    revision: Revision,
) -> (Vec<String>, Option<String>) {
    let (range, cursor) = page_range(ids, after, limit, revision);
    (ids.get(range).unwrap_or_default().to_vec(), cursor)
}

/// The positions in `ids` (sorted) of the page after `after`, at most `limit` (0 = all),
/// and the cursor of the next page (pinned to `revision`) when more follow.
fn page_range(
    ids: &[String],
    after: Option<&str>,
    limit: usize,
    revision: Revision,
) -> (std::ops::Range<usize>, Option<String>) {
    let start = after.map_or(0, |after| ids.partition_point(|id| id.as_str() <= after));
    let end = if limit == 0 {
        ids.len()
    } else {
        ids.len().min(start.saturating_add(limit))
    };
    let cursor = (end < ids.len() && end > start)
        .then(|| {
            ids.get(end - 1)
                .map(|last| format!("{}:{last}", revision.0))
        })
        .flatten();
    (start..end, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_pin_a_revision_or_are_bare_ids() {
        assert_eq!(
            Cursor::parse("17:doc_9").unwrap(),
            Cursor {
                revision: Some(Revision(17)),
                after: "doc_9"
            }
        );
        assert_eq!(Cursor::parse("doc_9").unwrap().revision, None);
        assert!(Cursor::parse("x:doc").is_err());
    }

    #[test]
    fn pages_resume_after_the_cursor() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let (first, cursor) = page(&ids, None, 2, Revision(3));
        assert_eq!(
            (first.as_slice(), cursor.as_deref()),
            (&ids[..2], Some("3:b"))
        );
        let (last, cursor) = page(&ids, Some("d"), 2, Revision(3));
        assert_eq!((last.as_slice(), cursor), (&ids[4..], None));
        let (all, cursor) = page(&ids, None, 0, Revision(3));
        assert_eq!((all.len(), cursor), (5, None));
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_the_least_recently_used() {
        let cache = PageCache::default();
        for n in 0..MAX_ENTRIES + 3 {
            cache.insert(n.to_string(), Arc::new(Sorted::default()));
        }
        let now = Timestamp::now();
        assert!(cache.get("0", now).is_none());
        assert!(cache.get(&(MAX_ENTRIES + 2).to_string(), now).is_some());
        cache.insert(
            "huge".to_string(),
            Arc::new(Sorted::plain(vec![String::new(); MAX_IDS + 1], Vec::new())),
        );
        assert!(cache.get("huge", now).is_none());
    }

    #[test]
    fn a_result_is_not_served_from_its_earliest_expiry_on() {
        let cache = PageCache::default();
        let until = Timestamp::from_unix(2_000_000_000, 0).unwrap();
        let sorted = Sorted {
            valid_until: Some(until),
            ..Sorted::plain(vec!["a".to_string()], Vec::new())
        };
        cache.insert("k".to_string(), Arc::new(sorted));
        let before = Timestamp::from_unix(1_999_999_999, 0).unwrap();
        assert!(cache.get("k", before).is_some());
        assert!(cache.get("k", until).is_none());
        assert!(
            cache.get("k", before).is_none(),
            "an expired entry is dropped"
        );
    }

    #[test]
    fn definite_and_conditional_ids_share_one_order_and_cursor() {
        let sorted = Sorted {
            ids: ["a", "b", "c"].map(String::from).to_vec(),
            missing: vec![None, Some(vec!["ip".to_string()]), None],
            ..Sorted::default()
        };
        let (definite, conditional, cursor) = sorted.page(None, 2, Revision(4));
        assert_eq!(definite, ["a"]);
        assert_eq!(conditional.len(), 1);
        assert_eq!(conditional[0].id, "b");
        assert_eq!(conditional[0].missing_context, ["ip"]);
        assert_eq!(cursor.as_deref(), Some("4:b"));
        let (definite, conditional, cursor) = sorted.page(Some("b"), 2, Revision(4));
        assert_eq!(
            (definite.as_slice(), conditional.len(), cursor),
            (&["c".to_string()][..], 0, None)
        );
    }
}
