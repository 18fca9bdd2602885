//! `cargo xtask <command>`: project tasks (data generation, benchmarks, demo, bulk load) as a plain
//! binary crate, reached through the alias in `.cargo/config.toml`.

use clap::{CommandFactory, Parser, Subcommand};

/// Strata's project tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// Commands arrive with the issues that build them (gen and bench first).
#[derive(Debug, Subcommand)]
enum Command {}

fn main() {
    let cli = Cli::parse();
    if cli.command.is_none() {
        Cli::command().print_help().expect("print help");
    }
}
