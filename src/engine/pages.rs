//! Paging of lookups: the sorted result of a lookup is computed once and kept in a small
//! bounded cache, so that the next page resumes at the cursor (a binary search and a copy
//! of the page) instead of recomputing and sorting the whole result.
//!
//! A cursor is `REVISION:LAST_ID` (ids never contain `:`): it pins the revision of the
//! first page, like SpiceDB's cursors, so every page of one listing comes from the same
//! snapshot and from the cache while the entry lives. A cursor that is a bare id (the
//! older form) resumes after that id at the revision the consistency mode picks. When the
//! entry was evicted, the page is recomputed: slower, never different.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::model::Revision;

use super::{EngineError, LookupStats};

/// How many lookup results the cache keeps at most.
const MAX_ENTRIES: usize = 32;

/// How many ids all kept results may hold together (about 100 MB of short ids); a larger
/// single result is not kept, and each of its pages recomputes it.
const MAX_IDS: usize = 2_000_000;

/// One computed lookup: ids sorted by byte order, and (lookup subjects) the excluded ids.
#[derive(Debug, Default)]
pub(crate) struct Sorted {
    pub ids: Vec<String>,
    pub excluded: Vec<String>,
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
    /// The result kept under `key`, marked as recently used.
    pub fn get(&self, key: &str) -> Option<Arc<Sorted>> {
        let mut entries = self.entries.lock();
        let pos = entries.iter().position(|(it, _)| it == key)?;
        let entry = entries.remove(pos)?;
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
pub(crate) fn page(
    ids: &[String],
    after: Option<&str>,
    limit: usize,
    revision: Revision,
) -> (Vec<String>, Option<String>) {
    let start = after.map_or(0, |after| ids.partition_point(|id| id.as_str() <= after));
    let end = if limit == 0 {
        ids.len()
    } else {
        ids.len().min(start.saturating_add(limit))
    };
    let page = ids.get(start..end).unwrap_or_default().to_vec();
    let cursor = (end < ids.len())
        .then(|| page.last().map(|last| format!("{}:{last}", revision.0)))
        .flatten();
    (page, cursor)
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
        assert!(cache.get("0").is_none());
        assert!(cache.get(&(MAX_ENTRIES + 2).to_string()).is_some());
        cache.insert(
            "huge".to_string(),
            Arc::new(Sorted {
                ids: vec![String::new(); MAX_IDS + 1],
                excluded: Vec::new(),
            }),
        );
        assert!(cache.get("huge").is_none());
    }
}
