//! Scalar quantization: each dimension on its own uniform grid of 256 (SQ8) or 16 (INT4) levels.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::sample::sample_rows;
use super::{Form, QueryScratch, TrainOptions, invalid};
use crate::{Metric, QuantizeError};

/// Rows sampled for training unless [`TrainOptions::sample_rows`] says otherwise: enough that
/// the 0.1% quantile SQ8 clips at is estimated from 30-odd rows.
const DEFAULT_SAMPLE: usize = 32_768;

/// Fraction of each tail of a dimension's sampled values that SQ8's grid leaves outside (its
/// range runs from the 0.1% to the 99.9% quantile). Raw min/max lets a few outliers stretch the
/// grid for everyone; on clustered 128-d data with 0.1% outliers, code-only recall@10 was 0.90
/// with min/max, 0.98 with this, and lower again at 0.3% and 1% (`docs/BENCHMARKS.md`).
const SQ8_TAIL: f64 = 1e-3;

/// INT4's 16 levels are coarse enough that a narrower grid pays: 1% per tail measured 0.81
/// code-only recall against 0.75 at 0.1% on the same data.
const INT4_TAIL: f64 = 1e-2;

/// Dimensions calibrated together: one pass over the sample fills this many columns, so each
/// row's cache line is read once per block rather than once per dimension.
const DIM_BLOCK: usize = 16;

/// A trained scalar quantizer, calibrated per dimension: the grid spans the dimension's sampled
/// values with a small fraction of each tail clipped ([`TrainOptions::clip_tail`]), so outliers
/// do not stretch it, and no fixed value range (such as [-1, 1]) is assumed. Dimension `i` maps
/// `x` to the code `round(clamp((x - lower[i]) · (1 / step[i]), 0, max_code))` (in f32, the
/// reciprocal computed once), which decodes to `lower[i] + code · step[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarQuantizer {
    bits: u8,
    metric: Metric,
    lower: Vec<f32>,
    step: Vec<f32>,
    /// `1 / step`, or 0 where the step is 0 (a constant dimension, always code 0).
    inv_step: Vec<f32>,
}

impl ScalarQuantizer {
    pub(crate) fn train(
        bits: u8,
        metric: Metric,
        dim: usize,
        rows: &[f32],
        options: &TrainOptions,
    ) -> Result<Self, QuantizeError> {
        let codec = if bits == 8 { "sq8" } else { "int4" };
        let n = rows.len() / dim;
        if n == 0 {
            return Err(QuantizeError::TooFewRows { codec, needed: 1, found: 0 });
        }
        let sample = sample_rows(n, options.sample_or(DEFAULT_SAMPLE), options.seed_value());
        let max_code = max_code(bits);
        if metric == Metric::InnerProduct && options.clip_tail_value().is_none() {
            // Inner product ranks by the extremes, so clipping them would drop the very rows a
            // query wants. The grid spans every row's range, not only the sample's.
            let (lower, step) = full_range(rows, dim, max_code);
            return Self::from_parts(bits, metric, lower, step);
        }
        let default_tail = if bits == 8 { SQ8_TAIL } else { INT4_TAIL };
        let tail = options.clip_tail_value().unwrap_or(default_tail);
        let blocks = dim.div_ceil(DIM_BLOCK);
        let next_block = AtomicUsize::new(0);
        let threads = options.thread_count().min(blocks);
        let calibrated: Vec<Vec<(usize, f32, f32)>> =
            crate::parallel::map_all((0..threads).collect(), |_| {
                let mut out = Vec::new();
                let mut columns: Vec<Vec<f32>> =
                    (0..DIM_BLOCK).map(|_| Vec::with_capacity(sample.len())).collect();
                loop {
                    let block = next_block.fetch_add(1, Ordering::Relaxed);
                    if block >= blocks {
                        return out;
                    }
                    let dims = block * DIM_BLOCK..((block + 1) * DIM_BLOCK).min(dim);
                    columns.iter_mut().for_each(Vec::clear);
                    for &row in &sample {
                        let values = &rows[row * dim..][dims.clone()];
                        for (column, &x) in columns.iter_mut().zip(values) {
                            column.push(x);
                        }
                    }
                    for (d, column) in dims.zip(&mut columns) {
                        let (lower, step) = calibrate(column, tail, max_code);
                        out.push((d, lower, step));
                    }
                }
            });
        let (mut lower, mut step) = (vec![0.0; dim], vec![0.0; dim]);
        for (d, l, s) in calibrated.into_iter().flatten() {
            lower[d] = l;
            step[d] = s;
        }
        Self::from_parts(bits, metric, lower, step)
    }

    /// A quantizer from its parameters, as a codebook stores them.
    pub(crate) fn from_parts(
        bits: u8,
        metric: Metric,
        lower: Vec<f32>,
        step: Vec<f32>,
    ) -> Result<Self, QuantizeError> {
        if lower.is_empty() || lower.len() != step.len() {
            let problem = format!("{} lower bounds and {} steps", lower.len(), step.len());
            return Err(invalid("dim", problem));
        }
        if let Some(i) = (0..lower.len())
            .find(|&i| !lower[i].is_finite() || !step[i].is_finite() || step[i] < 0.0)
        {
            let problem = format!("dimension {i} has lower {} and step {}", lower[i], step[i]);
            return Err(invalid("range", problem));
        }
        let inv_step = step.iter().map(|&s| if s > 0.0 { 1.0 / s } else { 0.0 }).collect();
        Ok(ScalarQuantizer { bits, metric, lower, step, inv_step })
    }

    /// Bits per dimension: 8 or 4.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The metric distances are computed for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.lower.len()
    }

    /// Per dimension, the value of code 0.
    pub fn lower(&self) -> &[f32] {
        &self.lower
    }

    /// Per dimension, the distance between adjacent codes' values.
    pub fn step(&self) -> &[f32] {
        &self.step
    }

    /// The largest code: 255 or 15.
    pub fn max_code(&self) -> u8 {
        max_code(self.bits) as u8
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        3 * self.dim() * size_of::<f32>()
    }

    #[inline]
    fn code(&self, i: usize, x: f32) -> u8 {
        quantize(x, self.lower[i], self.inv_step[i], max_code(self.bits))
    }

    pub(crate) fn encode(&self, vector: &[f32], code: &mut [u8]) {
        if self.bits == 8 {
            for (i, (slot, &x)) in code.iter_mut().zip(vector).enumerate() {
                *slot = self.code(i, x);
            }
        } else {
            // Byte j: dimension j in the low nibble, dimension j + half in the high one, so the
            // kernel unpacks two contiguous runs of dimensions (see `docs/format/codebook.md`).
            let half = code.len();
            for (j, slot) in code.iter_mut().enumerate() {
                let high = vector.get(j + half).map_or(0, |&x| self.code(j + half, x));
                *slot = self.code(j, vector[j]) | (high << 4);
            }
        }
    }

    pub(crate) fn decode(&self, code: &[u8], out: &mut [f32]) {
        let half = code.len();
        for (i, slot) in out.iter_mut().enumerate() {
            let c = match self.bits {
                8 => code[i],
                _ if i < half => code[i] & 0x0f,
                _ => code[i - half] >> 4,
            };
            *slot = self.lower[i] + f32::from(c) * self.step[i];
        }
    }

    /// Folds the grid into the query. For L2, `primary = q - lower` and `secondary = step`, so
    /// a code's distance is `Σ (primary - secondary·code)²`; cosine uses the same form scaled
    /// by ½ (see [`Codec`](super::Codec) on why). For inner product the distance
    /// `-Σ q·(lower + step·code)` splits into a per-query `bias` and a dot product with
    /// `primary = -q·step`.
    pub(crate) fn prepare(&self, query: &[f32], scratch: &mut QueryScratch) -> (Form, f32) {
        let dim = self.dim();
        // INT4 reads two runs of `half` dimensions; the pad past `dim` stays zero.
        let padded = if self.bits == 8 { dim } else { 2 * dim.div_ceil(2) };
        let (l2, dot) = if self.bits == 8 {
            (Form::Sq8L2, Form::Sq8Dot)
        } else {
            (Form::Int4L2, Form::Int4Dot)
        };
        match self.metric {
            Metric::L2 | Metric::Cosine => {
                // (√½·o - √½·s·c)² = ½·(o - s·c)².
                let factor = if self.metric == Metric::Cosine { 0.5f32.sqrt() } else { 1.0 };
                let (offset, scale) = scratch.buffers(padded, padded);
                for i in 0..dim {
                    offset[i] = factor * (query[i] - self.lower[i]);
                    scale[i] = factor * self.step[i];
                }
                (l2, 0.0)
            }
            Metric::InnerProduct => {
                let (weight, _) = scratch.buffers(padded, 0);
                let mut base = 0.0f64;
                for i in 0..dim {
                    weight[i] = -query[i] * self.step[i];
                    base += f64::from(query[i]) * f64::from(self.lower[i]);
                }
                (dot, -base as f32)
            }
        }
    }
}

/// Per dimension, the grid from the smallest to the largest value of any row.
fn full_range(rows: &[f32], dim: usize, max_code: f32) -> (Vec<f32>, Vec<f32>) {
    let mut lower = rows[..dim].to_vec();
    let mut upper = lower.clone();
    for row in rows.chunks_exact(dim) {
        for ((lo, hi), &x) in lower.iter_mut().zip(upper.iter_mut()).zip(row) {
            *lo = lo.min(x);
            *hi = hi.max(x);
        }
    }
    let step = lower.iter().zip(&upper).map(|(&lo, &hi)| step(lo, hi, max_code)).collect();
    (lower, step)
}

/// The grid step from `lower` to `upper`, in f64 so that a range wider than `f32::MAX` (values
/// near ±3e38) still gives a finite step.
fn step(lower: f32, upper: f32, max_code: f32) -> f32 {
    ((f64::from(upper) - f64::from(lower)) / f64::from(max_code)) as f32
}

fn max_code(bits: u8) -> f32 {
    ((1u32 << bits) - 1) as f32
}

/// The code of `x` on a grid from `lower` with `1 / step = inv_step`. Clamping before rounding
/// lets `as u8` truncate (which is floor for non-negative values) after adding one half; NaN
/// becomes 0.
#[inline(always)]
fn quantize(x: f32, lower: f32, inv_step: f32, max_code: f32) -> u8 {
    (((x - lower) * inv_step).clamp(0.0, max_code) + 0.5) as u8
}

/// The grid from the `tail` to the `1 - tail` quantile of one dimension's sampled values.
fn calibrate(column: &mut [f32], tail: f64, max_code: f32) -> (f32, f32) {
    column.sort_unstable_by(f32::total_cmp);
    let last = column.len() - 1;
    let clipped = (tail * last as f64) as usize;
    let (lower, upper) = (column[clipped], column[last - clipped]);
    (lower, step(lower, upper, max_code))
}
