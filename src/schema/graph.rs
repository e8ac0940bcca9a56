//! The dependency graph of a compiled schema: for each relation or permission, what it
//! reaches directly, and the reverse edges (who depends on it).
//!
//! Forward edges answer "what can grant this?" (check, expand); reverse edges answer "if a
//! subject is in this relation, which permissions can it reach, and through what?"
//! (lookup resources walks them backwards from the subject's side). Both are computed once
//! when the schema is compiled.

use std::collections::VecDeque;

use super::compiled::{AllowedSubject, Expr, RelationDef, RelationId, RelationKind};

/// One direct dependency of a relation or permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dependency {
    /// A permission names this relation or permission of the same object
    /// (`permission view = viewer`).
    Computed(RelationId),
    /// A permission follows the arrow `tupleset.target`: it reads relation `tupleset` on the
    /// same object, then `target` on each subject object (one edge per target type).
    Arrow {
        tupleset: RelationId,
        target: RelationId,
    },
    /// A relation admits the subject set `T#target`: the subjects of `target` on a `T`
    /// object that is written into this relation are subjects of it too.
    SubjectSet(RelationId),
}

/// A reverse edge: `from` depends on the relation it is stored under, `via` this edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dependent {
    pub from: RelationId,
    pub via: Dependency,
}

/// Forward and reverse dependency edges, indexed by [`RelationId`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DependencyGraph {
    /// `forward[id]`: what `id` reaches directly, without duplicates, in expression order.
    forward: Vec<Vec<Dependency>>,
    /// `reverse[id]`: who reaches `id` directly. An arrow is listed under its target and
    /// under its tupleset (both are needed to walk it backwards).
    reverse: Vec<Vec<Dependent>>,
}

impl DependencyGraph {
    /// Builds the graph of `relations` (the [`Schema::relations`](super::Schema) table).
    pub fn build(relations: &[RelationDef]) -> Self {
        let mut forward: Vec<Vec<Dependency>> = vec![Vec::new(); relations.len()];
        for relation in relations {
            let edges = &mut forward[relation.id.0 as usize];
            match &relation.kind {
                RelationKind::Relation { allowed } => {
                    for subject in allowed {
                        if let AllowedSubject::SubjectSet(_, target) = subject {
                            push_unique(edges, Dependency::SubjectSet(*target));
                        }
                    }
                }
                RelationKind::Permission { expr } => collect_expr(expr, edges),
            }
        }
        let mut reverse: Vec<Vec<Dependent>> = vec![Vec::new(); relations.len()];
        for (from_idx, edges) in forward.iter().enumerate() {
            let from = RelationId(u32::try_from(from_idx).unwrap_or(u32::MAX));
            for via in edges {
                let dependent = Dependent { from, via: *via };
                match *via {
                    Dependency::Computed(target) | Dependency::SubjectSet(target) => {
                        push_unique(&mut reverse[target.0 as usize], dependent);
                    }
                    Dependency::Arrow { tupleset, target } => {
                        push_unique(&mut reverse[target.0 as usize], dependent);
                        push_unique(&mut reverse[tupleset.0 as usize], dependent);
                    }
                }
            }
        }
        Self { forward, reverse }
    }

    /// What `id` reaches directly.
    pub fn dependencies(&self, id: RelationId) -> &[Dependency] {
        self.forward.get(id.0 as usize).map_or(&[], Vec::as_slice)
    }

    /// Who reaches `id` directly, and through which edge.
    pub fn dependents(&self, id: RelationId) -> &[Dependent] {
        self.reverse.get(id.0 as usize).map_or(&[], Vec::as_slice)
    }

    /// Whether `from` can reach `to` through any chain of edges (arrow tuplesets count:
    /// an arrow depends on its tupleset too).
    pub fn reaches(&self, from: RelationId, to: RelationId) -> bool {
        let mut seen = vec![false; self.forward.len()];
        let mut queue = VecDeque::from([from]);
        while let Some(id) = queue.pop_front() {
            for dependency in self.dependencies(id) {
                let next: &[RelationId] = match dependency {
                    Dependency::Computed(target) | Dependency::SubjectSet(target) => {
                        std::slice::from_ref(target)
                    }
                    Dependency::Arrow { tupleset, target } => &[*tupleset, *target],
                };
                for next in next {
                    if *next == to {
                        return true;
                    }
                    if let Some(slot) = seen.get_mut(next.0 as usize)
                        && !*slot
                    {
                        *slot = true;
                        queue.push_back(*next);
                    }
                }
            }
        }
        false
    }
}

fn collect_expr(expr: &Expr, edges: &mut Vec<Dependency>) {
    match expr {
        Expr::Nil => {}
        Expr::Ref(id) => push_unique(edges, Dependency::Computed(*id)),
        Expr::Arrow(arrow) => {
            for (_, target) in &arrow.targets {
                let edge = Dependency::Arrow {
                    tupleset: arrow.tupleset,
                    target: *target,
                };
                push_unique(edges, edge);
            }
        }
        Expr::Union(children) | Expr::Intersection(children) => {
            for child in children {
                collect_expr(child, edges);
            }
        }
        Expr::Exclusion(base, subtracted) => {
            collect_expr(base, edges);
            collect_expr(subtracted, edges);
        }
    }
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse_and_compile;

    #[test]
    fn forward_and_reverse_edges() {
        let schema = parse_and_compile(
            "definition user {}
             definition group { relation member: user | group#member }
             definition folder { relation viewer: user  permission view = viewer }
             definition doc {
                 relation parent: folder
                 relation reader: user | group#member
                 permission read = reader | parent.view
                 permission edit = read - reader
             }",
        )
        .unwrap();
        let id = |ty: &str, rel: &str| schema.relation(ty, rel).unwrap().id;
        let (member, view, viewer) = (
            id("group", "member"),
            id("folder", "view"),
            id("folder", "viewer"),
        );
        let (parent, reader, read, edit) = (
            id("doc", "parent"),
            id("doc", "reader"),
            id("doc", "read"),
            id("doc", "edit"),
        );
        let graph = &schema.graph;
        assert_eq!(
            graph.dependencies(member),
            &[Dependency::SubjectSet(member)]
        );
        assert_eq!(
            graph.dependencies(read),
            &[
                Dependency::Computed(reader),
                Dependency::Arrow {
                    tupleset: parent,
                    target: view
                }
            ]
        );
        assert_eq!(
            graph.dependencies(edit),
            &[Dependency::Computed(read), Dependency::Computed(reader)]
        );
        let arrow = Dependency::Arrow {
            tupleset: parent,
            target: view,
        };
        assert_eq!(
            graph.dependents(view),
            &[Dependent {
                from: read,
                via: arrow
            }]
        );
        assert_eq!(
            graph.dependents(parent),
            &[Dependent {
                from: read,
                via: arrow
            }]
        );
        assert_eq!(graph.dependents(reader).len(), 2);
        assert!(graph.reaches(edit, viewer));
        assert!(graph.reaches(member, member));
        assert!(!graph.reaches(viewer, edit));
    }
}
