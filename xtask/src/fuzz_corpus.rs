//! `cargo xtask fuzz-corpus`: seed corpora for the cargo-fuzz targets (`fuzz/`), made of real
//! objects: a database written through the engine (manifests, flat and Vamana segments with
//! attribute sections, deletion vectors), a flat segment with codes, a codebook of every codec,
//! filter texts and attribute sections. Each file is laid out as its target reads it (see
//! `fuzz/fuzz_targets`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata::compaction::CompactAll;
use strata::{Attributes, Db, Metric, Options, Schema};
use strata_attributes::{ColumnSet, Record};
use strata_quantize::{Codec, CodecKind, TrainOptions};
use strata_segment_flat::FlatWriter;
use strata_storage::{LocalDir, Storage};

use crate::rng::Rng;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const DIM: usize = 16;

/// The schema of the fuzz targets' attribute sections: a column of every type.
const SCHEMA: &str = "n:u64,i:i64,f:f64,b:bool,tag:keyword,tags:keywords";

/// Write seed corpora for the fuzz targets.
#[derive(Debug, Clone, clap::Args)]
pub struct FuzzCorpusArgs {
    /// The corpus root: one directory per target is filled in it.
    #[arg(long, default_value = "fuzz/corpus")]
    pub out: PathBuf,
}

fn vector(rng: &mut Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.normal() as f32).collect()
}

fn attributes(i: u64) -> Attributes {
    let tags = ["a", "b", "c", "d"];
    let mut a =
        Attributes::new().set("n", i).set("f", i as f64 / 7.0).set("b", i.is_multiple_of(2));
    if !i.is_multiple_of(3) {
        a = a.set("i", -(i as i64)).set("tag", tags[i as usize % 4]);
    }
    if i.is_multiple_of(5) {
        a = a.set("tags", vec![tags[i as usize % 4], tags[(i as usize + 1) % 4]]);
    }
    a
}

fn save(out: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

pub fn run(args: &FuzzCorpusArgs) -> Result<()> {
    let work = std::env::temp_dir().join(format!("strata-fuzz-corpus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let result = write_corpus(&args.out, &work);
    let _ = std::fs::remove_dir_all(&work);
    let count = result?;
    println!("{count} seed files under {}", args.out.display());
    Ok(())
}

fn write_corpus(out: &Path, work: &Path) -> Result<usize> {
    let schema = Schema::parse(SCHEMA)?;
    let db_dir = work.join("db");
    let options = Options::new(DIM, Metric::L2)
        .attributes(schema.clone())
        .background_compaction(false)
        .diskann_min_rows(256);
    let db = Db::create(&db_dir, options)?;
    let mut rng = Rng::new(17, 0);
    let mut rows = Vec::new();
    for i in 0..400u64 {
        let v = vector(&mut rng);
        db.upsert_with(i, &v, &attributes(i))?;
        rows.extend(v);
        if i % 130 == 129 {
            db.commit()?;
        }
    }
    db.commit()?;
    db.set_compaction_policy(Arc::new(CompactAll));
    db.compact()?;
    for i in (0..400).step_by(9) {
        db.delete(i)?;
    }
    for i in 400..440u64 {
        db.upsert_with(i, &vector(&mut rng), &attributes(i))?;
    }
    db.delete(401)?;
    db.commit()?;
    let rows_of: std::collections::HashMap<u64, u64> =
        db.segments().iter().map(|segment| (segment.id, segment.rows)).collect();
    db.close()?;

    let storage = LocalDir::open(&db_dir)?;
    let mut count = 0;
    for meta in storage.list("")? {
        let bytes = storage.get(&meta.key)?;
        let bytes = bytes.as_slice();
        let name = meta.key.replace('/', "-");
        save(out, "footer", &name, bytes)?;
        count += 1;
        if let Some(version) = manifest_version(&meta.key) {
            save(out, "manifest", &name, &[&version.to_le_bytes()[..], bytes].concat())?;
            count += 1;
        } else if meta.key.ends_with(".flat") {
            save(out, "flat_segment", &name, bytes)?;
            count += 1;
        } else if meta.key.ends_with(".vamana") {
            save(out, "vamana_segment", &name, bytes)?;
            count += 1;
        }
    }
    // A deletion vector's key names its segment first: `deletes/{segment:016x}-...`.
    for meta in storage.list("deletes/")? {
        let name = meta.key.trim_start_matches("deletes/");
        let Some(segment) = name.get(..16).and_then(|hex| u64::from_str_radix(hex, 16).ok()) else {
            continue;
        };
        let Some(&rows) = rows_of.get(&segment) else { continue };
        let bytes = storage.get(&meta.key)?;
        let seed = [&segment.to_le_bytes()[..], &rows.to_le_bytes(), bytes.as_slice()].concat();
        save(out, "deletes", &meta.key.replace('/', "-"), &seed)?;
        count += 1;
    }

    // Codebooks of every codec, and a flat segment carrying 1-bit RaBitQ codes.
    let train = TrainOptions::default().iterations(4).threads(1);
    let kinds = [
        CodecKind::Sq8,
        CodecKind::Int4,
        CodecKind::Pq { subspaces: 4 },
        CodecKind::Rpq { subspaces: 4 },
        CodecKind::RaBitQ { bits: 1 },
        CodecKind::RaBitQ { bits: 4 },
    ];
    for kind in kinds {
        let codec = Codec::train(kind, Metric::L2, DIM, &rows, &train)?;
        save(out, "codebook", &kind.to_string(), &codec.to_bytes())?;
        count += 1;
    }
    let codec = Codec::train(CodecKind::RaBitQ { bits: 1 }, Metric::Cosine, DIM, &rows, &train)?;
    let coded = LocalDir::open(work.join("coded"))?;
    let n = 100u64;
    let mut writer = FlatWriter::with_codec(&coded, "coded.flat", DIM, Metric::Cosine, n, codec)?;
    for (i, row) in rows.chunks_exact(DIM).take(n as usize).enumerate() {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        let unit: Vec<f32> = row.iter().map(|x| x / norm).collect();
        writer.push(i as u64, &unit)?;
    }
    writer.finish()?;
    save(out, "flat_segment", "coded.flat", coded.get("coded.flat")?.as_slice())?;
    count += 1;

    for (i, text) in [
        "n > 3",
        "tag = 'a' AND NOT b",
        "(n >= 10 OR f < 0.5) AND tags CONTAINS 'c'",
        "i BETWEEN -5 AND 5",
        "tag IN ('a', 'b') OR n != 7",
    ]
    .iter()
    .enumerate()
    {
        save(out, "filter", &format!("filter-{i}"), text.as_bytes())?;
        count += 1;
    }
    save(out, "filter", "schema", SCHEMA.as_bytes())?;
    count += 1;

    for rows in [1u64, 7, 70] {
        let records: Vec<Record> = (0..rows)
            .map(|i| Record::from_attributes(&schema, &attributes(i)))
            .collect::<Result<_, _>>()?;
        let section = ColumnSet::build(&schema, records.iter()).encode(&schema);
        save(
            out,
            "attributes",
            &format!("rows-{rows}"),
            &[&rows.to_le_bytes()[..], &section].concat(),
        )?;
        count += 1;
    }
    Ok(count)
}

/// The version a manifest key names (`manifest/{version:020}.manifest`).
fn manifest_version(key: &str) -> Option<u64> {
    key.strip_prefix("manifest/")?.strip_suffix(".manifest")?.parse().ok()
}
