//! The durable state of a database: versioned, checksummed manifest objects committed with
//! create-if-absent; the deletion vectors they point to; recovery of the newest version;
//! retention and the garbage-collection plan.
//!
//! The manifest sees a segment only as a kind tag, its files (sizes and checksums), its row
//! count and its deletion vector; it never opens a segment. Formats: `docs/format/manifest.md`
//! and `docs/format/deletes.md`.
//!
//! Commit protocol (the engine drives it): write the new segment files and changed deletion
//! vectors as new objects, then [`commit`] the next manifest version with create-if-absent. A
//! crash before that leaves the previous version and unreferenced objects, which
//! [`plan_gc`] later finds.

mod deletes;
mod error;
pub mod keys;
mod manifest;
mod store;

pub use crate::deletes::{DeletionVector, FORMAT as DELETES_FORMAT};
pub use crate::error::{ManifestError, Problem, Result};
pub use crate::manifest::{
    CompactionSettings, DeletesRecord, FORMAT as MANIFEST_FORMAT, FileRecord, Manifest,
    SegmentKind, SegmentRecord, StoredColumn, StoredOptions,
};
pub use crate::store::{
    GcPlan, Retention, commit, list_versions, load, load_latest, plan_gc, read_deletes,
    write_deletes,
};
