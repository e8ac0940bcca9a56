//! The three-valued check walk (DESIGN §3): what a check answers once caveated or
//! expiring tuples exist. The answer is *has*, *no*, or *conditional* naming the caveat
//! parameters still missing from the request's context.
//!
//! # Why a second walk, and how it stays equivalent
//! The plain walk of [`super::check`] (with its cache, holders set and subject-side
//! search) decides booleans; it never sees a caveated or expiring tuple, because the index
//! keeps those apart ([`super::index::CondMember`]). While the index keeps none, checks
//! take the plain walk exactly as before (same path, same cost). Once it keeps any, every
//! check takes this walk instead, which reads the plain tuples *and* the conditional ones.
//! On plain tuples alone it computes the plain walk's answer: the same semantics (direct
//! tuple, wildcard, subject sets, SpiceDB's self rule for subject sets, permissions,
//! arrows over subject objects), the same least-fixed-point rule for cycles (a goal met
//! again on the path is false, undefined when the path crossed an exclusion's subtracted
//! side), the same memo rule, and undefined still denies. `tests/engine_model.rs` checks
//! both against a reference evaluator.
//!
//! # The value
//! [`Val`] is `Copy`: `Missing(mask)` is a bitmask over a per-check table of parameter
//! names. A caveated tuple contributes its caveat's value, evaluated with the tuple's
//! stored context (which wins per key) and the request's; a subject set or arrow through a
//! caveated tuple is the AND of the tuple's value and the rest. Kleene logic: union ORs,
//! intersection ANDs, exclusion is `A AND NOT B`; `AND(Missing a, False) = False`,
//! `OR(Missing a, True) = True`, `AND/OR(Missing a, Missing b) = Missing(a ∪ b)`,
//! `NOT(Missing a) = Missing a`. An expired tuple (expiration at or before the request's
//! one "now") is invisible.
//!
//! # Caveat errors
//! A caveat that fails to evaluate fails the check only where the answer needs it, as in
//! SpiceDB (which builds the answer's caveat expression and evaluates it last): the
//! caveat of a tuple for another subject is never evaluated; a tuple whose subject set or
//! arrow target does not hold is left out whatever its caveat; a union another operand
//! grants, an intersection another operand denies, an exclusion whose subtracted side
//! holds answer without it. [`Pending`] keeps such an error until the operator knows.

use rustc_hash::FxHashMap;

use crate::caveat::CaveatResult;
use crate::model::Timestamp;
use crate::schema::{Expr, RelationKind};

use super::EngineError;
use super::check::{Goal, Snapshot, Subject};
use super::index::{CondMember, NO_REL, Node, ObjKey};

/// The request context of a check: caveat parameter values by name.
pub(crate) use super::api::Context;

/// The most distinct missing parameters one check can name.
const MAX_MISSING: usize = 64;

/// The value of a goal or an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Val {
    False,
    /// A cycle through an exclusion: denies.
    Undefined,
    /// Decided by the parameters in the mask (bits index [`CondChecker::params`]).
    Missing(u64),
    True,
}

/// The answer of one three-valued check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Has,
    No,
    Conditional(Vec<String>),
}

/// The value and the lowest stack position of an in-progress goal it assumed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Out {
    pub val: Val,
    pub low: usize,
}

pub(crate) const NO_LOW: usize = usize::MAX;

impl Out {
    pub fn of(val: Val) -> Self {
        Self { val, low: NO_LOW }
    }
}

/// The names behind the bits of [`Val::Missing`], in the order the walk met them.
#[derive(Default)]
pub(crate) struct Params(Vec<String>);

impl Params {
    /// The mask of `names`, giving each new name the next bit.
    pub fn mask_of(&mut self, names: &[String]) -> Result<u64, EngineError> {
        let mut mask = 0u64;
        for name in names {
            let bit = match self.0.iter().position(|it| it == name) {
                Some(bit) => bit,
                None => {
                    if self.0.len() >= MAX_MISSING {
                        return Err(EngineError::Caveat(format!(
                            "a check may miss at most {MAX_MISSING} distinct caveat parameters"
                        )));
                    }
                    self.0.push(name.clone());
                    self.0.len() - 1
                }
            };
            mask |= 1 << bit;
        }
        Ok(mask)
    }

    /// The names of the bits of `mask`.
    pub fn names(&self, mask: u64) -> Vec<String> {
        self.0
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, name)| name.clone())
            .collect()
    }
}

/// A caveat error an operator has met but may not need (see the module doc): the first
/// one is kept; any other error passes at once. The explaining walk keeps errors with the
/// same rule (`explain/conditional.rs`), so that it fails exactly where this walk fails.
#[derive(Default)]
pub(crate) struct Pending(Option<EngineError>);

impl Pending {
    /// `Some(value)`, or `None` when `res` is a caveat error (kept).
    pub fn take<T>(&mut self, res: Result<T, EngineError>) -> Result<Option<T>, EngineError> {
        match res {
            Ok(value) => Ok(Some(value)),
            Err(err @ EngineError::Caveat(_)) => {
                self.0.get_or_insert(err);
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// The operator's value `acc` once no operand decided it: an error kept fails it.
    pub fn finish(self, acc: Out) -> Result<Out, EngineError> {
        match self.0 {
            Some(err) => Err(err),
            None => Ok(acc),
        }
    }
}

/// The value of a stored relationship's caveat: its stored context wins per key over the
/// request's.
pub(crate) fn caveat_value(
    schema: &crate::schema::Schema,
    caveat: &crate::model::RelationshipCaveat,
    context: Option<&Context>,
    params: &mut Params,
) -> Result<Val, EngineError> {
    let compiled = schema.caveat(&caveat.name).ok_or_else(|| {
        EngineError::Caveat(format!(
            "caveat `{}` of a stored relationship is not in the schema",
            caveat.name
        ))
    })?;
    let res = compiled
        .evaluate(Some(&caveat.context), context)
        .map_err(|err| EngineError::Caveat(err.to_string()))?;
    Ok(match res {
        CaveatResult::True => Val::True,
        CaveatResult::False => Val::False,
        CaveatResult::Missing(names) => Val::Missing(params.mask_of(&names)?),
    })
}

/// Whether the subject node `member` (of a tuple) names the check's `subject` directly.
pub(crate) fn names_subject(snap: &Snapshot<'_>, subject: Subject, member: Node) -> bool {
    let star = snap.index.star();
    match subject {
        Subject::Object(obj) => {
            member.ty == obj.ty
                && member.rel == NO_REL
                && (member.id == obj.id || member.id == star)
        }
        Subject::Set(set) => member == set,
        Subject::Wildcard(ty) => member.ty == ty && member.id == star && member.rel == NO_REL,
    }
}

/// The goal a subject-set member stands for, if its type and relation are in the schema.
pub(crate) fn member_goal(snap: &Snapshot<'_>, member: Node) -> Option<Goal> {
    let plan = snap.plan;
    let ty = plan.type_of(member.ty)?;
    let rel = plan.rel_of(ty, member.rel)?;
    Some(Goal {
        ty,
        id: member.id,
        rel,
    })
}

/// One three-valued check walk for one subject and one request context.
pub(crate) struct CondChecker<'a> {
    snap: Snapshot<'a>,
    subject: Subject,
    context: Option<&'a Context>,
    now: Timestamp,
    /// The names behind the bits of [`Val::Missing`].
    params: Params,
    memo: FxHashMap<Goal, Val>,
    /// Goals in progress with the exclusion depth they started at.
    stack: Vec<(Goal, u32)>,
    neg: u32,
    /// The earliest expiration of a tuple the walk read (an answer must not be cached
    /// past it).
    pub earliest_expiry: Option<Timestamp>,
}

impl<'a> CondChecker<'a> {
    pub fn new(
        snap: Snapshot<'a>,
        subject: Subject,
        context: Option<&'a Context>,
        now: Timestamp,
    ) -> Self {
        Self {
            snap,
            subject,
            context,
            now,
            params: Params::default(),
            memo: FxHashMap::default(),
            stack: Vec::new(),
            neg: 0,
            earliest_expiry: None,
        }
    }

    /// The three-valued answer for `goal` (undefined denies).
    pub fn check(&mut self, goal: Goal) -> Result<Answer, EngineError> {
        self.stack.clear();
        self.neg = 0;
        let out = self.goal(goal, 0)?;
        Ok(self.answer(out.val))
    }

    fn answer(&self, val: Val) -> Answer {
        match val {
            Val::True => Answer::Has,
            Val::False | Val::Undefined => Answer::No,
            Val::Missing(mask) => Answer::Conditional(self.params.names(mask)),
        }
    }

    fn node(&self, goal: Goal) -> Node {
        Node {
            ty: self.snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: self.snap.plan.rel_sym[goal.rel.0 as usize],
        }
    }

    fn goal(&mut self, goal: Goal, depth: u32) -> Result<Out, EngineError> {
        self.snap.budget.tick()?;
        if let Some(val) = self.memo.get(&goal) {
            return Ok(Out::of(*val));
        }
        if let Some(pos) = self.stack.iter().rposition(|(it, _)| *it == goal) {
            let val = if self.neg > self.stack[pos].1 {
                Val::Undefined
            } else {
                Val::False
            };
            return Ok(Out { val, low: pos });
        }
        if depth > self.snap.depth_limit {
            return Err(EngineError::DepthExceeded(self.snap.depth_limit));
        }
        let node = self.node(goal);
        if self.subject == Subject::Set(node) {
            self.memo.insert(goal, Val::True);
            return Ok(Out::of(Val::True));
        }
        let position = self.stack.len();
        self.stack.push((goal, self.neg));
        let schema = self.snap.schema;
        let res = match &schema.relation_by_id(goal.rel).kind {
            RelationKind::Relation { .. } => self.relation(node, depth),
            RelationKind::Permission { expr } => self.expr(goal, expr, depth),
        };
        self.stack.truncate(position);
        let mut out = res?;
        if out.val == Val::True || out.low >= position {
            self.memo.insert(goal, out.val);
            out.low = NO_LOW;
        }
        Ok(out)
    }

    fn names_subject(&self, member: Node) -> bool {
        names_subject(&self.snap, self.subject, member)
    }

    fn member_goal(&self, member: Node) -> Option<Goal> {
        member_goal(&self.snap, member)
    }

    /// A stored relation: plain tuples, then conditional ones.
    fn relation(&mut self, node: Node, depth: u32) -> Result<Out, EngineError> {
        let index = self.snap.index;
        let rev = self.snap.rev;
        let star = index.star();
        let mut acc = Out::of(Val::False);
        let mut pending = Pending::default();
        if let Some(forward) = index.forward(node) {
            let direct = match self.subject {
                Subject::Object(obj) => {
                    forward.has_object(obj, rev)
                        || forward.has_wildcard(
                            Node {
                                ty: obj.ty,
                                id: star,
                                rel: NO_REL,
                            },
                            rev,
                        )
                }
                Subject::Set(set) => forward.has_userset(set, rev),
                Subject::Wildcard(ty) => forward.has_wildcard(
                    Node {
                        ty,
                        id: star,
                        rel: NO_REL,
                    },
                    rev,
                ),
            };
            if direct {
                return Ok(Out::of(Val::True));
            }
            let sets: Vec<Node> = forward
                .usersets(rev)
                .filter(|it| it.id != star && it.rel != NO_REL)
                .collect();
            for set in sets {
                let Some(goal) = self.member_goal(set) else {
                    continue;
                };
                let Some(out) = pending.take(self.goal(goal, depth + 1))? else {
                    continue;
                };
                if out.val == Val::True {
                    return Ok(out);
                }
                acc = or(acc, out);
            }
        }
        for member in index.conditional_members(node) {
            // A tuple for another subject: its caveat is never evaluated.
            let set_goal = if self.names_subject(member.subject) {
                None
            } else if member.subject.rel != NO_REL && member.subject.id != star {
                match self.member_goal(member.subject) {
                    Some(goal) => Some(goal),
                    None => continue,
                }
            } else {
                continue;
            };
            let cond = match self.visible_kept(member)? {
                None | Some(Ok(Val::False)) => continue,
                Some(cond) => cond,
            };
            let out = match set_goal {
                None => cond.map(Out::of),
                Some(goal) => {
                    // The set must hold for the tuple's caveat to matter.
                    let Some(far) = pending.take(self.goal(goal, depth + 1))? else {
                        continue;
                    };
                    if far.val == Val::False {
                        // False maybe only by a cycle assumption: keep its mark.
                        acc = or(acc, far);
                        continue;
                    }
                    cond.map(|cond| and(Out::of(cond), far))
                }
            };
            let Some(out) = pending.take(out)? else {
                continue;
            };
            if out.val == Val::True {
                return Ok(out);
            }
            acc = or(acc, out);
        }
        pending.finish(acc)
    }

    /// [`Self::visible`] with a caveat error kept as the tuple's value, for the caller to
    /// weigh (see the module doc); any other error fails.
    #[allow(clippy::type_complexity)]
    fn visible_kept(
        &mut self,
        member: &CondMember,
    ) -> Result<Option<Result<Val, EngineError>>, EngineError> {
        match self.visible(member) {
            Ok(value) => Ok(value.map(Ok)),
            Err(err @ EngineError::Caveat(_)) => Ok(Some(Err(err))),
            Err(err) => Err(err),
        }
    }

    /// The value of a conditional tuple's caveat, or `None` when the tuple is not live at
    /// the revision or has expired.
    fn visible(&mut self, member: &CondMember) -> Result<Option<Val>, EngineError> {
        if !member.live_at(self.snap.rev) {
            return Ok(None);
        }
        if let Some(at) = member.expiration {
            if at <= self.now {
                return Ok(None);
            }
            self.earliest_expiry = Some(self.earliest_expiry.map_or(at, |it| it.min(at)));
        }
        let Some(caveat) = &member.caveat else {
            return Ok(Some(Val::True));
        };
        caveat_value(self.snap.schema, caveat, self.context, &mut self.params).map(Some)
    }

    fn expr(&mut self, goal: Goal, expr: &'a Expr, depth: u32) -> Result<Out, EngineError> {
        match expr {
            Expr::Nil => Ok(Out::of(Val::False)),
            Expr::Ref(rel) => self.goal(
                Goal {
                    ty: goal.ty,
                    id: goal.id,
                    rel: *rel,
                },
                depth + 1,
            ),
            Expr::Union(operands) => {
                let mut acc = Out::of(Val::False);
                let mut pending = Pending::default();
                for operand in operands {
                    let Some(out) = pending.take(self.expr(goal, operand, depth))? else {
                        continue;
                    };
                    if out.val == Val::True {
                        return Ok(out);
                    }
                    acc = or(acc, out);
                }
                pending.finish(acc)
            }
            Expr::Intersection(operands) => {
                let mut acc = Out::of(Val::True);
                let mut pending = Pending::default();
                for operand in operands {
                    let Some(out) = pending.take(self.expr(goal, operand, depth))? else {
                        continue;
                    };
                    if out.val == Val::False {
                        return Ok(out);
                    }
                    acc = and(acc, out);
                }
                pending.finish(acc)
            }
            Expr::Exclusion(base, subtracted) => {
                let mut pending = Pending::default();
                let base = pending.take(self.expr(goal, base, depth))?;
                if let Some(base) = base
                    && base.val == Val::False
                {
                    return Ok(base);
                }
                self.neg += 1;
                let sub = self.expr(goal, subtracted, depth);
                self.neg -= 1;
                let sub = pending.take(sub)?;
                match (base, sub) {
                    // The subtracted side holds: no answer needs the base.
                    (_, Some(sub)) if sub.val == Val::True => Ok(not(sub)),
                    (Some(base), Some(sub)) => Ok(and(base, not(sub))),
                    _ => pending.finish(Out::of(Val::False)),
                }
            }
            Expr::Arrow(arrow) => self.arrow(goal, arrow, depth),
            Expr::ArrowAll(arrow) => self.arrow_all(goal, arrow, depth),
            Expr::SelfRef => {
                let resource = ObjKey {
                    ty: self.snap.plan.type_sym[goal.ty.0 as usize],
                    id: goal.id,
                };
                Ok(Out::of(if self.subject == Subject::Object(resource) {
                    Val::True
                } else {
                    Val::False
                }))
            }
        }
    }

    /// `tupleset.all(computed)`: AND over the subject objects of the tupleset, each ANDed
    /// with its tuple's caveat; false when the tupleset names no object or an object whose
    /// type lacks `computed` (as the plain walk answers). As in SpiceDB, a tuple whose
    /// caveat is false is not left out: its AND is false, so the whole is (leaving it out
    /// would let more context turn a *no* into a *has*).
    fn arrow_all(
        &mut self,
        goal: Goal,
        arrow: &crate::schema::Arrow,
        depth: u32,
    ) -> Result<Out, EngineError> {
        let targets = self.arrow_targets(goal, arrow)?;
        if targets.is_empty() {
            return Ok(Out::of(Val::False));
        }
        let mut acc = Out::of(Val::True);
        let mut pending = Pending::default();
        for (object, cond) in targets {
            let Some(far) = pending.take(self.arrow_step(object, arrow, depth))? else {
                continue;
            };
            let Some(far) = far else {
                return Ok(Out::of(Val::False));
            };
            let out = match cond {
                Ok(cond) => and(Out::of(cond), far),
                // The caveat failed: it matters only if the target may grant.
                Err(_) if far.val == Val::False => far,
                Err(err) => {
                    pending.take::<()>(Err(err))?;
                    continue;
                }
            };
            if out.val == Val::False {
                return Ok(out);
            }
            acc = and(acc, out);
        }
        pending.finish(acc)
    }

    /// `tupleset.computed`: OR over the subject objects of the tupleset, each ANDed with
    /// its tuple's caveat.
    fn arrow(
        &mut self,
        goal: Goal,
        arrow: &crate::schema::Arrow,
        depth: u32,
    ) -> Result<Out, EngineError> {
        let targets = self.arrow_targets(goal, arrow)?;
        let mut acc = Out::of(Val::False);
        let mut pending = Pending::default();
        for (object, cond) in targets {
            if matches!(cond, Ok(Val::False)) {
                continue;
            }
            let Some(Some(far)) = pending.take(self.arrow_step(object, arrow, depth))? else {
                continue;
            };
            if far.val == Val::False {
                // The target does not grant: the tuple's caveat does not matter (but the
                // false may rest on a cycle assumption: keep its mark).
                acc = or(acc, far);
                continue;
            }
            let Some(out) = pending.take(cond.map(|cond| and(Out::of(cond), far)))? else {
                continue;
            };
            if out.val == Val::True {
                return Ok(out);
            }
            acc = or(acc, out);
        }
        pending.finish(acc)
    }

    /// One step of an arrow: `computed` on `object` (the caller ANDs its tuple's
    /// condition); `None` when the object's type has no `computed`.
    fn arrow_step(
        &mut self,
        object: ObjKey,
        arrow: &crate::schema::Arrow,
        depth: u32,
    ) -> Result<Option<Out>, EngineError> {
        let Some(ty) = self.snap.plan.type_of(object.ty) else {
            return Ok(None);
        };
        let Some((_, target)) = arrow.targets.iter().find(|(it, _)| *it == ty) else {
            return Ok(None);
        };
        let goal = Goal {
            ty,
            id: object.id,
            rel: *target,
        };
        self.goal(goal, depth + 1).map(Some)
    }

    /// The subject objects of `goal`'s tupleset live now, each with the value of its
    /// tuple's condition (true for a plain tuple; false ones kept, see
    /// [`Self::arrow_all`]; a caveat error kept for the caller to weigh).
    #[allow(clippy::type_complexity)]
    fn arrow_targets(
        &mut self,
        goal: Goal,
        arrow: &crate::schema::Arrow,
    ) -> Result<Vec<(ObjKey, Result<Val, EngineError>)>, EngineError> {
        let tupleset = Node {
            ty: self.snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: self.snap.plan.rel_sym[arrow.tupleset.0 as usize],
        };
        let index = self.snap.index;
        let rev = self.snap.rev;
        let star = index.star();
        let mut targets: Vec<(ObjKey, Result<Val, EngineError>)> = index
            .arrow_objects(tupleset, rev)
            .map(|obj| (obj, Ok(Val::True)))
            .collect();
        for member in index.conditional_members(tupleset) {
            if member.subject.id == star {
                continue;
            }
            let Some(cond) = self.visible_kept(member)? else {
                continue;
            };
            let obj = ObjKey {
                ty: member.subject.ty,
                id: member.subject.id,
            };
            targets.push((obj, cond));
        }
        Ok(targets)
    }
}

pub(crate) fn or(a: Out, b: Out) -> Out {
    let val = match (a.val, b.val) {
        (Val::True, _) | (_, Val::True) => Val::True,
        (Val::Missing(x), Val::Missing(y)) => Val::Missing(x | y),
        (Val::Missing(x), _) | (_, Val::Missing(x)) => Val::Missing(x),
        (Val::Undefined, _) | (_, Val::Undefined) => Val::Undefined,
        _ => Val::False,
    };
    Out {
        val,
        low: a.low.min(b.low),
    }
}

pub(crate) fn and(a: Out, b: Out) -> Out {
    let val = match (a.val, b.val) {
        (Val::False, _) | (_, Val::False) => Val::False,
        (Val::Undefined, _) | (_, Val::Undefined) => Val::Undefined,
        (Val::Missing(x), Val::Missing(y)) => Val::Missing(x | y),
        (Val::Missing(x), _) | (_, Val::Missing(x)) => Val::Missing(x),
        _ => Val::True,
    };
    Out {
        val,
        low: a.low.min(b.low),
    }
}

pub(crate) fn not(a: Out) -> Out {
    let val = match a.val {
        Val::True => Val::False,
        Val::False => Val::True,
        other => other,
    };
    Out { val, low: a.low }
}
