//! Embedding Strata: create a database, write, search, commit, ingest, reopen, compact,
//! time-travel.
//!
//! Run with `cargo run -p strata --example quickstart [DIR]` (default: a fresh temporary
//! directory). `cargo test` builds it, so it always compiles against the current API.

use std::sync::Arc;

use strata::compaction::CompactAll;
use strata::{Db, Metric, Options, SearchParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("strata-quickstart-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);

    // Dimension and metric are fixed at create time and stored with the data.
    let options = Options::new(4, Metric::Cosine).keep_versions(5);
    let db = Db::create(&dir, options)?;

    // Writes are searchable at once...
    db.upsert(1, &[1.0, 0.0, 0.0, 0.0])?;
    db.upsert_batch(&[2, 3, 4], &[0.9, 0.1, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])?;
    let hits = db.search(&[1.0, 0.05, 0.0, 0.0], 2)?;
    assert_eq!(hits[0].id, 1);
    println!("nearest two: {hits:?}");

    // ...and durable at commit, the one durability point (there is no write-ahead log).
    let first = db.commit()?;
    db.delete(3)?;
    db.upsert(5, &[0.0, 0.0, 0.0, 1.0])?;
    let second = db.commit()?;
    println!("committed versions {first} and {second}");

    // The bulk path: a batch committed as a segment of its own (the worker folds it into the
    // graph); it replaces records with the same ids, as upserts do.
    let third = db.ingest(&[6, 7], &[0.0, 0.5, 0.5, 0.0, 0.5, 0.0, 0.0, 0.5])?;
    println!("ingested two records in version {third}");

    // Compaction runs in the background; `compact` runs it here (all segments into one).
    db.set_compaction_policy(Arc::new(CompactAll));
    db.compact()?;
    println!("segments after compaction: {:?}", db.segment_details());
    db.close()?;

    // Reopen: exactly the last commit. Effort per search: ef (memtable), L (Vamana segments).
    let db = Db::open(&dir)?;
    assert_eq!(db.len(), 6);
    assert_eq!(db.get(3)?, None);
    let hits = db.search_with(&[0.0, 0.0, 0.1, 1.0], SearchParams::new(1).search_list(32))?;
    assert_eq!(hits[0].id, 5);

    // Time travel: the version before the delete, read-only.
    let old = Db::open_at(&dir, first)?;
    assert!(old.get(3)?.is_some());
    println!("version {first} still holds record 3; the current one does not");
    drop((db, old));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
