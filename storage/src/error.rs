//! The storage crate's error type.

use std::io;

/// A result with the storage crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a storage operation or a framed-object decode can report.
///
/// Variants name the object involved, so an error surfacing from deep inside a commit or an open
/// still says which file was at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key is not a valid object key (see [`crate::validate_key`]).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// The key clashes with the directory structure of other keys: it is a prefix directory of
    /// an existing key (`a/b` while `a/b/c` exists), or an existing key is one of its prefix
    /// directories (`a/b/c` while `a/b` exists). A local file system cannot hold both.
    #[error("object key {key:?} clashes with the directory of another key")]
    KeyConflict { key: String },

    /// No object exists under the key.
    #[error("object {key:?} not found")]
    NotFound { key: String },

    /// `put_if_absent` lost: an object already exists under the key.
    #[error("object {key:?} already exists")]
    AlreadyExists { key: String },

    /// A range read reached past the end of the object.
    #[error("range {start}..{end} is out of bounds for object {key:?} of {size} bytes")]
    RangeOutOfBounds { key: String, start: u64, end: u64, size: u64 },

    /// The backend failed; `op` names the storage operation (e.g. `"put"`, `"fsync"`).
    #[error("I/O error during {op} on {key:?}: {source}")]
    Io {
        op: &'static str,
        key: String,
        #[source]
        source: io::Error,
    },

    /// An object failed its framing checks (magic, length or checksum).
    #[error("object {object:?} is corrupt: {corruption}")]
    Corrupt { object: String, corruption: Corruption },

    /// A lock file is held by another handle.
    #[error("{path} is locked by another handle")]
    Locked { path: String },

    /// An object was written by a format major version this build cannot read.
    #[error(
        "object {object:?} has format version {found_major}.{found_minor}; this build reads major version {supported_major}"
    )]
    UnsupportedVersion { object: String, found_major: u16, found_minor: u16, supported_major: u16 },

    /// An object requires features this build does not know.
    #[error("object {object:?} requires unknown format features {unknown:#010x}")]
    UnknownFeatures { object: String, unknown: u32 },

    /// An object-store request failed in a way that names its cause: a missing bucket, refused
    /// credentials, a store that stayed unreachable through every retry. `store` names the bucket
    /// (e.g. `s3://bucket/prefix`), `op` the storage operation.
    #[error("{store}: {kind} (during {op} on {key:?}): {source}")]
    Remote {
        store: String,
        op: &'static str,
        key: String,
        kind: RemoteErrorKind,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A storage URL or object-store option was refused.
    #[error("invalid storage location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },
}

/// Why an object-store request failed; see [`Error::Remote`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// The bucket does not exist (permanent: retrying will not help).
    MissingBucket,
    /// The credentials are valid but not allowed to do this (permanent).
    AccessDenied,
    /// The credentials are missing (none configured, and no instance metadata service answered),
    /// malformed or expired: permanent until they are fixed.
    Unauthenticated,
    /// The store lacks an operation Strata needs, such as conditional puts (permanent).
    Unsupported,
    /// The store could not be reached or kept failing through every retry (transient causes:
    /// connection refused, timeouts, 5xx replies, throttling). The outcome of a write is unknown.
    Unavailable,
    /// Any other failure the store reported.
    Other,
}

impl RemoteErrorKind {
    /// True when retrying the same request cannot succeed without outside intervention.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            RemoteErrorKind::MissingBucket
                | RemoteErrorKind::AccessDenied
                | RemoteErrorKind::Unauthenticated
                | RemoteErrorKind::Unsupported
        )
    }
}

impl std::fmt::Display for RemoteErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RemoteErrorKind::MissingBucket => "the bucket does not exist",
            RemoteErrorKind::AccessDenied => "access denied",
            RemoteErrorKind::Unauthenticated => "not authenticated (check the credentials)",
            RemoteErrorKind::Unsupported => "operation not supported by the store",
            RemoteErrorKind::Unavailable => "the store was unavailable through every retry",
            RemoteErrorKind::Other => "request failed",
        })
    }
}

/// What exactly was wrong with a corrupt object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// Shorter than its fixed footer (or than what its footer promises).
    #[error("truncated: {len} bytes, at least {needed} expected")]
    Truncated { len: u64, needed: u64 },
    /// The footer's magic is not the one of the expected file kind.
    #[error("bad magic {found:?}, expected {expected:?}")]
    BadMagic { expected: [u8; 8], found: [u8; 8] },
    /// The footer's own checksum does not match its bytes.
    #[error("footer checksum mismatch")]
    FooterChecksum,
    /// The footer records a body length different from the bytes present.
    #[error("footer records a body of {recorded} bytes, but {actual} are present")]
    BodyLength { recorded: u64, actual: u64 },
    /// The body's checksum does not match the footer.
    #[error("body checksum {actual:#010x} does not match the recorded {recorded:#010x}")]
    BodyChecksum { recorded: u32, actual: u32 },
}

impl Error {
    /// Wraps an `io::Error` from operation `op` on `key`, mapping "not found" and "already exists"
    /// to their own variants so callers can match on them whatever the backend.
    pub fn io(op: &'static str, key: &str, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => Error::NotFound { key: key.to_owned() },
            io::ErrorKind::AlreadyExists => Error::AlreadyExists { key: key.to_owned() },
            io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory => {
                Error::KeyConflict { key: key.to_owned() }
            }
            _ => Error::Io { op, key: key.to_owned(), source },
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }
}
