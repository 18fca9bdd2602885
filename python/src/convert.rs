//! Python values in and out: numpy arrays of vectors and ids (borrowed without a copy when
//! their layout allows), attribute dicts, search results.

use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyMemoryError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};
use strata::{AttrType, Attributes, Neighbor, Schema, Value};

use crate::errors::invalid;

/// The key of a record's payload in attribute dicts (as in the Arrow layout).
pub const PAYLOAD_KEY: &str = "_payload";

/// Float32 data: the caller's own buffer, or a copy when its layout is not row-major float32.
enum F32Data<'py> {
    Borrowed(PyReadonlyArrayDyn<'py, f32>),
    Owned(Vec<f32>),
}

/// One vector (`single`) or a batch of `rows` vectors of `dim` floats, row-major.
pub struct Vectors<'py> {
    data: F32Data<'py>,
    pub rows: usize,
    pub dim: usize,
    pub single: bool,
}

impl Vectors<'_> {
    pub fn as_slice(&self) -> &[f32] {
        match &self.data {
            // `vectors` only keeps C-contiguous arrays borrowed.
            F32Data::Borrowed(array) => array.as_slice().unwrap_or(&[]),
            F32Data::Owned(data) => data,
        }
    }
}

fn numpy<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyModule>> {
    py.import("numpy")
}

/// `obj` as an ndarray: itself, or `numpy.asarray(obj, dtype)` for lists and other sequences.
fn as_ndarray<'py>(
    obj: &Bound<'py, PyAny>,
    dtype: Option<&str>,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        return Ok(array.clone());
    }
    let converted = numpy(obj.py())?.call_method1("asarray", (obj, dtype))?;
    Ok(converted.cast_into::<PyUntypedArray>()?)
}

/// Vectors as the caller passes them: a 2-d float32 array (a batch), a 1-d one (one vector),
/// or a (nested) list of numbers. Other dtypes are refused rather than silently converted.
pub fn vectors<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Vectors<'py>> {
    let py = obj.py();
    let array = as_ndarray(obj, Some("float32"))?;
    let dtype = array.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<f32>(py)) {
        return Err(PyTypeError::new_err(format!(
            "{what} must be float32, got a {dtype} array; convert with np.asarray({what}, dtype=np.float32)"
        )));
    }
    let (rows, dim, single) = match array.shape() {
        [dim] => (1, *dim, true),
        [rows, dim] => (*rows, *dim, false),
        shape => {
            return Err(invalid(format!(
                "{what} must be one vector (1-d) or a batch (2-d), got shape {shape:?}"
            )));
        }
    };
    let array = array.cast::<PyArrayDyn<f32>>()?.readonly();
    // `as_slice` also accepts Fortran order, whose flat order is not row-major.
    let data = if array.is_c_contiguous() && array.as_slice().is_ok() {
        F32Data::Borrowed(array)
    } else {
        F32Data::Owned(array.as_array().iter().copied().collect())
    };
    Ok(Vectors { data, rows, dim, single })
}

/// Ids: one int (`single`), or a 1-d array or sequence of non-negative integers. A C-contiguous
/// uint64 array is borrowed; anything else is copied.
pub struct Ids<'py> {
    data: IdData<'py>,
    pub single: bool,
}

enum IdData<'py> {
    Borrowed(PyReadonlyArrayDyn<'py, u64>),
    Owned(Vec<u64>),
}

impl Ids<'_> {
    pub fn as_slice(&self) -> &[u64] {
        match &self.data {
            IdData::Borrowed(array) => array.as_slice().unwrap_or(&[]),
            IdData::Owned(ids) => ids,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }
}

pub fn ids<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Ids<'py>> {
    let py = obj.py();
    if obj.is_instance_of::<PyInt>() {
        let id = one_id(obj)?;
        return Ok(Ids { data: IdData::Owned(vec![id]), single: true });
    }
    if obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "ids must be integers, got {}",
            obj.get_type().name()?
        )));
    }
    let array = as_ndarray(obj, None)?;
    let kind = array.dtype().kind();
    if array.len() == 0 && array.ndim() == 1 {
        return Ok(Ids { data: IdData::Owned(Vec::new()), single: false });
    }
    if kind != b'i' && kind != b'u' {
        return Err(PyTypeError::new_err(format!(
            "ids must be integers, got a {} array",
            array.dtype()
        )));
    }
    let single = match array.ndim() {
        0 => true,
        1 => false,
        n => return Err(invalid(format!("ids must be 1-d, got a {n}-d array"))),
    };
    if array.dtype().is_equiv_to(&numpy::dtype::<u64>(py)) {
        let array = array.cast::<PyArrayDyn<u64>>()?.readonly();
        if array.is_c_contiguous() && array.as_slice().is_ok() {
            return Ok(Ids { data: IdData::Borrowed(array), single });
        }
        let ids = array.as_array().iter().copied().collect();
        return Ok(Ids { data: IdData::Owned(ids), single });
    }
    if kind == b'u' {
        let wide = array.call_method1("astype", ("uint64",))?;
        let wide = wide.cast::<PyArrayDyn<u64>>()?.readonly();
        let ids = wide.as_array().iter().copied().collect();
        return Ok(Ids { data: IdData::Owned(ids), single });
    }
    let wide = array.call_method1("astype", ("int64",))?;
    let wide = wide.cast::<PyArrayDyn<i64>>()?.readonly();
    let ids = wide
        .as_array()
        .iter()
        .map(|&id| u64::try_from(id).map_err(|_| invalid(format!("ids must be >= 0, got {id}"))))
        .collect::<PyResult<Vec<u64>>>()?;
    Ok(Ids { data: IdData::Owned(ids), single })
}

/// One id (an int, a numpy integer).
pub fn one_id(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err("an id must be an integer, got a bool"));
    }
    match obj.extract::<i128>() {
        Ok(id) => {
            u64::try_from(id).map_err(|_| invalid(format!("an id must be in 0..2**64, got {id}")))
        }
        Err(_) => Err(PyTypeError::new_err(format!(
            "an id must be an integer, got {}",
            obj.get_type().name()?
        ))),
    }
}

/// One record's attributes from a dict (`None` or `{}`: none), typed by the schema.
pub fn attributes(obj: &Bound<'_, PyAny>, schema: &Schema) -> PyResult<Attributes> {
    let mut attributes = Attributes::new();
    if obj.is_none() {
        return Ok(attributes);
    }
    let dict = obj.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "attributes must be a dict, got {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    for (key, value) in dict.iter() {
        let name: String =
            key.extract().map_err(|_| PyTypeError::new_err("attribute names must be strings"))?;
        if value.is_none() {
            continue;
        }
        if name == PAYLOAD_KEY {
            let bytes: Vec<u8> = value
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("{PAYLOAD_KEY} must be bytes")))?;
            attributes = attributes.payload(bytes);
            continue;
        }
        let ty = schema.column(&name).map(|(_, column)| column.ty);
        let value = attribute_value(&name, &value, ty)?;
        attributes = attributes.set(name, value);
    }
    Ok(attributes)
}

/// One attribute's value, as its column's type wants it.
fn attribute_value(name: &str, value: &Bound<'_, PyAny>, ty: Option<AttrType>) -> PyResult<Value> {
    let wrong = |expected: &str| {
        let found = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        invalid(format!("attribute {name:?} expected {expected}, found {found} {value}"))
    };
    let is_bool =
        value.is_instance_of::<PyBool>() || value.get_type().name().is_ok_and(|n| n == "bool_");
    Ok(match ty {
        Some(AttrType::U64) if !is_bool => {
            Value::U64(value.extract().map_err(|_| wrong("an unsigned integer (u64)"))?)
        }
        Some(AttrType::I64) if !is_bool => {
            Value::I64(value.extract().map_err(|_| wrong("an integer (i64)"))?)
        }
        Some(AttrType::F64) if !is_bool => {
            Value::F64(value.extract().map_err(|_| wrong("a number (f64)"))?)
        }
        Some(AttrType::Bool) if is_bool => {
            Value::Bool(value.extract().map_err(|_| wrong("a bool"))?)
        }
        Some(AttrType::Keyword) => {
            Value::Keyword(value.extract().map_err(|_| wrong("a string (keyword)"))?)
        }
        Some(AttrType::Keywords) => {
            if value.is_instance_of::<PyString>() {
                return Err(wrong("a list of strings (keywords)"));
            }
            Value::Keywords(value.extract().map_err(|_| wrong("a list of strings (keywords)"))?)
        }
        Some(AttrType::U64) => return Err(wrong("an unsigned integer (u64)")),
        Some(AttrType::I64) => return Err(wrong("an integer (i64)")),
        Some(AttrType::F64) => return Err(wrong("a number (f64)")),
        Some(AttrType::Bool) => return Err(wrong("a bool")),
        None => return Err(invalid(format!("unknown attribute {name:?}"))),
    })
}

/// Attribute dicts for `rows` records: one dict for a single record, a list of dicts (or
/// `None`s) for a batch.
pub fn attribute_rows(
    obj: &Bound<'_, PyAny>,
    rows: usize,
    single: bool,
    schema: &Schema,
) -> PyResult<Vec<Attributes>> {
    if single && !obj.is_instance_of::<PyList>() {
        return Ok(vec![attributes(obj, schema)?]);
    }
    let list: Vec<Bound<'_, PyAny>> = obj.extract().map_err(|_| {
        PyTypeError::new_err("attributes of a batch must be a list of dicts (one per row)")
    })?;
    if list.len() != rows {
        return Err(invalid(format!(
            "{rows} rows but {} attribute dicts: give one per row (None for none)",
            list.len()
        )));
    }
    list.iter().map(|row| attributes(row, schema)).collect()
}

/// A record's attributes as a dict (the payload, if any, under `_payload` as bytes).
pub fn attributes_dict<'py>(
    py: Python<'py>,
    attributes: &Attributes,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in attributes.values() {
        match value {
            Value::U64(v) => dict.set_item(name, v)?,
            Value::I64(v) => dict.set_item(name, v)?,
            Value::F64(v) => dict.set_item(name, v)?,
            Value::Bool(v) => dict.set_item(name, v)?,
            Value::Keyword(v) => dict.set_item(name, v)?,
            Value::Keywords(v) => dict.set_item(name, v)?,
        }
    }
    if let Some(payload) = attributes.payload_bytes() {
        dict.set_item(PAYLOAD_KEY, PyBytes::new(py, payload))?;
    }
    Ok(dict)
}

/// `(ids, distances)` arrays: shape `(k,)` for a single query, `(queries, k)` for a batch;
/// rows with fewer than `k` results padded with id -1 and distance +inf. Ids are int64 (an id
/// past 2**63 - 1 reads as negative; `ids.view(np.uint64)` recovers it).
pub fn search_results<'py>(
    py: Python<'py>,
    results: Vec<Vec<Neighbor>>,
    k: usize,
    single: bool,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let queries = results.len();
    let cells = queries.checked_mul(k).ok_or_else(|| too_large(queries, k))?;
    let mut ids = filled(cells, -1i64).ok_or_else(|| too_large(queries, k))?;
    let mut distances = filled(cells, f32::INFINITY).ok_or_else(|| too_large(queries, k))?;
    let (ids, distances) = py.detach(|| {
        for (row, neighbors) in results.iter().enumerate() {
            for (slot, neighbor) in neighbors.iter().take(k).enumerate() {
                ids[row * k + slot] = neighbor.id as i64;
                distances[row * k + slot] = neighbor.distance;
            }
        }
        (ids, distances)
    });
    if single {
        return Ok((ids.into_pyarray(py).into_any(), distances.into_pyarray(py).into_any()));
    }
    let shape = (queries, k);
    let ids = Array2::from_shape_vec(shape, ids).map_err(|e| invalid(e.to_string()))?;
    let distances = Array2::from_shape_vec(shape, distances).map_err(|e| invalid(e.to_string()))?;
    Ok((
        PyArray2::from_owned_array(py, ids).into_any(),
        PyArray2::from_owned_array(py, distances).into_any(),
    ))
}

/// `len` copies of `value`, or `None` where the allocation fails: a huge `k` is the caller's
/// input, and an infallible allocation would abort the interpreter instead of raising.
fn filled<T: Copy>(len: usize, value: T) -> Option<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(len).ok()?;
    out.resize(len, value);
    Some(out)
}

fn too_large(queries: usize, k: usize) -> PyErr {
    PyMemoryError::new_err(format!(
        "{queries} queries x k={k} results do not fit in memory; ask for a smaller k"
    ))
}

/// A vector as a 1-d float32 array (owning the engine's copy, without another).
pub fn vector_array<'py>(py: Python<'py>, vector: Vec<f32>) -> Bound<'py, PyArray1<f32>> {
    vector.into_pyarray(py)
}

/// `rows` vectors of `dim` floats as a `(rows, dim)` float32 array.
pub fn matrix<'py>(
    py: Python<'py>,
    data: Vec<f32>,
    dim: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let rows = data.len().checked_div(dim).unwrap_or(0);
    let array = Array2::from_shape_vec((rows, dim), data).map_err(|e| invalid(e.to_string()))?;
    Ok(PyArray2::from_owned_array(py, array))
}
