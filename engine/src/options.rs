//! Database options (fixed at create time and stored in the manifest) and search parameters.

use std::time::Duration;

use strata_memtable::MAX_ROWS;
use strata_quantize::Metric;

use crate::{Error, Result};

/// How a database is created. Stored in its manifest: every later open uses the same values.
///
/// ```
/// use strata::{Metric, Options};
/// let options = Options::new(768, Metric::Cosine).hnsw_m(24).keep_versions(5);
/// assert_eq!(options.dim(), 768);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    pub(crate) hnsw_m: usize,
    pub(crate) hnsw_ef_construction: usize,
    pub(crate) keep_versions: u32,
    pub(crate) keep_for: Duration,
}

impl Options {
    /// Options for `dim`-dimensional vectors compared by `metric`, with every other setting at
    /// its default.
    pub fn new(dim: usize, metric: Metric) -> Self {
        Options {
            dim,
            metric,
            hnsw_m: 16,
            hnsw_ef_construction: 200,
            keep_versions: 10,
            keep_for: Duration::ZERO,
        }
    }

    /// HNSW links per node in the memtable (level 0 keeps twice as many). Default 16.
    #[must_use]
    pub fn hnsw_m(mut self, m: usize) -> Self {
        self.hnsw_m = m;
        self
    }

    /// HNSW candidate list size while inserting into the memtable. Default 200.
    #[must_use]
    pub fn hnsw_ef_construction(mut self, ef: usize) -> Self {
        self.hnsw_ef_construction = ef;
        self
    }

    /// Retention: garbage collection keeps the newest `n` versions (at least 1). Default 10.
    #[must_use]
    pub fn keep_versions(mut self, n: u32) -> Self {
        self.keep_versions = n;
        self
    }

    /// Retention: garbage collection also keeps every version committed within `age` of the
    /// moment it runs (stored in whole seconds, rounded up). Default zero (count-based
    /// retention only).
    #[must_use]
    pub fn keep_for(mut self, age: Duration) -> Self {
        self.keep_for = age;
        self
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |name, reason| Err(Error::InvalidOption { name, reason });
        if self.dim == 0 || self.dim > u32::MAX as usize / 4 {
            return invalid("dim", "must be between 1 and 2^30 - 1");
        }
        if !(2..=256).contains(&self.hnsw_m) {
            return invalid("hnsw_m", "must be between 2 and 256");
        }
        if self.hnsw_ef_construction == 0 || self.hnsw_ef_construction > u32::MAX as usize {
            return invalid("hnsw_ef_construction", "must be positive");
        }
        if self.keep_versions == 0 {
            return invalid("keep_versions", "must be at least 1");
        }
        Ok(())
    }
}

/// Most rows an active memtable takes before it is frozen into an in-memory tier and a fresh one
/// started (each graph stays fast to insert into). Well under the memtable's own limit.
pub(crate) const MEMTABLE_ROTATE_ROWS: usize =
    if MAX_ROWS / 4 < 1 << 20 { MAX_ROWS / 4 } else { 1 << 20 };

/// Parameters of one search.
///
/// ```
/// use strata::SearchParams;
/// let params = SearchParams::new(10).ef(200);
/// assert_eq!(params.k(), 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    pub(crate) k: usize,
    pub(crate) ef: usize,
}

impl SearchParams {
    /// Default candidate list size of the memtable graph search.
    pub const DEFAULT_EF: usize = 128;

    /// The `k` nearest records, every tier at its default effort.
    pub fn new(k: usize) -> Self {
        SearchParams { k, ef: Self::DEFAULT_EF }
    }

    /// The `k` nearest records, exactly: graph tiers scan every row.
    pub fn exact(k: usize) -> Self {
        SearchParams { k, ef: usize::MAX }
    }

    /// Candidate list size of graph (memtable) searches: higher is more accurate and slower;
    /// at least `k` is used. Default [`DEFAULT_EF`](Self::DEFAULT_EF). Flat segments are
    /// always searched exactly.
    #[must_use]
    pub fn ef(mut self, ef: usize) -> Self {
        self.ef = ef;
        self
    }

    /// Results wanted.
    pub fn k(&self) -> usize {
        self.k
    }
}
