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
