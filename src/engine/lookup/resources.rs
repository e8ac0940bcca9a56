//! Lookup resources as a pausable depth-first walk, so that a page costs in proportion to
//! the page: the walk stops as soon as it has found what the page needs, keeps its state
//! (no borrow of the index), and goes on from there for the next page.
//!
//! Facts "the subject holds `rel` on `T:x`" are derived backwards from the subject (see
//! the parent module). Each fact's children (the facts it yields) are listed once, when
//! the fact is first derived, on a stack of frames in one arena; the walk always takes the
//! next child of the newest frame (depth first). So the first results come after a few
//! steps whatever the width of the graph: a group that views 100,000 documents lists
//! 100,000 children (a copy of ids) and yields its first document two steps later, where
//! a breadth-first walk would first derive every document's relation. Results come in
//! walk order, which is deterministic for one index at one revision.
//!
//! Depth: depth first, a fact's first depth is only an upper bound of its least depth
//! (the number of steps — subject set, arrow, permission reference — between it and the
//! subject, which a check bounds by its depth limit). A resource first reached within the
//! limit is a result as its check would be; one first reached deeper is confirmed by a
//! check, which answers [`EngineError::DepthExceeded`] when its least depth is over the
//! limit too: check and lookup agree at the limit.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashSet;

use crate::model::Timestamp;

use crate::schema::{RelationId, TypeId};

use super::super::EngineError;
use super::super::check::{Checker, Goal, Snapshot, Subject, UNKNOWN_SUBJECT};
use super::super::conditional::{Answer, CondChecker, Context};
use super::super::index::{IndexData, NO_REL, Node, Sym};
use super::{Listed, Pausable};

/// A resource type and relation named by symbols, resolved against the schema (`None`
/// when the schema does not know them).
type Resolved = Option<(TypeId, RelationId)>;

/// A child of a fact: a fact it yields, or (`confirm`) a candidate under an intersection,
/// exclusion or `.all()` arrow that a check must confirm.
#[derive(Clone, Copy, Debug)]
pub(super) struct Child {
    pub goal: Goal,
    pub confirm: bool,
}

/// The children of one fact still to take: `arena[next..end]`, each at `depth`.
#[derive(Clone, Copy, Debug)]
struct Frame {
    start: usize,
    next: usize,
    end: usize,
    depth: u32,
}

/// A lookup resources walk that can pause between steps: its state holds no borrow of the
/// index, so the caller may release the index lock between chunks of steps, and keep the
/// walk between pages, and resume at the same revision (the index is MVCC: a snapshot
/// stays readable while it is not collected, symbols are never reused, and the order of
/// the entries live at a revision never changes).
pub(crate) struct ResourceWalk {
    pub(super) subject: Subject,
    /// The subject's id as requested, named when the index never saw it.
    subject_id: String,
    target: (TypeId, RelationId),
    /// Facts derived so far (the visited set).
    facts: FxHashSet<Goal>,
    /// Candidates a check refuted.
    refuted: FxHashSet<Goal>,
    /// The children of the facts on the current path, frame after frame.
    pub(super) arena: Vec<Child>,
    frames: Vec<Frame>,
    seeded: bool,
    complete: bool,
    /// Resources found and not yet taken, in walk order, each with the caveat parameters
    /// it misses (three-valued mode: `Some` for a conditional result).
    found: VecDeque<(Sym, Option<Vec<String>>)>,
    /// Three-valued mode: every candidate (conditional tuples too) is gathered without
    /// the plain confirmation and judged by the three-valued check when reached.
    pub(super) conditional: bool,
    judge: Option<Judge>,
    /// Facts derived so far (the work done).
    pub steps: u64,
}

/// What the three-valued mode judges with: the request's context and the listing's one
/// "now" (every page of a listing reads the clock of its first page), and the earliest
/// expiration a judgement read (a kept walk is not resumed from then on).
struct Judge {
    context: Option<Arc<Context>>,
    now: Timestamp,
    earliest_expiry: Option<Timestamp>,
}

impl ResourceWalk {
    /// A walk for the `resource_type` objects on which `subject` holds `permission`.
    pub fn new(
        subject: Subject,
        subject_id: &str,
        resource_type: TypeId,
        permission: RelationId,
    ) -> Self {
        Self::with_mode(subject, subject_id, resource_type, permission, None)
    }

    /// [`ResourceWalk::new`] in the three-valued mode (the index keeps caveated or
    /// expiring tuples): each candidate reached is judged by the three-valued check with
    /// `context` at `now`, and listed as definite or conditional, or dropped.
    pub fn three_valued(
        subject: Subject,
        subject_id: &str,
        resource_type: TypeId,
        permission: RelationId,
        context: Option<Context>,
        now: Timestamp,
    ) -> Self {
        let judge = Judge {
            context: context.map(Arc::new),
            now,
            earliest_expiry: None,
        };
        Self::with_mode(subject, subject_id, resource_type, permission, Some(judge))
    }

    fn with_mode(
        subject: Subject,
        subject_id: &str,
        resource_type: TypeId,
        permission: RelationId,
        judge: Option<Judge>,
    ) -> Self {
        Self {
            subject,
            subject_id: subject_id.to_string(),
            target: (resource_type, permission),
            facts: FxHashSet::default(),
            refuted: FxHashSet::default(),
            arena: Vec::new(),
            frames: Vec::new(),
            seeded: false,
            complete: false,
            found: VecDeque::new(),
            conditional: judge.is_some(),
            judge,
            steps: 0,
        }
    }

    /// How much memory the walk holds, in entries (facts, pending children, found ids),
    /// for the page cache's bound.
    pub fn weight(&self) -> usize {
        self.facts.len() + self.refuted.len() + self.arena.len() + self.found.len() + 1
    }
}

impl Pausable for ResourceWalk {
    fn run(
        &mut self,
        snap: Snapshot<'_>,
        max_steps: usize,
        want: usize,
    ) -> Result<bool, EngineError> {
        if self.complete {
            return Ok(true);
        }
        let judge = self.judge.as_ref().map(|it| (it.context.clone(), it.now));
        let mut step = Step {
            snap,
            checker: Checker::new(snap, self.subject),
            cond: judge.as_ref().map(|(context, now)| {
                CondChecker::new(snap, self.subject, context.as_deref(), *now)
            }),
            walk: self,
        };
        if !step.walk.seeded {
            step.walk.seeded = true;
            step.seed()?;
        }
        let mut taken = 0;
        while taken < max_steps && step.walk.found.len() < want {
            let Some(frame) = step.walk.frames.last_mut() else {
                step.walk.complete = true;
                step.note_expiry();
                return Ok(true);
            };
            let Some(&child) = step
                .walk
                .arena
                .get(frame.next)
                .filter(|_| frame.next < frame.end)
            else {
                let start = frame.start;
                step.walk.frames.pop();
                step.walk.arena.truncate(start);
                continue;
            };
            frame.next += 1;
            let depth = frame.depth;
            taken += 1;
            step.visit(child, depth)?;
        }
        step.note_expiry();
        Ok(false)
    }

    fn is_complete(&self) -> bool {
        self.complete
    }

    fn found_len(&self) -> usize {
        self.found.len()
    }

    fn take(&mut self, index: &IndexData, limit: usize) -> Vec<Listed> {
        let n = limit.min(self.found.len());
        let subject_id = &self.subject_id;
        self.found
            .drain(..n)
            .map(|(id, missing)| (name(index, subject_id, id), missing))
            .collect()
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn expires(&self) -> Option<Timestamp> {
        self.judge.as_ref().and_then(|it| it.earliest_expiry)
    }
}

/// The name of `id`: `subject_id` (the requested subject's id) for one the index never saw.
fn name(index: &IndexData, subject_id: &str, id: Sym) -> String {
    if id == UNKNOWN_SUBJECT {
        subject_id.to_string()
    } else {
        index.name(id).to_string()
    }
}

/// One chunk of a [`ResourceWalk`]: the walk with the snapshot and a checker for it.
pub(super) struct Step<'w, 'a> {
    pub snap: Snapshot<'a>,
    /// Confirms candidates; shares its memo across the candidates of this chunk.
    checker: Checker<'a>,
    /// Three-valued mode: judges the resources reached (one memo for the chunk).
    cond: Option<CondChecker<'a>>,
    pub walk: &'w mut ResourceWalk,
}

impl Step<'_, '_> {
    /// Keeps the earliest expiration the chunk's judgements read.
    fn note_expiry(&mut self) {
        if let (Some(cond), Some(judge)) = (&self.cond, &mut self.walk.judge)
            && let Some(at) = cond.earliest_expiry
        {
            judge.earliest_expiry = Some(judge.earliest_expiry.map_or(at, |it| it.min(at)));
        }
    }

    /// The first frame: the facts of the tuples naming the subject (or its type's
    /// wildcard), the subject set's own relation, and what `self` gives, at depth 0.
    fn seed(&mut self) -> Result<(), EngineError> {
        let start = self.walk.arena.len();
        let star = self.snap.index.star();
        match self.walk.subject {
            Subject::Object(obj) => {
                for id in [obj.id, star] {
                    self.tuples_naming(Node {
                        ty: obj.ty,
                        id,
                        rel: NO_REL,
                    });
                }
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
                    self.push(
                        Goal {
                            ty,
                            id: node.id,
                            rel,
                        },
                        false,
                    );
                }
            }
        }
        self.seed_self();
        self.frame(start, 0);
        Ok(())
    }

    /// Pushes the children listed since `start` as one frame at `depth`.
    fn frame(&mut self, start: usize, depth: u32) {
        let end = self.walk.arena.len();
        if end > start {
            self.walk.frames.push(Frame {
                start,
                next: start,
                end,
                depth,
            });
        }
    }

    pub(super) fn push(&mut self, goal: Goal, confirm: bool) {
        self.walk.arena.push(Child { goal, confirm });
    }

    /// Takes one child: a new fact (a candidate once a check confirms it), reported when it
    /// is a resource sought, then its own children as a new frame.
    fn visit(&mut self, child: Child, depth: u32) -> Result<(), EngineError> {
        self.snap.budget.tick()?;
        let goal = child.goal;
        if self.walk.facts.contains(&goal) {
            return Ok(());
        }
        if child.confirm && !self.walk.conditional {
            if self.walk.refuted.contains(&goal) {
                return Ok(());
            }
            if !self.checker.check(goal)? {
                self.walk.refuted.insert(goal);
                return Ok(());
            }
        }
        self.walk.facts.insert(goal);
        self.walk.steps += 1;
        if (goal.ty, goal.rel) == self.walk.target {
            if let Some(cond) = &mut self.cond {
                // Judged by the three-valued check, depth limit included.
                match cond.check(goal)? {
                    Answer::Has => self.walk.found.push_back((goal.id, None)),
                    Answer::Conditional(mut missing) => {
                        missing.sort_unstable();
                        missing.dedup();
                        self.walk.found.push_back((goal.id, Some(missing)));
                    }
                    Answer::No => {}
                }
            } else if depth <= self.snap.depth_limit || self.checker.check(goal)? {
                // Deeper than the limit on this path: the check decides (a shorter path,
                // or DepthExceeded as the check of this resource answers).
                self.walk.found.push_back((goal.id, None));
            }
        }
        let start = self.walk.arena.len();
        self.children(goal);
        self.frame(start, depth.saturating_add(1));
        Ok(())
    }

    /// Lists the tuples whose subject is exactly `subject` as children.
    fn tuples_naming(&mut self, subject: Node) {
        let index = self.snap.index;
        let plan = self.snap.plan;
        // The tuples come grouped by resource type and relation: resolve each group once.
        let mut last: Option<((Sym, Sym), Resolved)> = None;
        for (res_ty, rel, id) in index.resources_of(subject, self.snap.rev) {
            let resolved = match last {
                Some((key, resolved)) if key == (res_ty, rel) => resolved,
                _ => {
                    let resolved = plan
                        .type_of(res_ty)
                        .and_then(|ty| plan.rel_of(ty, rel).map(|rel| (ty, rel)));
                    last = Some(((res_ty, rel), resolved));
                    resolved
                }
            };
            if let Some((ty, rel)) = resolved {
                self.push(Goal { ty, id, rel }, false);
            }
        }
        if self.walk.conditional {
            for resource in index.conditional_resources_of(subject) {
                let Some(ty) = plan.type_of(resource.ty) else {
                    continue;
                };
                let Some(rel) = plan.rel_of(ty, resource.rel) else {
                    continue;
                };
                let id = resource.id;
                self.push(Goal { ty, id, rel }, false);
            }
        }
    }

    /// Lists the facts `fact` yields: tuples naming it, permissions of its type that use
    /// it, and arrows of other types that reach it.
    fn children(&mut self, fact: Goal) {
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
            self.push(next, edge.confirm);
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
                let goal = |id| Goal {
                    ty: edge.resource_type,
                    id,
                    rel: edge.permission,
                };
                for id in index.resources_for(subject, res_ty, tupleset, rev) {
                    self.push(goal(id), edge.confirm);
                }
                if self.walk.conditional {
                    for it in index.conditional_resources_of(subject) {
                        if it.ty == res_ty && it.rel == tupleset {
                            self.push(goal(it.id), edge.confirm);
                        }
                    }
                }
            }
        }
    }
}
