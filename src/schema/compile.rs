//! The compiler: spanned [`SchemaAst`] → id-indexed [`Schema`], with every check of
//! DESIGN §2.
//!
//! It runs in passes so that independent errors are all reported: declare the types,
//! declare each definition's relations and permissions, resolve the subject types of the
//! relations, resolve the permission expressions (flattening unions and intersections and
//! resolving each arrow per subject type), then look for permissions that include
//! themselves without a relation or arrow in between (petgraph's strongly connected
//! components over the "names directly" graph). A name that failed to resolve does not
//! cause follow-up errors about the same thing.

use std::collections::HashMap;
use std::sync::Arc;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::ast::{
    ArrowFunction, BinaryOp, CaveatAst, DefinitionAst, ExprAst, ExprKindAst, Ident, MemberAst,
    SchemaAst, Span, SubjectKindAst,
};
use super::compiled::{
    AllowedSubject, AllowedSubjectType, Arrow, CaveatId, Definition, Expr, MAX_EXPR_NESTING,
    RelationDef, RelationId, RelationKind, Schema, TypeId,
};
use super::error::{LineCol, LineIndex, SchemaError, SchemaErrorKind, SchemaErrors};
use super::format::format_ast;
use crate::caveat::{CaveatParam, CompiledCaveat, ParamType};
use crate::model::{is_valid_caveat_name, is_valid_relation_name, is_valid_type_name};

/// Words CEL reserves: they cannot name a caveat parameter.
const CEL_RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// How many names of a permission cycle (or subject types of a relation) a message lists.
const CYCLE_NAMES_SHOWN: usize = 8;

/// Words that cannot name a relation or permission: an expression could not refer to them.
const RESERVED: &[&str] = &["nil", "self"];

/// Compiles a parsed schema; `text` is the source it was parsed from (for positions and
/// for [`Schema::source`]).
pub fn compile(ast: &SchemaAst, text: &str) -> Result<Schema, SchemaErrors> {
    let mut compiler = Compiler {
        index: LineIndex::new(text),
        errors: Vec::new(),
        definitions: Vec::new(),
        relations: Vec::new(),
        members: Vec::new(),
        broken: Vec::new(),
        type_by_name: HashMap::new(),
        caveats: Vec::new(),
        caveat_by_name: HashMap::new(),
        use_expiration: ast.uses.iter().any(|it| it.flag.name == "expiration"),
        use_self: ast.uses.iter().any(|it| it.flag.name == "self"),
        broken_caveats: Vec::new(),
    };
    if ast.definitions.is_empty() {
        // Storing a schema that defines nothing would make every relationship a misfit and
        // every check an unknown type: refuse it outright.
        compiler.error(Span::default(), SchemaErrorKind::Empty);
    }
    let declared = compiler.declare_types(&ast.definitions);
    compiler.compile_caveats(&ast.caveats, text);
    for (definition, type_id) in &declared {
        compiler.declare_relations(definition, *type_id);
    }
    for relation_idx in 0..compiler.relations.len() {
        compiler.resolve_subject_types(relation_idx);
    }
    for relation_idx in 0..compiler.relations.len() {
        compiler.resolve_permission(relation_idx);
    }
    compiler.check_cycles();
    if let Some(errors) = SchemaErrors::from_vec(compiler.errors) {
        return Err(errors);
    }
    Ok(Schema {
        definitions: compiler.definitions,
        relations: compiler.relations,
        type_by_name: compiler.type_by_name,
        source: format_ast(ast, text),
        caveats: compiler.caveats,
        caveat_by_name: compiler.caveat_by_name,
        use_expiration: compiler.use_expiration,
        use_self: compiler.use_self,
    })
}

struct Compiler<'a> {
    index: LineIndex<'a>,
    errors: Vec<SchemaError>,
    definitions: Vec<Definition>,
    /// Filled pass by pass; a permission's expression is `Nil` until resolved.
    relations: Vec<RelationDef>,
    /// The syntax of each relation or permission, indexed like `relations`.
    members: Vec<&'a MemberAst>,
    /// Relations whose subject types did not all resolve: arrows over them are not checked
    /// further, so that one mistake gives one error.
    broken: Vec<bool>,
    type_by_name: HashMap<String, TypeId>,
    caveats: Vec<Arc<CompiledCaveat>>,
    /// Caveat ids by name, and where each was declared (for duplicate errors).
    caveat_by_name: HashMap<String, CaveatId>,
    use_expiration: bool,
    /// `use self` was given: expressions may name `self`.
    use_self: bool,
    /// Caveats declared but not compiled (an error was reported): `with` naming them
    /// reports nothing more.
    broken_caveats: Vec<String>,
}

impl<'a> Compiler<'a> {
    fn error(&mut self, span: Span, kind: SchemaErrorKind) {
        let err = self.index.error(span, kind);
        self.errors.push(err);
    }

    fn line_col(&self, span: Span) -> LineCol {
        self.index.line_col(span.start)
    }

    /// Pass 1: gives each definition a [`TypeId`]; duplicates are reported and skipped.
    fn declare_types(
        &mut self,
        definitions: &'a [DefinitionAst],
    ) -> Vec<(&'a DefinitionAst, TypeId)> {
        let mut declared: Vec<(&'a DefinitionAst, TypeId)> = Vec::new();
        for definition in definitions {
            let name = &definition.name;
            if !is_valid_type_name(&name.name) {
                self.error(
                    name.span,
                    SchemaErrorKind::InvalidTypeName(name.name.clone()),
                );
            }
            if let Some(first) = self.type_by_name.get(&name.name) {
                let first_span = declared[first.0 as usize].0.name.span;
                let kind = SchemaErrorKind::DuplicateDefinition {
                    name: name.name.clone(),
                    first: self.line_col(first_span),
                };
                self.error(name.span, kind);
                continue;
            }
            let id = TypeId(index_u32(self.definitions.len()));
            self.type_by_name.insert(name.name.clone(), id);
            self.definitions.push(Definition {
                id,
                name: name.name.clone(),
                relations: Vec::new(),
                relation_by_name: HashMap::new(),
                doc: definition.doc.clone(),
            });
            declared.push((definition, id));
        }
        declared
    }

    /// Pass 2: gives each relation and permission a [`RelationId`].
    fn declare_relations(&mut self, definition: &'a DefinitionAst, owner: TypeId) {
        for member in &definition.members {
            let name = member.name();
            if RESERVED.contains(&name.name.as_str()) {
                self.error(name.span, SchemaErrorKind::ReservedName(name.name.clone()));
            } else if !is_valid_relation_name(&name.name) {
                self.error(
                    name.span,
                    SchemaErrorKind::InvalidRelationName(name.name.clone()),
                );
            }
            let owner_def = &self.definitions[owner.0 as usize];
            if let Some(first) = owner_def.relation_by_name.get(&name.name) {
                let kind = SchemaErrorKind::DuplicateRelation {
                    definition: owner_def.name.clone(),
                    name: name.name.clone(),
                    first: self.line_col(self.members[first.0 as usize].name().span),
                };
                self.error(name.span, kind);
                continue;
            }
            let id = RelationId(index_u32(self.relations.len()));
            let kind = match member {
                MemberAst::Relation(_) => RelationKind::Relation {
                    allowed: Vec::new(),
                },
                MemberAst::Permission(_) => RelationKind::Permission { expr: Expr::Nil },
            };
            self.relations.push(RelationDef {
                id,
                owner,
                name: name.name.clone(),
                kind,
                doc: member.doc().map(str::to_string),
                subject_types: Vec::new(),
            });
            self.members.push(member);
            self.broken.push(false);
            let owner_def = &mut self.definitions[owner.0 as usize];
            owner_def.relations.push(id);
            owner_def.relation_by_name.insert(name.name.clone(), id);
        }
    }

    /// Pass 3: resolves the subject types of relation `relation_idx`.
    fn resolve_subject_types(&mut self, relation_idx: usize) {
        let MemberAst::Relation(relation) = self.members[relation_idx] else {
            return;
        };
        let mut allowed = Vec::new();
        let mut subject_types: Vec<AllowedSubjectType> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for subject_type in &relation.subject_types {
            let type_name = &subject_type.type_name;
            let Some(type_id) = self.type_by_name.get(&type_name.name).copied() else {
                self.broken[relation_idx] = true;
                self.error(
                    type_name.span,
                    SchemaErrorKind::UnknownType(type_name.name.clone()),
                );
                continue;
            };
            let subject = match &subject_type.kind {
                SubjectKindAst::Object => AllowedSubject::Object(type_id),
                SubjectKindAst::Wildcard => AllowedSubject::Wildcard(type_id),
                SubjectKindAst::SubjectSet(rel) => {
                    let definition = &self.definitions[type_id.0 as usize];
                    let Some(rel_id) = definition.relation_by_name.get(&rel.name).copied() else {
                        self.broken[relation_idx] = true;
                        let kind = SchemaErrorKind::UnknownSubjectRelation {
                            type_name: type_name.name.clone(),
                            relation: rel.name.clone(),
                        };
                        self.error(rel.span, kind);
                        continue;
                    };
                    AllowedSubject::SubjectSet(type_id, rel_id)
                }
            };
            let caveat = match &subject_type.caveat {
                None => None,
                Some(name) => match self.caveat_by_name.get(&name.name) {
                    Some(id) => Some(*id),
                    None => {
                        if !self.broken_caveats.contains(&name.name) {
                            let kind = SchemaErrorKind::UnknownCaveat(name.name.clone());
                            self.error(name.span, kind);
                        }
                        continue;
                    }
                },
            };
            if subject_type.expiration && !self.use_expiration {
                self.error(subject_type.span, SchemaErrorKind::ExpirationNotEnabled);
            }
            let entry = AllowedSubjectType {
                subject,
                caveat,
                expiration: subject_type.expiration,
            };
            if !seen.insert(entry) {
                let kind = SchemaErrorKind::DuplicateSubjectType {
                    relation: relation.name.name.clone(),
                    subject: self.subject_type_text(entry),
                };
                self.error(subject_type.span, kind);
                continue;
            }
            subject_types.push(entry);
            if !allowed.contains(&subject) {
                allowed.push(subject);
            }
        }
        self.relations[relation_idx].kind = RelationKind::Relation { allowed };
        self.relations[relation_idx].subject_types = subject_types;
    }

    /// Pass 4: resolves the expression of permission `relation_idx`.
    fn resolve_permission(&mut self, relation_idx: usize) {
        let MemberAst::Permission(permission) = self.members[relation_idx] else {
            return;
        };
        let owner = self.relations[relation_idx].owner;
        let expr = self.resolve_expr(owner, &permission.expr);
        if expr.nesting() > MAX_EXPR_NESTING {
            self.error(
                permission.expr.span,
                SchemaErrorKind::NestsTooDeep(MAX_EXPR_NESTING),
            );
        }
        self.relations[relation_idx].kind = RelationKind::Permission { expr };
    }

    fn resolve_expr(&mut self, owner: TypeId, expr: &ExprAst) -> Expr {
        match &expr.kind {
            ExprKindAst::Nil => Expr::Nil,
            ExprKindAst::Ref(name) => match self.lookup(owner, name) {
                Some(id) => Expr::Ref(id),
                None => Expr::Nil,
            },
            ExprKindAst::Arrow { tupleset, computed } => {
                self.resolve_arrow(owner, tupleset, computed, ArrowFunction::Any)
            }
            ExprKindAst::ArrowFunction {
                tupleset,
                function,
                computed,
            } => self.resolve_arrow(owner, tupleset, computed, *function),
            ExprKindAst::SelfRef => {
                if !self.use_self {
                    self.error(expr.span, SchemaErrorKind::SelfNotEnabled);
                }
                Expr::SelfRef
            }
            ExprKindAst::Operation {
                op: BinaryOp::Exclusion,
                operands,
            } => {
                let mut resolved = operands.iter().map(|it| self.resolve_expr(owner, it));
                let base = resolved.next().unwrap_or(Expr::Nil);
                let subtracted: Vec<Expr> = resolved.collect();
                exclusion(base, subtracted)
            }
            ExprKindAst::Operation { op, operands } => {
                let mut flat = Vec::with_capacity(operands.len());
                for operand in operands {
                    let resolved = self.resolve_expr(owner, operand);
                    match (op, resolved) {
                        (BinaryOp::Union, Expr::Union(children))
                        | (BinaryOp::Intersection, Expr::Intersection(children)) => {
                            flat.extend(children);
                        }
                        (_, other) => flat.push(other),
                    }
                }
                match op {
                    BinaryOp::Union => Expr::Union(flat),
                    _ => Expr::Intersection(flat),
                }
            }
        }
    }

    /// The relation or permission `name` of definition `owner`, or an error.
    fn lookup(&mut self, owner: TypeId, name: &Ident) -> Option<RelationId> {
        let definition = &self.definitions[owner.0 as usize];
        let found = definition.relation_by_name.get(&name.name).copied();
        if found.is_none() {
            let kind = SchemaErrorKind::UnknownReference {
                definition: definition.name.clone(),
                name: name.name.clone(),
            };
            self.error(name.span, kind);
        }
        found
    }

    /// `tupleset.computed`, `tupleset.any(computed)` (the same) or `tupleset.all(computed)`.
    fn resolve_arrow(
        &mut self,
        owner: TypeId,
        tupleset: &Ident,
        computed: &Ident,
        function: ArrowFunction,
    ) -> Expr {
        let Some(tupleset_id) = self.lookup(owner, tupleset) else {
            return Expr::Nil;
        };
        let arrow_text = match function {
            ArrowFunction::Any => format!("{}.{}", tupleset.name, computed.name),
            ArrowFunction::All => format!("{}.all({})", tupleset.name, computed.name),
        };
        let tupleset_def = &self.relations[tupleset_id.0 as usize];
        let RelationKind::Relation { allowed } = &tupleset_def.kind else {
            let kind = SchemaErrorKind::ArrowFromPermission {
                arrow: arrow_text,
                tupleset: tupleset.name.clone(),
            };
            self.error(tupleset.span, kind);
            return Expr::Nil;
        };
        let allowed = allowed.clone();
        let mut targets: Vec<(TypeId, RelationId)> = Vec::new();
        let mut seen_types = std::collections::HashSet::new();
        for subject in &allowed {
            let type_id = match subject {
                AllowedSubject::Object(type_id) | AllowedSubject::SubjectSet(type_id, _) => {
                    *type_id
                }
                AllowedSubject::Wildcard(_) => {
                    let kind = SchemaErrorKind::ArrowOverWildcard {
                        arrow: arrow_text.clone(),
                        tupleset: tupleset.name.clone(),
                        wildcard: self.subject_text(*subject),
                    };
                    self.error(tupleset.span, kind);
                    return Expr::Nil;
                }
            };
            if !seen_types.insert(type_id) {
                continue;
            }
            let definition = &self.definitions[type_id.0 as usize];
            if let Some(target) = definition.relation_by_name.get(&computed.name) {
                targets.push((type_id, *target));
            }
        }
        if targets.is_empty() {
            if !self.broken[tupleset_id.0 as usize] {
                let mut names: Vec<String> = allowed
                    .iter()
                    .take(CYCLE_NAMES_SHOWN)
                    .map(|subject| format!("`{}`", self.subject_text(*subject)))
                    .collect();
                if allowed.len() > CYCLE_NAMES_SHOWN {
                    names.push(format!("… ({} in all)", allowed.len()));
                }
                let subject_types = names.join(", ");
                let kind = SchemaErrorKind::ArrowTargetMissing {
                    arrow: arrow_text,
                    tupleset: tupleset.name.clone(),
                    computed: computed.name.clone(),
                    subject_types,
                };
                self.error(computed.span, kind);
            }
            return Expr::Nil;
        }
        let arrow = Arrow {
            tupleset: tupleset_id,
            computed_name: computed.name.clone(),
            targets,
        };
        match function {
            ArrowFunction::Any => Expr::Arrow(arrow),
            ArrowFunction::All => Expr::ArrowAll(arrow),
        }
    }

    /// Pass 5: permissions that name each other in a cycle with no relation or arrow in
    /// between. One error per cycle, at its first permission in source order.
    fn check_cycles(&mut self) {
        let mut graph: DiGraph<RelationId, ()> = DiGraph::with_capacity(self.relations.len(), 0);
        for relation in &self.relations {
            graph.add_node(relation.id);
        }
        for relation in &self.relations {
            if let RelationKind::Permission { expr } = &relation.kind {
                let mut names = Vec::new();
                direct_refs(expr, &mut names);
                // Deduplicated here: petgraph's `update_edge` scans the node's edges, which
                // is quadratic in a union of 20,000 names.
                names.sort_unstable();
                names.dedup();
                for target in names {
                    graph.add_edge(node(relation.id), node(target), ());
                }
            }
        }
        for component in tarjan_scc(&graph) {
            let Some(first) = component.iter().min().copied() else {
                continue;
            };
            let is_cycle = component.len() > 1 || graph.contains_edge(first, first);
            if !is_cycle {
                continue;
            }
            let path = shortest_cycle(&graph, first, &component);
            // A cycle through thousands of permissions is named by its start and length.
            let mut names: Vec<String> = path
                .iter()
                .take(CYCLE_NAMES_SHOWN)
                .map(|idx| format!("`{}`", self.relations[idx.index()].name))
                .collect();
            if path.len() > CYCLE_NAMES_SHOWN {
                names.push(format!("… ({} permissions in all)", path.len() - 1));
            }
            let cycle = names.join(" -> ");
            let relation = &self.relations[first.index()];
            let kind = SchemaErrorKind::PermissionCycle {
                definition: self.definitions[relation.owner.0 as usize].name.clone(),
                name: relation.name.clone(),
                cycle,
            };
            let span = self.members[first.index()].name().span;
            self.error(span, kind);
        }
    }

    /// `T`, `T:*` or `T#rel`, for messages.
    /// Compiles every caveat: names, parameters, and the CEL expression (parsed and
    /// type-checked once, here). Errors point into the expression where they can.
    fn compile_caveats(&mut self, caveats: &[CaveatAst], text: &str) {
        // Every declared name (compiled or not), for duplicate errors.
        let mut declared: HashMap<&str, Span> = HashMap::new();
        for caveat in caveats {
            let name = &caveat.name;
            if !is_valid_caveat_name(&name.name) {
                self.error(
                    name.span,
                    SchemaErrorKind::InvalidCaveatName(name.name.clone()),
                );
            }
            if let Some(first) = declared.get(name.name.as_str()) {
                let kind = SchemaErrorKind::DuplicateCaveat {
                    name: name.name.clone(),
                    first: self.line_col(*first),
                };
                self.error(name.span, kind);
                continue;
            }
            declared.insert(&name.name, name.span);
            if self.type_by_name.contains_key(&name.name) {
                self.error(
                    name.span,
                    SchemaErrorKind::CaveatNameTaken(name.name.clone()),
                );
                continue;
            }
            let Some(params) = self.caveat_params(caveat) else {
                self.broken_caveats.push(name.name.clone());
                continue;
            };
            match CompiledCaveat::compile(&name.name, params, &caveat.expression) {
                Ok(compiled) => {
                    let id = CaveatId(index_u32(self.caveats.len()));
                    self.caveats.push(Arc::new(compiled));
                    self.caveat_by_name.insert(name.name.clone(), id);
                }
                Err(errors) => {
                    self.broken_caveats.push(name.name.clone());
                    for err in errors {
                        let start = (caveat.expression_span.start + err.offset)
                            .min(caveat.expression_span.end);
                        let start = skip_whitespace(text, start, caveat.expression_span.end);
                        let kind = SchemaErrorKind::CaveatExpression {
                            caveat: name.name.clone(),
                            message: err.message,
                        };
                        self.error(Span { start, end: start }, kind);
                    }
                }
            }
        }
    }

    /// The parameters of `caveat`, or `None` after reporting what is wrong with them.
    fn caveat_params(&mut self, caveat: &CaveatAst) -> Option<Vec<CaveatParam>> {
        let mut params: Vec<CaveatParam> = Vec::new();
        let mut ok = true;
        for param in &caveat.params {
            let name = &param.name;
            let valid = name
                .name
                .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && !CEL_RESERVED.contains(&name.name.as_str());
            if !valid {
                self.error(
                    name.span,
                    SchemaErrorKind::InvalidParameterName(name.name.clone()),
                );
                ok = false;
            }
            if params.iter().any(|it| it.name == name.name) {
                let kind = SchemaErrorKind::DuplicateParameter {
                    caveat: caveat.name.name.clone(),
                    name: name.name.clone(),
                };
                self.error(name.span, kind);
                ok = false;
                continue;
            }
            match ParamType::parse(&param.type_text) {
                Ok(ty) => params.push(CaveatParam {
                    name: name.name.clone(),
                    ty,
                }),
                Err(reason) => {
                    let kind = SchemaErrorKind::InvalidParameterType {
                        caveat: caveat.name.name.clone(),
                        param: name.name.clone(),
                        reason,
                    };
                    self.error(param.type_span, kind);
                    ok = false;
                }
            }
        }
        ok.then_some(params)
    }

    fn subject_type_text(&self, entry: AllowedSubjectType) -> String {
        let mut text = self.subject_text(entry.subject);
        if let Some(caveat) = entry.caveat {
            text.push_str(" with ");
            text.push_str(self.caveats[caveat.0 as usize].name());
            if entry.expiration {
                text.push_str(" and expiration");
            }
        } else if entry.expiration {
            text.push_str(" with expiration");
        }
        text
    }

    fn subject_text(&self, subject: AllowedSubject) -> String {
        let type_name = |id: TypeId| self.definitions[id.0 as usize].name.as_str();
        match subject {
            AllowedSubject::Object(id) => type_name(id).to_string(),
            AllowedSubject::Wildcard(id) => format!("{}:*", type_name(id)),
            AllowedSubject::SubjectSet(id, rel) => {
                format!("{}#{}", type_name(id), self.relations[rel.0 as usize].name)
            }
        }
    }
}

/// The first offset from `start` (before `end`) that is not whitespace.
fn skip_whitespace(text: &str, start: usize, end: usize) -> usize {
    let slice = text.get(start..end).unwrap_or("");
    start + (slice.len() - slice.trim_start().len())
}

/// `base - s1 - s2 - …` as one exclusion of the union of what is subtracted: `base - (s1 |
/// s2 | …)` means the same (also three-valued: Kleene logic keeps De Morgan's laws), and
/// a chain of 5,000 exclusions stays two levels deep instead of 5,000. A base that is an
/// exclusion itself (`(a - b) - c`) joins the chain.
fn exclusion(base: Expr, subtracted: Vec<Expr>) -> Expr {
    let (base, mut all) = match base {
        Expr::Exclusion(inner_base, inner_subtracted) => {
            (*inner_base, union_operands(*inner_subtracted))
        }
        other => (other, Vec::new()),
    };
    for it in subtracted {
        all.extend(union_operands(it));
    }
    let subtracted = if all.len() == 1 {
        all.pop().unwrap_or(Expr::Nil)
    } else {
        Expr::Union(all)
    };
    Expr::Exclusion(Box::new(base), Box::new(subtracted))
}

/// The operands of a union, or the expression alone.
fn union_operands(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::Union(children) => children,
        other => vec![other],
    }
}

/// Names an expression includes directly (not through an arrow).
fn direct_refs(expr: &Expr, out: &mut Vec<RelationId>) {
    match expr {
        Expr::Nil | Expr::Arrow(_) | Expr::ArrowAll(_) | Expr::SelfRef => {}
        Expr::Ref(id) => out.push(*id),
        Expr::Union(children) | Expr::Intersection(children) => {
            for child in children {
                direct_refs(child, out);
            }
        }
        Expr::Exclusion(base, subtracted) => {
            direct_refs(base, out);
            direct_refs(subtracted, out);
        }
    }
}

fn node(id: RelationId) -> NodeIndex {
    NodeIndex::new(id.0 as usize)
}

/// The shortest path `start → … → start` inside `component` (breadth first), as nodes
/// with `start` at both ends.
fn shortest_cycle(
    graph: &DiGraph<RelationId, ()>,
    start: NodeIndex,
    component: &[NodeIndex],
) -> Vec<NodeIndex> {
    let component: std::collections::HashSet<NodeIndex> = component.iter().copied().collect();
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(current) = queue.pop_front() {
        for next in graph.neighbors(current) {
            if next == start {
                let mut path = vec![start, current];
                let mut walk = current;
                while let Some(prev) = parent.get(&walk) {
                    path.push(*prev);
                    walk = *prev;
                }
                path.reverse();
                return path;
            }
            if component.contains(&next) && !parent.contains_key(&next) {
                parent.insert(next, current);
                queue.push_back(next);
            }
        }
    }
    vec![start]
}

fn index_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use crate::schema::{AllowedSubject, Expr, RelationKind, parse_and_compile};

    fn errors(text: &str) -> Vec<String> {
        match parse_and_compile(text) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.errors().iter().map(ToString::to_string).collect(),
        }
    }

    fn one_error(text: &str) -> String {
        let found = errors(text);
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].clone()
    }

    #[test]
    fn compiles_ids_subjects_and_flattened_expressions() {
        let schema = parse_and_compile(
            "definition user {}
             definition group { relation member: user | group#member }
             definition org/doc {
                 relation parent: org/doc
                 relation viewer: user | user:* | group#member
                 relation banned: user
                 permission view = viewer + parent->view + (viewer + nil) - banned
                 permission both = viewer & banned & parent.view
             }",
        )
        .unwrap();
        assert_eq!(schema.definitions.len(), 3);
        let doc = schema.definition("org/doc").unwrap();
        assert_eq!(doc.relations.len(), 5);
        let viewer = schema.relation("org/doc", "viewer").unwrap();
        let user = schema.type_by_name["user"];
        let group = schema.type_by_name["group"];
        let member = schema.relation("group", "member").unwrap().id;
        assert_eq!(
            schema.allowed_subjects(viewer.id),
            &[
                AllowedSubject::Object(user),
                AllowedSubject::Wildcard(user),
                AllowedSubject::SubjectSet(group, member)
            ]
        );
        let view = schema.relation("org/doc", "view").unwrap();
        let RelationKind::Permission { expr } = &view.kind else {
            panic!("view is a permission");
        };
        let Expr::Exclusion(base, subtracted) = expr else {
            panic!("exclusion binds loosest: {expr:?}");
        };
        let Expr::Union(operands) = base.as_ref() else {
            panic!("union: {base:?}");
        };
        assert_eq!(operands.len(), 4, "unions are flattened: {operands:?}");
        assert_eq!(operands[0], Expr::Ref(viewer.id));
        let Expr::Arrow(arrow) = &operands[1] else {
            panic!("arrow: {:?}", operands[1]);
        };
        assert_eq!(arrow.targets, vec![(doc.id, view.id)]);
        assert_eq!(operands[3], Expr::Nil);
        assert_eq!(
            **subtracted,
            Expr::Ref(schema.relation("org/doc", "banned").unwrap().id)
        );
        let both = schema.relation("org/doc", "both").unwrap();
        assert!(
            matches!(&both.kind, RelationKind::Permission { expr: Expr::Intersection(it) } if it.len() == 3)
        );
    }

    #[test]
    fn arrow_targets_only_types_that_have_the_name() {
        let schema = parse_and_compile(
            "definition user {}
             definition org { permission admin = nil }
             definition team { relation admin: user }
             definition doc {
                 relation owner: user | org | team
                 permission manage = owner.admin
             }",
        )
        .unwrap();
        let manage = schema.relation("doc", "manage").unwrap();
        let RelationKind::Permission {
            expr: Expr::Arrow(arrow),
        } = &manage.kind
        else {
            panic!("arrow expected");
        };
        let targets: Vec<&str> = arrow
            .targets
            .iter()
            .map(|(ty, _)| schema.definition_by_id(*ty).name.as_str())
            .collect();
        assert_eq!(targets, ["org", "team"]);
    }

    #[test]
    fn docs_reach_the_compiled_schema() {
        let schema = parse_and_compile(
            "/** People. */\ndefinition user {\n /** Friends. */\n relation friend: user\n}",
        )
        .unwrap();
        assert_eq!(
            schema.definition("user").unwrap().doc.as_deref(),
            Some("People.")
        );
        assert_eq!(
            schema.relation("user", "friend").unwrap().doc.as_deref(),
            Some("Friends.")
        );
        assert_eq!(
            schema.source,
            "/** People. */\ndefinition user {\n    /** Friends. */\n    relation friend: user\n}\n"
        );
    }

    #[test]
    fn invalid_names() {
        assert_eq!(
            one_error("definition User {}"),
            "1:12: invalid type name `User`: expected lowercase letters, digits and `_`, 3 to 64 characters, starting with a letter and not ending with `_`, optionally prefixed by `namespace/`"
        );
        assert!(
            one_error("definition user { relation ab: user }")
                .starts_with("1:28: invalid relation name `ab`")
        );
        assert_eq!(
            one_error("definition user { relation nil: user }"),
            "1:28: `nil` is a reserved word and cannot name a relation or permission"
        );
    }

    #[test]
    fn duplicate_definition() {
        assert_eq!(
            one_error("definition user {}\ndefinition user {}"),
            "2:12: duplicate definition `user` (first defined at 1:12)"
        );
    }

    #[test]
    fn duplicate_relation_or_permission() {
        assert_eq!(
            one_error("definition user {\n relation abc: user\n permission abc = nil\n}"),
            "3:13: duplicate relation or permission `abc` in definition `user` (first defined at 2:11)"
        );
    }

    #[test]
    fn duplicate_subject_type() {
        assert_eq!(
            one_error("definition user { relation abc: user | user }"),
            "1:40: duplicate subject type `user` in relation `abc`"
        );
    }

    #[test]
    fn unknown_type() {
        assert_eq!(
            one_error("definition doc { relation abc: usr }"),
            "1:32: unknown type `usr`"
        );
    }

    #[test]
    fn unknown_subject_relation() {
        assert_eq!(
            one_error("definition group {}\ndefinition doc { relation abc: group#member }"),
            "2:38: unknown relation or permission `member` on type `group`"
        );
    }

    #[test]
    fn unknown_reference() {
        assert_eq!(
            one_error("definition doc { permission view = viewer }"),
            "1:36: unknown relation or permission `viewer` in definition `doc`"
        );
        assert_eq!(
            one_error("definition doc { permission view = parent.view }"),
            "1:36: unknown relation or permission `parent` in definition `doc`"
        );
    }

    #[test]
    fn arrow_from_permission() {
        assert_eq!(
            one_error(
                "definition doc {\n relation owner: doc\n permission upp = owner\n permission view = upp.view | owner\n}"
            ),
            "4:20: arrow `upp.view`: `upp` is a permission, but the left side of an arrow must be a relation"
        );
    }

    #[test]
    fn arrow_over_wildcard() {
        assert_eq!(
            one_error(
                "definition user { relation abc: user }\ndefinition doc {\n relation owner: user | user:*\n permission view = owner.abc\n}"
            ),
            "4:20: arrow `owner.abc`: relation `owner` admits the wildcard `user:*`, and an arrow cannot walk a wildcard"
        );
    }

    #[test]
    fn arrow_target_missing() {
        assert_eq!(
            one_error(
                "definition user {}\ndefinition group { relation member: user }\ndefinition doc {\n relation owner: user | group#member\n permission view = owner.view\n}"
            ),
            "5:26: arrow `owner.view`: none of the subject types of `owner` (`user`, `group#member`) has a relation or permission `view`"
        );
    }

    #[test]
    fn unknown_subject_type_does_not_cascade_into_arrow_errors() {
        assert_eq!(
            errors("definition doc {\n relation owner: usr\n permission view = owner.view\n}"),
            ["2:18: unknown type `usr`"]
        );
    }

    #[test]
    fn permission_cycles_without_a_relation() {
        assert_eq!(
            one_error(
                "definition doc {\n relation abc: doc\n permission aaa = bbb | abc\n permission bbb = abc - aaa\n}"
            ),
            "3:13: permission `aaa` in definition `doc` references itself without passing through a relation or arrow (`aaa` -> `bbb` -> `aaa`)"
        );
        assert_eq!(
            one_error("definition doc { permission aaa = aaa }"),
            "1:29: permission `aaa` in definition `doc` references itself without passing through a relation or arrow (`aaa` -> `aaa`)"
        );
    }

    #[test]
    fn a_long_permission_cycle_is_named_briefly() {
        let mut text = String::from("definition doc {\n");
        for idx in 0..1000 {
            text.push_str(&format!(
                " permission p{idx:04} = p{:04}\n",
                (idx + 1) % 1000
            ));
        }
        text.push('}');
        assert_eq!(
            one_error(&text),
            "2:13: permission `p0000` in definition `doc` references itself without passing through a relation or arrow (`p0000` -> `p0001` -> `p0002` -> `p0003` -> `p0004` -> `p0005` -> `p0006` -> `p0007` -> … (1000 permissions in all))"
        );
    }

    #[test]
    fn recursion_through_arrows_and_subject_sets_is_fine() {
        let schema = "definition user {}
            definition group { relation member: user | group#member  permission all = member | parent.all  relation parent: group }";
        assert_eq!(errors(schema), Vec::<String>::new());
    }

    #[test]
    fn independent_errors_are_reported_together() {
        let found = errors(
            "definition user {}\ndefinition user {}\ndefinition doc {\n relation abc: usr\n permission view = nope\n}",
        );
        assert_eq!(found.len(), 3, "{found:?}");
    }
}
