//! Strata: an embeddable, LSM-style tiered vector storage engine.
//!
//! ```
//! use strata::{Db, Metric, Options};
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Db::create(dir.path().join("vectors"), Options::new(3, Metric::L2))?;
//! db.upsert(7, &[1.0, 0.0, 0.0])?;
//! db.upsert(8, &[0.0, 1.0, 0.0])?;
//! assert_eq!(db.search(&[0.9, 0.1, 0.0], 1)?[0].id, 7); // visible at once
//! let version = db.commit()?; // durable from here
//! drop(db);
//! let db = Db::open(dir.path().join("vectors"))?;
//! assert_eq!(db.version(), version);
//! assert_eq!(db.get(8)?, Some(vec![0.0, 1.0, 0.0]));
//! # Ok::<(), strata::Error>(())
//! ```
//!
//! Writes land in an in-memory HNSW memtable and are searchable at once. [`Db::commit`] is the
//! only durability point (there is no write-ahead log): it freezes the memtable, writes it as an
//! immutable flat segment plus any changed deletion vectors, and commits a new manifest version
//! with create-if-absent. A crash at any moment leaves exactly the last committed version.
//! Searches run on a snapshot of every tier and merge their results. See
//! `docs/ARCHITECTURE.md` for the design, and `docs/USING.md` for a guide to embedding it.

#![warn(missing_docs)]

#[cfg(feature = "arrow")]
pub mod arrow;
mod bitmap;
pub mod compaction;
mod control;
mod db;
mod error;
mod index;
mod options;
mod parallel;
mod search_params;
mod segment;
mod snapshot;
mod stats;
mod tiers;

pub use strata_attributes::{AttrType, Attributes, Filter, Schema, Value};
pub use strata_quantize::{CodecKind, Metric, Neighbor};

pub use crate::control::{CancelToken, Control, Operation, Progress, Stage};
pub use crate::db::{Db, DbBuilder, GcStats, Version, VersionInfo};
pub use crate::error::{Error, Result};
pub use crate::options::Options;
pub use crate::search_params::{FilterPlan, SearchParams};
pub use crate::snapshot::{Entry, Scan, Snapshot};
pub use crate::stats::{
    CompactionRun, CompactionStats, Counters, KindStats, MemtableStats, PlannedCompaction,
    RamStats, Stats,
};
/// The thread-pool crate whose pools a handle runs on ([`DbBuilder::thread_pool`]).
pub use rayon;

// A handle is shared between threads (`Arc<Db>`), and errors cross threads: both must stay so.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Db>();
    send_and_sync::<Snapshot>();
    send_and_sync::<Scan>();
    send_and_sync::<Error>();
};

/// The error types the variants of [`Error`] carry, to match on their kinds.
///
/// ```
/// use strata::{Db, Error, Metric, Options, errors::MemtableError};
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::Cosine))?;
/// match db.upsert(1, &[0.0, 0.0]) {
///     Err(Error::InvalidVector(MemtableError::ZeroVector)) => {} // cosine needs a direction
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), strata::Error>(())
/// ```
pub mod errors {
    pub use strata_attributes::AttributeError;
    pub use strata_manifest::ManifestError;
    pub use strata_memtable::MemtableError;
    pub use strata_segment_diskann::VamanaError;
    pub use strata_segment_flat::{FileError, Problem, SegmentError};
    pub use strata_storage::{Error as StorageError, RemoteErrorKind};
}

/// The storage seam, for opening a database on another backend with [`Db::create_in`] and
/// [`Db::open_in`] (and, with the `testing` feature, its fault-injecting wrappers).
pub use strata_storage as storage;
