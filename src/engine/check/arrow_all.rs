//! `tupleset.all(computed)` in the check walk (SpiceDB's intersection arrow): every object
//! the resource's `tupleset` tuples name (a subject set counts by its object, as for the
//! plain arrow) must hold `computed`, and there must be at least one. Three-valued: the
//! AND of the objects' answers, so a cycle (false) denies and a cycle through an exclusion
//! (undefined) stays undefined unless another object is false.
//!
//! An object whose type has no `computed` (or that the schema does not know) holds
//! nothing, so it makes the whole arrow false, as it does in SpiceDB.

use crate::schema::Arrow;

use super::super::EngineError;
use super::super::index::{Node, ObjKey};
use super::{Checker, Goal, Outcome, Tri, and};

impl Checker<'_> {
    /// Answers `arrow` as `.all()` on the resource of `goal`, stopping at the first object
    /// that does not hold it.
    pub(super) fn arrow_all(
        &mut self,
        goal: Goal,
        arrow: &Arrow,
        depth: u32,
    ) -> Result<Outcome, EngineError> {
        let snap = self.snap;
        let tupleset = Node {
            ty: snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: snap.plan.rel_sym[arrow.tupleset.0 as usize],
        };
        let index = snap.index;
        let mut acc = Outcome::TRUE;
        let mut any = false;
        for ObjKey { ty: ty_sym, id } in index.arrow_objects(tupleset, snap.rev) {
            let target = snap
                .plan
                .type_of(ty_sym)
                .and_then(|ty| arrow.targets.iter().find(|(it, _)| *it == ty).copied());
            let Some((ty, rel)) = target else {
                return Ok(Outcome::FALSE);
            };
            let outcome = self.goal(Goal { ty, id, rel }, depth + 1)?;
            if outcome.value == Tri::False {
                return Ok(outcome);
            }
            acc = and(acc, outcome);
            any = true;
        }
        Ok(if any { acc } else { Outcome::FALSE })
    }
}
