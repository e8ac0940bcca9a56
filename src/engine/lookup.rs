//! Lookups: which resources a subject reaches, and which subjects reach a resource.
//!
//! **Lookup resources** walks backwards from the subject, never over every object of the
//! type. It derives facts "the subject holds `rel` on `T:x`" breadth-first from a worklist:
//! the seeds are the tuples that name the subject (or its type's wildcard); a fact on
//! `V:v#r` yields `T:x#rel` for every tuple `T:x#rel@V:v#r` (reverse index), the permissions
//! of `V` that use `r`, and the permissions of other types whose arrows reach `r` through a
//! tupleset naming `V:v` (the schema's reverse edges, [`super::plan::Plan`]). Under a union
//! a derived fact is certain; under an intersection or exclusion it is a candidate that a
//! check confirms. This is forward chaining to the least fixed point, so cycles terminate.
//!
//! **Lookup subjects** collects every id of the subject type reachable forward from the
//! resource (a superset), then keeps those a check allows; `*` is reported when the
//! wildcard subject is allowed, with the collected ids the check denies as `excluded`.

use std::collections::VecDeque;

use rustc_hash::FxHashSet;

use crate::model::WILDCARD_ID;
use crate::schema::{Expr, RelationId, RelationKind, TypeId};

use super::EngineError;
use super::check::{Checker, Goal, Snapshot, Subject, UNKNOWN_SUBJECT};
use super::index::{NO_REL, Node, ObjKey, Sym};

/// Every id of `resource_type` on which `subject` holds `permission` (unsorted).
/// `subject_id` names the subject's id when the index never saw it.
pub(crate) fn resources(
    snap: Snapshot<'_>,
    resource_type: TypeId,
    permission: RelationId,
    subject: Subject,
    subject_id: &str,
) -> Result<Vec<String>, EngineError> {
    let mut walk = ResourceWalk {
        snap,
        checker: Checker::new(snap, subject),
        facts: FxHashSet::default(),
        refuted: FxHashSet::default(),
        queue: VecDeque::new(),
    };
    walk.seed(subject);
    let mut found = Vec::new();
    while let Some(fact) = walk.queue.pop_front() {
        if fact.ty == resource_type && fact.rel == permission {
            let name = if fact.id == UNKNOWN_SUBJECT {
                subject_id
            } else {
                snap.index.name(fact.id)
            };
            found.push(name.to_string());
        }
        walk.derive(fact)?;
    }
    Ok(found)
}

struct ResourceWalk<'a> {
    snap: Snapshot<'a>,
    /// Confirms candidates; shares its memo across them.
    checker: Checker<'a>,
    /// Facts derived so far (also the visited set).
    facts: FxHashSet<Goal>,
    /// Candidates a check refuted.
    refuted: FxHashSet<Goal>,
    queue: VecDeque<Goal>,
}

impl<'a> ResourceWalk<'a> {
    fn seed(&mut self, subject: Subject) {
        let star = self.snap.index.star();
        match subject {
            Subject::Object(obj) => {
                self.tuples_naming(Node {
                    ty: obj.ty,
                    id: obj.id,
                    rel: NO_REL,
                });
                self.tuples_naming(Node {
                    ty: obj.ty,
                    id: star,
                    rel: NO_REL,
                });
            }
            Subject::Wildcard(ty) => self.tuples_naming(Node {
                ty,
                id: star,
                rel: NO_REL,
            }),
            Subject::Set(node) => {
                // The "self" rule: a subject set holds its own relation.
                if let Some(ty) = self.snap.plan.type_of(node.ty)
                    && let Some(rel) = self.snap.plan.rel_of(ty, node.rel)
                {
                    self.add(Goal {
                        ty,
                        id: node.id,
                        rel,
                    });
                }
            }
        }
    }

    fn add(&mut self, fact: Goal) {
        if self.facts.insert(fact) {
            self.queue.push_back(fact);
        }
    }

    /// A candidate under an intersection or exclusion: a fact only if a check agrees.
    fn candidate(&mut self, fact: Goal) -> Result<(), EngineError> {
        if self.facts.contains(&fact) || self.refuted.contains(&fact) {
            return Ok(());
        }
        if self.checker.check(fact)? {
            self.add(fact);
        } else {
            self.refuted.insert(fact);
        }
        Ok(())
    }

    /// Facts from the tuples whose subject is exactly `subject`.
    fn tuples_naming(&mut self, subject: Node) {
        let index = self.snap.index;
        for (res_ty, rel, id) in index.resources_of(subject, self.snap.rev) {
            let Some(ty) = self.snap.plan.type_of(res_ty) else {
                continue;
            };
            let Some(rel) = self.snap.plan.rel_of(ty, rel) else {
                continue;
            };
            self.add(Goal { ty, id, rel });
        }
    }

    fn derive(&mut self, fact: Goal) -> Result<(), EngineError> {
        let plan = self.snap.plan;
        let index = self.snap.index;
        let rev = self.snap.rev;
        let ty_sym = plan.type_sym[fact.ty.0 as usize];
        // Tuples `T:x#rel@V:v#r`.
        self.tuples_naming(Node {
            ty: ty_sym,
            id: fact.id,
            rel: plan.rel_sym[fact.rel.0 as usize],
        });
        // Permissions of the same type that use the relation.
        for edge in &plan.computed_edges[fact.rel.0 as usize] {
            let next = Goal {
                ty: fact.ty,
                id: fact.id,
                rel: edge.permission,
            };
            if edge.confirm {
                self.candidate(next)?;
            } else {
                self.add(next);
            }
        }
        // Arrows `tupleset.rel` on other objects whose tupleset names `V:v`.
        for edge in &plan.arrow_edges[fact.rel.0 as usize] {
            let res_ty = plan.type_sym[edge.resource_type.0 as usize];
            let tupleset = plan.rel_sym[edge.tupleset.0 as usize];
            for subject_rel in plan.subject_rels(self.snap.schema, edge.tupleset, fact.ty) {
                let subject = Node {
                    ty: ty_sym,
                    id: fact.id,
                    rel: subject_rel,
                };
                let ids: Vec<Sym> = index
                    .resources_for(subject, res_ty, tupleset, rev)
                    .collect();
                for id in ids {
                    let next = Goal {
                        ty: edge.resource_type,
                        id,
                        rel: edge.permission,
                    };
                    if edge.confirm {
                        self.candidate(next)?;
                    } else {
                        self.add(next);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The ids of `subject_type` objects holding `goal`, sorted, with `*` first when the
/// wildcard holds it; and, with `*`, the collected ids it does not reach.
pub(crate) fn subjects(
    snap: Snapshot<'_>,
    goal: Goal,
    subject_type: TypeId,
) -> Result<(Vec<String>, Vec<String>), EngineError> {
    let type_sym = snap.plan.type_sym[subject_type.0 as usize];
    let (candidates, needs_check) = collect_candidates(snap, goal, type_sym);
    let wildcard = Checker::new(snap, Subject::Wildcard(type_sym)).check(goal)?;
    let mut allowed = Vec::new();
    let mut excluded = Vec::new();
    for id in candidates {
        let holds = !needs_check
            || Checker::new(snap, Subject::Object(ObjKey { ty: type_sym, id })).check(goal)?;
        let name = snap.index.name(id).to_string();
        if holds {
            allowed.push(name);
        } else if wildcard {
            excluded.push(name);
        }
    }
    allowed.sort_unstable();
    excluded.sort_unstable();
    if wildcard {
        allowed.insert(0, WILDCARD_ID.to_string());
    }
    Ok((allowed, excluded))
}

/// Every id of type `type_sym` named anywhere under `goal` (objects of relations, through
/// subject sets and arrows), and whether an intersection or exclusion was met (then each
/// candidate must be checked).
fn collect_candidates(snap: Snapshot<'_>, goal: Goal, type_sym: Sym) -> (Vec<Sym>, bool) {
    let index = snap.index;
    let star = index.star();
    let mut seen_ids: FxHashSet<Sym> = FxHashSet::default();
    let mut ids = Vec::new();
    let mut visited: FxHashSet<Goal> = FxHashSet::default();
    let mut queue = vec![goal];
    let mut needs_check = false;
    visited.insert(goal);
    while let Some(current) = queue.pop() {
        let node = Node {
            ty: snap.plan.type_sym[current.ty.0 as usize],
            id: current.id,
            rel: snap.plan.rel_sym[current.rel.0 as usize],
        };
        let mut push = |next: Goal, queue: &mut Vec<Goal>| {
            if visited.insert(next) {
                queue.push(next);
            }
        };
        match &snap.schema.relation_by_id(current.rel).kind {
            RelationKind::Relation { .. } => {
                for obj in index.objects(node, snap.rev) {
                    if obj.ty == type_sym && seen_ids.insert(obj.id) {
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
                        ExprRef::Arrow(arrow) => {
                            let tupleset = Node {
                                ty: node.ty,
                                id: node.id,
                                rel: snap.plan.rel_sym[arrow.tupleset.0 as usize],
                            };
                            let objects = index.objects(tupleset, snap.rev);
                            let sets = index
                                .usersets(tupleset, snap.rev)
                                .filter(|it| it.id != star)
                                .map(|it| ObjKey {
                                    ty: it.ty,
                                    id: it.id,
                                });
                            for obj in objects.chain(sets) {
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
    (ids, needs_check)
}

enum ExprRef<'e> {
    Rel(RelationId),
    Arrow(&'e crate::schema::Arrow),
}

/// Every reference and arrow in `expr` (all operands, subtracted ones too, so that ids
/// only reachable there can be reported as excluded); whether it has `&` or `-`.
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
