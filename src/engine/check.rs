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
//! bounded by the depth limit (at most 200): a permission's operators are evaluated on an
//! explicit stack, so an expression's width or nesting costs no native stack; the subject sets of a stored relation are walked
//! breadth-first without recursion, so a group of a million members costs one hash probe
//! and nested groups cost a visited set, not stack. When such a walk would read many
//! subject sets (a group of many subgroups) and every relation it can reach is stored, the
//! answer is found instead by searching upward from the subject's few direct holders
//! through the reverse index, with the same answer, depth-limit errors and memo effects
//! (see [`Checker::search_from_subject`]).

use crate::schema::{Expr, RelationId, RelationKind, Schema, TypeId};

use super::EngineError;
use super::deadline::Budget;
use super::index::{Forward, FxHashMap, FxHashSet, IndexData, NO_REL, Node, ObjKey, Sym};
use super::plan::Plan;

mod arrow_all;
mod self_ref;

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
    /// The request's deadline, ticked once per goal.
    pub budget: &'a Budget,
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

/// An operator of an expression being evaluated, waiting for an operand's answer (the
/// explicit stack of [`Checker::expr`]).
enum Task<'a> {
    /// A union whose operands before `next` are answered, none true; `acc` joins them.
    Union {
        operands: &'a [Expr],
        next: usize,
        acc: Outcome,
    },
    /// An intersection whose operands before `next` are answered, none false.
    Intersection {
        operands: &'a [Expr],
        next: usize,
        acc: Outcome,
    },
    /// An exclusion whose base is being answered; `subtracted` comes next.
    ExclusionBase { subtracted: &'a Expr },
    /// An exclusion whose subtracted side is being answered (one negation deeper), after
    /// a base that was not false.
    ExclusionSubtracted { base: Outcome },
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
    /// Whether `scratch.holders` holds the subject's direct holders (see [`Scratch`]).
    use_holders: bool,
    /// The reusable buffers, kept together so that taking them from the thread and giving
    /// them back moves one value.
    scratch: Scratch,
    /// The pending operators of the expressions being evaluated, innermost last (each
    /// goal's expression uses the part above its enclosing goal's).
    tasks: Vec<Task<'a>>,
    neg: u32,
    /// Whether a walk was answered from the subject's side (see
    /// [`Checker::search_from_subject`]), leaving some nodes a forward walk would have
    /// memoized false unmemoized.
    subject_side: bool,
    /// Off only in tests comparing against the forward walk alone.
    allow_subject_side: bool,
}

/// Stored relations whose walk reads fewer than [`SUBJECT_SIDE_MIN_READS`] subject sets,
/// so that a search from the subject's side is not worth preparing, remembered per
/// snapshot (the index, its head, the revision read) across the checks of a thread. A
/// hint only: an entry made stale by garbage collection sends that relation to the
/// forward walk, which answers the same as the search would.
#[derive(Default)]
struct NarrowStarts {
    epoch: (u64, u64, u64),
    starts: FxHashSet<Node>,
}

/// How many narrow starts a thread remembers before it forgets them all.
const NARROW_LIMIT: usize = 4096;

/// The buffers of one breadth-first walk over subject sets.
#[derive(Default)]
struct Walk {
    frontier: Vec<Node>,
    next: Vec<Node>,
    visited: FxHashSet<Node>,
    /// Stored relations expanded by the walk: all false if the whole walk is, which later
    /// walks of the same check reuse instead of expanding them again.
    explored: Vec<Goal>,
    /// The `(type, relation)` pairs of a search from the subject's side.
    pairs: Vec<(Sym, Sym)>,
}

impl Walk {
    fn clear(&mut self) {
        self.frontier.clear();
        self.next.clear();
        self.visited.clear();
        self.explored.clear();
        self.pairs.clear();
    }
}

/// Buffers kept per thread between checks, so a check allocates nothing once warm.
#[derive(Default)]
struct Scratch {
    /// For an object subject with few tuples: every node whose tuples name it directly,
    /// read once from the reverse index, so the walk tests membership in this small set
    /// instead of probing each node's member set (a cache miss each in a large index).
    holders: FxHashSet<Node>,
    stack: Vec<Frame>,
    memo: FxHashMap<Goal, Tri>,
    /// Buffers of breadth-first walks, reused (walks nest through permissions).
    walks: Vec<Walk>,
    narrow: NarrowStarts,
    /// Empty; its capacity is what is kept (see [`forget_tasks`]).
    tasks: Vec<Task<'static>>,
}

/// Buffers larger than this are dropped rather than kept for the next check.
const KEEP_CAPACITY: usize = 4096;

/// An object subject named by more tuples than this is tested node by node instead.
const HOLDERS_LIMIT: usize = 64;

/// A walk reading fewer subject sets than this is not worth searching from the subject.
const SUBJECT_SIDE_MIN_READS: usize = 64;

thread_local! {
    // Not boxed: moving it in and out costs less than an allocation per check.
    static SCRATCH: std::cell::Cell<Option<Scratch>> = const { std::cell::Cell::new(None) };
}

/// The empty task vector of a finished walk, with its capacity, for the next walk (the
/// collect reuses the buffer: the element type differs only by its lifetime).
#[expect(
    clippy::unnecessary_filter_map,
    reason = "the map changes the element type's lifetime, which `filter` cannot"
)]
fn forget_tasks(mut tasks: Vec<Task<'_>>) -> Vec<Task<'static>> {
    tasks.clear();
    tasks.into_iter().filter_map(|_| None).collect()
}

impl Drop for Checker<'_> {
    fn drop(&mut self) {
        let scratch = &mut self.scratch;
        if scratch.memo.capacity() > KEEP_CAPACITY || scratch.stack.capacity() > KEEP_CAPACITY {
            return;
        }
        scratch.memo.clear();
        scratch.stack.clear();
        scratch.holders.clear();
        scratch.walks.truncate(8);
        scratch
            .walks
            .retain(|walk| walk.visited.capacity() <= KEEP_CAPACITY);
        scratch.tasks = match self.tasks.capacity() {
            0..=KEEP_CAPACITY => forget_tasks(std::mem::take(&mut self.tasks)),
            _ => Vec::new(),
        };
        let scratch = std::mem::take(scratch);
        SCRATCH.with(|it| it.set(Some(scratch)));
    }
}

impl<'a> Checker<'a> {
    pub fn new(snap: Snapshot<'a>, subject: Subject) -> Self {
        let mut scratch = SCRATCH.with(|it| it.take()).unwrap_or_default();
        let mut use_holders = false;
        if let Subject::Object(obj) = subject {
            let node = Node {
                ty: obj.ty,
                id: obj.id,
                rel: NO_REL,
            };
            scratch.holders.clear();
            let holders = &mut scratch.holders;
            use_holders = snap.index.each_resource_of(node, snap.rev, |holder| {
                holders.insert(holder);
                holders.len() <= HOLDERS_LIMIT
            });
            if !use_holders {
                scratch.holders.clear();
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
        let narrow = &mut scratch.narrow;
        let epoch = (snap.index.instance(), snap.index.head().0, snap.rev);
        if narrow.epoch != epoch || narrow.starts.len() >= NARROW_LIMIT {
            narrow.starts.clear();
            narrow.epoch = epoch;
        }
        let tasks = std::mem::take(&mut scratch.tasks);
        Self {
            snap,
            subject,
            subject_wildcard,
            use_holders,
            scratch,
            tasks,
            neg: 0,
            subject_side: false,
            allow_subject_side: true,
        }
    }

    pub fn subject(&self) -> Subject {
        self.subject
    }

    /// Whether the subject holds `goal` (undefined denies).
    pub fn check(&mut self, goal: Goal) -> Result<bool, EngineError> {
        self.scratch.stack.clear();
        self.tasks.clear();
        self.neg = 0;
        let outcome = self.goal(goal, 0)?;
        Ok(outcome.value == Tri::True)
    }

    fn goal(&mut self, goal: Goal, depth: u32) -> Result<Outcome, EngineError> {
        self.snap.budget.tick()?;
        if let Some(value) = self.scratch.memo.get(&goal) {
            return Ok(Outcome {
                value: *value,
                low: NO_LOW,
            });
        }
        if let Some(pos) = self
            .scratch
            .stack
            .iter()
            .rposition(|frame| frame.goal == goal)
        {
            let value = if self.neg > self.scratch.stack[pos].neg {
                Tri::Undefined
            } else {
                Tri::False
            };
            return Ok(Outcome { value, low: pos });
        }
        if depth > self.snap.depth_limit {
            if self.subject_side && self.has_false_parent(goal) {
                // A forward walk would have memoized it false on the way.
                self.scratch.memo.insert(goal, Tri::False);
                return Ok(Outcome::FALSE);
            }
            return Err(EngineError::DepthExceeded(self.snap.depth_limit));
        }
        let node = self.node(goal);
        if self.subject == Subject::Set(node) {
            self.scratch.memo.insert(goal, Tri::True);
            return Ok(Outcome::TRUE);
        }
        let position = self.scratch.stack.len();
        self.scratch.stack.push(Frame {
            goal,
            neg: self.neg,
        });
        let schema = self.snap.schema;
        let res = match &schema.relation_by_id(goal.rel).kind {
            RelationKind::Relation { .. } => self.relation(node, depth),
            RelationKind::Permission { expr } => self.expr(goal, expr, depth),
        };
        self.scratch.stack.truncate(position);
        let mut outcome = res?;
        if outcome.value == Tri::True || outcome.low >= position {
            self.scratch.memo.insert(goal, outcome.value);
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
                    self.scratch.holders.contains(&node)
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
            if self.scratch.holders.contains(&start) {
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
        // A walk reading few subject sets and expanding nothing below is left as it is
        // (asked last: the skeleton probe is another table, a cache miss at size).
        if self.use_holders
            && self.allow_subject_side
            && !self.scratch.narrow.starts.contains(&start)
            && (forward.userset_versions() >= SUBJECT_SIDE_MIN_READS
                || forward
                    .usersets(self.snap.rev)
                    .any(|child| index.may_have_usersets(child)))
            && let Some(outcome) = self.search_from_subject(start, depth)
        {
            return Ok(outcome);
        }
        let mut walk = self.scratch.walks.pop().unwrap_or_default();
        let res = self.walk(&mut walk, start, forward, depth);
        walk.clear();
        self.scratch.walks.push(walk);
        res
    }

    /// Answers a stored relation by searching upward from the subject's direct holders
    /// instead of down through every subject set, when that is sure to give the forward
    /// walk's answer and the forward walk would read many subject sets; `None` leaves it
    /// to the forward walk.
    ///
    /// Valid only when every `(type, relation)` a walk from `start` can reach is a stored
    /// relation (no permission goal whose own walk could grant), judged from the pairs the
    /// index ever stored, not the schema, so old revisions are covered. The forward walk
    /// cannot hit the depth limit: it only expands nodes that have subject sets, the
    /// skeleton lists all of them reachable from `start`, and a walk `k` levels deep
    /// expands `k` distinct such nodes, so fewer of them than the levels left is enough.
    /// On a false answer the skeleton nodes are memoized false as the forward walk would
    /// have; the leaves it would also have memoized are recovered by
    /// [`Checker::has_false_parent`] where it matters (past the depth limit).
    fn search_from_subject(&mut self, start: Node, depth: u32) -> Option<Outcome> {
        let mut walk = self.scratch.walks.pop().unwrap_or_default();
        let res = self.search_from_subject_with(&mut walk, start, depth);
        walk.clear();
        self.scratch.walks.push(walk);
        res
    }

    /// [`Checker::search_from_subject`] with buffers from the pool: `walk.next` holds
    /// the skeleton, `walk.pairs` the reachable pairs, `walk.frontier` and `walk.visited`
    /// the upward search.
    fn search_from_subject_with(
        &mut self,
        walk: &mut Walk,
        start: Node,
        depth: u32,
    ) -> Option<Outcome> {
        let snap = self.snap;
        let (index, plan, rev) = (snap.index, snap.plan, snap.rev);
        let Subject::Object(subject) = self.subject else {
            return None;
        };
        // `start` itself counts: with no level left its subject sets already overflow.
        let levels_left = snap.depth_limit.checked_sub(depth)? as usize;
        if levels_left == 0 {
            return None;
        }
        // Most walks are small: told from the forward entries the walk reads next anyway,
        // before the skeleton's own table is read.
        if reads_few(index, rev, start, levels_left, &mut walk.frontier) {
            self.scratch.narrow.starts.insert(start);
            return None;
        }
        // The nodes the forward walk could expand, and what it would read.
        let skeleton = &mut walk.next;
        skeleton.push(start);
        let mut reads = 0usize;
        let mut next = 0;
        while let Some(&parent) = skeleton.get(next) {
            next += 1;
            let Some(forward) = index.forward(parent) else {
                continue;
            };
            reads += forward.userset_versions();
            for child in index.indirect_children(parent) {
                if skeleton.contains(&child) || !forward.has_userset(child, rev) {
                    continue;
                }
                if skeleton.len() >= levels_left {
                    return None;
                }
                skeleton.push(child);
            }
        }
        if reads < SUBJECT_SIDE_MIN_READS {
            // Whatever the depth: the skeleton was complete.
            self.scratch.narrow.starts.insert(start);
            return None;
        }
        // The pairs a walk from `start` can meet, all stored relations.
        let pairs = &mut walk.pairs;
        pairs.push((start.ty, start.rel));
        let mut next = 0;
        while let Some(&(ty, rel)) = pairs.get(next) {
            next += 1;
            for &(sub_ty, sub_rel) in index.subject_pairs(ty, rel) {
                if pairs.contains(&(sub_ty, sub_rel)) {
                    continue;
                }
                // A pair the schema does not know is skipped by the walk too.
                let Some(ty_id) = plan.type_of(sub_ty) else {
                    continue;
                };
                let Some(rel_id) = plan.rel_of(ty_id, sub_rel) else {
                    continue;
                };
                if snap.schema.relation_by_id(rel_id).is_permission() || pairs.len() >= 64 {
                    return None;
                }
                pairs.push((sub_ty, sub_rel));
            }
        }
        // Every skeleton node must be one the walk expands (a known stored relation).
        if skeleton
            .iter()
            .any(|node| !pairs.contains(&(node.ty, node.rel)))
        {
            return None;
        }
        // Upward from every node that names the subject or its type's wildcard.
        for &holder in &self.scratch.holders {
            if pairs.contains(&(holder.ty, holder.rel)) && walk.visited.insert(holder) {
                walk.frontier.push(holder);
            }
        }
        let star = Node {
            ty: subject.ty,
            id: index.star(),
            rel: NO_REL,
        };
        let mut found = Some(false);
        // The wildcard's holders, then each node's holders: every node reached is pushed
        // once, and the search gives up once it has met as many nodes as the walk reads.
        let mut pending = Some(star);
        'search: while let Some(node) = pending.take().or_else(|| walk.frontier.pop()) {
            if node == start {
                found = Some(true);
                break;
            }
            for &(ty, rel) in pairs.iter() {
                for id in index.resources_for(node, ty, rel, rev) {
                    let parent = Node { ty, id, rel };
                    if walk.visited.insert(parent) {
                        if walk.visited.len() > reads {
                            found = None;
                            break 'search;
                        }
                        walk.frontier.push(parent);
                    }
                }
            }
        }
        if !found? {
            for node in walk.next.iter() {
                if let Some(ty) = plan.type_of(node.ty)
                    && let Some(rel) = plan.rel_of(ty, node.rel)
                {
                    self.scratch.memo.insert(
                        Goal {
                            ty,
                            id: node.id,
                            rel,
                        },
                        Tri::False,
                    );
                }
            }
            self.subject_side = true;
            return Some(Outcome::FALSE);
        }
        Some(Outcome::TRUE)
    }

    /// Whether a stored relation `goal` is named as a subject set by a node memoized
    /// false, so that a forward walk would have memoized it false too (the closure of a
    /// stored relation known false is explored and memoized as a whole).
    fn has_false_parent(&self, goal: Goal) -> bool {
        let schema = self.snap.schema;
        let plan = self.snap.plan;
        if schema.relation_by_id(goal.rel).is_permission() {
            return false;
        }
        self.snap
            .index
            .resources_of(self.node(goal), self.snap.rev)
            .any(|(ty, rel, id)| {
                let Some(ty) = plan.type_of(ty) else {
                    return false;
                };
                let Some(rel) = plan.rel_of(ty, rel) else {
                    return false;
                };
                !schema.relation_by_id(rel).is_permission()
                    && self.scratch.memo.get(&Goal { ty, id, rel }) == Some(&Tri::False)
            })
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
        let frontier = &mut walk.frontier;
        forward.each_userset(rev, |node| {
            if node.id != star {
                frontier.push(node);
            }
            true
        });
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
                match self.scratch.memo.get(&goal) {
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
                    if self.scratch.holders.contains(&node) {
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
                    let next = &mut walk.next;
                    forward.each_userset(rev, |it| {
                        if it.id != star {
                            next.push(it);
                        }
                        true
                    });
                }
                walk.explored.push(goal);
            }
            std::mem::swap(&mut walk.frontier, &mut walk.next);
            level += 1;
        }
        if acc.value == Tri::False && acc.low == NO_LOW {
            for goal in walk.explored.drain(..) {
                self.scratch.memo.insert(goal, Tri::False);
            }
        }
        Ok(acc)
    }

    /// Evaluates a permission's expression for `goal`. Operators are walked with an
    /// explicit stack ([`Checker::tasks`]), not native recursion: native recursion happens
    /// only per goal (a name or an arrow), so the stack a check needs is bounded by the
    /// depth limit alone, whatever the expression's shape.
    fn expr(&mut self, goal: Goal, expr: &'a Expr, depth: u32) -> Result<Outcome, EngineError> {
        let base_len = self.tasks.len();
        let neg = self.neg;
        let res = self.expr_with(goal, expr, depth, base_len);
        if res.is_err() {
            self.tasks.truncate(base_len);
            self.neg = neg;
        }
        res
    }

    /// [`Checker::expr`] above the tasks of the enclosing expressions (`base_len`).
    fn expr_with(
        &mut self,
        goal: Goal,
        expr: &'a Expr,
        depth: u32,
        base_len: usize,
    ) -> Result<Outcome, EngineError> {
        let mut current = expr;
        loop {
            // Down the first operands to a leaf, leaving each operator as a task.
            let mut outcome = match current {
                Expr::Nil => Outcome::FALSE,
                Expr::Ref(rel) => self.goal(
                    Goal {
                        ty: goal.ty,
                        id: goal.id,
                        rel: *rel,
                    },
                    depth + 1,
                )?,
                Expr::Arrow(arrow) => self.arrow(goal, arrow, depth)?,
                Expr::ArrowAll(arrow) => self.arrow_all(goal, arrow, depth)?,
                Expr::SelfRef => self.self_ref(goal),
                Expr::Union(operands) => match operands.first() {
                    None => Outcome::FALSE,
                    Some(first) => {
                        self.tasks.push(Task::Union {
                            operands,
                            next: 1,
                            acc: Outcome::FALSE,
                        });
                        current = first;
                        continue;
                    }
                },
                // An empty intersection holds, as an empty conjunction does.
                Expr::Intersection(operands) => match operands.first() {
                    None => Outcome::TRUE,
                    Some(first) => {
                        self.tasks.push(Task::Intersection {
                            operands,
                            next: 1,
                            acc: Outcome::TRUE,
                        });
                        current = first;
                        continue;
                    }
                },
                Expr::Exclusion(base, subtracted) => {
                    self.tasks.push(Task::ExclusionBase {
                        subtracted: subtracted.as_ref(),
                    });
                    current = base.as_ref();
                    continue;
                }
            };
            // Up through the pending operators until one needs its next operand.
            loop {
                if self.tasks.len() == base_len {
                    return Ok(outcome);
                }
                let Some(task) = self.tasks.last_mut() else {
                    return Ok(outcome);
                };
                match task {
                    Task::Union {
                        operands,
                        next,
                        acc,
                    } => {
                        if outcome.value == Tri::True {
                            outcome = Outcome::TRUE;
                        } else {
                            *acc = or(*acc, outcome);
                            let operands: &'a [Expr] = operands;
                            if let Some(operand) = operands.get(*next) {
                                *next += 1;
                                current = operand;
                                break;
                            }
                            outcome = *acc;
                        }
                    }
                    Task::Intersection {
                        operands,
                        next,
                        acc,
                    } => {
                        if outcome.value != Tri::False {
                            *acc = and(*acc, outcome);
                            let operands: &'a [Expr] = operands;
                            if let Some(operand) = operands.get(*next) {
                                *next += 1;
                                current = operand;
                                break;
                            }
                            outcome = *acc;
                        }
                    }
                    Task::ExclusionBase { subtracted } => {
                        if outcome.value != Tri::False {
                            current = *subtracted;
                            *task = Task::ExclusionSubtracted { base: outcome };
                            self.neg += 1;
                            break;
                        }
                    }
                    Task::ExclusionSubtracted { base } => {
                        self.neg -= 1;
                        outcome = and(*base, not(outcome));
                    }
                }
                self.tasks.pop();
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
        let mut acc = Outcome::FALSE;
        for object in index.arrow_objects(tupleset, rev) {
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

/// Whether the forward walk from `start` is sure to read fewer than
/// [`SUBJECT_SIDE_MIN_READS`] subject sets and to expand fewer than `levels_left` nodes,
/// judged from the forward entries alone: each node's live subject sets, of which those
/// with subject sets of their own ([`IndexData::may_have_usersets`]) are expanded — the
/// skeleton's nodes, found without reading the skeleton. `nodes` is a buffer, left empty.
/// A hint: `true` sends the relation to the forward walk, which answers the same as the
/// search would; `false` leaves the decision to the skeleton.
fn reads_few(
    index: &IndexData,
    rev: u64,
    start: Node,
    levels_left: usize,
    nodes: &mut Vec<Node>,
) -> bool {
    nodes.clear();
    nodes.push(start);
    let mut reads = 0usize;
    let mut next = 0;
    let few = loop {
        let Some(&parent) = nodes.get(next) else {
            break true;
        };
        next += 1;
        let Some(forward) = index.forward(parent) else {
            continue;
        };
        reads += forward.userset_versions();
        if reads >= SUBJECT_SIDE_MIN_READS {
            break false;
        }
        let fits = forward.each_userset(rev, |child| {
            if !index.may_have_usersets(child) || nodes.contains(&child) {
                return true;
            }
            nodes.push(child);
            nodes.len() < levels_left
        });
        if !fits {
            break false;
        }
    };
    nodes.clear();
    few
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
            budget: &crate::engine::deadline::UNBOUNDED,
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

    fn nested_schema() -> Schema {
        parse_and_compile(
            "definition user {}
             definition group {
                 relation member: user | user:* | group#member
                 permission inner = member
             }
             definition doc {
                 relation viewer: user | group#member
                 relation team: group
                 relation parent: doc
                 permission view = viewer + team->inner + parent->view
             }",
        )
        .unwrap()
    }

    fn snapshot<'a>(
        schema: &'a Schema,
        plan: &'a Plan,
        index: &'a IndexData,
        rev: u64,
    ) -> Snapshot<'a> {
        Snapshot {
            schema,
            plan,
            index,
            rev,
            depth_limit: 50,
            budget: &crate::engine::deadline::UNBOUNDED,
        }
    }

    fn user(index: &IndexData, name: &str) -> Subject {
        Subject::Object(ObjKey {
            ty: index.sym("user").unwrap(),
            id: index.sym(name).unwrap_or(UNKNOWN_SUBJECT),
        })
    }

    fn goal_of(
        schema: &Schema,
        plan: &Plan,
        index: &IndexData,
        ty: &str,
        id: &str,
        rel: &str,
    ) -> Goal {
        Goal {
            ty: plan.type_of(index.sym(ty).unwrap()).unwrap(),
            id: index.sym(id).unwrap_or(UNKNOWN_RESOURCE),
            rel: schema.relation(ty, rel).unwrap().id,
        }
    }

    #[test]
    fn a_wide_nest_is_answered_from_the_subject_side() {
        let schema = nested_schema();
        let mut index = IndexData::default();
        let plan = Plan::build(&schema, &mut index);
        let mut add = |text: String| index.insert_live(&text.parse().unwrap(), 1);
        add("doc:1#viewer@group:top#member".into());
        add("doc:2#viewer@group:open#member".into());
        for i in 0..20 {
            add(format!("group:top#member@group:mid{i}#member"));
            add(format!("group:open#member@group:omid{i}#member"));
            for j in 0..15 {
                add(format!("group:mid{i}#member@group:leaf{i}_{j}#member"));
                add(format!("group:leaf{i}_{j}#member@user:u{i}_{j}"));
                add(format!("group:omid{i}#member@group:oleaf{i}_{j}#member"));
            }
        }
        add("group:oleaf19_14#member@user:*".into());
        let snap = snapshot(&schema, &plan, &index, 1);
        let doc1 = goal_of(&schema, &plan, &index, "doc", "1", "view");
        let doc2 = goal_of(&schema, &plan, &index, "doc", "2", "view");
        for (goal, name, expected) in [
            (doc1, "u19_14", true),
            (doc1, "u0_0", true),
            (doc1, "stranger", false),
            (doc2, "stranger", true),
            (doc2, "u3_3", true),
        ] {
            let mut checker = Checker::new(snap, user(&index, name));
            assert_eq!(checker.check(goal).unwrap(), expected, "{name}");
            let mut forward = Checker::new(snap, user(&index, name));
            forward.allow_subject_side = false;
            assert_eq!(forward.check(goal).unwrap(), expected, "{name} forward");
        }
        let mut checker = Checker::new(snap, user(&index, "stranger"));
        assert!(!checker.check(doc1).unwrap());
        assert!(
            checker.subject_side,
            "the non-member case must not walk 300 groups"
        );
    }

    use crate::model::test_rng::Rng;

    #[test]
    fn the_subject_side_answers_exactly_as_the_forward_walk() {
        use crate::model::Revision;
        use crate::store::{Change, ChangeOp, ChangeSet};
        let schema = nested_schema();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut used = 0;
        for case in 0..300 {
            let mut index = IndexData::default();
            let plan = Plan::build(&schema, &mut index);
            let groups = 3 + rng.below(12);
            let users = 1 + rng.below(6);
            let mut tuples = Vec::new();
            for _ in 0..rng.below(30) {
                let (a, b) = (rng.below(groups), rng.below(groups));
                tuples.push(format!("group:g{a}#member@group:g{b}#member"));
            }
            // A wide fan of leaf groups, so the forward walk reads enough to switch.
            let hub = rng.below(groups);
            for leaf in 0..(60 + rng.below(40)) {
                tuples.push(format!("group:g{hub}#member@group:leaf{leaf}#member"));
                if rng.below(10) == 0 {
                    let who = rng.below(users);
                    tuples.push(format!("group:leaf{leaf}#member@user:u{who}"));
                }
                if rng.below(15) == 0 {
                    let into = rng.below(groups);
                    tuples.push(format!("group:leaf{leaf}#member@group:g{into}#member"));
                }
            }
            for _ in 0..rng.below(8) {
                let (g, who) = (rng.below(groups), rng.below(users));
                tuples.push(format!("group:g{g}#member@user:u{who}"));
            }
            if rng.below(4) == 0 {
                let g = rng.below(groups);
                tuples.push(format!("group:g{g}#member@user:*"));
            }
            // Docs in a chain, each naming a group or a leaf as its team, so goals deep in
            // the chain meet groups the walks above already answered.
            for d in 0..6 {
                let g = rng.below(groups);
                tuples.push(format!("doc:d{d}#viewer@group:g{g}#member"));
                let team = match rng.below(2) {
                    0 => format!("g{}", rng.below(groups)),
                    _ => format!("leaf{}", rng.below(60)),
                };
                tuples.push(format!("doc:d{d}#team@group:{team}"));
                if d > 0 {
                    tuples.push(format!("doc:d{d}#parent@doc:d{}", d - 1));
                }
            }
            let changes = |op, tuples: &[String]| {
                tuples
                    .iter()
                    .map(|text| Change {
                        op,
                        relationship: text.parse().unwrap(),
                    })
                    .collect()
            };
            index.apply(&ChangeSet {
                revision: Revision(1),
                changes: changes(ChangeOp::Touch, &tuples),
            });
            let deleted: Vec<String> = tuples
                .iter()
                .filter(|_| rng.below(6) == 0)
                .cloned()
                .collect();
            index.apply(&ChangeSet {
                revision: Revision(2),
                changes: changes(ChangeOp::Delete, &deleted),
            });
            if rng.below(3) == 0 {
                index.collect_garbage(Revision(rng.below(3)));
            }
            let depth_limit = 1 + rng.below(8) as u32;
            for rev in [1, 2] {
                let snap = Snapshot {
                    depth_limit,
                    ..snapshot(&schema, &plan, &index, rev)
                };
                let mut goals = Vec::new();
                for d in (0..6).rev() {
                    goals.push(goal_of(
                        &schema,
                        &plan,
                        &index,
                        "doc",
                        &format!("d{d}"),
                        "view",
                    ));
                }
                for g in 0..groups {
                    goals.push(goal_of(
                        &schema,
                        &plan,
                        &index,
                        "group",
                        &format!("g{g}"),
                        "member",
                    ));
                }
                for who in 0..=users {
                    let subject = user(&index, &format!("u{who}"));
                    // One checker per subject across all goals, as a bulk check shares
                    // its memo.
                    let mut fast = Checker::new(snap, subject);
                    let mut slow = Checker::new(snap, subject);
                    slow.allow_subject_side = false;
                    for goal in &goals {
                        let expected = slow.check(*goal).map_err(|err| err.to_string());
                        let got = fast.check(*goal).map_err(|err| err.to_string());
                        assert_eq!(got, expected, "case {case} rev {rev} u{who} {goal:?}");
                    }
                    used += usize::from(fast.subject_side);
                }
            }
        }
        assert!(used > 50, "the subject side answered only {used} times");
    }
}
