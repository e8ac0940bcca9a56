//! The bounded check cache: answers keyed by everything that determines them — the
//! schema epoch, the revision and the request (its text, so a hit needs no symbol lookups
//! in the index) — so an answer is only ever reused for the very snapshot it was computed
//! at. A [`CacheKey`] is the parts copied into one buffer, each prefixed by its length:
//! unambiguous by construction and built without the formatting machinery (a `format!`ed
//! `String` per check cost 0.8 µs of the 1.6 µs a cached check takes, docs/BENCHMARKS.md).
//!
//! Bounded by clearing: when an insert finds the cache full, every entry is dropped
//! (amortized O(1), and old revisions are useless once the head moves anyway).

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;

use super::api::{CacheStats, CheckParts, CheckRequest, Context};
use crate::model::Revision;

/// Everything a check answer depends on: schema epoch, revision, the request and its
/// context (answers that read expiring tuples are not cached at all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CacheKey(Vec<u8>);

impl CacheKey {
    pub fn new(epoch: u64, revision: Revision, request: &CheckRequest) -> Self {
        let mut key = Vec::new();
        write_key(
            &mut key,
            epoch,
            revision,
            &CheckParts::of(request),
            request.context.as_ref(),
        );
        Self(key)
    }
}

/// Writes the key of a question into `key` (emptied first): the same bytes whether the
/// parts come from a parsed request or from the client's text.
fn write_key(
    key: &mut Vec<u8>,
    epoch: u64,
    revision: Revision,
    parts: &CheckParts<'_>,
    context: Option<&Context>,
) {
    // Each text part costs its bytes and an 8-byte length.
    let texts = [
        parts.resource_type.len(),
        parts.resource_id.len(),
        parts.permission.len(),
        parts.subject_type.len(),
        parts.subject_id.len(),
        parts.subject_relation.map_or(0, str::len),
    ];
    key.clear();
    key.reserve(16 + 2 + texts.iter().map(|it| it + 8).sum::<usize>());
    key.extend_from_slice(&epoch.to_le_bytes());
    key.extend_from_slice(&revision.0.to_le_bytes());
    push_text(key, parts.resource_type);
    push_text(key, parts.resource_id);
    push_text(key, parts.permission);
    push_text(key, parts.subject_type);
    push_text(key, parts.subject_id);
    match parts.subject_relation {
        None => key.push(0),
        Some(relation) => {
            key.push(1);
            push_text(key, relation);
        }
    }
    match context.filter(|it| !it.is_empty()) {
        None => key.push(0),
        Some(context) => {
            key.push(1);
            // serde_json maps are sorted by key, so equal contexts give equal text.
            let text = serde_json::Value::Object(context.clone()).to_string();
            push_text(key, &text);
        }
    }
}

/// `text` prefixed by its length, so no part's bytes can be read as another's.
fn push_text(key: &mut Vec<u8>, text: &str) {
    key.extend_from_slice(&(text.len() as u64).to_le_bytes());
    key.extend_from_slice(text.as_bytes());
}

thread_local! {
    /// The buffer [`CheckCache::peek`] writes its probe's key into, kept between calls.
    static PROBE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The check cache with hit and miss counters.
pub(crate) struct CheckCache {
    answers: DashMap<Vec<u8>, bool, FxBuildHasher>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CheckCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            answers: DashMap::with_hasher(FxBuildHasher),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The cached answer, counting a hit or a miss.
    pub fn get(&self, key: &CacheKey) -> Option<bool> {
        if !self.enabled() {
            return None;
        }
        let found = self.answers.get(key.0.as_slice()).map(|it| *it);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The cached answer to a question without context, its key written into a buffer
    /// kept per thread (no allocation); counts a hit, never a miss, because a caller
    /// that finds nothing asks again through [`CheckCache::get`].
    pub fn peek(&self, epoch: u64, revision: Revision, parts: &CheckParts<'_>) -> Option<bool> {
        if !self.enabled() {
            return None;
        }
        let found = PROBE.with_borrow_mut(|key| {
            write_key(key, epoch, revision, parts, None);
            self.answers.get(key.as_slice()).map(|it| *it)
        });
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    pub fn insert(&self, key: CacheKey, allowed: bool) {
        if !self.enabled() {
            return;
        }
        if self.answers.len() >= self.capacity {
            self.answers.clear();
        }
        self.answers.insert(key.0, allowed);
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.answers.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> CheckRequest {
        let (resource, rest) = text.split_once('#').unwrap();
        let (permission, subject) = rest.split_once('@').unwrap();
        CheckRequest::new(
            resource.parse().unwrap(),
            permission,
            subject.parse().unwrap(),
        )
    }

    #[test]
    fn keys_differ_whenever_an_answer_could() {
        let base = CacheKey::new(1, Revision(2), &request("doc:a#view@user:b"));
        let different = [
            CacheKey::new(2, Revision(2), &request("doc:a#view@user:b")),
            CacheKey::new(1, Revision(3), &request("doc:a#view@user:b")),
            CacheKey::new(1, Revision(2), &request("doc:ab#view@user:b")),
            CacheKey::new(1, Revision(2), &request("doc:a#edit@user:b")),
            CacheKey::new(1, Revision(2), &request("doc:a#view@user:c")),
            CacheKey::new(1, Revision(2), &request("doc:a#view@group:b#member")),
            CacheKey::new(1, Revision(2), &request("doc:a#view@user:*")),
            CacheKey::new(1, Revision(2), &request("docs:a#view@user:b")),
        ];
        for key in &different {
            assert_ne!(&base, key);
        }
        assert_eq!(
            base,
            CacheKey::new(1, Revision(2), &request("doc:a#view@user:b"))
        );
    }

    #[test]
    fn parts_cannot_run_into_each_other() {
        // The same bytes split differently between the parts make different keys.
        let a = CacheKey::new(1, Revision(1), &request("docs:x#view@user:y"));
        let b = CacheKey::new(1, Revision(1), &request("doc:sx#view@user:y"));
        assert_ne!(a, b);
    }

    #[test]
    fn a_context_is_part_of_the_key_and_an_empty_one_is_none() {
        let plain = request("doc:a#view@user:b");
        let mut empty = plain.clone();
        empty.context = Some(Default::default());
        let mut with = plain.clone();
        let mut context = serde_json::Map::new();
        context.insert("ip".to_string(), serde_json::json!("10.0.0.1"));
        with.context = Some(context);
        let key = |request: &CheckRequest| CacheKey::new(1, Revision(1), request);
        assert_eq!(key(&plain), key(&empty));
        assert_ne!(key(&plain), key(&with));
    }

    #[test]
    fn the_cache_answers_what_was_inserted_under_the_same_key_only() {
        let cache = CheckCache::new(10);
        let key = CacheKey::new(1, Revision(1), &request("doc:a#view@user:b"));
        let other = CacheKey::new(1, Revision(2), &request("doc:a#view@user:b"));
        assert_eq!(cache.get(&key), None);
        cache.insert(key.clone(), true);
        assert_eq!(cache.get(&key), Some(true));
        assert_eq!(cache.get(&other), None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries), (1, 2, 1));
    }
}
