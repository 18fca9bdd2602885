//! Strata: an embeddable, LSM-style tiered vector storage engine.
//!
//! This crate will own the public API: `Db`, `Options`, the write path, snapshots, search fan-out
//! and merge, the compaction policy and its worker, and garbage collection. The other workspace
//! crates are its internals.
