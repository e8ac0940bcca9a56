//! The explaining walk's `tupleset.all(computed)` and `self`, mirroring the check walk's
//! (`check/arrow_all.rs`, `check/self_ref.rs`): `.all()` tries the related objects in the
//! check's order and stops at the first that does not hold the target (every one tried is
//! a child); `self` is a leaf saying whether the subject is the resource itself.

use crate::schema::Arrow;

use super::super::EngineError;
use super::super::check::{Goal, Subject, Tri};
use super::super::index::{NO_REL, Node, ObjKey};
use super::{ExplainKind, Explainer, Outcome, Reason, Step, and, finish, set};

impl Explainer<'_> {
    /// `self` on the resource of `goal`.
    pub(super) fn self_ref(&mut self, goal: Goal) -> Step {
        let resource = ObjKey {
            ty: self.snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
        };
        let granted = self.subject == Subject::Object(resource);
        let (outcome, reason) = if granted {
            (Outcome::TRUE, Reason::IsResource)
        } else {
            (Outcome::FALSE, Reason::NotResource)
        };
        let mut node = self
            .open()
            .then(|| Self::bare(ExplainKind::SelfRef, Some("self".to_string())));
        finish(&mut node, outcome.value, Some(reason));
        Step { outcome, node }
    }

    /// `tupleset.all(computed)`: every object the tupleset names must hold the target.
    pub(super) fn arrow_all(
        &mut self,
        goal: Goal,
        arrow: &Arrow,
        depth: u32,
    ) -> Result<Step, EngineError> {
        let snap = self.snap;
        let tupleset = Node {
            ty: snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: snap.plan.rel_sym[arrow.tupleset.0 as usize],
        };
        let index = snap.index;
        let star = index.star();
        let related: Vec<Node> = index
            .objects(tupleset, snap.rev)
            .map(|obj| Node {
                ty: obj.ty,
                id: obj.id,
                rel: NO_REL,
            })
            .chain(
                index
                    .usersets(tupleset, snap.rev)
                    .filter(|it| it.id != star),
            )
            .collect();
        let text = format!(
            "{}.all({})",
            snap.schema.relation_by_id(arrow.tupleset).name,
            arrow.computed_name
        );
        let mut node = self
            .open()
            .then(|| Self::bare(ExplainKind::Arrow, Some(text)));
        if related.is_empty() {
            finish(&mut node, Tri::False, Some(Reason::NoRelatedObjects));
            return Ok(Step {
                outcome: Outcome::FALSE,
                node,
            });
        }
        let mut acc = Outcome::TRUE;
        let mut tried = Vec::new();
        for subject in related {
            let kept = self.open();
            let target = snap
                .plan
                .type_of(subject.ty)
                .and_then(|ty| arrow.targets.iter().find(|(it, _)| *it == ty).copied());
            let (outcome, inner) = match target {
                Some((ty, rel)) => {
                    let step = self.goal(
                        Goal {
                            ty,
                            id: subject.id,
                            rel,
                        },
                        depth + 1,
                    )?;
                    (step.outcome, step.node)
                }
                // A type without the target holds nothing.
                None => (Outcome::FALSE, None),
            };
            if kept {
                let written_at = self.written_at(tupleset, subject);
                let mut connector =
                    self.relationship_node(tupleset, self.node_text(subject), written_at);
                connector.result = super::verdict(outcome.value);
                connector.children.extend(inner);
                if connector.children.is_empty() {
                    connector.reason = Some(Reason::NoRelationship);
                }
                tried.push(connector);
            }
            if outcome.value == Tri::False {
                set(&mut node, Tri::False, tried);
                return Ok(Step { outcome, node });
            }
            acc = and(acc, outcome);
        }
        set(&mut node, acc.value, tried);
        Ok(Step { outcome: acc, node })
    }
}
