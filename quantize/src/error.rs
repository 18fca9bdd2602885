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
}
