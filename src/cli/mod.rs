//! The command line: one clap-derived [`Cli`], one [`Command`] enum, and one function per
//! subcommand in its own file. [`run`] dispatches and turns the outcome into an exit code.
//!
//! Exit codes: 0 success; 1 the input was checked and is invalid (a bad schema), or, for
//! client commands later, "denied"; 2 the command itself failed (unreadable file, usage).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod backup;
pub mod client;
pub mod huge_pages;
pub mod reload;
pub mod schema;
pub mod serve;
pub mod transfer;
pub mod validate;

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
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Check, format, read or write schemas.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// Ask a server whether SUBJECT has PERMISSION on RESOURCE (exit 0 allowed, 1 denied, 2 error).
    Check(client::CheckArgs),
    /// Show why subjects have PERMISSION on RESOURCE (the userset tree).
    Expand(client::ExpandArgs),
    /// Reverse questions: which resources, which subjects.
    #[command(subcommand)]
    Lookup(client::LookupCommand),
    /// Touch (or with --delete, delete; with --create, create) relationships.
    Write(client::WriteArgs),
    /// Print the relationships matching a filter.
    Read(client::FilterArgs),
    /// Delete the relationships matching a filter.
    Delete(client::FilterArgs),
    /// Load relationships, one per line, through a server or into a database directory.
    Import(transfer::ImportArgs),
    /// Print every relationship, one per line.
    Export(transfer::ExportArgs),
    /// Run validation files: schema, relationships, assertions and expected relations.
    Validate {
        /// Validation files (`.yaml`).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
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
        Command::Serve(args) => serve::run(&args),
        Command::Schema(command) => schema::run(command),
        Command::Check(args) => client::check(&args),
        Command::Expand(args) => client::expand(&args),
        Command::Lookup(command) => client::lookup(&command),
        Command::Write(args) => client::write(&args),
        Command::Read(args) => client::read(&args),
        Command::Delete(args) => client::delete(&args),
        Command::Import(args) => transfer::import(&args),
        Command::Export(args) => transfer::export(&args),
        Command::Validate { files } => validate::run(&files),
    };
    ExitCode::from(code)
}
