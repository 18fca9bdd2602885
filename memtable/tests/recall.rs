//! Recall against brute force, for every metric.

mod common;

use common::{brute_force, clustered, isotropic_clusters};
use strata_memtable::{Memtable, Params};
use strata_quantize::Metric;

fn build(metric: Metric, data: &[Vec<f32>]) -> Memtable {
    let memtable = Memtable::new(data[0].len(), metric, Params::default()).unwrap();
    for (id, v) in data.iter().enumerate() {
        memtable.upsert(id as u64, v).unwrap();
    }
    memtable
}

#[test]
fn recall_at_ef_400_is_at_least_0_99_for_every_metric() {
    let data = clustered(3000, 32, 30, 1);
    let queries = clustered(100, 32, 30, 2);
    let live: Vec<(u64, Vec<f32>)> =
        data.iter().cloned().enumerate().map(|(i, v)| (i as u64, v)).collect();
    for metric in Metric::ALL {
        let memtable = build(metric, &data);
        let mut hits = 0;
        for query in &queries {
            let found = memtable.search(query, 10, 400).unwrap();
            assert_eq!(found.len(), 10);
            assert!(found.windows(2).all(|w| w[0].distance <= w[1].distance), "sorted");
            let truth = brute_force(metric, &live, query, 10);
            hits += found.iter().filter(|n| truth.iter().any(|t| t.0 == n.id)).count();
        }
        let recall = hits as f64 / (queries.len() * 10) as f64;
        assert!(recall >= 0.99, "{metric}: recall@10 {recall}");
    }
}

#[test]
fn results_are_exact_when_ef_covers_every_row() {
    // Isotropic clusters: under inner product, pruning leaves some rows without in-links (the
    // graph alone found 99.7% at ef = n here), so only a scan can be exact; ef >= rows takes it.
    let data = isotropic_clusters(3000, 32, 30, 1);
    let queries = isotropic_clusters(100, 32, 30, 2);
    let live: Vec<(u64, Vec<f32>)> =
        data.iter().cloned().enumerate().map(|(i, v)| (i as u64, v)).collect();
    for metric in Metric::ALL {
        let memtable = build(metric, &data);
        for query in &queries {
            let found = memtable.search(query, 10, data.len()).unwrap();
            let truth = brute_force(metric, &live, query, 10);
            let found_distances: Vec<f32> = found.iter().map(|n| n.distance).collect();
            let true_distances: Vec<f32> = truth.iter().map(|t| t.1).collect();
            for (f, t) in found_distances.iter().zip(&true_distances) {
                assert!(
                    (f - t).abs() <= 1e-4 * t.abs().max(1.0),
                    "{metric}: {found_distances:?} vs {true_distances:?}"
                );
            }
        }
    }
}

/// Recall@10 at `ef` over `queries` of a memtable whose live records are `live`.
fn recall_at(
    memtable: &Memtable,
    metric: Metric,
    live: &[(u64, Vec<f32>)],
    queries: &[Vec<f32>],
    ef: usize,
) -> f64 {
    let mut hits = 0;
    for query in queries {
        let found = memtable.search(query, 10, ef).unwrap();
        let truth = brute_force(metric, live, query, 10);
        hits += found.iter().filter(|n| truth.iter().any(|t| t.0 == n.id)).count();
    }
    hits as f64 / (queries.len() * 10) as f64
}

/// Five rounds of deleting and upserting half the ids (alternately with their own vectors and
/// with others) leave a graph of 3.5 rows per live id that still finds what a fresh memtable of
/// the live records finds, at equal ef. Fresh builds of these 32-d clusters differ among
/// themselves by up to 5 points at ef 10-40 (insertion order and seed), so the churned graph is
/// held to the mean of two fresh builds less that spread.
#[test]
fn heavy_churn_keeps_recall_where_a_fresh_memtable_has_it() {
    let (rows, dim) = (4000, 32);
    let data = clustered(rows * 2, dim, 30, 11);
    let queries = clustered(200, dim, 30, 12);
    for metric in Metric::ALL {
        // Ids 0..rows hold the first half of `data`; each round deletes half of them and
        // upserts them again, alternately with their vectors and with the other half's.
        let churned = build(metric, &data[..rows]);
        let mut held: Vec<usize> = (0..rows).collect();
        let mut rng = common::Rng::new(5);
        for round in 0..5 {
            for id in 0..rows {
                if rng.uniform() < 0.5 {
                    churned.delete(id as u64).unwrap();
                    if round % 2 == 1 {
                        held[id] = (held[id] + rows) % (2 * rows);
                    }
                    churned.upsert(id as u64, &data[held[id]]).unwrap();
                }
            }
        }
        let live: Vec<(u64, Vec<f32>)> =
            held.iter().enumerate().map(|(id, &row)| (id as u64, data[row].clone())).collect();
        let fresh = build(metric, &live.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
        let reversed = Memtable::new(dim, metric, Params::default().seed(99)).unwrap();
        for (id, v) in live.iter().rev() {
            reversed.upsert(*id, v).unwrap();
        }
        assert_eq!(churned.len(), rows);
        assert!(churned.rows() > 3 * rows, "the deleted rows are still in the graph");
        for ef in [10, 20, 40] {
            let after = recall_at(&churned, metric, &live, &queries, ef);
            let fresh = (recall_at(&fresh, metric, &live, &queries, ef)
                + recall_at(&reversed, metric, &live, &queries, ef))
                / 2.0;
            eprintln!("{metric} ef {ef}: recall@10 churned {after:.4}, fresh {fresh:.4}");
            assert!(after >= fresh - 0.05, "{metric} ef {ef}: churned {after}, fresh {fresh}");
        }
    }
}
