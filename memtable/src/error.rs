//! The memtable's error type.

/// What a memtable operation can refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MemtableError {
    /// A vector's length is not the memtable's dimension.
    #[error("vector has {found} components, but the memtable holds {expected}-dimensional vectors")]
    DimensionMismatch { expected: usize, found: usize },
    /// A component is NaN or infinite.
    #[error("component {index} of the vector is {value}, not a finite number")]
    NonFinite { index: usize, value: f32 },
    /// A vector so large that distances to it could overflow `f32`.
    #[error(
        "the vector's norm {norm:e} is too large: distances to it would overflow f32 (limit about 3e18)"
    )]
    TooLarge { norm: f64 },
    /// A zero vector has no direction, so it cannot be stored or searched under cosine.
    #[error("the zero vector has no direction: cosine distance is undefined for it")]
    ZeroVector,
    /// The memtable was frozen for a flush; writes go to its successor.
    #[error("the memtable is frozen and accepts no more writes")]
    Frozen,
    /// The memtable has used every row it can address.
    #[error("the memtable is full ({capacity} rows, including superseded ones)")]
    Full { capacity: usize },
    /// A construction parameter is out of range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter { name: &'static str, value: usize, reason: &'static str },
}
