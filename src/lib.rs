//! arbiter: a relationship-based authorization server in the style of Google's Zanzibar.
//!
//! Applications store relationship tuples (`project:p1#manager@user:alice`), policy
//! authors define permissions over them in a small schema language, and services ask
//! whether a subject may do something to an object. See `docs/ARCHITECTURE.md` for the
//! module map, the invariants and the path of one check request.
//!
//! Dependencies point one way: [`model`] ← [`schema`], [`store`] ← [`engine`] ← server and
//! CLI. Only `store::sled` names sled.

pub mod caveat;
pub mod cli;
pub mod engine;
pub mod model;
pub mod schema;
pub mod server;
pub mod store;
pub mod sync;
pub mod validation;
