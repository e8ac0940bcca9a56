//! Building the index at open from every relationship live at the store's head, in bulk:
//! the tuples are gathered as symbols, sorted once per direction, and each node's set is
//! stored settled in one piece — no per-tuple version bookkeeping, no set grown one key at
//! a time, no hash index per large set.

use crate::model::Relationship;

use super::{
    Forward, ForwardExtra, FxHashMap, FxHashSet, IndexData, NO_REL, Node, ObjKey, Reverse, Sym,
};
use crate::engine::versions::{Settled, VersionedSet};

/// The tuples gathered so far, as symbols.
#[derive(Default)]
pub(crate) struct Loader {
    /// `(resource, plain object subject)`.
    pub(super) objects: Vec<(Node, ObjKey)>,
    /// `(resource, subject set or wildcard)`.
    pub(super) usersets: Vec<(Node, Node)>,
    /// `(subject, resource type, relation, resource id)`.
    pub(super) reverse: Vec<(Node, Sym, Sym, Sym)>,
    /// The symbol of the name last seen in each of the six name positions of a tuple:
    /// stores scan in key order, so consecutive tuples mostly repeat the types, the
    /// relations and the resource id, and a repeat needs no hash probe.
    last: [Option<Sym>; 6],
}

impl Loader {
    /// Adds one relationship live at the head (caveated and expiring ones go to the
    /// index's conditional side at once).
    pub fn add(&mut self, index: &mut IndexData, relationship: &Relationship) {
        let subject_rel = relationship.subject.relation.as_deref();
        let resource = Node {
            ty: self.intern(index, 0, &relationship.resource.object_type),
            id: self.intern(index, 1, &relationship.resource.object_id),
            rel: self.intern(index, 2, &relationship.relation),
        };
        let subject = Node {
            ty: self.intern(index, 3, &relationship.subject.object.object_type),
            id: self.intern(index, 4, &relationship.subject.object.object_id),
            rel: subject_rel.map_or(NO_REL, |rel| self.intern(index, 5, rel)),
        };
        if relationship.is_conditional() {
            index.apply_conditional(relationship, resource, subject, 0, true);
            return;
        }
        if subject.rel == NO_REL && subject.id != index.star {
            let key = ObjKey {
                ty: subject.ty,
                id: subject.id,
            };
            self.objects.push((resource, key));
        } else {
            self.usersets.push((resource, subject));
        }
        self.reverse
            .push((subject, resource.ty, resource.rel, resource.id));
    }

    /// The symbol of `name`, seen in name position `slot`.
    fn intern(&mut self, index: &mut IndexData, slot: usize, name: &str) -> Sym {
        if let Some(sym) = self.last[slot]
            && index.name(sym) == name
        {
            return sym;
        }
        let sym = index.intern(name);
        self.last[slot] = Some(sym);
        sym
    }

    /// Stores everything gathered into `index`, which must hold no plain tuple yet (it
    /// falls back to one insertion at a time if it does).
    pub fn finish(self, index: &mut IndexData) {
        if !index.forward.is_empty() || !index.reverse.is_empty() {
            for (resource, key) in self.objects {
                let subject = Node {
                    ty: key.ty,
                    id: key.id,
                    rel: NO_REL,
                };
                index.apply_one(resource, subject, 0, true);
            }
            for (resource, subject) in self.usersets {
                index.apply_one(resource, subject, 0, true);
            }
            return;
        }
        let Self {
            objects,
            usersets,
            reverse,
            last: _,
        } = self;
        let star = index.star;
        // The two directions are independent: built side by side.
        let (forward, reverse) = std::thread::scope(|scope| {
            let reverse = scope.spawn(move || build_reverse(reverse));
            let forward = build_forward(objects, usersets, star);
            // A panic in the reverse build is a bug; re-raise it here.
            let reverse = reverse
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (forward, reverse)
        });
        index.forward = forward.forward;
        index.indirect = forward.indirect;
        index.skeleton = forward.skeleton;
        index.pair_edges = forward.pair_edges;
        index.reverse = reverse;
    }
}

/// The forward side of an index built in bulk.
struct ForwardParts {
    forward: FxHashMap<Node, Forward>,
    indirect: FxHashSet<Node>,
    skeleton: FxHashMap<Node, FxHashSet<Node>>,
    pair_edges: FxHashMap<(Sym, Sym), Vec<(Sym, Sym)>>,
}

fn build_forward(
    mut objects: Vec<(Node, ObjKey)>,
    mut usersets: Vec<(Node, Node)>,
    star: Sym,
) -> ForwardParts {
    objects.sort_unstable();
    objects.dedup();
    usersets.sort_unstable();
    usersets.dedup();
    let mut nodes: FxHashMap<Node, Forward> = FxHashMap::default();
    // Sized exactly: a growing vector's abandoned buffers would stay resident (the
    // allocator keeps large freed blocks), and this one is large.
    let mut entries: Vec<(Node, Forward)> =
        transient(objects.chunk_by(|a, b| a.0 == b.0).count() + usersets.len());
    entries.extend(groups(&objects).map(|(node, keys)| {
        let forward = Forward {
            objects: Settled::from_sorted(keys),
            extra: None,
        };
        (node, forward)
    }));
    drop(objects);
    let mut indirect = FxHashSet::default();
    // Nodes with subject sets are few: they join their entry (if any) by a probe.
    let mut with_sets: FxHashMap<Node, ForwardExtra> = FxHashMap::default();
    for (node, keys) in groups(&usersets) {
        with_sets.insert(
            node,
            ForwardExtra {
                recent_objects: None,
                usersets: VersionedSet::from_sorted(keys),
            },
        );
        indirect.insert(node);
    }
    for (node, forward) in &mut entries {
        if let Some(sets) = with_sets.remove(node) {
            forward.extra = Some(Box::new(sets));
        }
    }
    entries.extend(with_sets.into_iter().map(|(node, sets)| {
        let forward = Forward {
            objects: Settled::default(),
            extra: Some(Box::new(sets)),
        };
        (node, forward)
    }));
    insert_in_table_order(&mut nodes, entries);

    let mut skeleton: FxHashMap<Node, FxHashSet<Node>> = FxHashMap::default();
    let mut pair_edges: FxHashMap<(Sym, Sym), Vec<(Sym, Sym)>> = FxHashMap::default();
    for (resource, subject) in &usersets {
        if subject.id == star {
            continue;
        }
        let pairs = pair_edges.entry((resource.ty, resource.rel)).or_default();
        if !pairs.contains(&(subject.ty, subject.rel)) {
            pairs.push((subject.ty, subject.rel));
        }
        if indirect.contains(subject) {
            skeleton.entry(*resource).or_default().insert(*subject);
        }
    }
    ForwardParts {
        forward: nodes,
        indirect,
        skeleton,
        pair_edges,
    }
}

fn build_reverse(mut reverse: Vec<(Node, Sym, Sym, Sym)>) -> FxHashMap<Node, Box<[Reverse]>> {
    reverse.sort_unstable();
    reverse.dedup();
    let mut entries: Vec<(Node, Box<[Reverse]>)> =
        transient(reverse.chunk_by(|a, b| a.0 == b.0).count());
    for run in reverse.chunk_by(|a, b| a.0 == b.0) {
        let by_pair: Box<[Reverse]> = run
            .chunk_by(|a, b| (a.1, a.2) == (b.1, b.2))
            .map(|pair| Reverse {
                resource_type: pair[0].1,
                relation: pair[0].2,
                ids: VersionedSet::from_sorted(pair.iter().map(|it| it.3).collect()),
            })
            .collect();
        entries.push((run[0].0, by_pair));
    }
    drop(reverse);
    let mut map = FxHashMap::default();
    insert_in_table_order(&mut map, entries);
    map
}

/// Inserts `entries` (distinct keys) into the empty `map` in the order of the buckets
/// they land in, so that building a large table walks its memory once instead of
/// missing the cache on every insertion.
fn insert_in_table_order<V>(map: &mut FxHashMap<Node, V>, mut entries: Vec<(Node, V)>) {
    use std::hash::BuildHasher;
    map.reserve(entries.len());
    // hashbrown's bucket count for this many entries (a power of two at most 7/8 full);
    // if it differs the order is still nearly sequential.
    let buckets = (entries.len().max(8) * 8 / 7).next_power_of_two() as u64;
    let hasher = *map.hasher();
    entries.sort_unstable_by_key(|(node, _)| hasher.hash_one(node) & (buckets - 1));
    map.extend(entries);
}

/// Below this many bytes glibc may serve an allocation from its heap, whose freed memory
/// it keeps resident (its mmap threshold rises with every large free, up to 32 MiB);
/// above it, always from a mapping of its own, unmapped when freed.
const ALWAYS_MAPPED: usize = 33 << 20;

/// An empty vector for at least `len` temporary items of a bulk build. A large one gets
/// the capacity of a separate mapping ([`ALWAYS_MAPPED`]): the untouched rest costs no
/// memory, and when the vector is dropped its memory goes back to the system instead of
/// staying resident in the allocator's heap.
pub(super) fn transient<T>(len: usize) -> Vec<T> {
    let size = std::mem::size_of::<T>().max(1);
    if len.saturating_mul(size) < (1 << 20) {
        return Vec::with_capacity(len);
    }
    Vec::with_capacity(len.max(ALWAYS_MAPPED / size + 1))
}

/// The runs of equal first elements of sorted pairs, each with its second elements.
fn groups<A: Copy + Eq, B: Copy>(pairs: &[(A, B)]) -> impl Iterator<Item = (A, Vec<B>)> + '_ {
    pairs
        .chunk_by(|left, right| left.0 == right.0)
        .map(|run| (run[0].0, run.iter().map(|it| it.1).collect()))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::Revision;
    use crate::store::{Change, ChangeOp, ChangeSet};

    pub(in crate::engine::index) const TUPLES: &[&str] = &[
        "doc:1#viewer@user:alice",
        "doc:1#viewer@user:bob",
        "doc:1#viewer@group:eng#member",
        "doc:1#viewer@user:*",
        "doc:2#owner@user:alice",
        "group:eng#member@user:carol",
        "group:eng#member@group:ops#member",
        "group:ops#member@user:dave",
        "group:ops#member@group:eng#member",
        "doc:3#viewer@user:erin[expiration:2300-01-01T00:00:00Z]",
    ];

    /// Everything a walk can ask, as names, for comparing two indexes.
    pub(in crate::engine::index) fn dump(index: &IndexData, rev: u64) -> Vec<String> {
        let mut res = Vec::new();
        for (node, fwd) in &index.forward {
            let name = |it: Node| {
                format!(
                    "{}:{}#{}",
                    index.name(it.ty),
                    index.name(it.id),
                    if it.rel == NO_REL {
                        ""
                    } else {
                        index.name(it.rel)
                    }
                )
            };
            for key in fwd.objects().iter_at(rev) {
                res.push(format!(
                    "{} > {}:{}",
                    name(*node),
                    index.name(key.ty),
                    index.name(key.id)
                ));
            }
            for set in fwd.usersets(rev) {
                res.push(format!("{} > {}", name(*node), name(set)));
            }
            if fwd.has_wildcard(
                Node {
                    ty: index.sym("user").unwrap(),
                    id: index.star,
                    rel: NO_REL,
                },
                1,
            ) {
                res.push(format!("{} has *", name(*node)));
            }
            if index.may_have_usersets(*node) {
                res.push(format!("{} indirect", name(*node)));
            }
            for child in index.indirect_children(*node) {
                res.push(format!("{} skeleton {}", name(*node), name(child)));
            }
            for (ty, rel, id) in index.resources_of(*node, rev) {
                res.push(format!(
                    "{} < {}:{}#{}",
                    name(*node),
                    index.name(ty),
                    index.name(id),
                    index.name(rel)
                ));
            }
        }
        for subject in index.reverse.keys() {
            if index.forward.contains_key(subject) {
                continue;
            }
            for (ty, rel, id) in index.resources_of(*subject, rev) {
                res.push(format!(
                    "{}:{} < {}:{}#{}",
                    index.name(subject.ty),
                    index.name(subject.id),
                    index.name(ty),
                    index.name(id),
                    index.name(rel)
                ));
            }
        }
        let mut pairs: Vec<String> = index
            .pair_edges
            .iter()
            .flat_map(|((ty, rel), to)| {
                to.iter()
                    .map(move |(sty, srel)| format!("pair {ty}/{rel} -> {sty}/{srel}"))
            })
            .collect();
        res.append(&mut pairs);
        res.push(format!("conditional {}", index.conditional.len()));
        res.sort();
        res
    }

    #[test]
    fn a_bulk_load_builds_the_same_index_as_one_insertion_at_a_time() {
        let relationships: Vec<Relationship> =
            TUPLES.iter().map(|it| it.parse().unwrap()).collect();
        let mut one_by_one = IndexData::default();
        one_by_one.apply(&ChangeSet {
            revision: Revision(1),
            changes: relationships
                .iter()
                .map(|it| Change {
                    op: ChangeOp::Touch,
                    relationship: it.clone(),
                })
                .collect(),
        });
        let mut bulk = IndexData::default();
        let mut loader = Loader::default();
        for relationship in &relationships {
            loader.add(&mut bulk, relationship);
        }
        loader.finish(&mut bulk);
        bulk.set_head(Revision(1));
        // Symbols are interned in the same order, so the dumps compare by name and number.
        assert_eq!(dump(&bulk, 1), dump(&one_by_one, 1));
        assert!(dump(&bulk, 1).len() > TUPLES.len());
    }
}
