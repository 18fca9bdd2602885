//! The churn rounds of `cargo xtask bench --index engine --churn F` (issue 20). Each round
//! deletes a random fraction of the ids, commits, upserts the same ids with the same vectors
//! and attributes (so the exact ground truth is unchanged), commits again and lets compaction
//! run (unless `--compaction none`); then it measures what a user would see at that moment: recall
//! and q/s at the default search, segments, deleted rows, disk and resident bytes.

use std::path::Path;
use std::time::Instant;

use serde_json::json;
use strata::{Attributes, Db};

use crate::measure::{current_rss_bytes, directory_bytes, recall_at_k};
use crate::rng::Rng;
use crate::vecs::Vectors;

/// What the rounds churn and how each is measured.
pub struct Churn<'a> {
    /// Share of the ids deleted and upserted again in each round.
    pub fraction: f64,
    pub rounds: usize,
    pub queries: &'a Vectors<f32>,
    pub truth: &'a Vectors<i32>,
    pub k: usize,
    /// Wait for compaction after each round (what `--compaction none` turns off).
    pub compact: bool,
    pub json: bool,
}

/// Runs the rounds on `db`, which holds every row of `base` under its row number.
pub fn run(
    db: &Db,
    dir: &Path,
    base: &Vectors<f32>,
    attributes: Option<&[Attributes]>,
    churn: &Churn<'_>,
) -> Result<(), String> {
    let rows = base.rows();
    for round in 1..=churn.rounds {
        let started = Instant::now();
        let ids = churned_ids(rows, churn.fraction, round as u64);
        for &id in &ids {
            db.delete(id).map_err(|e| e.to_string())?;
        }
        db.commit().map_err(|e| e.to_string())?;
        let mut vectors = Vec::with_capacity(ids.len() * base.dim);
        for &id in &ids {
            vectors.extend_from_slice(base.row(id as usize));
        }
        match attributes {
            Some(all) => {
                let attrs: Vec<Attributes> =
                    ids.iter().map(|&id| all[id as usize].clone()).collect();
                db.upsert_batch_with(&ids, &vectors, &attrs)
            }
            None => db.upsert_batch(&ids, &vectors),
        }
        .map_err(|e| e.to_string())?;
        db.commit().map_err(|e| e.to_string())?;
        if churn.compact {
            db.compact().map_err(|e| e.to_string())?;
        }
        let churn_s = started.elapsed().as_secs_f64();
        let (recall, qps) = search_all(db, churn.queries, churn.truth, churn.k)?;
        let segments = db.segments();
        let deleted: u64 = segments.iter().map(|s| s.rows - s.live_rows).sum();
        let row = json!({
            "churn_round": round,
            "churned": ids.len(),
            "churn_s": (churn_s * 1000.0).round() / 1000.0,
            "recall": recall,
            "qps": qps.round(),
            "segments": segments.len(),
            "deleted_rows": deleted,
            "disk_bytes": directory_bytes(dir),
            "rss_bytes": current_rss_bytes(),
        });
        if churn.json {
            println!("{row}");
        } else {
            println!("churn round {round}: {row}");
        }
    }
    Ok(())
}

/// Each id independently with probability `fraction`, from a stream of its own per round.
fn churned_ids(rows: usize, fraction: f64, round: u64) -> Vec<u64> {
    let mut rng = Rng::new(0xC4_0A2E, round);
    (0..rows as u64).filter(|_| rng.uniform() < fraction).collect()
}

/// Recall@k of every query at the default search, and the queries per second on one thread.
fn search_all(
    db: &Db,
    queries: &Vectors<f32>,
    truth: &Vectors<i32>,
    k: usize,
) -> Result<(f64, f64), String> {
    let mut found = Vec::with_capacity(queries.rows() * k);
    let started = Instant::now();
    for q in 0..queries.rows() {
        let hits = db.search(queries.row(q), k).map_err(|e| e.to_string())?;
        found.extend(hits.iter().map(|n| n.id));
        found.extend(std::iter::repeat_n(u64::MAX, k - hits.len().min(k)));
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Ok((recall_at_k(&found, truth, k), queries.rows() as f64 / seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_churns_about_its_fraction_and_rounds_differ() {
        let first = churned_ids(10_000, 0.5, 1);
        let second = churned_ids(10_000, 0.5, 2);
        for ids in [&first, &second] {
            assert!((4_700..5_300).contains(&ids.len()), "{}", ids.len());
            assert!(ids.windows(2).all(|w| w[0] < w[1]) && *ids.last().unwrap() < 10_000);
        }
        assert_ne!(first, second);
        assert!(churned_ids(1000, 0.0, 1).is_empty());
        assert_eq!(churned_ids(1000, 1.0, 1).len(), 1000);
    }
}
