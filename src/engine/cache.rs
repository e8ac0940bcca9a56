//! The bounded check cache: answers keyed by everything that determines them — the
//! schema epoch, the revision and the request (as text, so a hit needs no symbol lookups
//! in the index) — so an answer is only ever reused for the very snapshot it was computed
//! at.
//!
//! Bounded by clearing: when an insert finds the cache full, every entry is dropped
//! (amortized O(1), and old revisions are useless once the head moves anyway).

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;

use super::api::CacheStats;

/// The check cache with hit and miss counters.
pub(crate) struct CheckCache {
    answers: DashMap<String, bool, FxBuildHasher>,
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
    pub fn get(&self, key: &str) -> Option<bool> {
        if !self.enabled() {
            return None;
        }
        let found = self.answers.get(key).map(|it| *it);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn insert(&self, key: String, allowed: bool) {
        if !self.enabled() {
            return;
        }
        if self.answers.len() >= self.capacity {
            self.answers.clear();
        }
        self.answers.insert(key, allowed);
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.answers.len(),
        }
    }
}
