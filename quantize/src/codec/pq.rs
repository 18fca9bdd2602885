//! Product quantization: the dimensions split into contiguous sub-spaces, each encoded as the
//! index of its nearest of 256 centroids learned by k-means.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use pulp::{Simd, WithSimd};

use super::kmeans::{self, Score};
use super::sample::sample_rows;
use super::{Form, QueryScratch, TrainOptions, invalid};
use crate::{Kernels, Metric, QuantizeError};

/// Centroids per sub-space: one byte of code each.
pub const CENTROIDS: usize = 256;

/// Rows sampled for training unless [`TrainOptions::sample_rows`] says otherwise: 64 per
/// centroid. Training time grows linearly with it.
pub(crate) const DEFAULT_SAMPLE: usize = 64 * CENTROIDS;

/// A trained product quantizer.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuantizer {
    metric: Metric,
    dim: usize,
    subspaces: usize,
    /// Sub-space `j`'s 256 centroids, row-major, start at `256 · start(j)`.
    centroids: Vec<f32>,
    /// The same, transposed per sub-space (`len(j) x 256`), for the scoring kernel.
    transposed: Vec<f32>,
}

impl ProductQuantizer {
    pub(crate) fn train(
        metric: Metric,
        dim: usize,
        subspaces: usize,
        rows: &[f32],
        options: &TrainOptions,
    ) -> Result<Self, QuantizeError> {
        check_subspaces(dim, subspaces)?;
        let n = rows.len() / dim;
        if n < CENTROIDS {
            return Err(QuantizeError::TooFewRows { codec: "pq", needed: CENTROIDS, found: n });
        }
        let want = options.sample_or(DEFAULT_SAMPLE).max(CENTROIDS);
        let sample = sample_rows(n, want, options.seed_value());
        let mut centroids = vec![0.0f32; CENTROIDS * dim];
        let next = AtomicUsize::new(0);
        let threads = options.thread_count().min(subspaces);
        let trained: Vec<Vec<(usize, Vec<f32>)>> =
            crate::parallel::map_all((0..threads).collect(), |_| {
                let mut out = Vec::new();
                let mut points = Vec::new();
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= subspaces {
                        return out;
                    }
                    let span = bounds(dim, subspaces, j);
                    points.clear();
                    for &row in &sample {
                        points.extend_from_slice(&rows[row * dim..][span.clone()]);
                    }
                    // Each sub-space has its own stream, so the result does not depend
                    // on which thread trains it.
                    let seed = options.seed_value() ^ (j as u64).wrapping_mul(0x9E37_79B9);
                    let iterations = options.iteration_count();
                    let trained =
                        kmeans::train(&points, span.len(), CENTROIDS, iterations, seed, 1);
                    out.push((j, trained));
                }
            });
        for (j, trained) in trained.into_iter().flatten() {
            let start = CENTROIDS * bounds(dim, subspaces, j).start;
            centroids[start..start + trained.len()].copy_from_slice(&trained);
        }
        Self::from_parts(metric, dim, subspaces, centroids)
    }

    /// A quantizer from its parameters, as a codebook stores them.
    pub(crate) fn from_parts(
        metric: Metric,
        dim: usize,
        subspaces: usize,
        centroids: Vec<f32>,
    ) -> Result<Self, QuantizeError> {
        check_subspaces(dim, subspaces)?;
        if centroids.len() != CENTROIDS * dim {
            let problem = format!("{} floats, expected 256 x {dim}", centroids.len());
            return Err(invalid("centroids", problem));
        }
        if let Some(at) = centroids.iter().position(|c| !c.is_finite()) {
            return Err(invalid("centroids", format!("float {at} is {}", centroids[at])));
        }
        let mut transposed = vec![0.0; centroids.len()];
        for j in 0..subspaces {
            let span = bounds(dim, subspaces, j);
            let block = CENTROIDS * span.start..CENTROIDS * span.end;
            kmeans::transpose(
                &centroids[block.clone()],
                span.len(),
                CENTROIDS,
                &mut transposed[block],
            );
        }
        Ok(ProductQuantizer { metric, dim, subspaces, centroids, transposed })
    }

    /// The metric distances are computed for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of sub-spaces: bytes per code.
    pub fn subspaces(&self) -> usize {
        self.subspaces
    }

    /// The dimensions sub-space `j` covers.
    ///
    /// # Panics
    /// If `j >= subspaces()`.
    pub fn subspace(&self, j: usize) -> Range<usize> {
        assert!(j < self.subspaces, "sub-space {j} of {}", self.subspaces);
        bounds(self.dim, self.subspaces, j)
    }

    /// Every centroid: sub-space by sub-space, 256 row-major centroids each.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// Centroid `c` of sub-space `j`.
    pub fn centroid(&self, j: usize, c: u8) -> &[f32] {
        let span = self.subspace(j);
        let start = CENTROIDS * span.start + usize::from(c) * span.len();
        &self.centroids[start..start + span.len()]
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        (self.centroids.len() + self.transposed.len()) * size_of::<f32>()
    }

    pub(crate) fn encode(&self, vector: &[f32], code: &mut [u8]) {
        Kernels::detected().dispatch(Encode { pq: self, vector, code });
    }

    pub(crate) fn decode(&self, code: &[u8], out: &mut [f32]) {
        for (j, &c) in code.iter().enumerate() {
            out[self.subspace(j)].copy_from_slice(self.centroid(j, c));
        }
    }

    /// Fills the lookup table: entry `j·256 + c` is sub-space `j`'s share of the distance to
    /// centroid `c` (squared L2, half of it for cosine, or the negated dot product), so a
    /// code's distance is the sum of one entry per sub-space.
    pub(crate) fn prepare(&self, query: &[f32], scratch: &mut QueryScratch) -> (Form, f32) {
        let (table, _) = scratch.buffers(self.subspaces * CENTROIDS, 0);
        self.fill_table(query, table);
        (Form::PqTable, 0.0)
    }

    /// Writes the lookup table of [`prepare`](Self::prepare) into `table`
    /// (`subspaces x 256`).
    pub(crate) fn fill_table(&self, query: &[f32], table: &mut [f32]) {
        Kernels::detected().dispatch(Table { pq: self, query, table });
    }
}

/// Sub-space `j`'s dimensions: `j·dim/m .. (j+1)·dim/m`, so lengths differ by at most one.
fn bounds(dim: usize, subspaces: usize, j: usize) -> Range<usize> {
    j * dim / subspaces..(j + 1) * dim / subspaces
}

fn check_subspaces(dim: usize, subspaces: usize) -> Result<(), QuantizeError> {
    if subspaces == 0 || subspaces > dim {
        let problem = format!("{subspaces} sub-spaces for {dim} dimensions; must be 1..={dim}");
        return Err(invalid("subspaces", problem));
    }
    Ok(())
}

/// Nearest centroid per sub-space, in one dispatch.
struct Encode<'a> {
    pq: &'a ProductQuantizer,
    vector: &'a [f32],
    code: &'a mut [u8],
}

impl WithSimd for Encode<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let mut distances = [0.0f32; CENTROIDS];
        for (j, slot) in self.code.iter_mut().enumerate() {
            let span = bounds(self.pq.dim, self.pq.subspaces, j);
            let table = &self.pq.transposed[CENTROIDS * span.start..CENTROIDS * span.end];
            let (nearest, _) = kmeans::nearest(simd, &self.vector[span], table, &mut distances);
            *slot = nearest as u8;
        }
    }
}

/// The per-query lookup table, in one dispatch.
struct Table<'a> {
    pq: &'a ProductQuantizer,
    query: &'a [f32],
    table: &'a mut [f32],
}

impl WithSimd for Table<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (score, factor) = match self.pq.metric {
            Metric::L2 => (Score::L2, 1.0),
            Metric::Cosine => (Score::L2, 0.5),
            Metric::InnerProduct => (Score::Dot, -1.0),
        };
        for (j, out) in self.table.chunks_exact_mut(CENTROIDS).enumerate() {
            let span = bounds(self.pq.dim, self.pq.subspaces, j);
            let table = &self.pq.transposed[CENTROIDS * span.start..CENTROIDS * span.end];
            kmeans::scores_t(simd, score, &self.query[span], table, out);
            if factor != 1.0 {
                out.iter_mut().for_each(|d| *d *= factor);
            }
        }
    }
}
