//! Residual product quantization: a coarse k-means centroid per vector, and a product quantizer
//! of what is left (`x - c`), as faiss's IVF-PQ encodes "by residual".
//!
//! Plain PQ spends its 256 centroids per sub-space on where the clusters of the data sit; after
//! the coarse centroid is taken away, the residuals are small and centred, and the same bytes
//! resolve the neighbourhood of a vector instead. On the clustered 128-d benchmark data this
//! is the difference between graph searches that need L ≈ 100 and L ≈ 20 for recall 0.95.
//!
//! A code is `[coarse: u8][correction: f32 LE][residual PQ codes: m bytes]`. For squared L2,
//! `‖q - c - r‖² = ‖q - c‖² + (‖r‖² + 2⟨c, r⟩) - 2⟨q, r⟩`: the first term comes from a per-query
//! table over the 256 coarse centroids, the second is the stored correction (computed from
//! the decoded vector at encode time: `‖x̂‖² - ‖c‖²`), the third is a PQ inner-product table
//! lookup per sub-space. Inner product needs no correction: `-⟨q, x̂⟩ = -⟨q, c⟩ - ⟨q, r⟩`.

use super::kmeans::{self, CoarseTable, Nearest, Score};
use super::pq::{CENTROIDS, ProductQuantizer};
use super::sample::sample_rows;
use super::{Form, QueryScratch, TrainOptions};
use crate::{Kernels, Metric, QuantizeError};

/// Rows the coarse k-means trains on (drawn from the training sample).
const COARSE_SAMPLE: usize = 32 * CENTROIDS;

/// Rows the residual quantizer trains on by default (half of plain PQ's).
const RESIDUAL_SAMPLE: usize = 32 * CENTROIDS;

/// Bytes before the residual's PQ codes: the coarse centroid and the f32 correction.
pub const RPQ_PREFIX: usize = 5;

/// A trained residual product quantizer.
#[derive(Debug, Clone, PartialEq)]
pub struct ResidualPq {
    metric: Metric,
    dim: usize,
    /// 256 coarse centroids, row-major.
    coarse: Vec<f32>,
    /// The same, transposed (`dim x 256`), for the nearest-centroid kernel.
    coarse_t: Vec<f32>,
    /// Quantizes residuals; its tables are inner-product tables.
    residual: ProductQuantizer,
}

impl ResidualPq {
    pub(crate) fn train(
        metric: Metric,
        dim: usize,
        subspaces: usize,
        rows: &[f32],
        options: &TrainOptions,
    ) -> Result<Self, QuantizeError> {
        let n = rows.len() / dim;
        if n < CENTROIDS {
            return Err(QuantizeError::TooFewRows { codec: "rpq", needed: CENTROIDS, found: n });
        }
        // 32 rows per centroid: the residuals are small and their sub-spaces short, and at
        // 768-d twice that cost 3 s of an 8 s training for 0.2 points of recall at L 16.
        let want = options.sample_or(RESIDUAL_SAMPLE).max(CENTROIDS);
        let sample = sample_rows(n, want, options.seed_value());
        let mut points = Vec::with_capacity(sample.len() * dim);
        for &row in &sample {
            points.extend_from_slice(&rows[row * dim..(row + 1) * dim]);
        }
        // The coarse centroids only have to find the clusters: 32 rows each is plenty. This
        // k-means runs over whole vectors, so its distance work is split across threads.
        let seed = options.seed_value() ^ 0xC0A2_5E00;
        let coarse_sample = sample_rows(sample.len(), COARSE_SAMPLE, seed);
        let mut coarse_points = Vec::with_capacity(coarse_sample.len() * dim);
        for &row in &coarse_sample {
            coarse_points.extend_from_slice(&points[row * dim..(row + 1) * dim]);
        }
        let threads = options.thread_count();
        let iterations = options.iteration_count();
        let coarse = kmeans::train(&coarse_points, dim, CENTROIDS, iterations, seed, threads);
        let mut coarse_t = vec![0.0; coarse.len()];
        kmeans::transpose(&coarse, dim, CENTROIDS, &mut coarse_t);
        // Each sample point becomes its residual from its nearest coarse centroid.
        let per_thread = (points.len() / dim).div_ceil(threads.max(1)).max(1);
        let (coarse_ref, coarse_t) = (&coarse, &coarse_t);
        crate::parallel::map_all(points.chunks_mut(per_thread * dim).collect(), |chunk| {
            let mut distances = [0.0f32; CENTROIDS];
            for point in chunk.chunks_exact_mut(dim) {
                let (nearest, _) = Kernels::detected().dispatch(Nearest {
                    x: point,
                    centroids_t: coarse_t,
                    distances: &mut distances,
                });
                let centroid = &coarse_ref[nearest as usize * dim..(nearest as usize + 1) * dim];
                point.iter_mut().zip(centroid).for_each(|(x, c)| *x -= c);
            }
        });
        // The sample is already drawn: train the residual quantizer on all of it.
        let residual_options = options.clone().sample_rows(sample.len());
        let residual = ProductQuantizer::train(
            Metric::InnerProduct,
            dim,
            subspaces,
            &points,
            &residual_options,
        )?;
        Self::from_parts(metric, coarse, residual)
    }

    /// A quantizer from its parameters, as a codebook stores them.
    pub(crate) fn from_parts(
        metric: Metric,
        coarse: Vec<f32>,
        residual: ProductQuantizer,
    ) -> Result<Self, QuantizeError> {
        let dim = residual.dim();
        if coarse.len() != CENTROIDS * dim {
            let problem = format!("{} coarse floats, expected 256 x {dim}", coarse.len());
            return Err(super::invalid("coarse centroids", problem));
        }
        if let Some(at) = coarse.iter().position(|c| !c.is_finite()) {
            return Err(super::invalid(
                "coarse centroids",
                format!("float {at} is {}", coarse[at]),
            ));
        }
        let mut coarse_t = vec![0.0; coarse.len()];
        kmeans::transpose(&coarse, dim, CENTROIDS, &mut coarse_t);
        Ok(ResidualPq { metric, dim, coarse, coarse_t, residual })
    }

    /// The metric distances are computed for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Sub-spaces of the residual quantizer.
    pub fn subspaces(&self) -> usize {
        self.residual.subspaces()
    }

    /// The 256 coarse centroids, row-major.
    pub fn coarse(&self) -> &[f32] {
        &self.coarse
    }

    /// The quantizer of the residuals.
    pub fn residual(&self) -> &ProductQuantizer {
        &self.residual
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        (self.coarse.len() + self.coarse_t.len()) * size_of::<f32>() + self.residual.memory_bytes()
    }

    pub(crate) fn encode(&self, vector: &[f32], code: &mut [u8]) {
        let dim = self.dim;
        let mut distances = [0.0f32; CENTROIDS];
        let (nearest, _) = Kernels::detected().dispatch(Nearest {
            x: vector,
            centroids_t: &self.coarse_t,
            distances: &mut distances,
        });
        let centroid = &self.coarse[nearest as usize * dim..(nearest as usize + 1) * dim];
        let residual: Vec<f32> = vector.iter().zip(centroid).map(|(x, c)| x - c).collect();
        let (prefix, codes) = code.split_at_mut(RPQ_PREFIX);
        self.residual.encode(&residual, codes);
        let mut decoded = residual;
        self.residual.decode(codes, &mut decoded);
        // ‖x̂‖² - ‖c‖² = ‖r̂‖² + 2⟨c, r̂⟩, summed in f64 so the correction is exact to f32.
        let correction: f64 = decoded
            .iter()
            .zip(centroid)
            .map(|(&r, &c)| f64::from(r) * (f64::from(r) + 2.0 * f64::from(c)))
            .sum();
        prefix[0] = nearest as u8;
        prefix[1..].copy_from_slice(&(correction as f32).to_le_bytes());
    }

    pub(crate) fn decode(&self, code: &[u8], out: &mut [f32]) {
        let (prefix, codes) = code.split_at(RPQ_PREFIX);
        self.residual.decode(codes, out);
        let coarse = usize::from(prefix[0]);
        let centroid = &self.coarse[coarse * self.dim..(coarse + 1) * self.dim];
        out.iter_mut().zip(centroid).for_each(|(x, c)| *x += c);
    }

    /// Fills the tables: `primary` is the residual quantizer's inner-product table scaled to
    /// the metric, `secondary` the 256 coarse terms; the returned weight multiplies the
    /// stored correction.
    pub(crate) fn prepare(&self, query: &[f32], scratch: &mut QueryScratch) -> (Form, f32) {
        let subspaces = self.residual.subspaces();
        let (primary, secondary) = scratch.buffers(subspaces * CENTROIDS, CENTROIDS);
        // -⟨q_j, p⟩ per sub-space and centroid.
        self.residual.fill_table(query, primary);
        let (residual_weight, correction_weight, score, coarse_weight) = match self.metric {
            // ‖q - c‖² + corr - 2⟨q, r⟩
            Metric::L2 => (2.0, 1.0, Score::L2, 1.0),
            // Half of the L2 form (see `Codec` on cosine).
            Metric::Cosine => (1.0, 0.5, Score::L2, 0.5),
            // -⟨q, c⟩ - ⟨q, r⟩
            Metric::InnerProduct => (1.0, 0.0, Score::Dot, -1.0),
        };
        if residual_weight != 1.0 {
            primary.iter_mut().for_each(|t| *t *= residual_weight);
        }
        Kernels::detected().dispatch(CoarseTable {
            score,
            query,
            centroids_t: &self.coarse_t,
            out: secondary,
        });
        if coarse_weight != 1.0 {
            secondary.iter_mut().for_each(|t| *t *= coarse_weight);
        }
        (Form::RpqTable, correction_weight)
    }
}
