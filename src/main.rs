//! The `arbiter` binary: parse the command line and hand it to [`arbiter::cli::run`].

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = arbiter::cli::Cli::parse();
    if let arbiter::cli::Command::Serve(args) = &cli.command {
        // Returns only when the server is not to re-execute itself with huge pages.
        arbiter::cli::huge_pages::apply(args.huge_pages);
    }
    arbiter::cli::run(cli)
}
