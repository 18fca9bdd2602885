//! The Python exception classes and the mapping of every engine error onto them.
//!
//! The classes are made at import with `type(name, bases, namespace)` rather than PyO3's
//! `create_exception!`, because some have two bases: bad input is a `StrataError` *and* a
//! `ValueError`, so `except ValueError` catches it as Python users expect.

use pyo3::exceptions::{PyException, PyLookupError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use strata::errors::{FileError, ManifestError, SegmentError, StorageError, VamanaError};

/// One class per kind of failure a caller handles differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Base,
    InvalidInput,
    NotFound,
    AlreadyExists,
    Locked,
    ReadOnly,
    Conflict,
    Poisoned,
    Corruption,
    UnsupportedFormat,
    Storage,
    Cancelled,
    Closed,
}

/// Name, extra standard base and docstring of each class (all derive from `StrataError`).
const CLASSES: &[(Kind, &str, Option<Std>, &str)] = &[
    (Kind::Base, "StrataError", None, "Base class of every error Strata raises."),
    (
        Kind::InvalidInput,
        "InvalidInputError",
        Some(Std::Value),
        "Input the engine refuses: a wrong dimension, NaN or infinity, a mismatched batch, an \
         attribute of the wrong type or missing from the schema, filter text that does not \
         parse, an invalid option. Nothing was written.",
    ),
    (
        Kind::NotFound,
        "NotFoundError",
        Some(Std::Lookup),
        "No database at the location, or no such version (it was never committed, or garbage \
         collection removed it).",
    ),
    (
        Kind::AlreadyExists,
        "AlreadyExistsError",
        None,
        "create() found a database already there (open() it, or pass exist_ok=True).",
    ),
    (
        Kind::Locked,
        "LockedError",
        None,
        "Another handle (in this or another process) holds the directory's writer lock.",
    ),
    (Kind::ReadOnly, "ReadOnlyError", None, "A write on a read-only handle."),
    (
        Kind::Conflict,
        "ConflictError",
        None,
        "Another writer committed first (on an object store, where two writers can meet). The \
         handle refuses further writes: reopen it.",
    ),
    (
        Kind::Poisoned,
        "PoisonedError",
        None,
        "An earlier failure left the handle unable to write safely; its message names the \
         cause. Committed data is intact: reopen the database.",
    ),
    (
        Kind::Corruption,
        "CorruptionError",
        None,
        "Stored bytes fail their checksum or do not decode: a damaged or truncated file.",
    ),
    (
        Kind::UnsupportedFormat,
        "UnsupportedFormatError",
        None,
        "The database was written by a newer Strata (an unknown format version, codec or \
         metric).",
    ),
    (
        Kind::Storage,
        "StorageError",
        Some(Std::OS),
        "The storage failed: an I/O error, a full disk, an object store refusing or timing out.",
    ),
    (Kind::Cancelled, "CancelledError", None, "A long operation was cancelled."),
    (
        Kind::Closed,
        "ClosedError",
        None,
        "The handle was closed (close(), or the end of its `with` block).",
    ),
];

#[derive(Debug, Clone, Copy)]
enum Std {
    Value,
    Lookup,
    OS,
}

static TYPES: PyOnceLock<Vec<(Kind, Py<PyType>)>> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&Vec<(Kind, Py<PyType>)>> {
    TYPES.get_or_try_init(py, || {
        let type_type = py.get_type::<PyType>();
        let mut made: Vec<(Kind, Py<PyType>)> = Vec::with_capacity(CLASSES.len());
        for &(kind, name, extra, doc) in CLASSES {
            let mut bases = Vec::new();
            match made.first() {
                Some((_, base)) => bases.push(base.bind(py).clone()),
                None => bases.push(py.get_type::<PyException>()),
            }
            match extra {
                Some(Std::Value) => bases.push(py.get_type::<PyValueError>()),
                Some(Std::Lookup) => bases.push(py.get_type::<PyLookupError>()),
                Some(Std::OS) => bases.push(py.get_type::<PyOSError>()),
                None => {}
            }
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "strata")?;
            namespace.set_item("__doc__", doc)?;
            let class = type_type.call1((name, PyTuple::new(py, bases)?, namespace))?;
            made.push((kind, class.cast_into::<PyType>()?.unbind()));
        }
        Ok(made)
    })
}

/// Adds every class to the module.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    for ((_, name, _, _), (_, class)) in CLASSES.iter().zip(types(py)?) {
        module.add(*name, class.bind(py))?;
    }
    Ok(())
}

/// An exception of class `kind` with `message`.
pub fn raise(py: Python<'_>, kind: Kind, message: String) -> PyErr {
    match types(py) {
        Ok(classes) => {
            let class = classes.iter().find(|(k, _)| *k == kind).map(|(_, c)| c);
            match class {
                Some(class) => PyErr::from_type(class.bind(py).clone(), message),
                None => PyRuntimeError::new_err(message),
            }
        }
        Err(error) => error,
    }
}

/// The engine's error as the Python exception of its kind, with the engine's message.
pub fn to_py(error: strata::Error) -> PyErr {
    let kind = kind_of(&error);
    Python::attach(|py| raise(py, kind, error.to_string()))
}

/// The class a caller would want to catch `error` as.
pub fn kind_of(error: &strata::Error) -> Kind {
    use strata::Error as E;
    if error.is_corruption() {
        return Kind::Corruption;
    }
    match error {
        E::InvalidVector(_)
        | E::InvalidBatch { .. }
        | E::InvalidRow { .. }
        | E::InvalidArrow { .. }
        | E::InvalidQueryBatch { .. }
        | E::InvalidAttributeBatch { .. }
        | E::BatchTooLarge { .. }
        | E::InvalidOption { .. }
        | E::InvalidPlan { .. } => Kind::InvalidInput,
        E::Attribute(inner) => match inner {
            strata::errors::AttributeError::Corrupt(_) => Kind::Corruption,
            _ => Kind::InvalidInput,
        },
        E::NoVersionAt { .. } => Kind::NotFound,
        E::AlreadyExists { .. } => Kind::AlreadyExists,
        E::Conflict { .. } => Kind::Conflict,
        E::ReadOnly => Kind::ReadOnly,
        E::Poisoned { .. } => Kind::Poisoned,
        E::Cancelled => Kind::Cancelled,
        E::UnknownCodec { .. } | E::UnknownMetric { .. } => Kind::UnsupportedFormat,
        E::Manifest(ManifestError::NoDatabase | ManifestError::VersionNotFound { .. }) => {
            Kind::NotFound
        }
        E::Storage(inner) => storage_kind(inner),
        E::Manifest(ManifestError::Storage(inner)) => storage_kind(inner),
        E::Segment(SegmentError::File(FileError::Storage(inner)))
        | E::Vamana(VamanaError::File(FileError::Storage(inner))) => storage_kind(inner),
        _ => Kind::Base,
    }
}

fn storage_kind(error: &StorageError) -> Kind {
    match error {
        StorageError::Locked { .. } => Kind::Locked,
        // Opening a location that holds nothing (a missing file later is one too).
        StorageError::NotFound { .. } => Kind::NotFound,
        StorageError::Corrupt { .. } => Kind::Corruption,
        StorageError::UnsupportedVersion { .. } | StorageError::UnknownFeatures { .. } => {
            Kind::UnsupportedFormat
        }
        _ => Kind::Storage,
    }
}

/// Bad input found on the Python side (before the engine sees it).
pub fn invalid(message: impl Into<String>) -> PyErr {
    Python::attach(|py| raise(py, Kind::InvalidInput, message.into()))
}

/// A call on a closed handle.
pub fn closed() -> PyErr {
    Python::attach(|py| raise(py, Kind::Closed, "the database handle is closed".to_owned()))
}

/// Shorthand: the engine's result as a Python result.
pub trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for strata::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
