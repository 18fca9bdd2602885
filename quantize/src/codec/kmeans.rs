//! k-means for product-quantizer sub-spaces: k-means++ seeding, then Lloyd iterations.
//!
//! Sub-spaces are short (a few dimensions) and k is 256, so the hot loop runs across
//! *centroids*, not dimensions: centroids are kept transposed (`dim x k`), and one query
//! component is broadcast against a SIMD vector of centroids at a time. The same kernel scores a
//! query sub-vector against every centroid when building a PQ lookup table.

use crate::parallel::map_all;
use pulp::{Simd, WithSimd};

use crate::Kernels;
use crate::rng::SplitMix64 as Rng;

/// Relative nudge that splits a populous cluster's centroid in two to refill an empty one.
const SPLIT_EPSILON: f32 = 1.0 / 1024.0;

/// What a score means: squared L2 distance or dot product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Score {
    L2,
    Dot,
}

/// `out[c]` is the score of `x` against centroid `c` of the `dim x k` transposed table
/// `centroids_t` (`k` a multiple of 4 SIMD vectors, as 256 is on every level).
#[inline(always)]
pub(crate) fn scores_t<S: Simd>(
    simd: S,
    score: Score,
    x: &[f32],
    centroids_t: &[f32],
    out: &mut [f32],
) {
    let k = out.len();
    let (out_vecs, out_tail) = S::as_mut_simd_f32s(out);
    debug_assert!(out_tail.is_empty() && out_vecs.len().is_multiple_of(4));
    for (block, chunk) in out_vecs.chunks_exact_mut(4).enumerate() {
        let mut acc = [simd.splat_f32s(0.0); 4];
        for (t, &xt) in x.iter().enumerate() {
            let (row, _) = S::as_simd_f32s(&centroids_t[t * k..(t + 1) * k]);
            let xt = simd.splat_f32s(xt);
            for (u, acc) in acc.iter_mut().enumerate() {
                let c = row[block * 4 + u];
                *acc = match score {
                    Score::L2 => {
                        let diff = simd.sub_f32s(xt, c);
                        simd.mul_add_e_f32s(diff, diff, *acc)
                    }
                    Score::Dot => simd.mul_add_e_f32s(xt, c, *acc),
                };
            }
        }
        chunk.copy_from_slice(&acc);
    }
}

/// The index and distance of the nearest centroid; the lowest index among equals.
#[inline(always)]
pub(crate) fn nearest<S: Simd>(
    simd: S,
    x: &[f32],
    centroids_t: &[f32],
    distances: &mut [f32],
) -> (u32, f32) {
    scores_t(simd, Score::L2, x, centroids_t, distances);
    let (vecs, _) = S::as_simd_f32s(distances);
    let lowest = vecs.iter().fold(simd.splat_f32s(f32::INFINITY), |m, &v| simd.min_f32s(m, v));
    let lowest = simd.reduce_min_f32s(lowest);
    // Training rejects non-finite input; a NaN or overflowing distance (components beyond
    // ~1e19, which the engine rejects before encoding) falls back to centroid 0.
    let index = distances.iter().position(|&d| d == lowest).unwrap_or(0);
    (index as u32, lowest)
}

/// Assigns every point to its nearest centroid; returns how many assignments changed.
struct Assign<'a> {
    points: &'a [f32],
    dim: usize,
    centroids_t: &'a [f32],
    assignment: &'a mut [u32],
    distances: &'a mut [f32],
}

impl WithSimd for Assign<'_> {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> usize {
        let mut changed = 0;
        for (x, slot) in self.points.chunks_exact(self.dim).zip(self.assignment.iter_mut()) {
            let (index, _) = nearest(simd, x, self.centroids_t, self.distances);
            changed += usize::from(*slot != index);
            *slot = index;
        }
        changed
    }
}

/// Transposes `k` row-major centroids of `dim` floats into `dim x k`.
pub(crate) fn transpose(centroids: &[f32], dim: usize, k: usize, out: &mut [f32]) {
    for (c, centroid) in centroids.chunks_exact(dim).enumerate() {
        for (t, &value) in centroid.iter().enumerate() {
            out[t * k + c] = value;
        }
    }
}

/// Points per thread below which splitting the work costs more than it saves.
const MIN_POINTS_PER_THREAD: usize = 512;

/// `k` centroids (row-major) of `points` (`n >= k` rows of `dim`): k-means++ seeding, then at
/// most `iterations` Lloyd steps, stopping early once no assignment changes. The distance work
/// runs on up to `threads` threads; the result does not depend on how many.
pub(crate) fn train(
    points: &[f32],
    dim: usize,
    k: usize,
    iterations: usize,
    seed: u64,
    threads: usize,
) -> Vec<f32> {
    let n = points.len() / dim;
    debug_assert!(n >= k);
    let threads = threads.clamp(1, n.div_ceil(MIN_POINTS_PER_THREAD).max(1));
    let mut rng = Rng::new(seed, 0x4B4D_4541_4E53);
    let mut centroids = seed_plus_plus(points, dim, k, &mut rng, threads);
    let kernels = Kernels::detected();
    let mut transposed = vec![0.0; k * dim];
    let mut assignment = vec![u32::MAX; n];
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    let per_thread = n.div_ceil(threads);
    for _ in 0..iterations {
        transpose(&centroids, dim, k, &mut transposed);
        let transposed = &transposed;
        let chunks: Vec<_> =
            points.chunks(per_thread * dim).zip(assignment.chunks_mut(per_thread)).collect();
        let changed: usize = map_all(chunks, |(points, assignment)| {
            let mut distances = vec![0.0; k];
            kernels.dispatch(Assign {
                points,
                dim,
                centroids_t: transposed,
                assignment,
                distances: &mut distances,
            })
        })
        .into_iter()
        .sum();
        if changed == 0 {
            break;
        }
        sums.fill(0.0);
        counts.fill(0);
        for (x, &c) in points.chunks_exact(dim).zip(&assignment) {
            let c = c as usize;
            counts[c] += 1;
            for (sum, &value) in sums[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                *sum += f64::from(value);
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                let inv = 1.0 / counts[c] as f64;
                for t in 0..dim {
                    centroids[c * dim + t] = (sums[c * dim + t] * inv) as f32;
                }
            }
        }
        refill_empty(&mut centroids, &mut counts, dim);
    }
    centroids
}

/// Gives each empty cluster half of the most populous one: both take its centroid, nudged
/// apart in opposite directions, so the next assignment divides its points.
fn refill_empty(centroids: &mut [f32], counts: &mut [usize], dim: usize) {
    for empty in 0..counts.len() {
        if counts[empty] != 0 {
            continue;
        }
        let (largest, _) = counts
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .expect("k > 0");
        if counts[largest] < 2 {
            return; // Every point already has a cluster of its own.
        }
        for t in 0..dim {
            let value = centroids[largest * dim + t];
            let nudge = SPLIT_EPSILON * value.abs().max(f32::MIN_POSITIVE.sqrt());
            let sign = if t % 2 == 0 { 1.0 } else { -1.0 };
            centroids[empty * dim + t] = value + sign * nudge;
            centroids[largest * dim + t] = value - sign * nudge;
        }
        counts[empty] = counts[largest] / 2;
        counts[largest] -= counts[empty];
    }
}

/// k-means++ seeding: each next centroid is a point drawn with probability proportional to its
/// squared distance from the centroids so far.
fn seed_plus_plus(points: &[f32], dim: usize, k: usize, rng: &mut Rng, threads: usize) -> Vec<f32> {
    let n = points.len() / dim;
    let point = |i: usize| &points[i * dim..(i + 1) * dim];
    let per_thread = n.div_ceil(threads.max(1));
    // Lowers each point's distance to its nearest centroid so far by the distance to `newest`.
    let update = |nearest: &mut [f32], newest: &[f32]| {
        let chunks: Vec<_> =
            points.chunks(per_thread * dim).zip(nearest.chunks_mut(per_thread)).collect();
        map_all(chunks, |(points, nearest)| {
            for (x, d) in points.chunks_exact(dim).zip(nearest.iter_mut()) {
                *d = d.min(crate::scalar::l2_squared(x, newest));
            }
        });
    };
    let mut centroids = Vec::with_capacity(k * dim);
    centroids.extend_from_slice(point(rng.below(n)));
    let mut nearest = vec![f32::INFINITY; n];
    update(&mut nearest, &centroids[..dim]);
    for _ in 1..k {
        let total: f64 = nearest.iter().map(|&d| f64::from(d)).sum();
        let chosen = if total > 0.0 {
            let mut target = rng.uniform() * total;
            nearest
                .iter()
                .position(|&d| {
                    target -= f64::from(d);
                    target < 0.0
                })
                // Rounding can leave the target unspent: take the last point not yet a centroid.
                .unwrap_or_else(|| nearest.iter().rposition(|&d| d > 0.0).unwrap_or(n - 1))
        } else {
            // Every point coincides with a centroid: duplicates are all that is left.
            rng.below(n)
        };
        let start = centroids.len();
        centroids.extend_from_slice(point(chosen));
        update(&mut nearest, &centroids[start..]);
    }
    centroids
}

/// The nearest coarse centroid, in one dispatch.
pub(crate) struct Nearest<'a> {
    pub(crate) x: &'a [f32],
    pub(crate) centroids_t: &'a [f32],
    pub(crate) distances: &'a mut [f32],
}

impl WithSimd for Nearest<'_> {
    type Output = (u32, f32);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> (u32, f32) {
        nearest(simd, self.x, self.centroids_t, self.distances)
    }
}

/// The query's score against every coarse centroid, in one dispatch.
pub(crate) struct CoarseTable<'a> {
    pub(crate) score: Score,
    pub(crate) query: &'a [f32],
    pub(crate) centroids_t: &'a [f32],
    pub(crate) out: &'a mut [f32],
}

impl WithSimd for CoarseTable<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        scores_t(simd, self.score, self.query, self.centroids_t, self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four tight, well-separated blobs in 2-d: k-means with k = 4 must find their centres.
    #[test]
    fn finds_separated_clusters() {
        let centres = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)];
        let mut rng = Rng::new(1, 2);
        let points: Vec<f32> = (0..400)
            .flat_map(|i| {
                let (x, y) = centres[i % 4];
                let jitter = |rng: &mut Rng| (rng.uniform() as f32 - 0.5) * 0.2;
                [x + jitter(&mut rng), y + jitter(&mut rng)]
            })
            .collect();
        // k = 4 is below one SIMD vector on some levels; scores_t needs k in whole blocks of 4
        // vectors, so use the production k and check the centres are among the centroids.
        let centroids = train(&points, 2, 256, 10, 9, 1);
        for (x, y) in centres {
            let closest = centroids
                .chunks_exact(2)
                .map(|c| (c[0] - x).powi(2) + (c[1] - y).powi(2))
                .fold(f32::INFINITY, f32::min);
            assert!(closest < 0.05, "no centroid near ({x}, {y}): {closest}");
        }
    }

    /// The threads split the distance work only: the centroids are the same bits.
    #[test]
    fn the_result_does_not_depend_on_threads() {
        let mut rng = Rng::new(3, 4);
        let points: Vec<f32> = (0..5000 * 6).map(|_| rng.normal() as f32).collect();
        let one = train(&points, 6, 256, 8, 11, 1);
        for threads in [2, 3, 7] {
            assert_eq!(train(&points, 6, 256, 8, 11, threads), one, "{threads} threads");
        }
    }

    #[test]
    fn refill_splits_the_largest_cluster() {
        let mut centroids = vec![1.0, 2.0, 5.0, 5.0, 0.0, 0.0];
        let mut counts = vec![10, 3, 0];
        refill_empty(&mut centroids, &mut counts, 2);
        assert_eq!(counts, [5, 3, 5]);
        assert_ne!(centroids[0..2], centroids[4..6]);
        assert!((centroids[4] - 1.0).abs() < 0.01 && (centroids[5] - 2.0).abs() < 0.01);
    }
}
