//! Data-parallel work on the current rayon pool: the embedder's (inside
//! `ThreadPool::install`, as the engine runs builds and training) or rayon's global pool. One
//! pool for every crate's parallel work, sized by whoever embeds the engine.

use rayon::prelude::*;

/// Threads of the current pool: the default for work split "one part per thread".
pub fn current_threads() -> usize {
    rayon::current_num_threads()
}

/// `f` over every item on the current pool; results in the items' order, whatever thread ran
/// each (so results that depend only on the items are the same for any pool size).
pub fn map_all<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    items.into_par_iter().map(f).collect()
}
