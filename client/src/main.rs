//! `keyshare`: parses the command line and hands it to [`cli::main`].

mod cli;

use std::process::ExitCode;

/// The allocator: mimalloc rather than glibc's (docs/architecture.md,
/// "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
