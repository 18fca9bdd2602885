//! Immutable Vamana (DiskANN) segments: the tier large data lives in.
//!
//! A segment is one object. Only the quantized codes (PQ by default; SQ8 or INT4 on request)
//! are loaded into RAM; each row's full vector and neighbour list sit together in a node,
//! packed into 4 KiB sectors that a search reads one node per hop from the mapped object (or,
//! later, from an object store through a cache). Byte layout and versioning:
//! `docs/format/segment-diskann.md`.
//!
//! - [`VamanaBuilder`] takes a stream of `(id, vector)` rows (a compaction's merged inputs)
//!   and builds the graph: one pass of greedy search plus robust prune from an empty graph,
//!   back edges pruned as lists overflow; parallel on every core and deterministic for a seed.
//! - [`VamanaSegment::search`] walks the graph from the medoid by code distance, with a
//!   candidate list of size L and a beam of W nodes per round, computes the exact distance of
//!   every node it expands from the vector in the node, and returns the best by exact distance.
//!
//! Deletions are not this crate's business: a search takes a `skip` predicate over rows, which
//! the engine backs with the segment's deletion vector. Skipped rows are walked through but
//! never returned.
//!
//! ```
//! use strata_quantize::{AdmitAll, Metric, TopK};
//! use strata_segment_diskann::{BuildOptions, SearchParams, SearchScratch, VamanaBuilder, VamanaSegment};
//! use strata_storage::MemoryStore;
//!
//! let store = MemoryStore::new();
//! let mut builder = VamanaBuilder::new(2, Metric::L2, BuildOptions::default().max_degree(8))?;
//! for i in 0..300u64 {
//!     let angle = i as f32 * 0.1;
//!     builder.push(i, &[angle.cos() * (1.0 + i as f32), angle.sin()])?;
//! }
//! builder.finish(&store, "segments/0001.vamana")?;
//!
//! let segment = VamanaSegment::open(&store, "segments/0001.vamana")?;
//! let mut top = TopK::new(3);
//! let mut scratch = SearchScratch::default();
//! let query = [43.0 * 4.2f32.cos(), 4.2f32.sin()]; // row 42
//! segment.search(&query, &SearchParams::default(), &AdmitAll, &mut top, &mut scratch)?;
//! assert_eq!(top.into_sorted_vec()[0].id, 42);
//! # Ok::<(), strata_segment_diskann::VamanaError>(())
//! ```

#[cfg(not(target_endian = "little"))]
compile_error!(
    "vamana segments map little-endian f32 and u32 nodes in place; big-endian targets are not supported"
);

mod build;
mod error;
pub mod format;
mod list;
mod reader;
mod walk;

pub use crate::build::{
    BuildMonitor, BuildOptions, BuildProgress, BuildReport, BuildStage, Calibrated, VamanaBuilder,
    WIDE_DIM, WrittenSegment,
};
pub use crate::error::{FileError, Problem, Result, VamanaError};
pub use crate::reader::{
    DEFAULT_RERANK_CONFIDENCE, Expected, SearchParams, SearchScratch, SearchStats, VamanaSegment,
};
