//! Per-search buffers, pooled so that a steady-state search allocates nothing.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use strata_quantize::Visited;

/// A row with its distance to the query; ordered by distance, then row, so heaps are
/// deterministic under ties.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub distance: f32,
    pub row: u32,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // Distances are never NaN (inputs are checked finite), so the plain comparison is a
        // total order here and cheaper than `total_cmp` in the heaps' inner loops.
        match self.distance.partial_cmp(&other.distance) {
            Some(Ordering::Equal) | None => self.row.cmp(&other.row),
            Some(order) => order,
        }
    }
}

/// Everything one search or insert needs besides the graph.
#[derive(Debug, Default)]
pub struct Scratch {
    /// 8-bit marks: a memtable is bounded by its flush budget, so the clears every 255
    /// searches stay cheap, and the marks cost half the memory.
    pub visited: Visited<u8>,
    /// Unvisited neighbours of the row being expanded.
    pub fresh: Vec<u32>,
    /// Frontier: nearest first.
    pub candidates: BinaryHeap<Reverse<Scored>>,
    /// Best found so far: farthest on top, at most `ef`.
    pub results: BinaryHeap<Scored>,
    /// `results` drained in ascending order.
    pub sorted: Vec<Scored>,
    /// Neighbours chosen by the selection heuristic.
    pub selected: Vec<Scored>,
    /// Candidates when pruning a neighbour's list.
    pub prune: Vec<Scored>,
    pub prune_selected: Vec<Scored>,
    /// The query, normalized for cosine.
    pub query: Vec<f32>,
    /// Candidates `(id, distance)` of exhaustive scans (when `ef` covers every row).
    pub exact_sorted: Vec<strata_quantize::Neighbor>,
}

impl Scratch {
    /// Drains `results` into `sorted`, nearest first.
    pub fn sort_results(&mut self) {
        self.sorted.clear();
        self.sorted.extend(self.results.drain());
        self.sorted.sort_unstable();
    }
}
