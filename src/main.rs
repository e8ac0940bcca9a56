//! The `arbiter` binary: parse the command line and hand it to [`arbiter::cli::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    arbiter::cli::run(arbiter::cli::Cli::parse())
}
