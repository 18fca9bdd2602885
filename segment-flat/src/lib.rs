//! Immutable flat segments: rows of `(id, vector)` written once from a frozen memtable (or a
//! compaction) and searched by an exact SIMD scan.
//!
//! A segment is one object: a header, a 64-byte-aligned vector block that a memory map reads in
//! place as `&[f32]`, the id column, optional sections for later columns, a section directory and
//! the framing footer. Byte layout and versioning: `docs/format/segment-flat.md`.
//!
//! A segment may also carry quantized codes of its rows (SQ8, INT4, PQ or RaBitQ, from
//! `strata-quantize`) with their codebook: [`FlatSegment::search_codes`] then scans the codes,
//! a fraction of the vectors' bytes, and reranks the best candidates with the exact vectors.
//!
//! Deletions are not this crate's business: a search takes a `skip` predicate over rows, which
//! the engine backs with the segment's deletion vector.

#[cfg(not(target_endian = "little"))]
compile_error!(
    "flat segments map little-endian f32 blocks in place; big-endian targets are not supported"
);

mod error;
pub mod format;
mod reader;
mod writer;

pub use crate::error::{FileError, Problem, Result, SegmentError};
pub use crate::reader::{CodeScratch, Expected, FlatSegment, Rerank};
pub use crate::writer::{FlatWriter, WrittenSegment};
pub use strata_segment::{AttributeSections, encode_payloads};
