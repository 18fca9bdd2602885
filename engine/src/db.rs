//! The database handle: the write path, commits, opening and recovery, refresh and GC.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam::channel::Sender;
use parking_lot::{Condvar, Mutex, RwLock};
use strata_manifest::keys::{manifest_key, segment_file_key};
use strata_manifest::{FileRecord, Manifest, ManifestError, Retention, SegmentKind, SegmentRecord};
use strata_memtable::{MAX_ROWS, Memtable, MemtableError, Params, validate_vector};
use strata_quantize::{Metric, Neighbor, normalize};
use strata_segment_flat::FlatWriter;
use strata_storage::{DirLock, LocalDir, Storage};

use crate::bitmap::AtomicBitmap;
use crate::compaction::{CompactionPolicy, SegmentDetails, SegmentInfo, SizeTiered};
use crate::index::IdIndex;
use crate::options::MEMTABLE_ROTATE_ROWS;
use crate::segment::Segment;
use crate::tiers::{LiveSegment, Pending, Snapshot};
use crate::{Error, Options, Result, SearchParams};

mod worker;

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
    poisoned: Mutex<Option<String>>,
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

impl Db {
    /// Creates a database in the local directory `root` (created if missing), or at an object
    /// store URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `memory://name`, with the `s3`,
    /// `gcs` or `object-store` feature; `storage::open_url` documents credentials and the
    /// cache), and opens it for writing. Fails with [`Error::AlreadyExists`] if
    /// one is there.
    pub fn create(root: impl AsRef<Path>, options: Options) -> Result<Db> {
        options.validate()?;
        let root = local_path(root.as_ref());
        if let Some(url) = remote_url(&root) {
            return Self::create_with(open_remote(url)?, url.to_owned(), options, None);
        }
        let store = LocalDir::open(root)?;
        let lock = store.lock(LOCK_FILE)?;
        let location = store.root().display().to_string();
        Self::create_with(Arc::new(store), location, options, Some(lock))
    }

    /// Creates a database in `storage` (any [`Storage`], e.g. an object store), and opens it for
    /// writing. A second writer on an object store is fenced by the commit protocol: its commit
    /// fails with [`Error::Conflict`].
    pub fn create_in(storage: Arc<dyn Storage>, options: Options) -> Result<Db> {
        options.validate()?;
        let location = format!("{storage:?}");
        Self::create_with(storage, location, options, None)
    }

    /// Opens the database in the local directory `root`, or at an object store URL (as in
    /// [`create`](Self::create)), for writing. Only one writer may hold a directory: a second
    /// gets [`strata_storage::Error::Locked`]; on an object store a second writer's commit
    /// fails with [`Error::Conflict`].
    pub fn open(root: impl AsRef<Path>) -> Result<Db> {
        let root = local_path(root.as_ref());
        if let Some(url) = remote_url(&root) {
            return Self::open_with(open_remote(url)?, url.to_owned(), Mode::Writer, None, None);
        }
        let store = LocalDir::open_existing(root)?;
        let lock = store.lock(LOCK_FILE)?;
        let location = store.root().display().to_string();
        Self::open_with(Arc::new(store), location, Mode::Writer, None, Some(lock))
    }

    /// Opens the database in `storage` for writing.
    pub fn open_in(storage: Arc<dyn Storage>) -> Result<Db> {
        let location = format!("{storage:?}");
        Self::open_with(storage, location, Mode::Writer, None, None)
    }

    /// Opens the newest version of the database in `root` for reading only (no lock: any number
    /// of readers may run beside the writer). See [`refresh`](Self::refresh).
    pub fn open_read_only(root: impl AsRef<Path>) -> Result<Db> {
        let root = local_path(root.as_ref());
        if let Some(url) = remote_url(&root) {
            return Self::open_with(open_remote(url)?, url.to_owned(), Mode::ReadOnly, None, None);
        }
        let store = LocalDir::open_existing(root)?;
        let location = store.root().display().to_string();
        Self::open_with(Arc::new(store), location, Mode::ReadOnly, None, None)
    }

    /// [`open_read_only`](Self::open_read_only) on any storage.
    pub fn open_read_only_in(storage: Arc<dyn Storage>) -> Result<Db> {
        let location = format!("{storage:?}");
        Self::open_with(storage, location, Mode::ReadOnly, None, None)
    }

    /// Opens version `version` of the database in `root`, read-only: time travel. The version
    /// must still exist (garbage collection removes versions outside retention).
    pub fn open_at(root: impl AsRef<Path>, version: Version) -> Result<Db> {
        let root = local_path(root.as_ref());
        if let Some(url) = remote_url(&root) {
            let storage = open_remote(url)?;
            return Self::open_with(storage, url.to_owned(), Mode::ReadOnly, Some(version.0), None);
        }
        let store = LocalDir::open_existing(root)?;
        let location = store.root().display().to_string();
        Self::open_with(Arc::new(store), location, Mode::ReadOnly, Some(version.0), None)
    }

    /// [`open_at`](Self::open_at) on any storage.
    pub fn open_at_in(storage: Arc<dyn Storage>, version: Version) -> Result<Db> {
        let location = format!("{storage:?}");
        Self::open_with(storage, location, Mode::ReadOnly, Some(version.0), None)
    }

    fn create_with(
        storage: Arc<dyn Storage>,
        location: String,
        options: Options,
        lock: Option<DirLock>,
    ) -> Result<Db> {
        if !strata_manifest::list_versions(&*storage)?.is_empty() {
            return Err(Error::AlreadyExists { location });
        }
        let manifest = Manifest {
            version: 1,
            committed_at_ms: now_ms(),
            options: options.to_stored(),
            next_segment_id: 0,
            segments: Vec::new(),
        };
        strata_manifest::commit(&*storage, &manifest).map_err(|e| match e {
            ManifestError::Conflict { .. } => Error::AlreadyExists { location: location.clone() },
            other => other.into(),
        })?;
        Self::open_with(storage, location, Mode::Writer, None, lock)
    }

    fn open_with(
        storage: Arc<dyn Storage>,
        location: String,
        mode: Mode,
        version: Option<u64>,
        lock: Option<DirLock>,
    ) -> Result<Db> {
        let manifest = match version {
            Some(v) => strata_manifest::load(&*storage, v)?,
            None => strata_manifest::load_latest(&*storage)?,
        };
        let options = Options::from_stored(&manifest.options)?;
        let dim = options.dim;
        let metric = options.metric;
        let params =
            Params::default().m(options.hnsw_m).ef_construction(options.hnsw_ef_construction);
        let active = Arc::new(Memtable::new(dim, metric, params)?);
        let inner = Inner {
            storage,
            location,
            mode,
            dim,
            metric,
            params,
            options,
            snapshot: RwLock::new(Arc::new(Snapshot {
                manifest: Arc::new(manifest.clone()),
                active,
                pending: Vec::new(),
                segments: Vec::new(),
            })),
            write_gate: RwLock::new(()),
            commit_lock: Mutex::new(()),
            compaction_lock: Mutex::new(()),
            policy: RwLock::new(Arc::new(SizeTiered)),
            index: Mutex::new(IdIndex::default()),
            next_segment_id: Mutex::new(manifest.next_segment_id),
            rotate_rows: AtomicUsize::new(MEMTABLE_ROTATE_ROWS),
            poisoned: Mutex::new(None),
            opened_segments: Mutex::new(Vec::new()),
            tag: writer_tag(),
            work: Mutex::new(None),
            flush_queued: AtomicBool::new(false),
            in_flight: Mutex::new(HashSet::new()),
            stopping: AtomicBool::new(false),
            compacted: (Mutex::new(()), Condvar::new()),
            _lock: lock,
        };
        inner.install_manifest(manifest, &[])?;
        let inner = Arc::new(inner);
        let worker = (mode == Mode::Writer).then(|| Worker::start(&inner)).transpose()?;
        let db = Db { inner, worker: Mutex::new(worker) };
        db.inner.wake(Work::Compact);
        Ok(db)
    }

    /// Runs compactions until the policy finds nothing to do, in this thread, and returns how
    /// many it ran. For tools and tests; the background worker does the same after commits.
    /// A failure poisons the handle for writes (see [`Error::Poisoned`]).
    pub fn compact(&self) -> Result<usize> {
        self.inner.compact_all()
    }

    /// Replaces the compaction policy of this handle (not stored: reopening restores
    /// [`SizeTiered`]). See [`NoCompaction`](crate::compaction::NoCompaction) and
    /// [`CompactAll`](crate::compaction::CompactAll).
    pub fn set_compaction_policy(&self, policy: Arc<dyn CompactionPolicy>) {
        *self.inner.policy.write() = policy;
        self.inner.wake(Work::Compact);
    }

    /// The committed segments of the current version, oldest first, as the compaction policy
    /// sees them.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.inner.current_snapshot().segment_infos()
    }

    /// Every committed segment of this handle's current version, oldest first, with its file
    /// size, RAM and codes (for tools such as `cargo xtask inspect`).
    pub fn segment_details(&self) -> Vec<SegmentDetails> {
        let snapshot = self.inner.current_snapshot();
        snapshot
            .segment_infos()
            .into_iter()
            .zip(&snapshot.segments)
            .map(|(info, live)| SegmentDetails {
                info,
                live_rows_now: info.rows - live.deleted.count(),
                file_bytes: live.segment.file_bytes(),
                ram_bytes: live.memory_bytes() as u64,
                codes: live.segment.codes(),
            })
            .collect()
    }

    /// The options in force (stored in the manifest at create time).
    pub fn options(&self) -> Options {
        self.inner.options
    }

    /// Bytes this handle holds in RAM: memtables, the id index, and each segment's in-memory
    /// part (a Vamana segment's codes; not the mapped files, which the page cache holds).
    pub fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes()
    }

    /// Stops the background worker, waiting for a compaction in progress to finish, and drops
    /// the handle. Uncommitted writes are dropped, as on any drop. Dropping the handle does the
    /// same; `close` reports a worker that failed.
    pub fn close(self) -> Result<()> {
        self.stop_worker();
        match self.inner.poisoned.lock().clone() {
            Some(cause) if cause.starts_with(WORKER_FAILED) => Err(Error::Poisoned { cause }),
            _ => Ok(()),
        }
    }

    fn stop_worker(&self) {
        if let Some(worker) = self.worker.lock().take() {
            // Queued flushes and compactions are dropped: uncommitted writes are not committed
            // on the way out.
            self.inner.stopping.store(true, Ordering::Release);
            *self.inner.work.lock() = None;
            let _ = worker.sender.send(Work::Stop);
            if worker.thread.join().is_err() {
                self.inner.poison(format!("{WORKER_FAILED}: the worker thread panicked"));
            }
        }
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.inner.metric()
    }

    /// The committed version this handle's state builds on.
    pub fn version(&self) -> Version {
        self.inner.version()
    }

    /// Live records, committed and not (approximate while writes run).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when no record is live.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Inserts `vector` under `id`, replacing any record with that id. Visible to searches on
    /// return; durable after the next [`commit`](Self::commit).
    pub fn upsert(&self, id: u64, vector: &[f32]) -> Result<()> {
        self.inner.upsert(id, vector)
    }

    /// Upserts `ids[i]` with the `i`-th `dim`-float row of `vectors` (row-major), for every
    /// `i`, inserting on every core. The whole batch is validated first: on any error nothing is
    /// applied. Within a batch, the last row with a given id wins.
    pub fn upsert_batch(&self, ids: &[u64], vectors: &[f32]) -> Result<()> {
        self.inner.upsert_batch(ids, vectors)
    }

    /// The bulk path: upserts the batch (as [`upsert_batch`](Self::upsert_batch) does) and
    /// commits it with every write before it, returning the new version. The rows skip the
    /// memtable's graph: they are written as one new segment, which the background worker then
    /// folds into the largest Vamana segment (or promotes to one), inserting each row into a
    /// graph once. Loading a large file this way costs about one Vamana build, where upserts
    /// cost an HNSW insert per row and then the build.
    ///
    /// The whole batch is validated first: on any error nothing is applied. Within a batch,
    /// the last row with a given id wins. Until the commit returns, the batch is searched by
    /// an exact scan.
    pub fn ingest(&self, ids: &[u64], vectors: &[f32]) -> Result<Version> {
        let version = self.inner.ingest(ids, vectors)?;
        self.inner.stall_while_compaction_is_behind();
        Ok(version)
    }

    /// Deletes record `id`; returns whether it existed. Visible to searches on return; durable
    /// after the next commit.
    pub fn delete(&self, id: u64) -> Result<bool> {
        self.inner.delete(id)
    }

    /// The vector of record `id` (normalized, under cosine), if it exists.
    pub fn get(&self, id: u64) -> Result<Option<Vec<f32>>> {
        self.inner.get(id)
    }

    /// The `k` nearest live records to `query`, nearest first, at default effort.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>> {
        self.inner.search(query, k)
    }

    /// The nearest live records to `query` under `params`, nearest first. Distances are
    /// smaller-is-nearer for every metric (squared L2; negated dot product; 1 - cosine).
    ///
    /// Runs on a snapshot of every tier; never waits for a commit beyond a pointer swap.
    pub fn search_with(&self, query: &[f32], params: SearchParams) -> Result<Vec<Neighbor>> {
        self.inner.search_with(query, params)
    }

    /// Sets how many rows the active memtable takes before it is frozen into an in-memory tier
    /// (searched, committed by the next commit) and a fresh one is started. Smaller graphs insert
    /// faster; more tiers search slower. Default 1,048,576; clamped to `1..=MAX_ROWS / 2`. Not stored: it applies to this handle.
    pub fn set_memtable_rotate_rows(&self, rows: usize) {
        self.inner.set_memtable_rotate_rows(rows)
    }

    /// Makes every write before it durable, atomically, and returns the new version (or the
    /// current one when there is nothing to commit).
    ///
    /// Writes from other threads may run during a commit; each is in this version or the next,
    /// whole. If the commit fails part-way the handle is poisoned (see [`Error::Poisoned`]):
    /// what is on storage is then the previous version or this one, never a mix.
    pub fn commit(&self) -> Result<Version> {
        let version = self.inner.commit()?;
        self.inner.stall_while_compaction_is_behind();
        Ok(version)
    }

    /// Moves a read-only handle to the newest committed version; returns it. Segments already
    /// open stay open.
    pub fn refresh(&self) -> Result<Version> {
        self.inner.refresh()
    }

    /// Deletes what no retained version and no live snapshot of this handle uses: manifest
    /// versions outside retention, then segment files and deletion vectors only they (or failed
    /// commits) referenced.
    ///
    /// Read-only handles elsewhere rely on retention: one reading a version that falls out of
    /// it may fail on its next read of a removed file.
    pub fn gc(&self) -> Result<GcStats> {
        self.inner.gc()
    }

    /// Every committed version still stored, oldest first (time travel targets).
    pub fn versions(&self) -> Result<Vec<Version>> {
        self.inner.versions()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop_worker();
    }
}

/// The start of a poisoning cause the worker set.
const WORKER_FAILED: &str = "background work failed";

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
}

impl Inner {
    /// Opens every segment of `manifest` (reusing those in `reuse` that are unchanged), rebuilds
    /// the id index from id columns and deletion vectors, and swaps in the snapshot. Reads no
    /// vector block.
    fn install_manifest(&self, manifest: Manifest, reuse: &[Arc<LiveSegment>]) -> Result<()> {
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for record in &manifest.segments {
            let reused = reuse
                .iter()
                .find(|live| live.record.id == record.id && live.record.files == record.files);
            let segment = match reused {
                Some(live) => Arc::clone(&live.segment),
                None => Arc::new(self.open_segment(record)?),
            };
            let deleted = match reused {
                Some(live) if live.record.deletes == record.deletes => Arc::clone(&live.deleted),
                _ => {
                    let deletes = strata_manifest::read_deletes(&*self.storage, record)?;
                    Arc::new(AtomicBitmap::from_deletion_vector(&deletes))
                }
            };
            segments.push(Arc::new(LiveSegment { record: record.clone(), segment, deleted }));
        }
        // Sized from the opened files (their id columns were checked), not from the manifest.
        let rows: usize = segments.iter().map(|s| s.segment.ids().len()).sum();
        let mut index = IdIndex::with_capacity(rows);
        for live in &segments {
            let number = segment_number(live.record.id)?;
            index.add_segment(number, Arc::clone(&live.deleted), live.segment.ids());
        }
        self.register_segments(&segments);
        // Index and snapshot change together (snapshot lock first, as everywhere), so a `get`
        // never pairs a new index with an old snapshot.
        let mut snapshot = self.snapshot.write();
        *self.index.lock() = index;
        let mut next = (**snapshot).clone();
        next.manifest = Arc::new(manifest);
        next.segments = segments;
        *snapshot = Arc::new(next);
        Ok(())
    }

    pub(crate) fn current_snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read())
    }

    fn open_segment(&self, record: &SegmentRecord) -> Result<Segment> {
        Segment::open(&*self.storage, record, self.dim, self.metric)
    }

    /// Refuses writes from now on, keeping the first cause.
    pub(crate) fn poison(&self, cause: String) {
        self.poisoned.lock().get_or_insert(cause);
    }

    fn memory_bytes(&self) -> usize {
        let snapshot = self.current_snapshot();
        let memtables: usize = snapshot.active.memory_bytes()
            + snapshot.pending.iter().map(|p| p.memory_bytes()).sum::<usize>();
        let segments: usize = snapshot.segments.iter().map(|s| s.memory_bytes()).sum();
        memtables + segments + self.index.lock().memory_bytes()
    }

    /// Bytes the memtables hold (active and frozen), for the automatic flush.
    fn memtable_bytes(&self, snapshot: &Snapshot) -> usize {
        snapshot.active.memory_bytes()
            + snapshot.pending.iter().map(|p| p.memory_bytes()).sum::<usize>()
    }

    /// After a write: past the automatic flush budget, queue a commit for the worker; past
    /// twice the budget (the worker is behind), commit in this thread.
    fn flush_if_full(&self) -> Result<()> {
        let Some(budget) = self.options.auto_flush_bytes else { return Ok(()) };
        let snapshot = self.current_snapshot();
        let bytes = self.memtable_bytes(&snapshot) as u64;
        if bytes <= budget {
            return Ok(());
        }
        let worker = self.work.lock().is_some();
        if worker && bytes <= budget.saturating_mul(2) {
            if !self.flush_queued.swap(true, Ordering::AcqRel) {
                self.wake(Work::Flush);
            }
            return Ok(());
        }
        self.commit().map(drop)
    }

    pub(crate) fn register_segments(&self, segments: &[Arc<LiveSegment>]) {
        let mut opened = self.opened_segments.lock();
        opened.retain(|weak| weak.strong_count() > 0);
        for live in segments {
            if !opened.iter().any(|weak| weak.as_ptr() == Arc::as_ptr(&live.segment)) {
                opened.push(Arc::downgrade(&live.segment));
            }
        }
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn metric(&self) -> Metric {
        self.metric
    }

    pub(crate) fn version(&self) -> Version {
        Version(self.snapshot.read().manifest.version)
    }

    pub(crate) fn len(&self) -> usize {
        // No rotation may move rows from the memtable into the index between the two reads.
        let _gate = self.write_gate.read();
        let snapshot = Arc::clone(&self.snapshot.read());
        let live_in_index = self.index.lock().len();
        snapshot.active.len() + live_in_index
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.mode == Mode::ReadOnly {
            return Err(Error::ReadOnly);
        }
        if let Some(cause) = &*self.poisoned.lock() {
            return Err(Error::Poisoned { cause: cause.clone() });
        }
        Ok(())
    }

    pub(crate) fn upsert(&self, id: u64, vector: &[f32]) -> Result<()> {
        self.check_writable()?;
        validate_vector(self.dim, self.metric, vector)?;
        self.rotate_if_full()?;
        let _gate = self.write_gate.read();
        let active = Arc::clone(&self.snapshot.read().active);
        active.upsert(id, vector)?;
        self.index.lock().delete(id);
        drop(_gate);
        // Memory is summed every 256 rows: exact enough, and off the per-write path.
        if active.rows().is_multiple_of(256) {
            self.flush_if_full()?;
        }
        Ok(())
    }

    pub(crate) fn upsert_batch(&self, ids: &[u64], vectors: &[f32]) -> Result<()> {
        self.check_writable()?;
        if ids.len().checked_mul(self.dim) != Some(vectors.len()) {
            return Err(Error::InvalidBatch {
                ids: ids.len(),
                floats: vectors.len(),
                dim: self.dim,
            });
        }
        for row in vectors.chunks_exact(self.dim) {
            validate_vector(self.dim, self.metric, row)?;
        }
        // Rows whose id appears again later in the batch are skipped: the last one wins.
        let mut seen = HashSet::with_capacity(ids.len());
        let mut superseded = vec![false; ids.len()];
        for (i, id) in ids.iter().enumerate().rev() {
            superseded[i] = !seen.insert(*id);
        }
        const CHUNK: usize = 4096;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for start in (0..ids.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(ids.len());
            self.rotate_if_full()?;
            let _gate = self.write_gate.read();
            let active = Arc::clone(&self.snapshot.read().active);
            // Each worker inserts its rows in order and reports how far it got, so the index
            // forgets exactly the old versions of rows that were inserted, even on an error.
            let insert = |rows: std::ops::Range<usize>| -> (usize, Result<()>) {
                for i in rows.clone() {
                    if superseded[i] {
                        continue;
                    }
                    if let Err(e) =
                        active.upsert(ids[i], &vectors[i * self.dim..(i + 1) * self.dim])
                    {
                        return (i, Err(e.into()));
                    }
                }
                (rows.end, Ok(()))
            };
            let workers = threads.min((end - start).div_ceil(256)).max(1);
            let per = (end - start).div_ceil(workers);
            let ranges: Vec<_> = (start..end).step_by(per).map(|s| s..(s + per).min(end)).collect();
            let outcomes: Vec<(std::ops::Range<usize>, usize, Result<()>)> = if workers == 1 {
                let (done, result) = insert(start..end);
                vec![(start..end, done, result)]
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> =
                        ranges.iter().map(|range| scope.spawn(|| insert(range.clone()))).collect();
                    ranges
                        .iter()
                        .zip(handles)
                        .map(|(range, handle)| match handle.join() {
                            Ok((done, result)) => (range.clone(), done, result),
                            // Which rows went in is unknown: the handle must not commit.
                            Err(_) => {
                                let cause = "an insert thread panicked during upsert_batch";
                                self.poison(cause.to_owned());
                                let error = Error::Poisoned { cause: cause.to_owned() };
                                (range.clone(), range.start, Err(error))
                            }
                        })
                        .collect()
                })
            };
            let mut index = self.index.lock();
            let mut first_error = None;
            for (range, done, result) in outcomes {
                for &id in &ids[range.start..done] {
                    index.delete(id);
                }
                if let (Err(e), None) = (result, &first_error) {
                    first_error = Some(e);
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            drop(index);
            drop(_gate);
            self.flush_if_full()?;
        }
        Ok(())
    }

    pub(crate) fn ingest(&self, ids: &[u64], vectors: &[f32]) -> Result<Version> {
        self.check_writable()?;
        if ids.len().checked_mul(self.dim) != Some(vectors.len()) {
            return Err(Error::InvalidBatch {
                ids: ids.len(),
                floats: vectors.len(),
                dim: self.dim,
            });
        }
        // Segment rows are u32 and DROPPED marks a dropped row.
        let max = DROPPED as usize - 1;
        if ids.len() > max {
            return Err(Error::BatchTooLarge { rows: ids.len(), max });
        }
        for row in vectors.chunks_exact(self.dim) {
            validate_vector(self.dim, self.metric, row)?;
        }
        // The last row of each id wins, as in `upsert_batch`.
        let mut seen = HashSet::with_capacity(ids.len());
        let mut keep = vec![false; ids.len()];
        for (i, id) in ids.iter().enumerate().rev() {
            keep[i] = seen.insert(*id);
        }
        drop(seen);
        let live = keep.iter().filter(|&&k| k).count();
        let mut batch_ids = Vec::with_capacity(live);
        let mut batch_vectors = Vec::with_capacity(live * self.dim);
        for (i, row) in vectors.chunks_exact(self.dim).enumerate().filter(|(i, _)| keep[*i]) {
            batch_ids.push(ids[i]);
            let start = batch_vectors.len();
            batch_vectors.extend_from_slice(row);
            if self.metric.needs_normalization() {
                normalize(&mut batch_vectors[start..]).map_err(|_| MemtableError::ZeroVector)?;
            }
        }
        if batch_ids.is_empty() {
            return self.commit();
        }
        {
            // Earlier writes go into an earlier tier (the rotation), the batch into its own:
            // visible first, then the old versions hidden, as an upsert does, so a search never
            // misses a record.
            let _gate = self.write_gate.write();
            self.rotate_locked()?;
            let segment_id = {
                let mut next_id = self.next_segment_id.lock();
                let id = *next_id;
                *next_id += 1;
                id
            };
            let number = segment_number(segment_id)?;
            let pending = Arc::new(Pending::batch(
                segment_id,
                self.dim,
                self.metric,
                batch_ids,
                batch_vectors,
            ));
            {
                let mut snapshot = self.snapshot.write();
                let mut next = (**snapshot).clone();
                next.pending.push(Arc::clone(&pending));
                *snapshot = Arc::new(next);
            }
            let mut index = self.index.lock();
            for &id in &pending.ids {
                index.delete(id);
            }
            index.add_segment(number, Arc::clone(&pending.deleted), pending.ids.iter().copied());
        }
        self.commit()
    }

    pub(crate) fn delete(&self, id: u64) -> Result<bool> {
        self.check_writable()?;
        let _gate = self.write_gate.read();
        let active = Arc::clone(&self.snapshot.read().active);
        let in_memtable = active.delete(id)?;
        let elsewhere = self.index.lock().delete(id);
        Ok(in_memtable || elsewhere)
    }

    pub(crate) fn get(&self, id: u64) -> Result<Option<Vec<f32>>> {
        // Under the gate no rotation moves records between the memtable and the index. The
        // index is read first: an upsert adds the new version to the memtable before it takes
        // the old one out of the index, so a record is always in one place or the other.
        // Location and snapshot are read together (snapshot lock first, as everywhere): a
        // compaction swaps both at once, and a location only makes sense in its snapshot.
        let _gate = self.write_gate.read();
        let (location, snapshot) = {
            let snapshot = self.snapshot.read();
            (self.index.lock().get(id), Arc::clone(&snapshot))
        };
        if let Some(location) = location
            && let Some(vector) = snapshot.vector_of(location.segment.into(), location.row)?
        {
            return Ok(Some(vector));
        }
        Ok(snapshot.active.get(id).map(<[f32]>::to_vec))
    }

    pub(crate) fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>> {
        self.search_with(query, SearchParams::new(k))
    }

    pub(crate) fn search_with(&self, query: &[f32], params: SearchParams) -> Result<Vec<Neighbor>> {
        validate_vector(self.dim, self.metric, query)?;
        self.search_from(self.current_snapshot(), query, params)
    }

    /// [`search_with`](Self::search_with) starting from `snapshot`, which may be stale by the
    /// time it is searched.
    fn search_from(
        &self,
        mut snapshot: Arc<Snapshot>,
        query: &[f32],
        params: SearchParams,
    ) -> Result<Vec<Neighbor>> {
        loop {
            let hits = snapshot.search(query, params)?;
            // Deletion bitmaps are shared by every snapshot; memtables are not. If a rotation
            // replaced this snapshot's active memtable meanwhile, an upsert may have hidden the
            // old version this search skipped and put the new one in a memtable the snapshot
            // does not hold. The upsert inserted after it saw the new snapshot and set the bit
            // (AcqRel) after inserting; the search read the bit (Acquire), so this second read
            // sees the new active memtable, and the search runs again on the newer snapshot.
            // A retry needs a rotation during the search, so this rarely loops.
            let now = Arc::clone(&self.snapshot.read());
            if Arc::ptr_eq(&now.active, &snapshot.active) {
                return Ok(hits);
            }
            snapshot = now;
        }
    }

    pub(crate) fn set_memtable_rotate_rows(&self, rows: usize) {
        self.rotate_rows.store(rows.clamp(1, MAX_ROWS / 2), Ordering::Relaxed);
    }

    /// Freezes the active memtable into a pending tier once it holds enough rows.
    fn rotate_if_full(&self) -> Result<()> {
        let limit = self.rotate_rows.load(Ordering::Relaxed);
        if self.snapshot.read().active.rows() < limit {
            return Ok(());
        }
        let _gate = self.write_gate.write();
        if self.snapshot.read().active.rows() >= limit {
            self.rotate_locked()?;
        }
        Ok(())
    }

    /// Freezes the active memtable (the caller holds the write gate exclusively). Returns the
    /// new pending tier, if the memtable held any live row.
    fn rotate_locked(&self) -> Result<Option<Arc<Pending>>> {
        let mut snapshot = self.snapshot.write();
        if snapshot.active.rows() == 0 {
            return Ok(None);
        }
        let fresh = Arc::new(Memtable::new(self.dim, self.metric, self.params)?);
        let mut next = (**snapshot).clone();
        let old = std::mem::replace(&mut next.active, fresh);
        let pending = if old.is_empty() {
            None
        } else {
            let mut next_id = self.next_segment_id.lock();
            let segment_id = *next_id;
            let number = segment_number(segment_id)?;
            *next_id += 1;
            let pending = Arc::new(Pending::freeze(&old, segment_id));
            self.index.lock().add_segment(
                number,
                Arc::clone(&pending.deleted),
                pending.ids.iter().copied(),
            );
            next.pending.push(Arc::clone(&pending));
            Some(pending)
        };
        *snapshot = Arc::new(next);
        Ok(pending)
    }

    pub(crate) fn commit(&self) -> Result<Version> {
        self.check_writable()?;
        let _commit = self.commit_lock.lock();
        // The cut: freeze the active memtable and take every segment's deletes as of now.
        let (snapshot, cut_deletes) = {
            let _gate = self.write_gate.write();
            self.rotate_locked()?;
            let snapshot = Arc::clone(&self.snapshot.read());
            let pending: Vec<_> =
                snapshot.pending.iter().map(|p| p.deleted.to_deletion_vector()).collect();
            let segments: Vec<_> = snapshot
                .segments
                .iter()
                .map(|s| s.is_dirty().then(|| s.deleted.to_deletion_vector()))
                .collect();
            (snapshot, (pending, segments))
        };
        let (pending_deletes, segment_deletes) = cut_deletes;
        if snapshot.pending.is_empty() && segment_deletes.iter().all(Option::is_none) {
            return Ok(Version(snapshot.manifest.version));
        }
        match self.write_version(&snapshot, &pending_deletes, &segment_deletes) {
            Ok(version) => {
                self.wake(Work::Compact);
                Ok(version)
            }
            Err(error) => {
                self.poison(error.to_string());
                Err(error)
            }
        }
    }

    fn write_version(
        &self,
        snapshot: &Snapshot,
        pending_deletes: &[strata_manifest::DeletionVector],
        segment_deletes: &[Option<strata_manifest::DeletionVector>],
    ) -> Result<Version> {
        let storage = &*self.storage;
        let base = &snapshot.manifest;
        let version = base.version + 1;
        // A writer whose base version was collected fell behind: stop before writing anything.
        self.check_base_exists(version - 1)?;
        let mut records = Vec::with_capacity(base.segments.len() + snapshot.pending.len());
        // Changed deletion vectors are independent objects, each durable on its own (an fsync
        // pair locally, a request on an object store): write them concurrently.
        let changed: Vec<(usize, &strata_manifest::DeletionVector)> = segment_deletes
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| (i, d)))
            .filter(|(i, d)| d.deleted() < snapshot.segments[*i].record.rows)
            .collect();
        let mut written: Vec<Option<strata_manifest::DeletesRecord>> =
            vec![None; snapshot.segments.len()];
        let lanes = changed.len().min(DELETES_WRITERS);
        if lanes > 0 {
            let results: Vec<Result<Vec<(usize, strata_manifest::DeletesRecord)>>> =
                std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..lanes)
                        .map(|lane| {
                            let changed = &changed;
                            scope.spawn(move || {
                                changed
                                    .iter()
                                    .skip(lane)
                                    .step_by(lanes)
                                    .map(|&(i, deletes)| {
                                        let id = snapshot.segments[i].record.id;
                                        strata_manifest::write_deletes(
                                            storage, id, version, self.tag, deletes,
                                        )
                                        .map(|record| (i, record))
                                        .map_err(Error::from)
                                    })
                                    .collect()
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().expect("writer thread panicked")).collect()
                });
            for lane in results {
                for (i, record) in lane? {
                    written[i] = Some(record);
                }
            }
        }
        for ((live, deletes), record) in snapshot.segments.iter().zip(segment_deletes).zip(written)
        {
            if deletes.as_ref().is_some_and(|d| d.deleted() == live.record.rows) {
                continue; // Every row deleted: the segment leaves the database.
            }
            let mut record_now = live.record.clone();
            if record.is_some() {
                record_now.deletes = record;
            }
            records.push(record_now);
        }
        let mut flushed = Vec::new();
        for (pending, deletes) in snapshot.pending.iter().zip(pending_deletes) {
            let rows = pending.len() as u64;
            if deletes.deleted() == rows {
                flushed.push((Arc::clone(pending), None));
                continue;
            }
            let key = segment_file_key(pending.segment_id, self.tag, SegmentKind::Flat, 0);
            let mut writer = FlatWriter::new(storage, &key, self.dim, self.metric, rows)?;
            for (row, &id) in pending.ids.iter().enumerate() {
                writer.push(id, pending.vector(row as u32))?;
            }
            let written = writer.finish()?;
            let deletes = (deletes.deleted() > 0)
                .then(|| {
                    strata_manifest::write_deletes(
                        storage,
                        pending.segment_id,
                        version,
                        self.tag,
                        deletes,
                    )
                })
                .transpose()?;
            let record = SegmentRecord {
                id: pending.segment_id,
                tag: self.tag,
                kind: SegmentKind::Flat,
                rows,
                files: vec![FileRecord { size: written.size, crc32: written.crc32 }],
                deletes,
            };
            flushed.push((Arc::clone(pending), Some(record.clone())));
            records.push(record);
        }
        let manifest = self.next_manifest(base, records);
        strata_manifest::commit(storage, &manifest)?;
        // Create-if-absent fences writers racing on one version, but not one that slept while
        // another committed and garbage-collected past it: its "new" version would be older than
        // the newest and never read. GC keeps a suffix of the history, so if our base version
        // still exists, no version after it was ever collected, and ours is the newest.
        self.check_base_exists(version - 1)?;

        // Committed. Open the new segments (a map; no vector is read) and swap the snapshot.
        let mut new_segments = Vec::with_capacity(flushed.len());
        for (pending, record) in &flushed {
            if let Some(record) = record {
                let segment = Arc::new(self.open_segment(record)?);
                new_segments.push(Arc::new(LiveSegment {
                    record: record.clone(),
                    segment,
                    deleted: Arc::clone(&pending.deleted),
                }));
            } else {
                self.index.lock().drop_segment(segment_number(pending.segment_id)?);
            }
        }
        self.register_segments(&new_segments);
        let mut guard = self.snapshot.write();
        let mut next = (**guard).clone();
        next.pending.retain(|p| !flushed.iter().any(|(f, _)| Arc::ptr_eq(p, f)));
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for record in &manifest.segments {
            let live = next
                .segments
                .iter()
                .chain(&new_segments)
                .find(|live| live.record.id == record.id)
                .expect("every committed segment is open");
            segments.push(if live.record == *record {
                Arc::clone(live)
            } else {
                Arc::new(LiveSegment {
                    record: record.clone(),
                    segment: Arc::clone(&live.segment),
                    deleted: Arc::clone(&live.deleted),
                })
            });
        }
        for gone in
            next.segments.iter().filter(|s| !manifest.segments.iter().any(|r| r.id == s.record.id))
        {
            self.index.lock().drop_segment(segment_number(gone.record.id)?);
        }
        next.segments = segments;
        next.manifest = Arc::new(manifest);
        *guard = Arc::new(next);
        Ok(Version(version))
    }

    /// The version after `base` holding `records` (sorted here by id, oldest first).
    pub(crate) fn next_manifest(
        &self,
        base: &Manifest,
        mut records: Vec<SegmentRecord>,
    ) -> Manifest {
        records.sort_by_key(|r| r.id);
        Manifest {
            version: base.version + 1,
            committed_at_ms: now_ms().max(base.committed_at_ms),
            options: base.options,
            next_segment_id: *self.next_segment_id.lock(),
            segments: records,
        }
    }

    /// `Conflict` if the manifest of `base` is gone: garbage collection removed it, so other
    /// writers committed versions after it (one stat, whatever the history's length).
    pub(crate) fn check_base_exists(&self, base: u64) -> Result<()> {
        match self.storage.size(&manifest_key(base)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                let newest = strata_manifest::list_versions(&*self.storage)?;
                Err(Error::Conflict { version: newest.last().copied().unwrap_or(base + 1) })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn refresh(&self) -> Result<Version> {
        if self.mode != Mode::ReadOnly {
            return Ok(self.version());
        }
        let _commit = self.commit_lock.lock();
        let newest = strata_manifest::load_latest(&*self.storage)?;
        let current = Arc::clone(&self.snapshot.read());
        if newest.version > current.manifest.version {
            self.install_manifest(newest, &current.segments)?;
        }
        Ok(self.version())
    }

    pub(crate) fn gc(&self) -> Result<GcStats> {
        self.check_writable()?;
        let _commit = self.commit_lock.lock();
        let manifest = Arc::clone(&self.snapshot.read().manifest);
        let in_use: HashSet<String> = {
            let mut opened = self.opened_segments.lock();
            opened.retain(|weak| weak.strong_count() > 0);
            let mut keys: HashSet<String> =
                opened.iter().filter_map(Weak::upgrade).map(|s| s.object().to_owned()).collect();
            keys.extend(self.in_flight.lock().iter().cloned());
            keys
        };
        let retention = Retention {
            keep_versions: manifest.options.keep_versions,
            keep_for_ms: manifest.options.keep_for_secs.saturating_mul(1000),
        };
        let plan =
            strata_manifest::plan_gc(&*self.storage, &manifest, retention, now_ms(), &|key| {
                in_use.contains(key)
            })?;
        debug_assert!(!plan.manifests.contains(&manifest_key(manifest.version)));
        for key in plan.manifests.iter().chain(&plan.files) {
            self.storage.delete(key)?;
        }
        Ok(GcStats { manifests: plan.manifests.len(), files: plan.files.len() })
    }

    pub(crate) fn versions(&self) -> Result<Vec<Version>> {
        Ok(strata_manifest::list_versions(&*self.storage)?.into_iter().map(Version).collect())
    }
}

/// `root` with a `file://` prefix removed.
fn local_path(root: &Path) -> PathBuf {
    match root.to_str().and_then(|s| s.strip_prefix("file://")) {
        Some(path) => PathBuf::from(path),
        None => root.to_path_buf(),
    }
}

/// `root` as a URL, if it names an object store (`scheme://...`) rather than a directory.
fn remote_url(root: &Path) -> Option<&str> {
    let text = root.to_str()?;
    let (scheme, _) = text.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric())).then_some(text)
}

#[cfg(feature = "object-store")]
fn open_remote(url: &str) -> Result<Arc<dyn Storage>> {
    Ok(strata_storage::open_url(url, &strata_storage::ObjectStoreOptions::default())?)
}

#[cfg(not(feature = "object-store"))]
fn open_remote(url: &str) -> Result<Arc<dyn Storage>> {
    Err(Error::Storage(strata_storage::Error::InvalidLocation {
        location: url.to_owned(),
        reason: "this build of strata has no object-store support (enable feature s3 or gcs)"
            .to_owned(),
    }))
}

/// Segment ids must fit the id index's 32-bit field.
fn segment_number(id: u64) -> Result<u32> {
    u32::try_from(id).map_err(|_| Error::SegmentIdsExhausted)
}

/// A random tag for this handle's object keys: std's per-process random hash keys, mixed with
/// the time and a counter.
fn writer_tag() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static HANDLES: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((
        nanos,
        std::process::id(),
        HANDLES.fetch_add(1, Ordering::Relaxed),
    ))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use strata_storage::MemoryStore;

    use super::*;

    #[test]
    fn gc_spares_segments_that_a_live_snapshot_reads() {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        // (No background worker: its planning briefly holds snapshots too.)
        let options = Options::new(2, Metric::L2).keep_versions(1).background_compaction(false);
        let db = Db::create_in(Arc::clone(&store), options).unwrap();
        db.upsert(1, &[1.0, 2.0]).unwrap();
        db.commit().unwrap();
        let held = db.inner.current_snapshot();
        let file = held.segments[0].record.file_key(0);
        db.delete(1).unwrap();
        db.commit().unwrap();
        assert!(db.inner.current_snapshot().segments.is_empty(), "a fully deleted segment leaves");

        // A search that started before the commit still reads the old segment.
        assert_eq!(db.gc().unwrap().files, 0);
        assert!(store.size(&file).is_ok());
        drop(held);
        assert_eq!(db.gc().unwrap().files, 1);
        assert!(store.size(&file).unwrap_err().is_not_found());
    }
}

#[cfg(test)]
mod race_tests {
    use strata_storage::MemoryStore;

    use super::*;

    /// A search that took its snapshot before a commit, and reads the tiers after a later
    /// upsert of a committed id: the old version's deletion bit is visible (bitmaps are shared)
    /// but the new version sits in a memtable the old snapshot does not hold. The retry in
    /// `search_from` must still find the record.
    #[test]
    fn a_stale_snapshot_is_retried_after_a_rotation() {
        let db = Db::create_in(Arc::new(MemoryStore::new()), Options::new(2, Metric::L2)).unwrap();
        db.upsert(1, &[1.0, 0.0]).unwrap();
        db.upsert(2, &[2.0, 0.0]).unwrap();
        db.commit().unwrap();
        db.upsert(3, &[3.0, 0.0]).unwrap();
        let held = db.inner.current_snapshot();
        db.commit().unwrap();
        db.upsert(1, &[1.5, 0.0]).unwrap();
        let stale = held.search(&[1.0, 0.0], SearchParams::exact(10)).unwrap();
        assert!(!stale.iter().any(|n| n.id == 1), "the stale snapshot alone misses id 1");
        let hits = db.inner.search_from(held, &[1.0, 0.0], SearchParams::exact(10)).unwrap();
        let ids: Vec<u64> = hits.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 2, 3], "{hits:?}");
    }
}
