//! The seeded generator data sets are drawn from: quantize's SplitMix64, so data sets depend
//! only on the seed and the row index, whatever the thread count or library versions.

pub use strata_quantize::rng::SplitMix64 as Rng;
