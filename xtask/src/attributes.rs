//! Attributes on the command line: JSON Lines files (one object per base row, in row order),
//! their schema (inferred or given), generated attribute sets for the filter benchmarks, and
//! exact ground truth under a filter.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Map, Value as Json};
use strata::{AttrType, Attributes, Filter, Metric, Schema, Value};
use strata_attributes::Record;
use strata_quantize::rng::SplitMix64;

use crate::exact::ExactIndex;
use crate::generate::ground_truth;
use crate::input::read_vectors;
use crate::vecs::{Vectors, write_ivecs};

/// Rows read to infer a schema.
const INFER_ROWS: usize = 1000;

/// Reads `path` (JSON Lines, one object per row) as attributes under `schema`, or under the
/// schema inferred from the first rows: integers as u64 (i64 if any is negative), other
/// numbers as f64, booleans, strings as keywords, arrays of strings as keyword lists. A key
/// `"payload"` holding a string is the record's payload, not an attribute.
pub fn read_attributes(
    path: &Path,
    schema: Option<&str>,
) -> Result<(Schema, Vec<Attributes>), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut objects = Vec::new();
    for (line_number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Json = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{}: {e}", path.display(), line_number + 1))?;
        let Json::Object(object) = value else {
            return Err(format!("{}:{}: not a JSON object", path.display(), line_number + 1));
        };
        objects.push(object);
    }
    let schema = match schema {
        Some(text) => Schema::parse(text).map_err(|e| e.to_string())?,
        None => infer_schema(&objects[..objects.len().min(INFER_ROWS)])?,
    };
    let attributes = objects
        .iter()
        .enumerate()
        .map(|(row, object)| {
            to_attributes(&schema, object)
                .map_err(|e| format!("{}: row {row}: {e}", path.display()))
        })
        .collect::<Result<_, _>>()?;
    Ok((schema, attributes))
}

fn infer_schema(objects: &[Map<String, Json>]) -> Result<Schema, String> {
    let mut columns: Vec<(String, AttrType)> = Vec::new();
    for object in objects {
        for (name, value) in object {
            if name == "payload" {
                continue;
            }
            let ty = match value {
                Json::Null => continue,
                Json::Bool(_) => AttrType::Bool,
                Json::Number(n) if n.is_u64() => AttrType::U64,
                Json::Number(n) if n.is_i64() => AttrType::I64,
                Json::Number(_) => AttrType::F64,
                Json::String(_) => AttrType::Keyword,
                Json::Array(_) => AttrType::Keywords,
                Json::Object(_) => {
                    return Err(format!("{name}: nested objects are not attributes"));
                }
            };
            match columns.iter_mut().find(|(n, _)| n == name) {
                None => columns.push((name.clone(), ty)),
                Some((_, known)) if *known == ty => {}
                // Widen numbers; a keyword seen once as a list is a list.
                Some((_, known)) => {
                    *known = match (*known, ty) {
                        (AttrType::U64, AttrType::I64) | (AttrType::I64, AttrType::U64) => {
                            AttrType::I64
                        }
                        (a, b) if a.is_ordered() && b.is_ordered() => AttrType::F64,
                        (a, b) if a.is_keyword() && b.is_keyword() => AttrType::Keywords,
                        (a, b) => return Err(format!("{name}: both {a} and {b} values")),
                    }
                }
            }
        }
    }
    let schema = columns.into_iter().fold(Schema::new(), |s, (name, ty)| s.with(name, ty));
    schema.validate().map_err(|e| e.to_string())?;
    Ok(schema)
}

fn to_attributes(schema: &Schema, object: &Map<String, Json>) -> Result<Attributes, String> {
    let mut attributes = Attributes::new();
    for (name, value) in object {
        if name == "payload"
            && let Json::String(text) = value
        {
            attributes = attributes.payload(text.as_bytes().to_vec());
            continue;
        }
        let Some((_, column)) = schema.column(name) else {
            return Err(format!("attribute {name:?} is not in the schema {schema}"));
        };
        let value = match (value, column.ty) {
            (Json::Null, _) => continue,
            (Json::Bool(b), _) => Value::Bool(*b),
            (Json::Number(n), AttrType::F64) => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
            (Json::Number(n), _) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Value::U64(u),
                (None, Some(i)) => Value::I64(i),
                _ => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
            },
            (Json::String(s), _) => Value::Keyword(s.clone()),
            (Json::Array(items), _) => Value::Keywords(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).ok_or("a list of non-strings"))
                    .collect::<Result<_, _>>()?,
            ),
            (Json::Object(_), _) => return Err(format!("{name}: a nested object")),
        };
        attributes = attributes.set(name.clone(), value);
    }
    Ok(attributes)
}

/// Seed streams of `gen-attributes`, apart from every stream `gen` draws vectors from.
const ATTRIBUTE_STREAM: u64 = 5 << 40;
const DIRECTION_STREAM: u64 = 6 << 40;

/// Generate filter-benchmark attributes for a base file.
#[derive(Debug, Args)]
pub struct GenAttributesArgs {
    /// Base vectors (.fvecs, .bvecs or .npy).
    #[arg(long)]
    pub base: PathBuf,
    /// Output JSON Lines file.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Writes, per base row, attributes drawn independently of the vector and one correlated
/// with it:
/// - `half` (bool, 50%), `u10` (0..10: `u10 = 3` is 10%), `tag` (`t0`..`t99`: 1%), `u1000`
///   (0..1000: 0.1%), `ts` (the row number, for ranges);
/// - `pct`: the row's percentile (0..1000) along a random direction, so `pct < 100` is the 10%
///   of rows in one slab of the space (a region, correlated with the vectors).
pub fn gen_attributes(args: &GenAttributesArgs) -> Result<(), Box<dyn std::error::Error>> {
    let base = read_vectors(&args.base)?;
    let rows = base.rows();
    // Streams apart from `gen`'s (base rows use stream `row`, queries `1 << 40` on): drawn
    // from the same streams, "independent" tags were functions of each row's cluster draw.
    let mut rng = SplitMix64::new(args.seed, DIRECTION_STREAM);
    let direction: Vec<f32> = (0..base.dim).map(|_| rng.normal() as f32).collect();
    let mut along: Vec<(f32, usize)> =
        (0..rows).map(|r| (strata_quantize::dot(base.row(r), &direction), r)).collect();
    along.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut pct = vec![0u64; rows];
    for (rank, &(_, row)) in along.iter().enumerate() {
        pct[row] = (rank as u64 * 1000) / rows as u64;
    }
    let mut out = BufWriter::new(std::fs::File::create(&args.out)?);
    for (row, pct) in pct.iter().enumerate() {
        let mut rng = SplitMix64::new(args.seed, ATTRIBUTE_STREAM + row as u64);
        let object = serde_json::json!({
            "half": rng.below(2) == 0,
            "u10": rng.below(10),
            "tag": format!("t{}", rng.below(100)),
            "u1000": rng.below(1000),
            "ts": row,
            "pct": pct,
        });
        writeln!(out, "{object}")?;
    }
    out.flush()?;
    eprintln!("wrote attributes of {rows} rows to {}", args.out.display());
    Ok(())
}

/// Exact ground truth under a filter.
#[derive(Debug, Args)]
pub struct FilteredGtArgs {
    #[arg(long)]
    pub base: PathBuf,
    #[arg(long)]
    pub query: PathBuf,
    /// Attributes of the base rows (JSON Lines).
    #[arg(long)]
    pub attributes: PathBuf,
    /// The schema as name:type,... [default: inferred from the first rows].
    #[arg(long)]
    pub schema: Option<String>,
    /// The filter (a WHERE clause).
    #[arg(long)]
    pub filter: String,
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Neighbours per query; rows past the matching ones are -1.
    #[arg(long, default_value_t = 100)]
    pub k: usize,
    /// Output .ivecs.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the matching rows as one byte (0 or 1) per base row, for the peers.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The base rows matching `filter`, in row order.
pub fn matching_rows(
    schema: &Schema,
    attributes: &[Attributes],
    filter: &str,
) -> Result<Vec<usize>, String> {
    let predicate =
        Filter::parse(filter).and_then(|f| f.bind(schema)).map_err(|e| format!("--filter: {e}"))?;
    attributes
        .iter()
        .enumerate()
        .map(|(row, a)| {
            let record =
                Record::from_attributes(schema, a).map_err(|e| format!("row {row}: {e}"))?;
            Ok(predicate.matches(&record).then_some(row))
        })
        .filter_map(Result::transpose)
        .collect()
}

pub fn filtered_gt(args: &FilteredGtArgs) -> Result<(), Box<dyn std::error::Error>> {
    let threads = args.threads.unwrap_or_else(crate::all_cores);
    let base = read_vectors(&args.base)?;
    let queries = crate::input::read_queries(&args.query)?;
    let (schema, attributes) = read_attributes(&args.attributes, args.schema.as_deref())?;
    if attributes.len() != base.rows() {
        return Err(
            format!("{} attribute rows for {} base rows", attributes.len(), base.rows()).into()
        );
    }
    let rows = matching_rows(&schema, &attributes, &args.filter)?;
    if let Some(mask) = &args.mask {
        let mut bytes = vec![0u8; base.rows()];
        for &row in &rows {
            bytes[row] = 1;
        }
        std::fs::write(mask, bytes)?;
    }
    let k = args.k;
    let mut truth = Vectors { dim: k, data: vec![-1i32; queries.rows() * k] };
    if !rows.is_empty() {
        let subset: Vec<f32> = rows.iter().flat_map(|&r| base.row(r).iter().copied()).collect();
        let index = ExactIndex::new(args.metric, base.dim, subset)?;
        let found = ground_truth(&index, &queries, k, threads);
        for q in 0..queries.rows() {
            for (slot, &sub) in truth.data[q * k..(q + 1) * k].iter_mut().zip(found.row(q)) {
                *slot = i32::try_from(rows[sub as usize]).expect("row ids fit i32");
            }
        }
    }
    write_ivecs(&args.out, &truth)?;
    eprintln!(
        "{} of {} rows ({:.3}%) match {:?}; wrote top-{k} ground truth of {} queries to {}",
        rows.len(),
        base.rows(),
        100.0 * rows.len() as f64 / base.rows().max(1) as f64,
        args.filter,
        queries.rows(),
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_inferred_and_values_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(
            &path,
            "{\"ts\": 5, \"lang\": \"de\", \"tags\": [\"a\"], \"score\": 1.5, \"ok\": true, \"payload\": \"doc\"}\n\
             {\"ts\": 7, \"delta\": -2, \"score\": 2}\n\n",
        )
        .unwrap();
        let (schema, rows) = read_attributes(&path, None).unwrap();
        // Keys in name order (serde_json keeps objects sorted).
        assert_eq!(
            schema.to_string(),
            "lang:keyword,ok:bool,score:f64,tags:keywords,ts:u64,delta:i64"
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].payload_bytes(), Some(&b"doc"[..]));
        assert_eq!(
            rows[1].get("score"),
            Some(&Value::F64(2.0)),
            "an f64 column reads integers as floats"
        );
        let matching = matching_rows(&schema, &rows, "score > 1.7 OR lang = 'de'").unwrap();
        assert_eq!(matching, [0, 1]);
        let given = read_attributes(
            &path,
            Some("ts:i64,lang:keyword,tags:keywords,score:f64,ok:bool,delta:i64"),
        )
        .unwrap();
        assert_eq!(given.0.column("ts").unwrap().1.ty, AttrType::I64);
        std::fs::write(&path, "{\"ts\": {\"x\": 1}}\n").unwrap();
        assert!(read_attributes(&path, None).unwrap_err().contains("nested"));
        std::fs::write(&path, "[1]\n").unwrap();
        assert!(read_attributes(&path, None).unwrap_err().contains(":1: not a JSON object"));
    }

    /// Generated attributes hit their selectivities, and a filtered ground truth lists only
    /// matching rows, nearest first, padded with -1.
    #[test]
    fn generated_attributes_and_filtered_ground_truth() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = SplitMix64::new(3, 0);
        let rows: Vec<Vec<f32>> =
            (0..2000).map(|_| (0..8).map(|_| rng.normal() as f32).collect()).collect();
        let base = dir.path().join("base.fvecs");
        let query = dir.path().join("query.fvecs");
        strata_test_support::write_fvecs(&base, &rows);
        strata_test_support::write_fvecs(&query, &rows[..5]);
        let attributes = dir.path().join("a.jsonl");
        gen_attributes(&GenAttributesArgs { base: base.clone(), out: attributes.clone(), seed: 1 })
            .unwrap();
        let (schema, all) = read_attributes(&attributes, None).unwrap();
        assert_eq!(schema.to_string(), "half:bool,pct:u64,tag:keyword,ts:u64,u10:u64,u1000:u64");
        let share =
            |filter: &str| matching_rows(&schema, &all, filter).unwrap().len() as f64 / 2000.0;
        assert!((share("half = true") - 0.5).abs() < 0.05);
        assert!((share("u10 = 3") - 0.1).abs() < 0.03);
        assert!((share("pct < 100") - 0.1).abs() < 0.001, "the region is an exact percentile");
        // Independent of the draws `gen` makes from each row's stream (its cluster choice).
        let agree = matching_rows(&schema, &all, "half = true")
            .unwrap()
            .iter()
            .filter(|&&row| SplitMix64::new(1, row as u64).uniform() < 0.5)
            .count() as f64
            / 1000.0;
        assert!(
            (agree - 0.5).abs() < 0.06,
            "half agrees with the row stream's first draw: {agree}"
        );
        let out = dir.path().join("gt.ivecs");
        let args = |filter: &str| FilteredGtArgs {
            base: base.clone(),
            query: query.clone(),
            attributes: attributes.clone(),
            schema: None,
            filter: filter.into(),
            metric: Metric::L2,
            k: 10,
            out: out.clone(),
            mask: Some(dir.path().join("mask")),
            threads: Some(2),
        };
        filtered_gt(&args("ts < 3")).unwrap();
        let truth = crate::vecs::read_ivecs(&out).unwrap();
        for q in 0..5 {
            let row = truth.row(q);
            assert!(row[..3].iter().all(|&id| (0..3).contains(&id)), "{row:?}");
            assert!(row[3..].iter().all(|&id| id == -1), "{row:?}");
        }
        assert_eq!(truth.row(1)[0], 1, "a query that is a base row finds it first");
        let mask = std::fs::read(dir.path().join("mask")).unwrap();
        assert_eq!(mask.iter().filter(|&&b| b == 1).count(), 3);
    }
}
