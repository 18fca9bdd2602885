//! `cargo xtask demo`: the README's main job. Generates a seeded clustered data set with exact
//! ground truth, bulk-loads it into a database on a local directory (commits as it goes, the
//! background worker compacting into Vamana segments), waits for compaction, reopens the
//! database and measures recall and latency, then prints a summary.

use std::path::PathBuf;
use std::time::Instant;

use strata::compaction::SegmentKind;
use strata::{Db, Metric, SearchParams};

use crate::generate::{GenArgs, Kind};
use crate::input::VectorFile;
use crate::measure::directory_bytes;
use crate::tools::{BulkLoadArgs, LoadPath, load, remove_dir, run_queries};
use crate::vecs::read_ivecs;

/// Run the demo end to end on a fresh local database.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Base vectors to generate and load.
    #[arg(long, default_value_t = 200_000)]
    pub n: usize,
    /// Dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Queries to run against exact ground truth.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Working directory: data/ for the generated files, db/ for the database (both replaced).
    #[arg(long, default_value = "target/demo")]
    pub dir: PathBuf,
    /// Rows between commits while loading.
    #[arg(long, default_value_t = 20_000)]
    pub commit_every: usize,
    /// One candidate list (L) for every Vamana segment search [default: each segment's
    /// calibrated L for --recall].
    #[arg(long, conflicts_with = "recall")]
    pub l: Option<usize>,
    /// The recall@10 each Vamana segment is searched for (the engine's default search).
    #[arg(long, default_value_t = SearchParams::DEFAULT_RECALL)]
    pub recall: f32,
    /// Seed of the data set.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub rows: usize,
    pub flat_segments: usize,
    pub vamana_segments: usize,
    pub disk_bytes: u64,
    pub ram_bytes: usize,
    pub load_rows_per_s: f64,
    pub open_ms: f64,
    pub recall: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

pub fn run(args: &DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let summary = demo(args, true)?;
    print_summary(args, &summary);
    Ok(())
}

pub fn demo(args: &DemoArgs, progress: bool) -> Result<DemoSummary, Box<dyn std::error::Error>> {
    let data = args.dir.join("data");
    let db_dir = args.dir.join("db");
    remove_dir(&db_dir)?;
    step(
        progress,
        &format!("generating {} x {} clustered vectors and exact ground truth", args.n, args.dim),
    );
    crate::generate::run(&GenArgs {
        kind: Kind::Clustered,
        n: args.n,
        dim: args.dim,
        queries: args.queries,
        metric: Metric::L2,
        clusters: None,
        seed: args.seed,
        threads: None,
        out: data.clone(),
    })?;

    step(
        progress,
        &format!(
            "bulk-loading into {} (a commit every {} rows)",
            db_dir.display(),
            args.commit_every
        ),
    );
    let db_location = db_dir.to_str().ok_or("the demo directory must be valid UTF-8")?.to_owned();
    let report = load(
        &BulkLoadArgs {
            db: db_location.clone(),
            input: data.join("base.fvecs"),
            create: true,
            dim: None,
            metric: Metric::L2,
            via: LoadPath::Ingest,
            batch: 10_000,
            commit_every: args.commit_every,
            ids: "row".into(),
            wait_compaction: true,
            attributes: None,
            schema: None,
        },
        progress,
    )?;

    step(progress, "reopening and searching");
    let opened = Instant::now();
    let db = Db::open_read_only(&db_location)?;
    let open_ms = opened.elapsed().as_secs_f64() * 1e3;
    let queries = VectorFile::open(&data.join("query.fvecs"))?;
    let truth = read_ivecs(&data.join("groundtruth.ivecs"))?;
    let params = match args.l {
        Some(l) => SearchParams::new(10).search_list(l),
        None => SearchParams::new(10).recall(args.recall),
    };
    let measured = run_queries(&db, &queries, Some(&truth), params, |_, _| {})?;
    let segments = db.segment_details();
    let count = |kind| segments.iter().filter(|s| s.info.kind == kind).count();
    Ok(DemoSummary {
        rows: db.len(),
        flat_segments: count(SegmentKind::Flat),
        vamana_segments: count(SegmentKind::Vamana),
        disk_bytes: directory_bytes(&db_dir),
        ram_bytes: db.memory_bytes(),
        load_rows_per_s: report.rows as f64 / report.seconds.max(1e-9),
        open_ms,
        recall: measured.recall.unwrap_or(0.0),
        p50_us: measured.p50.as_secs_f64() * 1e6,
        p99_us: measured.p99.as_secs_f64() * 1e6,
    })
}

fn step(progress: bool, what: &str) {
    if progress {
        eprintln!("demo: {what}");
    }
}

fn print_summary(args: &DemoArgs, s: &DemoSummary) {
    let mib = |b: f64| b / (1 << 20) as f64;
    println!();
    println!("Strata demo: {} x {} clustered vectors, L2, on a local directory", args.n, args.dim);
    println!("  rows                 {}", s.rows);
    println!("  segments             {} Vamana, {} flat", s.vamana_segments, s.flat_segments);
    println!("  disk                 {:.1} MiB", mib(s.disk_bytes as f64));
    println!(
        "  RAM after reopen     {:.1} MiB ({:.0} B per vector)",
        mib(s.ram_bytes as f64),
        s.ram_bytes as f64 / s.rows.max(1) as f64
    );
    println!(
        "  load                 {:.0} rows/s (ingests, commits and compaction)",
        s.load_rows_per_s
    );
    println!("  reopen               {:.1} ms", s.open_ms);
    let effort = match args.l {
        Some(l) => format!("L {l}"),
        None => format!("searched for recall {}", args.recall),
    };
    println!(
        "  recall@10            {:.4} ({effort}, {} queries against exact ground truth)",
        s.recall, args.queries
    );
    println!("  latency              p50 {:.1} us, p99 {:.1} us (one thread)", s.p50_us, s.p99_us);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_loads_compacts_reopens_and_reaches_the_recall_bar() {
        let dir = tempfile::tempdir().unwrap();
        let args = DemoArgs {
            n: 6000,
            dim: 16,
            queries: 50,
            dir: dir.path().to_owned(),
            commit_every: 1000,
            l: None,
            recall: SearchParams::DEFAULT_RECALL,
            seed: 7,
        };
        let s = demo(&args, false).unwrap();
        assert_eq!(s.rows, 6000);
        assert!(s.vamana_segments >= 1, "{s:?}");
        assert!(s.recall >= 0.95, "{s:?}");
        assert!(s.disk_bytes > 6000 * 16 * 4 && s.ram_bytes > 0 && s.p50_us <= s.p99_us);
    }
}
