//! Measures a new segment's recall@10 against exact search at a ladder of list sizes, so a
//! search can ask for a recall level and each segment picks its own L: the L a segment needs
//! for the same recall grows with its size and with how clustered its data is (on the
//! clustered benchmarks 0.95 took L 16 at 100k rows and about L 150 at 1M).
//!
//! The queries are rows of the segment, sampled evenly, each searched with itself skipped;
//! the truth is an exact scan. The walk is the reader's own (`walk::beam_search`) over the
//! build's graph and codes in memory, so what is measured is what a search does.

use strata_quantize::rng::SplitMix64;
use strata_quantize::{AdmitIf, Codec, Metric, TopK};

use super::vamana::Graph;
use crate::reader::{SearchScratch, SearchStats};
use crate::walk::{Nodes, Start, Walk, WalkIndex, beam_search};

/// Rows sampled as queries.
pub(crate) const QUERIES: usize = 100;
/// The recall measured is recall@K.
pub(crate) const K: usize = 10;
/// List sizes tried, smallest first; the walk stops at the first that reaches `ENOUGH`.
/// Steps of at most a quarter up to 256: with 64-byte codes recall 0.95 falls near L 16-20 at
/// 1M rows, and a ladder that jumped from 16 to 24 made the default search pay for L 24
/// (0.978 at 9.6k q/s where L 20 gave 0.965 at 12k).
const LADDER: [usize; 24] = [
    10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256, 384, 512,
    768, 1024,
];
/// Recall past which a longer list is not measured.
const ENOUGH: f32 = 0.999;

/// One measured point: recall@10 at list size `search_list`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibrated {
    pub search_list: u32,
    pub recall: f32,
}

/// The build's vectors and graph, read as a segment's nodes.
struct InMemory<'a> {
    vectors: &'a [f32],
    dim: usize,
    graph: &'a Graph,
}

impl Nodes for InMemory<'_> {
    #[inline]
    fn node(&self, row: u32) -> crate::Result<(&[f32], &[u32])> {
        let start = row as usize * self.dim;
        Ok((&self.vectors[start..start + self.dim], self.graph.neighbors(row)))
    }

    fn prefetch_node(&self, _: u32) {}

    fn sectors_per_node(&self) -> u32 {
        1
    }
}

/// What a calibration measures over.
pub(crate) struct Segment<'a> {
    pub vectors: &'a [f32],
    pub dim: usize,
    pub metric: Metric,
    pub graph: &'a Graph,
    pub codec: &'a Codec,
    pub codes: &'a [u8],
    pub medoid: u32,
}

/// Recall@10 at each list size of the ladder, up to the first that reaches 0.999 or covers
/// every row; empty for a segment too small to need a graph search.
pub(crate) fn calibrate(segment: &Segment<'_>, seed: u64, threads: usize) -> Vec<Calibrated> {
    let Segment { vectors, dim, metric, graph, codec, codes, medoid } = *segment;
    let rows = vectors.len() / dim;
    if rows <= 2 * K {
        return Vec::new();
    }
    let queries = sample(rows, seed);
    let truth = exact(vectors, dim, metric, &queries, threads);
    let nodes = InMemory { vectors, dim, graph };
    let index = WalkIndex { nodes: &nodes, codec, codes, medoid, rows, metric };
    let order: Vec<usize> = (0..queries.len()).collect();
    let mut points = Vec::new();
    for search_list in LADDER {
        let walk = Walk {
            search_list: search_list.max(K),
            beam_width: 1,
            cutoff: f32::INFINITY,
            start: Start::Medoid,
            confidence: crate::DEFAULT_RERANK_CONFIDENCE,
        };
        let found = parallel(&order, threads, |chunk| {
            let mut scratch = SearchScratch::default();
            let mut hits = 0usize;
            for &i in chunk {
                let row = queries[i];
                let query = &vectors[row as usize * dim..(row as usize + 1) * dim];
                scratch.best.reset(K);
                let mut stats = SearchStats::default();
                let others = AdmitIf(|r: u32| r != row);
                let walk = Walk { start: Start::MedoidAvoiding(row), ..walk };
                beam_search(&index, query, walk, &others, &mut scratch, &mut stats)
                    .expect("in-memory nodes never fail");
                scratch.best.sorted_into(&mut scratch.sorted);
                hits += scratch.sorted.iter().filter(|n| truth[i].contains(&n.id)).count();
            }
            hits
        });
        let recall = found.iter().sum::<usize>() as f32 / (queries.len() * K) as f32;
        points.push(Calibrated { search_list: search_list as u32, recall });
        if recall >= ENOUGH || search_list >= rows {
            break;
        }
    }
    points
}

/// `QUERIES` distinct rows, one drawn from each of as many equal strides.
fn sample(rows: usize, seed: u64) -> Vec<u32> {
    let count = QUERIES.min(rows);
    let stride = rows / count;
    let mut rng = SplitMix64::new(seed, 0xCA11_B8A7);
    (0..count).map(|i| (i * stride + rng.below(stride)) as u32).collect()
}

/// Each query row's K nearest other rows, by a scan split over `threads`.
fn exact(
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    queries: &[u32],
    threads: usize,
) -> Vec<Vec<u64>> {
    let rows = vectors.len() / dim;
    let per_thread = rows.div_ceil(threads.max(1)).max(1);
    let ranges: Vec<(usize, usize)> = (0..rows)
        .step_by(per_thread)
        .map(|start| (start, (start + per_thread).min(rows)))
        .collect();
    let partial: Vec<Vec<TopK>> = strata_quantize::parallel::map_all(ranges, |(start, end)| {
        let mut tops: Vec<TopK> = queries.iter().map(|_| TopK::new(K)).collect();
        for row in start..end {
            let vector = &vectors[row * dim..(row + 1) * dim];
            for (top, &query) in tops.iter_mut().zip(queries) {
                if query as usize != row {
                    let q = &vectors[query as usize * dim..(query as usize + 1) * dim];
                    top.push(row as u64, metric.distance(q, vector));
                }
            }
        }
        tops
    });
    (0..queries.len())
        .map(|i| {
            let mut top = TopK::new(K);
            for tops in &partial {
                for n in tops[i].clone().into_sorted_vec() {
                    top.push(n.id, n.distance);
                }
            }
            top.into_sorted_vec().iter().map(|n| n.id).collect()
        })
        .collect()
}

/// `f` over `items` split into one chunk per thread; the chunks' results in order.
fn parallel<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let per_thread = items.len().div_ceil(threads.max(1)).max(1);
    strata_quantize::parallel::map_all(items.chunks(per_thread).collect(), &f)
}
