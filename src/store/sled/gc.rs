//! Garbage collection for [`SledStore`](super::SledStore): removes tuple versions,
//! change-log entries and revision records that no reader at or after the horizon can see,
//! and relationships that expired longer than the retention window ago, on a background
//! thread.
//!
//! Versions share blocks with other versions (format 3), so removing one rewrites its
//! blocks: the collector finds what to remove without locks, then removes it in
//! transactions of at most [`CHUNK_SIZE`] versions, each under the writer mutex (briefly,
//! so writes interleave). The versions it removes are deleted at or before the horizon,
//! which no writer rewrites. It never removes a live version: it removes a version only
//! when its deleted-at revision is set and at most the horizon.
//!
//! Both passes walk the whole resource index only when they may find something there,
//! as two durable marks say (`marks.rs`): a store with no expiring relationship and no
//! ended version reads none of its blocks, so sled's page cache does not fill with them.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::marks::NEVER;
use super::{Inner, Op, TreeSlot, blocks, corrupt, io};
use crate::model::{Relationship, Revision, Timestamp};
use crate::store::keys::{self, Index, LIVE};
use crate::store::{CHUNK_SIZE, StoreError};

/// The background collector thread; stopped by [`Collector::stop`].
pub(super) struct Collector {
    /// Dropping the sender wakes the thread and tells it to stop.
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Collector {
    /// Starts a thread that collects expired history every `interval` while the store
    /// lives. It holds only a weak reference so that it never keeps the database open.
    pub(super) fn start(inner: Weak<Inner>, interval: Duration) -> Self {
        let (stop, wake) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            loop {
                match wake.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                let Some(inner) = Weak::upgrade(&inner) else {
                    return;
                };
                match inner.collect_expired(SystemTime::now()) {
                    Ok(0) => {}
                    Ok(n_removed) => tracing::debug!(n_removed, "garbage collected"),
                    Err(err) => tracing::warn!(%err, "garbage collection failed"),
                }
            }
        });
        Self { stop, thread }
    }

    /// Stops the thread and waits for it.
    pub(super) fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            tracing::warn!("garbage collector thread panicked");
        }
    }
}

impl Inner {
    pub(super) fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        let before = now.checked_sub(self.retention);
        let cutoff = before
            .and_then(|it| it.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |it| u64::try_from(it.as_millis()).unwrap_or(u64::MAX));
        let expired = match before {
            Some(before) => {
                self.collect_expired_relationships(Timestamp::from_system_time(before))?
            }
            None => 0,
        };
        let versions = match self.horizon_at(cutoff)? {
            Some(horizon) => self.collect_garbage(horizon)?,
            None => 0,
        };
        Ok(expired + versions)
    }

    /// Removes the live versions of relationships that expired at or before `before`.
    /// They have been invisible since they expired, so no change-log entry records their
    /// removal. Each removal happens under the writer mutex, after re-reading the version
    /// unchanged, so that no write marks it deleted (re-inserting it) half-way.
    ///
    /// Walks only when `meta/expires_from` is at most `before`, and raises it to the
    /// earliest expiration left when no expiring write committed meanwhile.
    pub(super) fn collect_expired_relationships(
        &self,
        before: Timestamp,
    ) -> Result<usize, StoreError> {
        let generation = {
            let _writer = self.writer.lock();
            if self.marks.expires_from() > before.unix_seconds() {
                return Ok(0);
            }
            self.marks.expiring_writes()
        };
        self.marks.count_expired_walk();
        let mut n_removed = 0;
        let mut from = Vec::new();
        // The earliest second a live version left after this pass expires at.
        let mut expiring_left = NEVER;
        // Whether a version found changed before its removal (the walk proves nothing).
        let mut changed = false;
        loop {
            let mut found = Vec::new();
            blocks::walk(&self.by_resource, &self.layout, &from, &mut |key, value| {
                // A version value without conditions is exactly its deleted-at revision.
                if value.len() <= 8 || keys::decode_deleted(value).map_err(corrupt)? != LIVE {
                    return Ok(true);
                }
                let (mut rel, created) =
                    keys::decode_version_key(Index::Resource, key).map_err(corrupt)?;
                keys::decode_version_value(value, &mut rel).map_err(corrupt)?;
                match rel.expiration {
                    Some(at) if at <= before => {
                        found.push((key.to_vec(), value.to_vec(), rel, created));
                    }
                    Some(at) => expiring_left = expiring_left.min(at.unix_seconds()),
                    None => {}
                }
                Ok(found.len() < CHUNK_SIZE)
            })?;
            let Some((last, ..)) = found.last() else {
                let _writer = self.writer.lock();
                if !changed
                    && self.marks.expiring_writes() == generation
                    && let Some(op) = self.marks.expires_from_op(expiring_left)
                {
                    self.commit(&[op])?;
                    self.marks.raised_expires_from(expiring_left);
                }
                return Ok(n_removed);
            };
            from = last.clone();
            from.push(0);
            let _writer = self.writer.lock();
            let mut ops = Vec::with_capacity(found.len() * 2);
            for (key, value, rel, created) in found {
                // Re-read under the writer: a write may have ended the version meanwhile.
                if blocks::get(&self.by_resource, &self.layout, &key)?.as_deref() != Some(&value) {
                    changed = true;
                    continue;
                }
                Self::remove_version_ops(&key, &rel, created, &mut ops);
                n_removed += 1;
            }
            self.commit(&ops)?;
        }
    }

    /// Removes both entries of one version (`key` is its `by_resource` key).
    fn remove_version_ops(key: &[u8], rel: &Relationship, created: Revision, ops: &mut Vec<Op>) {
        ops.push(Op {
            tree: TreeSlot::ByResource,
            key: key.to_vec(),
            value: None,
        });
        ops.push(Op {
            tree: TreeSlot::BySubject,
            key: keys::version_key(Index::Subject, rel, created),
            value: None,
        });
    }

    /// The newest revision committed at or before `cutoff` (milliseconds since the epoch).
    fn horizon_at(&self, cutoff: u64) -> Result<Option<Revision>, StoreError> {
        let mut res = None;
        for item in self.revisions.iter() {
            let (key, value) = item.map_err(io)?;
            if keys::decode_u64(&value).map_err(corrupt)? > cutoff {
                break;
            }
            res = Some(Revision(keys::decode_u64(&key).map_err(corrupt)?));
        }
        Ok(res)
    }

    pub(super) fn collect_garbage(&self, horizon: Revision) -> Result<usize, StoreError> {
        let horizon = horizon.min(Revision(self.watermark.load(Ordering::Acquire)));
        if horizon.0 <= self.oldest.load(Ordering::Acquire) {
            return Ok(0);
        }
        // Raise the horizon durably before removing anything, so that neither a reader
        // now nor a reader after a crash reads below it.
        self.meta
            .insert(keys::META_OLDEST, &keys::encode_u64(horizon.0))
            .map_err(io)?;
        self.db.flush().map_err(io)?;
        self.oldest.fetch_max(horizon.0, Ordering::AcqRel);

        let mut n_removed = self.collect_versions(horizon)?;
        // The change log and the revision records below the horizon: a range read that
        // stops at the horizon, so it costs what it removes (and one leaf) each pass.
        let end = keys::change_key(horizon, u32::MAX);
        for item in self.changes.range(..=end) {
            let (key, _) = item.map_err(io)?;
            self.changes.remove(&key).map_err(io)?;
            n_removed += 1;
        }
        for item in self.revisions.range(..keys::encode_u64(horizon.0)) {
            let (key, _) = item.map_err(io)?;
            self.revisions.remove(&key).map_err(io)?;
            n_removed += 1;
        }
        Ok(n_removed)
    }

    /// Removes the versions ended at or before `horizon`, walking the resource index only
    /// when `meta/ended_since` says one may exist; then raises that mark to the oldest
    /// ended version left (see `marks.rs`).
    fn collect_versions(&self, horizon: Revision) -> Result<usize, StoreError> {
        // Under the writer: every version ended at or before `start` is committed.
        let start = {
            let writer = self.writer.lock();
            if self.marks.ended_since() > horizon.0 {
                return Ok(0);
            }
            writer.head
        };
        self.marks.count_garbage_walk();
        let mut n_removed = 0;
        let mut from = Vec::new();
        // The oldest deleted-at revision above the horizon the walk saw.
        let mut oldest_left = u64::MAX;
        loop {
            let mut found = Vec::new();
            blocks::walk(&self.by_resource, &self.layout, &from, &mut |key, value| {
                let deleted = keys::decode_deleted(value).map_err(corrupt)?;
                // INVARIANT: a live version has deleted == LIVE and is never removed.
                if deleted == LIVE {
                    return Ok(true);
                }
                if deleted > horizon.0 {
                    oldest_left = oldest_left.min(deleted);
                    return Ok(true);
                }
                let (rel, created) =
                    keys::decode_version_key(Index::Resource, key).map_err(corrupt)?;
                found.push((key.to_vec(), rel, created));
                Ok(found.len() < CHUNK_SIZE)
            })?;
            let Some((last, ..)) = found.last() else {
                break;
            };
            from = last.clone();
            from.push(0);
            let mut ops = Vec::with_capacity(found.len() * 2);
            for (key, rel, created) in &found {
                Self::remove_version_ops(key, rel, *created, &mut ops);
            }
            let _writer = self.writer.lock();
            self.commit(&ops)?;
            n_removed += found.len();
        }
        // What stays ended: what the walk saw above the horizon, and whatever a write
        // ended after the walk began (at revisions after `start`).
        let _writer = self.writer.lock();
        let next = if self.marks.newest_ended() > start.0 {
            oldest_left.min(start.0 + 1)
        } else {
            oldest_left
        };
        if let Some(op) = self.marks.ended_since_op(next) {
            self.commit(&[op])?;
            self.marks.raised_ended_since(next);
        }
        Ok(n_removed)
    }
}
