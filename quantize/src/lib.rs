//! Distance metrics, SIMD f32 kernels dispatched at run time, and vector codecs (SQ8, INT4, PQ,
//! residual PQ, RaBitQ).
//! Does no I/O.
//!
//! - [`kernels`]: `dot`, `l2_squared`, `norm_squared` and their batch forms, dispatched once
//!   per call to AVX-512 / AVX2+FMA / NEON / portable code (see [`isa`]).
//! - [`scalar`]: the naive reference implementations the SIMD paths are tested against.
//! - [`Metric`]: L2, inner product and cosine as "smaller is better" distances.
//! - [`Admission`]: the rows a tier search may return (deletes and filters alike).
//! - [`TopK`]: the bounded k-nearest collector shared by every index tier; [`Visited`]: the
//!   epoch-stamped set of rows a graph search has seen.
//! - [`codec`]: trained vector codecs (SQ8, INT4, PQ, residual PQ, RaBitQ) with SIMD asymmetric distances and a
//!   versioned codebook format.
//!
//! ```
//! use strata_quantize::{Metric, Neighbor, TopK};
//!
//! let dim = 4;
//! let query = [1.0, 0.0, 0.0, 0.0];
//! let rows = [
//!     0.0, 1.0, 0.0, 0.0, // id 0
//!     0.9, 0.1, 0.0, 0.0, // id 1
//!     1.0, 0.0, 0.0, 0.0, // id 2
//! ];
//! let mut distances = [0.0f32; 3];
//! Metric::L2.distance_batch(&query, &rows, &mut distances);
//!
//! let mut top = TopK::new(2);
//! for (id, &distance) in distances.iter().enumerate() {
//!     top.push(id as u64, distance);
//! }
//! let mut nearest = Vec::with_capacity(2);
//! top.sorted_into(&mut nearest);
//! assert_eq!(nearest.iter().map(|n: &Neighbor| n.id).collect::<Vec<_>>(), [2, 1]);
//! assert_eq!(rows.len(), dim * distances.len());
//! ```
//!
//! # Crate features
//! - `x86-v4` (default): also compile the AVX-512 kernels (pulp's x86 V4 level) and prefer them
//!   when the CPU has AVX-512F/BW/CD/DQ/VL. Needs Rust ≥ 1.89.

pub mod admission;
pub mod codec;
mod error;
pub mod kernels;
mod metric;
pub mod parallel;
pub mod rng;
pub mod scalar;
pub mod topk;
pub mod visited;

pub use admission::{Admission, AdmitAll, AdmitIf, Admitted};
pub use codec::{
    Codec, CodecKind, FASTSCAN_BLOCK, FastScanCodes, FastScanQuery, PreparedQuery,
    ProductQuantizer, QueryScratch, RABITQ_CONFIDENCE, RaBitQ, ScalarQuantizer, TrainOptions,
};
pub use error::QuantizeError;
pub use kernels::{
    ISA_OVERRIDE_VAR, Isa, Kernels, dot, dot_batch, dot_simd, isa, l2_squared, l2_squared_batch,
    l2_squared_simd, norm_squared, normalize, prefetch, prefetch_lines,
};
pub use metric::Metric;
/// The SIMD abstraction the generic kernels are written over, re-exported so callers of
/// [`Kernels::dispatch`] use the same version.
pub use pulp::{Simd, WithSimd};
pub use topk::{Neighbor, TopK};
pub use visited::{Epoch, Visited};
