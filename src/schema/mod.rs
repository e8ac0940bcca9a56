//! The schema language (DESIGN §2): parse text into a spanned AST, compile it into the
//! id-indexed [`Schema`] the engine walks, and print it back canonically.
//!
//! Stages, one file each: [`parser`] (text → [`ast`]), [`compile`] (ast → [`compiled`]),
//! [`format`](mod@format) (ast → canonical text). Errors of every stage are
//! [`SchemaError`]s with line and column, gathered in [`SchemaErrors`].
//!
//! ```
//! let schema = arbiter::schema::parse_and_compile(
//!     "definition user {}
//!      definition doc { relation viewer: user  permission view = viewer }",
//! )
//! .unwrap();
//! let view = schema.relation("doc", "view").unwrap();
//! assert!(view.is_permission());
//! ```

pub mod admit;
pub mod ast;
pub mod comments;
pub mod compile;
pub mod compiled;
pub mod error;
pub mod format;
pub mod parser;

pub use compile::compile;
pub use compiled::{
    AllowedSubject, AllowedSubjectType, Arrow, CaveatId, Definition, Expr, MAX_EXPR_NESTING,
    RelationDef, RelationId, RelationKind, Schema, TypeId,
};
pub use error::{SchemaError, SchemaErrorKind, SchemaErrors};
pub use parser::parse;

/// Parses and compiles a schema text: the one call the server and the CLI need.
pub fn parse_and_compile(text: &str) -> Result<Schema, SchemaErrors> {
    let ast = parse(text)?;
    compile(&ast, text)
}

/// The canonical text of a schema. Only the syntax must be valid: a schema with unknown
/// names still formats.
pub fn format(text: &str) -> Result<String, SchemaErrors> {
    let ast = parse(text)?;
    Ok(format::format_ast(&ast, text))
}
