//! The `arbiter` binary: parse the command line and hand it to [`arbiter::cli::run`].

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    arbiter::cli::run(arbiter::cli::Cli::parse())
}
