//! The crate's error type.

/// Errors returned by `strata-quantize`.
///
/// Length mismatches between vectors are *not* errors: the engine validates user input before
/// calling into this crate, so a mismatch is a bug and the kernels panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantizeError {
    /// A metric name that [`Metric::from_str`](crate::Metric) does not know.
    #[error("unknown metric {name:?}; expected one of \"l2\", \"ip\", \"cosine\"")]
    UnknownMetric {
        /// The rejected input, verbatim.
        name: String,
    },
    /// The vector has no direction to keep: every component is zero.
    #[error("cannot normalize a zero vector of dimension {dim}")]
    ZeroNorm {
        /// Length of the rejected vector.
        dim: usize,
    },
    /// A component is NaN or infinite, so the norm is meaningless.
    #[error("cannot normalize a vector with non-finite component {value} at index {index}")]
    NonFiniteComponent {
        /// Position of the first non-finite component.
        index: usize,
        /// Its value (NaN or ±inf).
        value: f32,
    },
    /// A codec cannot be trained on this few rows.
    #[error("training a {codec} codec needs at least {needed} rows, got {found}")]
    TooFewRows {
        /// The codec being trained (`"sq8"`, `"int4"`, `"pq"`).
        codec: &'static str,
        /// Rows it needs.
        needed: usize,
        /// Rows it was given.
        found: usize,
    },
    /// A training row has a NaN or infinite component.
    #[error("training row {row} has non-finite component {value} at index {index}")]
    NonFiniteTrainingValue {
        /// Row of the first non-finite component.
        row: usize,
        /// Its position in the row.
        index: usize,
        /// Its value (NaN or ±inf).
        value: f32,
    },
    /// A codec parameter out of range (a zero dimension, more sub-spaces than dimensions, ...).
    #[error("invalid codec parameter {name}: {problem}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A serialized codebook that fails its checks.
    #[error("corrupt codebook: {problem}")]
    CorruptCodebook {
        /// What failed.
        problem: String,
    },
    /// A codebook written by a format version this build cannot read.
    #[error(
        "codebook format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedCodebookVersion {
        /// The major version in the codebook.
        found: u16,
        /// The major version this build reads.
        supported: u16,
    },
    /// A codec name that [`CodecKind::from_str`](crate::CodecKind) does not know.
    #[error("unknown codec {name:?}; expected \"sq8\", \"int4\" or \"pq<subspaces>\" (\"pq32\")")]
    UnknownCodec {
        /// The rejected input, verbatim.
        name: String,
    },
}
