//! Immutable flat segments: rows of `(id, vector)` written once from a frozen memtable (or a
//! compaction) and searched by an exact SIMD scan.
//!
//! A segment is one object: a header, a 64-byte-aligned vector block that a memory map reads in
//! place as `&[f32]`, the id column, optional sections for later columns, a section directory and
//! the framing footer. Byte layout and versioning: `docs/format/segment-flat.md`.
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

pub use crate::error::{Problem, Result, SegmentError};
pub use crate::reader::{Expected, FlatSegment};
pub use crate::writer::{FlatWriter, WrittenSegment};
