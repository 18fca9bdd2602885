//! `cargo xtask bench`: build an index from a base file, run every query once per search
//! parameter value, and print one row per value (JSON with `--json`), in the same JSON shape as
//! `../shared/peers/peer_bench.py` so Strata and its peers compare side by side.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Map, Value, json};
use strata_quantize::AdmitAll;
use strata_quantize::{CodecKind, Metric, Neighbor};

use strata_memtable::{Memtable, Params as MemtableParams};
use strata_segment_diskann::BuildOptions;

use crate::exact::ExactIndex;
use crate::input::read_ground_truth;
use crate::input::read_vectors;
use crate::measure::{
    BenchDir, BenchIndex, current_rss_bytes, directory_bytes, measure, measure_batch,
    peak_rss_bytes,
};
use crate::vecs::Vectors;
use crate::{bench_codes, bench_diskann};

/// What to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Base vectors (.fvecs, .bvecs or .npy).
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors (.fvecs, .bvecs or .npy).
    #[arg(long)]
    pub query: PathBuf,
    /// Ground truth (.ivecs): per query, the ids of its nearest base rows, nearest first.
    #[arg(long)]
    pub gt: PathBuf,
    /// Index kind. `flat`: exact brute force with the SIMD batch kernel.
    #[arg(long, value_enum)]
    pub index: IndexKind,
    /// Metric: l2, ip or cosine. Must be the metric the ground truth was made with.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Neighbours per query; recall is recall@k.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Threads building the index [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Threads searching, each running one query at a time (with --batch: the pool the whole
    /// query set is searched on in one call).
    #[arg(long, default_value_t = 1)]
    pub search_threads: usize,
    /// engine: search the whole query set with one `Db::search_batch` call on a pool of
    /// --search-threads threads; p50/p99 are then the batch's time per query.
    #[arg(long)]
    pub batch: bool,
    /// Runs of the whole query set per parameter value; the fastest is reported (as the peers
    /// script does with its --reps).
    #[arg(long, default_value_t = 1)]
    pub reps: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// memtable: links per node on upper levels (level 0 keeps twice as many).
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// memtable: candidate list size while building.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// memtable: search candidate list sizes to sweep, one output row each.
    #[arg(long, value_delimiter = ',', default_value = "10,16,24,32,48,64,96,128,192,256")]
    pub ef: Vec<usize>,
    /// engine: rows upserted between commits.
    #[arg(long, default_value_t = 10_000)]
    pub commit_every: usize,
    /// engine: `auto` compacts in the background as commits land (and lets the worker finish
    /// before measuring), `sync` runs the size-tiered policy to its fixed point after every
    /// commit (a worker that always keeps up: the policy's steady state, independent of
    /// timing), `full` compacts everything into one segment at the end, `none` never compacts.
    #[arg(long, value_enum, default_value = "auto")]
    pub compaction: CompactionMode,
    /// engine: segments of a similar size that trigger a merge.
    #[arg(long, default_value_t = 4)]
    pub compaction_threshold: usize,
    /// engine: merged segments of at least this many rows become Vamana segments.
    #[arg(long, default_value_t = 2048)]
    pub diskann_min_rows: u64,
    /// engine: database directory, which must not hold a database [default: a fresh directory
    /// under target/bench-db, removed afterwards]; with --churn the fresh database of the
    /// final rows goes to DIR.fresh (replaced if present). flat-sq8/int4/pq: the segment's
    /// directory.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// flat-sq8/int4/pq/rabitq: rerank factors to sweep, one output row each; each query
    /// reranks its best `k * rerank` rows by code with the exact vectors (1: the codes' own
    /// ranking); flat-rabitq skips those whose error bound rules them out (--confidence).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub rerank: Vec<usize>,
    /// flat-rabitq: bits per coordinate, 1-8.
    #[arg(long, default_value_t = 4)]
    pub bits: u8,
    /// flat-rabitq: a candidate is reranked only while `estimate - confidence * bound` could
    /// still beat the k-th exact distance (the bound is about one standard deviation of the
    /// estimate's error; `inf` reranks every candidate). diskann with RaBitQ codes: an
    /// expanded node's exact distance is skipped past the same bound [default: 1.9 for
    /// flat-rabitq, 3 for diskann].
    #[arg(long)]
    pub confidence: Option<f32>,
    /// flat-pq, diskann: PQ sub-spaces (bytes per code) [default: flat-pq dim / 4; diskann
    /// the builder's default, dim / 2 below 512 dimensions].
    #[arg(long)]
    pub pq_subspaces: Option<usize>,
    /// diskann: search list sizes L to sweep, one output row each.
    #[arg(long, value_delimiter = ',', default_value = "10,16,24,32,48,64,96,128")]
    pub l: Vec<usize>,
    /// engine: recall@10 levels to sweep after --l, one output row each: every Vamana
    /// segment searched at the L its build measured for that recall (`SearchParams::recall`;
    /// the default search is 0.95).
    #[arg(long, value_delimiter = ',')]
    pub recall: Vec<f32>,
    /// diskann: nodes expanded per search round (W).
    #[arg(long, default_value_t = 1)]
    pub beam_width: usize,
    /// engine: load each group of --commit-every rows with `Db::ingest` (the bulk path: a
    /// segment written straight from the batch, folded into the graph by the worker) instead
    /// of `upsert_batch` into the memtable and `commit`.
    #[arg(long)]
    pub ingest: bool,
    /// diskann, engine: open the segment or database a previous run (or `bulk-load`) left in
    /// --db instead of building one (to measure or profile searches without paying for the
    /// build again). Build options are then ignored; the reported build time is the open's.
    #[arg(long, requires = "db")]
    pub reuse: bool,
    /// diskann: R, the most neighbours a node keeps [default: 64, or 48 from 512 dimensions].
    #[arg(long)]
    pub max_degree: Option<usize>,
    /// diskann: the build's search list size [default: 64, or 48 from 512 dimensions].
    #[arg(long)]
    pub build_l: Option<usize>,
    /// diskann: insertion passes over every row, 1 or 2 [default: 1, or 2 from 512 dimensions].
    #[arg(long)]
    pub passes: Option<usize>,
    /// diskann: the prune's slack.
    #[arg(long, default_value_t = 1.2)]
    pub alpha: f32,
    /// diskann: the build's seed (insertion order, codec sample) [default: the builder's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// diskann: codes kept in RAM: sq8, int4, pq<subspaces>, rpq<subspaces> or rabitq<bits>
    /// [default: rpq with --pq-subspaces if given, else the builder's: rabitq4, rabitq2 from
    /// 512 dimensions].
    #[arg(long)]
    pub codec: Option<CodecKind>,
    /// engine: attributes of the base rows (JSON Lines, one object per row), loaded with them.
    #[arg(long)]
    pub attributes: Option<PathBuf>,
    /// engine: the attribute schema as `name:type,...` [default: inferred].
    #[arg(long)]
    pub schema: Option<String>,
    /// engine: search with this filter (a WHERE clause); --gt must be its filtered ground
    /// truth (`cargo xtask filtered-gt`).
    #[arg(long)]
    pub filter: Option<String>,
    /// engine: force how Vamana segments are searched under --filter: `auto` (the planner),
    /// `scan` (the matching rows exactly) or `walk` (the graph), to measure the break-even.
    #[arg(long, value_enum, default_value = "auto")]
    pub filter_plan: FilterPlanArg,
    /// engine: after the load, --churn-rounds times delete this share of the ids, commit,
    /// upsert the same ids with the same vectors, commit and compact (per --compaction),
    /// reporting recall, q/s, segments, disk and resident bytes after each round.
    #[arg(long, requires = "gt", conflicts_with = "reuse")]
    pub churn: Option<f64>,
    /// engine: rounds of --churn.
    #[arg(long, default_value_t = 5)]
    pub churn_rounds: usize,
    /// engine: `same` upserts churned ids with their own vectors; `replace` with rows the load
    /// left out (it loads `rows / (1 + churn)` of the file) and recomputes the ground truth.
    /// Either way a fresh database of the final rows is then loaded and measured beside it.
    #[arg(long, value_enum, default_value = "same")]
    pub churn_mode: crate::churn::ChurnMode,
    /// engine, with --churn: write the exact ground truth of the final rows here (for
    /// `--reuse` runs on the churned database and its fresh twin).
    #[arg(long, requires = "churn")]
    pub write_gt: Option<PathBuf>,
    /// engine: a segment with more than this share of its rows deleted is rewritten
    /// [default: the engine's].
    #[arg(long)]
    pub deleted_rewrite: Option<f64>,
    /// engine: manifest versions the database keeps (what garbage collection spares)
    /// [default: the engine's].
    #[arg(long)]
    pub keep_versions: Option<u32>,
}

/// `--filter-plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FilterPlanArg {
    Auto,
    Scan,
    Walk,
}

/// How the engine kind compacts while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompactionMode {
    Auto,
    Sync,
    Full,
    None,
}

/// Index kinds `bench` can build. Later issues add theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IndexKind {
    /// Exact in-memory brute force: SIMD batch kernel and a bounded top-k heap.
    Flat,
    /// The HNSW memtable, built by --threads threads inserting concurrently; sweeps --ef.
    Memtable,
    /// The whole engine on a local directory: batches upserted through the API with a commit
    /// every --commit-every rows, compacted per --compaction, the handle closed, the database
    /// reopened, then searched; sweeps --l (Vamana segments' search list).
    Engine,
    /// A flat segment with SQ8 codes, mapped from a directory: code scan, then an exact
    /// rerank of the best k * --rerank rows.
    FlatSq8,
    /// As flat-sq8, with INT4 codes.
    FlatInt4,
    /// As flat-sq8, with PQ codes of --pq-subspaces bytes.
    FlatPq,
    /// As flat-sq8, with RaBitQ codes of --bits bits per coordinate; the rerank is pruned by
    /// the codes' error bounds at --confidence.
    FlatRabitq,
    /// A Vamana (DiskANN) segment built with --threads threads into a directory and mapped:
    /// codes in RAM, nodes read a sector per hop; sweeps --l.
    Diskann,
}

impl IndexKind {
    fn name(self) -> &'static str {
        match self {
            IndexKind::Flat => "flat",
            IndexKind::Memtable => "memtable",
            IndexKind::Engine => "engine",
            IndexKind::FlatSq8 => "flat-sq8",
            IndexKind::FlatInt4 => "flat-int4",
            IndexKind::FlatPq => "flat-pq",
            IndexKind::FlatRabitq => "flat-rabitq",
            IndexKind::Diskann => "diskann",
        }
    }
}

/// The memtable under measurement, searched at one `ef` per sweep point.
struct MemtableIndex {
    memtable: Memtable,
    ef: std::sync::atomic::AtomicUsize,
}

impl BenchIndex for MemtableIndex {
    type Scratch = ();

    fn scratch(&self) {}

    fn search(&self, query: &[f32], k: usize, _: &mut (), out: &mut Vec<Neighbor>) {
        let ef = self.ef.load(std::sync::atomic::Ordering::Relaxed);
        self.memtable.search_filtered(query, k, ef, &AdmitAll, out).expect("valid query");
    }

    fn ram_bytes(&self) -> u64 {
        self.memtable.memory_bytes() as u64
    }

    fn set_sweep_point(&self, point: usize) {
        self.ef.store(point, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A reopened engine database under measurement; the sweep point indexes `efforts`.
struct EngineIndex {
    db: strata::Db,
    dir: PathBuf,
    efforts: Vec<Effort>,
    point: std::sync::atomic::AtomicUsize,
    filter: Option<strata::Filter>,
    filter_plan: strata::FilterPlan,
}

/// How hard the engine searches its Vamana segments at one sweep point.
#[derive(Debug, Clone, Copy)]
enum Effort {
    List(usize),
    Recall(f32),
}

impl EngineIndex {
    fn new(db: strata::Db, dir: PathBuf, efforts: Vec<Effort>) -> Self {
        EngineIndex {
            db,
            dir,
            efforts,
            point: 0.into(),
            filter: None,
            filter_plan: strata::FilterPlan::Auto,
        }
    }
}

impl EngineIndex {
    /// The search parameters of the current sweep point.
    fn params(&self, k: usize) -> strata::SearchParams {
        let point = self.point.load(std::sync::atomic::Ordering::Relaxed);
        let params = match self.efforts[point] {
            Effort::List(l) => strata::SearchParams::new(k).search_list(l),
            Effort::Recall(recall) => strata::SearchParams::new(k).recall(recall),
        };
        match &self.filter {
            Some(filter) => params.filter(filter.clone()).filter_plan(self.filter_plan),
            None => params,
        }
    }
}

impl BenchIndex for EngineIndex {
    type Scratch = ();

    fn scratch(&self) {}

    fn search(&self, query: &[f32], k: usize, _: &mut (), out: &mut Vec<Neighbor>) {
        *out = self.db.search_with(query, self.params(k)).expect("valid query");
    }

    fn ram_bytes(&self) -> u64 {
        self.db.memory_bytes() as u64
    }

    fn disk_bytes(&self) -> u64 {
        directory_bytes(&self.dir)
    }

    fn set_sweep_point(&self, point: usize) {
        self.point.store(point, std::sync::atomic::Ordering::Relaxed);
    }

    fn search_batch(&self, queries: &Vectors<f32>, k: usize) -> Option<Vec<Vec<Neighbor>>> {
        let flat = &queries.data[..];
        Some(self.db.search_batch(flat, self.params(k)).expect("valid queries"))
    }
}

/// Reopens the engine database in `dir` and reports the sweep of `--l` and `--recall` on it;
/// `label` names the database in each row's params (`churned`, `fresh`).
fn measure_engine(
    args: &BenchArgs,
    dir: &std::path::Path,
    queries: &Vectors<f32>,
    truth: &Vectors<i32>,
    build_s: f64,
    commits: usize,
    label: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let opened = Instant::now();
    // A batch search runs on the handle's pool: --search-threads threads.
    let db = strata::Db::builder(dir).threads(args.search_threads).open()?;
    let open_ms = opened.elapsed().as_secs_f64() * 1000.0;
    let n = db.len();
    let segments = db.segments();
    let vamana =
        segments.iter().filter(|s| s.kind == strata::compaction::SegmentKind::Vamana).count();
    if !args.json {
        println!(
            "engine{}: {n} rows in {commits} commits, {build_s:.2} s; {} segments ({vamana} Vamana); reopened in {open_ms:.1} ms",
            label.map(|l| format!(" ({l})")).unwrap_or_default(),
            segments.len()
        );
    }
    let efforts: Vec<Effort> = (args.l.iter().map(|&l| Effort::List(l)))
        .chain(args.recall.iter().map(|&r| Effort::Recall(r)))
        .collect();
    let mut index = EngineIndex::new(db, dir.to_path_buf(), efforts.clone());
    index.filter = args
        .filter
        .as_deref()
        .map(strata::Filter::parse)
        .transpose()
        .map_err(|e| format!("--filter: {e}"))?;
    index.filter_plan = match args.filter_plan {
        FilterPlanArg::Auto => strata::FilterPlan::Auto,
        FilterPlanArg::Scan => strata::FilterPlan::Scan,
        FilterPlanArg::Walk => strata::FilterPlan::Walk,
    };
    let sweep = efforts
        .iter()
        .enumerate()
        .map(|(point, effort)| {
            let (l, recall_target) = match *effort {
                Effort::List(l) => (Some(l), None),
                Effort::Recall(r) => (None, Some(r)),
            };
            let mut params = json!({
                "l": l,
                "recall_target": recall_target,
                "commit_every": args.commit_every,
                "ingest": args.ingest,
                "commits": commits,
                "compaction": format!("{:?}", args.compaction).to_lowercase(),
                "segments": segments.len(),
                "segment_rows": segments.iter().map(|s| s.live_rows).collect::<Vec<_>>(),
                "deleted_rows": segments.iter().map(|s| s.rows - s.live_rows).sum::<u64>(),
                "vamana_segments": vamana,
                "open_ms": round(open_ms, 2),
                "filter": args.filter,
                "filter_plan": format!("{:?}", args.filter_plan).to_lowercase(),
            });
            if let Some(label) = label {
                params["database"] = json!(label);
                params["churn"] = json!(args.churn);
                params["churn_rounds"] = json!(args.churn_rounds);
                params["churn_mode"] = json!(format!("{:?}", args.churn_mode).to_lowercase());
            }
            (point, params.as_object().expect("object").clone())
        })
        .collect();
    // Upserts run on every core.
    report(args, &index, queries, truth, n, build_s, crate::all_cores(), sweep, None);
    Ok(())
}

/// What [`load_engine`] did.
struct Loaded {
    commits: usize,
    /// After `--churn`: the base row of every id and the exact ground truth over them.
    churned: Option<crate::churn::Churned>,
}

/// Creates the database and upserts the base file through it with a commit every
/// `args.commit_every` rows (row `i` under id `i`); then runs the `--churn` rounds, if any.
fn load_engine(
    args: &BenchArgs,
    base: &Vectors<f32>,
    dir: &std::path::Path,
    measured: Option<(&Vectors<f32>, &Vectors<i32>)>,
) -> Result<Loaded, String> {
    if let Some(fraction) = args.churn
        && !(0.0..=1.0).contains(&fraction)
    {
        return Err(format!("--churn {fraction}: a share of the ids, 0 to 1"));
    }
    let attributes = args
        .attributes
        .as_deref()
        .map(|path| crate::attributes::read_attributes(path, args.schema.as_deref()))
        .transpose()?;
    if let Some((_, rows)) = &attributes
        && rows.len() != base.rows()
    {
        return Err(format!("{} attribute rows for {} base rows", rows.len(), base.rows()));
    }
    let loaded = match args.churn {
        Some(fraction) => crate::churn::loaded_rows(base.rows(), args.churn_mode, fraction),
        None => base.rows(),
    };
    let schema = attributes.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
    let attrs = attributes.as_ref().map(|(_, all)| all.as_slice());
    let rows_of_ids: Vec<u32> = (0..loaded as u32).collect();
    let db = create_and_load(args, base, dir, schema, attrs, &rows_of_ids)?;
    let commits = loaded.div_ceil(args.commit_every.max(1));
    let churned = match (args.churn, measured) {
        (Some(fraction), Some((queries, truth))) => {
            let churn = crate::churn::Churn {
                fraction,
                rounds: args.churn_rounds,
                mode: args.churn_mode,
                metric: args.metric,
                queries,
                k: args.k,
                compact: args.compaction != CompactionMode::None,
                threads: crate::all_cores(),
                json: args.json,
            };
            let truth = match args.churn_mode {
                crate::churn::ChurnMode::Same => truth.clone(),
                // The file's truth counts rows the load left out.
                crate::churn::ChurnMode::Replace => {
                    let index = crate::exact::ExactIndex::new(
                        args.metric,
                        base.dim,
                        base.data[..loaded * base.dim].to_vec(),
                    )?;
                    crate::generate::ground_truth(&index, queries, args.k, crate::all_cores())
                }
            };
            Some(crate::churn::run(&db, dir, base, attrs, &truth, &churn)?)
        }
        _ => None,
    };
    db.close().map_err(|e| e.to_string())?;
    Ok(Loaded { commits, churned })
}

/// Creates a database in `dir` with the options `args` give and loads id `i` with base row
/// `rows_of_ids[i]` (and its attributes), committing every `args.commit_every` ids as `args`
/// says (`--ingest`, `--compaction`).
fn create_and_load(
    args: &BenchArgs,
    base: &Vectors<f32>,
    dir: &std::path::Path,
    schema: strata::Schema,
    attributes: Option<&[strata::Attributes]>,
    rows_of_ids: &[u32],
) -> Result<strata::Db, String> {
    let mut options = strata::Options::new(base.dim, args.metric)
        .attributes(schema)
        .hnsw_m(args.m)
        .hnsw_ef_construction(args.ef_construction)
        .compaction_threshold(args.compaction_threshold)
        .diskann_min_rows(args.diskann_min_rows)
        .background_compaction(matches!(
            args.compaction,
            CompactionMode::Auto | CompactionMode::Full
        ));
    if let Some(keep) = args.keep_versions {
        options = options.keep_versions(keep);
    }
    if let Some(fraction) = args.deleted_rewrite {
        options = options.deleted_rewrite_fraction(fraction);
    }
    let db = strata::Db::create(dir, options).map_err(|e| e.to_string())?;
    let every = args.commit_every.max(1);
    let mut rows = Vec::with_capacity(every.min(rows_of_ids.len()) * base.dim);
    for start in (0..rows_of_ids.len()).step_by(every) {
        let end = (start + every).min(rows_of_ids.len());
        let ids: Vec<u64> = (start as u64..end as u64).collect();
        rows.clear();
        for &row in &rows_of_ids[start..end] {
            rows.extend_from_slice(base.row(row as usize));
        }
        let attrs: Option<Vec<strata::Attributes>> = attributes.map(|all| {
            rows_of_ids[start..end].iter().map(|&row| all[row as usize].clone()).collect()
        });
        match (args.ingest, attrs) {
            (true, Some(attrs)) => {
                db.ingest_with(&ids, &rows, &attrs).map_err(|e| e.to_string())?;
            }
            (true, None) => {
                db.ingest(&ids, &rows).map_err(|e| e.to_string())?;
            }
            (false, attrs) => {
                match attrs {
                    Some(attrs) => db.upsert_batch_with(&ids, &rows, &attrs),
                    None => db.upsert_batch(&ids, &rows),
                }
                .map_err(|e| e.to_string())?;
                db.commit().map_err(|e| e.to_string())?;
            }
        }
        if args.compaction == CompactionMode::Sync {
            db.compact().map_err(|e| e.to_string())?;
        }
    }
    match args.compaction {
        // Let the worker finish what the policy still plans.
        CompactionMode::Auto => drop(db.compact().map_err(|e| e.to_string())?),
        CompactionMode::Full => {
            db.set_compaction_policy(std::sync::Arc::new(strata::compaction::CompactAll));
            db.compact().map_err(|e| e.to_string())?;
        }
        CompactionMode::Sync | CompactionMode::None => {}
    }
    Ok(db)
}

/// Inserts every base row (id = row number) from `threads` threads at once.
fn build_memtable(
    args: &BenchArgs,
    base: &Vectors<f32>,
    threads: usize,
) -> Result<Memtable, String> {
    let params = MemtableParams::default().m(args.m).ef_construction(args.ef_construction);
    let memtable = Memtable::new(base.dim, args.metric, params).map_err(|e| e.to_string())?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    const BATCH: usize = 256;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(), String> {
                    loop {
                        let start = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                        if start >= base.rows() {
                            return Ok(());
                        }
                        for row in start..(start + BATCH).min(base.rows()) {
                            memtable
                                .upsert(row as u64, base.row(row))
                                .map_err(|e| format!("row {row}: {e}"))?;
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().expect("build thread panicked"))
    })?;
    Ok(memtable)
}

fn check_inputs(
    args: &BenchArgs,
    base: &Vectors<f32>,
    queries: &Vectors<f32>,
    truth: &Vectors<i32>,
) -> Result<(), String> {
    if queries.dim != base.dim {
        return Err(format!(
            "query dimension {} differs from base dimension {}",
            queries.dim, base.dim
        ));
    }
    if truth.rows() != queries.rows() {
        return Err(format!(
            "ground truth has {} rows for {} queries",
            truth.rows(),
            queries.rows()
        ));
    }
    if args.k == 0 || truth.dim < args.k {
        return Err(format!(
            "--k {} must be between 1 and the ground truth's {} columns",
            args.k, truth.dim
        ));
    }
    if let Some(bad) = truth.data.iter().find(|&&id| id < 0 || id as usize >= base.rows()) {
        return Err(format!(
            "ground truth id {bad} is not a row of the {}-row base file",
            base.rows()
        ));
    }
    if args.search_threads == 0 || args.reps == 0 || args.threads == Some(0) {
        return Err("--threads, --search-threads and --reps must be positive".into());
    }
    if args.batch && !matches!(args.index, IndexKind::Engine) {
        return Err("--batch searches through Db::search_batch: --index engine only".into());
    }
    Ok(())
}

/// Runs `cargo xtask bench`.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let base = read_vectors(&args.base)?;
    let queries = crate::input::read_queries(&args.query)?;
    let truth = read_ground_truth(&args.gt)?;
    check_inputs(args, &base, &queries, &truth)?;
    let build_threads = args.threads.unwrap_or_else(crate::all_cores);
    let (n, dim) = (base.rows(), base.dim);

    let started = Instant::now();
    match args.index {
        IndexKind::Flat => {
            let index = ExactIndex::new(args.metric, dim, base.data)?;
            let build_s = started.elapsed().as_secs_f64();
            // A copy into memory on one thread; no search parameter: one row.
            report(args, &index, &queries, &truth, n, build_s, 1, vec![(0, Map::new())], None);
        }
        IndexKind::Memtable => {
            let rss_before = current_rss_bytes();
            let memtable = build_memtable(args, &base, build_threads)?;
            let build_s = started.elapsed().as_secs_f64();
            let rss_growth = current_rss_bytes().saturating_sub(rss_before);
            if !args.json {
                println!(
                    "memtable resident growth during build: {:.1} bytes per vector",
                    rss_growth as f64 / n as f64
                );
            }
            let index = MemtableIndex { memtable, ef: 0.into() };
            let sweep = args
                .ef
                .iter()
                .map(|&ef| {
                    let params =
                        json!({"m": args.m, "ef_construction": args.ef_construction, "ef": ef});
                    (ef, params.as_object().expect("object").clone())
                })
                .collect();
            report(
                args,
                &index,
                &queries,
                &truth,
                n,
                build_s,
                build_threads,
                sweep,
                Some(rss_growth),
            );
        }
        IndexKind::Engine => {
            let dir = BenchDir::new(args.db.as_ref(), "engine");
            let measured = Some((&queries, &truth));
            let loaded = if args.reuse {
                Loaded { commits: 0, churned: None }
            } else {
                load_engine(args, &base, &dir.path, measured)?
            };
            let build_s = started.elapsed().as_secs_f64();
            let Some(churned) = loaded.churned else {
                measure_engine(args, &dir.path, &queries, &truth, build_s, loaded.commits, None)?;
                return Ok(());
            };
            if let Some(path) = &args.write_gt {
                crate::vecs::write_ivecs(path, &churned.truth)?;
            }
            measure_engine(
                args,
                &dir.path,
                &queries,
                &churned.truth,
                build_s,
                loaded.commits,
                Some("churned"),
            )?;
            // The bars compare with a fresh database of the same rows, loaded the same way.
            let fresh_dir = args.db.as_ref().map(|d| {
                let mut name = d.clone().into_os_string();
                name.push(".fresh");
                PathBuf::from(name)
            });
            let fresh = BenchDir::new(fresh_dir.as_ref(), "engine-fresh");
            let _ = std::fs::remove_dir_all(&fresh.path);
            let attributes = args
                .attributes
                .as_deref()
                .map(|path| crate::attributes::read_attributes(path, args.schema.as_deref()))
                .transpose()?;
            let schema = attributes.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
            let attrs = attributes.as_ref().map(|(_, all)| all.as_slice());
            let started = Instant::now();
            let db =
                create_and_load(args, &base, &fresh.path, schema, attrs, &churned.rows_of_ids)?;
            db.close()?;
            let build_s = started.elapsed().as_secs_f64();
            let commits = churned.rows_of_ids.len().div_ceil(args.commit_every.max(1));
            measure_engine(
                args,
                &fresh.path,
                &queries,
                &churned.truth,
                build_s,
                commits,
                Some("fresh"),
            )?;
        }
        IndexKind::FlatSq8 | IndexKind::FlatInt4 | IndexKind::FlatPq | IndexKind::FlatRabitq => {
            let kind = match args.index {
                IndexKind::FlatSq8 => CodecKind::Sq8,
                IndexKind::FlatInt4 => CodecKind::Int4,
                IndexKind::FlatRabitq => CodecKind::RaBitQ { bits: args.bits },
                _ => CodecKind::Pq { subspaces: args.pq_subspaces.unwrap_or(dim / 4).max(1) },
            };
            let dir = BenchDir::new(args.db.as_ref(), args.index.name());
            let built = bench_codes::build(kind, args.metric, &base, &dir.path, build_threads)?;
            let confidence = args.confidence.unwrap_or(strata_quantize::RABITQ_CONFIDENCE);
            built.segment.set_confidence(confidence);
            let build_s = started.elapsed().as_secs_f64();
            let index = built.segment;
            if !args.json {
                println!(
                    "{kind}: trained in {:.2} s on {build_threads} thread(s), segment written in {:.2} s; {} bytes of code per vector",
                    built.train_s,
                    built.write_s,
                    index.code_len()
                );
            }
            let sweep = args
                .rerank
                .iter()
                .map(|&rerank| {
                    let mut params = json!({
                        "codec": kind.to_string(),
                        "rerank": rerank,
                        "code_bytes": index.code_len(),
                        "train_s": round(built.train_s, 3),
                    });
                    if args.index == IndexKind::FlatRabitq {
                        params["confidence"] = json!(confidence);
                    }
                    (rerank, params.as_object().expect("object").clone())
                })
                .collect();
            report(args, &index, &queries, &truth, n, build_s, build_threads, sweep, None);
        }
        IndexKind::Diskann => {
            let confidence =
                args.confidence.unwrap_or(strata_segment_diskann::DEFAULT_RERANK_CONFIDENCE);
            let mut options = BuildOptions::default().alpha(args.alpha).threads(build_threads);
            if let Some(r) = args.max_degree {
                options = options.max_degree(r);
            }
            if let Some(l) = args.build_l {
                options = options.search_list(l);
            }
            if let Some(passes) = args.passes {
                options = options.passes(passes);
            }
            if let Some(seed) = args.seed {
                options = options.seed(seed);
            }
            let build_l = options.search_list_for(dim);
            let passes = options.passes_for(dim);
            let codec = args.codec.unwrap_or_else(|| match args.pq_subspaces {
                Some(subspaces) => CodecKind::Rpq { subspaces: subspaces.max(1) },
                None => options.codec_for(dim, n as u64),
            });
            options = options.codec(codec);
            let dir = BenchDir::new(args.db.as_ref(), args.index.name());
            let (index, built) = if args.reuse {
                (bench_diskann::open(args.metric, &dir.path, args.beam_width, confidence)?, None)
            } else {
                let (index, built) = bench_diskann::build(
                    options,
                    args.metric,
                    &base,
                    &dir.path,
                    args.beam_width,
                    confidence,
                )?;
                (index, Some(built))
            };
            let build_s = started.elapsed().as_secs_f64();
            let segment = index.segment();
            // A reused segment reports what it holds, not what the arguments ask for.
            let (codec, max_degree) = (segment.codec().kind(), segment.max_degree());
            if let (false, Some(built)) = (args.json, built) {
                println!(
                    "diskann: {codec}, R {}, build L {}, {passes} pass(es), alpha {}: train {:.2} s, encode {:.2} s, graph {:.2} s, write {:.2} s on {build_threads} thread(s); mean degree {:.1}; {:.1} RAM bytes per vector",
                    max_degree,
                    build_l,
                    args.alpha,
                    built.train.as_secs_f64(),
                    built.encode.as_secs_f64(),
                    built.graph.as_secs_f64(),
                    built.write.as_secs_f64(),
                    built.mean_degree,
                    segment.memory_bytes() as f64 / n as f64,
                );
            }
            let sweep = args
                .l
                .iter()
                .map(|&l| {
                    let params = json!({
                        "codec": codec.to_string(),
                        "R": max_degree,
                        "build_l": build_l,
                        "passes": passes,
                        "alpha": args.alpha,
                        "W": args.beam_width,
                        "L": l,
                        "rerank_confidence": confidence,
                    });
                    (l, params.as_object().expect("object").clone())
                })
                .collect();
            report(args, &index, &queries, &truth, n, build_s, build_threads, sweep, None);
        }
    }
    Ok(())
}

/// Measures `index` at every point of `sweep` and prints a row for each.
#[allow(clippy::too_many_arguments)]
fn report<I: BenchIndex>(
    args: &BenchArgs,
    index: &I,
    queries: &Vectors<f32>,
    truth: &Vectors<i32>,
    n: usize,
    build_s: f64,
    build_threads: usize,
    sweep: Vec<(usize, Map<String, Value>)>,
    build_rss_growth: Option<u64>,
) {
    let dim = queries.dim;
    if !args.json {
        println!(
            "{} on {n} x {dim} ({}), {} queries, k = {}, {} search thread(s); build {build_s:.2} s on {build_threads} thread(s); {} build, kernels: {}",
            args.index.name(),
            args.metric,
            queries.rows(),
            args.k,
            args.search_threads,
            crate::PROFILE,
            strata_quantize::isa(),
        );
        println!(
            "{:<28} {:>8} {:>10} {:>9} {:>9} {:>11}",
            "params", "recall", "qps", "p50 us", "p99 us", "index MiB"
        );
    }
    for (point, params) in sweep {
        index.set_sweep_point(point);
        let once = || match args.batch {
            true => measure_batch(index, queries, truth, args.k, args.search_threads)
                .expect("--batch is refused for kinds without a batch search"),
            false => measure(index, queries, truth, args.k, args.search_threads),
        };
        let best = (0..args.reps)
            .map(|_| once())
            .max_by(|a, b| a.qps.total_cmp(&b.qps))
            .expect("reps >= 1");
        let ram = index.ram_bytes();
        let mut params = params;
        params.extend(index.sweep_stats());
        if args.json {
            let row = json!({
                "index": args.index.name(),
                "n": n,
                "dim": dim,
                "metric": args.metric.to_string(),
                "k": args.k,
                "threads": best.threads,
                "build_threads": build_threads,
                "params": params,
                "build_s": round(build_s, 3),
                "recall": round(best.recall, 4),
                "qps": round(best.qps, 1),
                "p50_us": round(best.p50_us, 1),
                "p99_us": round(best.p99_us, 1),
                "rss_bytes": peak_rss_bytes(),
                "index_ram_bytes": ram,
                "index_disk_bytes": index.disk_bytes(),
                "build_rss_growth_bytes": build_rss_growth,
                "queries": queries.rows(),
                "batch": args.batch,
                "profile": crate::PROFILE,
                "isa": strata_quantize::isa(),
            });
            println!("{row}");
        } else {
            println!(
                "{:<28} {:>8.4} {:>10.1} {:>9.1} {:>9.1} {:>11.1}",
                Value::Object(params).to_string(),
                best.recall,
                best.qps,
                best.p50_us,
                best.p99_us,
                ram as f64 / (1 << 20) as f64
            );
        }
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated data set in a temporary directory: (directory, base, queries, ground truth).
    fn generated(
        n: usize,
        dim: usize,
        queries: usize,
        metric: Metric,
        seed: u64,
    ) -> (tempfile::TempDir, Vectors<f32>, Vectors<f32>, Vectors<i32>) {
        let dir = tempfile::tempdir().unwrap();
        let gen_args = crate::generate::GenArgs {
            kind: crate::generate::Kind::Clustered,
            n,
            dim,
            queries,
            metric,
            clusters: None,
            seed,
            threads: Some(2),
            out: dir.path().to_owned(),
        };
        crate::generate::run(&gen_args).unwrap();
        let base = read_vectors(&dir.path().join("base.fvecs")).unwrap();
        let query = read_vectors(&dir.path().join("query.fvecs")).unwrap();
        let truth = crate::vecs::read_ivecs(&dir.path().join("groundtruth.ivecs")).unwrap();
        (dir, base, query, truth)
    }

    #[test]
    fn flat_finds_the_exact_neighbours_on_several_threads() {
        let (_dir, base, queries, truth) = generated(2000, 16, 40, Metric::L2, 1);
        let index = ExactIndex::new(Metric::L2, base.dim, base.data).unwrap();
        // 40 queries on 16 threads: 3 per thread leaves only 14 chunks (this hung once).
        for threads in [1, 3, 16, 64] {
            let m = measure(&index, &queries, &truth, 10, threads);
            assert_eq!(m.recall, 1.0, "{threads} threads");
            assert!(m.threads <= threads && m.threads <= 40);
            assert!(m.qps > 0.0 && m.p50_us <= m.p99_us);
        }
    }

    #[test]
    fn engine_kind_commits_reopens_and_finds_the_exact_neighbours() {
        let (dir, base, queries, truth) = generated(3000, 8, 300, Metric::Cosine, 2);
        let args = BenchArgs {
            base: "unused".into(),
            query: "unused".into(),
            gt: "unused".into(),
            index: IndexKind::Engine,
            metric: Metric::Cosine,
            k: 10,
            threads: None,
            search_threads: 1,
            batch: false,
            reps: 1,
            json: true,
            m: 8,
            ef_construction: 32,
            ef: vec![10],
            commit_every: 700,
            compaction: CompactionMode::None,
            compaction_threshold: 4,
            diskann_min_rows: 2048,
            db: None,
            rerank: vec![1],
            bits: 4,
            confidence: None,
            pq_subspaces: None,
            l: vec![64],
            recall: Vec::new(),
            beam_width: 1,
            reuse: false,
            ingest: false,
            seed: None,
            max_degree: None,
            build_l: None,
            passes: None,
            alpha: 1.2,
            codec: None,
            attributes: None,
            schema: None,
            filter: None,
            filter_plan: FilterPlanArg::Auto,
            churn: None,
            churn_rounds: 5,
            churn_mode: crate::churn::ChurnMode::Same,
            write_gt: None,
            deleted_rewrite: None,
            keep_versions: None,
        };
        let db_dir = dir.path().join("db");
        assert_eq!(load_engine(&args, &base, &db_dir, None).unwrap().commits, 5);
        let db = strata::Db::open(&db_dir).unwrap();
        assert_eq!(db.len(), 3000);
        let index = EngineIndex::new(db, db_dir, vec![Effort::List(10)]);
        assert!(index.disk_bytes() > 3000 * 8 * 4);
        let m = measure(&index, &queries, &truth, 10, 2);
        assert_eq!(m.recall, 1.0, "committed flat segments are searched exactly");

        // Compacted into one Vamana segment, reopened: the recall bar at the default search
        // (each segment at the L its calibration gives for the default recall).
        let args = BenchArgs { compaction: CompactionMode::Full, diskann_min_rows: 1000, ..args };
        let db_dir = dir.path().join("compacted");
        load_engine(&args, &base, &db_dir, None).unwrap();
        let db = strata::Db::open(&db_dir).unwrap();
        let kinds: Vec<_> = db.segments().iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [strata::compaction::SegmentKind::Vamana]);
        let index = EngineIndex::new(
            db,
            db_dir,
            vec![Effort::Recall(strata::SearchParams::DEFAULT_RECALL)],
        );
        assert!(index.ram_bytes() > 0);
        let m = measure(&index, &queries, &truth, 10, 2);
        assert!(m.recall >= 0.95, "recall {} through a compacted Vamana segment", m.recall);

        // Two rounds of 50% churn (delete, commit, the same rows again, commit, compact):
        // every row is back under its id, in a Vamana segment and a tail, at the same recall.
        let args = BenchArgs {
            compaction: CompactionMode::Sync,
            churn: Some(0.5),
            churn_rounds: 2,
            ..args
        };
        let db_dir = dir.path().join("churned");
        let loaded = load_engine(&args, &base, &db_dir, Some((&queries, &truth))).unwrap();
        let churned = loaded.churned.unwrap();
        assert_eq!(churned.rows_of_ids, (0..3000).collect::<Vec<u32>>());
        assert_eq!(churned.truth.data, truth.data, "the same rows: the same truth");
        let db = strata::Db::open(&db_dir).unwrap();
        assert_eq!(db.len(), 3000);
        let live: u64 = db.segments().iter().map(|s| s.live_rows).sum();
        assert_eq!(live, 3000, "superseded rows are dead in every segment");
        let index = EngineIndex::new(
            db,
            db_dir,
            vec![Effort::Recall(strata::SearchParams::DEFAULT_RECALL)],
        );
        let m = measure(&index, &queries, &truth, 10, 2);
        assert!(m.recall >= 0.95, "recall {} after churn", m.recall);

        // Replace: 2000 ids loaded, each round moves half of them to rows the load left out;
        // the database then holds exactly the rows the churn says, and the recomputed truth
        // is what the engine finds.
        let args = BenchArgs { churn_mode: crate::churn::ChurnMode::Replace, ..args };
        let db_dir = dir.path().join("replaced");
        let loaded = load_engine(&args, &base, &db_dir, Some((&queries, &truth))).unwrap();
        let churned = loaded.churned.unwrap();
        assert_eq!(churned.rows_of_ids.len(), 2000);
        assert!(churned.rows_of_ids.iter().any(|&row| row >= 2000), "moved to held-out rows");
        let db = strata::Db::open(&db_dir).unwrap();
        assert_eq!(db.len(), 2000);
        for (id, &row) in churned.rows_of_ids.iter().enumerate().step_by(97) {
            let stored = db.get(id as u64).unwrap().unwrap();
            let mut expected = base.row(row as usize).to_vec();
            strata_quantize::normalize(&mut expected).unwrap();
            assert!(stored.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-6), "id {id}");
        }
        let index = EngineIndex::new(
            db,
            db_dir,
            vec![Effort::Recall(strata::SearchParams::DEFAULT_RECALL)],
        );
        let m = measure(&index, &queries, &churned.truth, 10, 2);
        assert!(m.recall >= 0.95, "recall {} after replacing churn", m.recall);
    }

    #[test]
    fn coded_kinds_reach_the_rerank_bar_on_the_generated_data() {
        for metric in Metric::ALL {
            let (dir, base, queries, truth) = generated(3000, 32, 30, metric, 3);
            for (kind, rerank) in [
                (CodecKind::Sq8, 4),
                (CodecKind::Int4, 8),
                (CodecKind::Pq { subspaces: 8 }, 32),
                (CodecKind::RaBitQ { bits: 2 }, 16),
            ] {
                let path = dir.path().join(kind.to_string());
                let built = bench_codes::build(kind, metric, &base, &path, 2).unwrap();
                let index = built.segment;
                assert_eq!(index.code_len(), kind.code_len(32));
                assert!(index.ram_bytes() < index.disk_bytes() / 2, "{kind}: codes only");
                index.set_sweep_point(rerank);
                let m = measure(&index, &queries, &truth, 10, 2);
                assert!(
                    m.recall >= 0.99,
                    "{kind} {metric}: recall {} at rerank {rerank}",
                    m.recall
                );
            }
        }
    }

    #[test]
    fn diskann_kind_reaches_the_recall_bar_through_a_mapped_segment() {
        for metric in Metric::ALL {
            let (dir, base, queries, truth) = generated(3000, 32, 30, metric, 4);
            let options = BuildOptions::default().threads(2);
            let (index, report) = bench_diskann::build(
                options,
                metric,
                &base,
                &dir.path().join("vamana"),
                1,
                strata_segment_diskann::DEFAULT_RERANK_CONFIDENCE,
            )
            .unwrap();
            assert_eq!(report.segment.rows, 3000);
            assert!(index.segment().is_mapped(), "opened through the storage seam's map");
            assert!(index.ram_bytes() < index.disk_bytes() / 4, "codes only in RAM");
            index.set_sweep_point(32);
            let m = measure(&index, &queries, &truth, 10, 2);
            assert!(m.recall >= 0.95, "{metric}: recall {} at L 32", m.recall);
            let stats = index.sweep_stats();
            assert!(stats["sectors_per_query"].as_f64().unwrap() >= 10.0, "{stats:?}");
        }
    }

    #[test]
    fn mismatched_inputs_are_refused() {
        let args = BenchArgs {
            base: "b".into(),
            query: "q".into(),
            gt: "g".into(),
            index: IndexKind::Flat,
            metric: Metric::L2,
            k: 10,
            threads: None,
            search_threads: 1,
            batch: false,
            reps: 1,
            json: true,
            m: 16,
            ef_construction: 200,
            ef: vec![10],
            commit_every: 10_000,
            compaction: CompactionMode::Auto,
            compaction_threshold: 4,
            diskann_min_rows: 2048,
            db: None,
            rerank: vec![1],
            bits: 4,
            confidence: None,
            pq_subspaces: None,
            l: vec![64],
            recall: Vec::new(),
            beam_width: 1,
            reuse: false,
            ingest: false,
            seed: None,
            max_degree: None,
            build_l: None,
            passes: None,
            alpha: 1.2,
            codec: None,
            attributes: None,
            schema: None,
            filter: None,
            filter_plan: FilterPlanArg::Auto,
            churn: None,
            churn_rounds: 5,
            churn_mode: crate::churn::ChurnMode::Same,
            write_gt: None,
            deleted_rewrite: None,
            keep_versions: None,
        };
        let base = Vectors { dim: 2, data: vec![0.0; 20] };
        let queries = Vectors { dim: 2, data: vec![0.0; 4] };
        let truth = Vectors { dim: 10, data: (0..20).map(|i| i % 10).collect() };
        assert!(check_inputs(&args, &base, &queries, &truth).is_ok());
        let wrong_dim = Vectors { dim: 4, data: vec![0.0; 4] };
        assert!(check_inputs(&args, &base, &wrong_dim, &truth).unwrap_err().contains("dimension"));
        let few_columns = Vectors { dim: 5, data: vec![0; 10] };
        assert!(check_inputs(&args, &base, &queries, &few_columns).unwrap_err().contains("--k"));
        let out_of_range = Vectors { dim: 10, data: (0..20).collect() };
        assert!(
            check_inputs(&args, &base, &queries, &out_of_range).unwrap_err().contains("not a row")
        );
    }
}
