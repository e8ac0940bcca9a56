//! Expand of `tupleset.all(computed)` and of `self`.
//!
//! `.all()` expands, as SpiceDB's expand does, to an intersection with one child per
//! object the tupleset names (the same children a plain arrow has): the subjects every
//! object's `computed` reaches. With no object the intersection has no child and reaches
//! nobody; an object whose type has no `computed` holds nothing, so it is a `nil` child.
//! `self` expands to a leaf naming the resource itself, as a plain object. Caveated and
//! expiring tupleset relationships (not expired) give children too; the intersection
//! node has no place to name their conditions (a known gap; plain arrows list them).

use crate::schema::Arrow;

use super::super::check::Goal;
use super::super::index::Node;
use super::super::{EngineError, ExpandNode, ExpandTree};
use super::Expander;

impl Expander<'_> {
    /// The leaf of `self` on `type_name:id`.
    pub(super) fn self_leaf(
        &mut self,
        type_name: &str,
        id: &str,
    ) -> Result<ExpandNode, EngineError> {
        self.spend(1)?;
        Ok(ExpandNode::Leaf {
            subjects: vec![format!("{type_name}:{id}")],
        })
    }

    /// The intersection of `arrow` as `.all()` on the resource of `goal`.
    pub(super) fn arrow_all(
        &mut self,
        goal: Goal,
        arrow: &Arrow,
        depth: u32,
    ) -> Result<ExpandNode, EngineError> {
        let snap = self.snap;
        let index = snap.index;
        let tupleset = Node {
            ty: snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: snap.plan.rel_sym[arrow.tupleset.0 as usize],
        };
        let star = index.star();
        let mut objects: Vec<(u32, u32)> = index
            .arrow_objects(tupleset, snap.rev)
            .map(|obj| (obj.ty, obj.id))
            .chain(
                self.visible_members(tupleset)
                    .filter(|it| it.subject.id != star)
                    .map(|it| (it.subject.ty, it.subject.id)),
            )
            .collect();
        objects.sort_unstable_by(|a, b| {
            (index.name(a.0), index.name(a.1)).cmp(&(index.name(b.0), index.name(b.1)))
        });
        objects.dedup();
        let mut children = Vec::new();
        for (ty_sym, object_id) in objects {
            let type_name = index.name(ty_sym).to_string();
            let object_name = index.name(object_id).to_string();
            let target = snap
                .plan
                .type_of(ty_sym)
                .and_then(|ty| arrow.targets.iter().find(|(it, _)| *it == ty).copied());
            let Some((ty, rel)) = target else {
                self.spend(1)?;
                children.push(ExpandTree {
                    resource: format!("{type_name}:{object_name}"),
                    relation: arrow.computed_name.clone(),
                    node: ExpandNode::Nil,
                });
                continue;
            };
            let child = Goal {
                ty,
                id: object_id,
                rel,
            };
            let recursive = self.recursive;
            children.push(self.userset(&type_name, &object_name, child, depth + 1, recursive)?);
        }
        Ok(ExpandNode::Intersection { children })
    }
}
