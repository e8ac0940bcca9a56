//! Helpers shared by the integration tests that run validation files.

pub mod consistency;
