//! The errors every segment kind shares; each kind's error wraps [`FileError`].

use strata_storage::Error as StorageError;

/// What opening, checking or writing a segment file can report, whatever its kind. Variants
/// name the format ("flat", "vamana") and the object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The storage layer failed, or the object failed its framing checks (magic, footer
    /// checksum, version, required features, length).
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// The object passed its framing checks but its content is inconsistent.
    #[error("{format} segment {object:?} is corrupt: {problem}")]
    Corrupt { format: &'static str, object: String, problem: Problem },

    /// The segment is intact but is not the one the caller expected (the manifest records other
    /// values for it): a misplaced or swapped file.
    #[error("{format} segment {object:?} has {field} {found}, but {expected} was expected")]
    Mismatch {
        format: &'static str,
        object: String,
        field: &'static str,
        expected: u64,
        found: u64,
    },

    /// A section this build does not know is marked required.
    #[error("{format} segment {object:?} has a required section of unknown kind {kind}")]
    UnknownSection { format: &'static str, object: String, kind: u32 },

    /// A vector or query of the wrong length.
    #[error("vector has {found} components, but the segment holds {expected}-dimensional vectors")]
    DimensionMismatch { expected: usize, found: usize },
}

/// What exactly is wrong inside a corrupt segment file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The header's own checksum does not match.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The header's magic is not the kind's.
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
    /// The codebook section does not decode, or does not fit the segment.
    #[error("codebook: {0}")]
    Codebook(String),
    /// A Vamana node sector fails its checksum (found the first time a search reads it).
    #[error("node sector {sector} fails its checksum")]
    SectorChecksum { sector: u64 },
    /// A Vamana node's degree or a neighbour id is out of range.
    #[error("node {row} has an invalid neighbour list")]
    Node { row: u32 },
    /// A row's payload offsets are out of order or past the section.
    #[error("payload of row {row} is out of bounds")]
    Payload { row: u32 },
    /// The attribute section does not decode.
    #[error("attribute section: {0}")]
    Attributes(String),
    /// The Vamana calibration section is malformed.
    #[error("calibration section is malformed")]
    Calibration,
}
