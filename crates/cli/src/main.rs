//! `strom`: the single binary that is both the Strom broker and its CLI.

mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Kafka request decoding sizes some buffers from counts a client sends; this allocator
// makes an impossible count cost address space instead of aborting the broker. See
// strom_server::mmap_alloc.
#[global_allocator]
static ALLOC: strom_server::MmapAlloc = strom_server::MmapAlloc::new();

/// Strom: a Kafka-compatible partitioned log broker.
#[derive(Debug, Parser)]
#[command(name = "strom", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of this binary.
    Version,
    /// Run the broker.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("strom {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the cause chain, like clap's own errors; no backtrace, which
            // anyhow's Debug output would add whenever RUST_BACKTRACE is set.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
