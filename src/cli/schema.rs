//! `arbiter schema check FILE…` and `arbiter schema fmt FILE [--write]`.
//!
//! Errors go to stderr as `FILE:LINE:COL: message`, one per line, so that editors and CI
//! logs can jump to them.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{EXIT_ERROR, EXIT_INVALID, EXIT_OK};
use crate::schema::{SchemaErrors, format, parse_and_compile};

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Parse and compile schema files; print every error as FILE:LINE:COL: message.
    Check {
        /// Schema files (`.zed`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a schema file in canonical form (or rewrite it in place with --write).
    Fmt {
        /// The schema file.
        file: PathBuf,
        /// Rewrite the file instead of printing it.
        #[arg(long)]
        write: bool,
    },
    /// Print the schema of a running server.
    Read {
        #[command(flatten)]
        connection: super::client::Connection,
    },
    /// Replace the schema of a running server with FILE.
    Write {
        /// The schema file.
        file: PathBuf,
        #[command(flatten)]
        connection: super::client::Connection,
    },
}

pub fn run(command: SchemaCommand) -> u8 {
    match command {
        SchemaCommand::Check { files } => check(&files),
        SchemaCommand::Fmt { file, write } => fmt(&file, write),
        SchemaCommand::Read { connection } => super::client::schema_read(&connection),
        SchemaCommand::Write { file, connection } => {
            super::client::schema_write(&file, &connection)
        }
    }
}

/// Checks every file (all of them, even after a failure); exit 1 if any is invalid.
fn check(files: &[PathBuf]) -> u8 {
    let mut code = EXIT_OK;
    for file in files {
        let file_code = match read(file) {
            Ok(text) => match parse_and_compile(&text) {
                Ok(_) => EXIT_OK,
                Err(errors) => report(file, &errors),
            },
            Err(code) => code,
        };
        code = code.max(file_code);
    }
    code
}

fn fmt(file: &Path, write: bool) -> u8 {
    let text = match read(file) {
        Ok(text) => text,
        Err(code) => return code,
    };
    let formatted = match format(&text) {
        Ok(formatted) => formatted,
        Err(errors) => return report(file, &errors),
    };
    if write {
        if formatted != text
            && let Err(err) = std::fs::write(file, &formatted)
        {
            eprintln!("{}: cannot write file: {err}", file.display());
            return EXIT_ERROR;
        }
        return EXIT_OK;
    }
    let mut stdout = io::stdout().lock();
    match stdout.write_all(formatted.as_bytes()) {
        Ok(()) => EXIT_OK,
        // A closed pipe (`arbiter schema fmt x | head`) is not an error.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(err) => {
            eprintln!("cannot write to stdout: {err}");
            EXIT_ERROR
        }
    }
}

fn read(file: &Path) -> Result<String, u8> {
    std::fs::read_to_string(file).map_err(|err| {
        eprintln!("{}: cannot read file: {err}", file.display());
        EXIT_ERROR
    })
}

fn report(file: &Path, errors: &SchemaErrors) -> u8 {
    eprint!("{}", errors.render(&file.display().to_string()));
    EXIT_INVALID
}
