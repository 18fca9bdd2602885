//! The reads `Db` and `Snapshot` share (search, get, get_many, get_attributes, contains),
//! written once over the engine type behind each.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use strata::{Attributes, Db, Neighbor, SearchParams, Snapshot};

use crate::convert::{self, Vectors};
use crate::errors::{IntoPy, invalid};
use crate::settings::Search;

/// What a Python read needs of a handle or a snapshot.
pub trait Source: Send + Sync {
    fn dim(&self) -> usize;
    fn search_one(&self, query: &[f32], params: SearchParams) -> strata::Result<Vec<Neighbor>>;
    fn search_many(
        &self,
        queries: &[f32],
        params: SearchParams,
    ) -> strata::Result<Vec<Vec<Neighbor>>>;
    fn vector(&self, id: u64) -> strata::Result<Option<Vec<f32>>>;
    fn vectors(&self, ids: &[u64]) -> strata::Result<Vec<Option<Vec<f32>>>>;
    fn attributes(&self, id: u64) -> strata::Result<Option<Attributes>>;
    fn holds(&self, id: u64) -> strata::Result<bool>;
}

impl Source for Db {
    fn dim(&self) -> usize {
        Db::dim(self)
    }
    fn search_one(&self, query: &[f32], params: SearchParams) -> strata::Result<Vec<Neighbor>> {
        self.search_with(query, params)
    }
    fn search_many(
        &self,
        queries: &[f32],
        params: SearchParams,
    ) -> strata::Result<Vec<Vec<Neighbor>>> {
        self.search_batch(queries, params)
    }
    fn vector(&self, id: u64) -> strata::Result<Option<Vec<f32>>> {
        self.get(id)
    }
    fn vectors(&self, ids: &[u64]) -> strata::Result<Vec<Option<Vec<f32>>>> {
        self.get_many(ids)
    }
    fn attributes(&self, id: u64) -> strata::Result<Option<Attributes>> {
        self.get_attributes(id)
    }
    fn holds(&self, id: u64) -> strata::Result<bool> {
        Ok(self.contains(id))
    }
}

impl Source for Snapshot {
    fn dim(&self) -> usize {
        Snapshot::dim(self)
    }
    fn search_one(&self, query: &[f32], params: SearchParams) -> strata::Result<Vec<Neighbor>> {
        self.search_with(query, params)
    }
    fn search_many(
        &self,
        queries: &[f32],
        params: SearchParams,
    ) -> strata::Result<Vec<Vec<Neighbor>>> {
        self.search_batch(queries, params)
    }
    fn vector(&self, id: u64) -> strata::Result<Option<Vec<f32>>> {
        self.get(id)
    }
    fn vectors(&self, ids: &[u64]) -> strata::Result<Vec<Option<Vec<f32>>>> {
        self.get_many(ids)
    }
    fn attributes(&self, id: u64) -> strata::Result<Option<Attributes>> {
        self.get_attributes(id)
    }
    fn holds(&self, id: u64) -> strata::Result<bool> {
        self.contains(id)
    }
}

/// Queries checked against the source's dimension.
fn queries<'py>(queries: &Bound<'py, PyAny>, dim: usize) -> PyResult<Vectors<'py>> {
    let queries = convert::vectors(queries, "queries")?;
    if queries.dim != dim && queries.rows > 0 {
        return Err(invalid(format!("queries have dimension {}, the database {dim}", queries.dim)));
    }
    Ok(queries)
}

/// `(ids, distances)` of one query or a batch (see `Db.search`).
pub fn search<'py>(
    py: Python<'py>,
    source: &impl Source,
    queries_arg: &Bound<'py, PyAny>,
    search: Search,
) -> PyResult<Bound<'py, PyTuple>> {
    let params = search.params()?;
    let queries = queries(queries_arg, source.dim())?;
    let flat = queries.as_slice();
    let results = if queries.single {
        py.detach(|| source.search_one(flat, params).map(|r| vec![r]))
    } else {
        py.detach(|| source.search_many(flat, params))
    }
    .py_err()?;
    let (ids, distances) = convert::search_results(py, results, search.k, queries.single)?;
    PyTuple::new(py, [ids, distances])
}

pub fn get<'py>(
    py: Python<'py>,
    source: &impl Source,
    id: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let id = convert::one_id(id)?;
    let vector = py.detach(|| source.vector(id)).py_err()?;
    Ok(vector.map(|v| convert::vector_array(py, v).into_any()))
}

pub fn get_many<'py>(
    py: Python<'py>,
    source: &impl Source,
    ids: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let ids = convert::ids(ids)?;
    let ids = ids.as_slice();
    let vectors = py.detach(|| source.vectors(ids)).py_err()?;
    PyList::new(py, vectors.into_iter().map(|v| v.map(|v| convert::vector_array(py, v))))
}

pub fn get_attributes<'py>(
    py: Python<'py>,
    source: &impl Source,
    id: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let id = convert::one_id(id)?;
    let attributes = py.detach(|| source.attributes(id)).py_err()?;
    attributes.map(|a| convert::attributes_dict(py, &a)).transpose()
}

pub fn contains(py: Python<'_>, source: &impl Source, id: &Bound<'_, PyAny>) -> PyResult<bool> {
    let id = convert::one_id(id)?;
    py.detach(|| source.holds(id)).py_err()
}
