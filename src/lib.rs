//! arbiter: a relationship-based authorization server in the style of Google's Zanzibar.
//!
//! Applications store relationship tuples (`project:p1#manager@user:alice`), policy
//! authors define permissions over them in a small schema language, and services ask
//! whether a subject may do something to an object. See `docs/ARCHITECTURE.md` for the
//! module map, the invariants and the path of one check request.
//!
//! Dependencies point one way: [`model`] ← [`schema`], [`store`] ← [`engine`] ← server and
//! CLI. Only `store::sled` names sled.
//!
//! Non-test code never unwraps, expects or panics: data from outside is answered with a
//! typed error, and the lints below keep it so (unit tests, compiled with `cfg(test)`, and
//! the integration tests, benches and examples, which are crates of their own, may).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod caveat;
pub mod cli;
pub mod engine;
pub mod model;
pub mod schema;
pub mod server;
pub mod store;
pub mod sync;
pub mod validation;
