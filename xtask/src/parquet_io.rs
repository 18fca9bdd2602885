//! Parquet files in and out: `bulk-load --input FILE.parquet` and `export`. Columns are the
//! engine's Arrow layout (`strata::arrow`): `id`, `vector`, attribute columns, `_payload`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema as ArrowSchema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use strata::arrow::PAYLOAD_COLUMN;
use strata::{AttrType, Db, Options, Schema, Version};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// What `bulk-load` asks of a Parquet load (its options, without the vector-file ones).
#[derive(Debug, Clone)]
pub struct ParquetLoad<'a> {
    pub db: &'a str,
    pub input: &'a Path,
    pub create: bool,
    pub dim: Option<usize>,
    pub metric: strata::Metric,
    pub schema: Option<&'a str>,
    /// Through `upsert_arrow` and commits, instead of `ingest_arrow`.
    pub upsert: bool,
    pub batch: usize,
    pub commit_every: usize,
    pub wait_compaction: bool,
}

/// What a load did: rows, commits, seconds.
pub type Loaded = (usize, usize, f64);

/// The attribute schema a Parquet file's columns describe (columns other than `id`, `vector`
/// and `_payload` whose type maps to an attribute type; others are left out).
fn schema_of(arrow: &ArrowSchema) -> Schema {
    let mut schema = Schema::new();
    for field in arrow.fields() {
        let name = field.name().as_str();
        if matches!(name, "id" | "vector" | PAYLOAD_COLUMN) {
            continue;
        }
        let ty = match field.data_type() {
            DataType::UInt64 | DataType::UInt32 => AttrType::U64,
            DataType::Int64 | DataType::Int32 => AttrType::I64,
            DataType::Float64 | DataType::Float32 => AttrType::F64,
            DataType::Boolean => AttrType::Bool,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => AttrType::Keyword,
            DataType::List(item) if item.data_type() == &DataType::Utf8 => AttrType::Keywords,
            _ => continue,
        };
        schema = schema.with(name, ty);
    }
    schema
}

/// The dimension of a `vector` column of fixed size.
fn dim_of(arrow: &ArrowSchema, path: &Path) -> Result<usize> {
    let field = arrow
        .field_with_name("vector")
        .map_err(|_| format!("{}: no `vector` column", path.display()))?;
    match field.data_type() {
        DataType::FixedSizeList(_, size) if *size > 0 => Ok(*size as usize),
        other => Err(format!(
            "{}: column `vector` is {other}; a FixedSizeList<Float32> gives the dimension (or pass --dim)",
            path.display()
        )
        .into()),
    }
}

/// Loads a Parquet file: each commit's rows in one `Db::ingest_arrow` (or, with --via upsert,
/// each batch through `Db::upsert_arrow`, then a commit); `bar` shows the rows loaded.
pub fn load(args: &ParquetLoad<'_>, bar: &indicatif::ProgressBar) -> Result<Loaded> {
    let open = |path: &Path| File::open(path).map_err(|e| format!("{}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(open(args.input)?)
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    let rows = builder.metadata().file_metadata().num_rows().max(0) as usize;
    let arrow = builder.schema().clone();
    if arrow.field_with_name("id").is_err() {
        return Err(format!("{}: no `id` column", args.input.display()).into());
    }
    let db = if args.create {
        let dim = match args.dim {
            Some(dim) => dim,
            None => dim_of(&arrow, args.input)?,
        };
        let schema = match args.schema {
            Some(text) => Schema::parse(text)?,
            None => schema_of(&arrow),
        };
        Db::create(args.db, Options::new(dim, args.metric).attributes(schema))?
    } else {
        Db::open(args.db)?
    };
    // Read only what the database takes: other columns (text, say) stay in the file.
    let wanted: Vec<usize> = arrow
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            let name = f.name().as_str();
            matches!(name, "id" | "vector" | PAYLOAD_COLUMN)
                || db.options().schema().column(name).is_some()
        })
        .map(|(i, _)| i)
        .collect();
    let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(args.batch.max(1))
        .build()
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    bar.set_length(rows as u64);
    let started = Instant::now();
    let every = args.commit_every.max(1);
    let (mut pending, mut pending_rows) = (Vec::<RecordBatch>::new(), 0usize);
    let (mut loaded, mut commits) = (0usize, 0usize);
    let flush = |batches: &mut Vec<RecordBatch>, first: usize| -> Result<()> {
        let Some(schema) = batches.first().map(RecordBatch::schema) else { return Ok(()) };
        let batch = arrow_select::concat::concat_batches(&schema, batches.iter())?;
        batches.clear();
        db.ingest_arrow(&batch).map_err(|e| format!("rows {first}..: {e}"))?;
        Ok(())
    };
    let interrupt = crate::progress::interrupted();
    for batch in reader {
        if interrupt.is_cancelled() {
            db.close()?;
            return Err(format!(
                "interrupted after {loaded} rows: the database holds its last commit ({commits} commits of this load)"
            )
            .into());
        }
        let batch = batch.map_err(|e| format!("{}: {e}", args.input.display()))?;
        let n = batch.num_rows();
        match args.upsert {
            true => {
                db.upsert_arrow(&batch).map_err(|e| format!("rows {loaded}..: {e}"))?;
                pending_rows += n;
                if pending_rows >= every {
                    db.commit()?;
                    commits += 1;
                    pending_rows = 0;
                }
            }
            false => {
                pending.push(batch);
                pending_rows += n;
                if pending_rows >= every {
                    flush(&mut pending, loaded + n - pending_rows)?;
                    commits += 1;
                    pending_rows = 0;
                }
            }
        }
        loaded += n;
        bar.set_position(loaded as u64);
    }
    if pending_rows > 0 {
        match args.upsert {
            true => drop(db.commit()?),
            false => flush(&mut pending, loaded - pending_rows)?,
        }
        commits += 1;
    }
    bar.finish_and_clear();
    if args.wait_compaction {
        db.compact_with(&crate::progress::control(bar))?;
    }
    db.close()?;
    Ok((loaded, commits, started.elapsed().as_secs_f64()))
}

/// Write a database's records to a Parquet file.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The database: a local directory or an object store URL.
    #[arg(long)]
    pub db: String,
    /// The Parquet file to write (replaced if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// The committed version to export [default: the newest].
    #[arg(long)]
    pub version: Option<u64>,
    /// Rows per record batch (and at most per row group).
    #[arg(long, default_value_t = 65_536)]
    pub batch_rows: usize,
    /// Compression of the file's pages: zstd, snappy or none.
    #[arg(long, default_value = "zstd")]
    pub compression: String,
}

/// Runs `cargo xtask export`.
pub fn export(args: &ExportArgs) -> Result<()> {
    let snapshot = match args.version {
        Some(version) => Db::open_at(&args.db, Version(version))?,
        None => Db::open_read_only(&args.db)?.snapshot(),
    };
    let compression = match args.compression.as_str() {
        "zstd" => Compression::ZSTD(ZstdLevel::default()),
        "snappy" => Compression::SNAPPY,
        "none" => Compression::UNCOMPRESSED,
        other => return Err(format!("--compression {other}: zstd, snappy or none").into()),
    };
    let properties = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(args.batch_rows.max(1)))
        .build();
    let started = Instant::now();
    let scan = snapshot.scan_arrow(args.batch_rows);
    let file = File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut writer = ArrowWriter::try_new(file, scan.schema(), Some(properties))?;
    let mut rows = 0;
    for batch in scan {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.close()?;
    println!(
        "exported {rows} records of version {} to {} in {:.2} s",
        snapshot.version(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
