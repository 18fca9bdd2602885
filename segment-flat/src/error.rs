//! The flat segment crate's error type.

use strata_storage::Error as StorageError;

/// A result with the flat segment crate's [`SegmentError`].
pub type Result<T, E = SegmentError> = std::result::Result<T, E>;

/// Everything writing, opening or reading a flat segment can report. Variants name the object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The storage layer failed, or the object failed its framing checks (magic, footer
    /// checksum, version, required features, length).
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// The object passed its framing checks but its content is inconsistent.
    #[error("flat segment {object:?} is corrupt: {problem}")]
    Corrupt { object: String, problem: Problem },

    /// The segment is intact but is not the one the caller expected (the manifest records other
    /// values for it): a misplaced or swapped file.
    #[error("flat segment {object:?} has {field} {found}, but {expected} was expected")]
    Mismatch { object: String, field: &'static str, expected: u64, found: u64 },

    /// A section this build does not know is marked required.
    #[error("flat segment {object:?} has a required section of unknown kind {kind}")]
    UnknownSection { object: String, kind: u32 },

    /// A vector or query of the wrong length.
    #[error("vector has {found} components, but the segment holds {expected}-dimensional vectors")]
    DimensionMismatch { expected: usize, found: usize },

    /// [`FlatWriter::finish`](crate::FlatWriter::finish) was called after a number of rows
    /// other than the one announced, or a push went past it.
    #[error(
        "flat segment {object:?} was announced with {announced} rows, but {written} were written"
    )]
    RowCount { object: String, announced: u64, written: u64 },

    /// The writer was given invalid parameters.
    #[error("invalid flat segment parameter: {0}")]
    InvalidParameter(&'static str),

    /// A code search was asked of a segment written without codes.
    #[error("flat segment {object:?} carries no codes")]
    NoCodes { object: String },
}

/// What exactly is wrong inside a corrupt flat segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The header's own checksum does not match.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The header's magic is not the flat segment's.
    #[error("bad header magic")]
    HeaderMagic,
    /// A header field is out of range (zero dimension, unknown metric code, ...).
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
    /// A section's length does not match the header's row count and dimension.
    #[error("section of kind {kind} has {found} bytes, expected {expected}")]
    SectionLength { kind: u32, expected: u64, found: u64 },
    /// A section's checksum does not match.
    #[error("section of kind {kind} fails its checksum")]
    SectionChecksum { kind: u32 },
    /// The codebook section does not decode, or does not fit the segment.
    #[error("codebook: {0}")]
    Codebook(String),
}
