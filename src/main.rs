//! The `arbiter` binary: parse the command line and hand it to [`arbiter::cli::run`].

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::Parser;

/// mimalloc instead of glibc's allocator: building the index at start allocates and frees
/// large temporary buffers, and glibc keeps their memory (its mmap threshold grows with
/// every large free), about 50 MiB of the resident set at 1M relationships; mimalloc
/// gives it back (docs/MEMORY.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    arbiter::cli::run(arbiter::cli::Cli::parse())
}
