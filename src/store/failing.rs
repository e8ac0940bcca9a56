//! [`FailingStore`]: wraps any [`Store`] and fails reads or writes on demand, so that the
//! layers above can test their error paths (a failed store must never turn into an
//! `allowed` answer or a half-applied request).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::model::{ObjectRef, Relationship, Revision, SubjectRef};
use crate::store::{
    ChangeSet, Page, Precondition, RelationshipFilter, Store, StoreError, Update, WriteRejection,
};

/// A store that passes every call through to `inner` until told to fail.
pub struct FailingStore<S> {
    inner: S,
    /// While set, every read (including `head` and the schema) fails.
    fail_reads: AtomicBool,
    /// While set, every write (including schema writes, GC and flush) fails before it
    /// reaches `inner`, so nothing is written.
    fail_writes: AtomicBool,
}

impl<S: Store> FailingStore<S> {
    /// Wraps `inner`, failing nothing yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            fail_reads: AtomicBool::new(false),
            fail_writes: AtomicBool::new(false),
        }
    }

    /// Makes reads fail (`true`) or pass (`false`) from now on.
    pub fn fail_reads(&self, fail: bool) {
        self.fail_reads.store(fail, Ordering::SeqCst);
    }

    /// Makes writes fail (`true`) or pass (`false`) from now on.
    pub fn fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn read_gate(&self) -> Result<(), StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Io("injected read failure".into()));
        }
        Ok(())
    }

    fn write_gate(&self) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
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
        self.inner.write(updates, preconditions)
    }

    fn delete_by_filter(&self, filter: &RelationshipFilter) -> Result<ChangeSet, StoreError> {
        self.write_gate()?;
        self.inner.delete_by_filter(filter)
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
        self.inner.import(relationships)
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
        self.inner.write_schema(text)
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
        self.inner.flush()
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
