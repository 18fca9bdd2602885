//! The `strata` Python module (`strata._strata`, re-exported by `python/strata/__init__.py`):
//! the engine's handle, snapshots and scans over numpy arrays, with the GIL released wherever
//! the engine works. `python/strata/_strata.pyi` documents the API for type checkers and IDEs;
//! `docs/PYTHON.md` is the guide.

mod convert;
mod db;
mod errors;
mod interrupt;
mod read;
mod report;
mod settings;
mod snapshot;

use std::time::{Duration, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use strata::{Db, DbBuilder, Version};

use crate::db::PyDb;
use crate::errors::{IntoPy, invalid};
use crate::snapshot::{PyScan, PySnapshot};

/// The location as a string (a path, `pathlib.Path` or URL).
fn location(path: &Bound<'_, PyAny>) -> PyResult<String> {
    let fspath = path.py().import("os")?.call_method1("fspath", (path,))?;
    fspath.extract()
}

/// A builder for `location` with the handle settings every opening function shares.
fn builder(
    location: &str,
    threads: Option<usize>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<DbBuilder> {
    let mut builder = Db::builder(location);
    builder = match threads {
        Some(0) => return Err(invalid("threads must be at least 1")),
        Some(n) => builder.threads(n),
        None => builder,
    };
    if let Some(options) = storage_options {
        builder = builder.object_store_options(settings::storage_options(options)?);
    }
    Ok(builder)
}

/// Creates a database at ``path`` (a local directory, created if missing, or an object store
/// URL: ``s3://bucket/prefix``, ``gs://bucket/prefix``) and opens it for writing.
///
/// ``dim``: the vectors' dimension; ``metric``: ``"cosine"`` (vectors are normalized on
/// write), ``"l2"`` (squared Euclidean) or ``"ip"`` (inner product). ``attributes``: the
/// attribute schema, ``{"lang": "keyword", "ts": "u64"}`` (types u64, i64, f64, bool, keyword,
/// keywords), which filters can test. Other stored options: ``hnsw_m``, ``ef_construction``,
/// ``keep_versions``, ``keep_for`` (seconds), ``compaction_threshold``, ``diskann_min_rows``,
/// ``deleted_rewrite_fraction``, ``vamana_codec`` (``"sq8"``, ``"int4"``, ``"pq32"``,
/// ``"rpq32"``, ``"rabitq4"``...), ``vamana_max_degree``, ``compaction_memory_budget``
/// (bytes), ``auto_flush_bytes``, ``background_compaction``.
///
/// ``threads``: the handle's search threads (default: one per core). ``exist_ok=True`` opens
/// a database already there instead of raising ``AlreadyExistsError``. ``storage_options``:
/// the object-store client's settings, ``{"endpoint": "http://...", "allow_http": True,
/// "region": ..., "access_key_id": ..., "secret_access_key": ..., "cache_dir": ...,
/// "cache_budget": bytes, "max_retries": n, "retry_timeout": s, "request_timeout": s, ...}``
/// (the ``AWS_*`` / ``GOOGLE_*`` environment fills in the rest); every opening function
/// takes it.
#[pyfunction]
#[pyo3(signature = (path, dim, metric="cosine", *, threads=None, exist_ok=false, storage_options=None, **options))]
#[allow(clippy::too_many_arguments)]
fn create(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    dim: usize,
    metric: &str,
    threads: Option<usize>,
    exist_ok: bool,
    storage_options: Option<&Bound<'_, PyDict>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyDb> {
    let location = location(path)?;
    let options = settings::options(dim, metric, options)?;
    let builder = builder(&location, threads, storage_options)?;
    let db = if exist_ok {
        py.detach(|| builder.create_if_missing(options).open())
    } else {
        py.detach(|| builder.create_new(options).open())
    }
    .py_err()?;
    Ok(PyDb::new(db, location))
}

/// Opens the database at ``path`` for writing (one writer at a time: a second raises
/// ``LockedError`` on a local directory). ``background_compaction`` overrides the stored
/// setting for this handle; ``threads`` as for ``create``.
#[pyfunction]
#[pyo3(signature = (path, *, threads=None, background_compaction=None, storage_options=None))]
fn open(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    threads: Option<usize>,
    background_compaction: Option<bool>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyDb> {
    let location = location(path)?;
    let mut builder = builder(&location, threads, storage_options)?;
    if let Some(on) = background_compaction {
        builder = builder.background_compaction(on);
    }
    let db = py.detach(|| builder.open()).py_err()?;
    Ok(PyDb::new(db, location))
}

/// Opens the database at ``path`` read-only: it searches and reads the newest committed
/// version, alongside a writer in another process. ``refresh()`` loads newer versions, or
/// ``refresh_every`` (seconds) does so in the background.
#[pyfunction]
#[pyo3(signature = (path, *, threads=None, refresh_every=None, storage_options=None))]
fn open_read_only(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    threads: Option<usize>,
    refresh_every: Option<&Bound<'_, PyAny>>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyDb> {
    let location = location(path)?;
    let mut builder = builder(&location, threads, storage_options)?.read_only();
    if let Some(every) = refresh_every {
        builder = builder.refresh_every(settings::seconds("refresh_every", every)?);
    }
    let db = py.detach(|| builder.open()).py_err()?;
    Ok(PyDb::new(db, location))
}

/// Version ``version`` of the database at ``path`` as a read-only ``Snapshot`` (time travel;
/// ``NotFoundError`` if it was never committed or garbage collection removed it).
#[pyfunction]
#[pyo3(signature = (path, version, *, threads=None, storage_options=None))]
fn open_at(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    version: u64,
    threads: Option<usize>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PySnapshot> {
    let location = location(path)?;
    let builder = builder(&location, threads, storage_options)?;
    let snapshot = py.detach(|| builder.open_at(Version(version))).py_err()?;
    Ok(PySnapshot::new(snapshot))
}

/// The newest version committed at or before ``time`` (a ``datetime`` or seconds since the
/// epoch) as a ``Snapshot``.
#[pyfunction]
#[pyo3(signature = (path, time, *, threads=None, storage_options=None))]
fn open_as_of(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    time: &Bound<'_, PyAny>,
    threads: Option<usize>,
    storage_options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PySnapshot> {
    let location = location(path)?;
    let seconds: f64 = match time.call_method0("timestamp") {
        Ok(stamp) => stamp.extract()?,
        Err(_) => time.extract()?,
    };
    // Microseconds below 2**64 (up to the year 586,000); NaN is refused too.
    if !(0.0..1.8e13).contains(&seconds) {
        return Err(invalid(format!("time must be after the epoch, got {seconds}")));
    }
    // Rounded to the microsecond: a commit time read back as float seconds names its version.
    let since = Duration::from_micros((seconds * 1e6).round() as u64);
    let builder = builder(&location, threads, storage_options)?;
    let snapshot = py.detach(|| builder.open_as_of(UNIX_EPOCH + since)).py_err()?;
    Ok(PySnapshot::new(snapshot))
}

#[pymodule]
fn _strata(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_function(wrap_pyfunction!(create, module)?)?;
    module.add_function(wrap_pyfunction!(open, module)?)?;
    module.add_function(wrap_pyfunction!(open_read_only, module)?)?;
    module.add_function(wrap_pyfunction!(open_at, module)?)?;
    module.add_function(wrap_pyfunction!(open_as_of, module)?)?;
    module.add_class::<PyDb>()?;
    module.add_class::<PySnapshot>()?;
    module.add_class::<PyScan>()?;
    errors::register(module)?;
    Ok(())
}
