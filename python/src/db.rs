//! `strata.Db`: a database handle. Every call that touches data runs with the GIL released,
//! so Python threads searching (or writing) on one handle run in parallel.

use std::sync::Arc;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use strata::{Attributes, Db, Version};

use crate::convert::{self, Ids, Vectors};
use crate::errors::{IntoPy, closed, invalid};
use crate::interrupt;
use crate::read;
use crate::report;
use crate::settings::Search;
use crate::snapshot::{PyScan, PySnapshot};

/// A Strata database handle: the writer (``strata.create``, ``strata.open``) or a read-only
/// follower (``strata.open_read_only``).
///
/// Writes (``upsert``, ``delete``) are searchable at once and durable at ``commit()``; a crash
/// loses exactly the writes after the last commit. One writer per database; any number of
/// threads may share a handle, and every search, write, commit and compaction releases the GIL.
/// Use it as a context manager (or call ``close()``) to close it deterministically.
#[pyclass(frozen, name = "Db", module = "strata")]
#[derive(Debug)]
pub struct PyDb {
    handle: RwLock<Option<Arc<Db>>>,
    location: String,
}

impl PyDb {
    pub fn new(db: Db, location: String) -> Self {
        PyDb { handle: RwLock::new(Some(Arc::new(db))), location }
    }

    /// The open handle (cloned out, so no lock is held while it works).
    fn db(&self) -> PyResult<Arc<Db>> {
        self.handle.read().clone().ok_or_else(closed)
    }
}

/// Ids and vectors of one write, checked against each other and the database.
struct Rows<'py> {
    ids: Ids<'py>,
    vectors: Vectors<'py>,
}

fn rows<'py>(db: &Db, ids: &Bound<'py, PyAny>, vectors: &Bound<'py, PyAny>) -> PyResult<Rows<'py>> {
    let ids = convert::ids(ids)?;
    let vectors = convert::vectors(vectors, "vectors")?;
    if ids.single != vectors.single && !(ids.len() == 1 && vectors.rows == 1) {
        return Err(invalid(
            "give one id with one vector (1-d), or n ids with an (n, dim) array of vectors",
        ));
    }
    if ids.len() != vectors.rows {
        return Err(invalid(format!("{} ids but {} vectors", ids.len(), vectors.rows)));
    }
    if vectors.dim != db.dim() && vectors.rows > 0 {
        return Err(invalid(format!(
            "vectors have dimension {}, the database {}",
            vectors.dim,
            db.dim()
        )));
    }
    Ok(Rows { ids, vectors })
}

fn attribute_rows(
    db: &Db,
    attributes: Option<&Bound<'_, PyAny>>,
    rows: &Rows<'_>,
) -> PyResult<Option<Vec<Attributes>>> {
    match attributes {
        None => Ok(None),
        Some(obj) if obj.is_none() => Ok(None),
        Some(obj) => {
            let single = rows.ids.single && rows.vectors.single;
            let schema = db.options().schema().clone();
            Ok(Some(convert::attribute_rows(obj, rows.vectors.rows, single, &schema)?))
        }
    }
}

#[pymethods]
impl PyDb {
    /// Inserts or replaces records: ``upsert(7, vector)`` for one, ``upsert(ids, vectors)`` for
    /// a batch (``ids``: n integers; ``vectors``: an (n, dim) float32 array, borrowed without
    /// a copy when C-contiguous). ``attributes``: a dict for one record, a list of dicts (or
    /// ``None``s) for a batch, typed by the schema given at ``create``; the key ``"_payload"``
    /// holds bytes. Searchable at once; durable at ``commit()``. A bad row (wrong dimension,
    /// NaN) fails the whole batch, naming the row, and writes nothing.
    #[pyo3(signature = (ids, vectors, attributes=None))]
    fn upsert(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let db = self.db()?;
        let rows = rows(&db, ids, vectors)?;
        let attributes = attribute_rows(&db, attributes, &rows)?;
        let (ids, vectors) = (rows.ids.as_slice(), rows.vectors.as_slice());
        py.detach(|| match &attributes {
            None => db.upsert_batch(ids, vectors),
            Some(attributes) => db.upsert_batch_with(ids, vectors, attributes),
        })
        .py_err()
    }

    /// Writes a batch straight into a new segment and commits it: the bulk-load path (no graph
    /// insert). Earlier uncommitted writes are committed first. Returns the new version.
    #[pyo3(signature = (ids, vectors, attributes=None))]
    fn ingest(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let db = self.db()?;
        let rows = rows(&db, ids, vectors)?;
        let attributes = attribute_rows(&db, attributes, &rows)?;
        let (ids, vectors) = (rows.ids.as_slice(), rows.vectors.as_slice());
        let version = py
            .detach(|| match &attributes {
                None => db.ingest(ids, vectors),
                Some(attributes) => db.ingest_with(ids, vectors, attributes),
            })
            .py_err()?;
        Ok(version.0)
    }

    /// Deletes records. One id: whether it existed. Many: how many existed.
    fn delete<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let db = self.db()?;
        let ids = convert::ids(ids)?;
        let single = ids.single;
        let ids = ids.as_slice();
        let deleted = py.detach(|| {
            let mut deleted = 0usize;
            for &id in ids {
                deleted += usize::from(db.delete(id)?);
            }
            Ok::<_, strata::Error>(deleted)
        });
        let deleted = deleted.py_err()?;
        if single {
            return Ok(pyo3::types::PyBool::new(py, deleted == 1).to_owned().into_any());
        }
        Ok(deleted.into_pyobject(py)?.into_any())
    }

    /// Replaces a record's attributes, keeping its vector. Returns whether the record exists.
    fn update_attributes(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        attributes: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let db = self.db()?;
        let id = convert::one_id(id)?;
        let attributes = convert::attributes(attributes, db.options().schema())?;
        py.detach(|| db.update_attributes(id, &attributes)).py_err()
    }

    /// The record's vector (float32; unit-normalized under cosine), or ``None``. Sees
    /// uncommitted writes.
    fn get<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        read::get(py, &*self.db()?, id)
    }

    /// The vectors of many ids: a list with an array, or ``None``, per id.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        read::get_many(py, &*self.db()?, ids)
    }

    /// The record's attributes as a dict (its payload under ``"_payload"``), or ``None`` if
    /// there is no such record.
    fn get_attributes<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        read::get_attributes(py, &*self.db()?, id)
    }

    /// Whether a live record has this id (uncommitted writes included).
    fn contains(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        read::contains(py, &*self.db()?, id)
    }

    fn __contains__(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.contains(py, id)
    }

    /// The ``k`` nearest records to each query: ``(ids, distances)``.
    ///
    /// ``queries``: one vector (1-d) or a batch (an (n, dim) float32 array); a batch is spread
    /// over the handle's threads. The arrays have shape ``(k,)`` for one query and ``(n, k)``
    /// for a batch; ids are int64 and distances float32, nearest first, and a row with fewer
    /// than ``k`` results is padded with id -1 and distance inf. Distances are smaller-is-nearer
    /// under every metric: squared L2, negated inner product, 1 - cosine.
    ///
    /// - ``ef``: candidate list of the in-memory (HNSW) tier (default 128);
    /// - ``l``: candidate list of every Vamana segment (default: each segment's calibrated
    ///   list for ``recall``);
    /// - ``recall``: the recall@10 each Vamana segment is searched for (default 0.95);
    /// - ``filter``: only records whose attributes match, e.g. ``"lang = 'de' AND ts >= 5"``;
    /// - ``exact``: scan every row instead of walking graphs;
    /// - ``radius``: only records within this distance (at most ``k`` of them).
    ///
    /// Searches see every write made before the call, committed or not.
    #[pyo3(signature = (queries, k=10, *, ef=None, l=None, recall=None, filter=None, exact=false, radius=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        ef: Option<usize>,
        l: Option<usize>,
        recall: Option<f32>,
        filter: Option<String>,
        exact: bool,
        radius: Option<f32>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let search = Search { k, ef, l, recall, filter, exact, radius };
        read::search(py, &*self.db()?, queries, search)
    }

    /// Makes every write so far durable: writes them to a new segment and publishes a new
    /// version atomically. Returns the version (unchanged if there was nothing to commit).
    fn commit(&self, py: Python<'_>) -> PyResult<u64> {
        let db = self.db()?;
        Ok(py.detach(|| db.commit()).py_err()?.0)
    }

    /// A read-only handle: loads the newest committed version. Returns it.
    fn refresh(&self, py: Python<'_>) -> PyResult<u64> {
        let db = self.db()?;
        Ok(py.detach(|| db.refresh()).py_err()?.0)
    }

    /// Runs compactions until the policy plans none (merging small segments, building Vamana
    /// segments). Returns how many ran. Ctrl-C cancels it: what was already published stays,
    /// the compaction in progress leaves nothing but garbage that ``gc()`` removes.
    fn compact(&self, py: Python<'_>) -> PyResult<usize> {
        let db = self.db()?;
        interrupt::run(py, |control| db.compact_with(control))
    }

    /// Deletes versions outside retention and the files only they used. Returns
    /// ``{"manifests": n, "files": n}``. Ctrl-C stops it between deletions.
    fn gc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let db = self.db()?;
        let stats = interrupt::run(py, |control| db.gc_with(control))?;
        let dict = PyDict::new(py);
        dict.set_item("manifests", stats.manifests)?;
        dict.set_item("files", stats.files)?;
        Ok(dict)
    }

    /// Every stored version, oldest first: dicts with ``version``, ``committed_at`` (seconds
    /// since the epoch), ``records`` and ``segments``.
    fn versions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let db = self.db()?;
        let versions = py.detach(|| db.versions()).py_err()?;
        report::versions(py, &versions)
    }

    /// The committed segments, oldest first: dicts with ``id``, ``kind`` (``"flat"`` or
    /// ``"vamana"``), ``rows``, ``live_rows``, ``file_bytes``, ``ram_bytes`` and ``codes``.
    fn segments<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let db = self.db()?;
        let segments = py.detach(|| db.segment_details());
        report::segments(py, &segments)
    }

    /// Everything the handle reports about itself, as nested dicts: ``records``,
    /// ``deleted_rows``, ``memtables``, ``segments``, ``by_kind``, ``ram``, ``disk_bytes``,
    /// ``versions_kept``, ``compaction`` and ``counters``.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let db = self.db()?;
        let stats = py.detach(|| db.stats()).py_err()?;
        report::stats(py, &stats)
    }

    /// Running totals since the handle opened (searches, upserts, deletes, commits,
    /// compactions, gcs, bytes_written): cheap enough to scrape often.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        report::counters(py, &self.db()?.counters())
    }

    /// A snapshot of the current committed version: it searches, reads and scans that version
    /// while writes, commits and compactions go on.
    fn snapshot(&self, py: Python<'_>) -> PyResult<PySnapshot> {
        let db = self.db()?;
        Ok(PySnapshot::new(py.detach(|| db.snapshot())))
    }

    /// A snapshot of an older retained version (``NotFoundError`` if it is gone).
    fn snapshot_at(&self, py: Python<'_>, version: u64) -> PyResult<PySnapshot> {
        let db = self.db()?;
        Ok(PySnapshot::new(py.detach(|| db.snapshot_at(Version(version))).py_err()?))
    }

    /// Every live record of the current committed version, in batches:
    /// ``(ids, vectors, attributes)`` with ``ids`` int64 of shape (n,), ``vectors`` float32 of
    /// shape (n, dim), and ``attributes`` a list of dicts when asked for (else ``None``).
    /// Streams: memory holds one batch.
    #[pyo3(signature = (batch_size=4096, attributes=false))]
    fn scan(&self, py: Python<'_>, batch_size: usize, attributes: bool) -> PyResult<PyScan> {
        self.snapshot(py)?.scan(batch_size, attributes)
    }

    /// Closes the handle: stops background compaction and releases the writer's lock. Later
    /// calls raise ``ClosedError``; closing twice does nothing. If another thread is still in
    /// a call on this handle, the handle closes when that call returns.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(db) = self.handle.write().take() else {
            return Ok(());
        };
        match Arc::try_unwrap(db) {
            Ok(db) => py.detach(|| db.close()).py_err(),
            Err(_in_use) => Ok(()),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    /// Live records, committed and not.
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.db()?.len())
    }

    /// The vectors' dimension.
    #[getter]
    fn dim(&self) -> PyResult<usize> {
        Ok(self.db()?.dim())
    }

    /// The metric: ``"l2"``, ``"ip"`` or ``"cosine"``.
    #[getter]
    fn metric(&self) -> PyResult<String> {
        Ok(self.db()?.metric().to_string())
    }

    /// The committed version the handle's state builds on.
    #[getter]
    fn version(&self) -> PyResult<u64> {
        Ok(self.db()?.version().0)
    }

    /// Where the database lives (a path or URL), as given.
    #[getter]
    fn location(&self) -> &str {
        &self.location
    }

    /// The attribute schema: ``{name: type}``.
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        report::schema(py, self.db()?.options().schema())
    }

    /// Whether ``close()`` has run.
    #[getter]
    fn closed(&self) -> bool {
        self.handle.read().is_none()
    }

    /// The error of the last compaction while compactions keep failing, else ``None``.
    #[getter]
    fn compaction_error(&self) -> PyResult<Option<String>> {
        Ok(self.db()?.compaction_error())
    }

    fn __repr__(&self) -> String {
        match self.handle.read().as_ref() {
            Some(db) => format!(
                "strata.Db({:?}, dim={}, metric={:?}, records={}, version={})",
                self.location,
                db.dim(),
                db.metric().to_string(),
                db.len(),
                db.version().0
            ),
            None => format!("strata.Db({:?}, closed)", self.location),
        }
    }
}
