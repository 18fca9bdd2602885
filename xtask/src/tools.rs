//! The database tools: `bulk-load`, `search`, `inspect`, `compact` and `gc`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata::compaction::SegmentKind;
use strata::{Db, Filter, Metric, Options, SearchParams};

use crate::input::VectorFile;
use crate::input::read_ground_truth;
use crate::measure::percentile;
use crate::progress::{bar, control, interrupted, stage_bar};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Load vectors from a file into a database, committing as it goes.
#[derive(Debug, Clone, clap::Args)]
pub struct BulkLoadArgs {
    /// The database: a local directory, or an object store URL (s3://bucket/prefix, gs://...,
    /// memory://name).
    #[arg(long)]
    pub db: String,
    /// Vectors to load: .fvecs, .bvecs (bytes, loaded as floats), .npy (2-d float32, C order),
    /// or .parquet (columns `id`, `vector` as a FixedSizeList<Float32>, attribute columns,
    /// `_payload`, as `export` writes; other columns are not read). A vector file is
    /// memory-mapped; do not change it while it loads.
    #[arg(long)]
    pub input: PathBuf,
    /// Create the database (it must not exist) instead of opening it.
    #[arg(long)]
    pub create: bool,
    /// With --create: the dimension [default: the input's].
    #[arg(long)]
    pub dim: Option<usize>,
    /// With --create: the metric, l2, ip or cosine.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// How rows go in: `ingest` writes each commit's rows straight into a segment that the
    /// background worker folds into the Vamana graph (the bulk path, `Db::ingest`); `upsert`
    /// inserts them into the memtable's graph first (`Db::upsert_batch`, then `Db::commit`).
    #[arg(long, value_enum, default_value_t = LoadPath::Ingest)]
    pub via: LoadPath,
    /// Rows read (and, with --via upsert, upserted) at a time.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Rows between commits; the last partial group is committed at the end. A bad row stops
    /// the load with the database at its last commit.
    #[arg(long, default_value_t = 100_000)]
    pub commit_every: usize,
    /// Record ids: `row` (the row number in the file) or `file:PATH` (a text file, one
    /// unsigned integer per line, as many lines as rows).
    #[arg(long, default_value = "row")]
    pub ids: String,
    /// Wait for background compaction to finish before exiting.
    #[arg(long)]
    pub wait_compaction: bool,
    /// Attributes of the rows: JSON Lines, one object per input row in the same order
    /// (`"payload"`: a string stored as the record's payload).
    #[arg(long)]
    pub attributes: Option<PathBuf>,
    /// With --create and --attributes: the schema as `name:type,...` (types u64, i64, f64,
    /// bool, keyword, keywords) [default: inferred from the first 1000 rows].
    #[arg(long)]
    pub schema: Option<String>,
}

/// How `bulk-load` writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadPath {
    Ingest,
    Upsert,
}

/// What a load did.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub rows: usize,
    pub commits: usize,
    pub seconds: f64,
}

pub fn bulk_load(args: &BulkLoadArgs) -> Result<()> {
    let report = load(args, true)?;
    println!(
        "loaded {} rows in {:.2} s ({:.0} rows/s), {} commits",
        report.rows,
        report.seconds,
        report.rows as f64 / report.seconds.max(1e-9),
        report.commits
    );
    Ok(())
}

/// Loads `args.input` into `args.db`; `progress` draws a bar on a terminal.
pub fn load(args: &BulkLoadArgs, progress: bool) -> Result<LoadReport> {
    if args.input.extension().is_some_and(|e| e == "parquet") {
        if args.ids != "row" {
            return Err("--ids applies to vector files; a Parquet file has an `id` column".into());
        }
        let parquet = crate::parquet_io::ParquetLoad {
            db: &args.db,
            input: &args.input,
            create: args.create,
            dim: args.dim,
            metric: args.metric,
            schema: args.schema.as_deref(),
            upsert: args.via == LoadPath::Upsert,
            batch: args.batch,
            commit_every: args.commit_every,
            wait_compaction: args.wait_compaction,
        };
        let (rows, commits, seconds) =
            crate::parquet_io::load(&parquet, &bar(progress, 0, "rows"))?;
        return Ok(LoadReport { rows, commits, seconds });
    }
    let input = VectorFile::open(&args.input)?;
    let ids = read_ids(&args.ids, input.rows())?;
    let attributes = args
        .attributes
        .as_deref()
        .map(|path| crate::attributes::read_attributes(path, args.schema.as_deref()))
        .transpose()?;
    if let Some((_, rows)) = &attributes
        && rows.len() != input.rows()
    {
        let path = args.attributes.as_deref().expect("read").display();
        return Err(format!("{path} holds {} rows for {} vectors", rows.len(), input.rows()).into());
    }
    let db = if args.create {
        let dim = args.dim.unwrap_or(input.dim());
        if dim != input.dim() {
            // Refused before creating, so a typo leaves no empty database behind.
            return Err(format!(
                "--dim {dim} does not match {}: its vectors have {} dimensions",
                input.path().display(),
                input.dim()
            )
            .into());
        }
        let schema = attributes.as_ref().map(|(schema, _)| schema.clone()).unwrap_or_default();
        Db::create(&args.db, Options::new(dim, args.metric).attributes(schema))?
    } else {
        Db::open(&args.db)?
    };
    if input.dim() != db.dim() {
        return Err(format!(
            "{} has {}-dimensional vectors, but the database {} holds {}-dimensional ones",
            input.path().display(),
            input.dim(),
            args.db,
            db.dim()
        )
        .into());
    }
    let bar = bar(progress, input.rows() as u64, "rows");
    let started = Instant::now();
    // A batch never spans a commit point, so commits land every `commit_every` rows.
    let every = args.commit_every.max(1);
    let batch = args.batch.clamp(1, every);
    let mut rows = Vec::new();
    let mut group_ids = Vec::new();
    let mut commits = 0;
    let mut since_commit = 0;
    let mut group_start = 0;
    let interrupt = interrupted();
    for start in (0..input.rows()).step_by(batch) {
        if interrupt.is_cancelled() {
            bar.finish_and_clear();
            db.close()?;
            return Err(format!(
                "interrupted after {start} rows: the database holds its last commit ({commits} commits of this load)"
            )
            .into());
        }
        let end = (start + batch).min(input.rows());
        if args.via == LoadPath::Upsert {
            rows.clear();
            group_ids.clear();
        }
        input.read_rows(start..end, &mut rows)?;
        match &ids {
            Some(ids) => group_ids.extend_from_slice(&ids[start..end]),
            None => group_ids.extend(start as u64..end as u64),
        }
        since_commit += end - start;
        let commit_now = since_commit >= every || end == input.rows();
        match args.via {
            LoadPath::Upsert => {
                match &attributes {
                    Some((_, all)) => db.upsert_batch_with(&group_ids, &rows, &all[start..end]),
                    None => db.upsert_batch(&group_ids, &rows),
                }
                .map_err(|e| format!("rows {start}..{end}: {e}"))?;
                if commit_now {
                    db.commit()?;
                }
            }
            LoadPath::Ingest if commit_now => {
                match &attributes {
                    Some((_, all)) => db.ingest_with(&group_ids, &rows, &all[group_start..end]),
                    None => db.ingest(&group_ids, &rows),
                }
                .map_err(|e| format!("rows {group_start}..{end}: {e}"))?;
                rows.clear();
                group_ids.clear();
                group_start = end;
            }
            LoadPath::Ingest => {}
        }
        if commit_now {
            commits += 1;
            since_commit = 0;
            input.release_resident();
        }
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();
    if args.wait_compaction {
        let stages = stage_bar(progress);
        db.compact_with(&control(&stages))?;
        stages.finish_and_clear();
    }
    db.close()?;
    Ok(LoadReport { rows: input.rows(), commits, seconds: started.elapsed().as_secs_f64() })
}

fn read_ids(spec: &str, rows: usize) -> Result<Option<Vec<u64>>> {
    if spec == "row" {
        return Ok(None);
    }
    let Some(path) = spec.strip_prefix("file:") else {
        return Err(format!("--ids takes `row` or `file:PATH`, not {spec:?}").into());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let ids: Vec<u64> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            line.trim().parse::<u64>().map_err(|_| format!("{path}:{}: not an id: {line:?}", n + 1))
        })
        .collect::<Result<_, _>>()?;
    if ids.len() != rows {
        return Err(format!("{path} holds {} ids for {rows} rows", ids.len()).into());
    }
    Ok(Some(ids))
}

/// Search a database with the vectors of a file.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// The database: a local directory or an object store URL.
    #[arg(long)]
    pub db: String,
    /// Query vectors: .fvecs, .bvecs or .npy.
    #[arg(long)]
    pub query: PathBuf,
    /// Results per query.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Ground truth (.ivecs, nearest ids first): print recall@k instead of the results.
    #[arg(long)]
    pub gt: Option<PathBuf>,
    /// One candidate list (L) for every Vamana segment search; higher is more accurate and
    /// slower [default: each segment's calibrated L for --recall].
    #[arg(long, conflicts_with = "recall")]
    pub l: Option<usize>,
    /// The recall@10 each Vamana segment is searched for: the smallest L its build measured
    /// reaching it.
    #[arg(long, default_value_t = SearchParams::DEFAULT_RECALL)]
    pub recall: f32,
    /// Candidate list of memtable graph searches (ef).
    #[arg(long, default_value_t = SearchParams::DEFAULT_EF)]
    pub ef: usize,
    /// Return only records matching this WHERE clause (`lang = 'de' AND ts >= 500000`).
    /// Ground truth for a filter may pad with -1 where fewer rows match (see `filtered-gt`).
    #[arg(long)]
    pub filter: Option<String>,
}

/// Recall and latency of a query set.
#[derive(Debug, Clone, Copy)]
pub struct SearchReport {
    pub queries: usize,
    pub recall: Option<f64>,
    pub p50: Duration,
    pub p99: Duration,
}

pub fn search(args: &SearchArgs) -> Result<()> {
    let db = Db::open_read_only(&args.db)?;
    let queries = VectorFile::open_queries(&args.query)?;
    let truth = args.gt.as_deref().map(read_ground_truth).transpose()?;
    let params = SearchParams::new(args.k).recall(args.recall).ef(args.ef);
    let params = match args.l {
        Some(l) => params.search_list(l),
        None => params,
    };
    let params = match &args.filter {
        Some(text) => params.filter(Filter::parse(text).map_err(|e| format!("--filter: {e}"))?),
        None => params,
    };
    let effort = match args.l {
        Some(l) => format!("L {l}"),
        None => format!("recall {}", args.recall),
    };
    let report = run_queries(&db, &queries, truth.as_ref(), params, |i, hits| {
        if args.gt.is_none() {
            let row: Vec<String> =
                hits.iter().map(|n| format!("{}:{:.6}", n.id, n.distance)).collect();
            println!("{i}\t{}", row.join(" "));
        }
    })?;
    if let Some(recall) = report.recall {
        println!(
            "recall@{} {recall:.4} over {} queries ({effort}, ef {}); latency p50 {:.1} us, p99 {:.1} us",
            args.k,
            report.queries,
            args.ef,
            report.p50.as_secs_f64() * 1e6,
            report.p99.as_secs_f64() * 1e6
        );
    }
    Ok(())
}

/// Runs every query of `queries` one at a time, handing each result to `each`; with ground
/// truth, measures recall@k.
pub fn run_queries(
    db: &Db,
    queries: &VectorFile,
    truth: Option<&crate::vecs::Vectors<i32>>,
    params: SearchParams,
    mut each: impl FnMut(usize, &[strata::Neighbor]),
) -> Result<SearchReport> {
    if queries.dim() != db.dim() {
        return Err(format!(
            "{} has {}-dimensional queries, but the database holds {}-dimensional vectors",
            queries.path().display(),
            queries.dim(),
            db.dim()
        )
        .into());
    }
    if let Some(truth) = truth {
        if truth.rows() < queries.rows() {
            return Err(format!(
                "the ground truth has {} rows for {} queries",
                truth.rows(),
                queries.rows()
            )
            .into());
        }
        if truth.dim < params.k() {
            return Err(format!(
                "the ground truth holds {} ids per query, fewer than k",
                truth.dim
            )
            .into());
        }
    }
    let vectors = queries.read_all()?;
    let mut latencies = Vec::with_capacity(queries.rows());
    let (mut found, mut wanted) = (0usize, 0usize);
    for (i, query) in vectors.chunks_exact(queries.dim()).enumerate() {
        let started = Instant::now();
        let hits = db.search_with(query, params.clone())?;
        latencies.push(started.elapsed());
        if let Some(truth) = truth {
            // A filtered ground truth pads with -1 where fewer rows match.
            let want = &truth.row(i)[..params.k()];
            let valid = want.iter().filter(|&&id| id >= 0).count();
            found += hits.iter().filter(|n| want.contains(&(n.id as i32))).count();
            wanted += valid;
        }
        each(i, &hits);
    }
    let mut seconds: Vec<f64> = latencies.iter().map(Duration::as_secs_f64).collect();
    seconds.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| Duration::from_secs_f64(percentile(&seconds, q));
    Ok(SearchReport {
        queries: latencies.len(),
        recall: truth.map(|_| if wanted == 0 { 1.0 } else { found as f64 / wanted as f64 }),
        p50: at(0.5),
        p99: at(0.99),
    })
}

/// Describe a database: versions, options, segments.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The database: a local directory or an object store URL.
    #[arg(long)]
    pub db: String,
}

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let db = Db::open_read_only(&args.db)?;
    print!("{}", describe(&db, &args.db)?);
    Ok(())
}

/// The `inspect` report: `Db::stats` and the version history.
pub fn describe(db: &Db, location: &str) -> Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let versions = db.versions()?;
    let stats = db.stats()?;
    let options = db.options();
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    writeln!(out, "database   {location}")?;
    writeln!(out, "version    {} (stored: {})", stats.version, list(&versions))?;
    if let Some(last) = versions.last() {
        let age = last.committed_at.elapsed().unwrap_or_default();
        writeln!(out, "committed  {:.0} s ago", age.as_secs_f64())?;
    }
    writeln!(
        out,
        "records    {} ({} deleted rows still stored)",
        stats.records, stats.deleted_rows
    )?;
    writeln!(out, "options    dim {}, metric {}", options.dim(), options.metric())?;
    writeln!(out, "           {options:?}")?;
    if !options.schema().is_empty() {
        writeln!(out, "attributes {}", options.schema())?;
    }
    let memtables = &stats.memtables;
    writeln!(
        out,
        "memtables  {} rows active, {} pending tiers of {} rows, {:.1} MiB",
        memtables.active_rows,
        memtables.pending_tiers,
        memtables.pending_rows,
        mib(memtables.bytes)
    )?;
    writeln!(out, "segments   {}", stats.segments.len())?;
    for kind in &stats.by_kind {
        writeln!(
            out,
            "  {:<7}  {} segments, {} rows ({} live), {:.1} MiB on disk, {:.1} MiB RAM, codes {}",
            kind_name(kind.kind),
            kind.segments,
            kind.rows,
            kind.live_rows,
            mib(kind.file_bytes),
            mib(kind.ram_bytes),
            if kind.codecs.is_empty() { "-".to_owned() } else { kind.codecs.join(", ") }
        )?;
    }
    writeln!(
        out,
        "{:>8}  {:<6}  {:>10}  {:>10}  {:>8}  {:>12}  {:>10}  codes",
        "id", "kind", "rows", "live", "deleted", "file bytes", "RAM bytes"
    )?;
    for s in &stats.segments {
        writeln!(
            out,
            "{:>8}  {:<6}  {:>10}  {:>10}  {:>7.1}%  {:>12}  {:>10}  {}",
            s.info.id,
            kind_name(s.info.kind),
            s.info.rows,
            s.live_rows_now,
            100.0 * (s.info.rows - s.live_rows_now) as f64 / s.info.rows.max(1) as f64,
            s.file_bytes,
            s.ram_bytes,
            s.codes.as_deref().unwrap_or("-")
        )?;
    }
    let ram = &stats.ram;
    writeln!(
        out,
        "total      {} file bytes; {} bytes in RAM: memtables {}, id index {}, codes {}, attributes {}, deletion bitmaps {}",
        stats.disk_bytes,
        ram.total,
        ram.memtables,
        ram.id_index,
        ram.segment_codes,
        ram.attributes,
        ram.deletion_bitmaps
    )?;
    if ram.attributes > 0 {
        let rows: u64 = stats.segments.iter().map(|s| s.info.rows).sum();
        writeln!(
            out,
            "           attribute columns and indexes: {:.1} bytes per row",
            ram.attributes as f64 / rows.max(1) as f64
        )?;
    }
    let compaction = &stats.compaction;
    match &compaction.planned {
        Some(plan) => writeln!(
            out,
            "compaction planned: {} segments, {} live rows into a {} segment",
            plan.inputs,
            plan.live_rows,
            kind_name(plan.output)
        )?,
        None => writeln!(out, "compaction nothing planned")?,
    }
    if let Some(error) = &compaction.error {
        writeln!(out, "           failing: {error}")?;
    }
    Ok(out)
}

fn kind_name(kind: SegmentKind) -> &'static str {
    match kind {
        SegmentKind::Flat => "flat",
        SegmentKind::Vamana => "vamana",
    }
}

fn list(versions: &[strata::VersionInfo]) -> String {
    match versions {
        [] => "none".into(),
        [one] => one.version.to_string(),
        [first, .., last] => {
            format!("{}..={}, {} versions", first.version, last.version, versions.len())
        }
    }
}

/// Run compaction to completion.
#[derive(Debug, Clone, clap::Args)]
pub struct CompactArgs {
    /// The database: a local directory or an object store URL.
    #[arg(long)]
    pub db: String,
    /// Merge every segment into one (otherwise the size-tiered policy decides).
    #[arg(long)]
    pub full: bool,
}

pub fn compact(args: &CompactArgs) -> Result<()> {
    let db = Db::open(&args.db)?;
    if args.full {
        db.set_compaction_policy(std::sync::Arc::new(strata::compaction::CompactAll));
    }
    let (before, from) = (db.segment_details().len(), db.version());
    let stages = stage_bar(true);
    // (The background worker may run some of the work; the result is the same.) Ctrl-C stops
    // the merge in progress, which publishes nothing.
    db.compact_with(&control(&stages))?;
    stages.finish_and_clear();
    println!(
        "{before} -> {} segments, version {from} -> {}",
        db.segment_details().len(),
        db.version()
    );
    db.close()?;
    Ok(())
}

/// Delete what retention no longer protects.
#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// The database: a local directory or an object store URL.
    #[arg(long)]
    pub db: String,
}

pub fn gc(args: &GcArgs) -> Result<()> {
    let db = Db::open(&args.db)?;
    let stats = db.gc_with(&control(&stage_bar(true)))?;
    println!("removed {} manifest versions and {} files", stats.manifests, stats.files);
    db.close()?;
    Ok(())
}

/// Removes a directory tree if it exists.
pub fn remove_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
