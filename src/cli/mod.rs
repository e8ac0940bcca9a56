//! The command line: one clap-derived [`Cli`], one [`Command`] enum, and one function per
//! subcommand in its own file. [`run`] dispatches and turns the outcome into an exit code.
//!
//! Exit codes: 0 success; 1 the input was checked and is invalid (a bad schema), or, for
//! client commands later, "denied"; 2 the command itself failed (unreadable file, usage).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod schema;

/// arbiter: a relationship-based authorization server in the style of Google's Zanzibar.
#[derive(Debug, Parser)]
#[command(name = "arbiter", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. New ones (`serve`, `validate`, client commands) are added here, with
/// their function in a file of their own.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check or format schema files.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
}

/// Exit code: the command ran and found what it checked valid (or allowed).
pub const EXIT_OK: u8 = 0;
/// Exit code: the command ran and found the input invalid (or the check denied).
pub const EXIT_INVALID: u8 = 1;
/// Exit code: the command could not do its job.
pub const EXIT_ERROR: u8 = 2;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Schema(command) => schema::run(command),
    };
    ExitCode::from(code)
}
