//! The flat segment crate's error type.

pub use strata_segment::{FileError, Problem};
use strata_storage::Error as StorageError;

/// A result with the flat segment crate's [`SegmentError`].
pub type Result<T, E = SegmentError> = std::result::Result<T, E>;

/// Everything writing, opening or reading a flat segment can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// What every segment kind reports: storage and framing failures, corrupt content, a file
    /// other than the one the manifest expects, an unknown required section, a wrong dimension.
    #[error(transparent)]
    File(#[from] FileError),

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

impl From<StorageError> for SegmentError {
    fn from(error: StorageError) -> Self {
        SegmentError::File(FileError::Storage(error))
    }
}
