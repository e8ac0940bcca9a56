//! `self` in the check walk (after `use self`): the resource itself is a subject of the
//! permission. As in SpiceDB it matches only the plain object (`user:tom` on `user:tom`):
//! never a subject set (`user:tom#friend`), and never the wildcard subject (`user:*` asks
//! whether every user holds it, and `self` grants one).

use super::super::index::ObjKey;
use super::{Checker, Goal, Outcome, Subject};

impl Checker<'_> {
    /// Whether the subject is the resource of `goal` itself.
    pub(super) fn self_ref(&self, goal: Goal) -> Outcome {
        let resource = ObjKey {
            ty: self.snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
        };
        if self.subject == Subject::Object(resource) {
            Outcome::TRUE
        } else {
            Outcome::FALSE
        }
    }
}
