//! `cargo xtask bench-commit` and `cargo xtask bench-open`: the engine's commit latency and the
//! cost of opening a large database, on a local directory.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use strata::{Db, Metric, Options};

use crate::measure::{BenchDir, current_rss_bytes, directory_bytes, percentile};
use crate::rng::Rng;

/// Measures commits of a fixed number of fresh rows each.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchCommitArgs {
    /// Rows upserted before each commit.
    #[arg(long, default_value_t = 1000)]
    pub rows: usize,
    /// Vector dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Commits timed (after 5 untimed warm-up commits).
    #[arg(long, default_value_t = 200)]
    pub commits: usize,
    /// Also delete this many committed rows before each commit (a deletion vector per commit).
    #[arg(long, default_value_t = 0)]
    pub deletes: usize,
    /// Database directory, which must not hold a database [default: a fresh directory under
    /// target/bench-db, removed afterwards].
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Measures opening a database of many committed rows.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOpenArgs {
    /// Rows in the database.
    #[arg(long, default_value_t = 1_000_000)]
    pub n: usize,
    /// Vector dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Rows per commit (one flat segment each).
    #[arg(long, default_value_t = 100_000)]
    pub commit_every: usize,
    /// Opens timed.
    #[arg(long, default_value_t = 10)]
    pub opens: usize,
    /// Database directory [default: a fresh directory under target/bench-db, removed afterwards].
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}

fn random_rows(rng: &mut Rng, rows: usize, dim: usize) -> Vec<f32> {
    (0..rows * dim).map(|_| rng.normal() as f32).collect()
}

/// Runs `cargo xtask bench-commit`.
pub fn run_commit(args: &BenchCommitArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = BenchDir::new(args.db.as_ref(), "commit");
    let db = Db::create(&dir.path, Options::new(args.dim, Metric::L2))?;
    let mut rng = Rng::new(7, 0);
    let mut next_id = 0u64;
    let mut commit_ms = Vec::with_capacity(args.commits);
    let mut upsert_ms = Vec::with_capacity(args.commits);
    for round in 0..args.commits + 5 {
        let rows = random_rows(&mut rng, args.rows, args.dim);
        let ids: Vec<u64> = (next_id..next_id + args.rows as u64).collect();
        next_id += args.rows as u64;
        let started = Instant::now();
        db.upsert_batch(&ids, &rows)?;
        for i in 0..args.deletes.min(next_id as usize - args.rows) {
            db.delete((rng.next_u64() ^ i as u64) % (next_id - args.rows as u64))?;
        }
        let upserted = Instant::now();
        db.commit()?;
        if round >= 5 {
            upsert_ms.push((upserted - started).as_secs_f64() * 1000.0);
            commit_ms.push(upserted.elapsed().as_secs_f64() * 1000.0);
        }
    }
    commit_ms.sort_by(f64::total_cmp);
    upsert_ms.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&commit_ms, 0.5), percentile(&commit_ms, 0.99));
    let upsert_p50 = percentile(&upsert_ms, 0.5);
    if args.json {
        let row = json!({
            "bench": "commit", "rows": args.rows, "dim": args.dim, "commits": args.commits,
            "deletes": args.deletes, "commit_p50_ms": p50, "commit_p99_ms": p99,
            "commit_max_ms": commit_ms[commit_ms.len() - 1], "upsert_p50_ms": upsert_p50,
            "profile": crate::PROFILE,
        });
        println!("{row}");
    } else {
        println!(
            "commit of {} rows x {} dims ({} deletes), {} commits on {}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms (upsert of the rows: p50 {upsert_p50:.2} ms)",
            args.rows,
            args.dim,
            args.deletes,
            args.commits,
            dir.path.display(),
            commit_ms[commit_ms.len() - 1],
        );
    }
    Ok(())
}

/// Runs `cargo xtask bench-open`.
pub fn run_open(args: &BenchOpenArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = BenchDir::new(args.db.as_ref(), "open");
    let exists = dir.path.join("manifest").is_dir();
    if !exists {
        // Graph quality does not matter here: a small ef_construction builds fast.
        let options = Options::new(args.dim, Metric::L2).hnsw_m(8).hnsw_ef_construction(16);
        let db = Db::create(&dir.path, options)?;
        let started = Instant::now();
        let mut rng = Rng::new(11, 0);
        for start in (0..args.n).step_by(args.commit_every.max(1)) {
            let end = (start + args.commit_every.max(1)).min(args.n);
            let rows = random_rows(&mut rng, end - start, args.dim);
            let ids: Vec<u64> = (start as u64..end as u64).collect();
            db.upsert_batch(&ids, &rows)?;
            db.commit()?;
        }
        if !args.json {
            println!("built {} rows in {:.1} s", args.n, started.elapsed().as_secs_f64());
        }
    }
    let mut open_ms = Vec::with_capacity(args.opens);
    let mut rss_growth = 0;
    for _ in 0..args.opens.max(1) {
        let before = current_rss_bytes();
        let started = Instant::now();
        let db = Db::open(&dir.path)?;
        open_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        rss_growth = current_rss_bytes().saturating_sub(before);
        assert_eq!(db.len(), args.n, "every row is live after open");
    }
    open_ms.sort_by(f64::total_cmp);
    let disk = directory_bytes(&dir.path);
    let p50 = percentile(&open_ms, 0.5);
    if args.json {
        let row = json!({
            "bench": "open", "n": args.n, "dim": args.dim, "commit_every": args.commit_every,
            "open_p50_ms": p50, "open_max_ms": open_ms[open_ms.len() - 1],
            "open_rss_growth_bytes": rss_growth, "disk_bytes": disk, "profile": crate::PROFILE,
        });
        println!("{row}");
    } else {
        println!(
            "open of {} rows x {} dims ({:.0} MiB on disk): p50 {p50:.1} ms, max {:.1} ms; resident growth {:.1} MiB",
            args.n,
            args.dim,
            disk as f64 / (1 << 20) as f64,
            open_ms[open_ms.len() - 1],
            rss_growth as f64 / (1 << 20) as f64,
        );
    }
    Ok(())
}
