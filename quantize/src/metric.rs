//! Distance metrics.

use std::fmt;
use std::str::FromStr;

use crate::{QuantizeError, kernels};

/// How two vectors are compared. For every metric a *smaller* distance means *more similar*,
/// so index tiers rank results the same way regardless of metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance `Σ (aᵢ - bᵢ)²` (the root does not change the ranking).
    L2,
    /// Negated inner product `-Σ aᵢ·bᵢ`, so that larger products rank first.
    InnerProduct,
    /// Cosine distance `1 - Σ aᵢ·bᵢ`, in `[0, 2]` up to rounding.
    ///
    /// The kernel assumes **both inputs are already unit-norm**: the engine normalizes cosine
    /// vectors (stored and query) with [`normalize`](crate::normalize) on write, which turns
    /// cosine into a single dot product instead of three reductions per comparison.
    Cosine,
}

impl Metric {
    /// Every metric, in declaration order.
    pub const ALL: [Metric; 3] = [Metric::L2, Metric::InnerProduct, Metric::Cosine];

    /// The canonical name accepted by [`FromStr`] and printed by [`Display`](fmt::Display):
    /// `"l2"`, `"ip"` or `"cosine"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
        }
    }

    /// The metric's stable on-disk code (segment headers, manifests): 1 = L2, 2 = inner
    /// product, 3 = cosine. Never reuse or renumber a code.
    pub const fn code(self) -> u8 {
        match self {
            Metric::L2 => 1,
            Metric::InnerProduct => 2,
            Metric::Cosine => 3,
        }
    }

    /// The metric with on-disk [`code`](Self::code) `code`, if any.
    pub const fn from_code(code: u8) -> Option<Metric> {
        match code {
            1 => Some(Metric::L2),
            2 => Some(Metric::InnerProduct),
            3 => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// Whether vectors must be unit-normalized (with [`normalize`](crate::normalize)) before
    /// they are stored or used as queries under this metric.
    pub const fn needs_normalization(self) -> bool {
        matches!(self, Metric::Cosine)
    }

    /// Distance between `a` and `b`; smaller is more similar.
    ///
    /// # Panics
    /// If `a.len() != b.len()`.
    #[inline]
    #[track_caller]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => kernels::l2_squared(a, b),
            Metric::InnerProduct => -kernels::dot(a, b),
            Metric::Cosine => 1.0 - kernels::dot(a, b),
        }
    }

    /// [`distance`](Self::distance) at the SIMD level `simd`, for use inside
    /// [`Kernels::dispatch`](crate::Kernels::dispatch).
    ///
    /// # Panics
    /// If `a.len() != b.len()`.
    #[inline(always)]
    #[track_caller]
    pub fn distance_simd<S: pulp::Simd>(self, simd: S, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => kernels::l2_squared_simd(simd, a, b),
            Metric::InnerProduct => -kernels::dot_simd(simd, a, b),
            Metric::Cosine => 1.0 - kernels::dot_simd(simd, a, b),
        }
    }

    /// Distance from `query` to each of `out.len()` contiguous row-major rows of
    /// `query.len()` floats in `rows`; row `i`'s distance goes to `out[i]`. Does not allocate.
    ///
    /// # Panics
    /// If `rows.len() != query.len() * out.len()`.
    #[track_caller]
    pub fn distance_batch(self, query: &[f32], rows: &[f32], out: &mut [f32]) {
        match self {
            Metric::L2 => kernels::l2_squared_batch(query, rows, out),
            Metric::InnerProduct => {
                kernels::dot_batch(query, rows, out);
                out.iter_mut().for_each(|d| *d = -*d);
            }
            Metric::Cosine => {
                kernels::dot_batch(query, rows, out);
                out.iter_mut().for_each(|d| *d = 1.0 - *d);
            }
        }
    }
}

impl FromStr for Metric {
    type Err = QuantizeError;

    /// Parses `"l2"`, `"ip"` or `"cosine"`, ignoring ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|metric| metric.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| QuantizeError::UnknownMetric { name: name.to_owned() })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
