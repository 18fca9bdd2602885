//! Data and the brute-force oracle shared by the memtable tests.
#![allow(dead_code)]

use strata_quantize::rng::SplitMix64;
use strata_quantize::{Metric, normalize};

/// The workspace's seeded generator (`strata_quantize::rng`), with `f32` normals.
pub struct Rng(SplitMix64);

impl Rng {
    /// Starts where this file's own SplitMix64 started before it shared quantize's (state
    /// `seed * golden ^ mix`; `SplitMix64::new` adds one golden step), so every test's data,
    /// and the recall each test asserts on them, stay as they were.
    pub fn new(seed: u64) -> Self {
        const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
        let start = (seed.wrapping_mul(GOLDEN) ^ 0xD1B5_4A32_D192_ED03).wrapping_sub(GOLDEN);
        Rng(SplitMix64::new(start, 0))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    pub fn uniform(&mut self) -> f64 {
        self.0.uniform()
    }

    pub fn normal(&mut self) -> f32 {
        self.0.normal() as f32
    }
}

/// `n` vectors from a mixture of `clusters` Gaussians of varied spread, each over a random
/// low-dimensional subspace plus a little noise: the shape of `cargo xtask gen --kind clustered`
/// (and of real embeddings), which the benchmarks run on.
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let rank = (dim / 8).clamp(2.min(dim), 32);
    let centers: Vec<(Vec<f32>, Vec<f32>, f32)> = (0..clusters)
        .map(|_| {
            let center = (0..dim).map(|_| rng.normal()).collect();
            let basis = (0..dim * rank).map(|_| rng.normal() / (rank as f32).sqrt()).collect();
            let spread = (0.1f64.ln() + rng.uniform() * 6f64.ln()).exp() as f32;
            (center, basis, spread)
        })
        .collect();
    (0..n)
        .map(|_| {
            let (center, basis, spread) = &centers[(rng.next_u64() % clusters as u64) as usize];
            let latent: Vec<f32> = (0..rank).map(|_| rng.normal()).collect();
            (0..dim)
                .map(|d| {
                    let along: f32 = basis[d * rank..(d + 1) * rank]
                        .iter()
                        .zip(&latent)
                        .map(|(b, z)| b * z)
                        .sum();
                    center[d] + spread * along + 0.1 * spread * rng.normal()
                })
                .collect()
        })
        .collect()
}

/// `n` vectors from isotropic Gaussian clusters of varied spread: harder than [`clustered`],
/// and under inner product a case where the graph alone leaves some rows unreachable.
pub fn isotropic_clusters(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let centers: Vec<(Vec<f32>, f32)> = (0..clusters)
        .map(|_| ((0..dim).map(|_| rng.normal() * 2.0).collect(), 0.2 + rng.uniform() as f32))
        .collect();
    (0..n)
        .map(|_| {
            let (center, spread) = &centers[(rng.next_u64() % clusters as u64) as usize];
            center.iter().map(|c| c + spread * rng.normal()).collect()
        })
        .collect()
}

/// The vector as the memtable stores it under `metric`.
pub fn stored(metric: Metric, v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    if metric.needs_normalization() {
        normalize(&mut v).unwrap();
    }
    v
}

/// Exact top `k` of `live` (id, vector) for `query`: (id, distance), nearest first, ties by id.
pub fn brute_force(
    metric: Metric,
    live: &[(u64, Vec<f32>)],
    query: &[f32],
    k: usize,
) -> Vec<(u64, f32)> {
    let query = stored(metric, query);
    let mut all: Vec<(u64, f32)> =
        live.iter().map(|(id, v)| (*id, metric.distance(&query, &stored(metric, v)))).collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}
