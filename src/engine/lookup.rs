//! Lookups: which resources a subject reaches, and which subjects reach a resource.
//!
//! **Lookup resources** walks backwards from the subject, never over every object of the
//! type. It derives facts "the subject holds `rel` on `T:x`": the seeds are the tuples
//! that name the subject (or its type's wildcard); a fact on `V:v#r` yields `T:x#rel` for
//! every tuple `T:x#rel@V:v#r` (reverse index), the permissions of `V` that use `r`, and
//! the permissions of other types whose arrows reach `r` through a tupleset naming `V:v`
//! (the schema's reverse edges, [`super::plan::Plan`]). Under a union a derived fact is
//! certain; under an intersection or exclusion it is a candidate that a check confirms.
//! This is forward chaining to the least fixed point, so cycles terminate. The walk is
//! depth first and pausable ([`resources`]): a page of results costs in proportion to the
//! page, and results come in walk order, not sorted.
//!
//! **Lookup subjects** walks forward from the resource to every id of the subject type
//! ([`subjects`], depth first and pausable like lookup resources): an id reached only
//! through unions holds the permission, one reached through an intersection, exclusion
//! or `.all()` arrow is confirmed by a check. When the wildcard subject is allowed, `*` is
//! reported with the ids the check denies as `excluded`: then every candidate is
//! collected first ([`collect_candidates`]) and the result is whole and sorted.
//!
//! **With caveats or expiration** (the index keeps conditional tuples, see
//! [`super::conditional`]) both lookups answer three-valued, and each answer equals, id by
//! id, what the three-valued check ([`super::conditional::CondChecker`]) answers: the walks
//! above only gather candidates (conditional tuples count as edges too, every candidate
//! is kept unconfirmed, and no depth limit applies to the gathering), and every candidate
//! is checked with the request's context and one "now": lookup resources as its walk
//! reaches it (so its pages still stream), lookup subjects once all are gathered
//! ([`conditional`]). Without conditional tuples the plain walks run exactly as before.
//!
//! Both walks tick the request's budget (cancellation), can run in chunks so that the
//! caller releases the index lock in between, and answer [`EngineError::DepthExceeded`]
//! where a check of a result would (a result reached only deeper than the depth limit), so
//! that check and lookups agree at the limit.

use std::collections::VecDeque;

use rustc_hash::FxHashSet;

use crate::schema::{Expr, RelationId, RelationKind, TypeId};

use super::EngineError;
use super::check::{Checker, Goal, Snapshot, Subject};
use super::index::{CondMember, NO_REL, Node, ObjKey, Sym};

pub(crate) mod conditional;
mod resources;
mod self_ref;
mod subjects;

pub(crate) use resources::ResourceWalk;
pub(crate) use subjects::SubjectWalk;

/// A walk that pages: it runs in chunks (the caller may release the index lock in
/// between), stops once it has found what a page needs, and hands out what it found.
pub(crate) trait Pausable {
    /// Takes at most `max_steps` steps in `snap`, stopping early once `want` results are
    /// found and not taken; `Ok(true)` once the walk is complete.
    fn run(
        &mut self,
        snap: Snapshot<'_>,
        max_steps: usize,
        want: usize,
    ) -> Result<bool, EngineError>;
    /// Whether the walk is complete.
    fn is_complete(&self) -> bool;
    /// How many results are found and not taken yet.
    fn found_len(&self) -> usize;
    /// Takes the next `limit` results found (fewer if fewer are), named.
    fn take(&mut self, index: &super::index::IndexData, limit: usize) -> Vec<Listed>;
    /// The work done so far.
    fn steps(&self) -> u64;
    /// The earliest expiration a result of the walk depends on: it must not be resumed
    /// from then on (`None`: the results do not expire).
    fn expires(&self) -> Option<crate::model::Timestamp> {
        None
    }
}

/// One result of a paged lookup: its id and, for a conditional one (three-valued mode),
/// the caveat parameters it misses.
pub(crate) type Listed = (String, Option<Vec<String>>);

/// The candidates of a lookup subjects: every id of the subject type named under the goal.
pub(crate) struct Candidates {
    pub ids: Vec<Sym>,
    /// Whether an intersection or exclusion was met: then each candidate must be checked.
    pub needs_check: bool,
    /// Whether the wildcard subject holds the goal.
    pub wildcard: bool,
}

/// Collects the candidates of `goal` for subjects of type `subject_type` and checks the
/// wildcard. A candidate named only deeper than the depth limit is
/// [`EngineError::DepthExceeded`], as its check would be.
pub(crate) fn subject_candidates(
    snap: Snapshot<'_>,
    goal: Goal,
    subject_type: TypeId,
) -> Result<Candidates, EngineError> {
    let type_sym = snap.plan.type_sym[subject_type.0 as usize];
    let (ids, needs_check) = collect_candidates(snap, goal, type_sym, false)?;
    let wildcard = Checker::new(snap, Subject::Wildcard(type_sym)).check(goal)?;
    Ok(Candidates {
        ids,
        needs_check,
        wildcard,
    })
}

/// Sorts `ids` (candidates of `subject_type`) into those holding `goal` and those that do
/// not, by name; without `needs_check` every candidate holds.
pub(crate) fn confirm_subjects(
    snap: Snapshot<'_>,
    goal: Goal,
    subject_type: TypeId,
    ids: &[Sym],
    needs_check: bool,
    allowed: &mut Vec<String>,
    denied: &mut Vec<String>,
) -> Result<(), EngineError> {
    let type_sym = snap.plan.type_sym[subject_type.0 as usize];
    for &id in ids {
        snap.budget.tick()?;
        let holds = !needs_check
            || Checker::new(snap, Subject::Object(ObjKey { ty: type_sym, id })).check(goal)?;
        let name = snap.index.name(id).to_string();
        if holds {
            allowed.push(name);
        } else {
            denied.push(name);
        }
    }
    Ok(())
}

/// Every id of type `type_sym` named anywhere under `goal` (objects of relations, through
/// subject sets and arrows), breadth-first with each node's least depth, and whether an
/// intersection or exclusion was met (then each candidate must be checked). With
/// `conditional`, caveated and expiring tuples are followed too (every version live at the
/// revision, expired or not: a superset) and no depth limit applies: the three-valued
/// check of each candidate judges both.
pub(crate) fn collect_candidates(
    snap: Snapshot<'_>,
    goal: Goal,
    type_sym: Sym,
    conditional: bool,
) -> Result<(Vec<Sym>, bool), EngineError> {
    let index = snap.index;
    let star = index.star();
    let mut seen_ids: FxHashSet<Sym> = FxHashSet::default();
    let mut ids = Vec::new();
    let mut visited: FxHashSet<Goal> = FxHashSet::default();
    let mut queue = VecDeque::from([(goal, 0u32)]);
    let mut needs_check = false;
    visited.insert(goal);
    while let Some((current, depth)) = queue.pop_front() {
        snap.budget.tick()?;
        let node = Node {
            ty: snap.plan.type_sym[current.ty.0 as usize],
            id: current.id,
            rel: snap.plan.rel_sym[current.rel.0 as usize],
        };
        let next_depth = depth.saturating_add(1);
        let mut push = |next: Goal, queue: &mut VecDeque<(Goal, u32)>| {
            if visited.insert(next) {
                queue.push_back((next, next_depth));
            }
        };
        match &snap.schema.relation_by_id(current.rel).kind {
            RelationKind::Relation { .. } => {
                let members: &[CondMember] = if conditional {
                    index.conditional_members(node)
                } else {
                    &[]
                };
                for member in members.iter().filter(|it| it.live_at(snap.rev)) {
                    let set = member.subject;
                    if set.id == star {
                        continue;
                    }
                    if set.rel == NO_REL {
                        if set.ty == type_sym && seen_ids.insert(set.id) {
                            ids.push(set.id);
                        }
                    } else if let Some(ty) = snap.plan.type_of(set.ty)
                        && let Some(rel) = snap.plan.rel_of(ty, set.rel)
                    {
                        push(
                            Goal {
                                ty,
                                id: set.id,
                                rel,
                            },
                            &mut queue,
                        );
                    }
                }
                for obj in index.objects(node, snap.rev) {
                    if obj.ty == type_sym && seen_ids.insert(obj.id) {
                        if depth > snap.depth_limit && !conditional {
                            return Err(EngineError::DepthExceeded(snap.depth_limit));
                        }
                        ids.push(obj.id);
                    }
                }
                for set in index.usersets(node, snap.rev) {
                    if set.id == star {
                        continue;
                    }
                    if let Some(ty) = snap.plan.type_of(set.ty)
                        && let Some(rel) = snap.plan.rel_of(ty, set.rel)
                    {
                        push(
                            Goal {
                                ty,
                                id: set.id,
                                rel,
                            },
                            &mut queue,
                        );
                    }
                }
            }
            RelationKind::Permission { expr } => {
                let mut refs = Vec::new();
                needs_check |= expr_refs(expr, &mut refs);
                for item in refs {
                    match item {
                        ExprRef::Rel(rel) => push(
                            Goal {
                                ty: current.ty,
                                id: current.id,
                                rel,
                            },
                            &mut queue,
                        ),
                        // `self`: the object itself is a subject.
                        ExprRef::SelfRef => {
                            if node.ty == type_sym && seen_ids.insert(current.id) {
                                if depth > snap.depth_limit && !conditional {
                                    return Err(EngineError::DepthExceeded(snap.depth_limit));
                                }
                                ids.push(current.id);
                            }
                        }
                        ExprRef::Arrow(arrow) => {
                            let tupleset = Node {
                                ty: node.ty,
                                id: node.id,
                                rel: snap.plan.rel_sym[arrow.tupleset.0 as usize],
                            };
                            let objects = index.arrow_objects(tupleset, snap.rev);
                            let members: &[CondMember] = if conditional {
                                index.conditional_members(tupleset)
                            } else {
                                &[]
                            };
                            let cond = members
                                .iter()
                                .filter(|it| it.live_at(snap.rev) && it.subject.id != star)
                                .map(|it| ObjKey {
                                    ty: it.subject.ty,
                                    id: it.subject.id,
                                });
                            for obj in objects.chain(cond) {
                                let Some(ty) = snap.plan.type_of(obj.ty) else {
                                    continue;
                                };
                                if let Some((_, target)) =
                                    arrow.targets.iter().find(|(it, _)| *it == ty)
                                {
                                    push(
                                        Goal {
                                            ty,
                                            id: obj.id,
                                            rel: *target,
                                        },
                                        &mut queue,
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok((ids, needs_check))
}

enum ExprRef<'e> {
    Rel(RelationId),
    /// A plain arrow or an `.all()` arrow: the same objects are named.
    Arrow(&'e crate::schema::Arrow),
    SelfRef,
}

/// Every reference, arrow and `self` in `expr` (all operands, subtracted ones too, so that
/// ids only reachable there can be reported as excluded); whether it has `&`, `-` or
/// `.all()`.
fn expr_refs<'e>(expr: &'e Expr, out: &mut Vec<ExprRef<'e>>) -> bool {
    match expr {
        Expr::Nil => false,
        Expr::Ref(rel) => {
            out.push(ExprRef::Rel(*rel));
            false
        }
        Expr::Arrow(arrow) => {
            out.push(ExprRef::Arrow(arrow));
            false
        }
        // Every object must hold it: each candidate is checked.
        Expr::ArrowAll(arrow) => {
            out.push(ExprRef::Arrow(arrow));
            true
        }
        Expr::SelfRef => {
            out.push(ExprRef::SelfRef);
            false
        }
        Expr::Union(children) => children
            .iter()
            .fold(false, |acc, child| expr_refs(child, out) | acc),
        Expr::Intersection(children) => {
            for child in children {
                expr_refs(child, out);
            }
            true
        }
        Expr::Exclusion(base, subtracted) => {
            expr_refs(base, out);
            expr_refs(subtracted, out);
            true
        }
    }
}
