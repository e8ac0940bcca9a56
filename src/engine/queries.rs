//! The read side of [`Inner`]: choose the revision from the consistency mode, resolve the
//! request's names against the schema (every unknown name is an error naming its field),
//! then run the walk under one read lock of the index and, for checks, the cache.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLockReadGuard;

use crate::model::{ObjectRef, Revision, SubjectRef};
use crate::store::RelationshipFilter;

use super::check::{Checker, Goal, Snapshot, Subject, UNKNOWN_RESOURCE, UNKNOWN_SUBJECT};
use super::index::{IndexData, NO_REL, Node, ObjKey};
use super::plan::LoadedSchema;
use super::writer::Inner;
use super::{
    BulkDecision, CheckRequest, Consistency, Decision, EngineError, ExpandDepth, Expansion,
    ReadPage, ResourcePage, SubjectsAnswer, expand, lookup,
};

/// A schema, a locked index and the revision to read at.
pub(crate) struct View<'i> {
    pub loaded: Arc<LoadedSchema>,
    pub data: RwLockReadGuard<'i, IndexData>,
    pub revision: Revision,
    pub depth_limit: u32,
}

impl View<'_> {
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            schema: &self.loaded.schema,
            plan: &self.loaded.plan,
            index: &self.data,
            rev: self.revision.0,
            depth_limit: self.depth_limit,
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
    pub fn view(&self, consistency: Consistency) -> Result<View<'_>, EngineError> {
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
        })
    }

    pub fn check(
        &self,
        request: &CheckRequest,
        consistency: Consistency,
    ) -> Result<Decision, EngineError> {
        let view = self.view(consistency)?;
        let allowed = self.check_in(&view, request, &mut None)?;
        Ok(Decision {
            allowed,
            revision: view.revision,
        })
    }

    pub fn check_bulk(
        &self,
        requests: &[CheckRequest],
        consistency: Consistency,
    ) -> Result<BulkDecision, EngineError> {
        let view = self.view(consistency)?;
        let mut checkers: Vec<Checker<'_>> = Vec::new();
        let snapshot = view.snapshot();
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            let resource_id = Some(request.resource.object_id.as_str());
            let res = view
                .subject(&request.subject, resource_id)
                .and_then(|subject| {
                    let pos = checkers.iter().position(|it| it.subject() == subject);
                    let checker = match pos {
                        Some(pos) => &mut checkers[pos],
                        None => {
                            checkers.push(Checker::new(snapshot, subject));
                            let last = checkers.len() - 1;
                            &mut checkers[last]
                        }
                    };
                    self.check_in(&view, request, &mut Some(checker))
                });
            results.push(res);
        }
        Ok(BulkDecision {
            results,
            revision: view.revision,
        })
    }

    /// One check inside `view`, through the cache, reusing `shared` (a walk for the same
    /// subject) when given.
    fn check_in<'v>(
        &self,
        view: &'v View<'_>,
        request: &CheckRequest,
        shared: &mut Option<&mut Checker<'v>>,
    ) -> Result<bool, EngineError> {
        // The cache is keyed by the request's text, so a hit costs no symbol lookups.
        let key = self
            .cache
            .enabled()
            .then(|| cache_key(view.loaded.epoch, view.revision, request));
        if let Some(key) = &key
            && let Some(allowed) = self.cache.get(key)
        {
            return Ok(allowed);
        }
        let goal = view.goal(&request.resource, &request.permission)?;
        let subject = view.subject(&request.subject, Some(&request.resource.object_id))?;
        let allowed = match shared {
            Some(checker) => checker.check(goal)?,
            None => Checker::new(view.snapshot(), subject).check(goal)?,
        };
        if let Some(key) = key {
            self.cache.insert(key, allowed);
        }
        Ok(allowed)
    }

    pub fn expand(
        &self,
        resource: &ObjectRef,
        permission: &str,
        depth: ExpandDepth,
        consistency: Consistency,
    ) -> Result<Expansion, EngineError> {
        let view = self.view(consistency)?;
        let goal = view.goal(resource, permission)?;
        let tree = expand::expand(view.snapshot(), resource, goal, depth)?;
        Ok(Expansion {
            tree,
            revision: view.revision,
        })
    }

    pub fn lookup_resources(
        &self,
        resource_type: &str,
        permission: &str,
        subject: &SubjectRef,
        limit: usize,
        cursor: Option<&str>,
        consistency: Consistency,
    ) -> Result<ResourcePage, EngineError> {
        let view = self.view(consistency)?;
        let goal = view.type_goal(resource_type, permission)?;
        let subject_key = view.subject(subject, None)?;
        let mut ids = lookup::resources(
            view.snapshot(),
            goal.ty,
            goal.rel,
            subject_key,
            &subject.object.object_id,
        )?;
        ids.sort_unstable();
        let start = match cursor {
            Some(cursor) => ids.partition_point(|id| id.as_str() <= cursor),
            None => 0,
        };
        let end = if limit == 0 {
            ids.len()
        } else {
            ids.len().min(start.saturating_add(limit))
        };
        let has_more = end < ids.len();
        let resources: Vec<String> = ids.drain(start..end).collect();
        let cursor = if has_more {
            resources.last().cloned()
        } else {
            None
        };
        Ok(ResourcePage {
            resources,
            cursor,
            revision: view.revision,
        })
    }

    pub fn lookup_subjects(
        &self,
        resource: &ObjectRef,
        permission: &str,
        subject_type: &str,
        consistency: Consistency,
    ) -> Result<SubjectsAnswer, EngineError> {
        let view = self.view(consistency)?;
        let goal = view.goal(resource, permission)?;
        let definition = view.loaded.schema.definition(subject_type).ok_or_else(|| {
            EngineError::invalid("subject_type", format!("unknown type `{subject_type}`"))
        })?;
        let (subjects, excluded) = lookup::subjects(view.snapshot(), goal, definition.id)?;
        Ok(SubjectsAnswer {
            subjects,
            excluded,
            revision: view.revision,
        })
    }

    /// Forward read from the index: the subjects of `resource#relation`.
    pub fn read_subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        consistency: Consistency,
    ) -> Result<(Vec<SubjectRef>, Revision), EngineError> {
        let view = self.view(consistency)?;
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
    ) -> Result<(Vec<String>, Revision), EngineError> {
        let view = self.view(consistency)?;
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
    ) -> Result<ReadPage, EngineError> {
        let revision = self.view(consistency)?.revision;
        let page = self.store.read(filter, revision, limit, cursor)?;
        Ok(ReadPage {
            relationships: page.relationships,
            cursor: page.cursor,
            revision,
        })
    }
}

/// Everything a check answer depends on, as one string: schema epoch, revision, request.
fn cache_key(epoch: u64, revision: Revision, request: &CheckRequest) -> String {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(96);
    let _ = write!(
        key,
        "{epoch}|{revision}|{}#{}@{}",
        request.resource, request.permission, request.subject
    );
    key
}
