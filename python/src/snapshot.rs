//! `strata.Snapshot` (one committed version, pinned) and `strata.Scan` (its records in batches).

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use strata::{Scan, Snapshot};

use crate::convert;
use crate::errors::{IntoPy, closed, invalid};
use crate::read;
use crate::settings::Search;

/// One committed version of a database, pinned: searches, reads and scans see exactly it,
/// while the writer goes on. From ``Db.snapshot()``, ``Db.snapshot_at(v)`` or
/// ``strata.open_at(path, v)``. Releases its files when closed or garbage-collected.
#[pyclass(frozen, name = "Snapshot", module = "strata")]
#[derive(Debug)]
pub struct PySnapshot {
    inner: RwLock<Option<Arc<Snapshot>>>,
}

impl PySnapshot {
    pub fn new(snapshot: Snapshot) -> Self {
        PySnapshot { inner: RwLock::new(Some(Arc::new(snapshot))) }
    }

    fn snapshot(&self) -> PyResult<Arc<Snapshot>> {
        self.inner.read().clone().ok_or_else(closed)
    }
}

#[pymethods]
impl PySnapshot {
    /// The ``k`` nearest records of this version to each query: ``(ids, distances)``, as
    /// ``Db.search`` returns them (same keywords).
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
        read::search(py, &*self.snapshot()?, queries, search)
    }

    /// The record's vector in this version, or ``None``.
    fn get<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        read::get(py, &*self.snapshot()?, id)
    }

    /// The vectors of many ids in this version: a list with an array, or ``None``, per id.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        read::get_many(py, &*self.snapshot()?, ids)
    }

    /// The record's attributes in this version (see ``Db.get_attributes``), or ``None``.
    fn get_attributes<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        read::get_attributes(py, &*self.snapshot()?, id)
    }

    /// Whether this version holds a live record with this id.
    fn contains(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        read::contains(py, &*self.snapshot()?, id)
    }

    fn __contains__(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.contains(py, id)
    }

    /// Every live record of this version in batches (see ``Db.scan``).
    #[pyo3(signature = (batch_size=4096, attributes=false))]
    pub fn scan(&self, batch_size: usize, attributes: bool) -> PyResult<PyScan> {
        if batch_size == 0 {
            return Err(invalid("batch_size must be at least 1"));
        }
        let snapshot = self.snapshot()?;
        Ok(PyScan {
            scan: Mutex::new(Some(snapshot.scan())),
            dim: snapshot.dim(),
            batch_size,
            attributes,
        })
    }

    /// Releases the snapshot's files (also done when it is garbage-collected).
    fn close(&self) {
        self.inner.write().take();
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    /// Live records in this version.
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.snapshot()?.len())
    }

    /// The version.
    #[getter]
    fn version(&self) -> PyResult<u64> {
        Ok(self.snapshot()?.version().0)
    }

    /// When the version was committed, in seconds since the epoch.
    #[getter]
    fn committed_at(&self) -> PyResult<f64> {
        Ok(crate::report::epoch_seconds(self.snapshot()?.committed_at()))
    }

    /// The vectors' dimension.
    #[getter]
    fn dim(&self) -> PyResult<usize> {
        Ok(self.snapshot()?.dim())
    }

    /// The metric: ``"l2"``, ``"ip"`` or ``"cosine"``.
    #[getter]
    fn metric(&self) -> PyResult<String> {
        Ok(self.snapshot()?.metric().to_string())
    }

    fn __repr__(&self) -> String {
        match self.inner.read().as_ref() {
            Some(s) => format!("strata.Snapshot(version={}, records={})", s.version().0, s.len()),
            None => "strata.Snapshot(closed)".to_owned(),
        }
    }
}

/// An iterator over a snapshot's live records, in batches of ``(ids, vectors, attributes)``.
#[pyclass(frozen, name = "Scan", module = "strata")]
#[derive(Debug)]
pub struct PyScan {
    /// `None` once exhausted or failed.
    scan: Mutex<Option<Scan>>,
    dim: usize,
    batch_size: usize,
    attributes: bool,
}

#[pymethods]
impl PyScan {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let (batch_size, dim, with_attributes) = (self.batch_size, self.dim, self.attributes);
        let batch = py.detach(|| {
            let mut guard = self.scan.lock();
            let Some(scan) = guard.as_mut() else {
                return Ok(None);
            };
            let mut ids = Vec::with_capacity(batch_size.min(1 << 16));
            let mut vectors = Vec::with_capacity(ids.capacity() * dim);
            let mut attributes = Vec::new();
            for entry in scan.by_ref() {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(error) => {
                        *guard = None;
                        return Err(error);
                    }
                };
                ids.push(entry.id as i64);
                vectors.extend_from_slice(&entry.vector);
                if with_attributes {
                    attributes.push(entry.attributes);
                }
                if ids.len() == batch_size {
                    break;
                }
            }
            if ids.is_empty() {
                *guard = None;
                return Ok(None);
            }
            Ok(Some((ids, vectors, attributes)))
        });
        let Some((ids, vectors, attributes)) = batch.py_err()? else {
            return Ok(None);
        };
        let ids = numpy::IntoPyArray::into_pyarray(ids, py).into_any();
        let vectors = convert::matrix(py, vectors, dim)?.into_any();
        let attributes = if with_attributes {
            let dicts = attributes
                .iter()
                .map(|a| convert::attributes_dict(py, a))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, dicts)?.into_any()
        } else {
            py.None().into_bound(py)
        };
        Ok(Some(PyTuple::new(py, [ids, vectors, attributes])?))
    }
}
