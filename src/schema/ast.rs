//! The spanned syntax tree of a schema text: what the parser produces and the formatter
//! prints. It keeps names as written (the compiler resolves them to ids) and every node
//! carries the byte span of its source text, so that later stages can point at it.
//!
//! Parentheses leave no node: the tree shape already says how operands group. The
//! formatter puts back the parentheses a reader needs.
//!
//! A chain of one operator (`a | b | c`, `a - b - c`) is one n-ary node, not a left-leaning
//! tree of binary nodes, so the tree is only as deep as the parentheses nest (which the
//! parser bounds): a flat union of 20,000 terms is one node with 20,000 operands, and no
//! walk over the tree, nor its drop, recurses once per term.

/// A byte range `start..end` in the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A whole schema file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaAst {
    /// The definitions, in source order.
    pub definitions: Vec<DefinitionAst>,
    /// The `caveat NAME(…) { … }` items, in source order.
    pub caveats: Vec<CaveatAst>,
    /// The `use FLAG` directives, in source order.
    pub uses: Vec<UseAst>,
    /// Every comment of the file, in source order (doc comments included); the formatter
    /// attaches them back to the nodes around them.
    pub comments: Vec<Comment>,
}

/// A `//`, `/* */` or `/** */` comment, kept verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub span: Span,
    /// The comment with its markers, as written.
    pub text: String,
}

/// A name as written (a type name keeps its `ns/` prefixes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `definition NAME { … }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinitionAst {
    pub name: Ident,
    /// Relations and permissions, in source order.
    pub members: Vec<MemberAst>,
    pub span: Span,
    /// The text of the `/** … */` comment right before the definition, without markers.
    pub doc: Option<String>,
}

/// `use expiration` or `use self`: a language feature the schema opts into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseAst {
    /// The flag as written (`expiration` or `self`; the parser refuses others).
    pub flag: Ident,
    pub span: Span,
}

/// `caveat NAME(PARAM TYPE, …) { CEL-EXPR }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaveatAst {
    pub name: Ident,
    /// The parameters, in source order.
    pub params: Vec<CaveatParamAst>,
    /// The CEL expression between the braces, verbatim (the compiler parses it).
    pub expression: String,
    /// Where `expression` is in the source, so errors can point into it.
    pub expression_span: Span,
    pub span: Span,
    pub doc: Option<String>,
}

/// One `NAME TYPE` parameter of a caveat; the type is kept as written (`list<int>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaveatParamAst {
    pub name: Ident,
    pub type_text: String,
    pub type_span: Span,
}

/// A relation or a permission inside a definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberAst {
    Relation(RelationAst),
    Permission(PermissionAst),
}

/// `relation NAME: T | T#rel | T:*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationAst {
    pub name: Ident,
    /// The subject types, in source order; never empty.
    pub subject_types: Vec<SubjectTypeAst>,
    pub span: Span,
    pub doc: Option<String>,
}

/// One subject type of a relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectTypeAst {
    pub type_name: Ident,
    pub kind: SubjectKindAst,
    /// `with NAME`: tuples of this subject type must carry caveat NAME.
    pub caveat: Option<Ident>,
    /// `with expiration` (or `with NAME and expiration`): tuples may expire.
    pub expiration: bool,
    /// From the type name to the end of the `with` clause, if any.
    pub span: Span,
}

/// Which subjects of a type a relation admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectKindAst {
    /// `T`: objects of type T.
    Object,
    /// `T:*`: the wildcard of type T.
    Wildcard,
    /// `T#rel`: the subject set `rel` of objects of type T.
    SubjectSet(Ident),
}

/// `permission NAME = EXPR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermissionAst {
    pub name: Ident,
    pub expr: ExprAst,
    pub span: Span,
    pub doc: Option<String>,
}

/// A permission expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprAst {
    pub kind: ExprKindAst,
    pub span: Span,
}

/// The forms of a permission expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKindAst {
    /// `nil`: the empty set.
    Nil,
    /// A relation or permission of the same definition.
    Ref(Ident),
    /// `tupleset.computed` (or `tupleset->computed`).
    Arrow { tupleset: Ident, computed: Ident },
    /// `o1 OP o2 OP … OP on`: a chain of one operator, left-associative (for exclusion
    /// `((o1 - o2) - o3) …`), with at least two operands.
    Operation {
        op: BinaryOp,
        operands: Vec<ExprAst>,
    },
}

/// The binary operators, from tightest to loosest binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `|` (or `+`).
    Union,
    /// `&`.
    Intersection,
    /// `-`.
    Exclusion,
}

impl BinaryOp {
    /// The canonical spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Union => "|",
            BinaryOp::Intersection => "&",
            BinaryOp::Exclusion => "-",
        }
    }
}

impl MemberAst {
    pub fn name(&self) -> &Ident {
        match self {
            MemberAst::Relation(relation) => &relation.name,
            MemberAst::Permission(permission) => &permission.name,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            MemberAst::Relation(relation) => relation.span,
            MemberAst::Permission(permission) => permission.span,
        }
    }

    pub fn doc(&self) -> Option<&str> {
        match self {
            MemberAst::Relation(relation) => relation.doc.as_deref(),
            MemberAst::Permission(permission) => permission.doc.as_deref(),
        }
    }
}
