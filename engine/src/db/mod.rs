//! The database handle: the `Db` type, its shared state (`Inner`) and the background worker's
//! thread. The methods live by concept: opening and recovery (`open.rs`), the write path
//! (`write.rs`), commits (`commit.rs`), the read path and refresh (`read.rs`), maintenance:
//! compaction, GC and close (`maintenance.rs`), and the background work (`worker.rs`).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use crossbeam::channel::Sender;
use parking_lot::{Condvar, Mutex, RwLock};
use strata_memtable::Params;
use strata_quantize::Metric;
use strata_storage::{DirLock, Storage};

use crate::compaction::CompactionPolicy;
use crate::control::Control;
use crate::index::IdIndex;
use crate::parallel::Pool;
use crate::segment::Segment;
use crate::stats::{CompactionRun, Tally};
use crate::tiers::Snapshot;
use crate::{Error, Options, Result};

pub use builder::DbBuilder;
pub use stats::VersionInfo;

mod builder;
mod commit;
mod maintenance;
mod open;
mod read;
mod stats;
mod worker;
mod write;

/// A committed version of the database: manifest versions count up from 1 (the empty database
/// `create` writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What [`Db::gc`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Manifest versions deleted (outside retention).
    pub manifests: usize,
    /// Segment files and deletion vectors deleted (no retained version uses them).
    pub files: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Writer,
    ReadOnly,
}

/// A vector database: one writer handle, or any number of read-only ones.
///
/// Writes ([`upsert`](Self::upsert), [`delete`](Self::delete)) are visible to searches at
/// once and become durable, atomically, at [`commit`](Self::commit); whatever was not committed
/// is gone after a crash or when the handle drops. All methods take `&self`: share a handle
/// between threads with an `Arc`.
///
/// A writer runs a background thread that compacts segments after commits (size-tiered, into
/// Vamana segments once they are large) and commits by itself when the memtables pass
/// [`Options::auto_flush_bytes`]. [`close`](Self::close), or dropping the handle, stops it.
pub struct Db {
    inner: Arc<Inner>,
    worker: Mutex<Option<Worker>>,
}

/// The handle's state, shared with its background worker.
pub(crate) struct Inner {
    storage: Arc<dyn Storage>,
    location: String,
    mode: Mode,
    dim: usize,
    metric: Metric,
    params: Params,
    /// The options in force (from the manifest this handle opened).
    options: Options,
    /// Every search starts by cloning this `Arc`; commits and rotations swap it.
    snapshot: RwLock<Arc<Snapshot>>,
    /// Writes hold it shared; freezing the active memtable (a commit's cut, a rotation) holds it
    /// exclusively, so a commit includes each write whole or not at all.
    write_gate: RwLock<()>,
    /// Serializes commits, the commit step of compactions, refreshes and collections.
    commit_lock: Mutex<()>,
    /// One compaction at a time (the worker's or `compact`'s).
    compaction_lock: Mutex<()>,
    policy: RwLock<Arc<dyn CompactionPolicy>>,
    index: Mutex<IdIndex>,
    next_segment_id: Mutex<u64>,
    /// Rows at which the active memtable is frozen into a pending tier.
    rotate_rows: AtomicUsize,
    poisoned: Mutex<Option<Poison>>,
    /// The error of the last compaction, while compactions keep failing before they publish
    /// anything (a full disk): writes go on, and commits stop waiting for that compaction.
    compaction_failure: Mutex<Option<String>>,
    /// Segments any snapshot of this handle may still read; garbage collection spares them.
    opened_segments: Mutex<Vec<Weak<Segment>>>,
    /// Random, per handle: part of every object key this handle writes, so a fenced writer on
    /// an object store never overwrites a committed object (see `keys::segment_file_key`).
    tag: u64,
    /// Wakes the background worker, if one runs.
    work: Mutex<Option<Sender<Work>>>,
    /// An automatic flush is queued: later writes need not queue another.
    flush_queued: AtomicBool,
    /// Keys a running compaction reads or writes before a version references them.
    in_flight: Mutex<HashSet<String>>,
    /// Set by `close` and drop: the worker takes no further work.
    stopping: AtomicBool,
    /// Notified after each compaction, so a commit stalled on a backlog wakes.
    compacted: (Mutex<()>, Condvar),
    /// Where batch searches run (the embedder's pool, or rayon's global one).
    pool: Pool,
    /// Where compactions build (see `parallel::build_pool`).
    build_pool: Arc<rayon::ThreadPool>,
    /// Running totals (`Db::counters`), shared with the handle's snapshots.
    tally: Arc<Tally>,
    /// The background worker's: `close` cancels it.
    worker_control: Control,
    /// The last compaction published (`Db::stats`).
    last_compaction: Mutex<Option<CompactionRun>>,
    /// The error of the last background refresh of a read-only handle, while they fail.
    refresh_failure: Mutex<Option<Arc<Error>>>,
    /// Held for the writer's lifetime on a local directory.
    _lock: Option<DirLock>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("location", &self.inner.location)
            .field("mode", &self.inner.mode)
            .field("dim", &self.inner.dim)
            .field("metric", &self.inner.metric)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

const LOCK_FILE: &str = "LOCK";

/// Deletion vectors a commit writes at once.
const DELETES_WRITERS: usize = 16;

/// Commits stall while the background worker has compaction work and more than this many times
/// `compaction_threshold` segments are live (as RocksDB stalls writes on too many level-0
/// files): the segment count, and so search cost, stays bounded when commits outpace merges.
const STALL_FACTOR: usize = 8;

/// Marks an input row a compaction dropped (deleted when it started).
const DROPPED: u32 = u32::MAX;

/// What the background worker is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// A commit happened: compact while the policy finds work.
    Compact,
    /// The memtables passed the automatic flush budget: commit.
    Flush,
    Stop,
}

/// The background thread of a writer handle.
#[derive(Debug)]
struct Worker {
    sender: Sender<Work>,
    thread: JoinHandle<()>,
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop_worker();
    }
}

/// Why a handle refuses writes.
#[derive(Debug)]
pub(crate) struct Poison {
    pub(crate) cause: Arc<Error>,
    /// Set by the background worker: `close` reports it.
    pub(crate) by_worker: bool,
}

/// The message a panic carried, if it was a string.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

impl Worker {
    fn start(inner: &Arc<Inner>) -> Result<Worker> {
        let (sender, receiver) = crossbeam::channel::unbounded();
        *inner.work.lock() = Some(sender.clone());
        let shared = Arc::clone(inner);
        let thread = std::thread::Builder::new()
            .name("strata-worker".into())
            .spawn(move || shared.run_worker(&receiver))
            .map_err(|source| {
                Error::Storage(strata_storage::Error::Io {
                    op: "spawn the worker thread",
                    key: String::new(),
                    source,
                })
            })?;
        Ok(Worker { sender, thread })
    }

    /// A read-only handle's thread that refreshes it every `period`.
    fn start_refresher(inner: &Arc<Inner>, period: std::time::Duration) -> Result<Worker> {
        let (sender, receiver) = crossbeam::channel::unbounded::<Work>();
        // A weak reference: the thread must not keep a dropped handle's state alive.
        let shared = Arc::downgrade(inner);
        let thread = std::thread::Builder::new()
            .name("strata-refresh".into())
            .spawn(move || {
                while let Err(crossbeam::channel::RecvTimeoutError::Timeout) =
                    receiver.recv_timeout(period)
                {
                    let Some(inner) = shared.upgrade() else { return };
                    *inner.refresh_failure.lock() = inner.refresh().err().map(Arc::new);
                }
            })
            .map_err(|source| {
                Error::Storage(strata_storage::Error::Io {
                    op: "spawn the refresh thread",
                    key: String::new(),
                    source,
                })
            })?;
        Ok(Worker { sender, thread })
    }
}

/// Segment ids must fit the id index's 32-bit field.
fn segment_number(id: u64) -> Result<u32> {
    u32::try_from(id).map_err(|_| Error::SegmentIdsExhausted)
}
