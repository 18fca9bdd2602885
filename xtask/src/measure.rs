//! What every index kind's benchmark shares: the `BenchIndex` trait the kinds implement, one
//! pass over a query set (`measure`), the percentile definition, process memory, and the
//! benchmark's database directory. The kinds (`bench_codes`, `bench_diskann`, `bench_engine`)
//! and the `bench` command depend on this module; it depends on none of them.

use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use strata_quantize::Neighbor;

use crate::exact::{ExactIndex, ExactScratch};
use crate::vecs::Vectors;

/// An index under measurement.
pub trait BenchIndex: Sync {
    /// Per-thread buffers that make a search allocation-free.
    type Scratch: Send;
    /// New buffers for one searching thread.
    fn scratch(&self) -> Self::Scratch;
    /// The `k` nearest neighbours of `query`, nearest first, into `out`.
    fn search(&self, query: &[f32], k: usize, scratch: &mut Self::Scratch, out: &mut Vec<Neighbor>);
    /// Bytes the index keeps resident.
    fn ram_bytes(&self) -> u64;
    /// Bytes the index keeps on disk.
    fn disk_bytes(&self) -> u64 {
        0
    }
    /// Applies the search parameter of a sweep point (ef, L, ...); kinds without one ignore it.
    fn set_sweep_point(&self, _point: usize) {}
    /// Figures the index counted while searching since the last sweep point, added to its row.
    fn sweep_stats(&self) -> Map<String, Value> {
        Map::new()
    }
    /// Every query in one batch call on the index's own pool (`bench --batch`), results in
    /// query order; `None` for a kind without a batch search.
    fn search_batch(&self, _queries: &Vectors<f32>, _k: usize) -> Option<Vec<Vec<Neighbor>>> {
        None
    }
}

impl BenchIndex for ExactIndex {
    type Scratch = ExactScratch;

    fn scratch(&self) -> ExactScratch {
        ExactIndex::scratch(self)
    }

    fn search(&self, query: &[f32], k: usize, scratch: &mut ExactScratch, out: &mut Vec<Neighbor>) {
        ExactIndex::search(self, query, k, scratch, out);
    }

    fn ram_bytes(&self) -> u64 {
        ExactIndex::ram_bytes(self) as u64
    }
}

/// The figures of one pass over the query set.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Search threads actually used: at most one per query.
    pub threads: usize,
    pub recall: f64,
    pub qps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Fraction of the true `k` nearest found among the `k` returned, over all queries.
/// Recall@k over the valid ground-truth entries: a filtered ground truth pads with -1 where
/// fewer than k rows match, and a query with no valid entry counts for nothing.
pub fn recall_at_k(found: &[u64], truth: &Vectors<i32>, k: usize) -> f64 {
    let (mut hits, mut wanted) = (0usize, 0usize);
    for (q, got) in found.chunks_exact(k).enumerate() {
        let expected = &truth.row(q)[..k];
        wanted += expected.iter().filter(|&&id| id >= 0).count();
        hits += got
            .iter()
            .filter(|&&id| {
                id != u64::MAX && id <= i32::MAX as u64 && expected.contains(&(id as i32))
            })
            .count();
    }
    if wanted == 0 { 1.0 } else { hits as f64 / wanted as f64 }
}

/// The `p`-quantile of `sorted` (ascending, not empty) by the nearest-rank definition: the
/// smallest value with at least a fraction `p` of the values at or below it. The one
/// definition every command reports percentiles by.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[rank]
}

/// Runs every query once on `threads` threads, each one query at a time.
pub fn measure<I: BenchIndex>(
    index: &I,
    queries: &Vectors<f32>,
    truth: &Vectors<i32>,
    k: usize,
    threads: usize,
) -> Measurement {
    let per_thread = queries.rows().div_ceil(threads.clamp(1, queries.rows()));
    // Rounding can leave fewer chunks than requested threads; the barrier must count the chunks.
    let threads = queries.rows().div_ceil(per_thread);
    let mut found = vec![u64::MAX; queries.rows() * k];
    let mut latencies = vec![Duration::ZERO; queries.rows()];
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let workers: Vec<_> = found
            .chunks_mut(per_thread * k)
            .zip(latencies.chunks_mut(per_thread))
            .enumerate()
            .map(|(t, (found, latencies))| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut scratch = index.scratch();
                    let mut out = Vec::with_capacity(k);
                    barrier.wait();
                    let start = Instant::now();
                    for (i, (slots, latency)) in
                        found.chunks_exact_mut(k).zip(latencies.iter_mut()).enumerate()
                    {
                        let query = queries.row(t * per_thread + i);
                        let began = Instant::now();
                        index.search(query, k, &mut scratch, &mut out);
                        *latency = began.elapsed();
                        for (slot, n) in slots.iter_mut().zip(&out) {
                            *slot = n.id;
                        }
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("search thread panicked")).collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("one thread");
    let end = spans.iter().map(|s| s.1).max().expect("one thread");
    let mut micros: Vec<f64> = latencies.iter().map(|l| l.as_secs_f64() * 1e6).collect();
    micros.sort_unstable_by(f64::total_cmp);
    Measurement {
        threads,
        recall: recall_at_k(&found, truth, k),
        qps: queries.rows() as f64 / (end - start).as_secs_f64(),
        p50_us: percentile(&micros, 0.50),
        p99_us: percentile(&micros, 0.99),
    }
}

/// Runs every query in one batch call (the index spreads it over its pool), timed as a whole:
/// the latency figures are the batch's time per query. `None` for a kind without a batch search.
pub fn measure_batch<I: BenchIndex>(
    index: &I,
    queries: &Vectors<f32>,
    truth: &Vectors<i32>,
    k: usize,
    threads: usize,
) -> Option<Measurement> {
    let start = Instant::now();
    let results = index.search_batch(queries, k)?;
    let elapsed = start.elapsed().as_secs_f64();
    let mut found = vec![u64::MAX; queries.rows() * k];
    for (slots, hits) in found.chunks_exact_mut(k).zip(&results) {
        for (slot, n) in slots.iter_mut().zip(hits) {
            *slot = n.id;
        }
    }
    let per_query_us = elapsed * 1e6 / queries.rows().max(1) as f64;
    Some(Measurement {
        threads,
        recall: recall_at_k(&found, truth, k),
        qps: queries.rows() as f64 / elapsed,
        p50_us: per_query_us,
        p99_us: per_query_us,
    })
}

/// A `/proc/self/status` field in bytes (0 where unavailable).
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Peak resident set size of this process.
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// Current resident set size of this process.
pub fn current_rss_bytes() -> u64 {
    proc_status_bytes("VmRSS:")
}

/// Total size of the files under `dir`.
pub fn directory_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => directory_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// A directory for a benchmark database: `requested`, or a fresh one under target/bench-db that
/// the returned guard removes.
pub struct BenchDir {
    pub path: PathBuf,
    remove: bool,
}

impl BenchDir {
    pub fn new(requested: Option<&PathBuf>, name: &str) -> Self {
        match requested {
            Some(path) => BenchDir { path: path.clone(), remove: false },
            None => {
                let path =
                    PathBuf::from("target/bench-db").join(format!("{name}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&path);
                BenchDir { path, remove: true }
            }
        }
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_hits_in_the_true_top_k() {
        let truth = Vectors { dim: 3, data: vec![1, 2, 3, 4, 5, 6] };
        assert_eq!(recall_at_k(&[1, 2, 4, 6], &truth, 2), 0.75);
        assert_eq!(recall_at_k(&[2, 1, 5, 4], &truth, 2), 1.0);
        assert_eq!(recall_at_k(&[u64::MAX, 1, 9, 9], &truth, 2), 0.25);
    }

    /// Nearest rank: p50 of 1..=10 is 5, p99 is 10, and any p of one value is that value.
    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 5.0);
        assert_eq!(percentile(&values, 0.99), 10.0);
        assert_eq!(percentile(&values, 0.1), 1.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&values, 1.0), 10.0);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }
}
