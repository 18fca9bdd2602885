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

/// Threads `pool` runs on (read without submitting work to it).
pub(crate) fn threads(pool: &Pool) -> usize {
    match pool {
        Some(pool) => pool.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}

/// The pool compactions build on (codec training, encoding, graph linking): the engine's own,
/// never the embedder's. A thread of the embedder's pool may block on the engine (a commit
/// stalled behind a compaction backlog, `compact` waiting for the compaction lock); were the
/// build on that pool, every one of its threads could be waiting for the build they hold up.
/// Sized like the handle's pool; handles without a pool of their own share one.
pub(crate) fn build_pool(pool: &Pool) -> Result<Arc<rayon::ThreadPool>> {
    static SHARED: std::sync::OnceLock<Arc<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let build = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("strata-build-{i}"))
            .build()
            .map(Arc::new)
            .map_err(|e| {
                Error::Storage(strata_storage::Error::Io {
                    op: "start the build threads",
                    key: String::new(),
                    source: std::io::Error::other(e.to_string()),
                })
            })
    };
    match pool {
        Some(pool) => build(pool.current_num_threads()),
        None => {
            if let Some(shared) = SHARED.get() {
                return Ok(Arc::clone(shared));
            }
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            Ok(Arc::clone(SHARED.get_or_init(|| {
                build(threads).unwrap_or_else(|_| {
                    // Without threads to spare, the build runs on one (a pool of one always starts
                    // unless the process is out of threads, when nothing else would run either).
                    Arc::new(
                        rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a thread"),
                    )
                })
            })))
        }
    }
}

/// Whether this thread is a rayon worker. Such a thread must not block waiting for work that
/// itself needs a rayon thread (a compaction's build): while it waits it is not running jobs,
/// and every worker of the pool may be waiting alike.
pub(crate) fn on_a_pool_thread() -> bool {
    rayon::current_thread_index().is_some()
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
