//! The read side of [`Inner`]: choose the revision from the consistency mode, resolve the
//! request's names against the schema (every unknown name is an error naming its field),
//! then run the walk under a read lock of the index and, for checks, the cache.
//!
//! Long walks (lookups, bulk checks) do not hold the index lock throughout: they run in
//! chunks of [`CHUNK_STEPS`] steps (or [`BULK_CHUNK`] items) and release the lock in
//! between, so that a waiting writer, and the readers queued behind it, get in. The
//! revision chosen at the start stays readable across chunks (the index is MVCC and
//! symbols are never reused); if the collector dropped it meanwhile, the answer is
//! [`EngineError::SnapshotExpired`], never a mix of two revisions.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLockReadGuard;

use crate::model::{ObjectRef, Revision, SubjectRef, Timestamp};
use crate::schema::TypeId;
use crate::store::RelationshipFilter;

use super::cache::CacheKey;
use super::check::{Checker, Goal, Snapshot, Subject, UNKNOWN_RESOURCE, UNKNOWN_SUBJECT};
use super::conditional::{Answer, CondChecker};
use super::deadline::Budget;
use super::index::{IndexData, NO_REL, Node, ObjKey};
use super::pages::{Cursor, KeptWalk, Sorted};
use super::plan::LoadedSchema;
use super::writer::Inner;
use super::{
    BulkDecision, CheckAnswer, CheckParts, CheckRequest, ConditionalId, Consistency, Context,
    Decision, EngineError, ExpandDepth, Expansion, Permissionship, ReadPage, ResourcePage,
    SubjectsAnswer, expand, filters, lookup,
};

/// Steps of a lookup walk taken under one hold of the index read lock.
const CHUNK_STEPS: usize = 4_096;

/// Items of a bulk check answered under one hold of the index read lock.
const BULK_CHUNK: usize = 64;

/// A schema, a locked index and the revision to read at.
pub(crate) struct View<'i> {
    pub loaded: Arc<LoadedSchema>,
    pub data: RwLockReadGuard<'i, IndexData>,
    pub revision: Revision,
    pub depth_limit: u32,
    pub budget: &'i Budget,
}

impl View<'_> {
    /// Refuses a request context with a value that does not fit the type a caveat of the
    /// view's schema declares for its key (see `engine::context`): called before any walk
    /// and before the check cache, so the answer never depends on what a walk reached.
    pub fn validate_context(&self, context: Option<&Context>) -> Result<(), EngineError> {
        self.loaded.plan.context_types.validate(context)
    }

    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            schema: &self.loaded.schema,
            plan: &self.loaded.plan,
            index: &self.data,
            rev: self.revision.0,
            depth_limit: self.depth_limit,
            budget: self.budget,
        }
    }

    /// The goal `resource#permission`, or an error naming the bad field. The id is
    /// [`UNKNOWN_RESOURCE`] when no relationship ever named it.
    pub fn goal(&self, resource: &ObjectRef, permission: &str) -> Result<Goal, EngineError> {
        let plan = &self.loaded.plan;
        // Every schema name is interned, so names resolve with integer lookups.
        let ty = self
            .data
            .sym(&resource.object_type)
            .and_then(|sym| plan.type_of(sym))
            .ok_or_else(|| {
                EngineError::invalid(
                    "resource",
                    format!("unknown type `{}`", resource.object_type),
                )
            })?;
        let rel = self
            .data
            .sym(permission)
            .and_then(|sym| plan.rel_of(ty, sym))
            .ok_or_else(|| {
                EngineError::invalid(
                    "permission",
                    format!(
                        "type `{}` has no relation or permission `{permission}`",
                        resource.object_type
                    ),
                )
            })?;
        Ok(Goal {
            ty,
            id: self
                .data
                .sym(&resource.object_id)
                .unwrap_or(UNKNOWN_RESOURCE),
            rel,
        })
    }

    /// The goal `resource_type#permission` with no particular object (for lookups), or an
    /// error naming the `resource_type` or `permission` field.
    pub fn type_goal(&self, resource_type: &str, permission: &str) -> Result<Goal, EngineError> {
        let probe = ObjectRef {
            object_type: resource_type.to_string(),
            object_id: String::new(),
        };
        self.goal(&probe, permission).map_err(|err| match err {
            EngineError::InvalidInput {
                field: "resource",
                message,
            } => EngineError::InvalidInput {
                field: "resource_type",
                message,
            },
            other => other,
        })
    }

    /// The subject, or an error naming the `subject` field. An id the index never saw is
    /// [`UNKNOWN_SUBJECT`], or [`UNKNOWN_RESOURCE`] when it equals `resource_id` (so the
    /// "self" rule still sees them as one object).
    pub fn subject(
        &self,
        subject: &SubjectRef,
        resource_id: Option<&str>,
    ) -> Result<Subject, EngineError> {
        let plan = &self.loaded.plan;
        let object_type = &subject.object.object_type;
        let ty = self.data.sym(object_type);
        let type_id = ty.and_then(|sym| plan.type_of(sym)).ok_or_else(|| {
            EngineError::invalid("subject", format!("unknown type `{object_type}`"))
        })?;
        let ty = plan.type_sym[type_id.0 as usize];
        if subject.is_wildcard() {
            return Ok(Subject::Wildcard(ty));
        }
        let subject_id = subject.object.object_id.as_str();
        let id = match self.data.sym(subject_id) {
            Some(id) => id,
            None if resource_id == Some(subject_id) => UNKNOWN_RESOURCE,
            None => UNKNOWN_SUBJECT,
        };
        match &subject.relation {
            None => Ok(Subject::Object(ObjKey { ty, id })),
            Some(rel) => {
                let rel_id = self
                    .data
                    .sym(rel)
                    .and_then(|sym| plan.rel_of(type_id, sym))
                    .ok_or_else(|| {
                        EngineError::invalid(
                            "subject",
                            format!("type `{object_type}` has no relation or permission `{rel}`"),
                        )
                    })?;
                Ok(Subject::Set(Node {
                    ty,
                    id,
                    rel: plan.rel_sym[rel_id.0 as usize],
                }))
            }
        }
    }
}

impl Inner {
    /// Locks the index and picks the revision `consistency` asks for.
    pub fn view<'i>(
        &'i self,
        consistency: Consistency,
        budget: &'i Budget,
    ) -> Result<View<'i>, EngineError> {
        budget.check()?;
        // `full` is the store's newest revision, which another server may have written:
        // catch up with the store's log first (a store that cannot answer is a 503, never
        // a stale answer). A store only this process writes needs no asking: the index
        // applied every write before acknowledging it. A revision ahead of this index may
        // be another server's: catch up before judging it.
        match consistency {
            Consistency::Full if !self.store.exclusive() => {
                self.follow()?;
            }
            Consistency::AtLeastAsFresh { revision }
            | Consistency::AtExactSnapshot { revision }
                if revision > self.head() =>
            {
                self.follow()?;
            }
            _ => {}
        }
        let loaded = self.require_schema()?;
        let data = self.index.read();
        let head = data.head();
        let oldest = data.oldest();
        let revision = match consistency {
            Consistency::Full => head,
            Consistency::AtLeastAsFresh { revision } => {
                if revision > head {
                    return Err(EngineError::SnapshotAhead {
                        requested: revision,
                        head,
                    });
                }
                head
            }
            Consistency::AtExactSnapshot { revision } => {
                if revision > head {
                    return Err(EngineError::SnapshotAhead {
                        requested: revision,
                        head,
                    });
                }
                if revision < oldest {
                    return Err(EngineError::SnapshotExpired {
                        requested: revision,
                        oldest,
                    });
                }
                revision
            }
            Consistency::MinimizeLatency => {
                let mut quantized = self.quantized.lock();
                let now = Instant::now();
                if now.duration_since(quantized.1) >= self.config.quantization_window
                    || quantized.0 < oldest
                    || quantized.0 > head
                {
                    *quantized = (head, now);
                }
                quantized.0
            }
        };
        Ok(View {
            loaded,
            data,
            revision,
            depth_limit: self.config.depth_limit,
            budget,
        })
    }

    /// Locks the index again for the next chunk of a walk at `revision`, with the schema
    /// the walk started with. The revision must still be readable.
    fn relock<'i>(
        &'i self,
        loaded: &Arc<LoadedSchema>,
        revision: Revision,
        budget: &'i Budget,
    ) -> Result<View<'i>, EngineError> {
        budget.check()?;
        let data = self.index.read();
        let oldest = data.oldest();
        if revision < oldest {
            return Err(EngineError::SnapshotExpired {
                requested: revision,
                oldest,
            });
        }
        Ok(View {
            loaded: Arc::clone(loaded),
            data,
            revision,
            depth_limit: self.config.depth_limit,
            budget,
        })
    }

    /// The view for a page: at the revision the cursor pins, else as `consistency` says.
    fn page_view<'i>(
        &'i self,
        consistency: Consistency,
        pinned: Option<Revision>,
        budget: &'i Budget,
    ) -> Result<View<'i>, EngineError> {
        match pinned {
            Some(revision) => self.view(Consistency::AtExactSnapshot { revision }, budget),
            None => self.view(consistency, budget),
        }
    }

    pub fn check(
        &self,
        request: &CheckRequest,
        consistency: Consistency,
        budget: &Budget,
    ) -> Result<Decision, EngineError> {
        let view = self.view(consistency, budget)?;
        // The clock is read only by a check that meets a caveat or an expiration.
        let answer = self.check_in(&view, request, None, &mut None)?;
        Ok(Decision::new(answer, view.revision))
    }

    /// The check cache's answer to a question without context, looked up by the parts as
    /// the client wrote them. `None` when the cache holds none, and also when choosing the
    /// revision fails: the caller then asks through [`Self::check`], which validates the
    /// question first and reports its errors in their usual order.
    pub fn cached_check(
        &self,
        parts: &CheckParts<'_>,
        consistency: Consistency,
        budget: &Budget,
    ) -> Option<Decision> {
        if !self.cache.enabled() {
            return None;
        }
        let view = self.view(consistency, budget).ok()?;
        let allowed = self.cache.peek(view.loaded.epoch, view.revision, parts)?;
        Some(Decision::new(
            CheckAnswer::from_bool(allowed),
            view.revision,
        ))
    }

    pub fn check_bulk(
        &self,
        requests: &[CheckRequest],
        consistency: Consistency,
        budget: &Budget,
    ) -> Result<BulkDecision, EngineError> {
        let first = self.view(consistency, budget)?;
        let (loaded, revision) = (Arc::clone(&first.loaded), first.revision);
        // One "now" for every item of the bulk.
        let now = Some(Timestamp::now());
        let mut results = Vec::with_capacity(requests.len());
        let mut first = Some(first);
        for chunk in requests.chunks(BULK_CHUNK) {
            let view = match first.take() {
                Some(view) => view,
                None => self.relock(&loaded, revision, budget)?,
            };
            self.check_chunk(&view, chunk, now, &mut results)?;
        }
        Ok(BulkDecision { results, revision })
    }

    /// The items of one chunk of a bulk check, under one lock, sharing a walk per subject.
    fn check_chunk(
        &self,
        view: &View<'_>,
        requests: &[CheckRequest],
        now: Option<Timestamp>,
        results: &mut Vec<Result<CheckAnswer, EngineError>>,
    ) -> Result<(), EngineError> {
        let mut checkers: Vec<Checker<'_>> = Vec::new();
        let snapshot = view.snapshot();
        for request in requests {
            let resource_id = Some(request.resource.object_id.as_str());
            let res = view
                .subject(&request.subject, resource_id)
                .and_then(|subject| {
                    if view.data.has_conditional() {
                        return self.check_in(view, request, now, &mut None);
                    }
                    let pos = checkers.iter().position(|it| it.subject() == subject);
                    let checker = match pos {
                        Some(pos) => &mut checkers[pos],
                        None => {
                            checkers.push(Checker::new(snapshot, subject));
                            let last = checkers.len() - 1;
                            &mut checkers[last]
                        }
                    };
                    self.check_in(view, request, now, &mut Some(checker))
                });
            // A cancelled request fails as a whole, not item by item.
            if matches!(res, Err(EngineError::DeadlineExceeded)) {
                return Err(EngineError::DeadlineExceeded);
            }
            results.push(res);
        }
        Ok(())
    }

    /// One check inside `view`, through the cache, reusing `shared` (a walk for the same
    /// subject) when given. While the index keeps caveated or expiring tuples, the
    /// three-valued walk answers ([`conditional`]) at `now` (the clock when `None`);
    /// otherwise the plain walk, unchanged, which never reads the clock.
    fn check_in<'v>(
        &self,
        view: &'v View<'_>,
        request: &CheckRequest,
        now: Option<Timestamp>,
        shared: &mut Option<&mut Checker<'v>>,
    ) -> Result<CheckAnswer, EngineError> {
        let context = request.context.as_ref();
        view.validate_context(context)?;
        let conditional = view.data.has_conditional();
        // The cache is keyed by the request's text, so a hit costs no symbol lookups.
        let key = self
            .cache
            .enabled()
            .then(|| CacheKey::new(view.loaded.epoch, view.revision, request));
        if let Some(key) = &key
            && let Some(allowed) = self.cache.get(key)
        {
            return Ok(CheckAnswer::from_bool(allowed));
        }
        let goal = view.goal(&request.resource, &request.permission)?;
        let subject = view.subject(&request.subject, Some(&request.resource.object_id))?;
        if conditional {
            let now = now.unwrap_or_else(Timestamp::now);
            let mut checker = CondChecker::new(view.snapshot(), subject, context, now);
            let answer = checker.check(goal)?;
            // An answer that read an expiring tuple could change with the clock alone;
            // a conditional one is not cached either.
            let cacheable = checker.earliest_expiry.is_none();
            let answer = match answer {
                Answer::Has => CheckAnswer::HAS,
                Answer::No => CheckAnswer::NO,
                Answer::Conditional(mut missing) => {
                    missing.sort();
                    missing.dedup();
                    return Ok(CheckAnswer {
                        permissionship: Permissionship::ConditionalPermission,
                        missing_context: missing,
                    });
                }
            };
            if let Some(key) = key
                && cacheable
            {
                self.cache.insert(key, answer.allowed());
            }
            return Ok(answer);
        }
        let allowed = match shared {
            Some(checker) => checker.check(goal)?,
            None => Checker::new(view.snapshot(), subject).check(goal)?,
        };
        if let Some(key) = key {
            self.cache.insert(key, allowed);
        }
        Ok(CheckAnswer::from_bool(allowed))
    }

    pub fn expand(
        &self,
        resource: &ObjectRef,
        permission: &str,
        depth: ExpandDepth,
        consistency: Consistency,
        budget: &Budget,
    ) -> Result<Expansion, EngineError> {
        let view = self.view(consistency, budget)?;
        let goal = view.goal(resource, permission)?;
        let tree = expand::expand(
            view.snapshot(),
            resource,
            goal,
            depth,
            self.config.expand_limit,
            Timestamp::now(),
        )?;
        Ok(Expansion {
            tree,
            revision: view.revision,
        })
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the public lookup call, field by field, plus the budget"
    )]
    pub fn lookup_resources(
        &self,
        resource_type: &str,
        permission: &str,
        subject: &SubjectRef,
        context: Option<&Context>,
        limit: usize,
        cursor: Option<&str>,
        consistency: Consistency,
        budget: &Budget,
    ) -> Result<ResourcePage, EngineError> {
        let cursor = cursor.map(Cursor::parse).transpose()?;
        let view = self.page_view(consistency, cursor.map(|it| it.revision), budget)?;
        view.validate_context(context)?;
        let now = Timestamp::now();
        let goal = view.type_goal(resource_type, permission)?;
        let subject_key = view.subject(subject, None)?;
        let conditional = view.data.has_conditional();
        let revision = view.revision;
        let at = cursor.unwrap_or(Cursor::start(revision));
        let listing = page_key(
            format!(
                "resources|{}|{revision}|{resource_type}#{permission}@{subject}",
                view.loaded.epoch
            ),
            conditional,
            context,
        );
        // Three-valued when the index keeps caveated or expiring tuples: the same walk,
        // each resource reached judged by the three-valued check (conditional ids share
        // the walk order and the cursor with definite ones).
        let fresh = || match conditional {
            false => {
                lookup::ResourceWalk::new(subject_key, &subject.object.object_id, goal.ty, goal.rel)
            }
            true => lookup::ResourceWalk::three_valued(
                subject_key,
                &subject.object.object_id,
                goal.ty,
                goal.rel,
                context.cloned(),
                now,
            ),
        };
        let kept = self.pages.take_walk(&walk_key(&listing, at));
        let (listed, next) = self.streamed(view, kept, fresh, &listing, at, limit, now, budget)?;
        let mut page = ResourcePage {
            resources: Vec::new(),
            conditional: Vec::new(),
            cursor: next.map(|it| it.to_string()),
            revision,
        };
        for (id, missing) in listed {
            match missing {
                None => page.resources.push(id),
                Some(missing_context) => page.conditional.push(ConditionalId {
                    id,
                    missing_context,
                }),
            }
        }
        Ok(page)
    }

    /// One page of a lookup in walk order: the paused walk kept under the cursor `at` goes
    /// on, or (none kept, or its results expired by `now`) `fresh` walks from the start,
    /// skipping the `at.offset` results before the page and checking their digest. The
    /// walk is kept under the next cursor, with the one result it found past the page (so
    /// that the last page knows it is the last). The page's results and the next cursor.
    #[expect(
        clippy::too_many_arguments,
        reason = "the view, the walk (kept or fresh), the listing and the page, the budget"
    )]
    fn streamed<W: lookup::Pausable + KeptWalk>(
        &self,
        view: View<'_>,
        kept: Option<Box<W>>,
        fresh: impl FnOnce() -> W,
        listing: &str,
        at: Cursor,
        limit: usize,
        now: Timestamp,
        budget: &Budget,
    ) -> Result<(Vec<lookup::Listed>, Option<Cursor>), EngineError> {
        let (loaded, revision) = (Arc::clone(&view.loaded), view.revision);
        // A kept walk whose results depend on a relationship expired since is not resumed.
        let kept = kept.filter(|walk| walk.expires().is_none_or(|at| now < at));
        let fresh_walk = kept.is_none();
        let (mut walk, mut to_skip) = match kept {
            Some(walk) => (walk, 0),
            None => {
                self.pages.record_walk();
                (Box::new(fresh()), at.offset)
            }
        };
        let steps_before = walk.steps();
        // One result past the page, so that the last page has no cursor.
        let need = if limit == 0 {
            usize::MAX
        } else {
            limit.saturating_add(1)
        };
        let mut skipped = Cursor::start(revision);
        let mut view = Some(view);
        let (ids, next) = loop {
            let chunk = match view.take() {
                Some(view) => view,
                None => self.relock(&loaded, revision, budget)?,
            };
            let snap = chunk.snapshot();
            let want = usize::try_from(to_skip)
                .unwrap_or(usize::MAX)
                .saturating_add(need);
            let complete = walk.run(snap, CHUNK_STEPS, want)?;
            if to_skip > 0 {
                let n = to_skip.min(walk.found_len() as u64);
                for (id, _) in walk.take(snap.index, n as usize) {
                    skipped.advance(&id);
                }
                to_skip -= n;
            }
            if complete || (to_skip == 0 && walk.found_len() >= need) {
                // A new walk must find, before the page, the results the cursor counts.
                if to_skip > 0 || fresh_walk && skipped != at {
                    return Err(at.unknown());
                }
                let ids = walk.take(snap.index, if limit == 0 { usize::MAX } else { limit });
                let mut next = at;
                for (id, _) in &ids {
                    next.advance(id);
                }
                let more = !walk.is_complete() || walk.found_len() > 0;
                break (ids, more.then_some(next));
            }
        };
        self.pages.record_steps(walk.steps() - steps_before);
        if let Some(next) = next {
            self.pages.keep_walk(walk_key(listing, next), walk);
        }
        Ok((ids, next))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the public lookup call, field by field, plus the budget"
    )]
    pub fn lookup_subjects(
        &self,
        resource: &ObjectRef,
        permission: &str,
        subject_type: &str,
        context: Option<&Context>,
        limit: usize,
        cursor: Option<&str>,
        consistency: Consistency,
        budget: &Budget,
    ) -> Result<SubjectsAnswer, EngineError> {
        let cursor = cursor.map(Cursor::parse).transpose()?;
        let view = self.page_view(consistency, cursor.map(|it| it.revision), budget)?;
        view.validate_context(context)?;
        let now = Timestamp::now();
        let goal = view.goal(resource, permission)?;
        let definition = view.loaded.schema.definition(subject_type).ok_or_else(|| {
            EngineError::invalid("subject_type", format!("unknown type `{subject_type}`"))
        })?;
        let subject_type_id = definition.id;
        let conditional = view.data.has_conditional();
        let (loaded, revision) = (Arc::clone(&view.loaded), view.revision);
        let key = page_key(
            format!(
                "subjects|{}|{revision}|{resource}#{permission}@{subject_type}",
                loaded.epoch
            ),
            conditional,
            context,
        );
        let at = cursor.unwrap_or(Cursor::start(revision));
        if !conditional {
            // Streamed in walk order, unless a wildcard grants the permission: then
            // `excluded` needs every candidate, and the whole result is computed below.
            let type_sym = loaded.plan.type_sym[subject_type_id.0 as usize];
            let kept = self.pages.take_walk(&walk_key(&key, at));
            let wildcard = kept.is_none()
                && Checker::new(view.snapshot(), Subject::Wildcard(type_sym)).check(goal)?;
            if !wildcard {
                let fresh = || lookup::SubjectWalk::new(goal, type_sym, &resource.object_id);
                let (listed, next) =
                    self.streamed(view, kept, fresh, &key, at, limit, now, budget)?;
                return Ok(SubjectsAnswer {
                    subjects: listed.into_iter().map(|(id, _)| id).collect(),
                    conditional: Vec::new(),
                    excluded: Vec::new(),
                    cursor: next.map(|it| it.to_string()),
                    revision,
                });
            }
        }
        let sorted = match self.pages.sorted(&key, now) {
            Some(sorted) => sorted,
            None => {
                self.pages.record_walk();
                let sorted = if conditional {
                    self.subjects_three_valued(
                        view,
                        resource,
                        goal,
                        subject_type_id,
                        context,
                        now,
                        budget,
                    )?
                } else {
                    self.subjects_plain(view, resource, goal, subject_type_id, budget)?
                };
                let sorted = Arc::new(sorted);
                self.pages.keep_sorted(key, Arc::clone(&sorted));
                sorted
            }
        };
        let (subjects, conditional, next) = sorted.page(at, limit)?;
        let excluded = if at.offset == 0 {
            sorted.excluded.clone()
        } else {
            Vec::new()
        };
        Ok(SubjectsAnswer {
            subjects,
            conditional,
            excluded,
            cursor: next.map(|it| it.to_string()),
            revision,
        })
    }

    /// Lookup subjects over plain tuples only (two-valued).
    fn subjects_plain(
        &self,
        view: View<'_>,
        resource: &ObjectRef,
        goal: Goal,
        subject_type_id: TypeId,
        budget: &Budget,
    ) -> Result<Sorted, EngineError> {
        let (loaded, revision) = (Arc::clone(&view.loaded), view.revision);
        let candidates = lookup::subject_candidates(view.snapshot(), goal, subject_type_id)?;
        drop(view);
        let mut allowed = Vec::new();
        let mut denied = Vec::new();
        for chunk in candidates.ids.chunks(CHUNK_STEPS) {
            let view = self.relock(&loaded, revision, budget)?;
            lookup::confirm_subjects(
                view.snapshot(),
                goal,
                subject_type_id,
                chunk,
                candidates.needs_check,
                &mut allowed,
                &mut denied,
            )?;
        }
        if goal.id == UNKNOWN_RESOURCE {
            name_unknown_resource(allowed.iter_mut().chain(denied.iter_mut()), resource);
        }
        self.pages.record_steps(candidates.ids.len() as u64 + 1);
        allowed.sort_unstable();
        if candidates.wildcard {
            // `*` sorts before every id (ids use no byte below `+`).
            allowed.insert(0, crate::model::WILDCARD_ID.to_string());
            denied.sort_unstable();
        } else {
            denied.clear();
        }
        Ok(Sorted::plain(allowed, denied))
    }

    /// Lookup subjects while the index keeps caveated or expiring tuples: every candidate
    /// (and the wildcard) answered by the three-valued check.
    #[expect(
        clippy::too_many_arguments,
        reason = "the lookup's resolved request, its context and clock, and the budget"
    )]
    fn subjects_three_valued(
        &self,
        view: View<'_>,
        resource: &ObjectRef,
        goal: Goal,
        subject_type_id: TypeId,
        context: Option<&Context>,
        now: Timestamp,
        budget: &Budget,
    ) -> Result<Sorted, EngineError> {
        use lookup::conditional::{Judged, judge_subjects};
        let (loaded, revision) = (Arc::clone(&view.loaded), view.revision);
        let type_sym = loaded.plan.type_sym[subject_type_id.0 as usize];
        let (ids, _) = lookup::collect_candidates(view.snapshot(), goal, type_sym, true)?;
        let mut wildcard = Judged::default();
        judge_subjects(
            view.snapshot(),
            goal,
            context,
            now,
            std::iter::once(Subject::Wildcard(type_sym)),
            |_| crate::model::WILDCARD_ID.to_string(),
            &mut wildcard,
        )?;
        drop(view);
        let mut judged = Judged::default();
        for chunk in ids.chunks(CHUNK_STEPS) {
            let view = self.relock(&loaded, revision, budget)?;
            let snap = view.snapshot();
            judge_subjects(
                snap,
                goal,
                context,
                now,
                chunk
                    .iter()
                    .map(|&id| Subject::Object(ObjKey { ty: type_sym, id })),
                |subject| match subject {
                    Subject::Object(obj) => snap.index.name(obj.id).to_string(),
                    _ => String::new(),
                },
                &mut judged,
            )?;
        }
        self.pages.record_steps(ids.len() as u64 + 1);
        if goal.id == UNKNOWN_RESOURCE {
            let names = judged
                .held
                .iter_mut()
                .map(|(name, _)| name)
                .chain(judged.denied.iter_mut());
            name_unknown_resource(names, resource);
        }
        let star_granted = !wildcard.held.is_empty();
        let valid_until = [judged.earliest_expiry, wildcard.earliest_expiry]
            .into_iter()
            .flatten()
            .min();
        judged.held.extend(wildcard.held);
        let (ids, missing, mut excluded) = judged.into_sorted();
        if !star_granted {
            excluded.clear();
        }
        Ok(Sorted::new(ids, missing, excluded, valid_until))
    }

    /// Forward read from the index: the subjects of `resource#relation`.
    pub fn read_subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        consistency: Consistency,
        budget: &Budget,
    ) -> Result<(Vec<SubjectRef>, Revision), EngineError> {
        let view = self.view(consistency, budget)?;
        let goal = view.goal(resource, relation)?;
        let data = &view.data;
        let node = Node {
            ty: view.loaded.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: view.loaded.plan.rel_sym[goal.rel.0 as usize],
        };
        let rev = view.revision.0;
        let object = |ty: u32, id: u32| ObjectRef {
            object_type: data.name(ty).to_string(),
            object_id: data.name(id).to_string(),
        };
        let mut subjects: Vec<SubjectRef> = data
            .objects(node, rev)
            .map(|obj| SubjectRef {
                object: object(obj.ty, obj.id),
                relation: None,
            })
            .collect();
        subjects.extend(data.usersets(node, rev).map(|set| SubjectRef {
            object: object(set.ty, set.id),
            relation: (set.rel != NO_REL).then(|| data.name(set.rel).to_string()),
        }));
        Ok((subjects, view.revision))
    }

    /// Reverse read from the index: the ids of `resource_type` objects whose `relation`
    /// names `subject` exactly.
    pub fn read_resources(
        &self,
        subject: &SubjectRef,
        resource_type: &str,
        relation: &str,
        consistency: Consistency,
        budget: &Budget,
    ) -> Result<(Vec<String>, Revision), EngineError> {
        let view = self.view(consistency, budget)?;
        let goal = view.type_goal(resource_type, relation)?;
        let data = &view.data;
        let node = match view.subject(subject, None)? {
            Subject::Object(obj) => Node {
                ty: obj.ty,
                id: obj.id,
                rel: NO_REL,
            },
            Subject::Set(node) => node,
            Subject::Wildcard(ty) => Node {
                ty,
                id: data.star(),
                rel: NO_REL,
            },
        };
        let ids = data
            .resources_for(
                node,
                view.loaded.plan.type_sym[goal.ty.0 as usize],
                view.loaded.plan.rel_sym[goal.rel.0 as usize],
                view.revision.0,
            )
            .map(|id| data.name(id).to_string())
            .collect();
        Ok((ids, view.revision))
    }

    pub fn read(
        &self,
        filter: &RelationshipFilter,
        consistency: Consistency,
        limit: usize,
        cursor: Option<&str>,
        budget: &Budget,
    ) -> Result<ReadPage, EngineError> {
        let (revision, loaded) = {
            let view = self.view(consistency, budget)?;
            (view.revision, Arc::clone(&view.loaded))
        };
        filters::validate(&loaded.schema, filter, "filter")?;
        // Expired relationships stay in the store until collected but are invisible (one
        // "now" per request), whatever the backend: they are filtered here. A page they
        // emptied entirely is skipped, so an empty page means the end; others may come
        // back shorter than `limit`, with a cursor.
        let now = Timestamp::now();
        let mut cursor = cursor.map(str::to_string);
        loop {
            budget.check()?;
            let page = self
                .store
                .read(filter, revision, limit, cursor.as_deref())?;
            let relationships: Vec<_> = page
                .relationships
                .into_iter()
                .filter(|it| it.expiration.is_none_or(|at| at > now))
                .collect();
            if relationships.is_empty() && page.cursor.is_some() {
                cursor = page.cursor;
                continue;
            }
            return Ok(ReadPage {
                relationships,
                cursor: page.cursor,
                revision,
            });
        }
    }
}

/// The page-cache key of a paused walk of `listing` at the cursor `at`.
fn walk_key(listing: &str, at: Cursor) -> String {
    format!("{listing}|{}.{:016x}", at.offset, at.digest)
}

/// The page-cache key of a lookup: `base` (schema epoch, revision, request) and, while
/// caveats can matter, the request's context (serde_json maps are sorted by key, so equal
/// contexts give equal text).
fn page_key(mut base: String, conditional: bool, context: Option<&Context>) -> String {
    use std::fmt::Write as _;
    if conditional {
        base.push_str("|3v");
        if let Some(context) = context.filter(|it| !it.is_empty()) {
            let _ = write!(base, "|{}", serde_json::Value::Object(context.clone()));
        }
    }
    base
}

/// Gives the name of the requested resource to the ids of `names` that have none: `self`
/// names the resource itself, which the index may never have seen (its symbol has no
/// name; no real id is empty).
fn name_unknown_resource<'n>(names: impl Iterator<Item = &'n mut String>, resource: &ObjectRef) {
    for it in names {
        if it.is_empty() {
            it.clone_from(&resource.object_id);
        }
    }
}
