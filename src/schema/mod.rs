//! The schema language: parse text into a spanned AST, compile it into the id-indexed
//! [`Schema`] the engine walks, and print it back canonically.

pub mod ast;
pub mod comments;
pub mod compiled;
pub mod error;
pub mod parser;

pub use compiled::{
    AllowedSubject, Arrow, Definition, Expr, RelationDef, RelationId, RelationKind, Schema, TypeId,
};
pub use error::{SchemaError, SchemaErrorKind, SchemaErrors};
pub use parser::parse;
