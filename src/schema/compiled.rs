//! The compiled schema: the immutable, id-indexed form the check engine walks.
//!
//! Names are interned to small integer ids at compile time so that the hot loop compares
//! integers: a [`TypeId`] indexes [`Schema::definitions`], a [`RelationId`] indexes
//! [`Schema::relations`] (relations and permissions of every definition share one id space,
//! and a definition's relations and permissions share one namespace, as in SpiceDB).
//! Expressions are resolved: every name in an expression is already a [`RelationId`] of the
//! same definition, and every arrow lists, per subject type of its left side, the relation
//! it reaches on that type. Nothing here is ever mutated after compilation.

use std::collections::HashMap;
use std::sync::Arc;

use crate::caveat::CompiledCaveat;

/// The deepest nesting of operators a compiled permission expression may have (`a | (b &
/// c)` nests 2; chains of one operator are flattened first, so `a - b - … - z` nests 2).
///
/// INVARIANT: every walk over a compiled expression (check, expand, lookups) recurses at
/// most this many times per goal, and goals recurse at most the depth limit (≤ 200)
/// times, so the whole walk fits a 2 MiB thread stack; `tests/issue10_schema.rs` measures
/// the worst case.
pub const MAX_EXPR_NESTING: usize = 16;

/// Index of a definition in [`Schema::definitions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypeId(pub u32);

/// Index of a relation or permission in [`Schema::relations`], unique across the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationId(pub u32);

/// Index of a caveat in [`Schema::caveats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaveatId(pub u32);

/// A compiled schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    /// Every definition, indexed by [`TypeId`], in source order.
    pub definitions: Vec<Definition>,
    /// Every relation and permission of every definition, indexed by [`RelationId`];
    /// grouped by definition, each group in source order.
    pub relations: Vec<RelationDef>,
    /// Lookup by full type name (with any `ns/` prefix).
    pub type_by_name: HashMap<String, TypeId>,
    /// The schema in canonical form (the formatter's output for the compiled text).
    pub source: String,
    /// Every caveat, indexed by [`CaveatId`], in source order; each parsed and
    /// type-checked once, here.
    pub caveats: Vec<Arc<CompiledCaveat>>,
    /// Lookup of caveats by name.
    pub caveat_by_name: HashMap<String, CaveatId>,
    /// `use expiration` was given: relations may admit `with expiration`.
    pub use_expiration: bool,
    /// `use self` was given.
    pub use_self: bool,
}

/// One `definition NAME { … }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub id: TypeId,
    /// Full name, with any `ns/` prefix.
    pub name: String,
    /// This definition's relations and permissions, in source order.
    pub relations: Vec<RelationId>,
    /// Lookup of this definition's relations and permissions by name.
    pub relation_by_name: HashMap<String, RelationId>,
    /// The doc comment (`/** … */`) before the definition, if any, without the markers.
    pub doc: Option<String>,
}

/// One `relation NAME: …` or `permission NAME = …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationDef {
    pub id: RelationId,
    /// The definition it belongs to.
    pub owner: TypeId,
    pub name: String,
    pub kind: RelationKind,
    pub doc: Option<String>,
    /// For a relation, every subject type as written, with its caveat and expiration flag
    /// (`user | user with ip_allowlist` is two entries); empty for a permission. Write
    /// validation checks a relationship against these; `RelationKind::Relation::allowed`
    /// holds the same subjects without the `with` clauses, each once.
    pub subject_types: Vec<AllowedSubjectType>,
}

/// One subject type a relation admits, with its `with` clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AllowedSubjectType {
    pub subject: AllowedSubject,
    /// `with NAME`: a relationship of this shape must carry this caveat.
    pub caveat: Option<CaveatId>,
    /// `with expiration`: a relationship of this shape may carry an expiration.
    pub expiration: bool,
}

/// Whether a [`RelationDef`] stores tuples (a relation) or is computed (a permission).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelationKind {
    /// `relation NAME: T | T#rel | T:*` — the subject types it admits, in source order.
    Relation { allowed: Vec<AllowedSubject> },
    /// `permission NAME = EXPR`.
    Permission { expr: Expr },
}

/// One subject type a relation admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllowedSubject {
    /// `T`: a concrete object of type T.
    Object(TypeId),
    /// `T:*`: the wildcard of type T.
    Wildcard(TypeId),
    /// `T#rel`: the subject set `rel` on an object of type T (`rel` is a relation or
    /// permission of T).
    SubjectSet(TypeId, RelationId),
}

/// A resolved permission expression. Unions and intersections are flattened
/// (`a | b | c` is one `Union` of three), exclusion stays binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `nil`: the empty set.
    Nil,
    /// A relation or permission of the same definition.
    Ref(RelationId),
    /// `tupleset.computed` / `tupleset->computed`: for each subject `x` of relation
    /// `tupleset` on the resource, evaluate `computed` on `x`.
    Arrow(Arrow),
    Union(Vec<Expr>),
    Intersection(Vec<Expr>),
    /// `base - subtracted`.
    Exclusion(Box<Expr>, Box<Expr>),
}

/// A resolved arrow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrow {
    /// The left side: always a relation (never a permission) of the same definition.
    pub tupleset: RelationId,
    /// The right side as written.
    pub computed_name: String,
    /// For each subject type the left side admits that has a relation or permission named
    /// `computed_name`: that type and the relation it reaches. Types without it are absent
    /// (they contribute nothing). Never empty in a compiled schema.
    pub targets: Vec<(TypeId, RelationId)>,
}

impl Schema {
    /// The definition named `name` (full name, with any `ns/` prefix).
    pub fn definition(&self, name: &str) -> Option<&Definition> {
        self.type_by_name
            .get(name)
            .map(|id| &self.definitions[id.0 as usize])
    }

    /// The definition with id `id`.
    pub fn definition_by_id(&self, id: TypeId) -> &Definition {
        &self.definitions[id.0 as usize]
    }

    /// The relation or permission with id `id`.
    pub fn relation_by_id(&self, id: RelationId) -> &RelationDef {
        &self.relations[id.0 as usize]
    }

    /// The relation or permission `relation` of type `type_name`.
    pub fn relation(&self, type_name: &str, relation: &str) -> Option<&RelationDef> {
        let definition = self.definition(type_name)?;
        definition
            .relation_by_name
            .get(relation)
            .map(|id| self.relation_by_id(*id))
    }

    /// The caveat with id `id`.
    pub fn caveat_by_id(&self, id: CaveatId) -> &Arc<CompiledCaveat> {
        &self.caveats[id.0 as usize]
    }

    /// The caveat named `name`.
    pub fn caveat(&self, name: &str) -> Option<&Arc<CompiledCaveat>> {
        self.caveat_by_name
            .get(name)
            .map(|id| self.caveat_by_id(*id))
    }

    /// The subject types relation `id` admits with their `with` clauses; empty for a
    /// permission.
    pub fn subject_types(&self, id: RelationId) -> &[AllowedSubjectType] {
        &self.relation_by_id(id).subject_types
    }

    /// Whether relation `id` admits `subject` carrying `caveat` (or none) and, if
    /// `expiration`, an expiration: exactly one of its subject types must match, as in
    /// SpiceDB (`user` admits no caveat; `user with c` requires `c`).
    pub fn admits(
        &self,
        id: RelationId,
        subject: AllowedSubject,
        caveat: Option<CaveatId>,
        expiration: bool,
    ) -> bool {
        self.subject_types(id).iter().any(|it| {
            it.subject == subject && it.caveat == caveat && (it.expiration || !expiration)
        })
    }

    /// The subject types relation `id` admits; empty for a permission.
    pub fn allowed_subjects(&self, id: RelationId) -> &[AllowedSubject] {
        match &self.relation_by_id(id).kind {
            RelationKind::Relation { allowed } => allowed,
            RelationKind::Permission { .. } => &[],
        }
    }
}

impl Expr {
    /// How deep operators nest: 0 for a name, an arrow or `nil`, else one more than the
    /// deepest operand. Computed without recursion.
    pub fn nesting(&self) -> usize {
        let mut deepest = 0;
        let mut pending = vec![(self, 0usize)];
        while let Some((expr, depth)) = pending.pop() {
            deepest = deepest.max(depth);
            match expr {
                Expr::Nil | Expr::Ref(_) | Expr::Arrow(_) => {}
                Expr::Union(children) | Expr::Intersection(children) => {
                    pending.extend(children.iter().map(|child| (child, depth + 1)));
                }
                Expr::Exclusion(base, subtracted) => {
                    pending.push((base, depth + 1));
                    pending.push((subtracted, depth + 1));
                }
            }
        }
        deepest
    }
}

impl RelationDef {
    /// Whether this is a permission (computed, never stored).
    pub fn is_permission(&self) -> bool {
        matches!(self.kind, RelationKind::Permission { .. })
    }
}
