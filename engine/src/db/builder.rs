//! `Db::builder()`: open-time settings that belong to one handle rather than to the database
//! (the thread pool, background work, read-only refreshes, creating when missing, object-store
//! options). Stored options (`Options`) stay fixed at create time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strata_manifest::Manifest;
use strata_storage::{DirLock, LocalDir, Storage};

use super::open::{local_path, open_remote_with, remote_url};
use super::{Db, LOCK_FILE, Mode, Version};
use crate::{Error, Options, Result, Snapshot};

/// Opens a database with per-handle settings. From [`Db::builder`] (a path or URL) or
/// [`Db::builder_in`] (any [`Storage`]).
///
/// ```
/// use std::sync::Arc;
/// use strata::{Db, Metric, Options};
/// # let dir = tempfile::tempdir().unwrap();
/// let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap());
/// let db = Db::builder(dir.path().join("vectors"))
///     .create_if_missing(Options::new(3, Metric::L2))
///     .thread_pool(pool)            // batch searches and batch upserts run here
///     .background_compaction(false) // this handle compacts only when asked
///     .open()?;
/// db.upsert(1, &[1.0, 0.0, 0.0])?;
/// # Ok::<(), strata::Error>(())
/// ```
#[must_use = "a builder does nothing until `open`"]
pub struct DbBuilder {
    location: Location,
    create: Option<Options>,
    read_only: bool,
    /// `create`: fail when a database is there.
    exclusive: bool,
    pub(super) settings: HandleSettings,
    #[cfg(feature = "object-store")]
    store_options: strata_storage::ObjectStoreOptions,
}

enum Location {
    Path(PathBuf),
    Storage(Arc<dyn Storage>),
}

/// What a handle is opened with beyond the stored options.
#[derive(Clone, Default)]
pub(crate) struct HandleSettings {
    /// `None`: rayon's global pool.
    pub(crate) pool: Option<Arc<rayon::ThreadPool>>,
    /// Overrides the stored `background_compaction` for this handle.
    pub(crate) background_compaction: Option<bool>,
    /// A read-only handle moves to the newest version this often.
    pub(crate) refresh_every: Option<Duration>,
}

impl std::fmt::Debug for DbBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let location = match &self.location {
            Location::Path(path) => path.display().to_string(),
            Location::Storage(storage) => format!("{storage:?}"),
        };
        f.debug_struct("DbBuilder")
            .field("location", &location)
            .field("create_if_missing", &self.create.is_some())
            .field("read_only", &self.read_only)
            .field("threads", &self.settings.pool.as_ref().map(|p| p.current_num_threads()))
            .field("background_compaction", &self.settings.background_compaction)
            .field("refresh_every", &self.settings.refresh_every)
            .finish()
    }
}

impl Db {
    /// A builder for the database in the local directory `root`, or at an object-store URL
    /// (as [`create`](Self::create) takes).
    pub fn builder(root: impl AsRef<Path>) -> DbBuilder {
        DbBuilder::new(Location::Path(root.as_ref().to_path_buf()))
    }

    /// A builder for the database in `storage`.
    pub fn builder_in(storage: Arc<dyn Storage>) -> DbBuilder {
        DbBuilder::new(Location::Storage(storage))
    }
}

impl DbBuilder {
    fn new(location: Location) -> Self {
        DbBuilder {
            location,
            create: None,
            read_only: false,
            exclusive: false,
            settings: HandleSettings::default(),
            #[cfg(feature = "object-store")]
            store_options: strata_storage::ObjectStoreOptions::default(),
        }
    }

    /// Creates the database with `options` if none is there (otherwise opens it, and its
    /// stored options apply). Writers only.
    pub fn create_if_missing(mut self, options: Options) -> Self {
        self.create = Some(options);
        self
    }

    /// Opens for reading only: no lock, any number beside the writer. See
    /// [`refresh_every`](Self::refresh_every).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// A read-only handle moves to the newest committed version every `period` by itself (a
    /// background thread calls [`Db::refresh`]; a failed refresh keeps the version it has and
    /// is retried at the next period, its error kept in [`Db::refresh_error`]).
    pub fn refresh_every(mut self, period: Duration) -> Self {
        self.settings.refresh_every = Some(period);
        self
    }

    /// Runs this handle's parallel work (batch searches, batch upserts) on a pool of
    /// `threads` threads of its own. Default: rayon's global pool (one thread per core).
    pub fn threads(mut self, threads: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("strata-pool-{i}"))
            .build();
        // Building a pool fails only when the OS refuses threads; the global pool serves then.
        self.settings.pool = pool.ok().map(Arc::new);
        self
    }

    /// Runs this handle's parallel work on `pool`, which the embedder shares with its own.
    pub fn thread_pool(mut self, pool: Arc<rayon::ThreadPool>) -> Self {
        self.settings.pool = Some(pool);
        self
    }

    /// Turns this handle's background compaction on or off, whatever the database stores
    /// ([`Options::background_compaction`]); the stored setting is unchanged.
    pub fn background_compaction(mut self, on: bool) -> Self {
        self.settings.background_compaction = Some(on);
        self
    }

    /// Options of the object-store client (endpoint, region, cache) for a URL location.
    #[cfg(feature = "object-store")]
    pub fn object_store_options(mut self, options: strata_storage::ObjectStoreOptions) -> Self {
        self.store_options = options;
        self
    }

    /// Creates the database with `options`; opening fails with [`Error::AlreadyExists`] if one
    /// is there. Writers only.
    pub fn create_new(mut self, options: Options) -> Self {
        self.create = Some(options);
        self.exclusive = true;
        self
    }

    /// Opens (or creates) the database.
    pub fn open(self) -> Result<Db> {
        if self.read_only && self.create.is_some() {
            let reason = "a read-only handle cannot create a database";
            return Err(Error::InvalidOption { name: "create_if_missing", reason });
        }
        if !self.read_only && self.settings.refresh_every.is_some() {
            let reason = "only a read-only handle refreshes (the writer is always current)";
            return Err(Error::InvalidOption { name: "refresh_every", reason });
        }
        if self.settings.refresh_every.is_some_and(|p| p.is_zero()) {
            return Err(Error::InvalidOption { name: "refresh_every", reason: "must be positive" });
        }
        if let Some(options) = &self.create {
            options.validate()?;
        }
        let mode = if self.read_only { Mode::ReadOnly } else { Mode::Writer };
        let (storage, location, lock) = self.storage(mode)?;
        let Some(options) = self.create else {
            return Db::open_with(storage, location, mode, None, lock, self.settings);
        };
        if !self.exclusive && !strata_manifest::list_versions(&*storage)?.is_empty() {
            return Db::open_with(storage, location, mode, None, lock, self.settings);
        }
        if lock.is_some() {
            // Holding the directory's lock, no other writer can create it meanwhile.
            return Db::create_with(storage, location, options, lock, self.settings);
        }
        let created = Db::create_with(
            Arc::clone(&storage),
            location.clone(),
            options,
            lock,
            self.settings.clone(),
        );
        match created {
            // Another writer created it first (an object store has no lock): open that.
            Err(Error::AlreadyExists { .. }) if !self.exclusive => {
                Db::open_with(storage, location, mode, None, None, self.settings)
            }
            other => other,
        }
    }

    /// Opens version `version` as a [`Snapshot`] ([`Db::open_at`] with this builder's
    /// settings: its pool and object-store options).
    pub fn open_at(self, version: Version) -> Result<Snapshot> {
        let (storage, _, _) = self.storage(Mode::ReadOnly)?;
        let manifest = strata_manifest::load(&*storage, version.0)?;
        Snapshot::load(storage, manifest, self.settings.pool)
    }

    /// Opens the newest version committed at or before `time` as a [`Snapshot`]
    /// ([`Db::open_as_of`] with this builder's settings).
    pub fn open_as_of(self, time: SystemTime) -> Result<Snapshot> {
        let (storage, _, _) = self.storage(Mode::ReadOnly)?;
        let wanted = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let manifest = version_as_of(&*storage, wanted)?;
        Snapshot::load(storage, manifest, self.settings.pool)
    }

    /// The storage at the builder's location, and the writer's lock on a local directory.
    fn storage(&self, mode: Mode) -> Result<(Arc<dyn Storage>, String, Option<DirLock>)> {
        let root = match &self.location {
            Location::Storage(storage) => {
                return Ok((Arc::clone(storage), format!("{storage:?}"), None));
            }
            Location::Path(root) => local_path(root),
        };
        if let Some(url) = remote_url(&root) {
            #[cfg(feature = "object-store")]
            let storage = open_remote_with(url, &self.store_options)?;
            #[cfg(not(feature = "object-store"))]
            let storage = open_remote_with(url)?;
            return Ok((storage, url.to_owned(), None));
        }
        let store = match self.create {
            Some(_) => LocalDir::open(root)?,
            None => LocalDir::open_existing(root)?,
        };
        let lock = match mode {
            Mode::Writer => {
                let lock = store.lock(LOCK_FILE)?;
                // The only writer: any temporary file is a killed writer's.
                store.remove_temporaries()?;
                Some(lock)
            }
            Mode::ReadOnly => None,
        };
        let location = store.root().display().to_string();
        Ok((Arc::new(store), location, lock))
    }
}

/// The manifest of the newest version committed at or before `wanted_ms` (ms since the epoch).
/// Commit times never go down along the history (`next_manifest` keeps them monotonic), so a
/// binary search over the retained versions finds it.
fn version_as_of(storage: &dyn Storage, wanted_ms: u64) -> Result<Manifest> {
    let versions = strata_manifest::list_versions(storage)?;
    let (mut low, mut high) = (0, versions.len());
    let mut found = None;
    while low < high {
        let middle = (low + high) / 2;
        let manifest = strata_manifest::load(storage, versions[middle])?;
        if manifest.committed_at_ms <= wanted_ms {
            low = middle + 1;
            found = Some(manifest);
        } else {
            high = middle;
        }
    }
    found.ok_or(Error::NoVersionAt {
        time_ms: wanted_ms,
        oldest: versions.first().copied().map(Version),
    })
}
