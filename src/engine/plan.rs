//! Everything the walks need from a schema that does not depend on the request, computed
//! once when the schema is installed: the symbols of its names in the index, the way back
//! from symbols to schema ids, the reverse dependency edges lookups walk backwards, and the
//! declared types a request context is checked against.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::model::Revision;
use crate::schema::{AllowedSubject, Expr, RelationId, RelationKind, Schema, TypeId};

use super::context::ContextTypes;
use super::index::{IndexData, NO_REL, Sym};

/// The installed schema with its request-independent data.
pub(crate) struct LoadedSchema {
    pub schema: Arc<Schema>,
    /// The text as written (what `schema_text` answers).
    pub text: String,
    /// The revision that installed it.
    pub revision: Revision,
    /// Distinguishes schemas in the check cache.
    pub epoch: u64,
    pub plan: Plan,
}

/// Symbols and edges of one schema.
pub(crate) struct Plan {
    /// By [`TypeId`]: the symbol of the type name.
    pub type_sym: Vec<Sym>,
    /// By [`RelationId`]: the symbol of the relation or permission name.
    pub rel_sym: Vec<Sym>,
    type_by_sym: FxHashMap<Sym, TypeId>,
    /// Keyed by `(type id << 32) | relation symbol`.
    rel_by_sym: FxHashMap<u64, RelationId>,
    /// By [`RelationId`] `r`: the permissions of the same type whose expression uses `r`.
    pub computed_edges: Vec<Vec<ComputedEdge>>,
    /// By [`RelationId`] `r` (on some type U): the arrows that reach `r` on U.
    pub arrow_edges: Vec<Vec<ArrowEdge>>,
    /// By [`TypeId`] `T`: the permissions of `T` that use `self`, which an object of `T`
    /// may hold on itself.
    pub self_edges: Vec<Vec<ComputedEdge>>,
    /// Caveat parameter name → declared types: what a request's context must fit.
    pub context_types: ContextTypes,
}

/// "`permission` (same type) may hold where the relation it is filed under holds."
#[derive(Clone, Copy, Debug)]
pub(crate) struct ComputedEdge {
    pub permission: RelationId,
    /// Whether the reference sits under an intersection or exclusion, so a hit is only a
    /// candidate that a check must confirm.
    pub confirm: bool,
}

/// "`permission` on `resource_type` may hold on `x` where the relation it is filed under
/// holds on an object that `x#tupleset` names."
#[derive(Clone, Debug)]
pub(crate) struct ArrowEdge {
    pub resource_type: TypeId,
    pub tupleset: RelationId,
    pub permission: RelationId,
    pub confirm: bool,
}

impl Plan {
    /// Interns every name of `schema` into `index` and computes the edges.
    pub fn build(schema: &Schema, index: &mut IndexData) -> Self {
        let type_sym: Vec<Sym> = schema
            .definitions
            .iter()
            .map(|def| index.intern(&def.name))
            .collect();
        let rel_sym: Vec<Sym> = schema
            .relations
            .iter()
            .map(|rel| index.intern(&rel.name))
            .collect();
        let type_by_sym = type_sym
            .iter()
            .enumerate()
            .map(|(idx, sym)| (*sym, TypeId(idx as u32)))
            .collect();
        let rel_by_sym = schema
            .relations
            .iter()
            .map(|rel| (rel_key(rel.owner, rel_sym[rel.id.0 as usize]), rel.id))
            .collect();
        let n_relations = schema.relations.len();
        let mut plan = Self {
            type_sym,
            rel_sym,
            type_by_sym,
            rel_by_sym,
            computed_edges: vec![Vec::new(); n_relations],
            arrow_edges: vec![Vec::new(); n_relations],
            self_edges: vec![Vec::new(); schema.definitions.len()],
            context_types: ContextTypes::build(schema),
        };
        for rel in &schema.relations {
            if let RelationKind::Permission { expr } = &rel.kind {
                plan.add_edges(rel.owner, rel.id, expr, false);
            }
        }
        plan
    }

    fn add_edges(&mut self, owner: TypeId, permission: RelationId, expr: &Expr, confirm: bool) {
        match expr {
            Expr::Nil => {}
            Expr::Ref(rel) => self.computed_edges[rel.0 as usize].push(ComputedEdge {
                permission,
                confirm,
            }),
            Expr::Arrow(arrow) => {
                for (_, target) in &arrow.targets {
                    self.arrow_edges[target.0 as usize].push(ArrowEdge {
                        resource_type: owner,
                        tupleset: arrow.tupleset,
                        permission,
                        confirm,
                    });
                }
            }
            // Every object must hold the target: a hit on one is only a candidate.
            Expr::ArrowAll(arrow) => {
                self.add_edges(owner, permission, &Expr::Arrow(arrow.clone()), true);
            }
            Expr::SelfRef => self.self_edges[owner.0 as usize].push(ComputedEdge {
                permission,
                confirm,
            }),
            Expr::Union(children) => {
                for child in children {
                    self.add_edges(owner, permission, child, confirm);
                }
            }
            // Any one operand of an intersection must hold, so the first one alone yields
            // every candidate; the check confirms the rest.
            Expr::Intersection(children) => {
                if let Some(first) = children.first() {
                    self.add_edges(owner, permission, first, true);
                }
            }
            Expr::Exclusion(base, _) => self.add_edges(owner, permission, base, true),
        }
    }

    /// The schema type named by `sym`.
    pub fn type_of(&self, sym: Sym) -> Option<TypeId> {
        self.type_by_sym.get(&sym).copied()
    }

    /// The relation or permission of `ty` named by `sym`.
    pub fn rel_of(&self, ty: TypeId, sym: Sym) -> Option<RelationId> {
        if sym == NO_REL {
            return None;
        }
        self.rel_by_sym.get(&rel_key(ty, sym)).copied()
    }

    /// The symbols a subject of `subject_type` may carry as its relation in a tuple of
    /// `relation`: [`NO_REL`] and every `T#rel` the relation admits.
    pub fn subject_rels(
        &self,
        schema: &Schema,
        relation: RelationId,
        subject_type: TypeId,
    ) -> Vec<Sym> {
        let mut rels = vec![NO_REL];
        for allowed in schema.allowed_subjects(relation) {
            if let AllowedSubject::SubjectSet(ty, rel) = allowed
                && *ty == subject_type
            {
                rels.push(self.rel_sym[rel.0 as usize]);
            }
        }
        rels
    }
}

fn rel_key(ty: TypeId, sym: Sym) -> u64 {
    (u64::from(ty.0) << 32) | u64::from(sym)
}
