//! Shared test data: clustered vectors and a brute-force oracle.

#![allow(dead_code)]

use strata_quantize::rng::SplitMix64;
use strata_quantize::{Metric, TopK};

/// `rows` vectors of `dim` dimensions around `clusters` random centres (normalized for cosine).
pub fn clustered(rows: usize, dim: usize, clusters: usize, metric: Metric, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed, 1);
    let mut gauss = move || rng.normal() as f32;
    let centres: Vec<f32> = (0..clusters * dim).map(|_| gauss() * 4.0).collect();
    let mut out = Vec::with_capacity(rows * dim);
    for row in 0..rows {
        let centre = &centres[(row % clusters) * dim..][..dim];
        let start = out.len();
        out.extend(centre.iter().map(|&c| c + gauss()));
        if metric == Metric::Cosine {
            strata_quantize::normalize(&mut out[start..]).unwrap();
        }
    }
    out
}

/// The exact k nearest rows (as ids = row numbers) not rejected by `skip`.
pub fn brute_force(
    metric: Metric,
    vectors: &[f32],
    dim: usize,
    query: &[f32],
    k: usize,
    skip: impl Fn(u32) -> bool,
) -> Vec<u64> {
    let mut top = TopK::new(k);
    for (row, vector) in vectors.chunks_exact(dim).enumerate() {
        if !skip(row as u32) {
            top.push(row as u64, metric.distance(query, vector));
        }
    }
    top.into_sorted_vec().iter().map(|n| n.id).collect()
}

/// Fraction of `truth` found in `found`.
pub fn recall(truth: &[u64], found: &[u64]) -> f64 {
    let hits = truth.iter().filter(|id| found.contains(id)).count();
    hits as f64 / truth.len().max(1) as f64
}
