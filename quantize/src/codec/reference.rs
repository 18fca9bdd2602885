//! Plain scalar references for the code kernels, which tests hold every SIMD path to.
//!
//! Two levels of reference: [`PreparedQuery::distance_reference`](super::PreparedQuery) evaluates
//! the prepared query's folded formula in one left-to-right loop, and [`decoded_distance`]
//! decodes the code and applies the metric's scalar reference: the definition the folded
//! formulas must equal up to rounding.

use super::{Codec, Form};
use crate::{Metric, scalar};

/// The folded formula of a prepared query, in one plain loop.
pub(crate) fn prepared_distance(
    form: Form,
    bias: f32,
    primary: &[f32],
    secondary: &[f32],
    code: &[u8],
) -> f32 {
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
    }
}

/// The distance from `query` to the decoded `code`: what every code distance means. For L2 and
/// inner product it is the metric's; for cosine it is `½‖q - x̂‖²`, which equals the cosine
/// distance `1 - q·x̂` whenever `x̂` has unit norm (see [`Codec`] on why).
pub fn decoded_distance(codec: &Codec, query: &[f32], code: &[u8]) -> f32 {
    let mut decoded = vec![0.0; codec.dim()];
    codec.decode(code, &mut decoded);
    match codec.metric() {
        Metric::L2 => scalar::l2_squared(query, &decoded),
        Metric::InnerProduct => -scalar::dot(query, &decoded),
        Metric::Cosine => 0.5 * scalar::l2_squared(query, &decoded),
    }
}
