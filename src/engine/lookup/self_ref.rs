//! `self` in lookup resources: an object subject holds, on itself, every permission of its
//! type that uses `self` (the plan's self edges). Those facts seed the walk next to the
//! tuples naming the subject; one under an intersection or exclusion is a candidate that a
//! check confirms, as for any other edge. Subject sets and wildcards never hold `self`.

use super::super::check::{Goal, Subject};
use super::resources::Step;

impl Step<'_, '_> {
    /// Lists the facts `self` gives the subject on itself among the seeds.
    pub(super) fn seed_self(&mut self) {
        let Subject::Object(obj) = self.walk.subject else {
            return;
        };
        let plan = self.snap.plan;
        let Some(ty) = plan.type_of(obj.ty) else {
            return;
        };
        for edge in &plan.self_edges[ty.0 as usize] {
            let fact = Goal {
                ty,
                id: obj.id,
                rel: edge.permission,
            };
            self.push(fact, edge.confirm);
        }
    }
}
