//! Lookup subjects as a pausable depth-first walk, so that a page costs in proportion to
//! the page (when no wildcard grants the permission: then the answer's `excluded` needs
//! every candidate, and the whole result is computed instead).
//!
//! The walk goes forward from the resource, as [`super::collect_candidates`] does, over
//! the same edges (direct subjects, subject sets, permission references, arrows, `self`),
//! depth first over frames of children listed once per node, like
//! [`super::ResourceWalk`]. Each child carries whether its path passed an intersection,
//! an exclusion or an `.all()` arrow: a subject reached only through unions holds the
//! permission, one reached through any of those is confirmed by a check. Depth: as in
//! lookup resources, a subject first reached deeper than the limit is confirmed by a check,
//! which answers [`EngineError::DepthExceeded`] when its least depth is over the limit too.

use std::collections::VecDeque;

use rustc_hash::FxHashSet;

use crate::schema::RelationKind;

use super::super::EngineError;
use super::super::check::{Checker, Goal, Snapshot, Subject};
use super::super::index::{IndexData, Node, ObjKey, Sym};
use super::{ExprRef, Listed, Pausable, expr_refs};

/// A child: a node to expand, or a subject id.
#[derive(Clone, Copy, Debug)]
enum Item {
    Node(Goal),
    Id(Sym),
}

#[derive(Clone, Copy, Debug)]
struct Child {
    item: Item,
    depth: u32,
    /// Whether the path to it passed an intersection, exclusion or `.all()` arrow.
    uncertain: bool,
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    start: usize,
    next: usize,
    end: usize,
}

/// A lookup subjects walk that can pause between steps (no borrow of the index).
pub(crate) struct SubjectWalk {
    goal: Goal,
    /// The symbol of the subject type.
    type_sym: Sym,
    /// The name of a subject the index has no name for: the requested resource itself,
    /// reached through `self` (the index may never have seen it).
    unnamed: String,
    visited: FxHashSet<Goal>,
    seen_ids: FxHashSet<Sym>,
    arena: Vec<Child>,
    frames: Vec<Frame>,
    seeded: bool,
    complete: bool,
    found: VecDeque<Sym>,
    /// Nodes expanded and subjects judged so far (the work done).
    pub steps: u64,
}

impl SubjectWalk {
    /// A walk for the subjects of the type `type_sym` that hold `goal`, on the resource
    /// named `resource_id`.
    pub fn new(goal: Goal, type_sym: Sym, resource_id: &str) -> Self {
        Self {
            goal,
            type_sym,
            unnamed: resource_id.to_string(),
            visited: FxHashSet::default(),
            seen_ids: FxHashSet::default(),
            arena: Vec::new(),
            frames: Vec::new(),
            seeded: false,
            complete: false,
            found: VecDeque::new(),
            steps: 0,
        }
    }

    /// A subject id reached: listed if it holds the goal (checked unless its path was
    /// certain and within the depth limit).
    fn judge(&mut self, snap: Snapshot<'_>, id: Sym, child: Child) -> Result<(), EngineError> {
        if !self.seen_ids.insert(id) {
            return Ok(());
        }
        self.steps += 1;
        let holds = (!child.uncertain && child.depth <= snap.depth_limit)
            || Checker::new(
                snap,
                Subject::Object(ObjKey {
                    ty: self.type_sym,
                    id,
                }),
            )
            .check(self.goal)?;
        if holds {
            self.found.push_back(id);
        }
        Ok(())
    }

    /// Lists the children of the node `current` (reached as `via`).
    fn children(&mut self, snap: Snapshot<'_>, current: Goal, via: Child) {
        let index = snap.index;
        let star = index.star();
        let node = Node {
            ty: snap.plan.type_sym[current.ty.0 as usize],
            id: current.id,
            rel: snap.plan.rel_sym[current.rel.0 as usize],
        };
        let depth = via.depth;
        let next_depth = depth.saturating_add(1);
        let mut push = |item: Item, depth: u32, uncertain: bool| {
            self.arena.push(Child {
                item,
                depth,
                uncertain,
            });
        };
        match &snap.schema.relation_by_id(current.rel).kind {
            RelationKind::Relation { .. } => {
                for obj in index.objects(node, snap.rev) {
                    if obj.ty == self.type_sym {
                        push(Item::Id(obj.id), depth, via.uncertain);
                    }
                }
                for set in index.usersets(node, snap.rev) {
                    if set.id == star {
                        continue;
                    }
                    if let Some(ty) = snap.plan.type_of(set.ty)
                        && let Some(rel) = snap.plan.rel_of(ty, set.rel)
                    {
                        let goal = Goal {
                            ty,
                            id: set.id,
                            rel,
                        };
                        push(Item::Node(goal), next_depth, via.uncertain);
                    }
                }
            }
            RelationKind::Permission { expr } => {
                let mut refs = Vec::new();
                let uncertain = expr_refs(expr, &mut refs) || via.uncertain;
                for item in refs {
                    match item {
                        ExprRef::Rel(rel) => {
                            let goal = Goal {
                                ty: current.ty,
                                id: current.id,
                                rel,
                            };
                            push(Item::Node(goal), next_depth, uncertain);
                        }
                        // `self`: the object itself is a subject.
                        ExprRef::SelfRef => {
                            if node.ty == self.type_sym {
                                push(Item::Id(current.id), depth, uncertain);
                            }
                        }
                        ExprRef::Arrow(arrow) => {
                            let tupleset = Node {
                                ty: node.ty,
                                id: node.id,
                                rel: snap.plan.rel_sym[arrow.tupleset.0 as usize],
                            };
                            let objects = index.arrow_objects(tupleset, snap.rev);
                            for obj in objects {
                                let Some(ty) = snap.plan.type_of(obj.ty) else {
                                    continue;
                                };
                                if let Some((_, target)) =
                                    arrow.targets.iter().find(|(it, _)| *it == ty)
                                {
                                    let goal = Goal {
                                        ty,
                                        id: obj.id,
                                        rel: *target,
                                    };
                                    push(Item::Node(goal), next_depth, uncertain);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// How much memory the walk holds, in entries, for the page cache's bound.
    pub fn weight(&self) -> usize {
        self.visited.len() + self.seen_ids.len() + self.arena.len() + self.found.len() + 1
    }
}

impl Pausable for SubjectWalk {
    fn run(
        &mut self,
        snap: Snapshot<'_>,
        max_steps: usize,
        want: usize,
    ) -> Result<bool, EngineError> {
        if self.complete {
            return Ok(true);
        }
        if !self.seeded {
            self.seeded = true;
            self.arena.push(Child {
                item: Item::Node(self.goal),
                depth: 0,
                uncertain: false,
            });
            self.frames.push(Frame {
                start: 0,
                next: 0,
                end: 1,
            });
        }
        let mut taken = 0;
        while taken < max_steps && self.found.len() < want {
            let Some(frame) = self.frames.last_mut() else {
                self.complete = true;
                return Ok(true);
            };
            let Some(&child) = self
                .arena
                .get(frame.next)
                .filter(|_| frame.next < frame.end)
            else {
                let start = frame.start;
                self.frames.pop();
                self.arena.truncate(start);
                continue;
            };
            frame.next += 1;
            taken += 1;
            snap.budget.tick()?;
            match child.item {
                Item::Id(id) => self.judge(snap, id, child)?,
                Item::Node(goal) => {
                    if self.visited.insert(goal) {
                        self.steps += 1;
                        let start = self.arena.len();
                        self.children(snap, goal, child);
                        let end = self.arena.len();
                        if end > start {
                            self.frames.push(Frame {
                                start,
                                next: start,
                                end,
                            });
                        }
                    }
                }
            }
        }
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
        let unnamed = &self.unnamed;
        self.found
            .drain(..n)
            .map(|id| match index.name(id) {
                "" => (unnamed.to_string(), None),
                name => (name.to_string(), None),
            })
            .collect()
    }

    fn steps(&self) -> u64 {
        self.steps
    }
}
