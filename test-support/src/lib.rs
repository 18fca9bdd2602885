//! What Strata's tests share, so each helper is written once: a counting global allocator for
//! the no-allocation claims, little-endian readers for the format layout tests, writers of the `.fvecs` / `.ivecs` benchmark formats, and a
//! storage wrapper that pauses a caller on a read so a test can race it deterministically.
//!
//! A dev-dependency only (`publish = false`; the dependency-rules test refuses it as a normal
//! dependency). Seeded random data comes from `strata_quantize::rng::SplitMix64`, the one
//! generator of the workspace; this crate depends on `storage` alone, so every crate's tests
//! may use it without a cycle.

mod alloc;
mod bytes;
mod pause;
mod vecs;

pub use crate::alloc::{CountingAllocator, allocations_during};
pub use crate::bytes::LeBytes;
pub use crate::pause::{Pause, PausingStore};
pub use crate::vecs::{write_fvecs, write_ivecs};
