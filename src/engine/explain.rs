//! The explaining walk: the same question as [`super::check`] — does the subject hold a
//! permission on a resource at one revision? — answered with the reasons, as a tree.
//!
//! It is a separate walk on purpose: the check walk stays free of any bookkeeping, so a
//! check without `explain` pays nothing for this feature. To give the same answers, this
//! walk mirrors the check walk's semantics step by step: unions stop at the first granted
//! branch, intersections at the first denied one, an exclusion evaluates its subtracted
//! side only when the base is granted, the subject sets of a stored relation are walked
//! breadth-first (so depth is counted as the check counts it), a goal met again on the
//! current path is a cycle (no access, or undefined through an exclusion, which denies),
//! and results are memoized under the same rule. It leaves out only the check walk's
//! shortcuts (the subject's direct holders, the search from the subject's side), which
//! that walk's own tests prove answer exactly as the forward walk.
//!
//! For *has permission* the tree is the witness: the chain of schema expressions and
//! stored relationships that grants it (other branches are left out). For *no
//! permission* it is every branch that was tried and why each failed. Each stored
//! relationship carries the revision that wrote it when the index knows it. The tree is
//! bounded by [`EXPLAIN_NODE_LIMIT`] nodes (then `truncated` is set; the answer is still
//! computed in full). The JSON shape is documented in `docs/PLAYGROUND.md`.
//!
//! While the index keeps caveated or expiring tuples, checks take the three-valued walk
//! of [`super::conditional`], and so does the explanation ([`conditional`]): a node may
//! then be `conditional` (naming the parameters it misses), a relationship shows its caveat
//! and expiration, and a caveated or expired relationship that did not grant says why
//! ([`Reason::CaveatFalse`], [`Reason::MissingContext`], [`Reason::Expired`]). A caveat
//! that fails to evaluate fails the explained check exactly where it fails the check, and
//! shows as [`Verdict::Error`] where another operand decided without it: explain never
//! changes the answer (`tests/engine_semantics.rs`, `tests/engine_model.rs`).

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::schema::{Expr, RelationKind, Schema};

use super::check::{Checker, Goal, Snapshot, Subject, Tri, UNKNOWN_RESOURCE, UNKNOWN_SUBJECT};
use super::conditional::{Answer, CondChecker};
use super::index::{Forward, NO_REL, Node, ObjKey, Sym};
use super::writer::Inner;
use super::{CheckRequest, Consistency, Decision, EngineError};

mod conditional;
mod functions;

/// The most nodes one explanation holds; past it, `truncated` is set.
pub const EXPLAIN_NODE_LIMIT: usize = 2_000;

/// Why the answer is what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The answer the explained walk reached; always the check's answer.
    pub result: ExplainedAnswer,
    /// The requested `resource#permission`, explained.
    pub tree: ExplainNode,
    /// How many nodes the tree holds.
    pub nodes: usize,
    /// Whether nodes were left out to stay within [`EXPLAIN_NODE_LIMIT`].
    pub truncated: bool,
    /// For a conditional answer: the caveat parameters the context lacks, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_context: Vec<String>,
}

/// The answer of an explained check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExplainedAnswer {
    HasPermission,
    NoPermission,
    /// It depends on caveat parameters the context lacks (never allowed).
    ConditionalPermission,
}

/// One node of an explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainNode {
    pub kind: ExplainKind,
    /// Whether this part grants the permission to the subject.
    pub result: Verdict,
    /// Why, where a node alone says it (a leaf, an exclusion, a repeated goal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// For `permission` and `relation`: the object, `type:id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// For `permission` and `relation`: its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// For `permission` and the operators: the schema expression, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// For `relationship`: the stored relationship, in text form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<String>,
    /// For `relationship`: the revision that wrote it, when the index knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<u64>,
    /// For a caveated `relationship`: the caveat's name (its stored context is in
    /// `relationship`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caveat: Option<String>,
    /// For an expiring `relationship`: when it expires (or expired), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// For a `conditional` node: the caveat parameters it still misses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_context: Vec<String>,
    /// For a `relationship` whose caveat failed to evaluate ([`Reason::CaveatError`]): the
    /// error, as the check reports it when the answer needs that caveat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ExplainNode>,
}

/// What a node stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExplainKind {
    /// A permission of an object. Its children are the branches of its top-level operator
    /// (the operator is in `expression`), or the one node its expression is.
    Permission,
    /// A stored relation of an object; its children are relationships tried.
    Relation,
    /// A stored relationship; a subject set's goal is its child.
    Relationship,
    Union,
    Intersection,
    /// Children: the base, then (when evaluated) the subtracted side.
    Exclusion,
    /// `tupleset.computed` or `tupleset.all(computed)`: one relationship child per
    /// related object tried.
    Arrow,
    Nil,
    /// `self`: whether the subject is the resource itself.
    SelfRef,
}

/// Whether a node grants the permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Granted,
    Denied,
    /// A cycle through the subtracted side of an exclusion: no defined answer; denies.
    Undefined,
    /// It depends on caveat parameters the context lacks (`missing_context`).
    Conditional,
    /// A caveat on the way failed to evaluate. Only on a branch the answer did not need
    /// (another operand decided it, as in the check): where the answer needs it, the
    /// explained check fails with that error, as the check does.
    Error,
}

/// Why a node has its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Granted: this relationship names the subject.
    Direct,
    /// Granted: this relationship names every subject of the subject's type (`type:*`).
    Wildcard,
    /// Granted: this relation or permission is the subject set asked about.
    IsSubject,
    /// Denied: no relationship names the subject, and no subject set grants it.
    NoRelationship,
    /// Denied: the arrow's relation names no object.
    NoRelatedObjects,
    /// Denied: `nil` grants nothing.
    Nil,
    /// Denied: the subtracted side of the exclusion grants it.
    Excluded,
    /// Denied: the goal is already being evaluated on this path (a cycle gives no access).
    Cycle,
    /// Undefined: a cycle through the subtracted side of an exclusion; denies.
    CycleThroughExclusion,
    /// Evaluated earlier in this walk, with the verdict shown (not repeated).
    SeeAbove,
    /// Granted by `self`: the subject is the resource itself.
    IsResource,
    /// Denied by `self`: the subject is not the resource itself (as a plain object).
    NotResource,
    /// Denied: the relationship's caveat is false with the stored and request context.
    CaveatFalse,
    /// Conditional: the relationship's caveat needs the parameters in `missing_context`.
    MissingContext,
    /// Denied: the relationship expired at `expires_at` (it is invisible to the answer).
    Expired,
    /// Error: the relationship's caveat failed to evaluate (`error` says why).
    CaveatError,
}

impl Explanation {
    /// The tree as indented text, one node per line (for `arbiter check --explain`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let answer = match self.result {
            ExplainedAnswer::HasPermission => "has permission",
            ExplainedAnswer::NoPermission => "no permission",
            ExplainedAnswer::ConditionalPermission => "conditional permission",
        };
        out.push_str(answer);
        if !self.missing_context.is_empty() {
            out.push_str(&format!(" (missing {})", self.missing_context.join(", ")));
        }
        out.push('\n');
        render_node(&self.tree, 1, &mut out);
        if self.truncated {
            out.push_str("  … (truncated)\n");
        }
        out
    }
}

fn render_node(node: &ExplainNode, level: usize, out: &mut String) {
    for _ in 0..level {
        out.push_str("  ");
    }
    let verdict = match node.result {
        Verdict::Granted => "granted",
        Verdict::Denied => "denied",
        Verdict::Undefined => "undefined",
        Verdict::Conditional => "conditional",
        Verdict::Error => "error",
    };
    let what = match node.kind {
        ExplainKind::Permission | ExplainKind::Relation => {
            let mut text = format!(
                "{}#{}",
                node.resource.as_deref().unwrap_or(""),
                node.relation.as_deref().unwrap_or("")
            );
            if let Some(expression) = &node.expression {
                text.push_str(" = ");
                text.push_str(expression);
            }
            text
        }
        ExplainKind::Relationship => {
            let mut text = format!(
                "relationship {}",
                node.relationship.as_deref().unwrap_or("")
            );
            if let Some(revision) = node.written_at {
                text.push_str(&format!(" (written at revision {revision})"));
            }
            text
        }
        ExplainKind::Nil => "nil".to_string(),
        ExplainKind::SelfRef => "self".to_string(),
        ExplainKind::Union => format!("union {}", node.expression.as_deref().unwrap_or("")),
        ExplainKind::Intersection => {
            format!("intersection {}", node.expression.as_deref().unwrap_or(""))
        }
        ExplainKind::Exclusion => {
            format!("exclusion {}", node.expression.as_deref().unwrap_or(""))
        }
        ExplainKind::Arrow => format!("arrow {}", node.expression.as_deref().unwrap_or("")),
    };
    out.push_str(&format!("{what}: {verdict}"));
    if let Some(reason) = node.reason {
        out.push_str(" — ");
        out.push_str(reason_text(reason));
        if reason == Reason::Expired
            && let Some(at) = &node.expires_at
        {
            out.push_str(&format!(" at {at}"));
        }
    }
    if !node.missing_context.is_empty() {
        out.push_str(&format!(" (missing {})", node.missing_context.join(", ")));
    }
    if let Some(error) = &node.error {
        out.push_str(&format!(" ({error})"));
    }
    out.push('\n');
    for child in &node.children {
        render_node(child, level + 1, out);
    }
}

/// The words a person reads for a reason.
pub fn reason_text(reason: Reason) -> &'static str {
    match reason {
        Reason::Direct => "names the subject",
        Reason::Wildcard => "names every subject of its type",
        Reason::IsSubject => "is the subject itself",
        Reason::NoRelationship => "no relationship grants it",
        Reason::NoRelatedObjects => "the relation names no object",
        Reason::Nil => "nil grants nothing",
        Reason::Excluded => "excluded",
        Reason::Cycle => "cycle: already being evaluated",
        Reason::CycleThroughExclusion => "cycle through an exclusion: undefined, denied",
        Reason::SeeAbove => "see above",
        Reason::IsResource => "the subject is the resource itself",
        Reason::NotResource => "the subject is not the resource itself",
        Reason::CaveatFalse => "its caveat is false",
        Reason::MissingContext => "its caveat needs context the request lacks",
        Reason::Expired => "expired",
        Reason::CaveatError => "its caveat failed to evaluate",
    }
}

impl Inner {
    /// A check with its explanation, both at one revision. The answer is the check walk's;
    /// the explanation's `result` agrees with it (tests hold both walks to that).
    pub fn check_explained(
        &self,
        request: &CheckRequest,
        consistency: Consistency,
        context: Option<&super::Context>,
        budget: &super::deadline::Budget,
    ) -> Result<(Decision, Explanation), EngineError> {
        let view = self.view(consistency, budget)?;
        // The context against the view's schema, before anything else the request names:
        // the check's order, so that an explained check fails with the check's error.
        view.validate_context(context)?;
        let goal = view.goal(&request.resource, &request.permission)?;
        let subject = view.subject(&request.subject, Some(&request.resource.object_id))?;
        let snapshot = view.snapshot();
        let names = Names {
            resource_id: request.resource.object_id.clone(),
            subject_id: request.subject.object.object_id.clone(),
        };
        if view.data.has_conditional() {
            // The three-valued check's answer, and its explanation, at one "now".
            let now = crate::model::Timestamp::now();
            let answer = match CondChecker::new(snapshot, subject, context, now).check(goal)? {
                Answer::Has => super::CheckAnswer::HAS,
                Answer::No => super::CheckAnswer::NO,
                Answer::Conditional(mut missing) => {
                    missing.sort();
                    missing.dedup();
                    super::CheckAnswer {
                        permissionship: super::Permissionship::ConditionalPermission,
                        missing_context: missing,
                    }
                }
            };
            let explanation = conditional::explain(
                snapshot,
                subject,
                goal,
                names,
                context,
                now,
                EXPLAIN_NODE_LIMIT,
            )?;
            return Ok((Decision::new(answer, view.revision), explanation));
        }
        let allowed = Checker::new(snapshot, subject).check(goal)?;
        let explanation = explain(snapshot, subject, goal, names, EXPLAIN_NODE_LIMIT)?;
        Ok((
            Decision::new(super::CheckAnswer::from_bool(allowed), view.revision),
            explanation,
        ))
    }
}

/// The request's ids, for the symbols the index never saw.
pub(crate) struct Names {
    pub resource_id: String,
    pub subject_id: String,
}

/// Explains `goal` for `subject`, keeping at most `limit` nodes.
pub(crate) fn explain(
    snap: Snapshot<'_>,
    subject: Subject,
    goal: Goal,
    names: Names,
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
    let mut explainer = Explainer {
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
    };
    let step = explainer.goal(goal, 0)?;
    let result = if step.outcome.value == Tri::True {
        ExplainedAnswer::HasPermission
    } else {
        ExplainedAnswer::NoPermission
    };
    let tree = match step.node {
        Some(tree) => tree,
        None => explainer.goal_node(goal),
    };
    Ok(Explanation {
        result,
        nodes: count(&tree),
        tree,
        truncated: explainer.truncated,
        missing_context: Vec::new(),
    })
}

/// An answer and the lowest stack position of an in-progress goal it assumed false (as
/// in the check walk).
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

/// An outcome with its node (absent once the node budget is spent).
struct Step {
    outcome: Outcome,
    node: Option<ExplainNode>,
}

struct Frame {
    goal: Goal,
    neg: u32,
}

struct Explainer<'a> {
    snap: Snapshot<'a>,
    subject: Subject,
    subject_wildcard: Option<Node>,
    names: Names,
    stack: Vec<Frame>,
    memo: FxHashMap<Goal, Tri>,
    neg: u32,
    nodes: usize,
    limit: usize,
    truncated: bool,
}

/// One node met by the breadth-first walk of a stored relation's subject sets.
struct Entry {
    node: Node,
    /// The entry whose relationship led here (the start has none).
    parent: Option<usize>,
    /// What was learned at this node itself: a direct hit, a permission's explanation, a
    /// memoized verdict; `None` for a stored relation expanded further.
    detail: Option<ExplainNode>,
    value: Tri,
}

impl<'a> Explainer<'a> {
    /// Counts a new node; `false` once the budget is spent (the node is then left out).
    fn open(&mut self) -> bool {
        if self.nodes >= self.limit {
            self.truncated = true;
            return false;
        }
        self.nodes += 1;
        true
    }

    fn id_name(&self, id: Sym) -> &str {
        match id {
            UNKNOWN_RESOURCE => &self.names.resource_id,
            UNKNOWN_SUBJECT => &self.names.subject_id,
            _ => self.snap.index.name(id),
        }
    }

    /// `type:id` or `type:id#rel` of an index node.
    fn node_text(&self, node: Node) -> String {
        let index = self.snap.index;
        let mut text = format!("{}:{}", index.name(node.ty), self.id_name(node.id));
        if node.rel != NO_REL {
            text.push('#');
            text.push_str(index.name(node.rel));
        }
        text
    }

    fn index_node(&self, goal: Goal) -> Node {
        Node {
            ty: self.snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: self.snap.plan.rel_sym[goal.rel.0 as usize],
        }
    }

    fn goal_node(&self, goal: Goal) -> ExplainNode {
        let schema = self.snap.schema;
        let relation = schema.relation_by_id(goal.rel);
        let (kind, expression) = match &relation.kind {
            RelationKind::Relation { .. } => (ExplainKind::Relation, None),
            RelationKind::Permission { expr } => {
                (ExplainKind::Permission, Some(expr_text(schema, expr)))
            }
        };
        ExplainNode {
            kind,
            result: Verdict::Denied,
            reason: None,
            resource: Some(format!(
                "{}:{}",
                schema.definition_by_id(goal.ty).name,
                self.id_name(goal.id)
            )),
            relation: Some(relation.name.clone()),
            expression,
            relationship: None,
            written_at: None,
            caveat: None,
            expires_at: None,
            missing_context: Vec::new(),
            error: None,
            children: Vec::new(),
        }
    }

    fn bare(kind: ExplainKind, expression: Option<String>) -> ExplainNode {
        ExplainNode {
            kind,
            result: Verdict::Denied,
            reason: None,
            resource: None,
            relation: None,
            expression,
            relationship: None,
            written_at: None,
            caveat: None,
            expires_at: None,
            missing_context: Vec::new(),
            error: None,
            children: Vec::new(),
        }
    }

    /// A relationship node `resource@subject`.
    fn relationship_node(
        &self,
        resource: Node,
        subject: String,
        written_at: Option<u64>,
    ) -> ExplainNode {
        let mut node = Self::bare(ExplainKind::Relationship, None);
        node.relationship = Some(format!("{}@{subject}", self.node_text(resource)));
        node.written_at = written_at.filter(|revision| *revision > 0);
        node
    }

    fn goal(&mut self, goal: Goal, depth: u32) -> Result<Step, EngineError> {
        let mut node = if self.open() {
            Some(self.goal_node(goal))
        } else {
            None
        };
        if let Some(value) = self.memo.get(&goal).copied() {
            finish(&mut node, value, Some(Reason::SeeAbove));
            return Ok(Step {
                outcome: Outcome { value, low: NO_LOW },
                node,
            });
        }
        if let Some(pos) = self.stack.iter().rposition(|frame| frame.goal == goal) {
            let (value, reason) = if self.neg > self.stack[pos].neg {
                (Tri::Undefined, Reason::CycleThroughExclusion)
            } else {
                (Tri::False, Reason::Cycle)
            };
            finish(&mut node, value, Some(reason));
            return Ok(Step {
                outcome: Outcome { value, low: pos },
                node,
            });
        }
        if depth > self.snap.depth_limit {
            return Err(EngineError::DepthExceeded(self.snap.depth_limit));
        }
        let index_node = self.index_node(goal);
        if self.subject == Subject::Set(index_node) {
            self.memo.insert(goal, Tri::True);
            finish(&mut node, Tri::True, Some(Reason::IsSubject));
            return Ok(Step {
                outcome: Outcome::TRUE,
                node,
            });
        }
        let position = self.stack.len();
        self.stack.push(Frame {
            goal,
            neg: self.neg,
        });
        let schema = self.snap.schema;
        let res = match &schema.relation_by_id(goal.rel).kind {
            RelationKind::Relation { .. } => self.relation(index_node, depth).map(|part| {
                if let Some(node) = &mut node {
                    node.children = part.children;
                    node.reason = part.reason;
                }
                part.outcome
            }),
            RelationKind::Permission { expr } => self.expr(goal, expr, depth).map(|step| {
                if let (Some(node), Some(child)) = (&mut node, step.node) {
                    adopt(node, child);
                }
                step.outcome
            }),
        };
        self.stack.truncate(position);
        let mut outcome = res?;
        if outcome.value == Tri::True || outcome.low >= position {
            self.memo.insert(goal, outcome.value);
            outcome.low = NO_LOW;
        }
        if let Some(node) = &mut node {
            node.result = verdict(outcome.value);
        }
        Ok(Step { outcome, node })
    }

    /// The relationship of `resource` (whose subjects are `forward`) that names the
    /// subject directly or by wildcard, as a node.
    fn direct(&self, resource: Node, forward: &Forward) -> Option<ExplainNode> {
        let rev = self.snap.rev;
        let star = self.snap.index.star();
        let (subject, written_at, reason) = match self.subject {
            Subject::Object(obj) if forward.has_object(obj, rev) => (
                Node {
                    ty: obj.ty,
                    id: obj.id,
                    rel: NO_REL,
                },
                forward.object_written_at(obj, rev),
                Reason::Direct,
            ),
            Subject::Object(_) => {
                let wildcard = self.subject_wildcard?;
                if !forward.has_wildcard(wildcard, rev) {
                    return None;
                }
                (
                    wildcard,
                    forward.userset_written_at(wildcard, rev),
                    Reason::Wildcard,
                )
            }
            Subject::Set(set) => {
                if !forward.has_userset(set, rev) {
                    return None;
                }
                (set, forward.userset_written_at(set, rev), Reason::Direct)
            }
            Subject::Wildcard(ty) => {
                let wildcard = Node {
                    ty,
                    id: star,
                    rel: NO_REL,
                };
                if !forward.has_wildcard(wildcard, rev) {
                    return None;
                }
                (
                    wildcard,
                    forward.userset_written_at(wildcard, rev),
                    Reason::Wildcard,
                )
            }
        };
        let mut node = self.relationship_node(resource, self.node_text(subject), written_at);
        node.result = Verdict::Granted;
        node.reason = Some(reason);
        Some(node)
    }

    /// A stored relation: direct hit, else breadth-first through its subject sets, as the
    /// check walk does.
    fn relation(&mut self, start: Node, depth: u32) -> Result<Part, EngineError> {
        let index = self.snap.index;
        let Some(forward) = index.forward(start) else {
            return Ok(Part::denied(Reason::NoRelationship));
        };
        if let Some(hit) = self.direct(start, forward) {
            let mut children = Vec::new();
            if self.open() {
                children.push(hit);
            }
            return Ok(Part {
                outcome: Outcome::TRUE,
                children,
                reason: None,
            });
        }
        if !forward.has_any_userset() {
            return Ok(Part::denied(Reason::NoRelationship));
        }
        self.walk(start, forward, depth)
    }

    /// The breadth-first part of [`Explainer::relation`], recording who led where.
    fn walk(&mut self, start: Node, forward: &Forward, depth: u32) -> Result<Part, EngineError> {
        let index = self.snap.index;
        let plan = self.snap.plan;
        let rev = self.snap.rev;
        let star = index.star();
        let mut frontier: Vec<(Node, usize)> = forward
            .usersets(rev)
            .filter(|node| node.id != star)
            .map(|node| (node, 0))
            .collect();
        if frontier.is_empty() {
            return Ok(Part::denied(Reason::NoRelationship));
        }
        let mut entries = vec![Entry {
            node: start,
            parent: None,
            detail: None,
            value: Tri::False,
        }];
        let mut visited: FxHashSet<Node> = FxHashSet::default();
        visited.insert(start);
        let mut explored = Vec::new();
        let mut next: Vec<(Node, usize)> = Vec::new();
        let mut acc = Outcome::FALSE;
        let mut level = depth + 1;
        let mut found = None;
        'walk: while !frontier.is_empty() {
            if level > self.snap.depth_limit {
                return Err(EngineError::DepthExceeded(self.snap.depth_limit));
            }
            for (node, parent) in frontier.drain(..) {
                if !visited.insert(node) {
                    continue;
                }
                let Some(ty) = plan.type_of(node.ty) else {
                    continue;
                };
                let Some(rel) = plan.rel_of(ty, node.rel) else {
                    continue;
                };
                let entry_idx = entries.len();
                entries.push(Entry {
                    node,
                    parent: Some(parent),
                    detail: None,
                    value: Tri::False,
                });
                let goal = Goal {
                    ty,
                    id: node.id,
                    rel,
                };
                if self.subject == Subject::Set(node) {
                    let mut detail = self.goal_node(goal);
                    finish_node(&mut detail, Tri::True, Some(Reason::IsSubject));
                    entries[entry_idx].detail = Some(detail);
                    entries[entry_idx].value = Tri::True;
                    found = Some(entry_idx);
                    break 'walk;
                }
                if self.snap.schema.relation_by_id(rel).is_permission() {
                    let step = self.goal(goal, level)?;
                    entries[entry_idx].detail = step.node;
                    entries[entry_idx].value = step.outcome.value;
                    if step.outcome.value == Tri::True {
                        found = Some(entry_idx);
                        break 'walk;
                    }
                    acc = or(acc, step.outcome);
                    continue;
                }
                if let Some(value) = self.memo.get(&goal).copied() {
                    let mut detail = self.goal_node(goal);
                    finish_node(&mut detail, value, Some(Reason::SeeAbove));
                    entries[entry_idx].detail = Some(detail);
                    entries[entry_idx].value = value;
                    match value {
                        Tri::True => {
                            found = Some(entry_idx);
                            break 'walk;
                        }
                        Tri::False => continue,
                        Tri::Undefined => {
                            acc = or(
                                acc,
                                Outcome {
                                    value: Tri::Undefined,
                                    low: NO_LOW,
                                },
                            );
                            continue;
                        }
                    }
                }
                if let Some(forward) = index.forward(node) {
                    if let Some(hit) = self.direct(node, forward) {
                        let mut detail = self.goal_node(goal);
                        detail.result = Verdict::Granted;
                        detail.children.push(hit);
                        entries[entry_idx].detail = Some(detail);
                        entries[entry_idx].value = Tri::True;
                        found = Some(entry_idx);
                        break 'walk;
                    }
                    next.extend(
                        forward
                            .usersets(rev)
                            .filter(|it| it.id != star)
                            .map(|it| (it, entry_idx)),
                    );
                }
                explored.push(goal);
            }
            std::mem::swap(&mut frontier, &mut next);
            level += 1;
        }
        if let Some(found) = found {
            return Ok(Part {
                outcome: Outcome::TRUE,
                children: self.chain(&mut entries, found),
                reason: None,
            });
        }
        if acc.value == Tri::False && acc.low == NO_LOW {
            for goal in explored {
                self.memo.insert(goal, Tri::False);
            }
        }
        let children = self.tree(&mut entries);
        let reason =
            (acc.value == Tri::False && children.is_empty()).then_some(Reason::NoRelationship);
        Ok(Part {
            outcome: acc,
            children,
            reason,
        })
    }

    /// The relationship connecting entry `child` to its parent, holding `inner`.
    fn connector(&mut self, entries: &[Entry], child: usize, inner: ExplainNode) -> ExplainNode {
        let rev = self.snap.rev;
        let subject = entries[child].node;
        let parent = entries[child]
            .parent
            .map_or(subject, |idx| entries[idx].node);
        let written_at = self
            .snap
            .index
            .forward(parent)
            .and_then(|forward| forward.userset_written_at(subject, rev));
        let mut node = self.relationship_node(parent, self.node_text(subject), written_at);
        node.result = inner.result;
        node.children.push(inner);
        node
    }

    /// The node of an entry of a stored relation (not a permission or memo hit).
    fn relation_entry_node(&self, entry: &Entry) -> ExplainNode {
        let mut node = Self::bare(ExplainKind::Relation, None);
        node.resource = Some(format!(
            "{}:{}",
            self.snap.index.name(entry.node.ty),
            self.id_name(entry.node.id)
        ));
        node.relation = Some(self.snap.index.name(entry.node.rel).to_string());
        node
    }

    /// The witness: the chain of relationships from the start to the granting entry.
    fn chain(&mut self, entries: &mut [Entry], found: usize) -> Vec<ExplainNode> {
        let Some(mut inner) = entries[found].detail.take() else {
            return Vec::new();
        };
        let mut at = found;
        while let Some(parent) = entries[at].parent {
            if !self.open() {
                return Vec::new();
            }
            let connector = self.connector(entries, at, inner);
            if parent == 0 {
                return vec![connector];
            }
            if !self.open() {
                return Vec::new();
            }
            let mut node = self.relation_entry_node(&entries[parent]);
            node.result = Verdict::Granted;
            node.children.push(connector);
            inner = node;
            at = parent;
        }
        Vec::new()
    }

    /// Every branch of a walk that granted nothing: each subject set tried, with what it
    /// led to. Returns the start's children.
    fn tree(&mut self, entries: &mut [Entry]) -> Vec<ExplainNode> {
        // Children always come after their parent, so a reverse pass sees them first.
        let mut built: Vec<Option<ExplainNode>> = (0..entries.len()).map(|_| None).collect();
        let mut kids: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
        for (idx, entry) in entries.iter().enumerate().skip(1) {
            if let Some(parent) = entry.parent {
                kids[parent].push(idx);
            }
        }
        // Values flow up: a stored relation is undefined if anything below it is.
        for idx in (1..entries.len()).rev() {
            let value = entries[idx].value;
            if value == Tri::Undefined
                && let Some(parent) = entries[idx].parent
            {
                entries[parent].value = Tri::Undefined;
            }
        }
        // Nodes are built top-down within the budget, then assembled bottom-up.
        let mut keep = vec![false; entries.len()];
        for idx in 1..entries.len() {
            let parent_kept = entries[idx]
                .parent
                .is_none_or(|parent| parent == 0 || keep[parent]);
            // The relationship and the node it leads to.
            keep[idx] = parent_kept && self.open() && self.open();
        }
        for idx in (1..entries.len()).rev() {
            if !keep[idx] {
                continue;
            }
            let inner = match entries[idx].detail.take() {
                Some(detail) => detail,
                None => {
                    let mut node = self.relation_entry_node(&entries[idx]);
                    node.result = verdict(entries[idx].value);
                    node.children = kids[idx]
                        .iter()
                        .filter_map(|kid| built[*kid].take())
                        .collect();
                    if node.children.is_empty() {
                        node.reason = Some(Reason::NoRelationship);
                    }
                    node
                }
            };
            built[idx] = Some(self.connector(entries, idx, inner));
        }
        kids[0]
            .iter()
            .filter_map(|kid| built[*kid].take())
            .collect()
    }

    fn expr(&mut self, goal: Goal, expr: &Expr, depth: u32) -> Result<Step, EngineError> {
        let schema = self.snap.schema;
        match expr {
            Expr::Nil => {
                let node = self.open().then(|| {
                    let mut node = Self::bare(ExplainKind::Nil, Some("nil".to_string()));
                    node.reason = Some(Reason::Nil);
                    node
                });
                Ok(Step {
                    outcome: Outcome::FALSE,
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
            Expr::Arrow(arrow) => self.arrow(goal, arrow, depth),
            Expr::ArrowAll(arrow) => self.arrow_all(goal, arrow, depth),
            Expr::SelfRef => Ok(self.self_ref(goal)),
            Expr::Union(children) => {
                let mut node = self
                    .open()
                    .then(|| Self::bare(ExplainKind::Union, Some(expr_text(schema, expr))));
                let mut acc = Outcome::FALSE;
                let mut tried = Vec::new();
                for child in children {
                    let step = self.expr(goal, child, depth)?;
                    if step.outcome.value == Tri::True {
                        set(&mut node, Tri::True, step.node.into_iter().collect());
                        return Ok(Step {
                            outcome: Outcome::TRUE,
                            node,
                        });
                    }
                    acc = or(acc, step.outcome);
                    tried.extend(step.node);
                }
                set(&mut node, acc.value, tried);
                Ok(Step { outcome: acc, node })
            }
            Expr::Intersection(children) => {
                let mut node = self
                    .open()
                    .then(|| Self::bare(ExplainKind::Intersection, Some(expr_text(schema, expr))));
                let mut acc = Outcome::TRUE;
                let mut tried = Vec::new();
                for child in children {
                    let step = self.expr(goal, child, depth)?;
                    tried.extend(step.node);
                    if step.outcome.value == Tri::False {
                        set(&mut node, Tri::False, tried);
                        return Ok(Step {
                            outcome: step.outcome,
                            node,
                        });
                    }
                    acc = and(acc, step.outcome);
                }
                set(&mut node, acc.value, tried);
                Ok(Step { outcome: acc, node })
            }
            Expr::Exclusion(base, subtracted) => {
                let mut node = self
                    .open()
                    .then(|| Self::bare(ExplainKind::Exclusion, Some(expr_text(schema, expr))));
                let base = self.expr(goal, base, depth)?;
                if base.outcome.value == Tri::False {
                    set(&mut node, Tri::False, base.node.into_iter().collect());
                    return Ok(Step {
                        outcome: base.outcome,
                        node,
                    });
                }
                self.neg += 1;
                let subtracted = self.expr(goal, subtracted, depth);
                self.neg -= 1;
                let subtracted = subtracted?;
                let outcome = and(base.outcome, not(subtracted.outcome));
                let excluded = subtracted.outcome.value == Tri::True;
                set(
                    &mut node,
                    outcome.value,
                    base.node.into_iter().chain(subtracted.node).collect(),
                );
                if excluded && let Some(node) = &mut node {
                    node.reason = Some(Reason::Excluded);
                }
                Ok(Step { outcome, node })
            }
        }
    }

    /// `tupleset.computed`: any object the tupleset's relationships name that holds the
    /// target, as the check walk does.
    fn arrow(
        &mut self,
        goal: Goal,
        arrow: &crate::schema::Arrow,
        depth: u32,
    ) -> Result<Step, EngineError> {
        let snap = self.snap;
        let schema = snap.schema;
        let tupleset = Node {
            ty: snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: snap.plan.rel_sym[arrow.tupleset.0 as usize],
        };
        let index = snap.index;
        let rev = snap.rev;
        let star = index.star();
        let related: Vec<Node> = index
            .objects(tupleset, rev)
            .map(|obj| Node {
                ty: obj.ty,
                id: obj.id,
                rel: NO_REL,
            })
            .chain(index.usersets(tupleset, rev).filter(|node| node.id != star))
            .collect();
        let text = format!(
            "{}.{}",
            schema.relation_by_id(arrow.tupleset).name,
            arrow.computed_name
        );
        let mut node = self
            .open()
            .then(|| Self::bare(ExplainKind::Arrow, Some(text)));
        let mut acc = Outcome::FALSE;
        let mut tried = Vec::new();
        let mut n_related = 0;
        for subject in related {
            let Some(ty) = snap.plan.type_of(subject.ty) else {
                continue;
            };
            let Some((_, target)) = arrow.targets.iter().find(|(it, _)| *it == ty) else {
                continue;
            };
            n_related += 1;
            let kept = self.open();
            let step = self.goal(
                Goal {
                    ty,
                    id: subject.id,
                    rel: *target,
                },
                depth + 1,
            )?;
            let connector = match (kept, step.node) {
                (true, Some(inner)) => {
                    let written_at = self.written_at(tupleset, subject);
                    let mut connector =
                        self.relationship_node(tupleset, self.node_text(subject), written_at);
                    connector.result = inner.result;
                    connector.children.push(inner);
                    Some(connector)
                }
                _ => None,
            };
            if step.outcome.value == Tri::True {
                set(&mut node, Tri::True, connector.into_iter().collect());
                return Ok(Step {
                    outcome: Outcome::TRUE,
                    node,
                });
            }
            acc = or(acc, step.outcome);
            tried.extend(connector);
        }
        set(&mut node, acc.value, tried);
        if n_related == 0
            && let Some(node) = &mut node
        {
            node.reason = Some(Reason::NoRelatedObjects);
        }
        Ok(Step { outcome: acc, node })
    }

    /// The revision that wrote `resource@subject`, a plain object or a subject set.
    fn written_at(&self, resource: Node, subject: Node) -> Option<u64> {
        let forward = self.snap.index.forward(resource)?;
        if subject.rel == NO_REL {
            forward.object_written_at(
                ObjKey {
                    ty: subject.ty,
                    id: subject.id,
                },
                self.snap.rev,
            )
        } else {
            forward.userset_written_at(subject, self.snap.rev)
        }
    }
}

/// The outcome of a stored relation with the relationships that explain it.
struct Part {
    outcome: Outcome,
    children: Vec<ExplainNode>,
    reason: Option<Reason>,
}

impl Part {
    fn denied(reason: Reason) -> Self {
        Self {
            outcome: Outcome::FALSE,
            children: Vec::new(),
            reason: Some(reason),
        }
    }
}

/// Puts a permission's expression node under it: the branches of a top-level operator
/// (whose text the permission node already shows) become the permission's own children,
/// with the operator's reason; any other node becomes its one child.
fn adopt(permission: &mut ExplainNode, expression: ExplainNode) {
    let operator = matches!(
        expression.kind,
        ExplainKind::Union | ExplainKind::Intersection | ExplainKind::Exclusion
    );
    if operator && expression.expression == permission.expression {
        permission.children = expression.children;
        permission.reason = expression.reason;
    } else {
        permission.children.push(expression);
    }
}

fn count(node: &ExplainNode) -> usize {
    1 + node.children.iter().map(count).sum::<usize>()
}

fn verdict(value: Tri) -> Verdict {
    match value {
        Tri::True => Verdict::Granted,
        Tri::False => Verdict::Denied,
        Tri::Undefined => Verdict::Undefined,
    }
}

fn finish(node: &mut Option<ExplainNode>, value: Tri, reason: Option<Reason>) {
    if let Some(node) = node {
        finish_node(node, value, reason);
    }
}

fn finish_node(node: &mut ExplainNode, value: Tri, reason: Option<Reason>) {
    node.result = verdict(value);
    node.reason = reason;
}

fn set(node: &mut Option<ExplainNode>, value: Tri, children: Vec<ExplainNode>) {
    if let Some(node) = node {
        node.result = verdict(value);
        node.children = children;
    }
}

/// A compiled expression as schema text, parenthesized wherever an operand is itself an
/// operation (so no reading depends on precedence).
fn expr_text(schema: &Schema, expr: &Expr) -> String {
    let operand = |expr: &Expr| match expr {
        Expr::Union(_) | Expr::Intersection(_) | Expr::Exclusion(..) => {
            format!("({})", expr_text(schema, expr))
        }
        _ => expr_text(schema, expr),
    };
    match expr {
        Expr::Nil => "nil".to_string(),
        Expr::Ref(rel) => schema.relation_by_id(*rel).name.clone(),
        Expr::Arrow(arrow) => format!(
            "{}.{}",
            schema.relation_by_id(arrow.tupleset).name,
            arrow.computed_name
        ),
        Expr::ArrowAll(arrow) => format!(
            "{}.all({})",
            schema.relation_by_id(arrow.tupleset).name,
            arrow.computed_name
        ),
        Expr::SelfRef => "self".to_string(),
        Expr::Union(children) => children.iter().map(operand).collect::<Vec<_>>().join(" | "),
        Expr::Intersection(children) => {
            children.iter().map(operand).collect::<Vec<_>>().join(" & ")
        }
        Expr::Exclusion(base, subtracted) => {
            format!("{} - {}", operand(base), operand(subtracted))
        }
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
    use crate::engine::plan::Plan;
    use crate::model::Revision;
    use crate::schema::parse_and_compile;
    use crate::store::{Change, ChangeOp, ChangeSet};

    use crate::model::test_rng::Rng;

    const SCHEMA: &str = "definition user {}
        definition group {
            relation member: user | user:* | group#member
            relation banned: user | group#member
            permission allowed = member - banned
        }
        definition doc {
            relation viewer: user | user:* | group#member | group#allowed
            relation blocked: user | group#member | doc#view
            relation team: group
            relation parent: doc
            permission view = (viewer + team->allowed + parent->view) - blocked
            permission both = viewer & team->member
            permission none = nil
        }";

    fn random_tuples(rng: &mut Rng) -> Vec<String> {
        let (n_groups, n_docs, n_users) = (1 + rng.below(6), 1 + rng.below(5), 1 + rng.below(4));
        let mut tuples = Vec::new();
        for _ in 0..rng.below(25) {
            let group = format!("group:g{}", rng.below(n_groups));
            let doc = format!("doc:d{}", rng.below(n_docs));
            let user = format!("user:u{}", rng.below(n_users));
            let other = format!("group:g{}", rng.below(n_groups));
            let tuple = match rng.below(12) {
                0 => format!("{group}#member@{user}"),
                1 => format!("{group}#member@{other}#member"),
                2 => format!("{group}#member@user:*"),
                3 => format!("{group}#banned@{user}"),
                4 => format!("{doc}#viewer@{user}"),
                5 => format!("{doc}#viewer@{group}#member"),
                6 => format!("{doc}#viewer@{group}#allowed"),
                7 => format!("{doc}#blocked@doc:d{}#view", rng.below(n_docs)),
                8 => format!("{doc}#team@{group}"),
                9 => format!("{doc}#parent@doc:d{}", rng.below(n_docs)),
                10 => format!("{doc}#viewer@user:*"),
                _ => format!("{doc}#blocked@{user}"),
            };
            if !tuples.contains(&tuple) {
                tuples.push(tuple);
            }
        }
        tuples
    }

    #[test]
    fn the_explaining_walk_answers_exactly_as_the_check_walk() {
        let schema = parse_and_compile(SCHEMA).unwrap();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut n_compared, mut n_granted, mut n_errors) = (0, 0, 0);
        for case in 0..400 {
            let mut index = IndexData::default();
            let plan = Plan::build(&schema, &mut index);
            let tuples = random_tuples(&mut rng);
            let changes = |op, tuples: &[String]| ChangeSet {
                revision: Revision(0),
                changes: tuples
                    .iter()
                    .map(|text| Change {
                        op,
                        relationship: text.parse().unwrap(),
                    })
                    .collect(),
            };
            index.apply(&ChangeSet {
                revision: Revision(1),
                ..changes(ChangeOp::Touch, &tuples)
            });
            let deleted: Vec<String> = tuples
                .iter()
                .filter(|_| rng.below(5) == 0)
                .cloned()
                .collect();
            index.apply(&ChangeSet {
                revision: Revision(2),
                ..changes(ChangeOp::Delete, &deleted)
            });
            let depth_limit = 2 + rng.below(10) as u32;
            let mut subjects = Vec::new();
            for name in ["u0", "u1", "u2", "nobody"] {
                subjects.push((
                    Subject::Object(ObjKey {
                        ty: index.sym("user").unwrap(),
                        id: index.sym(name).unwrap_or(UNKNOWN_SUBJECT),
                    }),
                    name.to_string(),
                ));
            }
            subjects.push((Subject::Wildcard(index.sym("user").unwrap()), "*".into()));
            for g in 0..3 {
                if let Some(id) = index.sym(&format!("g{g}")) {
                    let rel = index.sym("member").unwrap();
                    let ty = index.sym("group").unwrap();
                    subjects.push((Subject::Set(Node { ty, id, rel }), format!("g{g}")));
                }
            }
            for rev in [1, 2] {
                let snap = Snapshot {
                    schema: &schema,
                    plan: &plan,
                    index: &index,
                    rev,
                    depth_limit,
                    budget: &crate::engine::deadline::UNBOUNDED,
                };
                let mut goals = Vec::new();
                for (ty, ids, rels) in [
                    (
                        "doc",
                        "d",
                        &["view", "both", "none", "viewer", "blocked"][..],
                    ),
                    ("group", "g", &["allowed", "member"][..]),
                ] {
                    for n in 0..5 {
                        let Some(id) = index.sym(&format!("{ids}{n}")) else {
                            continue;
                        };
                        for rel in rels {
                            let ty_id = plan.type_of(index.sym(ty).unwrap()).unwrap();
                            let rel = schema.relation(ty, rel).unwrap().id;
                            goals.push(Goal { ty: ty_id, id, rel });
                        }
                    }
                }
                for (subject, name) in &subjects {
                    for goal in &goals {
                        let checked = Checker::new(snap, *subject)
                            .check(*goal)
                            .map_err(|err| err.to_string());
                        let names = Names {
                            resource_id: String::new(),
                            subject_id: name.clone(),
                        };
                        let explained = explain(snap, *subject, *goal, names, 50)
                            .map(|it| it.result == ExplainedAnswer::HasPermission)
                            .map_err(|err| err.to_string());
                        assert_eq!(
                            explained, checked,
                            "case {case} rev {rev} subject {name} {goal:?} tuples {tuples:?}"
                        );
                        n_compared += 1;
                        n_granted += usize::from(checked == Ok(true));
                        n_errors += usize::from(checked.is_err());
                    }
                }
            }
        }
        assert!(n_compared > 10_000, "{n_compared}");
        assert!(n_granted > 1_000, "{n_granted}");
        eprintln!("compared {n_compared}, granted {n_granted}, depth errors {n_errors}");
    }
}
