//! The storage seam: the one crate that touches files, memory maps and object stores.
//!
//! Everything Strata persists is an immutable object under a root: segments, deletion vectors and
//! manifest versions. [`Storage`] is the small synchronous trait over such objects; its methods
//! were chosen so that S3 and GCS fit as well as a local directory: whole-object atomic puts, a
//! create-if-absent put for the manifest commit, range reads, and no rename or append.
//!
//! Implementations: [`LocalDir`] (a directory, memory-mapped reads), [`MemoryStore`], and with the
//! `object-store` feature `ObjectStoreBackend` (S3 with `s3`, GCS with `gcs`, and
//! `object_store`'s in-memory and local stores), opened by URL with `open_url`. With the
//! `testing` feature, [`testing`] adds fault injection, a crash-simulating file system and I/O
//! counting, plus the conformance suite every implementation must pass.
//!
//! [`framing`] holds the magic / version / crc32 footer shared by every file format.

mod bytes;
mod error;
pub mod framing;
mod key;
mod local;
mod memory;
#[cfg(feature = "object-store")]
mod object;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

pub use crate::bytes::{OBJECT_ALIGN, ObjectBytes};
pub use crate::error::{Corruption, Error, RemoteErrorKind, Result};
pub use crate::key::{MAX_COMPONENT_LEN, MAX_KEY_LEN, validate_key};
pub use crate::local::{DirLock, Fs, FsFile, LocalDir, StdFs};
pub use crate::memory::MemoryStore;
#[cfg(feature = "object-store")]
pub use crate::object::{
    DEFAULT_CACHE_BUDGET, DEFAULT_PART_SIZE, MIN_REMOTE_PART_SIZE, ObjectStoreBackend,
    ObjectStoreOptions, RequestStats, StorageUrl, open_url,
};
/// The `object_store` crate this backend is built on, for [`ObjectStoreBackend::new`].
#[cfg(feature = "object-store")]
pub use object_store;

/// An object's key and size, as returned by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// The object's size in bytes.
    pub size: u64,
}

/// A store of immutable objects under a root.
///
/// Keys are `/`-separated names checked by [`validate_key`]; every method rejects an invalid key
/// with [`Error::InvalidKey`]. A key must not also be used as a "directory" prefix of another key
/// (`a/b` and `a/b/c` cannot both exist), because a local file system cannot hold both.
///
/// Durability: when a write method returns `Ok`, its effect survives a crash of the process or
/// the machine. Atomicity: an object is published whole or not at all; readers and crash recovery
/// see either no object (or the previous one) or all of the new bytes, never a prefix or a mix.
/// Deletes are the exception: a deleted object may reappear after a crash, so callers delete only
/// objects that nothing references any more.
///
/// Failures: [`Error::AlreadyExists`], [`Error::InvalidKey`], [`Error::KeyConflict`] and
/// [`Error::NotFound`] mean the write did not happen. Any other error from a write leaves its
/// outcome **unknown**: the object may have been published anyway (a local directory fsync that
/// failed after the rename; an object-store request that timed out after it took effect). A
/// caller that must know reads the key back; the engine treats such a commit as failed and the
/// handle as poisoned.
///
/// Every returned [`ObjectBytes`] starts at a 64-byte-aligned address ([`OBJECT_ALIGN`]).
pub trait Storage: Send + Sync + fmt::Debug {
    /// Writes `data` as the object `key`, replacing any object already there.
    ///
    /// Durable and atomic on return (see the trait docs). A reader that mapped or read the old
    /// object keeps its old bytes.
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let mut writer = self.writer(key)?;
        writer.write_all(data)?;
        writer.finish().map(drop)
    }

    /// Creates the object `key` only if no object exists there; otherwise fails with
    /// [`Error::AlreadyExists`] and changes nothing.
    ///
    /// This is the manifest commit primitive: of any number of callers racing on one key, from any
    /// number of processes (or machines, on an object store), exactly one succeeds. Durable and
    /// atomic on return.
    ///
    /// An object store cannot always tell its own create, applied by a request whose answer was
    /// lost and then refused on retry, from another caller's: it reports success when the object
    /// holds exactly `data`. Callers that race must therefore write distinct bytes (the engine's
    /// manifests name objects tagged by their writer) to keep exactly one winner.
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<()>;

    /// Starts streaming a new object to `key`, for objects too large to build in memory.
    ///
    /// Nothing is visible under `key` until [`ObjectWriter::finish`] returns `Ok`; then the object
    /// is durable and replaces any object already there, as with [`put`](Self::put). Dropping the
    /// writer without finishing abandons the object.
    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter + '_>>;

    /// Reads the whole object.
    fn get(&self, key: &str) -> Result<ObjectBytes>;

    /// Reads the bytes `range` of the object; a range past its end is
    /// [`Error::RangeOutOfBounds`]. An empty range in bounds returns no bytes.
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBytes>;

    /// Maps the object into memory where the backend can (a local file: a read-only mmap, which
    /// pages in on demand), or else reads it whole. Use for large objects read many times.
    fn map(&self, key: &str) -> Result<ObjectBytes>;

    /// The object's size in bytes.
    fn size(&self, key: &str) -> Result<u64>;

    /// Every object whose key starts with `prefix` (a plain string prefix, not only whole
    /// components), sorted by key. An empty prefix lists everything.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Removes the object. Removing an absent object succeeds, so a retried delete is harmless.
    /// Not necessarily durable (see the trait docs).
    fn delete(&self, key: &str) -> Result<()>;
}

/// A new object being streamed; see [`Storage::writer`].
///
/// Once a `write_all` has failed, the writer is spent: `finish` refuses to publish a partial
/// object and returns an error.
pub trait ObjectWriter: Send {
    /// Appends `data` to the object.
    fn write_all(&mut self, data: &[u8]) -> Result<()>;

    /// Bytes written so far.
    fn bytes_written(&self) -> u64;

    /// Publishes the object durably and atomically; returns its size.
    fn finish(self: Box<Self>) -> Result<u64>;
}

macro_rules! forward_storage {
    ($($ty:ty),*) => {$(
        impl<S: Storage + ?Sized> Storage for $ty {
            fn put(&self, key: &str, data: &[u8]) -> Result<()> {
                (**self).put(key, data)
            }
            fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<()> {
                (**self).put_if_absent(key, data)
            }
            fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter + '_>> {
                (**self).writer(key)
            }
            fn get(&self, key: &str) -> Result<ObjectBytes> {
                (**self).get(key)
            }
            fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBytes> {
                (**self).get_range(key, range)
            }
            fn map(&self, key: &str) -> Result<ObjectBytes> {
                (**self).map(key)
            }
            fn size(&self, key: &str) -> Result<u64> {
                (**self).size(key)
            }
            fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
                (**self).list(prefix)
            }
            fn delete(&self, key: &str) -> Result<()> {
                (**self).delete(key)
            }
        }
    )*};
}

forward_storage!(Arc<S>, Box<S>, &S);

/// Checks `range` against an object of `size` bytes.
pub(crate) fn check_range(key: &str, range: &Range<u64>, size: u64) -> Result<()> {
    if range.start > range.end || range.end > size {
        return Err(Error::RangeOutOfBounds {
            key: key.to_owned(),
            start: range.start,
            end: range.end,
            size,
        });
    }
    Ok(())
}
