//! Per-search buffers, pooled so that a steady-state search allocates nothing.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

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

/// Which rows a search has seen, reset in O(1) by bumping an epoch.
#[derive(Debug, Default)]
pub struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Starts a new search over at least `rows` rows.
    pub fn reset(&mut self, rows: usize) {
        if self.marks.len() < rows {
            // Grow with headroom: the memtable keeps growing while it is searched.
            self.marks.resize(rows + rows / 4 + 64, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `row`; true if it was not yet seen in this search.
    #[inline]
    pub fn insert(&mut self, row: u32) -> bool {
        let row = row as usize;
        if row >= self.marks.len() {
            // A row inserted after this search started.
            self.marks.resize(row + row / 4 + 64, 0);
        }
        let mark = &mut self.marks[row];
        let fresh = *mark != self.epoch;
        *mark = self.epoch;
        fresh
    }
}

/// Everything one search or insert needs besides the graph.
#[derive(Debug, Default)]
pub struct Scratch {
    pub visited: Visited,
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
    /// Exhaustive scans (when `ef` covers every row).
    pub exact: strata_quantize::TopK,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visited_resets_by_epoch_and_survives_wraparound() {
        let mut visited = Visited::default();
        for round in 0..70_000u32 {
            visited.reset(10);
            assert!(visited.insert(round % 10), "round {round}");
            assert!(!visited.insert(round % 10));
        }
        assert!(visited.insert(1_000), "rows past the initial size grow the set");
        assert!(!visited.insert(1_000));
    }
}
