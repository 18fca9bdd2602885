//! Plain scalar reference implementations of every kernel in [`crate::kernels`].
//!
//! These are deliberately naive — one accumulator, left-to-right order, no FMA — so they are
//! easy to trust. Tests compare every SIMD path against them; production code should call the
//! dispatched kernels instead, which are several times faster.

use crate::kernels::{assert_batch_shape, assert_same_len};

/// Inner product `Σ aᵢ·bᵢ`.
///
/// # Panics
/// If `a.len() != b.len()`.
#[track_caller]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_same_len("dot", a, b);
    a.iter().zip(b).fold(0.0, |acc, (&x, &y)| acc + x * y)
}

/// Squared Euclidean distance `Σ (aᵢ - bᵢ)²`.
///
/// # Panics
/// If `a.len() != b.len()`.
#[track_caller]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    assert_same_len("l2_squared", a, b);
    a.iter().zip(b).fold(0.0, |acc, (&x, &y)| {
        let diff = x - y;
        acc + diff * diff
    })
}

/// Squared Euclidean norm `Σ aᵢ²`.
pub fn norm_squared(a: &[f32]) -> f32 {
    a.iter().fold(0.0, |acc, &x| acc + x * x)
}

/// [`dot`] of `query` with each of the `out.len()` row-major rows in `rows`.
///
/// # Panics
/// If `rows.len() != query.len() * out.len()`.
#[track_caller]
pub fn dot_batch(query: &[f32], rows: &[f32], out: &mut [f32]) {
    assert_batch_shape("dot_batch", query, rows, out);
    for (row_index, slot) in out.iter_mut().enumerate() {
        let start = row_index * query.len();
        *slot = dot(query, &rows[start..start + query.len()]);
    }
}

/// [`l2_squared`] of `query` against each of the `out.len()` row-major rows in `rows`.
///
/// # Panics
/// If `rows.len() != query.len() * out.len()`.
#[track_caller]
pub fn l2_squared_batch(query: &[f32], rows: &[f32], out: &mut [f32]) {
    assert_batch_shape("l2_squared_batch", query, rows, out);
    for (row_index, slot) in out.iter_mut().enumerate() {
        let start = row_index * query.len();
        *slot = l2_squared(query, &rows[start..start + query.len()]);
    }
}
