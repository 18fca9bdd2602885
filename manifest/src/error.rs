//! The manifest crate's error type.

use strata_storage::Error as StorageError;

/// A result with the manifest crate's [`ManifestError`].
pub type Result<T, E = ManifestError> = std::result::Result<T, E>;

/// Everything reading, committing or collecting manifests and deletion vectors can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The storage layer failed, or an object failed its framing checks.
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// An object passed its framing checks but its content is inconsistent.
    #[error("{object:?} is corrupt: {problem}")]
    Corrupt { object: String, problem: Problem },

    /// Committing version `version` lost: another writer created it first. Nothing was changed.
    #[error("commit conflict: manifest version {version} was already written by another writer")]
    Conflict { version: u64 },

    /// No manifest of this version exists (never written, or removed by garbage collection).
    #[error("manifest version {version} does not exist")]
    VersionNotFound { version: u64 },

    /// The store holds no manifest at all: not a database.
    #[error("no manifest found: the store holds no database")]
    NoDatabase,
}

/// What exactly is wrong inside a corrupt manifest or deletion vector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The attribute schema block is malformed.
    #[error("attribute schema block is malformed")]
    Schema,
    /// The body is shorter than its fixed parts or its tables promise.
    #[error("body of {len} bytes, expected {expected}")]
    Length { len: u64, expected: u64 },
    /// The version inside differs from the one in the object's name.
    #[error("records version {found}, but its name says {expected}")]
    VersionMismatch { expected: u64, found: u64 },
    /// A field holds an impossible value.
    #[error("field {field} has invalid value {value}")]
    Field { field: &'static str, value: u64 },
    /// Two segments share an id.
    #[error("segment id {id} appears twice")]
    DuplicateSegment { id: u64 },
    /// The object differs from what the manifest recorded about it.
    #[error("the manifest records {field} {recorded}, but the object has {found}")]
    Recorded { field: &'static str, recorded: u64, found: u64 },
    /// A deletion vector names a row beyond its segment, or is not sorted.
    #[error("deletion vector row {row} is out of order or beyond {rows} rows")]
    DeletedRow { row: u64, rows: u64 },
}
