//! `cargo xtask <command>`: the demo, the database tools (bulk load, search, inspect, compact,
//! gc), data generation and benchmarks, as a plain binary crate reached through the alias in
//! `.cargo/config.toml`.

mod attributes;
mod bench;
mod bench_bindings;
mod bench_codes;
mod bench_diskann;
mod bench_engine;
mod bench_kernels;
mod churn;
mod demo;
mod exact;
mod fuzz_corpus;
mod generate;
mod input;
mod measure;
mod parquet_io;
mod progress;
mod rng;
mod tools;
mod torture;
mod vecs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Strata's project tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: generate 200k x 128 vectors, bulk-load them into a local database,
    /// compact, reopen, and measure recall and latency against exact ground truth.
    Demo(demo::DemoArgs),
    /// Load a .fvecs, .bvecs, .npy or .parquet file into a database, committing as it goes.
    BulkLoad(tools::BulkLoadArgs),
    /// Write a database's records (one committed version) to a Parquet file.
    Export(parquet_io::ExportArgs),
    /// Search a database with a file of query vectors; with --gt, print recall@k.
    Search(tools::SearchArgs),
    /// Describe a database: versions, records, options, segments (kind, rows, deleted
    /// fraction, bytes, codes).
    Inspect(tools::InspectArgs),
    /// Run compaction on a database until the policy finds nothing to do (or --full).
    Compact(tools::CompactArgs),
    /// Delete manifest versions and files that retention no longer protects.
    Gc(tools::GcArgs),
    /// Write filter-benchmark attributes (JSON Lines) for a base file: uniform tags at 50%,
    /// 10%, 1% and 0.1% selectivity, and a percentile along a random direction (a region).
    GenAttributes(attributes::GenAttributesArgs),
    /// Exact top-k ground truth of queries under a filter (-1 past the matching rows).
    FilteredGt(attributes::FilteredGtArgs),
    /// Generate a seeded data set (base, queries, exact top-100 ground truth) as .fvecs/.ivecs.
    Gen(generate::GenArgs),
    /// Build an index from a base file and measure recall, queries/s and latency per search
    /// parameter value.
    Bench(Box<bench::BenchArgs>),
    /// Time the dispatched L2 and dot kernels against a plain scalar loop.
    BenchKernels(bench_kernels::BenchKernelsArgs),
    /// Time engine commits of a fixed number of fresh rows on a local directory.
    BenchCommit(bench_engine::BenchCommitArgs),
    /// Time opening an engine database of many rows (built first if the directory is empty).
    BenchOpen(bench_engine::BenchOpenArgs),
    /// The Rust side of the Python module's parity bars: one `upsert_batch` of a base set, and
    /// `search_batch` / a loop of `search` over a query set, timed as
    /// `python/bench/bench_bindings.py` times the same calls through the module.
    BenchBindings(bench_bindings::BenchBindingsArgs),
    /// Crash a writer process with SIGKILL at random moments and check every reopen: no lost
    /// commit, no resurrected delete, no partial version, search agreeing with get.
    Torture(torture::TortureArgs),
    /// Write seed corpora for the cargo-fuzz targets under fuzz/ from real objects.
    FuzzCorpus(fuzz_corpus::FuzzCorpusArgs),
}

/// The build profile measurements were taken with; `main` makes sure it is optimized.
pub const PROFILE: &str = if cfg!(debug_assertions) { "debug" } else { "release" };

/// Cores available to this process.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A benchmark of a debug build is meaningless: run the same command again as a release build.
fn rerun_optimized() -> ExitCode {
    eprintln!("xtask: this is a debug build; re-running the command as a release build");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Keep the caller's working directory: relative paths in the arguments must still resolve.
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let status = std::process::Command::new(cargo)
        .args(["run", "--quiet", "--release", "--manifest-path", manifest, "--"])
        .args(std::env::args_os().skip(1))
        .status();
    match status {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1) as u8),
        Err(e) => {
            eprintln!("xtask: could not re-run with cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let measures = matches!(
        cli.command,
        Command::Demo(_)
            | Command::Bench(_)
            | Command::BenchKernels(_)
            | Command::BenchCommit(_)
            | Command::BenchOpen(_)
            | Command::BenchBindings(_)
    );
    // Tests run measuring commands for their behaviour, not their speed: they may stay in debug.
    let debug_allowed = std::env::var_os("XTASK_ALLOW_DEBUG").is_some();
    if measures && cfg!(debug_assertions) && !debug_allowed {
        return rerun_optimized();
    }
    let result = match &cli.command {
        Command::Demo(args) => demo::run(args),
        Command::BulkLoad(args) => tools::bulk_load(args),
        Command::Export(args) => parquet_io::export(args),
        Command::Search(args) => tools::search(args),
        Command::Inspect(args) => tools::inspect(args),
        Command::Compact(args) => tools::compact(args),
        Command::Gc(args) => tools::gc(args),
        Command::Gen(args) => generate::run(args),
        Command::GenAttributes(args) => attributes::gen_attributes(args),
        Command::FilteredGt(args) => attributes::filtered_gt(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchKernels(args) => bench_kernels::run(args),
        Command::BenchCommit(args) => bench_engine::run_commit(args),
        Command::BenchOpen(args) => bench_engine::run_open(args),
        Command::BenchBindings(args) => bench_bindings::run(args),
        Command::Torture(args) => torture::run(args),
        Command::FuzzCorpus(args) => fuzz_corpus::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
