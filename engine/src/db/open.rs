//! Opening a database: create, open (writer, read-only, at a version), and installing a
//! manifest's segments and id index (recovery is opening the last committed version).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};
use strata_manifest::{Manifest, ManifestError, SegmentRecord};
use strata_memtable::{Memtable, Params};
use strata_storage::{DirLock, Storage};

use super::builder::HandleSettings;
use super::commit::now_ms;
use super::{Db, Inner, Mode, Version, Work, Worker, segment_number};
use crate::compaction::SizeTiered;
use crate::control::Control;
use crate::index::IdIndex;
use crate::options::MEMTABLE_ROTATE_ROWS;
use crate::segment::Segment;
use crate::snapshot::open_segments;
use crate::tiers::{LiveSegment, Snapshot};
use crate::{Error, Options, Result, Snapshot as PinnedSnapshot};

impl Db {
    /// Creates a database in the local directory `root` (created if missing), or at an object
    /// store URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `memory://name`, with the `s3`,
    /// `gcs` or `object-store` feature; `storage::open_url` documents credentials and the
    /// cache), and opens it for writing. Fails with [`Error::AlreadyExists`] if
    /// one is there. [`Db::builder`] offers creating only when missing, and per-handle settings.
    ///
    /// ```
    /// use strata::{Db, Error, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("vectors");
    /// let db = Db::create(&path, Options::new(128, Metric::Cosine).keep_versions(5))?;
    /// drop(db);
    /// assert!(matches!(Db::create(&path, Options::new(128, Metric::Cosine)), Err(Error::AlreadyExists { .. })));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn create(root: impl AsRef<Path>, options: Options) -> Result<Db> {
        Db::builder(root).create_new(options).open()
    }

    /// Creates a database in `storage` (any [`Storage`], e.g. an object store), and opens it for
    /// writing. A second writer on an object store is fenced by the commit protocol: its commit
    /// fails with [`Error::Conflict`].
    pub fn create_in(storage: Arc<dyn Storage>, options: Options) -> Result<Db> {
        Db::builder_in(storage).create_new(options).open()
    }

    /// Opens the database in the local directory `root`, or at an object store URL (as in
    /// [`create`](Self::create)), for writing. Only one writer may hold a directory: a second
    /// gets [`strata_storage::Error::Locked`]; on an object store a second writer's commit
    /// fails with [`Error::Conflict`].
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("vectors");
    /// # Db::create(&path, Options::new(2, Metric::L2))?;
    /// let db = Db::open(&path)?; // the writer: a second `open` gets storage::Error::Locked
    /// let reader = Db::open_read_only(&path)?; // any number of these beside it
    /// assert_eq!(db.version(), reader.version());
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn open(root: impl AsRef<Path>) -> Result<Db> {
        Db::builder(root).open()
    }

    /// Opens the database in `storage` for writing.
    pub fn open_in(storage: Arc<dyn Storage>) -> Result<Db> {
        Db::builder_in(storage).open()
    }

    /// Opens the newest version of the database in `root` for reading only (no lock: any number
    /// of readers may run beside the writer). See [`refresh`](Self::refresh).
    pub fn open_read_only(root: impl AsRef<Path>) -> Result<Db> {
        Db::builder(root).read_only().open()
    }

    /// [`open_read_only`](Self::open_read_only) on any storage.
    pub fn open_read_only_in(storage: Arc<dyn Storage>) -> Result<Db> {
        Db::builder_in(storage).read_only().open()
    }

    /// Version `version` of the database in `root` (a path or URL), as a [`Snapshot`](crate::Snapshot): time
    /// travel. The version must still exist (garbage collection removes versions outside
    /// retention). Reads its manifest and deletion vectors and maps its segments; builds no
    /// id index, so it opens faster than a handle.
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("vectors");
    /// let db = Db::create(&path, Options::new(2, Metric::L2))?;
    /// db.upsert(1, &[1.0, 0.0])?;
    /// let first = db.commit()?;
    /// db.delete(1)?;
    /// db.commit()?;
    /// let old = Db::open_at(&path, first)?;
    /// assert!(old.contains(1)? && !db.contains(1));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn open_at(root: impl AsRef<Path>, version: Version) -> Result<PinnedSnapshot> {
        Db::builder(root).read_only().open_at(version)
    }

    /// [`open_at`](Self::open_at) on any storage.
    pub fn open_at_in(storage: Arc<dyn Storage>, version: Version) -> Result<PinnedSnapshot> {
        Db::builder_in(storage).read_only().open_at(version)
    }

    /// The newest version committed at or before `time`, as a [`Snapshot`](crate::Snapshot) (see
    /// [`open_at`](Self::open_at)). [`Error::NoVersionAt`] if every retained version is newer.
    pub fn open_as_of(
        root: impl AsRef<Path>,
        time: std::time::SystemTime,
    ) -> Result<PinnedSnapshot> {
        Db::builder(root).read_only().open_as_of(time)
    }

    pub(super) fn create_with(
        storage: Arc<dyn Storage>,
        location: String,
        options: Options,
        lock: Option<DirLock>,
        settings: HandleSettings,
    ) -> Result<Db> {
        options.validate()?;
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
        Self::open_with(storage, location, Mode::Writer, None, lock, settings)
    }

    pub(super) fn open_with(
        storage: Arc<dyn Storage>,
        location: String,
        mode: Mode,
        version: Option<u64>,
        lock: Option<DirLock>,
        settings: HandleSettings,
    ) -> Result<Db> {
        let span = tracing::info_span!("strata.open", location = %location, mode = ?mode);
        let _entered = span.enter();
        let started = std::time::Instant::now();
        let manifest = match version {
            Some(v) => strata_manifest::load(&*storage, v)?,
            None => strata_manifest::load_latest(&*storage)?,
        };
        let mut options = Options::from_stored(&manifest.options)?;
        if let Some(on) = settings.background_compaction {
            options.background_compaction = on;
        }
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
            compaction_failure: Mutex::new(None),
            opened_segments: Mutex::new(Vec::new()),
            tag: writer_tag(),
            work: Mutex::new(None),
            flush_queued: AtomicBool::new(false),
            in_flight: Mutex::new(HashSet::new()),
            stopping: AtomicBool::new(false),
            compacted: (Mutex::new(()), Condvar::new()),
            build_pool: crate::parallel::build_pool(&settings.pool)?,
            pool: settings.pool,
            tally: Arc::default(),
            last_compaction: Mutex::new(None),
            worker_control: Control::new(),
            refresh_failure: Mutex::new(None),
            _lock: lock,
        };
        inner.install_manifest(manifest, &[])?;
        tracing::info!(
            version = inner.version().0,
            segments = inner.current_snapshot().segments.len(),
            records = inner.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "opened"
        );
        let inner = Arc::new(inner);
        let worker = match (mode, settings.refresh_every) {
            (Mode::Writer, _) => Some(Worker::start(&inner)?),
            (Mode::ReadOnly, Some(period)) => Some(Worker::start_refresher(&inner, period)?),
            (Mode::ReadOnly, None) => None,
        };
        let db = Db { inner, worker: Mutex::new(worker) };
        db.inner.wake(Work::Compact);
        Ok(db)
    }
}

impl Inner {
    /// Opens every segment of `manifest` (reusing those in `reuse` that are unchanged), rebuilds
    /// the id index from id columns and deletion vectors, and swaps in the snapshot. Reads no
    /// vector block.
    pub(super) fn install_manifest(
        &self,
        manifest: Manifest,
        reuse: &[Arc<LiveSegment>],
    ) -> Result<()> {
        let segments = open_segments(&*self.storage, &manifest, reuse, &self.options)?;
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

    pub(super) fn open_segment(&self, record: &SegmentRecord) -> Result<Segment> {
        Segment::open(&*self.storage, record, self.dim, self.metric, &self.options.attributes)
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
}

/// `root` with a `file://` prefix removed.
pub(super) fn local_path(root: &Path) -> PathBuf {
    match root.to_str().and_then(|s| s.strip_prefix("file://")) {
        Some(path) => PathBuf::from(path),
        None => root.to_path_buf(),
    }
}

/// `root` as a URL, if it names an object store (`scheme://...`) rather than a directory.
pub(super) fn remote_url(root: &Path) -> Option<&str> {
    let text = root.to_str()?;
    let (scheme, _) = text.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric())).then_some(text)
}

#[cfg(feature = "object-store")]
pub(super) fn open_remote_with(
    url: &str,
    options: &strata_storage::ObjectStoreOptions,
) -> Result<Arc<dyn Storage>> {
    Ok(strata_storage::open_url(url, options)?)
}

#[cfg(not(feature = "object-store"))]
pub(super) fn open_remote_with(url: &str) -> Result<Arc<dyn Storage>> {
    Err(Error::Storage(strata_storage::Error::InvalidLocation {
        location: url.to_owned(),
        reason: "this build of strata has no object-store support (enable feature s3 or gcs)"
            .to_owned(),
    }))
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
