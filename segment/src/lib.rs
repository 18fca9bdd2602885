//! The segment-file layer: what every segment kind's file shares, so a new section (attribute
//! columns, payloads, new codes) is written and checked once for all of them.
//!
//! A segment file is a framed object (`strata_storage::framing`) whose body is a 64-byte header,
//! sections, a section directory and a trailer (`docs/format/segment-file.md`). This crate owns
//! the header's common fields (magic, version, dim, metric, rows), the directory with its
//! required/optional flags, section bounds and checksums, the id column, the codebook and codes
//! pair, the check against what a manifest expects, and the shared error kinds. A kind (flat,
//! Vamana) declares its magic and section kinds, reads its own header fields and sections, and
//! writes through [`SectionWriter`].

#[cfg(not(target_endian = "little"))]
compile_error!(
    "segment files are read in place as little-endian; big-endian targets are not supported"
);

mod error;
pub mod format;
mod reader;
mod writer;

pub use crate::error::{FileError, Problem};
pub use crate::reader::{Expected, FileSpec, LazyCheck, Section, SectionSpec, SegmentFile};
pub use crate::writer::{
    AttributeSections, OpenSection, SectionWriter, WrittenSegment, encode_payloads,
};
