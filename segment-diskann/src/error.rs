//! The Vamana segment crate's error type.

use strata_quantize::QuantizeError;
pub use strata_segment::{FileError, Problem};
use strata_storage::Error as StorageError;

/// A result with the Vamana segment crate's [`VamanaError`].
pub type Result<T, E = VamanaError> = std::result::Result<T, E>;

/// Everything building, opening or searching a Vamana segment can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VamanaError {
    /// Training the codec failed (too few rows for PQ, bad sub-space count, ...).
    #[error("training the segment's codec: {0}")]
    Codec(#[from] QuantizeError),

    /// What every segment kind reports: storage and framing failures, corrupt content, a file
    /// other than the one the manifest expects, an unknown required section, a wrong dimension.
    #[error(transparent)]
    File(#[from] FileError),

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

    /// The build was cancelled through its [`BuildMonitor`](crate::BuildMonitor); nothing was
    /// written.
    #[error("the vamana build was cancelled")]
    Cancelled,

    /// The builder or a search was given invalid parameters.
    #[error("invalid vamana parameter: {0}")]
    InvalidParameter(&'static str),
}

impl From<StorageError> for VamanaError {
    fn from(error: StorageError) -> Self {
        VamanaError::File(FileError::Storage(error))
    }
}
