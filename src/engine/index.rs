//! The revision-aware in-memory read path (DESIGN §4): every live relationship, indexed
//! forward and backward, with MVCC versions, so that a check never reads the store.
//!
//! Strings (types, relations, ids) are interned to [`Sym`]s. A relationship
//! `T:x#rel@U:u#r` is stored twice:
//! - forward, under the node `(T, x, rel)`: plain object subjects `(U, u)` in one
//!   [`VersionedSet`], subject sets and wildcards `(U, u, r)` / `(U, *, -)` in another, so a
//!   check can ask "is this exact tuple live" in O(1) even for a million members, and walk
//!   only the subject sets of a group without scanning its direct members;
//! - backward, under the subject node `(U, u, r)` (r = [`NO_REL`] for a plain object):
//!   per `(T, rel)`, the resource ids, for lookups.
//!
//! Every entry carries the revision that created it and the one that deleted it; a read at
//! revision R sees exactly the entries live at R. Versions no reader can see any more are
//! dropped by [`IndexData::collect_garbage`]. Interned strings are never dropped.
//!
//! Concurrency: one `RwLock` around everything. Readers hold the read lock for one walk
//! (microseconds); the single writer holds the write lock while applying one committed
//! change set. A reader at revision R is unaffected by entries newer than R.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::model::{Relationship, Revision, WILDCARD_ID};
use crate::store::{ChangeOp, ChangeSet};

use super::versions::{self, RecentPart, SetView, Settled, VersionedSet};

mod image;
mod interner;
mod load;

pub(crate) use image::{decode as decode_image, encode as encode_image};
use interner::Interner;
pub(crate) use load::Loader;

/// hashbrown's tables used directly (with its `inline-more`): the same tables as std's,
/// but the probes a check makes are inlined into it.
pub(crate) type FxHashMap<K, V> = hashbrown::HashMap<K, V, rustc_hash::FxBuildHasher>;
pub(crate) type FxHashSet<K> = hashbrown::HashSet<K, rustc_hash::FxBuildHasher>;

/// An interned string.
pub(crate) type Sym = u32;

/// The relation symbol of a subject that is a plain object or a wildcard (no relation).
pub(crate) const NO_REL: Sym = u32::MAX;

/// An object `type:id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjKey {
    pub ty: Sym,
    pub id: Sym,
}

/// A userset `type:id#rel`, or a subject object (`rel` = [`NO_REL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Node {
    pub ty: Sym,
    pub id: Sym,
    pub rel: Sym,
}

/// The shared index. Cheap to read concurrently.
#[derive(Default)]
pub(crate) struct Index {
    data: RwLock<IndexData>,
}

impl Index {
    pub fn read(&self) -> RwLockReadGuard<'_, IndexData> {
        self.data.read()
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, IndexData> {
        self.data.write()
    }
}

/// The index contents, behind [`Index`]'s lock.
pub(crate) struct IndexData {
    /// Tells this index from every other one of the process (for per-thread hints that
    /// must not carry over to another index).
    instance: u64,
    strings: Interner,
    forward: FxHashMap<Node, Forward>,
    /// The nodes whose forward entry has (or had, until collected) a subject set or a
    /// wildcard: few and small enough to stay in cache, so a walk can skip the forward
    /// probe of every other node once it knows the subject's direct holders.
    // INVARIANT: contains every node whose `Forward::usersets` is not empty.
    indirect: FxHashSet<Node>,
    reverse: FxHashMap<Node, Box<[Reverse]>>,
    /// For each node of `indirect`: its subject sets (at any kept revision) that are in
    /// `indirect` too. The walk from a node only expands these, so a check can bound the
    /// depth of a walk and list the nodes it would expand without reading the (possibly
    /// huge) subject lists.
    // INVARIANT: for every kept tuple `p@c` with `p` and `c` in `indirect`,
    // `skeleton[p]` contains `c`.
    skeleton: FxHashMap<Node, FxHashSet<Node>>,
    /// The `(type, relation)` pairs of subject sets ever stored under each `(type,
    /// relation)` of resources (never shrinks): which pairs a walk can reach.
    pair_edges: FxHashMap<(Sym, Sym), Vec<(Sym, Sym)>>,
    /// The newest revision applied.
    head: Revision,
    /// The oldest revision the index can answer for exactly.
    oldest: Revision,
    /// The symbol of `*`.
    star: Sym,
    /// The caveated or expiring tuples, kept apart from the plain ones above (see
    /// [`super::conditional`]): by resource node, every version.
    conditional: FxHashMap<Node, Vec<CondMember>>,
    /// The resource nodes of the caveated or expiring tuples naming each subject node (at
    /// any kept revision, each once): the backward edges of lookups over `conditional`.
    // INVARIANT: for every kept member `m` of `conditional[r]`, `cond_reverse[m.subject]`
    // contains `r`.
    cond_reverse: FxHashMap<Node, FxHashSet<Node>>,
}

/// One version of a caveated or expiring tuple of a resource node.
#[derive(Clone, Debug)]
pub(crate) struct CondMember {
    /// The subject: an object (`rel` = [`NO_REL`]), a wildcard (`id` = `*`) or a set.
    pub subject: Node,
    pub caveat: Option<Arc<crate::model::RelationshipCaveat>>,
    pub expiration: Option<crate::model::Timestamp>,
    pub created: u64,
    /// `u64::MAX` while live.
    pub deleted: u64,
}

impl CondMember {
    /// Whether this version is live at revision `rev` (expiration aside).
    pub fn live_at(&self, rev: u64) -> bool {
        self.created <= rev && rev < self.deleted
    }
}

/// The subjects of one `(T, x, rel)`: 24 bytes, so that a forward table entry is 40. The
/// settled plain object subjects are inline (almost every node has only those, once the
/// index is settled); everything else is in an extension allocated only for the nodes
/// that have it.
#[derive(Default)]
pub(crate) struct Forward {
    objects: Settled<ObjKey>,
    extra: Option<Box<ForwardExtra>>,
}

/// What few nodes have: recent versions of plain object subjects, and subject sets and
/// wildcards (which a node without any never allocates).
#[derive(Default)]
struct ForwardExtra {
    recent_objects: RecentPart<ObjKey>,
    usersets: VersionedSet<Node>,
}

impl ForwardExtra {
    fn is_empty(&self) -> bool {
        self.recent_objects.is_none() && self.usersets.is_empty()
    }
}

impl Forward {
    /// The plain object subjects, at every kept revision.
    #[inline]
    fn objects(&self) -> SetView<'_, ObjKey> {
        let recent = self
            .extra
            .as_deref()
            .and_then(|it| it.recent_objects.as_deref());
        SetView::new(&self.objects, recent)
    }

    /// The subject sets and wildcards, at every kept revision (`None`: there are none).
    #[inline]
    fn sets(&self) -> Option<&VersionedSet<Node>> {
        self.extra.as_deref().map(|it| &it.usersets)
    }

    /// Whether the plain object `subject` is live at `rev`.
    #[inline]
    pub fn has_object(&self, subject: ObjKey, rev: u64) -> bool {
        self.objects().contains_at(&subject, rev)
    }

    /// Whether the subject set or wildcard `subject` is live at `rev`.
    #[inline]
    pub fn has_userset(&self, subject: Node, rev: u64) -> bool {
        self.sets().is_some_and(|it| it.contains_at(&subject, rev))
    }

    /// Whether the wildcard `star` (a `type:*` node) is live at `rev`.
    #[inline]
    pub fn has_wildcard(&self, star: Node, rev: u64) -> bool {
        self.has_userset(star, rev)
    }

    /// The revision that wrote the plain object `subject` live at `rev` (0: unknown, the
    /// index was built from the store at open); for explanations.
    pub fn object_written_at(&self, subject: ObjKey, rev: u64) -> Option<u64> {
        self.objects().created_at(&subject, rev)
    }

    /// The revision that wrote the subject set or wildcard `subject` live at `rev` (0:
    /// unknown); for explanations.
    pub fn userset_written_at(&self, subject: Node, rev: u64) -> Option<u64> {
        self.sets()?.created_at(&subject, rev)
    }

    /// The subject sets and wildcards live at `rev`.
    pub fn usersets(&self, rev: u64) -> impl Iterator<Item = Node> + '_ {
        self.sets().into_iter().flat_map(move |it| it.iter_at(rev))
    }

    /// Calls `f` with the subject sets and wildcards live at `rev` (as
    /// [`Forward::usersets`]) until it returns false; returns false if it did.
    #[inline]
    pub fn each_userset(&self, rev: u64, f: impl FnMut(Node) -> bool) -> bool {
        self.sets().is_none_or(|it| it.each_at(rev, f))
    }

    /// How many subject-set and wildcard versions it keeps (a bound on what a walk reads).
    pub fn userset_versions(&self) -> usize {
        self.sets().map_or(0, VersionedSet::len)
    }

    /// Whether it has any subject set or wildcard at all (at any revision).
    pub fn has_any_userset(&self) -> bool {
        self.sets().is_some_and(|it| !it.is_empty())
    }

    fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.extra.is_none()
    }

    fn heap_bytes(&self) -> usize {
        self.objects().heap_bytes()
            + self.extra.as_deref().map_or(0, |it| {
                std::mem::size_of::<ForwardExtra>() + it.usersets.heap_bytes()
            })
    }
}

/// The resources of one `(T, rel)` that name one subject.
struct Reverse {
    resource_type: Sym,
    relation: Sym,
    ids: VersionedSet<Sym>,
}

impl Default for IndexData {
    fn default() -> Self {
        let mut strings = Interner::default();
        let star = strings.intern(WILDCARD_ID);
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        Self {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            strings,
            forward: FxHashMap::default(),
            indirect: FxHashSet::default(),
            reverse: FxHashMap::default(),
            skeleton: FxHashMap::default(),
            pair_edges: FxHashMap::default(),
            head: Revision(0),
            oldest: Revision(0),
            star,
            conditional: FxHashMap::default(),
            cond_reverse: FxHashMap::default(),
        }
    }
}

impl IndexData {
    /// This index's number among the indexes of the process.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The symbol of `name`, if any relationship or schema ever used it.
    pub fn sym(&self, name: &str) -> Option<Sym> {
        self.strings.get(name)
    }

    /// Interns `name` (writer only).
    pub fn intern(&mut self, name: &str) -> Sym {
        self.strings.intern(name)
    }

    /// The string behind `sym`.
    pub fn name(&self, sym: Sym) -> &str {
        self.strings.name(sym)
    }

    /// The symbol of the wildcard id `*`.
    pub fn star(&self) -> Sym {
        self.star
    }

    pub fn head(&self) -> Revision {
        self.head
    }

    pub fn oldest(&self) -> Revision {
        self.oldest
    }

    /// Moves the head without changing tuples (a schema write took a revision).
    pub fn set_head(&mut self, revision: Revision) {
        self.head = self.head.max(revision);
    }

    /// Declares revisions before `revision` unanswerable (the index was built at it).
    pub fn set_oldest(&mut self, revision: Revision) {
        self.oldest = revision;
    }

    /// An index with this one's names (under the same symbols, so a loaded schema's plan
    /// stays valid) and no tuple, at this one's head: where a first import is built in
    /// bulk beside the live index.
    pub fn empty_copy(&self) -> Self {
        Self {
            strings: self.strings.clone(),
            head: self.head,
            oldest: self.oldest,
            star: self.star,
            ..Self::default()
        }
    }

    /// Whether no tuple is kept, at any revision.
    pub fn holds_no_tuple(&self) -> bool {
        self.forward.is_empty() && self.reverse.is_empty() && self.conditional.is_empty()
    }

    /// How many names are interned (the count only grows).
    pub fn name_count(&self) -> usize {
        self.strings.len()
    }

    /// Whether `resource` may have subject sets or wildcards (a probe of a small set).
    pub fn may_have_usersets(&self, resource: Node) -> bool {
        self.indirect.contains(&resource)
    }

    /// The subject sets of `resource` (at some kept revision) that may have subject sets
    /// themselves; ask [`Forward::has_userset`] whether each is live.
    pub fn indirect_children(&self, resource: Node) -> impl Iterator<Item = Node> + '_ {
        self.skeleton.get(&resource).into_iter().flatten().copied()
    }

    /// The `(type, relation)` pairs of the subject sets ever stored under resources of
    /// `(ty, rel)`.
    pub fn subject_pairs(&self, ty: Sym, rel: Sym) -> &[(Sym, Sym)] {
        self.pair_edges.get(&(ty, rel)).map_or(&[], Vec::as_slice)
    }

    /// The subjects of `resource`, if it ever had any (one hash probe; then ask the entry).
    pub fn forward(&self, resource: Node) -> Option<&Forward> {
        self.forward.get(&resource)
    }

    /// Whether `resource` has the plain object subject `subject` at `rev`.
    #[cfg(test)]
    pub fn has_object(&self, resource: Node, subject: ObjKey, rev: u64) -> bool {
        self.forward
            .get(&resource)
            .is_some_and(|fwd| fwd.has_object(subject, rev))
    }

    /// Whether `resource` has the subject set or wildcard `subject` at `rev`.
    #[cfg(test)]
    pub fn has_userset(&self, resource: Node, subject: Node, rev: u64) -> bool {
        self.forward
            .get(&resource)
            .is_some_and(|fwd| fwd.has_userset(subject, rev))
    }

    /// The plain object subjects of `resource` live at `rev`.
    pub fn objects(&self, resource: Node, rev: u64) -> impl Iterator<Item = ObjKey> + '_ {
        self.forward
            .get(&resource)
            .into_iter()
            .flat_map(move |fwd| fwd.objects().iter_at(rev))
    }

    /// The subject-set and wildcard subjects of `resource` live at `rev`.
    pub fn usersets(&self, resource: Node, rev: u64) -> impl Iterator<Item = Node> + '_ {
        self.forward
            .get(&resource)
            .into_iter()
            .flat_map(move |fwd| fwd.usersets(rev))
    }

    /// The objects an arrow walks from the tupleset `tupleset` at `rev`: its plain object
    /// subjects, then the objects of its subject-set subjects (`folder:f#member` names
    /// `folder:f`); a wildcard names no object.
    pub fn arrow_objects(&self, tupleset: Node, rev: u64) -> impl Iterator<Item = ObjKey> + '_ {
        let star = self.star;
        self.objects(tupleset, rev).chain(
            self.usersets(tupleset, rev)
                .filter(move |it| it.id != star)
                .map(|it| ObjKey {
                    ty: it.ty,
                    id: it.id,
                }),
        )
    }

    /// Every `(resource type, relation, resource id)` naming `subject` exactly, live at `rev`.
    pub fn resources_of(
        &self,
        subject: Node,
        rev: u64,
    ) -> impl Iterator<Item = (Sym, Sym, Sym)> + '_ {
        self.reverse
            .get(&subject)
            .into_iter()
            .flatten()
            .flat_map(move |rev_entry| {
                rev_entry
                    .ids
                    .iter_at(rev)
                    .map(|id| (rev_entry.resource_type, rev_entry.relation, id))
            })
    }

    /// Calls `f` with every resource node naming `subject` exactly at `rev` (as
    /// [`IndexData::resources_of`], without its iterator adapters: a check reads these
    /// first) until `f` returns false; returns false if it did.
    pub fn each_resource_of(
        &self,
        subject: Node,
        rev: u64,
        mut f: impl FnMut(Node) -> bool,
    ) -> bool {
        let Some(entries) = self.reverse.get(&subject) else {
            return true;
        };
        entries.iter().all(|entry| {
            let (ty, rel) = (entry.resource_type, entry.relation);
            entry.ids.each_at(rev, |id| f(Node { ty, id, rel }))
        })
    }

    /// The ids of `resource_type` objects whose `relation` names `subject` exactly at `rev`.
    pub fn resources_for(
        &self,
        subject: Node,
        resource_type: Sym,
        relation: Sym,
        rev: u64,
    ) -> impl Iterator<Item = Sym> + '_ {
        self.reverse
            .get(&subject)
            .into_iter()
            .flatten()
            .filter(move |it| it.resource_type == resource_type && it.relation == relation)
            .flat_map(move |it| it.ids.iter_at(rev))
    }

    /// Applies one committed change set and moves the head to its revision.
    pub fn apply(&mut self, change_set: &ChangeSet) {
        self.apply_changes(change_set.revision, &change_set.changes);
        self.set_head(change_set.revision);
    }

    /// Applies `changes` made at `revision` without moving the head: a change set applied
    /// in parts, so that readers wait for the write lock one part at a time.
    pub fn apply_changes(&mut self, revision: Revision, changes: &[crate::store::Change]) {
        let rev = revision.0;
        for change in changes {
            let (resource, subject) = self.intern_relationship(&change.relationship);
            let live = change.op == ChangeOp::Touch;
            if change.relationship.is_conditional() {
                self.apply_conditional(&change.relationship, resource, subject, rev, live);
            } else {
                self.apply_one(resource, subject, rev, live);
            }
        }
    }

    /// Inserts a relationship live since `rev` (tests; the index is built at open by a
    /// [`Loader`]).
    #[cfg(test)]
    pub fn insert_live(&mut self, relationship: &Relationship, rev: u64) {
        let (resource, subject) = self.intern_relationship(relationship);
        if relationship.is_conditional() {
            self.apply_conditional(relationship, resource, subject, rev, true);
        } else {
            self.apply_one(resource, subject, rev, true);
        }
    }

    /// Records a caveated or expiring tuple (or ends its live version).
    fn apply_conditional(
        &mut self,
        relationship: &Relationship,
        resource: Node,
        subject: Node,
        rev: u64,
        live: bool,
    ) {
        let members = self.conditional.entry(resource).or_default();
        if live {
            self.cond_reverse
                .entry(subject)
                .or_default()
                .insert(resource);
            members.push(CondMember {
                subject,
                caveat: relationship.caveat.clone().map(Arc::new),
                expiration: relationship.expiration,
                created: rev,
                deleted: u64::MAX,
            });
        } else if let Some(member) = members.iter_mut().find(|it| {
            it.subject == subject
                && it.deleted == u64::MAX
                && it.caveat.as_deref() == relationship.caveat.as_ref()
                && it.expiration == relationship.expiration
        }) {
            member.deleted = rev;
        }
    }

    /// Whether any caveated or expiring tuple is kept (at any revision): then checks
    /// take the three-valued walk of [`super::conditional`].
    pub fn has_conditional(&self) -> bool {
        !self.conditional.is_empty()
    }

    /// The caveated or expiring tuples of `resource` (every kept version).
    pub fn conditional_members(&self, resource: Node) -> &[CondMember] {
        self.conditional.get(&resource).map_or(&[], Vec::as_slice)
    }

    /// The resource nodes of the caveated or expiring tuples naming `subject` exactly (at
    /// some kept revision: a superset of those live now; ask
    /// [`IndexData::conditional_members`] for the versions).
    pub fn conditional_resources_of(&self, subject: Node) -> impl Iterator<Item = Node> + '_ {
        self.cond_reverse
            .get(&subject)
            .into_iter()
            .flatten()
            .copied()
    }

    /// Rebuilds [`IndexData::conditional_resources_of`] after versions were dropped.
    fn rebuild_cond_reverse(&mut self) {
        self.cond_reverse.clear();
        for (resource, members) in &self.conditional {
            for member in members {
                self.cond_reverse
                    .entry(member.subject)
                    .or_default()
                    .insert(*resource);
            }
        }
    }

    fn intern_relationship(&mut self, relationship: &Relationship) -> (Node, Node) {
        let resource = Node {
            ty: self.intern(&relationship.resource.object_type),
            id: self.intern(&relationship.resource.object_id),
            rel: self.intern(&relationship.relation),
        };
        let subject = Node {
            ty: self.intern(&relationship.subject.object.object_type),
            id: self.intern(&relationship.subject.object.object_id),
            rel: match &relationship.subject.relation {
                Some(rel) => self.intern(rel),
                None => NO_REL,
            },
        };
        (resource, subject)
    }

    fn apply_one(&mut self, resource: Node, subject: Node, rev: u64, live: bool) {
        let forward = self.forward.entry(resource).or_default();
        if subject.rel == NO_REL && subject.id != self.star {
            let key = ObjKey {
                ty: subject.ty,
                id: subject.id,
            };
            // No recent part and nothing to change: no extension to allocate.
            if forward.extra.is_none() && versions::settled_unchanged(&forward.objects, &key, live)
            {
                return;
            }
            let Forward { objects, extra } = forward;
            let extra = extra.get_or_insert_with(Default::default);
            versions::set(objects, &mut extra.recent_objects, key, rev, live);
            if extra.is_empty() {
                forward.extra = None;
            }
        } else {
            let extra = forward.extra.get_or_insert_with(Default::default);
            extra.usersets.set(subject, rev, live);
            if extra.is_empty() {
                forward.extra = None;
            }
            if live {
                if subject.id != self.star {
                    let pairs = self
                        .pair_edges
                        .entry((resource.ty, resource.rel))
                        .or_default();
                    if !pairs.contains(&(subject.ty, subject.rel)) {
                        pairs.push((subject.ty, subject.rel));
                    }
                }
                if self.indirect.insert(resource) {
                    self.link_parents(resource);
                }
                if subject.id != self.star && self.indirect.contains(&subject) {
                    self.skeleton.entry(resource).or_default().insert(subject);
                }
            }
        }
        let reverse = self.reverse.entry(subject).or_default();
        let pos = reverse
            .iter()
            .position(|it| it.resource_type == resource.ty && it.relation == resource.rel);
        let entry = match pos {
            Some(pos) => &mut reverse[pos],
            None => {
                // A subject's first tuple of another `(type, relation)`: rare, so the
                // entries are an exact boxed slice, grown by one here.
                let mut grown = std::mem::take(reverse).into_vec();
                grown.push(Reverse {
                    resource_type: resource.ty,
                    relation: resource.rel,
                    ids: VersionedSet::default(),
                });
                *reverse = grown.into_boxed_slice();
                let last = reverse.len() - 1;
                &mut reverse[last]
            }
        };
        entry.ids.set(resource.id, rev, live);
    }

    /// Records `node` (just added to `indirect`) as an indirect child of every node whose
    /// kept tuples name it.
    fn link_parents(&mut self, node: Node) {
        let Some(entries) = self.reverse.get(&node) else {
            return;
        };
        for entry in entries {
            for id in entry.ids.all_keys() {
                let parent = Node {
                    ty: entry.resource_type,
                    id,
                    rel: entry.relation,
                };
                if self.indirect.contains(&parent) {
                    self.skeleton.entry(parent).or_default().insert(node);
                }
            }
        }
    }

    /// Counts entries and estimates the heap the index holds (walks everything: for
    /// metrics and benches, not the hot path).
    pub fn stats(&self) -> IndexStats {
        use std::mem::size_of;
        let mut res = IndexStats {
            symbols: self.strings.len(),
            ..IndexStats::default()
        };
        let mut bytes = self.strings.heap_bytes();
        bytes += self.forward.capacity() * (size_of::<(Node, Forward)>() + 1);
        bytes += self.indirect.capacity() * (size_of::<Node>() + 1);
        for fwd in self.forward.values() {
            res.forward_entries += fwd.objects().len() + fwd.userset_versions();
            bytes += fwd.heap_bytes();
        }
        bytes += self.reverse.capacity() * (size_of::<(Node, Box<[Reverse]>)>() + 1);
        for entries in self.reverse.values() {
            bytes += entries.len() * size_of::<Reverse>();
            for it in entries {
                res.reverse_entries += it.ids.len();
                bytes += it.ids.heap_bytes();
            }
        }
        res.approx_bytes = bytes;
        res
    }

    /// Drops every version no read at or after `horizon` can see, and empty containers.
    /// Returns how many versions were dropped.
    pub fn collect_garbage(&mut self, horizon: Revision) -> usize {
        let horizon_rev = horizon.0;
        let mut dropped = 0;
        let indirect = &mut self.indirect;
        self.forward.retain(|node, fwd| {
            let Forward { objects, extra } = fwd;
            if let Some(more) = extra {
                dropped +=
                    versions::collect_garbage(objects, &mut more.recent_objects, horizon_rev);
                dropped += more.usersets.collect_garbage(horizon_rev);
                if more.usersets.is_empty() {
                    indirect.remove(node);
                }
                if more.is_empty() {
                    *extra = None;
                }
            } else {
                indirect.remove(node);
            }
            !fwd.is_empty()
        });
        // Children whose tuple was collected may stay: readers test each edge at their
        // revision anyway.
        self.skeleton.retain(|parent, children| {
            children.retain(|child| indirect.contains(child));
            indirect.contains(parent) && !children.is_empty()
        });
        self.reverse.retain(|_, entries| {
            let mut kept = std::mem::take(entries).into_vec();
            kept.retain_mut(|it| {
                it.ids.collect_garbage(horizon_rev);
                !it.ids.is_empty()
            });
            *entries = kept.into_boxed_slice();
            !entries.is_empty()
        });
        let dropped_plain = dropped;
        self.conditional.retain(|_, members| {
            let before = members.len();
            members.retain(|it| it.deleted > horizon_rev);
            dropped += before - members.len();
            !members.is_empty()
        });
        if dropped > dropped_plain {
            self.rebuild_cond_reverse();
        }
        self.oldest = self.oldest.max(horizon);
        dropped
    }

    /// Drops every expiring tuple whose expiration is at or before `now`: expiration is
    /// by the clock, so such a tuple is invisible to every read from now on, at any
    /// revision. Returns how many versions were dropped.
    pub fn drop_expired(&mut self, now: crate::model::Timestamp) -> usize {
        let mut dropped = 0;
        self.conditional.retain(|_, members| {
            let before = members.len();
            members.retain(|it| it.expiration.is_none_or(|at| at > now));
            dropped += before - members.len();
            !members.is_empty()
        });
        if dropped > 0 {
            self.rebuild_cond_reverse();
        }
        dropped
    }
}

/// Sizes of the index, for metrics and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexStats {
    /// Tuple entries in the forward index (live or kept for snapshots).
    pub forward_entries: usize,
    /// Tuple entries in the reverse index.
    pub reverse_entries: usize,
    /// Interned strings.
    pub symbols: usize,
    /// Estimated heap bytes (allocator overhead not included).
    pub approx_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Change;

    fn change_set(rev: u64, changes: &[(&str, ChangeOp)]) -> ChangeSet {
        ChangeSet {
            revision: Revision(rev),
            changes: changes
                .iter()
                .map(|(text, op)| Change {
                    op: *op,
                    relationship: text.parse().unwrap(),
                })
                .collect(),
        }
    }

    fn node(index: &IndexData, ty: &str, id: &str, rel: Option<&str>) -> Node {
        Node {
            ty: index.sym(ty).unwrap(),
            id: index.sym(id).unwrap(),
            rel: rel.map_or(NO_REL, |rel| index.sym(rel).unwrap()),
        }
    }

    #[test]
    fn a_read_at_a_revision_sees_exactly_the_tuples_live_at_it() {
        let mut index = IndexData::default();
        index.apply(&change_set(
            1,
            &[("doc:d1#viewer@user:alice", ChangeOp::Touch)],
        ));
        index.apply(&change_set(
            2,
            &[("doc:d1#viewer@user:alice", ChangeOp::Delete)],
        ));
        index.apply(&change_set(
            3,
            &[("doc:d1#viewer@user:alice", ChangeOp::Touch)],
        ));
        let doc = node(&index, "doc", "d1", Some("viewer"));
        let alice = ObjKey {
            ty: index.sym("user").unwrap(),
            id: index.sym("alice").unwrap(),
        };
        let seen: Vec<bool> = (0..=4)
            .map(|rev| index.has_object(doc, alice, rev))
            .collect();
        assert_eq!(seen, [false, true, false, true, true]);
        assert_eq!(index.head(), Revision(3));
        let dropped = index.collect_garbage(Revision(3));
        assert_eq!(dropped, 1);
        assert!(index.has_object(doc, alice, 3));
        assert_eq!(index.oldest(), Revision(3));
    }

    #[test]
    fn subject_sets_and_wildcards_are_kept_apart_from_objects() {
        let mut index = IndexData::default();
        index.apply(&change_set(
            1,
            &[
                ("group:g1#member@user:alice", ChangeOp::Touch),
                ("group:g1#member@group:g2#member", ChangeOp::Touch),
                ("group:g1#member@user:*", ChangeOp::Touch),
            ],
        ));
        let g1 = node(&index, "group", "g1", Some("member"));
        assert_eq!(index.objects(g1, 1).count(), 1);
        let sets: Vec<Node> = index.usersets(g1, 1).collect();
        assert_eq!(sets.len(), 2);
        assert!(index.has_userset(g1, node(&index, "group", "g2", Some("member")), 1));
        assert!(index.has_userset(g1, node(&index, "user", "*", None), 1));
        let group = index.sym("group").unwrap();
        let member = index.sym("member").unwrap();
        let g2 = node(&index, "group", "g2", Some("member"));
        let back: Vec<Sym> = index.resources_for(g2, group, member, 1).collect();
        assert_eq!(back, [index.sym("g1").unwrap()]);
    }

    #[test]
    fn conditional_tuples_are_found_backwards_until_collected_or_expired() {
        let mut index = IndexData::default();
        index.apply(&change_set(
            1,
            &[
                ("doc:d1#viewer@user:a[some_caveat]", ChangeOp::Touch),
                (
                    "doc:d2#viewer@user:a[expiration:2023-01-01T00:00:00Z]",
                    ChangeOp::Touch,
                ),
                ("doc:d3#viewer@user:a", ChangeOp::Touch),
            ],
        ));
        let a = node(&index, "user", "a", None);
        let mut back: Vec<Node> = index.conditional_resources_of(a).collect();
        back.sort_by_key(|it| it.id);
        let d1 = node(&index, "doc", "d1", Some("viewer"));
        let d2 = node(&index, "doc", "d2", Some("viewer"));
        assert_eq!(back, [d1, d2]);
        index.apply(&change_set(
            2,
            &[("doc:d1#viewer@user:a[some_caveat]", ChangeOp::Delete)],
        ));
        // Kept while a reader at revision 1 may need it.
        assert_eq!(index.conditional_resources_of(a).count(), 2);
        index.collect_garbage(Revision(2));
        let back: Vec<Node> = index.conditional_resources_of(a).collect();
        assert_eq!(back, [d2]);
        let now = crate::model::Timestamp::from_unix(1_800_000_000, 0).unwrap();
        assert_eq!(index.drop_expired(now), 1);
        assert_eq!(index.conditional_resources_of(a).count(), 0);
        assert!(!index.has_conditional());
    }

    #[test]
    fn issue14_a_forward_entry_is_40_bytes_and_only_nodes_with_more_than_settled_objects_allocate()
    {
        use std::mem::size_of;
        assert_eq!(size_of::<Settled<ObjKey>>(), 16);
        assert_eq!(size_of::<Settled<Sym>>(), 16);
        assert_eq!(size_of::<(Node, Forward)>(), 40);
        assert_eq!(size_of::<Reverse>(), 32);
        assert_eq!(size_of::<(Node, Box<[Reverse]>)>(), 32);
        // (writes at revision 1, writes at revision 2, whether `doc:1#viewer` has an
        // extension before and after a collection at 2, its live subjects at 2).
        type Case<'a> = (
            &'a [(&'a str, ChangeOp)],
            &'a [(&'a str, ChangeOp)],
            bool,
            bool,
            usize,
        );
        let cases: &[Case] = &[
            (
                &[("doc:1#viewer@user:a", ChangeOp::Touch)],
                &[],
                true,
                false,
                1,
            ),
            (
                &[("doc:1#viewer@user:a", ChangeOp::Touch)],
                &[("doc:1#viewer@user:a", ChangeOp::Delete)],
                true,
                false,
                0,
            ),
            (
                &[("doc:1#viewer@user:a", ChangeOp::Touch)],
                &[("doc:1#viewer@group:g#member", ChangeOp::Touch)],
                true,
                true,
                2,
            ),
            (
                &[("doc:1#viewer@user:*", ChangeOp::Touch)],
                &[("doc:1#viewer@user:*", ChangeOp::Delete)],
                true,
                false,
                0,
            ),
            // Deleting what was never there leaves nothing behind.
            (
                &[("doc:1#viewer@user:b", ChangeOp::Delete)],
                &[],
                false,
                false,
                0,
            ),
        ];
        for (number, (first, second, before, after, live)) in cases.iter().enumerate() {
            let mut index = IndexData::default();
            index.apply(&change_set(1, first));
            index.apply(&change_set(2, second));
            let doc = Node {
                ty: index.intern("doc"),
                id: index.intern("1"),
                rel: index.intern("viewer"),
            };
            let extended =
                |index: &IndexData| index.forward.get(&doc).is_some_and(|it| it.extra.is_some());
            assert_eq!(extended(&index), *before, "case {number} before");
            let count =
                |index: &IndexData| index.objects(doc, 2).count() + index.usersets(doc, 2).count();
            assert_eq!(count(&index), *live, "case {number} before");
            index.collect_garbage(Revision(2));
            assert_eq!(extended(&index), *after, "case {number} after");
            assert_eq!(count(&index), *live, "case {number} after");
            assert_eq!(index.may_have_usersets(doc), *after, "case {number}");
            // Written again once settled: nothing to record, nothing allocated.
            index.apply(&change_set(3, first));
            if second.is_empty() && *live == 1 {
                assert!(!extended(&index), "case {number} rewritten");
            }
        }
    }

    #[test]
    fn a_large_set_keeps_exact_membership_after_deletes_and_gc() {
        let mut index = IndexData::default();
        let members: Vec<(String, ChangeOp)> = (0..100)
            .map(|i| (format!("group:big#member@user:u{i}"), ChangeOp::Touch))
            .collect();
        let refs: Vec<(&str, ChangeOp)> = members.iter().map(|(t, op)| (t.as_str(), *op)).collect();
        index.apply(&change_set(1, &refs));
        let deletes: Vec<(String, ChangeOp)> = (0..100)
            .step_by(3)
            .map(|i| (format!("group:big#member@user:u{i}"), ChangeOp::Delete))
            .collect();
        let refs: Vec<(&str, ChangeOp)> = deletes.iter().map(|(t, op)| (t.as_str(), *op)).collect();
        index.apply(&change_set(2, &refs));
        index.collect_garbage(Revision(2));
        let big = node(&index, "group", "big", Some("member"));
        let user = index.sym("user").unwrap();
        for i in 0..100 {
            let key = ObjKey {
                ty: user,
                id: index.sym(&format!("u{i}")).unwrap(),
            };
            assert_eq!(index.has_object(big, key, 2), i % 3 != 0, "u{i}");
        }
        assert_eq!(index.objects(big, 2).count(), 66);
    }
}
