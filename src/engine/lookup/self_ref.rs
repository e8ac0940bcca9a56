//! `self` in lookup resources: an object subject holds, on itself, every permission of its
//! type that uses `self` (the plan's self edges). Those facts seed the walk next to the
//! tuples naming the subject; one under an intersection or exclusion is a candidate that a
//! check confirms, as for any other edge. Subject sets and wildcards never hold `self`.

use super::super::EngineError;
use super::super::check::{Goal, Subject};
use super::Step;

impl Step<'_, '_> {
    /// Seeds the facts `self` gives the subject on itself, at depth 0.
    pub(super) fn seed_self(&mut self) -> Result<(), EngineError> {
        let Subject::Object(obj) = self.walk.subject else {
            return Ok(());
        };
        let plan = self.snap.plan;
        let Some(ty) = plan.type_of(obj.ty) else {
            return Ok(());
        };
        for edge in &plan.self_edges[ty.0 as usize] {
            let fact = Goal {
                ty,
                id: obj.id,
                rel: edge.permission,
            };
            if edge.confirm {
                self.candidate(fact, 0)?;
            } else {
                self.add(fact, 0);
            }
        }
        Ok(())
    }
}
