//! Keyword arguments into the engine's settings: `create(..., **options)` into `Options`, and a
//! search's keywords into `SearchParams`.

use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use strata::storage::ObjectStoreOptions;
use strata::{AttrType, CodecKind, Filter, Metric, Options, Schema, SearchParams};

use crate::errors::{IntoPy, invalid};

/// The stored options `create` accepts besides `dim` and `metric` (see `Options`).
pub const OPTION_NAMES: &[&str] = &[
    "attributes",
    "hnsw_m",
    "ef_construction",
    "keep_versions",
    "keep_for",
    "compaction_threshold",
    "diskann_min_rows",
    "deleted_rewrite_fraction",
    "vamana_codec",
    "vamana_max_degree",
    "compaction_memory_budget",
    "auto_flush_bytes",
    "background_compaction",
];

pub fn metric(name: &str) -> PyResult<Metric> {
    name.parse::<Metric>().map_err(|_| {
        invalid(format!("unknown metric {name:?}; expected \"l2\", \"ip\" or \"cosine\""))
    })
}

/// `Options` from `dim`, `metric` and the keyword arguments (each named in [`OPTION_NAMES`]).
pub fn options(
    dim: usize,
    metric_name: &str,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Options> {
    let mut options = Options::new(dim, metric(metric_name)?);
    let Some(kwargs) = kwargs else {
        return Ok(options);
    };
    for (key, value) in kwargs.iter() {
        let name: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        options = match name.as_str() {
            "attributes" => options.attributes(schema(&value)?),
            "hnsw_m" => options.hnsw_m(value.extract()?),
            "ef_construction" => options.hnsw_ef_construction(value.extract()?),
            "keep_versions" => options.keep_versions(value.extract()?),
            "keep_for" => options.keep_for(seconds("keep_for", &value)?),
            "compaction_threshold" => options.compaction_threshold(value.extract()?),
            "diskann_min_rows" => options.diskann_min_rows(value.extract()?),
            "deleted_rewrite_fraction" => options.deleted_rewrite_fraction(value.extract()?),
            "vamana_codec" => {
                let text: String = value.extract()?;
                let codec = text.parse::<CodecKind>().map_err(|_| {
                    invalid(format!(
                        "unknown codec {text:?}; expected sq8, int4, pq<n>, rpq<n> or rabitq<bits>"
                    ))
                })?;
                options.vamana_codec(codec)
            }
            "vamana_max_degree" => options.vamana_max_degree(value.extract()?),
            "compaction_memory_budget" => options.compaction_memory_budget(value.extract()?),
            "auto_flush_bytes" => options.auto_flush_bytes(Some(value.extract()?)),
            "background_compaction" => options.background_compaction(value.extract()?),
            other => {
                return Err(PyTypeError::new_err(format!(
                    "create() got an unexpected keyword argument '{other}'; options are: {}",
                    OPTION_NAMES.join(", ")
                )));
            }
        };
    }
    Ok(options)
}

/// A schema from `{"name": "type", ...}` or the text form `"name:type,name:type"`.
fn schema(value: &Bound<'_, PyAny>) -> PyResult<Schema> {
    if value.is_instance_of::<PyString>() {
        let text: String = value.extract()?;
        return Schema::parse(&text).map_err(strata::Error::from).py_err();
    }
    let dict = value.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err("attributes must map names to types, e.g. {\"lang\": \"keyword\"}")
    })?;
    let mut schema = Schema::new();
    for (name, ty) in dict.iter() {
        let name: String = name.extract()?;
        let ty: String = ty.extract()?;
        let ty = AttrType::from_name(&ty).ok_or_else(|| {
            invalid(format!(
                "unknown type {ty:?} for attribute {name:?}; expected u64, i64, f64, bool, keyword or keywords"
            ))
        })?;
        schema = schema.with(name, ty);
    }
    schema.validate().map_err(strata::Error::from).py_err()?;
    Ok(schema)
}

/// A duration given in seconds (int or float).
pub fn seconds(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let seconds: f64 = value.extract()?;
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        invalid(format!("{name} must be a non-negative number of seconds, got {seconds}"))
    })
}

/// A search's keyword arguments.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub k: usize,
    pub ef: Option<usize>,
    pub l: Option<usize>,
    pub recall: Option<f32>,
    pub filter: Option<String>,
    pub exact: bool,
    pub radius: Option<f32>,
}

impl Search {
    pub fn params(&self) -> PyResult<SearchParams> {
        let mut params =
            if self.exact { SearchParams::exact(self.k) } else { SearchParams::new(self.k) };
        if let Some(ef) = self.ef {
            params = params.ef(ef);
        }
        if let Some(l) = self.l {
            params = params.search_list(l);
        }
        if let Some(recall) = self.recall {
            params = params.recall(recall);
        }
        if let Some(text) = &self.filter {
            let filter = Filter::parse(text).map_err(strata::Error::from).py_err()?;
            params = params.filter(filter);
        }
        if let Some(radius) = self.radius {
            if radius.is_nan() {
                return Err(invalid("radius must be a distance, got NaN"));
            }
            params = params.within(radius);
        }
        Ok(params)
    }
}

/// The keys `storage_options` accepts (see `ObjectStoreOptions`).
pub const STORAGE_OPTION_NAMES: &[&str] = &[
    "endpoint",
    "allow_http",
    "region",
    "access_key_id",
    "secret_access_key",
    "cache_dir",
    "cache_budget",
    "verify_cache",
    "part_size",
    "max_retries",
    "retry_timeout",
    "request_timeout",
    "check_bucket",
];

/// Object-store client options from a dict (`storage_options=`): endpoint, credentials, the
/// local segment cache, retries. The environment (`AWS_*`, `GOOGLE_*`) fills in the rest.
pub fn storage_options(dict: &Bound<'_, PyDict>) -> PyResult<ObjectStoreOptions> {
    let mut options = ObjectStoreOptions::new();
    let (mut key_id, mut secret) = (None::<String>, None::<String>);
    for (key, value) in dict.iter() {
        let name: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        options = match name.as_str() {
            "endpoint" => options.endpoint(value.extract::<String>()?),
            "allow_http" => options.allow_http(value.extract()?),
            "region" => options.region(value.extract::<String>()?),
            "access_key_id" => {
                key_id = Some(value.extract()?);
                options
            }
            "secret_access_key" => {
                secret = Some(value.extract()?);
                options
            }
            "cache_dir" => {
                let dir: String =
                    value.py().import("os")?.call_method1("fspath", (&value,))?.extract()?;
                options.cache_dir(dir)
            }
            "cache_budget" => options.cache_budget(value.extract()?),
            "verify_cache" => options.verify_cache(value.extract()?),
            "part_size" => options.part_size(value.extract()?),
            "max_retries" => options.max_retries(value.extract()?),
            "retry_timeout" => options.retry_timeout(seconds("retry_timeout", &value)?),
            "request_timeout" => options.request_timeout(seconds("request_timeout", &value)?),
            "check_bucket" => options.check_bucket(value.extract()?),
            other => {
                return Err(invalid(format!(
                    "unknown storage option '{other}'; options are: {}",
                    STORAGE_OPTION_NAMES.join(", ")
                )));
            }
        };
    }
    match (key_id, secret) {
        (Some(id), Some(secret)) => Ok(options.access_key(id, secret)),
        (None, None) => Ok(options),
        _ => Err(invalid("give access_key_id and secret_access_key together")),
    }
}
