//! `cargo xtask bench-bindings`: the Rust side of the Python module's parity bars. It times the
//! same calls `python/bench/bench_bindings.py` makes through the module (one `upsert_batch` of
//! the whole base set into a fresh database; `search_batch` of the query set; one `search` per
//! query in a loop) and prints rows of the same JSON, so the two sides compare call for call.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use strata::{Db, Metric, Options, SearchParams};

use crate::input::{VectorFile, read_ground_truth};
use crate::measure::recall_at_k;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchBindingsArgs {
    /// Base vectors (.fvecs, .bvecs, .npy, .fbin): upserted into a fresh database.
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    pub query: PathBuf,
    /// Ground truth (.ivecs, .ibin): recall@k of the searches.
    #[arg(long)]
    pub gt: Option<PathBuf>,
    /// The database searched (built beforehand, e.g. by `bulk-load` and `compact`).
    #[arg(long)]
    pub db: PathBuf,
    /// Where the upsert phase creates its fresh database (removed first, and afterwards).
    #[arg(long)]
    pub scratch: PathBuf,
    /// Metric of the upsert phase's database.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Results per query.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Candidate list (L) of Vamana segment searches [default: each segment's calibrated L].
    #[arg(long)]
    pub l: Option<usize>,
    /// Queries searched (the first N of the file).
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Timed repetitions of each search phase (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub reps: usize,
    /// Skip the upsert phase.
    #[arg(long)]
    pub no_upsert: bool,
}

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}

pub fn run(args: &BenchBindingsArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.reps == 0 || args.queries == 0 {
        return Err("--reps and --queries must be at least 1".into());
    }
    if !args.no_upsert {
        let base = VectorFile::open(&args.base)?;
        let (rows, dim) = (base.rows(), base.dim());
        let vectors = base.read_all()?;
        let ids: Vec<u64> = (0..rows as u64).collect();
        let _ = std::fs::remove_dir_all(&args.scratch);
        let db = Db::create(&args.scratch, Options::new(dim, args.metric))?;
        let start = Instant::now();
        db.upsert_batch(&ids, &vectors)?;
        let seconds = start.elapsed().as_secs_f64();
        db.close()?;
        std::fs::remove_dir_all(&args.scratch)?;
        let line = json!({"side": "rust", "phase": "upsert", "rows": rows, "dim": dim,
            "seconds": seconds, "rows_per_s": rows as f64 / seconds});
        println!("{line}");
    }

    let db = Db::open_read_only(&args.db)?;
    let file = VectorFile::open_queries(&args.query)?;
    let queries = file.read_all()?;
    let dim = file.dim();
    let n = args.queries.min(file.rows());
    let queries = &queries[..n * dim];
    let truth = args.gt.as_deref().map(read_ground_truth).transpose()?;
    let params = match args.l {
        Some(l) => SearchParams::new(args.k).search_list(l),
        None => SearchParams::new(args.k),
    };
    let recall = |results: &[Vec<strata::Neighbor>]| {
        let truth = truth.as_ref()?;
        let mut found = vec![u64::MAX; n * args.k];
        for (q, hits) in results.iter().enumerate() {
            for (slot, hit) in hits.iter().take(args.k).enumerate() {
                found[q * args.k + slot] = hit.id;
            }
        }
        Some(recall_at_k(&found, truth, args.k))
    };

    // Warm the page cache and the code tables once, untimed.
    let warm = db.search_batch(queries, params.clone())?;
    let mut batch = Vec::with_capacity(args.reps);
    let mut looped = Vec::with_capacity(args.reps);
    for _ in 0..args.reps {
        let start = Instant::now();
        let results = db.search_batch(queries, params.clone())?;
        batch.push(start.elapsed().as_secs_f64());
        std::hint::black_box(results);
        let start = Instant::now();
        for query in queries.chunks_exact(dim) {
            std::hint::black_box(db.search_with(query, params.clone())?);
        }
        looped.push(start.elapsed().as_secs_f64());
    }
    let (batch, looped) = (median(batch), median(looped));
    let l = args.l.map_or(json!(null), |l| json!(l));
    println!(
        "{}",
        json!({"side": "rust", "phase": "search_batch", "queries": n, "k": args.k, "l": l,
            "seconds": batch, "qps": n as f64 / batch, "recall": recall(&warm)})
    );
    println!(
        "{}",
        json!({"side": "rust", "phase": "search_loop", "queries": n, "k": args.k, "l": l,
            "seconds": looped, "qps": n as f64 / looped, "recall": recall(&warm)})
    );
    Ok(())
}
