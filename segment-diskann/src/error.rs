//! The Vamana segment crate's error type.

use strata_quantize::QuantizeError;
use strata_storage::Error as StorageError;

/// A result with the Vamana segment crate's [`VamanaError`].
pub type Result<T, E = VamanaError> = std::result::Result<T, E>;

/// Everything building, opening or searching a Vamana segment can report. Variants name the
/// object where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VamanaError {
    /// The storage layer failed, or the object failed its framing checks (magic, footer
    /// checksum, version, required features, length).
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// Training the codec failed (too few rows for PQ, bad sub-space count, ...).
    #[error("training the segment's codec: {0}")]
    Codec(#[from] QuantizeError),

    /// The object passed its framing checks but its content is inconsistent.
    #[error("vamana segment {object:?} is corrupt: {problem}")]
    Corrupt { object: String, problem: Problem },

    /// The segment is intact but is not the one the caller expected (the manifest records other
    /// values for it): a misplaced or swapped file.
    #[error("vamana segment {object:?} has {field} {found}, but {expected} was expected")]
    Mismatch { object: String, field: &'static str, expected: u64, found: u64 },

    /// A section this build does not know is marked required.
    #[error("vamana segment {object:?} has a required section of unknown kind {kind}")]
    UnknownSection { object: String, kind: u32 },

    /// A vector or query of the wrong length.
    #[error("vector has {found} components, but the segment holds {expected}-dimensional vectors")]
    DimensionMismatch { expected: usize, found: usize },

    /// A vector given to the builder has a NaN or infinite component.
    #[error("row {row} (id {id}) has a non-finite component at index {index}")]
    NonFinite { row: u64, id: u64, index: usize },

    /// The build would need more memory than its budget allows.
    #[error(
        "a vamana build of {rows} rows needs about {needed} bytes, over the budget of {budget} bytes"
    )]
    OverBudget { rows: u64, needed: u64, budget: u64 },

    /// A segment must hold at least one row.
    #[error("a vamana segment needs at least one row")]
    Empty,

    /// The builder or a search was given invalid parameters.
    #[error("invalid vamana parameter: {0}")]
    InvalidParameter(&'static str),
}

/// What exactly is wrong inside a corrupt Vamana segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The header's own checksum does not match.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The header's magic is not the Vamana segment's.
    #[error("bad header magic")]
    HeaderMagic,
    /// A header field is out of range or disagrees with the others.
    #[error("header field {field} has invalid value {value}")]
    HeaderField { field: &'static str, value: u64 },
    /// The section directory's checksum does not match.
    #[error("section directory checksum mismatch")]
    DirectoryChecksum,
    /// The section directory does not fit where the trailer says it is.
    #[error("section directory out of bounds")]
    DirectoryBounds,
    /// A section lies outside the body, overlaps the header or directory, or is misaligned.
    #[error("section of kind {kind} at {offset}+{len} is out of bounds or misaligned")]
    SectionBounds { kind: u32, offset: u64, len: u64 },
    /// A required section is missing, or present twice.
    #[error("section of kind {kind} is missing or duplicated")]
    SectionCount { kind: u32 },
    /// A section's length does not match the header.
    #[error("section of kind {kind} has {found} bytes, expected {expected}")]
    SectionLength { kind: u32, expected: u64, found: u64 },
    /// A section's checksum does not match.
    #[error("section of kind {kind} fails its checksum")]
    SectionChecksum { kind: u32 },
    /// A node sector fails its checksum (found the first time a search reads it).
    #[error("node sector {sector} fails its checksum")]
    SectorChecksum { sector: u64 },
    /// A node's degree or a neighbour id is out of range.
    #[error("node {row} has an invalid neighbour list")]
    Node { row: u32 },
    /// The calibration section is malformed.
    #[error("calibration section is malformed")]
    Calibration,
    /// The codebook section does not decode, or does not fit the segment.
    #[error("codebook: {0}")]
    Codebook(String),
}
