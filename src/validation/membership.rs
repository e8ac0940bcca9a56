//! The subjects a recursive expansion reaches, and for each the relations that directly
//! hold it: what an expected-relations block (`validation:`) is compared with.
//!
//! This follows SpiceDB's development API (its `developmentmembership` package), minus
//! caveats: every leaf of the [`ExpandTree`] gives its subjects, each held by the leaf's
//! `object#relation`; union and arrow nodes merge their children, intersection keeps what
//! every child has, exclusion removes what the second child has. Subjects are kept per
//! subject type and relation; a wildcard carries the subjects excluded from it:
//! - union: a concrete subject removes itself from the wildcard's exclusions, two
//!   wildcards keep only the exclusions both have;
//! - exclusion: removing a concrete subject adds it to the wildcard's exclusions; removing
//!   a wildcard removes every concrete subject except those it excluded, and the wildcard
//!   itself (leaving the subjects that the removed wildcard excluded and this one did not);
//! - intersection: a wildcard meets a concrete subject as that subject (unless excluded),
//!   two wildcards meet as a wildcard excluding what either excluded.
//!
//! Where two paths reach one subject, their relations are merged.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::{ExpandNode, ExpandTree};
use crate::model::{ObjectRef, SubjectRef, WILDCARD_ID};

use super::ValidationError;
use super::parse::{FoundSubject, ObjectRelation, object_relation};

/// The relations directly holding one subject.
type Resources = BTreeSet<ObjectRelation>;

/// Subjects of one type and relation (`user`, or `group#member`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SubjectSet {
    concrete: BTreeMap<String, Resources>,
    wildcard: Option<Wildcard>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Wildcard {
    /// Excluded ids, each with the relations of the subject whose removal excluded it.
    excluded: BTreeMap<String, Resources>,
    resources: Resources,
}

/// The subject sets of every subject type and relation, keyed by `(type, relation)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    sets: BTreeMap<(String, Option<String>), SubjectSet>,
}

/// Whether the text form of a subject or relationship carries a caveat suffix (one that
/// is not `[expiration:…]`).
fn is_caveated(text: &str) -> bool {
    text.split('[')
        .skip(1)
        .any(|suffix| !suffix.starts_with(crate::model::EXPIRATION_KEYWORD))
}

/// The usersets (`type:id#relation`, from suffixed subject sets of the leaves among a
/// union's children) and objects (`type:id`, from an arrow's `conditions`) that a node
/// reaches only through a caveated or expiring relationship.
fn conditional_steps(node: &ExpandNode) -> BTreeSet<String> {
    let bare = |text: &str| text.split('[').next().unwrap_or(text).to_string();
    match node {
        ExpandNode::Union { children } => children
            .iter()
            .filter_map(|child| match &child.node {
                ExpandNode::Leaf { subjects } => Some(subjects),
                _ => None,
            })
            .flatten()
            .filter(|it| is_caveated(it))
            .map(|it| bare(it))
            .collect(),
        ExpandNode::Arrow { conditions, .. } => conditions
            .iter()
            .filter(|it| is_caveated(it))
            .filter_map(|it| it.split_once('@'))
            .map(|(_, subject)| {
                let subject = bare(subject);
                subject.split('#').next().unwrap_or(&subject).to_string()
            })
            .collect(),
        _ => BTreeSet::new(),
    }
}

impl Membership {
    /// The subjects `tree` reaches.
    pub fn of_tree(tree: &ExpandTree) -> Result<Self, ValidationError> {
        Self::of_tree_in(tree, &mut BTreeMap::new())
    }

    /// [`Membership::of_tree`], with the memberships of the usersets met so far (an
    /// [`ExpandNode::Repeated`] node reuses the first node of the same userset, which comes
    /// earlier in document order).
    fn of_tree_in(
        tree: &ExpandTree,
        seen: &mut BTreeMap<(String, String), Self>,
    ) -> Result<Self, ValidationError> {
        if let ExpandNode::Repeated = tree.node {
            let key = (tree.resource.clone(), tree.relation.clone());
            return Ok(seen.get(&key).cloned().unwrap_or_default());
        }
        let res = Self::of_node(tree, seen)?;
        seen.insert((tree.resource.clone(), tree.relation.clone()), res.clone());
        Ok(res)
    }

    fn of_node(
        tree: &ExpandTree,
        seen: &mut BTreeMap<(String, String), Self>,
    ) -> Result<Self, ValidationError> {
        let here = || object_relation(&format!("{}#{}", tree.resource, tree.relation));
        Ok(match &tree.node {
            ExpandNode::Leaf { subjects } => {
                let resource = here()?;
                let mut res = Self::default();
                // A caveated subject (SpiceDB's suffixes; no name or id contains `[`) is
                // not a definite member: left out, as a check without context does not
                // allow it. One that only expires is (expand leaves out expired ones).
                for text in subjects.iter().filter(|it| !is_caveated(it)) {
                    let bare = text.split('[').next().unwrap_or(text);
                    let subject: SubjectRef =
                        bare.parse()
                            .map_err(|err| ValidationError::InvalidExpansion {
                                subject: text.clone(),
                                reason: format!("{err}"),
                            })?;
                    res.add_leaf(&subject, &resource);
                }
                res
            }
            ExpandNode::Union { children } | ExpandNode::Arrow { children, .. } => {
                // Subtrees reached through a caveated or expiring relationship (a suffixed
                // subject set in a leaf beside them, or an arrow's `conditions`) are not
                // definite either.
                let conditional = conditional_steps(&tree.node);
                let mut res = Self::default();
                for child in children {
                    if conditional.contains(&format!("{}#{}", child.resource, child.relation))
                        || conditional.contains(&child.resource)
                    {
                        continue;
                    }
                    res.union_with(Self::of_tree_in(child, seen)?);
                }
                res
            }
            ExpandNode::Intersection { children } => {
                let mut children = children.iter();
                let mut res = match children.next() {
                    Some(first) => Self::of_tree_in(first, seen)?,
                    None => Self::default(),
                };
                for child in children {
                    res = res.intersect(&Self::of_tree_in(child, seen)?);
                }
                res
            }
            ExpandNode::Exclusion { base, subtracted } => {
                let mut res = Self::of_tree_in(base, seen)?;
                res.exclude(&Self::of_tree_in(subtracted, seen)?);
                res
            }
            ExpandNode::Nil | ExpandNode::Userset | ExpandNode::Repeated => Self::default(),
        })
    }

    /// Every subject found, sorted by subject.
    pub fn found(&self) -> Vec<FoundSubject> {
        let mut res = Vec::new();
        for ((object_type, relation), set) in &self.sets {
            let subject = |id: &str| SubjectRef {
                object: ObjectRef {
                    object_type: object_type.clone(),
                    object_id: id.to_string(),
                },
                relation: relation.clone(),
            };
            for (id, resources) in &set.concrete {
                res.push(FoundSubject {
                    subject: subject(id),
                    excluded: Vec::new(),
                    resources: resources.iter().cloned().collect(),
                });
            }
            if let Some(wildcard) = &set.wildcard {
                res.push(FoundSubject {
                    subject: subject(WILDCARD_ID),
                    excluded: wildcard.excluded.keys().map(|id| subject(id)).collect(),
                    resources: wildcard.resources.iter().cloned().collect(),
                });
            }
        }
        res.sort_by(|a, b| a.subject.cmp(&b.subject));
        res
    }

    fn add_leaf(&mut self, subject: &SubjectRef, resource: &ObjectRelation) {
        let key = (subject.object.object_type.clone(), subject.relation.clone());
        let set = self.sets.entry(key).or_default();
        let resources = Resources::from([resource.clone()]);
        if subject.is_wildcard() {
            set.add_wildcard(Wildcard {
                excluded: BTreeMap::new(),
                resources,
            });
        } else {
            set.add_concrete(&subject.object.object_id, resources);
        }
    }

    fn union_with(&mut self, other: Self) {
        for (key, other_set) in other.sets {
            let set = self.sets.entry(key).or_default();
            for (id, resources) in other_set.concrete {
                set.add_concrete(&id, resources);
            }
            if let Some(wildcard) = other_set.wildcard {
                set.add_wildcard(wildcard);
            }
        }
    }

    fn intersect(&self, other: &Self) -> Self {
        let sets = self
            .sets
            .iter()
            .filter_map(|(key, set)| {
                let other_set = other.sets.get(key)?;
                Some((key.clone(), set.intersect(other_set)))
            })
            .collect();
        Self { sets }
    }

    fn exclude(&mut self, other: &Self) {
        for (key, set) in &mut self.sets {
            if let Some(other_set) = other.sets.get(key) {
                set.subtract_all(other_set);
            }
        }
    }
}

impl SubjectSet {
    fn add_concrete(&mut self, id: &str, resources: Resources) {
        self.concrete
            .entry(id.to_string())
            .or_default()
            .extend(resources);
        if let Some(wildcard) = &mut self.wildcard {
            wildcard.excluded.remove(id);
        }
    }

    fn add_wildcard(&mut self, adding: Wildcard) {
        let mut merged = match self.wildcard.take() {
            None => adding,
            Some(mut existing) => {
                // Excluded from the union only if excluded from both.
                existing
                    .excluded
                    .retain(|id, _| adding.excluded.contains_key(id));
                for (id, resources) in adding.excluded {
                    if let Some(kept) = existing.excluded.get_mut(&id) {
                        kept.extend(resources);
                    }
                }
                existing.resources.extend(adding.resources);
                existing
            }
        };
        merged
            .excluded
            .retain(|id, _| !self.concrete.contains_key(id));
        self.wildcard = Some(merged);
    }

    fn subtract_all(&mut self, other: &Self) {
        for (id, resources) in &other.concrete {
            self.concrete.remove(id);
            if let Some(wildcard) = &mut self.wildcard {
                wildcard
                    .excluded
                    .entry(id.clone())
                    .or_insert_with(|| resources.clone());
            }
        }
        if let Some(removed) = &other.wildcard {
            self.concrete
                .retain(|id, _| removed.excluded.contains_key(id));
            if let Some(existing) = self.wildcard.take() {
                for (id, resources) in &removed.excluded {
                    if !existing.excluded.contains_key(id) {
                        self.concrete.insert(id.clone(), resources.clone());
                    }
                }
            }
        }
    }

    fn intersect(&self, other: &Self) -> Self {
        let wildcard = match (&self.wildcard, &other.wildcard) {
            (Some(first), Some(second)) => {
                let mut excluded = first.excluded.clone();
                for (id, resources) in &second.excluded {
                    excluded
                        .entry(id.clone())
                        .or_default()
                        .extend(resources.clone());
                }
                let mut resources = first.resources.clone();
                resources.extend(second.resources.iter().cloned());
                Some(Wildcard {
                    excluded,
                    resources,
                })
            }
            _ => None,
        };
        let reaches = |wildcard: &Option<Wildcard>, id: &str| {
            wildcard
                .as_ref()
                .is_some_and(|it| !it.excluded.contains_key(id))
        };
        let mut concrete: BTreeMap<String, Resources> = BTreeMap::new();
        for (id, resources) in &self.concrete {
            let in_other = other.concrete.get(id);
            if in_other.is_none() && !reaches(&other.wildcard, id) {
                continue;
            }
            let mut merged = resources.clone();
            if let Some(other_resources) = in_other {
                merged.extend(other_resources.iter().cloned());
            }
            concrete.insert(id.clone(), merged);
        }
        for (id, resources) in &other.concrete {
            if reaches(&self.wildcard, id) {
                concrete
                    .entry(id.clone())
                    .or_default()
                    .extend(resources.iter().cloned());
            }
        }
        Self { concrete, wildcard }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(resource: &str, relation: &str, subjects: &[&str]) -> ExpandTree {
        ExpandTree {
            resource: resource.to_string(),
            relation: relation.to_string(),
            node: ExpandNode::Leaf {
                subjects: subjects.iter().map(ToString::to_string).collect(),
            },
        }
    }

    fn node(node: ExpandNode) -> ExpandTree {
        ExpandTree {
            resource: "doc:1".to_string(),
            relation: "view".to_string(),
            node,
        }
    }

    fn found(tree: &ExpandTree) -> Vec<String> {
        Membership::of_tree(tree)
            .unwrap()
            .found()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn union_merges_paths() {
        let tree = node(ExpandNode::Union {
            children: vec![
                leaf(
                    "doc:1",
                    "viewer",
                    &["user:jimmy", "user:fred", "group:eng#member"],
                ),
                leaf("doc:1", "writer", &["user:jimmy"]),
            ],
        });
        assert_eq!(
            found(&tree),
            [
                "[group:eng#member] is <doc:1#viewer>",
                "[user:fred] is <doc:1#viewer>",
                "[user:jimmy] is <doc:1#viewer>/<doc:1#writer>",
            ]
        );
    }

    #[test]
    fn exclusion_from_wildcard_lists_exceptions() {
        let tree = node(ExpandNode::Exclusion {
            base: Box::new(leaf(
                "doc:1",
                "viewer",
                &["user:*", "user:fred", "user:ann"],
            )),
            subtracted: Box::new(leaf("doc:1", "banned", &["user:fred", "user:jimmy"])),
        });
        assert_eq!(
            found(&tree),
            [
                "[user:* - {user:fred, user:jimmy}] is <doc:1#viewer>",
                "[user:ann] is <doc:1#viewer>",
            ]
        );
    }

    #[test]
    fn excluding_a_wildcard_keeps_only_its_exceptions() {
        let banned_all_but_ann = node(ExpandNode::Exclusion {
            base: Box::new(leaf("doc:1", "banned", &["user:*"])),
            subtracted: Box::new(leaf("doc:1", "allowed", &["user:ann"])),
        });
        let tree = node(ExpandNode::Exclusion {
            base: Box::new(leaf("doc:1", "viewer", &["user:ann", "user:bob"])),
            subtracted: Box::new(banned_all_but_ann),
        });
        assert_eq!(found(&tree), ["[user:ann] is <doc:1#viewer>"]);
    }

    #[test]
    fn intersection_with_wildcard() {
        let tree = node(ExpandNode::Intersection {
            children: vec![
                leaf("doc:1", "viewer", &["user:*", "user:ann"]),
                leaf(
                    "doc:1",
                    "member",
                    &["user:ann", "user:bob", "group:x#member"],
                ),
            ],
        });
        assert_eq!(
            found(&tree),
            [
                "[user:ann] is <doc:1#member>/<doc:1#viewer>",
                "[user:bob] is <doc:1#member>",
            ]
        );
        let both_wild = node(ExpandNode::Intersection {
            children: vec![
                leaf("doc:1", "viewer", &["user:*"]),
                leaf("doc:1", "member", &["user:*"]),
            ],
        });
        assert_eq!(
            found(&both_wild),
            ["[user:*] is <doc:1#member>/<doc:1#viewer>"]
        );
    }

    #[test]
    fn union_of_wildcards_keeps_common_exceptions() {
        let excluded = |base: &str, removed: &[&str]| {
            node(ExpandNode::Exclusion {
                base: Box::new(leaf("doc:1", base, &["user:*"])),
                subtracted: Box::new(leaf("doc:1", "banned", removed)),
            })
        };
        let tree = node(ExpandNode::Union {
            children: vec![
                excluded("viewer", &["user:a", "user:b"]),
                excluded("editor", &["user:b", "user:c"]),
            ],
        });
        assert_eq!(
            found(&tree),
            ["[user:* - {user:b}] is <doc:1#editor>/<doc:1#viewer>"]
        );
    }
}
