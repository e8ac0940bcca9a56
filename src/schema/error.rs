//! Errors of the schema layer: one [`SchemaError`] per problem, each with the place in the
//! source text it concerns, and [`SchemaErrors`], the non-empty list a parse or compile
//! returns so that every independent problem is reported at once.
//!
//! A [`SchemaError`] renders as `LINE:COL: message`; the CLI and the server prefix the
//! file name or wrap it as they need. Lines and columns are 1-based, columns count
//! characters (not bytes).

use std::fmt;

use super::ast::Span;

/// A place in the schema text: the byte span plus its 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub span: Span,
    pub line: u32,
    pub column: u32,
}

/// One problem in a schema text, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: {kind}", loc.line, loc.column)]
pub struct SchemaError {
    pub loc: Loc,
    pub kind: SchemaErrorKind,
}

/// What is wrong. Messages name the offending thing in backticks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaErrorKind {
    /// The text does not follow the grammar.
    #[error("expected {expected}, found {found}")]
    Syntax {
        expected: &'static str,
        found: String,
    },
    /// A SpiceDB construct arbiter does not implement (yet). The construct is named so
    /// that callers can count them.
    #[error("not supported yet: {0}")]
    Unsupported(&'static str),
    /// A `/*` comment without its `*/`.
    #[error("unterminated comment: expected `*/`")]
    UnterminatedComment,
    /// Parentheses nested deeper than the parser allows.
    #[error("expression nests deeper than {0} levels of parentheses")]
    TooDeep(usize),
    /// A compiled permission expression whose operators nest deeper than the walks allow
    /// ([`MAX_EXPR_NESTING`](super::compiled::MAX_EXPR_NESTING)).
    #[error(
        "expression nests deeper than {0} levels of operators; split it into several permissions"
    )]
    NestsTooDeep(usize),
    /// A schema with no definition at all (empty, or only comments).
    #[error("the schema defines nothing: expected at least one `definition`")]
    Empty,
    #[error(
        "invalid type name `{0}`: expected lowercase letters, digits and `_`, 3 to 64 characters, starting with a letter and not ending with `_`, optionally prefixed by `namespace/`"
    )]
    InvalidTypeName(String),
    #[error(
        "invalid relation name `{0}`: expected lowercase letters, digits and `_`, 3 to 64 characters, starting with a letter and not ending with `_`"
    )]
    InvalidRelationName(String),
    #[error("`{0}` is a reserved word and cannot name a relation or permission")]
    ReservedName(String),
    #[error("duplicate definition `{name}` (first defined at {first})")]
    DuplicateDefinition { name: String, first: LineCol },
    #[error(
        "duplicate relation or permission `{name}` in definition `{definition}` (first defined at {first})"
    )]
    DuplicateRelation {
        definition: String,
        name: String,
        first: LineCol,
    },
    #[error("duplicate subject type `{subject}` in relation `{relation}`")]
    DuplicateSubjectType { relation: String, subject: String },
    #[error("unknown type `{0}`")]
    UnknownType(String),
    /// `T#rel` where `T` has no relation or permission `rel`.
    #[error("unknown relation or permission `{relation}` on type `{type_name}`")]
    UnknownSubjectRelation { type_name: String, relation: String },
    /// A name in a permission expression that its definition does not declare.
    #[error("unknown relation or permission `{name}` in definition `{definition}`")]
    UnknownReference { definition: String, name: String },
    #[error(
        "arrow `{arrow}`: `{tupleset}` is a permission, but the left side of an arrow must be a relation"
    )]
    ArrowFromPermission { arrow: String, tupleset: String },
    #[error(
        "arrow `{arrow}`: relation `{tupleset}` admits the wildcard `{wildcard}`, and an arrow cannot walk a wildcard"
    )]
    ArrowOverWildcard {
        arrow: String,
        tupleset: String,
        wildcard: String,
    },
    #[error(
        "arrow `{arrow}`: none of the subject types of `{tupleset}` ({subject_types}) has a relation or permission `{computed}`"
    )]
    ArrowTargetMissing {
        arrow: String,
        tupleset: String,
        computed: String,
        subject_types: String,
    },
    #[error(
        "invalid caveat name `{0}`: expected letters, digits and `_`, words joined by `/`, at most 128 bytes"
    )]
    InvalidCaveatName(String),
    #[error("duplicate caveat `{name}` (first defined at {first})")]
    DuplicateCaveat { name: String, first: LineCol },
    /// SpiceDB keeps caveats and definitions in one namespace.
    #[error("`{0}` names both a caveat and a definition")]
    CaveatNameTaken(String),
    #[error(
        "invalid parameter name `{0}`: expected letters, digits and `_`, not starting with a digit, and not a CEL reserved word"
    )]
    InvalidParameterName(String),
    #[error("duplicate parameter `{name}` in caveat `{caveat}`")]
    DuplicateParameter { caveat: String, name: String },
    #[error("parameter `{param}` of caveat `{caveat}`: {reason}")]
    InvalidParameterType {
        caveat: String,
        param: String,
        reason: String,
    },
    /// The CEL expression of a caveat does not parse or type-check.
    #[error("caveat `{caveat}`: {message}")]
    CaveatExpression { caveat: String, message: String },
    /// `with NAME` naming no declared caveat.
    #[error("unknown caveat `{0}`")]
    UnknownCaveat(String),
    /// `self` in a schema without `use self`, as SpiceDB requires.
    #[error("`self` needs `use self` at the top of the schema")]
    SelfNotEnabled,
    /// `with expiration` in a schema without `use expiration`, as SpiceDB requires.
    #[error("`with expiration` needs `use expiration` at the top of the schema")]
    ExpirationNotEnabled,
    /// Permissions that include each other without a relation or arrow in between: no
    /// data can ever break the cycle.
    #[error(
        "permission `{name}` in definition `{definition}` references itself without passing through a relation or arrow ({cycle})"
    )]
    PermissionCycle {
        definition: String,
        name: String,
        cycle: String,
    },
}

/// A 1-based line and column, printed `LINE:COL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Every problem found in one schema text, in source order. Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaErrors(Vec<SchemaError>);

impl SchemaErrors {
    /// Wraps a list of errors; `None` if it is empty. Sorts by position.
    pub fn from_vec(mut errors: Vec<SchemaError>) -> Option<Self> {
        if errors.is_empty() {
            return None;
        }
        errors.sort_by_key(|err| (err.loc.span.start, err.loc.span.end));
        Some(Self(errors))
    }

    /// The errors, in source order.
    pub fn errors(&self) -> &[SchemaError] {
        &self.0
    }

    /// One `FILE:LINE:COL: message` line per error, each ending in a newline.
    pub fn render(&self, file: &str) -> String {
        self.0.iter().map(|err| format!("{file}:{err}\n")).collect()
    }
}

impl fmt::Display for SchemaErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, err) in self.0.iter().enumerate() {
            if idx > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SchemaErrors {}

impl IntoIterator for SchemaErrors {
    type Item = SchemaError;
    type IntoIter = std::vec::IntoIter<SchemaError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Turns byte offsets into 1-based lines and character columns.
#[derive(Clone, Debug)]
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(idx, _)| idx + 1));
        Self { text, line_starts }
    }

    /// The line and column of byte offset `offset` (clamped to the text).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line_idx = self.line_starts.partition_point(|start| *start <= offset) - 1;
        let line_start = self.line_starts[line_idx];
        let column = self
            .text
            .get(line_start..offset)
            .map_or(offset - line_start, |prefix| prefix.chars().count());
        LineCol {
            line: u32::try_from(line_idx + 1).unwrap_or(u32::MAX),
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
        }
    }

    /// The full location of `span`.
    pub fn loc(&self, span: Span) -> Loc {
        let LineCol { line, column } = self.line_col(span.start);
        Loc { span, line, column }
    }

    /// An error at `span`.
    pub fn error(&self, span: Span, kind: SchemaErrorKind) -> SchemaError {
        SchemaError {
            loc: self.loc(span),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_from_one_in_characters() {
        let index = LineIndex::new("ab\néé x\n");
        assert_eq!(index.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(index.line_col(3), LineCol { line: 2, column: 1 });
        // `x` is after two two-byte characters and a space.
        assert_eq!(index.line_col(8), LineCol { line: 2, column: 4 });
        assert_eq!(index.line_col(100), LineCol { line: 3, column: 1 });
    }

    #[test]
    fn errors_render_with_file_line_and_column() {
        let index = LineIndex::new("definition x {}\n");
        let err = index.error(
            Span { start: 11, end: 12 },
            SchemaErrorKind::InvalidTypeName("x".into()),
        );
        let errors = SchemaErrors::from_vec(vec![err]).unwrap();
        assert!(
            errors
                .render("a.zed")
                .starts_with("a.zed:1:12: invalid type name `x`")
        );
        assert!(SchemaErrors::from_vec(vec![]).is_none());
    }
}
