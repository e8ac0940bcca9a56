//! The schema language: parse text into a spanned AST, compile it into the id-indexed
//! [`Schema`] the engine walks, and print it back canonically.

pub mod admit;
pub mod compiled;

pub use compiled::{
    AllowedSubject, Arrow, Definition, Expr, RelationDef, RelationId, RelationKind, Schema, TypeId,
};
