//! `strom completion SHELL`: print a shell completion script.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Arguments of `strom completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// Shell to complete for, e.g. `strom completion bash > /etc/bash_completion.d/strom`
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run(args: CompletionArgs) -> anyhow::Result<()> {
    let mut command = crate::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "strom", &mut script);
    crate::output::write_stdout(&script)
}
