//! Data and settings the codec test files share.
#![allow(dead_code)] // each test file uses some of these

use strata_quantize::rng::SplitMix64;
use strata_quantize::{Isa, Kernels, TrainOptions, normalize};

/// `n` rows from a mixture shaped like embeddings, as `cargo xtask gen --kind clustered` makes
/// them: clusters spread over low-rank subspaces plus a little isotropic noise. On top, each
/// dimension gets its own offset and scale, and one row in 997 is an outlier: what a codec that
/// assumes values in [-1, 1], or takes raw min/max as its range, gets wrong.
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed, 0);
    let rank = (dim / 8).clamp(1, 32);
    let scale: Vec<f32> = (0..dim).map(|_| 0.2 + 3.0 * (rng.uniform() as f32)).collect();
    let offset: Vec<f32> = (0..dim).map(|_| 4.0 * (rng.normal() as f32)).collect();
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.normal() as f32).collect();
    let bases: Vec<f32> =
        (0..clusters * dim * rank).map(|_| (rng.normal() as f32) / (rank as f32).sqrt()).collect();
    let spreads: Vec<f32> = (0..clusters).map(|_| 0.1 * 6f32.powf(rng.uniform() as f32)).collect();
    let mut rows = Vec::with_capacity(n * dim);
    let mut latent = vec![0.0; rank];
    for r in 0..n {
        let c = (rng.next_u64() % clusters as u64) as usize;
        latent.iter_mut().for_each(|z| *z = rng.normal() as f32);
        let spread = if r % 997 == 0 { 30.0 * spreads[c] } else { spreads[c] };
        for d in 0..dim {
            let basis = &bases[(c * dim + d) * rank..(c * dim + d + 1) * rank];
            let along: f32 = basis.iter().zip(&latent).map(|(b, z)| b * z).sum();
            let x = centres[c * dim + d] + spread * along + 0.1 * spread * (rng.normal() as f32);
            rows.push(offset[d] + scale[d] * x);
        }
    }
    rows
}

pub fn uniform_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed, 0);
    (0..n * dim).map(|_| (rng.uniform() as f32) * 2.0 - 1.0).collect()
}

pub fn normalized(mut rows: Vec<f32>, dim: usize) -> Vec<f32> {
    rows.chunks_exact_mut(dim).for_each(|row| normalize(row).expect("nonzero row"));
    rows
}

pub fn paths() -> Vec<Kernels> {
    Isa::supported().filter_map(Kernels::for_isa).collect()
}

pub fn quick() -> TrainOptions {
    TrainOptions::default().iterations(4).threads(2)
}

/// `n` uniform rows with every fifth scaled up to 5x and offsets of 0-2, normalized under cosine:
/// magnitudes and offsets a codec must not assume away.
pub fn varied_rows(n: usize, dim: usize, metric: strata_quantize::Metric, seed: u64) -> Vec<f32> {
    let mut rows = uniform_rows(n, dim, seed);
    rows.iter_mut().enumerate().for_each(|(i, x)| *x = *x * (1 + i % 5) as f32 + (i % 3) as f32);
    if metric == strata_quantize::Metric::Cosine {
        rows = normalized(rows, dim);
    }
    rows
}
