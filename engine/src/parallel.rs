//! The handle's thread pool and the work spread over it.

use std::sync::Arc;

use rayon::prelude::*;
use strata_memtable::validate_vector;
use strata_quantize::{Metric, Neighbor};

use crate::{Error, Result};

/// The pool a handle's parallel work runs on: its own (`DbBuilder::threads` /
/// `thread_pool`), or rayon's global pool.
pub(crate) type Pool = Option<Arc<rayon::ThreadPool>>;

/// Runs `work` on `pool` (so rayon's parallel iterators inside it use that pool).
pub(crate) fn install<R: Send>(pool: &Pool, work: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// Threads `pool` runs on.
pub(crate) fn threads(pool: &Pool) -> usize {
    install(pool, rayon::current_num_threads)
}

/// Queries a batch task takes at a time: enough to amortize the task, few enough that two
/// threads share a batch of 100 evenly.
const QUERIES_PER_TASK: usize = 8;

/// Searches every `dim`-float query of `queries` with `search` on `pool`, results in query
/// order. Every query is validated before any is searched; a bad one is named by its index.
pub(crate) fn search_batch(
    pool: &Pool,
    dim: usize,
    metric: Metric,
    queries: &[f32],
    search: impl Fn(&[f32]) -> Result<Vec<Neighbor>> + Sync,
) -> Result<Vec<Vec<Neighbor>>> {
    if dim == 0 || !queries.len().is_multiple_of(dim) {
        return Err(Error::InvalidQueryBatch { floats: queries.len(), dim });
    }
    for (row, query) in queries.chunks_exact(dim).enumerate() {
        validate_vector(dim, metric, query).map_err(|source| Error::InvalidRow {
            row,
            id: None,
            source: Box::new(source.into()),
        })?;
    }
    install(pool, || {
        queries.par_chunks_exact(dim).with_min_len(QUERIES_PER_TASK).map(&search).collect()
    })
}
