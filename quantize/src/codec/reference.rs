//! Plain scalar references for the code kernels, which tests hold every SIMD path to.
//!
//! Two levels of reference: [`PreparedQuery::distance_reference`](super::PreparedQuery) evaluates
//! the prepared query's folded formula in one left-to-right loop, and [`decoded_distance`]
//! decodes the code and applies the metric's scalar reference: the definition the folded
//! formulas must equal up to rounding.

use super::{Codec, Form, PreparedQuery};
use crate::{Metric, scalar};

/// The folded formula of a prepared query, in one plain loop.
pub(crate) fn prepared_distance(query: &PreparedQuery<'_>, code: &[u8]) -> f32 {
    let PreparedQuery { form, bias, primary, secondary, bits, .. } = *query;
    let half = code.len();
    let nibble = |i: usize| {
        if i < half { f32::from(code[i] & 0x0f) } else { f32::from(code[i - half] >> 4) }
    };
    match form {
        Form::Sq8L2 => (0..code.len()).fold(0.0, |acc, i| {
            let diff = primary[i] - secondary[i] * f32::from(code[i]);
            acc + diff * diff
        }),
        Form::Sq8Dot => {
            bias + (0..code.len()).fold(0.0, |acc, i| acc + primary[i] * f32::from(code[i]))
        }
        Form::Int4L2 => (0..2 * half).fold(0.0, |acc, i| {
            let diff = primary[i] - secondary[i] * nibble(i);
            acc + diff * diff
        }),
        Form::Int4Dot => bias + (0..2 * half).fold(0.0, |acc, i| acc + primary[i] * nibble(i)),
        Form::PqTable => {
            bias + code
                .iter()
                .enumerate()
                .fold(0.0, |acc, (j, &c)| acc + primary[j * 256 + usize::from(c)])
        }
        Form::RpqTable => {
            let correction = f32::from_le_bytes([code[1], code[2], code[3], code[4]]);
            let residual = code[super::RPQ_PREFIX..]
                .iter()
                .enumerate()
                .fold(0.0, |acc, (j, &c)| acc + primary[j * 256 + usize::from(c)]);
            secondary[usize::from(code[0])] + bias * correction + residual
        }
        Form::RaBitQ { bits: code_bits } => {
            let layout = super::rabitq::layout_of(code.len(), code_bits);
            let mut levels = vec![0u8; layout.padded];
            layout.unpack(&code[super::rabitq_prefix_len(code_bits)..], &mut levels);
            // The wide part weighs the rotated query, the planes its quantized form.
            let wide_mask = layout.wide_mask();
            let quantized = if layout.scoring() == super::rabitq::Planes::Levels {
                super::rabitq::quantized_query(layout.padded, bits, secondary)
            } else {
                primary[..layout.padded].to_vec()
            };
            let dot = levels.iter().enumerate().fold(0.0, |acc, (i, &u)| {
                let planes = u & !wide_mask;
                acc + primary[i] * f32::from(u & wide_mask) + quantized[i] * f32::from(planes)
            });
            let factors = super::Factors::read(code, code_bits);
            secondary[usize::from(factors.centroid)] + factors.add + factors.mul * (dot - bias)
        }
    }
}

/// A RaBitQ code's estimate from its definition, in f64: rotate the query, take the grid
/// vector `ȳ = u - h` the code stores, and evaluate `table(q, c) + add + mul·⟨w, ȳ⟩` with
/// `w = Rq` (the planes of 1-3-bit codes weigh `w` rounded to its 8-bit grid), with `table` `‖q - c‖²` (L2), `½‖q - c‖²` (cosine)
/// or `-⟨q, c⟩` (inner product). Returns the estimate and its bound at confidence 1,
/// `‖q - c‖·err`.
///
/// # Panics
/// If `codec` is not RaBitQ or a length is wrong.
pub fn rabitq_estimate(codec: &Codec, query: &[f32], code: &[u8]) -> (f64, f64) {
    let Codec::RaBitQ(rabitq) = codec else { panic!("rabitq_estimate: not a RaBitQ codec") };
    let dim = rabitq.dim();
    let rotation = rabitq.rotation();
    let mut rotated = vec![0.0; rotation.padded()];
    rotation.apply(query, &mut rotated);
    let layout = super::rabitq::layout_of(code.len(), rabitq.bits());
    let mut levels = vec![0u8; layout.padded];
    layout.unpack(&code[super::rabitq_prefix_len(rabitq.bits())..], &mut levels);
    // Bit planes are scored against the query on its grid (`rabitq::query_grid`); the byte
    // or nibble part against the rotated query itself.
    let (lower, step, level_of) = super::rabitq::query_grid(&rotated);
    let on_grid = |w: f32| f64::from(lower) + f64::from(step) * f64::from(level_of(w));
    let wide_mask = layout.wide_mask();
    let h = f64::from(layout.half_span());
    let projection: f64 = rotated
        .iter()
        .zip(&levels)
        .map(|(&w, &u)| {
            let planes = match layout.scoring() {
                super::rabitq::Planes::Levels => on_grid(w),
                _ => f64::from(w),
            };
            f64::from(w) * f64::from(u & wide_mask) + planes * f64::from(u & !wide_mask)
                - h * f64::from(w)
        })
        .sum();
    let factors = super::Factors::read(code, rabitq.bits());
    let c = usize::from(factors.centroid);
    let centroid = &rabitq.centroids()[c * dim..(c + 1) * dim];
    let l2: f64 =
        query.iter().zip(centroid).map(|(&q, &c)| (f64::from(q) - f64::from(c)).powi(2)).sum();
    let table = match codec.metric() {
        Metric::L2 => l2,
        Metric::Cosine => 0.5 * l2,
        Metric::InnerProduct => {
            -query.iter().zip(centroid).map(|(&q, &c)| f64::from(q) * f64::from(c)).sum::<f64>()
        }
    };
    let estimate = table + f64::from(factors.add) + f64::from(factors.mul) * projection;
    (estimate, l2.sqrt() * f64::from(factors.err))
}

/// The distance from `query` to the decoded `code`: what every code distance means. For L2 and
/// inner product it is the metric's; for cosine it is `½‖q - x̂‖²`, which equals the cosine
/// distance `1 - q·x̂` whenever `x̂` has unit norm (see [`Codec`] on why). RaBitQ's estimates
/// are not a decoded vector's distances (see [`rabitq_estimate`]).
pub fn decoded_distance(codec: &Codec, query: &[f32], code: &[u8]) -> f32 {
    let mut decoded = vec![0.0; codec.dim()];
    codec.decode(code, &mut decoded);
    match codec.metric() {
        Metric::L2 => scalar::l2_squared(query, &decoded),
        Metric::InnerProduct => -scalar::dot(query, &decoded),
        Metric::Cosine => 0.5 * scalar::l2_squared(query, &decoded),
    }
}
