//! Expand: the userset tree of `resource#relation` at one revision.
//!
//! A permission becomes its expression: union, intersection and exclusion nodes, arrows
//! with one child per object the tupleset names, and references to relations or
//! permissions of the same object expanded in place. A relation becomes a leaf listing its
//! stored subjects (objects, subject sets, wildcards). One level stops at other objects:
//! subject sets and arrow targets appear as [`ExpandNode::Userset`] references. Recursive
//! expansion follows them, leaving a userset already open higher up as a reference (so
//! cycles end) and answering [`EngineError::DepthExceeded`] past the depth limit.
//!
//! Caveats and expiration (DESIGN §3): expand evaluates no caveat (it has no request
//! context); it shows them. A caveated or expiring relationship live at the revision and
//! not expired at the request's one "now" is a leaf subject in its text form with
//! SpiceDB's suffixes (`user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}]`,
//! `user:tom[expiration:2026-12-01T00:00:00Z]`), so a subject set reached through one
//! (`group:eng#member[has_tier]`) says so where it is listed, and a recursive expand follows
//! it like any subject set. An arrow lists, in [`ExpandNode::Arrow`]'s `conditions`, the
//! tupleset relationships it walked that carry a caveat or an expiration (whole, in text
//! form): the children they lead to hold only under that condition. An expired
//! relationship never appears.
//!
//! Bounds: a recursive expansion expands each userset once; meeting it again (a shared
//! subgroup, a diamond) yields an [`ExpandNode::Repeated`] node that refers to the first
//! one, so the answer grows with the graph, not with the number of paths through it. The
//! answer holds at most `limit` items (nodes plus leaf subjects): past that it is
//! [`EngineError::ExpandTooLarge`], never a truncated tree. Every node ticks the request's
//! budget, so a cancelled request stops. The tree nests at most [`MAX_TREE_NESTING`]
//! levels (past that it is [`EngineError::ExpandTooDeep`]): printing, serializing and
//! dropping it recurse per level on whatever thread holds it.

use rustc_hash::FxHashSet;

use crate::model::{ObjectRef, Timestamp};
use crate::schema::{Expr, RelationKind, TypeId};

use super::check::{Goal, Snapshot};
use super::index::{CondMember, IndexData, NO_REL, Node};
use super::{EngineError, ExpandDepth, ExpandNode, ExpandTree};

mod functions;

/// The tree of `goal` (whose object is `resource`), of at most `limit` items.
pub(crate) fn expand(
    snap: Snapshot<'_>,
    resource: &ObjectRef,
    goal: Goal,
    depth: ExpandDepth,
    limit: usize,
    now: Timestamp,
) -> Result<ExpandTree, EngineError> {
    let mut expander = Expander {
        snap,
        now,
        recursive: depth == ExpandDepth::Recursive,
        open: Vec::new(),
        expanded: FxHashSet::default(),
        low: NO_LOW,
        items: 0,
        limit,
        nesting: 0,
    };
    expander.userset(&resource.object_type, &resource.object_id, goal, 0, true)
}

/// The deepest tree a recursive expand answers (levels of nodes).
pub(crate) const MAX_TREE_NESTING: usize = 256;

/// No cycle cut in the subtree.
const NO_LOW: usize = usize::MAX;

struct Expander<'a> {
    snap: Snapshot<'a>,
    /// The request's one "now": relationships expired at it are invisible.
    now: Timestamp,
    recursive: bool,
    /// Usersets being expanded on the current path.
    open: Vec<Goal>,
    /// Usersets expanded in full so far (recursive mode): met again, they are repeats.
    /// Only a subtree that cut no cycle back to an ancestor is kept here: its expansion
    /// does not depend on the path it was reached by.
    expanded: FxHashSet<Goal>,
    /// The lowest position in `open` that the subtree being built cut a cycle back to.
    low: usize,
    /// Items (nodes and leaf subjects) in the answer so far.
    items: usize,
    limit: usize,
    /// Levels of the tree above the node being built.
    nesting: usize,
}

impl Expander<'_> {
    /// Counts `n` more items of the answer; past the limit the answer is refused.
    fn spend(&mut self, n: usize) -> Result<(), EngineError> {
        self.snap.budget.tick()?;
        self.items = self.items.saturating_add(n);
        if self.items > self.limit {
            return Err(EngineError::ExpandTooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// Builds one level deeper of the tree, refusing past [`MAX_TREE_NESTING`].
    fn nested<T>(
        &mut self,
        build: impl FnOnce(&mut Self) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        if self.nesting >= MAX_TREE_NESTING {
            return Err(EngineError::ExpandTooDeep {
                limit: MAX_TREE_NESTING,
            });
        }
        self.nesting += 1;
        let res = build(self);
        self.nesting -= 1;
        res
    }

    fn reference(
        &mut self,
        type_name: &str,
        id: &str,
        goal: Goal,
        node: ExpandNode,
    ) -> Result<ExpandTree, EngineError> {
        self.spend(1)?;
        Ok(ExpandTree {
            resource: format!("{type_name}:{id}"),
            relation: self.snap.schema.relation_by_id(goal.rel).name.clone(),
            node,
        })
    }

    /// Expands `type_name:id#rel`; `follow` says whether this object may be entered.
    fn userset(
        &mut self,
        type_name: &str,
        id: &str,
        goal: Goal,
        depth: u32,
        follow: bool,
    ) -> Result<ExpandTree, EngineError> {
        if !follow {
            return self.reference(type_name, id, goal, ExpandNode::Userset);
        }
        if let Some(pos) = self.open.iter().position(|it| *it == goal) {
            self.low = self.low.min(pos);
            return self.reference(type_name, id, goal, ExpandNode::Userset);
        }
        if self.recursive && self.expanded.contains(&goal) {
            return self.reference(type_name, id, goal, ExpandNode::Repeated);
        }
        if depth > self.snap.depth_limit {
            return Err(EngineError::DepthExceeded(self.snap.depth_limit));
        }
        self.spend(1)?;
        let position = self.open.len();
        let outer_low = std::mem::replace(&mut self.low, NO_LOW);
        self.open.push(goal);
        let schema = self.snap.schema;
        let node = self.nested(|this| match &schema.relation_by_id(goal.rel).kind {
            RelationKind::Relation { .. } => this.relation(goal, depth),
            RelationKind::Permission { expr } => this.expr(type_name, id, goal, expr, depth),
        });
        self.open.pop();
        if self.recursive && self.low >= position {
            self.expanded.insert(goal);
        }
        // Cuts back to this userset itself do not concern the enclosing subtrees.
        let inner_low = if self.low < position {
            self.low
        } else {
            NO_LOW
        };
        self.low = outer_low.min(inner_low);
        Ok(ExpandTree {
            resource: format!("{type_name}:{id}"),
            relation: schema.relation_by_id(goal.rel).name.clone(),
            node: node?,
        })
    }

    fn relation(&mut self, goal: Goal, depth: u32) -> Result<ExpandNode, EngineError> {
        let snap = self.snap;
        let index = snap.index;
        let node = Node {
            ty: snap.plan.type_sym[goal.ty.0 as usize],
            id: goal.id,
            rel: snap.plan.rel_sym[goal.rel.0 as usize],
        };
        let mut subjects: Vec<String> = Vec::new();
        for obj in index.objects(node, snap.rev) {
            self.spend(1)?;
            subjects.push(format!("{}:{}", index.name(obj.ty), index.name(obj.id)));
        }
        let mut sets: Vec<(Node, String)> = index
            .usersets(node, snap.rev)
            .map(|set| (set, String::new()))
            .collect();
        sets.extend(
            self.visible_members(node)
                .map(|member| (member.subject, suffixes(member))),
        );
        self.spend(sets.len())?;
        let mut children = Vec::new();
        for (set, suffix) in &sets {
            let mut text = format!("{}:{}", index.name(set.ty), index.name(set.id));
            if set.rel != NO_REL {
                text.push('#');
                text.push_str(index.name(set.rel));
                if self.recursive
                    && let Some(ty) = snap.plan.type_of(set.ty)
                    && let Some(rel) = snap.plan.rel_of(ty, set.rel)
                {
                    let child = Goal {
                        ty,
                        id: set.id,
                        rel,
                    };
                    let type_name = index.name(set.ty).to_string();
                    let id = index.name(set.id).to_string();
                    children.push(self.userset(&type_name, &id, child, depth + 1, true)?);
                }
            }
            text.push_str(suffix);
            subjects.push(text);
        }
        subjects.sort_unstable();
        if children.is_empty() {
            return Ok(ExpandNode::Leaf { subjects });
        }
        self.spend(1)?;
        let leaf = ExpandTree {
            resource: format!("{}:{}", index.name(node.ty), index.name(node.id)),
            relation: snap.schema.relation_by_id(goal.rel).name.clone(),
            node: ExpandNode::Leaf { subjects },
        };
        children.insert(0, leaf);
        Ok(ExpandNode::Union { children })
    }

    fn expr(
        &mut self,
        type_name: &str,
        id: &str,
        goal: Goal,
        expr: &Expr,
        depth: u32,
    ) -> Result<ExpandNode, EngineError> {
        let child_tree = |this: &mut Self, expr: &Expr| -> Result<ExpandTree, EngineError> {
            match expr {
                Expr::Ref(rel) => this.userset(
                    type_name,
                    id,
                    Goal {
                        ty: goal.ty,
                        id: goal.id,
                        rel: *rel,
                    },
                    depth + 1,
                    true,
                ),
                other => {
                    this.spend(1)?;
                    Ok(ExpandTree {
                        resource: format!("{type_name}:{id}"),
                        relation: this.snap.schema.relation_by_id(goal.rel).name.clone(),
                        node: this.nested(|this| this.expr(type_name, id, goal, other, depth))?,
                    })
                }
            }
        };
        match expr {
            Expr::Nil => Ok(ExpandNode::Nil),
            Expr::SelfRef => self.self_leaf(type_name, id),
            Expr::ArrowAll(arrow) => self.arrow_all(goal, arrow, depth),
            // A single reference stays a node of its own, so the subjects it reaches are
            // attributed to the relation that holds them (as SpiceDB's expand does).
            Expr::Ref(_) => Ok(ExpandNode::Union {
                children: vec![child_tree(self, expr)?],
            }),
            Expr::Union(children) => Ok(ExpandNode::Union {
                children: children
                    .iter()
                    .map(|child| child_tree(self, child))
                    .collect::<Result<_, _>>()?,
            }),
            Expr::Intersection(children) => Ok(ExpandNode::Intersection {
                children: children
                    .iter()
                    .map(|child| child_tree(self, child))
                    .collect::<Result<_, _>>()?,
            }),
            Expr::Exclusion(base, subtracted) => Ok(ExpandNode::Exclusion {
                base: Box::new(child_tree(self, base)?),
                subtracted: Box::new(child_tree(self, subtracted)?),
            }),
            Expr::Arrow(arrow) => {
                let snap = self.snap;
                let index = snap.index;
                let tupleset = Node {
                    ty: snap.plan.type_sym[goal.ty.0 as usize],
                    id: goal.id,
                    rel: snap.plan.rel_sym[arrow.tupleset.0 as usize],
                };
                let star = index.star();
                let mut conditions = Vec::new();
                let conditional: Vec<(u32, u32)> = self
                    .visible_members(tupleset)
                    .filter(|it| it.subject.id != star)
                    .map(|member| {
                        conditions.push(relationship_text(index, tupleset, member));
                        (member.subject.ty, member.subject.id)
                    })
                    .collect();
                conditions.sort_unstable();
                let mut objects: Vec<(TypeId, u32)> = index
                    .arrow_objects(tupleset, snap.rev)
                    .map(|obj| (obj.ty, obj.id))
                    .chain(conditional)
                    .filter_map(|(ty, id)| snap.plan.type_of(ty).map(|ty| (ty, id)))
                    .collect();
                objects
                    .sort_unstable_by(|a, b| (a.0, index.name(a.1)).cmp(&(b.0, index.name(b.1))));
                objects.dedup();
                let mut children = Vec::new();
                for (ty, object_id) in objects {
                    let Some((_, target)) = arrow.targets.iter().find(|(it, _)| *it == ty) else {
                        continue;
                    };
                    let type_name = snap.schema.definition_by_id(ty).name.clone();
                    let object_name = index.name(object_id).to_string();
                    let child = Goal {
                        ty,
                        id: object_id,
                        rel: *target,
                    };
                    children.push(self.userset(
                        &type_name,
                        &object_name,
                        child,
                        depth + 1,
                        self.recursive,
                    )?);
                }
                Ok(ExpandNode::Arrow {
                    tupleset: snap.schema.relation_by_id(arrow.tupleset).name.clone(),
                    computed: arrow.computed_name.clone(),
                    children,
                    conditions,
                })
            }
        }
    }
}

impl<'a> Expander<'a> {
    /// The caveated or expiring relationships of `resource` live at the revision and not
    /// expired now.
    fn visible_members(&self, resource: Node) -> impl Iterator<Item = &'a CondMember> + use<'a> {
        let (rev, now) = (self.snap.rev, self.now);
        self.snap
            .index
            .conditional_members(resource)
            .iter()
            .filter(move |it| it.live_at(rev) && it.expiration.is_none_or(|at| at > now))
    }
}

/// SpiceDB's suffixes of a conditional relationship: `[caveat:{…}]`, `[expiration:…]`.
fn suffixes(member: &CondMember) -> String {
    let mut text = String::new();
    if let Some(caveat) = &member.caveat {
        text.push_str(&caveat.to_string());
    }
    if let Some(at) = member.expiration {
        text.push_str(&format!("[{}:{at}]", crate::model::EXPIRATION_KEYWORD));
    }
    text
}

/// The text form of the conditional relationship `member` of `resource`.
fn relationship_text(index: &IndexData, resource: Node, member: &CondMember) -> String {
    let mut text = format!(
        "{}:{}#{}@{}:{}",
        index.name(resource.ty),
        index.name(resource.id),
        index.name(resource.rel),
        index.name(member.subject.ty),
        index.name(member.subject.id)
    );
    if member.subject.rel != NO_REL {
        text.push('#');
        text.push_str(index.name(member.subject.rel));
    }
    text.push_str(&suffixes(member));
    text
}
