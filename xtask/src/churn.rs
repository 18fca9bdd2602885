//! The churn rounds of `cargo xtask bench --index engine --churn F` (issue 20). Each round
//! deletes a random share of the live ids, commits, upserts those ids again, commits and lets
//! compaction run (unless `--compaction none`); then it measures what a user would see at that
//! moment: recall and q/s at the default search, segments, deleted rows stored, disk, index and
//! resident bytes.
//!
//! Two modes (`--churn-mode`):
//! - `same`: each id comes back with its own vector and attributes, so the exact ground truth
//!   never changes;
//! - `replace`: each id comes back with another base row, drawn from the rows no id holds (the
//!   load leaves the file's last rows out for this), and the ground truth is recomputed exactly
//!   after every round.

use std::path::Path;
use std::time::Instant;

use serde_json::json;
use strata::{Attributes, Db, Metric};

use crate::exact::ExactIndex;
use crate::measure::{current_rss_bytes, directory_bytes, recall_at_k};
use crate::rng::Rng;
use crate::vecs::Vectors;

/// `--churn-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChurnMode {
    /// Churned ids come back with their own vectors.
    Same,
    /// Churned ids come back with held-out vectors; the ground truth is recomputed.
    Replace,
}

/// What the rounds churn and how each is measured.
pub struct Churn<'a> {
    /// Share of the live ids deleted and upserted again in each round.
    pub fraction: f64,
    pub rounds: usize,
    pub mode: ChurnMode,
    pub metric: Metric,
    pub queries: &'a Vectors<f32>,
    pub k: usize,
    /// Wait for compaction after each round (what `--compaction none` turns off).
    pub compact: bool,
    /// Threads for the exact ground truth of `replace`.
    pub threads: usize,
    pub json: bool,
}

/// How many of a `rows`-row base file are loaded before churning: all of them for `same`;
/// for `replace`, `rows / (1 + fraction)`, so the rows left out cover one round's upserts.
pub fn loaded_rows(rows: usize, mode: ChurnMode, fraction: f64) -> usize {
    match mode {
        ChurnMode::Same => rows,
        ChurnMode::Replace => (rows as f64 / (1.0 + fraction)).floor() as usize,
    }
}

/// The database's content after the rounds: the base row each id holds (ids are `0..len`),
/// and the exact top-k ids of every query over it.
pub struct Churned {
    pub rows_of_ids: Vec<u32>,
    pub truth: Vectors<i32>,
}

/// Runs the rounds on `db`, which holds base row `i` under id `i` for every `i` below
/// [`loaded_rows`]; `truth` is the exact top-k over those rows.
pub fn run(
    db: &Db,
    dir: &Path,
    base: &Vectors<f32>,
    attributes: Option<&[Attributes]>,
    truth: &Vectors<i32>,
    churn: &Churn<'_>,
) -> Result<Churned, String> {
    let loaded = loaded_rows(base.rows(), churn.mode, churn.fraction);
    let mut rows_of_ids: Vec<u32> = (0..loaded as u32).collect();
    // Rows no id holds, from which `replace` draws.
    let mut free: Vec<u32> = (loaded as u32..base.rows() as u32).collect();
    let mut truth = truth.clone();
    let mut rng = Rng::new(0xC4_0A2E, 0);
    for round in 1..=churn.rounds {
        let started = Instant::now();
        let ids = churned_ids(loaded, churn.fraction, round as u64);
        for &id in &ids {
            db.delete(id).map_err(|e| e.to_string())?;
        }
        db.commit().map_err(|e| e.to_string())?;
        if churn.mode == ChurnMode::Replace {
            move_to_free_rows(&ids, &mut rows_of_ids, &mut free, &mut rng)?;
        }
        let mut vectors = Vec::with_capacity(ids.len() * base.dim);
        for &id in &ids {
            vectors.extend_from_slice(base.row(rows_of_ids[id as usize] as usize));
        }
        match attributes {
            Some(all) => {
                let attrs: Vec<Attributes> =
                    ids.iter().map(|&id| all[rows_of_ids[id as usize] as usize].clone()).collect();
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
        if churn.mode == ChurnMode::Replace {
            truth = exact_truth(base, &rows_of_ids, churn)?;
        }
        let (recall, qps) = search_all(db, churn.queries, &truth, churn.k)?;
        let segments = db.segments();
        let deleted: u64 = segments.iter().map(|s| s.rows - s.live_rows).sum();
        let row = json!({
            "churn_round": round,
            "churn_mode": format!("{:?}", churn.mode).to_lowercase(),
            "churned": ids.len(),
            "churn_s": (churn_s * 1000.0).round() / 1000.0,
            "recall": recall,
            "qps": qps.round(),
            "segments": segments.len(),
            "deleted_rows": deleted,
            "disk_bytes": directory_bytes(dir),
            "index_ram_bytes": db.memory_bytes(),
            "rss_bytes": current_rss_bytes(),
        });
        if churn.json {
            println!("{row}");
        } else {
            println!("churn round {round}: {row}");
        }
    }
    Ok(Churned { rows_of_ids, truth })
}

/// Exactly `round(fraction * rows)` distinct ids below `rows`, sorted, from a stream of the
/// round's own: a fixed count, so `replace` always has enough held-out rows.
fn churned_ids(rows: usize, fraction: f64, round: u64) -> Vec<u64> {
    let count = ((rows as f64 * fraction).round() as usize).min(rows);
    let mut rng = Rng::new(0xC4_0A2E, round);
    let mut ids: Vec<u64> = (0..rows as u64).collect();
    // A partial Fisher-Yates shuffle: the first `count` slots are a uniform sample.
    for i in 0..count {
        let j = i + rng.below(rows - i);
        ids.swap(i, j);
    }
    ids.truncate(count);
    ids.sort_unstable();
    ids
}

/// Gives each of `ids` a base row no id holds, drawn at random, and frees the rows they held.
fn move_to_free_rows(
    ids: &[u64],
    rows_of_ids: &mut [u32],
    free: &mut Vec<u32>,
    rng: &mut Rng,
) -> Result<(), String> {
    if free.len() < ids.len() {
        return Err(format!("{} ids to move but {} held-out rows", ids.len(), free.len()));
    }
    let drawn_from = free.len() - ids.len();
    for i in drawn_from..free.len() {
        let j = rng.below(i + 1);
        free.swap(i, j);
    }
    let drawn = free.split_off(drawn_from);
    for (&id, row) in ids.iter().zip(drawn) {
        free.push(std::mem::replace(&mut rows_of_ids[id as usize], row));
    }
    Ok(())
}

/// The exact top-k ids of every query when id `i` holds base row `rows_of_ids[i]`.
fn exact_truth(
    base: &Vectors<f32>,
    rows_of_ids: &[u32],
    churn: &Churn<'_>,
) -> Result<Vectors<i32>, String> {
    let mut data = Vec::with_capacity(rows_of_ids.len() * base.dim);
    for &row in rows_of_ids {
        data.extend_from_slice(base.row(row as usize));
    }
    let index = ExactIndex::new(churn.metric, base.dim, data)?;
    Ok(crate::generate::ground_truth(&index, churn.queries, churn.k, churn.threads))
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
    fn each_round_churns_its_share_exactly_and_rounds_differ() {
        let first = churned_ids(10_000, 0.5, 1);
        let second = churned_ids(10_000, 0.5, 2);
        for ids in [&first, &second] {
            assert_eq!(ids.len(), 5000);
            assert!(ids.windows(2).all(|w| w[0] < w[1]) && *ids.last().unwrap() < 10_000);
        }
        assert_ne!(first, second);
        assert!(churned_ids(1000, 0.0, 1).is_empty());
        assert_eq!(churned_ids(1000, 1.0, 1), (0..1000).collect::<Vec<_>>());
        assert_eq!(churned_ids(3, 0.5, 1).len(), 2, "half of 3 rounds to 2");
    }

    #[test]
    fn replace_leaves_out_enough_rows_for_a_round_at_every_size() {
        for rows in [1, 2, 3, 10, 999, 150_000, 1_000_001] {
            for fraction in [0.0, 0.1, 0.5, 0.9, 1.0] {
                let loaded = loaded_rows(rows, ChurnMode::Replace, fraction);
                let churned = churned_ids(loaded, fraction, 1).len();
                assert!(loaded <= rows, "{rows} {fraction}");
                assert!(rows - loaded >= churned, "{rows} rows, {fraction}: {loaded} loaded");
            }
            assert_eq!(loaded_rows(rows, ChurnMode::Same, 0.5), rows);
        }
    }

    #[test]
    fn moved_ids_take_distinct_free_rows_and_free_their_own() {
        let (loaded, total) = (100usize, 150u32);
        let mut rows_of_ids: Vec<u32> = (0..loaded as u32).collect();
        let mut free: Vec<u32> = (loaded as u32..total).collect();
        let mut rng = Rng::new(1, 2);
        for round in 1..=5 {
            let ids = churned_ids(loaded, 0.5, round);
            let before = rows_of_ids.clone();
            move_to_free_rows(&ids, &mut rows_of_ids, &mut free, &mut rng).unwrap();
            for &id in &ids {
                assert_ne!(rows_of_ids[id as usize], before[id as usize], "a different row");
            }
            // Every base row is held by exactly one id or free.
            let mut all: Vec<u32> = rows_of_ids.iter().chain(&free).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..total).collect::<Vec<_>>());
        }
        let too_many: Vec<u64> = (0..60).collect();
        assert!(move_to_free_rows(&too_many, &mut rows_of_ids, &mut free, &mut rng).is_err());
    }
}
