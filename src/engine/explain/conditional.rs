//! The three-valued explaining walk: what [`super::super::conditional::CondChecker`]
//! answers, with the reasons, while the index keeps caveated or expiring tuples.
//!
//! It mirrors that walk step by step — the same order of tuples (plain ones, then
//! conditional ones), the same short-circuits (a union stops at the first granted branch,
//! an intersection at the first denied one, an exclusion skips its subtracted side when
//! the base is denied, a tuple whose caveat is false is not walked through), the same
//! cycle and memo rules and the same Kleene combination — so that its verdicts are the
//! check's (the model test holds both to that). On top of the plain explanation it says,
//! per relationship, its caveat and expiration; a caveat that is false
//! ([`Reason::CaveatFalse`]) or misses parameters ([`Reason::MissingContext`], naming
//! them); and an expired relationship ([`Reason::Expired`], with when), which the answer
//! does not see but a person asking "why not" wants to.
//!
//! # Caveat errors
//! A caveat that fails to evaluate is treated as the check treats it (its module doc):
//! evaluated only where the check evaluates it (never for a relationship of another
//! subject, nor for a subject set whose type or relation the schema lacks), kept with the
//! check's own [`Pending`] until the operator knows whether it needs it, and failing the
//! explained check exactly where it fails the check, with the same (first) error. A
//! branch whose error the answer did not need shows as [`Verdict::Error`], the
//! relationship with [`Reason::CaveatError`] and the message. Explain never changes the
//! answer (`tests/engine_semantics.rs` asks every case both ways).

use rustc_hash::FxHashMap;

use crate::model::Timestamp;
use crate::schema::{Arrow, Expr, RelationKind};

use super::super::EngineError;
use super::super::check::{Goal, Snapshot, Subject};
use super::super::conditional::{
    Context, NO_LOW, Out, Params, Pending, Val, and, caveat_value, member_goal, names_subject, not,
    or,
};
use super::super::index::{CondMember, NO_REL, Node, ObjKey};
use super::{
    ExplainKind, ExplainNode, ExplainedAnswer, Explainer, Explanation, Names, Reason, Verdict,
    adopt, count, expr_text,
};

/// Explains `goal` for `subject` three-valued, keeping at most `limit` nodes.
pub(crate) fn explain(
    snap: Snapshot<'_>,
    subject: Subject,
    goal: Goal,
    names: Names,
    context: Option<&Context>,
    now: Timestamp,
    limit: usize,
) -> Result<Explanation, EngineError> {
    let subject_wildcard = match subject {
        Subject::Object(obj) => Some(Node {
            ty: obj.ty,
            id: snap.index.star(),
            rel: NO_REL,
        }),
        _ => None,
    };
    let mut walk = CondExplainer {
        base: Explainer {
            snap,
            subject,
            subject_wildcard,
            names,
            stack: Vec::new(),
            memo: FxHashMap::default(),
            neg: 0,
            nodes: 0,
            limit: limit.max(1),
            truncated: false,
        },
        context,
        now,
        params: Params::default(),
        memo: FxHashMap::default(),
        stack: Vec::new(),
        neg: 0,
    };
    let step = walk.goal(goal, 0)?;
    // A caveat error the answer needs fails the explained check, as it fails the check.
    let out = step.out?;
    let (result, mut missing_context) = match out.val {
        Val::True => (ExplainedAnswer::HasPermission, Vec::new()),
        Val::False | Val::Undefined => (ExplainedAnswer::NoPermission, Vec::new()),
        Val::Missing(mask) => (
            ExplainedAnswer::ConditionalPermission,
            walk.params.names(mask),
        ),
    };
    missing_context.sort();
    missing_context.dedup();
    let tree = match step.node {
        Some(tree) => tree,
        None => walk.base.goal_node(goal),
    };
    Ok(Explanation {
        result,
        nodes: count(&tree),
        tree,
        truncated: walk.base.truncated,
        missing_context,
    })
}

/// A value, or the caveat error standing for it (kept by the operator above with
/// [`Pending`], as the check keeps it); any other error fails the walk at once.
type Value = Result<Out, EngineError>;

/// A value with its node (absent once the node budget is spent).
struct Step {
    out: Value,
    node: Option<ExplainNode>,
}

struct CondExplainer<'a> {
    /// The plain explainer, for its node builders, names and node budget (its own walk
    /// state stays unused).
    base: Explainer<'a>,
    context: Option<&'a Context>,
    now: Timestamp,
    params: Params,
    memo: FxHashMap<Goal, Val>,
    stack: Vec<(Goal, u32)>,
    neg: u32,
}

/// What one conditional tuple contributes before its subject is walked.
enum Seen {
    /// Not live at the revision.
    Absent,
    Expired,
    /// The value of its caveat (true without one), or the caveat's error, kept.
    Live(Result<Val, EngineError>),
}

impl<'a> CondExplainer<'a> {
    fn verdict(&self, val: Val) -> (Verdict, Vec<String>) {
        match val {
            Val::True => (Verdict::Granted, Vec::new()),
            Val::False => (Verdict::Denied, Vec::new()),
            Val::Undefined => (Verdict::Undefined, Vec::new()),
            Val::Missing(mask) => (Verdict::Conditional, self.params.names(mask)),
        }
    }

    fn mark(&self, node: &mut ExplainNode, val: Val) {
        let (verdict, missing) = self.verdict(val);
        node.result = verdict;
        node.missing_context = missing;
    }

    /// Marks `node` with a value or, for a caveat error, [`Verdict::Error`].
    fn mark_value(&self, node: &mut ExplainNode, value: &Value) {
        match value {
            Ok(out) => self.mark(node, out.val),
            Err(_) => {
                node.result = Verdict::Error;
                node.missing_context = Vec::new();
            }
        }
    }

    fn finish(&self, node: &mut Option<ExplainNode>, val: Val, reason: Option<Reason>) {
        if let Some(node) = node {
            self.mark(node, val);
            node.reason = reason;
        }
    }

    fn set(&self, node: &mut Option<ExplainNode>, value: &Value, children: Vec<ExplainNode>) {
        if let Some(node) = node {
            self.mark_value(node, value);
            node.children = children;
        }
    }

    fn goal(&mut self, goal: Goal, depth: u32) -> Result<Step, EngineError> {
        self.base.snap.budget.tick()?;
        let mut node = self.base.open().then(|| self.base.goal_node(goal));
        if let Some(val) = self.memo.get(&goal).copied() {
            self.finish(&mut node, val, Some(Reason::SeeAbove));
            return Ok(Step {
                out: Ok(Out::of(val)),
                node,
            });
        }
        if let Some(pos) = self.stack.iter().rposition(|(it, _)| *it == goal) {
            let (val, reason) = if self.neg > self.stack[pos].1 {
                (Val::Undefined, Reason::CycleThroughExclusion)
            } else {
                (Val::False, Reason::Cycle)
            };
            self.finish(&mut node, val, Some(reason));
            return Ok(Step {
                out: Ok(Out { val, low: pos }),
                node,
            });
        }
        let snap = self.base.snap;
        if depth > snap.depth_limit {
            return Err(EngineError::DepthExceeded(snap.depth_limit));
        }
        let index_node = self.base.index_node(goal);
        if self.base.subject == Subject::Set(index_node) {
            self.memo.insert(goal, Val::True);
            self.finish(&mut node, Val::True, Some(Reason::IsSubject));
            return Ok(Step {
                out: Ok(Out::of(Val::True)),
                node,
            });
        }
        let position = self.stack.len();
        self.stack.push((goal, self.neg));
        let res = match &snap.schema.relation_by_id(goal.rel).kind {
            RelationKind::Relation { .. } => self.relation(index_node, depth).map(|part| {
                if let Some(node) = &mut node {
                    node.children = part.children;
                    node.reason = part.reason;
                }
                part.out
            }),
            RelationKind::Permission { expr } => self.expr(goal, expr, depth).map(|step| {
                if let (Some(node), Some(child)) = (&mut node, step.node) {
                    adopt(node, child);
                }
                step.out
            }),
        };
        self.stack.truncate(position);
        // A caveat error is not remembered (the check does not remember it either).
        let out = res?.map(|mut out| {
            if out.val == Val::True || out.low >= position {
                self.memo.insert(goal, out.val);
                out.low = NO_LOW;
            }
            out
        });
        if let Some(node) = &mut node {
            self.mark_value(node, &out);
        }
        Ok(Step { out, node })
    }

    /// Whether a conditional tuple is live, expired or how its caveat evaluates (a caveat
    /// error kept as its value, as the check's `visible_kept` keeps it).
    fn seen(&mut self, member: &CondMember) -> Result<Seen, EngineError> {
        let snap = self.base.snap;
        if !member.live_at(snap.rev) {
            return Ok(Seen::Absent);
        }
        if let Some(at) = member.expiration
            && at <= self.now
        {
            return Ok(Seen::Expired);
        }
        let Some(caveat) = &member.caveat else {
            return Ok(Seen::Live(Ok(Val::True)));
        };
        match caveat_value(snap.schema, caveat, self.context, &mut self.params) {
            Ok(val) => Ok(Seen::Live(Ok(val))),
            Err(err @ EngineError::Caveat(_)) => Ok(Seen::Live(Err(err))),
            Err(err) => Err(err),
        }
    }

    /// The node of a conditional relationship `resource@member`, with its suffixes.
    fn member_node(&self, resource: Node, member: &CondMember) -> ExplainNode {
        let mut subject = self.base.node_text(member.subject);
        if let Some(caveat) = &member.caveat {
            subject.push_str(&caveat.to_string());
        }
        if let Some(at) = member.expiration {
            subject.push_str(&format!("[expiration:{at}]"));
        }
        let mut node = self
            .base
            .relationship_node(resource, subject, Some(member.created));
        node.caveat = member.caveat.as_ref().map(|it| it.name.clone());
        node.expires_at = member.expiration.map(|it| it.to_string());
        node
    }

    /// An expired relationship, shown (when it matters to the subject) as denied.
    fn expired_node(&mut self, resource: Node, member: &CondMember) -> Option<ExplainNode> {
        let mut node = self
            .base
            .open()
            .then(|| self.member_node(resource, member))?;
        node.result = Verdict::Denied;
        node.reason = Some(Reason::Expired);
        Some(node)
    }

    /// The reason a relationship's caveat alone gives for `cond`, if it is not true.
    fn caveat_reason(cond: Val) -> Option<Reason> {
        match cond {
            Val::False => Some(Reason::CaveatFalse),
            Val::Missing(_) => Some(Reason::MissingContext),
            _ => None,
        }
    }

    /// Marks the node of a relationship walked through (a subject set or an arrow's
    /// related object) with `out`: its caveat's value (`cond`, or `error` when it failed)
    /// weighed with the far side's, or `None` when the far side failed (its child says
    /// why). A caveat error is shown only where it is the tuple's value.
    fn mark_through(
        &self,
        node: &mut ExplainNode,
        cond: Option<Val>,
        error: Option<String>,
        out: Option<&Value>,
    ) {
        match out {
            None => {
                node.result = Verdict::Error;
                node.missing_context = Vec::new();
            }
            Some(Ok(out)) => {
                self.mark(node, out.val);
                node.reason = cond.and_then(Self::caveat_reason);
            }
            Some(Err(_)) => {
                node.result = Verdict::Error;
                node.missing_context = Vec::new();
                node.reason = Some(Reason::CaveatError);
                node.error = error;
            }
        }
    }

    /// A stored relation: plain tuples (a direct hit, then subject sets), then the
    /// conditional ones, as the three-valued check walks them.
    fn relation(&mut self, start: Node, depth: u32) -> Result<Part, EngineError> {
        let snap = self.base.snap;
        let index = snap.index;
        let rev = snap.rev;
        let star = index.star();
        let mut acc = Out::of(Val::False);
        let mut pending = Pending::default();
        let mut tried = Vec::new();
        if let Some(forward) = index.forward(start) {
            if let Some(hit) = self.base.direct(start, forward) {
                let children = if self.base.open() {
                    vec![hit]
                } else {
                    Vec::new()
                };
                return Ok(Part {
                    out: Ok(Out::of(Val::True)),
                    children,
                    reason: None,
                });
            }
            let sets: Vec<Node> = forward
                .usersets(rev)
                .filter(|it| it.id != star && it.rel != NO_REL)
                .collect();
            for set in sets {
                let Some(goal) = member_goal(&snap, set) else {
                    continue;
                };
                let kept = self.base.open();
                let step = self.goal(goal, depth + 1)?;
                let connector = match (kept, step.node) {
                    (true, Some(inner)) => {
                        let written_at = forward.userset_written_at(set, rev);
                        let mut connector = self.base.relationship_node(
                            start,
                            self.base.node_text(set),
                            written_at,
                        );
                        connector.result = inner.result;
                        connector.missing_context = inner.missing_context.clone();
                        connector.children.push(inner);
                        Some(connector)
                    }
                    _ => None,
                };
                let Some(out) = pending.take(step.out)? else {
                    tried.extend(connector);
                    continue;
                };
                if out.val == Val::True {
                    return Ok(Part {
                        out: Ok(out),
                        children: connector.into_iter().collect(),
                        reason: None,
                    });
                }
                acc = or(acc, out);
                tried.extend(connector);
            }
        }
        for member in index.conditional_members(start) {
            // A tuple for another subject, or naming a subject set the schema lacks: its
            // caveat is never evaluated, as in the check.
            let direct = names_subject(&snap, self.base.subject, member.subject);
            let set_goal = if direct {
                None
            } else if member.subject.rel != NO_REL && member.subject.id != star {
                match member_goal(&snap, member.subject) {
                    Some(goal) => Some(goal),
                    None => continue,
                }
            } else {
                continue;
            };
            let cond = match self.seen(member)? {
                Seen::Absent => continue,
                Seen::Expired => {
                    tried.extend(self.expired_node(start, member));
                    continue;
                }
                Seen::Live(cond) => cond,
            };
            let mut node = self.base.open().then(|| self.member_node(start, member));
            if matches!(cond, Ok(Val::False)) {
                self.finish(&mut node, Val::False, Some(Reason::CaveatFalse));
                tried.extend(node);
                continue;
            }
            let out = match set_goal {
                None => {
                    let out = cond.map(Out::of);
                    if let Some(node) = &mut node {
                        self.mark_value(node, &out);
                        match &out {
                            Ok(out) => {
                                node.reason = Self::caveat_reason(out.val).or(Some(
                                    if member.subject.id == star {
                                        Reason::Wildcard
                                    } else {
                                        Reason::Direct
                                    },
                                ));
                            }
                            Err(err) => {
                                node.reason = Some(Reason::CaveatError);
                                node.error = Some(err.to_string());
                            }
                        }
                    }
                    out
                }
                Some(goal) => {
                    // The set must hold for the tuple's caveat to matter; the far side's
                    // error is kept first, as the check keeps it.
                    let step = self.goal(goal, depth + 1)?;
                    let cond_val = cond.as_ref().ok().copied();
                    let error = cond.as_ref().err().map(ToString::to_string);
                    let out = pending.take(step.out)?.map(|far| {
                        if far.val == Val::False {
                            // False maybe only by a cycle assumption: its mark is kept.
                            Ok(far)
                        } else {
                            cond.map(|cond| and(Out::of(cond), far))
                        }
                    });
                    if let Some(node) = &mut node {
                        self.mark_through(node, cond_val, error, out.as_ref());
                        node.children.extend(step.node);
                    }
                    let Some(out) = out else {
                        tried.extend(node);
                        continue;
                    };
                    out
                }
            };
            let Some(out) = pending.take(out)? else {
                tried.extend(node);
                continue;
            };
            if out.val == Val::True {
                return Ok(Part {
                    out: Ok(out),
                    children: node.into_iter().collect(),
                    reason: None,
                });
            }
            acc = or(acc, out);
            tried.extend(node);
        }
        let out = pending.finish(acc);
        let reason = (matches!(&out, Ok(out) if out.val == Val::False) && tried.is_empty())
            .then_some(Reason::NoRelationship);
        Ok(Part {
            out,
            children: tried,
            reason,
        })
    }

    fn expr(&mut self, goal: Goal, expr: &'a Expr, depth: u32) -> Result<Step, EngineError> {
        let schema = self.base.snap.schema;
        match expr {
            Expr::Nil => {
                let node = self.base.open().then(|| {
                    let mut node = Explainer::bare(ExplainKind::Nil, Some("nil".to_string()));
                    node.reason = Some(Reason::Nil);
                    node
                });
                Ok(Step {
                    out: Ok(Out::of(Val::False)),
                    node,
                })
            }
            Expr::Ref(rel) => self.goal(
                Goal {
                    ty: goal.ty,
                    id: goal.id,
                    rel: *rel,
                },
                depth + 1,
            ),
            Expr::Union(operands) => {
                let mut node = self
                    .base
                    .open()
                    .then(|| Explainer::bare(ExplainKind::Union, Some(expr_text(schema, expr))));
                let mut acc = Out::of(Val::False);
                let mut pending = Pending::default();
                let mut tried = Vec::new();
                for operand in operands {
                    let step = self.expr(goal, operand, depth)?;
                    let Some(out) = pending.take(step.out)? else {
                        tried.extend(step.node);
                        continue;
                    };
                    if out.val == Val::True {
                        let out = Ok(out);
                        self.set(&mut node, &out, step.node.into_iter().collect());
                        return Ok(Step { out, node });
                    }
                    acc = or(acc, out);
                    tried.extend(step.node);
                }
                let out = pending.finish(acc);
                self.set(&mut node, &out, tried);
                Ok(Step { out, node })
            }
            Expr::Intersection(operands) => {
                let mut node = self.base.open().then(|| {
                    Explainer::bare(ExplainKind::Intersection, Some(expr_text(schema, expr)))
                });
                let mut acc = Out::of(Val::True);
                let mut pending = Pending::default();
                let mut tried = Vec::new();
                for operand in operands {
                    let step = self.expr(goal, operand, depth)?;
                    tried.extend(step.node);
                    let Some(out) = pending.take(step.out)? else {
                        continue;
                    };
                    if out.val == Val::False {
                        let out = Ok(out);
                        self.set(&mut node, &out, tried);
                        return Ok(Step { out, node });
                    }
                    acc = and(acc, out);
                }
                let out = pending.finish(acc);
                self.set(&mut node, &out, tried);
                Ok(Step { out, node })
            }
            Expr::Exclusion(base, subtracted) => {
                let mut node = self.base.open().then(|| {
                    Explainer::bare(ExplainKind::Exclusion, Some(expr_text(schema, expr)))
                });
                let mut pending = Pending::default();
                let base = self.expr(goal, base, depth)?;
                let base_node = base.node;
                let base = pending.take(base.out)?;
                if let Some(base) = base
                    && base.val == Val::False
                {
                    let out = Ok(base);
                    self.set(&mut node, &out, base_node.into_iter().collect());
                    return Ok(Step { out, node });
                }
                self.neg += 1;
                let sub = self.expr(goal, subtracted, depth);
                self.neg -= 1;
                let sub = sub?;
                let sub_node = sub.node;
                let sub = pending.take(sub.out)?;
                let excluded = sub.is_some_and(|sub| sub.val == Val::True);
                // The same combination as the check's, lowest marks included.
                let out = match (base, sub) {
                    (_, Some(sub)) if sub.val == Val::True => Ok(not(sub)),
                    (Some(base), Some(sub)) => Ok(and(base, not(sub))),
                    _ => pending.finish(Out::of(Val::False)),
                };
                self.set(
                    &mut node,
                    &out,
                    base_node.into_iter().chain(sub_node).collect(),
                );
                if excluded && let Some(node) = &mut node {
                    node.reason = Some(Reason::Excluded);
                }
                Ok(Step { out, node })
            }
            Expr::Arrow(arrow) => self.arrow(goal, arrow, depth, false),
            Expr::ArrowAll(arrow) => self.arrow(goal, arrow, depth, true),
            Expr::SelfRef => {
                let resource = ObjKey {
                    ty: self.base.snap.plan.type_sym[goal.ty.0 as usize],
                    id: goal.id,
                };
                let granted = self.base.subject == Subject::Object(resource);
                let (val, reason) = if granted {
                    (Val::True, Reason::IsResource)
                } else {
                    (Val::False, Reason::NotResource)
                };
                let mut node = self
                    .base
                    .open()
                    .then(|| Explainer::bare(ExplainKind::SelfRef, Some("self".to_string())));
                self.finish(&mut node, val, Some(reason));
                Ok(Step {
                    out: Ok(Out::of(val)),
                    node,
                })
            }
        }
    }

    /// `tupleset.computed` (OR over the related objects, each ANDed with its tuple's
    /// caveat; a false caveat is not walked) or, with `all`, `tupleset.all(computed)`
    /// (AND over every related object, false when there is none or one whose type lacks
    /// `computed`), in the order of the three-valued check: every related object's caveat
    /// is evaluated first (an error kept as its value), then each target is walked and
    /// its caveat weighed only where the target may grant.
    fn arrow(
        &mut self,
        goal: Goal,
        arrow: &Arrow,
        depth: u32,
        all: bool,
    ) -> Result<Step, EngineError> {
        let snap = self.base.snap;
        let tupleset = Node {
            ty: snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: snap.plan.rel_sym[arrow.tupleset.0 as usize],
        };
        let index = snap.index;
        let rev = snap.rev;
        let star = index.star();
        let name = &snap.schema.relation_by_id(arrow.tupleset).name;
        let text = if all {
            format!("{name}.all({})", arrow.computed_name)
        } else {
            format!("{name}.{}", arrow.computed_name)
        };
        let mut node = self
            .base
            .open()
            .then(|| Explainer::bare(ExplainKind::Arrow, Some(text)));
        // The related objects: plain ones (true), then conditional ones with their value.
        let mut targets: Vec<Target<'_>> = index
            .objects(tupleset, rev)
            .map(|obj| Node {
                ty: obj.ty,
                id: obj.id,
                rel: NO_REL,
            })
            .chain(index.usersets(tupleset, rev).filter(|it| it.id != star))
            .map(|subject| (subject, Ok(Val::True), None))
            .collect();
        let mut tried = Vec::new();
        for member in index.conditional_members(tupleset) {
            if member.subject.id == star {
                continue;
            }
            match self.seen(member)? {
                Seen::Absent => {}
                Seen::Expired => tried.extend(self.expired_node(tupleset, member)),
                Seen::Live(cond) => targets.push((member.subject, cond, Some(member))),
            }
        }
        if all && targets.is_empty() {
            let out = Ok(Out::of(Val::False));
            self.set(&mut node, &out, tried);
            if let Some(node) = &mut node {
                node.reason = Some(Reason::NoRelatedObjects);
            }
            return Ok(Step { out, node });
        }
        let mut acc = Out::of(if all { Val::True } else { Val::False });
        let mut pending = Pending::default();
        let mut n_related = 0;
        for (subject, cond, member) in targets {
            if !all && matches!(cond, Ok(Val::False)) {
                if let Some(member) = member
                    && let Some(mut skipped) =
                        self.base.open().then(|| self.member_node(tupleset, member))
                {
                    skipped.result = Verdict::Denied;
                    skipped.reason = Some(Reason::CaveatFalse);
                    tried.push(skipped);
                }
                continue;
            }
            let target = snap
                .plan
                .type_of(subject.ty)
                .and_then(|ty| arrow.targets.iter().find(|(it, _)| *it == ty));
            let Some((ty, target)) = target else {
                if all {
                    // As the check: false, whatever errors were kept.
                    let out = Ok(Out::of(Val::False));
                    self.set(&mut node, &out, tried);
                    return Ok(Step { out, node });
                }
                continue;
            };
            n_related += 1;
            let mut connector = self.base.open().then(|| match member {
                Some(member) => self.member_node(tupleset, member),
                None => {
                    let written_at = self.base.written_at(tupleset, subject);
                    self.base
                        .relationship_node(tupleset, self.base.node_text(subject), written_at)
                }
            });
            let step = self.goal(
                Goal {
                    ty: *ty,
                    id: subject.id,
                    rel: *target,
                },
                depth + 1,
            )?;
            // The tuple's value: its caveat ANDed with the target's; a caveat error does
            // not matter where the target is denied (in `.all()` too: the AND is false).
            // The target's error is kept first, then the caveat's, as the check keeps them.
            let cond_val = cond.as_ref().ok().copied();
            let error = cond.as_ref().err().map(ToString::to_string);
            let out = pending.take(step.out)?.map(|far| {
                if far.val == Val::False && (!all || cond.is_err()) {
                    Ok(far)
                } else {
                    cond.map(|cond| and(Out::of(cond), far))
                }
            });
            if let Some(connector) = &mut connector {
                self.mark_through(connector, cond_val, error, out.as_ref());
                connector.children.extend(step.node);
            }
            let Some(out) = out else {
                tried.extend(connector);
                continue;
            };
            let Some(out) = pending.take(out)? else {
                tried.extend(connector);
                continue;
            };
            let decided = if all {
                out.val == Val::False
            } else {
                out.val == Val::True
            };
            if decided {
                let children = if all {
                    tried.into_iter().chain(connector).collect()
                } else {
                    connector.into_iter().collect()
                };
                let out = Ok(out);
                self.set(&mut node, &out, children);
                return Ok(Step { out, node });
            }
            acc = if all { and(acc, out) } else { or(acc, out) };
            tried.extend(connector);
        }
        let out = pending.finish(acc);
        self.set(&mut node, &out, tried);
        if n_related == 0
            && let Some(node) = &mut node
        {
            node.reason = Some(Reason::NoRelatedObjects);
        }
        Ok(Step { out, node })
    }
}

/// A related object of an arrow: its subject node, the value of its tuple's caveat (or
/// the caveat's error, kept) and, for a conditional tuple, the tuple.
type Target<'m> = (Node, Result<Val, EngineError>, Option<&'m CondMember>);

/// The value of a stored relation with the relationships that explain it.
struct Part {
    out: Value,
    children: Vec<ExplainNode>,
    reason: Option<Reason>,
}
