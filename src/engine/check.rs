//! The check walk: does the subject hold `relation` on `resource` at one revision?
//!
//! Semantics (DESIGN §3): a relation holds for subject `s` on `x` if `x#rel@s` is live, or
//! `x#rel@T:*` is live and `s` is an object of type `T`, or `x#rel@y#r` is live and `s`
//! holds `r` on `y`. A subject that is itself a subject set holds where that very set is
//! granted (and `y#r` holds for the subject `y#r`, SpiceDB's "self" rule). Permissions
//! evaluate their expression; arrows walk the subject *objects* of the tupleset.
//!
//! Evaluation is three-valued (Kleene): true, false, and undefined for a cycle that runs
//! through the subtracted side of an exclusion. A goal met again on the current path is
//! false (least fixed point) when the path back to it crossed no exclusion, undefined when
//! it did; undefined answers deny, failing closed. Results are memoized per walk, but a
//! false or undefined result computed while assuming an ancestor false is not (it might
//! change once that ancestor is known).
//!
//! Native recursion happens once per goal (relation or permission on an object) and is
//! bounded by the depth limit; the subject sets of a stored relation are walked
//! breadth-first without recursion, so a group of a million members costs one hash probe
//! and nested groups cost a visited set, not stack.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::schema::{Expr, RelationId, RelationKind, Schema, TypeId};

use super::EngineError;
use super::index::{Forward, IndexData, NO_REL, Node, ObjKey, Sym};
use super::plan::Plan;

/// A symbol no string maps to: the id of a request's resource the index has never seen.
pub(crate) const UNKNOWN_RESOURCE: Sym = u32::MAX - 1;

/// A symbol no string maps to: the id of a request's subject the index has never seen
/// (when it differs from the resource's id; the same unknown string gets one symbol).
pub(crate) const UNKNOWN_SUBJECT: Sym = u32::MAX - 2;

/// What is being walked: one schema, one index, one revision.
#[derive(Clone, Copy)]
pub(crate) struct Snapshot<'a> {
    pub schema: &'a Schema,
    pub plan: &'a Plan,
    pub index: &'a IndexData,
    pub rev: u64,
    pub depth_limit: u32,
}

/// The subject of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// `type:id`.
    Object(ObjKey),
    /// `type:id#rel`.
    Set(Node),
    /// `type:*` (the symbol is the type).
    Wildcard(Sym),
}

/// One question of the walk: does the subject hold `rel` on object `(ty, id)`?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Goal {
    pub ty: TypeId,
    pub id: Sym,
    pub rel: RelationId,
}

/// A three-valued answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tri {
    False,
    Undefined,
    True,
}

/// An answer and the lowest stack position of an in-progress goal it assumed false.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    value: Tri,
    low: usize,
}

const NO_LOW: usize = usize::MAX;

impl Outcome {
    const TRUE: Self = Self {
        value: Tri::True,
        low: NO_LOW,
    };
    const FALSE: Self = Self {
        value: Tri::False,
        low: NO_LOW,
    };
}

struct Frame {
    goal: Goal,
    /// How many subtracted sides of exclusions enclose this goal on the path.
    neg: u32,
}

/// A walk for one subject; reusable across goals (bulk check shares its memo).
pub(crate) struct Checker<'a> {
    snap: Snapshot<'a>,
    subject: Subject,
    /// The wildcard node matching an object subject (`type:*`), if the subject is one.
    subject_wildcard: Option<Node>,
    /// For an object subject with few tuples: every node whose tuples name it directly,
    /// read once from the reverse index, so the walk tests membership in this small set
    /// instead of probing each node's member set (a cache miss each in a large index).
    holders: FxHashSet<Node>,
    use_holders: bool,
    stack: Vec<Frame>,
    memo: FxHashMap<Goal, Tri>,
    /// Buffers of breadth-first walks, reused (walks nest through permissions).
    walks: Vec<Walk>,
    neg: u32,
}

/// The buffers of one breadth-first walk over subject sets.
#[derive(Default)]
struct Walk {
    frontier: Vec<Node>,
    next: Vec<Node>,
    visited: FxHashSet<Node>,
    /// Stored relations expanded by the walk: all false if the whole walk is, which later
    /// walks of the same check reuse instead of expanding them again.
    explored: Vec<Goal>,
}

impl Walk {
    fn clear(&mut self) {
        self.frontier.clear();
        self.next.clear();
        self.visited.clear();
        self.explored.clear();
    }
}

/// Buffers kept per thread between checks, so a check allocates nothing once warm.
#[derive(Default)]
struct Scratch {
    holders: FxHashSet<Node>,
    stack: Vec<Frame>,
    memo: FxHashMap<Goal, Tri>,
    walks: Vec<Walk>,
}

/// Buffers larger than this are dropped rather than kept for the next check.
const KEEP_CAPACITY: usize = 4096;

/// An object subject named by more tuples than this is tested node by node instead.
const HOLDERS_LIMIT: usize = 64;

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Box<Scratch>>> = const { std::cell::Cell::new(None) };
}

impl Drop for Checker<'_> {
    fn drop(&mut self) {
        if self.memo.capacity() > KEEP_CAPACITY || self.stack.capacity() > KEEP_CAPACITY {
            return;
        }
        self.memo.clear();
        self.stack.clear();
        self.holders.clear();
        let mut walks = std::mem::take(&mut self.walks);
        walks.truncate(8);
        walks.retain(|walk| walk.visited.capacity() <= KEEP_CAPACITY);
        let scratch = Scratch {
            holders: std::mem::take(&mut self.holders),
            stack: std::mem::take(&mut self.stack),
            memo: std::mem::take(&mut self.memo),
            walks,
        };
        SCRATCH.with(|it| it.set(Some(Box::new(scratch))));
    }
}

impl<'a> Checker<'a> {
    pub fn new(snap: Snapshot<'a>, subject: Subject) -> Self {
        let mut scratch = SCRATCH
            .with(|it| it.take())
            .map_or_else(Scratch::default, |it| *it);
        let mut use_holders = false;
        if let Subject::Object(obj) = subject {
            let node = Node {
                ty: obj.ty,
                id: obj.id,
                rel: NO_REL,
            };
            scratch.holders.clear();
            use_holders = true;
            for (ty, rel, id) in snap.index.resources_of(node, snap.rev) {
                if scratch.holders.len() >= HOLDERS_LIMIT {
                    use_holders = false;
                    scratch.holders.clear();
                    break;
                }
                scratch.holders.insert(Node { ty, id, rel });
            }
        }
        let subject_wildcard = match subject {
            Subject::Object(obj) => Some(Node {
                ty: obj.ty,
                id: snap.index.star(),
                rel: NO_REL,
            }),
            _ => None,
        };
        Self {
            snap,
            subject,
            subject_wildcard,
            holders: scratch.holders,
            use_holders,
            stack: scratch.stack,
            memo: scratch.memo,
            walks: scratch.walks,
            neg: 0,
        }
    }

    pub fn subject(&self) -> Subject {
        self.subject
    }

    /// Whether the subject holds `goal` (undefined denies).
    pub fn check(&mut self, goal: Goal) -> Result<bool, EngineError> {
        self.stack.clear();
        self.neg = 0;
        let outcome = self.goal(goal, 0)?;
        Ok(outcome.value == Tri::True)
    }

    fn goal(&mut self, goal: Goal, depth: u32) -> Result<Outcome, EngineError> {
        if let Some(value) = self.memo.get(&goal) {
            return Ok(Outcome {
                value: *value,
                low: NO_LOW,
            });
        }
        if let Some(pos) = self.stack.iter().rposition(|frame| frame.goal == goal) {
            let value = if self.neg > self.stack[pos].neg {
                Tri::Undefined
            } else {
                Tri::False
            };
            return Ok(Outcome { value, low: pos });
        }
        if depth > self.snap.depth_limit {
            return Err(EngineError::DepthExceeded(self.snap.depth_limit));
        }
        let node = self.node(goal);
        if self.subject == Subject::Set(node) {
            self.memo.insert(goal, Tri::True);
            return Ok(Outcome::TRUE);
        }
        let position = self.stack.len();
        self.stack.push(Frame {
            goal,
            neg: self.neg,
        });
        let schema = self.snap.schema;
        let res = match &schema.relation_by_id(goal.rel).kind {
            RelationKind::Relation { .. } => self.relation(node, depth),
            RelationKind::Permission { expr } => self.expr(goal, expr, depth),
        };
        self.stack.truncate(position);
        let mut outcome = res?;
        if outcome.value == Tri::True || outcome.low >= position {
            self.memo.insert(goal, outcome.value);
            outcome.low = NO_LOW;
        }
        Ok(outcome)
    }

    fn node(&self, goal: Goal) -> Node {
        Node {
            ty: self.snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: self.snap.plan.rel_sym[goal.rel.0 as usize],
        }
    }

    /// Whether a tuple of `node` (whose subjects are `forward`) names the subject directly
    /// (or by wildcard).
    fn direct(&self, node: Node, forward: &Forward) -> bool {
        let rev = self.snap.rev;
        match self.subject {
            Subject::Object(obj) => {
                let named = if self.use_holders {
                    self.holders.contains(&node)
                } else {
                    forward.has_object(obj, rev)
                };
                named
                    || self
                        .subject_wildcard
                        .is_some_and(|star| forward.has_wildcard(star, rev))
            }
            Subject::Set(set) => forward.has_userset(set, rev),
            Subject::Wildcard(ty) => forward.has_wildcard(
                Node {
                    ty,
                    id: self.snap.index.star(),
                    rel: NO_REL,
                },
                rev,
            ),
        }
    }

    /// A stored relation: direct hit, else breadth-first through its subject sets. Stored
    /// relations met on the way are expanded in place; permissions are goals of their own.
    fn relation(&mut self, start: Node, depth: u32) -> Result<Outcome, EngineError> {
        let index = self.snap.index;
        if self.use_holders {
            if self.holders.contains(&start) {
                return Ok(Outcome::TRUE);
            }
            // Not named directly: only subject sets or a wildcard could grant it.
            if !index.may_have_usersets(start) {
                return Ok(Outcome::FALSE);
            }
        }
        let Some(forward) = index.forward(start) else {
            return Ok(Outcome::FALSE);
        };
        if self.direct(start, forward) {
            return Ok(Outcome::TRUE);
        }
        if !forward.has_any_userset() {
            return Ok(Outcome::FALSE);
        }
        let mut walk = self.walks.pop().unwrap_or_default();
        let res = self.walk(&mut walk, start, forward, depth);
        walk.clear();
        self.walks.push(walk);
        res
    }

    /// The breadth-first part of [`Checker::relation`], with buffers from the pool.
    fn walk(
        &mut self,
        walk: &mut Walk,
        start: Node,
        forward: &Forward,
        depth: u32,
    ) -> Result<Outcome, EngineError> {
        let index = self.snap.index;
        let rev = self.snap.rev;
        let star = index.star();
        walk.frontier
            .extend(forward.usersets(rev).filter(|node| node.id != star));
        if walk.frontier.is_empty() {
            return Ok(Outcome::FALSE);
        }
        walk.visited.insert(start);
        let mut acc = Outcome::FALSE;
        let mut level = depth + 1;
        while !walk.frontier.is_empty() {
            if level > self.snap.depth_limit {
                return Err(EngineError::DepthExceeded(self.snap.depth_limit));
            }
            for node in walk.frontier.drain(..) {
                if !walk.visited.insert(node) {
                    continue;
                }
                let plan = self.snap.plan;
                let Some(ty) = plan.type_of(node.ty) else {
                    continue;
                };
                let Some(rel) = plan.rel_of(ty, node.rel) else {
                    continue;
                };
                if self.subject == Subject::Set(node) {
                    return Ok(Outcome::TRUE);
                }
                let goal = Goal {
                    ty,
                    id: node.id,
                    rel,
                };
                if self.snap.schema.relation_by_id(rel).is_permission() {
                    let outcome = self.goal(goal, level)?;
                    if outcome.value == Tri::True {
                        return Ok(Outcome::TRUE);
                    }
                    acc = or(acc, outcome);
                    continue;
                }
                match self.memo.get(&goal) {
                    Some(Tri::True) => return Ok(Outcome::TRUE),
                    // Known false: its whole closure was explored before.
                    Some(Tri::False) => continue,
                    Some(Tri::Undefined) => {
                        acc = or(
                            acc,
                            Outcome {
                                value: Tri::Undefined,
                                low: NO_LOW,
                            },
                        );
                        continue;
                    }
                    None => {}
                }
                if self.use_holders {
                    if self.holders.contains(&node) {
                        return Ok(Outcome::TRUE);
                    }
                    if !index.may_have_usersets(node) {
                        walk.explored.push(goal);
                        continue;
                    }
                }
                if let Some(forward) = index.forward(node) {
                    if self.direct(node, forward) {
                        return Ok(Outcome::TRUE);
                    }
                    walk.next
                        .extend(forward.usersets(rev).filter(|it| it.id != star));
                }
                walk.explored.push(goal);
            }
            std::mem::swap(&mut walk.frontier, &mut walk.next);
            level += 1;
        }
        if acc.value == Tri::False && acc.low == NO_LOW {
            for goal in walk.explored.drain(..) {
                self.memo.insert(goal, Tri::False);
            }
        }
        Ok(acc)
    }

    fn expr(&mut self, goal: Goal, expr: &Expr, depth: u32) -> Result<Outcome, EngineError> {
        match expr {
            Expr::Nil => Ok(Outcome::FALSE),
            Expr::Ref(rel) => self.goal(
                Goal {
                    ty: goal.ty,
                    id: goal.id,
                    rel: *rel,
                },
                depth + 1,
            ),
            Expr::Arrow(arrow) => self.arrow(goal, arrow, depth),
            Expr::Union(children) => {
                let mut acc = Outcome::FALSE;
                for child in children {
                    let outcome = self.expr(goal, child, depth)?;
                    if outcome.value == Tri::True {
                        return Ok(Outcome::TRUE);
                    }
                    acc = or(acc, outcome);
                }
                Ok(acc)
            }
            Expr::Intersection(children) => {
                let mut acc = Outcome::TRUE;
                for child in children {
                    let outcome = self.expr(goal, child, depth)?;
                    if outcome.value == Tri::False {
                        return Ok(outcome);
                    }
                    acc = and(acc, outcome);
                }
                Ok(acc)
            }
            Expr::Exclusion(base, subtracted) => {
                let base = self.expr(goal, base, depth)?;
                if base.value == Tri::False {
                    return Ok(base);
                }
                self.neg += 1;
                let subtracted = self.expr(goal, subtracted, depth);
                self.neg -= 1;
                let subtracted = subtracted?;
                Ok(and(base, not(subtracted)))
            }
        }
    }

    /// `tupleset.computed`: any object named by the tupleset's tuples (subject sets count
    /// by their object) that holds the target relation.
    fn arrow(
        &mut self,
        goal: Goal,
        arrow: &crate::schema::Arrow,
        depth: u32,
    ) -> Result<Outcome, EngineError> {
        let tupleset = Node {
            ty: self.snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: self.snap.plan.rel_sym[arrow.tupleset.0 as usize],
        };
        let index = self.snap.index;
        let rev = self.snap.rev;
        let star = index.star();
        let objects = index.objects(tupleset, rev);
        let sets = index
            .usersets(tupleset, rev)
            .filter(|node| node.id != star)
            .map(|node| ObjKey {
                ty: node.ty,
                id: node.id,
            });
        let mut acc = Outcome::FALSE;
        for object in objects.chain(sets) {
            let Some(ty) = self.snap.plan.type_of(object.ty) else {
                continue;
            };
            let Some((_, target)) = arrow.targets.iter().find(|(it, _)| *it == ty) else {
                continue;
            };
            let outcome = self.goal(
                Goal {
                    ty,
                    id: object.id,
                    rel: *target,
                },
                depth + 1,
            )?;
            if outcome.value == Tri::True {
                return Ok(Outcome::TRUE);
            }
            acc = or(acc, outcome);
        }
        Ok(acc)
    }
}

fn or(a: Outcome, b: Outcome) -> Outcome {
    let value = match (a.value, b.value) {
        (Tri::True, _) | (_, Tri::True) => Tri::True,
        (Tri::Undefined, _) | (_, Tri::Undefined) => Tri::Undefined,
        _ => Tri::False,
    };
    Outcome {
        value,
        low: a.low.min(b.low),
    }
}

fn and(a: Outcome, b: Outcome) -> Outcome {
    let value = match (a.value, b.value) {
        (Tri::False, _) | (_, Tri::False) => Tri::False,
        (Tri::Undefined, _) | (_, Tri::Undefined) => Tri::Undefined,
        _ => Tri::True,
    };
    Outcome {
        value,
        low: a.low.min(b.low),
    }
}

fn not(a: Outcome) -> Outcome {
    let value = match a.value {
        Tri::True => Tri::False,
        Tri::False => Tri::True,
        Tri::Undefined => Tri::Undefined,
    };
    Outcome { value, low: a.low }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index::IndexData;
    use crate::model::Relationship;
    use crate::schema::parse_and_compile;

    #[test]
    fn a_wide_group_is_one_probe_not_a_walk() {
        // 250,000 members keep the debug run short; benches/read_path.rs checks a group of
        // a million members in a release build.
        let schema = parse_and_compile(
            "definition user {}
             definition group { relation member: user | group#member }
             definition doc { relation viewer: group#member  permission view = viewer }",
        )
        .unwrap();
        let mut index = IndexData::default();
        let plan = Plan::build(&schema, &mut index);
        for i in 0..250_000 {
            let rel: Relationship = format!("group:big#member@user:u{i}").parse().unwrap();
            index.insert_live(&rel, 1);
        }
        index.insert_live(&"group:big#member@group:small#member".parse().unwrap(), 1);
        index.insert_live(&"group:small#member@user:inner".parse().unwrap(), 1);
        index.insert_live(&"doc:1#viewer@group:big#member".parse().unwrap(), 1);
        let snap = Snapshot {
            schema: &schema,
            plan: &plan,
            index: &index,
            rev: 1,
            depth_limit: 50,
        };
        let user = index.sym("user").unwrap();
        let goal = Goal {
            ty: plan.type_of(index.sym("doc").unwrap()).unwrap(),
            id: index.sym("1").unwrap(),
            rel: schema.relation("doc", "view").unwrap().id,
        };
        for (name, expected) in [("u249999", true), ("inner", true), ("stranger", false)] {
            let id = match index.sym(name) {
                Some(id) => id,
                None => UNKNOWN_SUBJECT,
            };
            let subject = Subject::Object(ObjKey { ty: user, id });
            assert_eq!(
                Checker::new(snap, subject).check(goal).unwrap(),
                expected,
                "{name}"
            );
        }
    }
}
