//! `strom`: the single binary that is both the Strom broker and its CLI.
//!
//! `strom serve` runs the broker; the other commands are a Kafka client (in the manner
//! of `rpk` and kcat) that drives Strom or any Kafka-compatible cluster.

mod client;
mod commands;
mod output;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{cluster, completion, consume, group, produce, topic};

// Kafka request decoding sizes some buffers from counts a client sends; this allocator
// makes an impossible count cost address space instead of aborting the broker. See
// strom_server::mmap_alloc.
#[global_allocator]
static ALLOC: strom_server::MmapAlloc = strom_server::MmapAlloc::new();

/// Strom: a Kafka-compatible partitioned log broker.
#[derive(Debug, Parser)]
#[command(name = "strom", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Serve(serve::ServeArgs),
    /// Create, list, describe, delete and configure topics.
    Topic(topic::TopicArgs),
    /// Produce records from stdin or a file, one per line.
    Produce(produce::ProduceArgs),
    /// Consume records and print them.
    Consume(consume::ConsumeArgs),
    /// List, describe, delete consumer groups and reset their offsets.
    Group(group::GroupArgs),
    /// Describe the cluster: brokers, controller, cluster id.
    Cluster(cluster::ClusterArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(completion::CompletionArgs),
    /// Print the version of this binary.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("strom {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Serve(args) => serve::run(args),
        Command::Topic(args) => topic::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(args) => group::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Completion(args) => completion::run(args),
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
