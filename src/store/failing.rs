//! [`FailingStore`]: wraps any [`Store`] and fails reads or writes on demand, so that the
//! layers above can test their error paths (a failed store must never turn into an
//! `allowed` answer or a half-applied request).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::model::{ObjectRef, Relationship, Revision, SubjectRef};
use crate::store::{
    ChangeSet, Page, Precondition, RelationshipFilter, Store, StoreError, Update, WriteRejection,
};

/// A store that passes every call through to `inner` until told to fail.
pub struct FailingStore<S> {
    inner: S,
    switches: Arc<Switches>,
}

/// A handle that turns the failures of a [`FailingStore`] on and off after the store was
/// handed to an engine (which owns it).
#[derive(Clone)]
pub struct FailSwitches(Arc<Switches>);

impl FailSwitches {
    /// Makes reads fail (`true`) or pass (`false`) from now on.
    pub fn fail_reads(&self, fail: bool) {
        self.0.fail_reads.store(fail, Ordering::SeqCst);
    }

    /// Makes writes fail (`true`) or pass (`false`) from now on.
    pub fn fail_writes(&self, fail: bool) {
        self.0.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Makes writes commit and then fail (`true`), like a flush failing on a full disk, or
    /// behave (`false`) from now on. Flushes fail too while it is set.
    pub fn fail_after_commit(&self, fail: bool) {
        self.0.fail_after_commit.store(fail, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Switches {
    /// While set, every read (including `head` and the schema) fails.
    fail_reads: AtomicBool,
    /// While set, every write (including schema writes, GC and flush) fails before it
    /// reaches `inner`, so nothing is written.
    fail_writes: AtomicBool,
    /// While set, every write reaches `inner` and commits there, then fails (like a flush
    /// that fails on a full disk after the commit): the caller cannot know it committed.
    fail_after_commit: AtomicBool,
}

impl<S: Store> FailingStore<S> {
    /// Wraps `inner`, failing nothing yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            switches: Arc::default(),
        }
    }

    /// A handle on this store's failure switches that outlives handing the store over.
    pub fn switches(&self) -> FailSwitches {
        FailSwitches(Arc::clone(&self.switches))
    }

    /// Makes writes commit and then fail (`true`), like a flush failing on a full disk, or
    /// behave (`false`) from now on. Flushes fail too while it is set.
    pub fn fail_after_commit(&self, fail: bool) {
        self.switches().fail_after_commit(fail);
    }

    /// Passes `res` through, or fails a write that committed, while told to.
    fn after_commit<T>(&self, res: Result<T, StoreError>) -> Result<T, StoreError> {
        if self.switches.fail_after_commit.load(Ordering::SeqCst) {
            res?;
            return Err(StoreError::Io(
                "injected failure after commit: no space left on device".into(),
            ));
        }
        res
    }

    /// Makes reads fail (`true`) or pass (`false`) from now on.
    pub fn fail_reads(&self, fail: bool) {
        self.switches().fail_reads(fail);
    }

    /// Makes writes fail (`true`) or pass (`false`) from now on.
    pub fn fail_writes(&self, fail: bool) {
        self.switches().fail_writes(fail);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn read_gate(&self) -> Result<(), StoreError> {
        if self.switches.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Io("injected read failure".into()));
        }
        Ok(())
    }

    fn write_gate(&self) -> Result<(), StoreError> {
        if self.switches.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Io("injected write failure".into()));
        }
        Ok(())
    }
}

impl<S: Store> Store for FailingStore<S> {
    fn head(&self) -> Result<Revision, StoreError> {
        self.read_gate()?;
        self.inner.head()
    }

    fn oldest_readable(&self) -> Result<Revision, StoreError> {
        self.read_gate()?;
        self.inner.oldest_readable()
    }

    fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<ChangeSet, WriteRejection>, StoreError> {
        self.write_gate()?;
        self.after_commit(self.inner.write(updates, preconditions))
    }

    fn delete_by_filter(
        &self,
        filter: &RelationshipFilter,
        limit: usize,
    ) -> Result<ChangeSet, StoreError> {
        self.write_gate()?;
        self.after_commit(self.inner.delete_by_filter(filter, limit))
    }

    fn apply_at_one_revision(
        &self,
        updates: &[Update],
        schema: Option<&str>,
    ) -> Result<ChangeSet, StoreError> {
        self.write_gate()?;
        self.inner.apply_at_one_revision(updates, schema)
    }

    fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        self.write_gate()?;
        self.after_commit(self.inner.import(relationships))
    }

    fn read(
        &self,
        filter: &RelationshipFilter,
        revision: Revision,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError> {
        self.read_gate()?;
        self.inner.read(filter, revision, limit, cursor)
    }

    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        revision: Revision,
    ) -> Result<Vec<SubjectRef>, StoreError> {
        self.read_gate()?;
        self.inner.subjects(resource, relation, revision)
    }

    fn resources(
        &self,
        subject: &SubjectRef,
        resource_type: Option<&str>,
        relation: Option<&str>,
        revision: Revision,
    ) -> Result<Vec<(ObjectRef, String)>, StoreError> {
        self.read_gate()?;
        self.inner
            .resources(subject, resource_type, relation, revision)
    }

    fn read_schema(&self) -> Result<Option<(String, Revision)>, StoreError> {
        self.read_gate()?;
        self.inner.read_schema()
    }

    fn write_schema(&self, text: &str) -> Result<Revision, StoreError> {
        self.write_gate()?;
        self.after_commit(self.inner.write_schema(text))
    }

    fn changes_since(&self, since: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        self.read_gate()?;
        self.inner.changes_since(since, limit)
    }

    fn for_each_live(&self, f: &mut dyn FnMut(Relationship)) -> Result<Revision, StoreError> {
        self.read_gate()?;
        self.inner.for_each_live(f)
    }

    fn collect_garbage(&self, horizon: Revision) -> Result<usize, StoreError> {
        self.write_gate()?;
        self.inner.collect_garbage(horizon)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.write_gate()?;
        self.after_commit(self.inner.flush())
    }

    fn recover(&self) -> Result<(), StoreError> {
        self.write_gate()?;
        self.after_commit(self.inner.recover())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, UpdateOp};

    #[test]
    fn failures_are_injected_and_lifted_and_write_nothing() {
        let store = FailingStore::new(MemoryStore::new());
        let update = Update {
            op: UpdateOp::Touch,
            relationship: "doc:a#viewer@user:alice".parse().unwrap(),
        };
        store.fail_writes(true);
        assert!(matches!(
            store.write(std::slice::from_ref(&update), &[]),
            Err(StoreError::Io(_))
        ));
        assert_eq!(store.head().unwrap(), Revision(0));
        store.fail_writes(false);
        store.write(&[update], &[]).unwrap().unwrap();
        store.fail_reads(true);
        assert!(store.head().is_err());
        let resource = ObjectRef::new("doc", "a").unwrap();
        assert!(store.subjects(&resource, "viewer", Revision(1)).is_err());
        store.fail_reads(false);
        assert_eq!(
            store
                .subjects(&resource, "viewer", Revision(1))
                .unwrap()
                .len(),
            1
        );
    }
}
