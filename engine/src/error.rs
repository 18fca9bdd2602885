//! The engine's error type, wrapping each crate's own.

use std::sync::Arc;

use strata_attributes::AttributeError;
use strata_manifest::ManifestError;
use strata_memtable::MemtableError;
use strata_segment_diskann::VamanaError;
use strata_segment_flat::FileError;
use strata_segment_flat::SegmentError;

/// A result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the engine can report.
///
/// Bad input ([`Error::InvalidVector`], [`Error::InvalidBatch`], [`Error::InvalidOption`])
/// changes nothing. Damage to stored objects surfaces as [`Error::Storage`],
/// [`Error::Manifest`] or [`Error::Segment`], each naming the object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector or query was refused: wrong dimension, NaN or infinite component, a norm too
    /// large, or a zero vector under cosine.
    #[error("invalid vector: {0}")]
    InvalidVector(#[from] MemtableError),

    /// A batch whose ids and vectors do not line up.
    #[error("invalid batch: {ids} ids but {floats} floats for dimension {dim}")]
    InvalidBatch {
        /// Ids given.
        ids: usize,
        /// Floats given.
        floats: usize,
        /// The database's dimension.
        dim: usize,
    },

    /// One row of a batch was refused (a batch of queries: `id` is `None`); nothing of the
    /// batch was applied.
    #[error("row {row}{}: {source}", id.map(|id| format!(" (id {id})")).unwrap_or_default())]
    InvalidRow {
        /// The row's index in the batch.
        row: usize,
        /// Its id, for a batch of records.
        id: Option<u64>,
        /// Why it was refused.
        #[source]
        source: Box<Error>,
    },

    /// An Arrow record batch that does not fit the database: a missing or unknown column, a
    /// column of the wrong type, a null id. Changes nothing.
    #[error("invalid Arrow batch: column {column} {problem}")]
    InvalidArrow {
        /// The column's name.
        column: String,
        /// What is wrong with it.
        problem: String,
    },

    /// A batch of queries whose length is not a multiple of the dimension.
    #[error("invalid query batch: {floats} floats for dimension {dim}")]
    InvalidQueryBatch {
        /// Floats given.
        floats: usize,
        /// The database's dimension.
        dim: usize,
    },

    /// Long work was cancelled through its [`CancelToken`](crate::CancelToken) (or by
    /// `close`): nothing was published; what it wrote is garbage that `gc` removes.
    #[error("cancelled")]
    Cancelled,

    /// No retained version was committed at or before the time asked for.
    #[error(
        "no version committed at or before {time_ms} ms since the epoch (oldest kept: {oldest:?})"
    )]
    NoVersionAt {
        /// The time asked for, in milliseconds since the Unix epoch.
        time_ms: u64,
        /// The oldest version stored, if any.
        oldest: Option<crate::Version>,
    },

    /// A batch whose attributes do not line up with its ids.
    #[error("invalid batch: {ids} ids but {attributes} attribute sets")]
    InvalidAttributeBatch {
        /// Ids given.
        ids: usize,
        /// Attribute sets given.
        attributes: usize,
    },

    /// An ingested batch with more rows than one segment holds.
    #[error("batch too large: {rows} rows, a segment holds at most {max}")]
    BatchTooLarge {
        /// Rows given.
        rows: usize,
        /// The most one segment holds.
        max: usize,
    },

    /// Attributes, a schema or a filter were refused: an unknown attribute, a value of the
    /// wrong type, a filter that does not parse (its byte offset named), a schema change that
    /// retypes a column. Changes nothing.
    #[error(transparent)]
    Attribute(#[from] AttributeError),

    /// An option out of range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// What it must be.
        reason: &'static str,
    },

    /// `create` found a database already there.
    #[error("a database already exists at {location}")]
    AlreadyExists {
        /// Where.
        location: String,
    },

    /// Another writer committed this version first; this handle is fenced off and refuses
    /// further writes. Nothing was changed by the failed commit.
    #[error("commit conflict: another writer committed version {version}")]
    Conflict {
        /// The version the other writer committed.
        version: u64,
    },

    /// A write on a read-only handle.
    #[error("the database handle is read-only")]
    ReadOnly,

    /// An earlier commit failed part-way (its outcome on storage may be unknown), another
    /// writer fenced this one off, or background work failed, so this handle refuses writes;
    /// reads keep working. Reopen to continue from the last committed version. `cause` is the
    /// first error that poisoned it (match on it: `cause.is_conflict()`, ...).
    #[error("the database handle is poisoned and refuses writes: {cause}")]
    Poisoned {
        /// The first error that poisoned the handle.
        #[source]
        cause: Arc<Error>,
    },

    /// A thread doing the handle's work panicked (a bug: please report it with the message).
    #[error("a thread panicked during {during}: {message}")]
    Panicked {
        /// What the thread was doing.
        during: &'static str,
        /// The panic's message.
        message: String,
    },

    /// A compaction policy planned something impossible (no inputs, an input twice, or
    /// segments that are not live, again and again).
    #[error("invalid compaction plan: {reason}")]
    InvalidPlan {
        /// What was wrong with the plan.
        reason: String,
    },

    /// The manifest names a Vamana codec this build does not know.
    #[error("the database uses unknown codec code {code}")]
    UnknownCodec {
        /// The code stored.
        code: u8,
    },

    /// The manifest names a metric this build does not know.
    #[error("the database uses unknown metric code {code}")]
    UnknownMetric {
        /// The code stored.
        code: u8,
    },

    /// More segments than this build can address (2^32).
    #[error("segment id space exhausted")]
    SegmentIdsExhausted,

    /// The storage layer failed.
    #[error(transparent)]
    Storage(#[from] strata_storage::Error),

    /// A manifest or deletion vector could not be read or committed.
    #[error(transparent)]
    Manifest(ManifestError),

    /// A flat segment could not be written, opened or read.
    #[error(transparent)]
    Segment(#[from] SegmentError),

    /// A Vamana segment could not be built, opened or read.
    #[error(transparent)]
    Vamana(VamanaError),
}

impl From<VamanaError> for Error {
    fn from(error: VamanaError) -> Self {
        match error {
            VamanaError::Cancelled => Error::Cancelled,
            other => Error::Vamana(other),
        }
    }
}

impl From<ManifestError> for Error {
    fn from(error: ManifestError) -> Self {
        match error {
            ManifestError::Conflict { version } => Error::Conflict { version },
            ManifestError::Storage(e) => Error::Storage(e),
            other => Error::Manifest(other),
        }
    }
}

impl Error {
    /// Whether another writer committed first (this handle is fenced off; see
    /// [`Error::Conflict`]), or a handle refuses writes because of that.
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Conflict { .. } => true,
            Error::Poisoned { cause } => cause.is_conflict(),
            _ => false,
        }
    }

    /// Whether a stored object is damaged or is not the one the manifest records: a checksum,
    /// framing or content check failed, or a file was swapped. Committed data are never
    /// silently read past such an error; see the object it names.
    pub fn is_corruption(&self) -> bool {
        let storage =
            |e: &strata_storage::Error| matches!(e, strata_storage::Error::Corrupt { .. });
        let file = |e: &FileError| match e {
            FileError::Storage(e) => storage(e),
            FileError::Corrupt { .. }
            | FileError::Mismatch { .. }
            | FileError::UnknownSection { .. } => true,
            _ => false,
        };
        match self {
            Error::Poisoned { cause } => cause.is_corruption(),
            Error::Storage(e) => storage(e),
            Error::Manifest(ManifestError::Corrupt { .. }) => true,
            Error::Segment(SegmentError::File(e)) => file(e),
            Error::Vamana(VamanaError::File(e)) => file(e),
            _ => false,
        }
    }
}

impl Error {
    /// The kind of the operating-system I/O error that caused this one, if any (found along
    /// the chain of sources).
    pub fn io_error_kind(&self) -> Option<std::io::ErrorKind> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                return Some(io.kind());
            }
            cause = error.source();
        }
        None
    }

    /// Whether storage ran out of space or quota. The database keeps its last committed
    /// version; a commit that failed this way before publishing keeps its writes pending, so
    /// freeing space and committing again goes on where it stopped.
    pub fn is_out_of_space(&self) -> bool {
        matches!(
            self.io_error_kind(),
            Some(std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        )
    }
}
