//! The graph walk every search and the build's calibration share: a best-first beam search
//! over the codes in RAM, expanding each candidate's node for its exact distance.

use strata_quantize::{Admission, Codec, Metric};

use crate::Result;
use crate::reader::{SearchScratch, SearchStats};

/// Where a walk reads each row's full vector and neighbour list: a segment's mapped nodes, or
/// a build's graph in memory.
pub(crate) trait Nodes {
    fn node(&self, row: u32) -> Result<(&[f32], &[u32])>;
    /// A hint that `row` is read soon.
    fn prefetch_node(&self, row: u32);
    /// Sectors one node occupies on disk (for the stats).
    fn sectors_per_node(&self) -> u32;
}

/// A walk's view of a segment: its nodes, its codes, its medoid.
pub(crate) struct WalkIndex<'a, N: ?Sized> {
    pub nodes: &'a N,
    pub codec: &'a Codec,
    pub codes: &'a [u8],
    pub medoid: u32,
    pub rows: usize,
    pub metric: Metric,
}

impl<N: ?Sized> WalkIndex<'_, N> {
    #[inline]
    fn code(&self, row: u32) -> &[u8] {
        let len = self.codec.code_len();
        &self.codes[row as usize * len..(row as usize + 1) * len]
    }
}

/// How far one beam search walks: its list size, its beam width, the code distance past
/// which a bounded search may stop (the reader's `bound_cutoff`), and where it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walk {
    pub search_list: usize,
    pub beam_width: usize,
    pub cutoff: f32,
    pub start: Start,
    /// Bounded codes: skip an expanded node's exact distance when its lower bound at this
    /// confidence is beyond the k-th best (`SearchParams::rerank_confidence`).
    pub confidence: f32,
}

/// A walk inside the admitted rows goes two hops from a row with fewer admitted neighbours.
const TWO_HOP_BELOW: usize = 16;

/// Where a walk starts and which rows it may walk through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// From the medoid, through every row, admitted or not (the graph stays connected around
    /// deleted and filtered-out rows).
    Medoid,
    /// From the rows in `scratch.seeds` (admitted ones), through admitted rows only: a walk
    /// inside a filter's matching rows, for a filter whose matches lie away from the query.
    /// Where the matches form a region of the space, the graph among them stays connected and
    /// the walk descends to the region's rows nearest the query.
    WithinAdmitted,
    /// As `Medoid`, but never through `row`: the build's calibration searches for a row of the
    /// graph as a query that is not in it (through its own list, a row's neighbours are one
    /// hop away; a query's are not).
    MedoidAvoiding(u32),
}

/// Walks the graph from its start for `query`, pushing every expanded row that `admission`
/// admits into `scratch.best` by exact distance; returns whether a bounded walk stopped at
/// its cutoff.
pub(crate) fn beam_search<N: Nodes>(
    index: &WalkIndex<'_, N>,
    query: &[f32],
    Walk { search_list, beam_width, cutoff, start, confidence }: Walk,
    admission: &impl Admission,
    scratch: &mut SearchScratch,
    stats: &mut SearchStats,
) -> Result<bool> {
    let SearchScratch {
        list, visited, query: prepared, beam, pending, distances, best, seeds, ..
    } = scratch;
    // The nearest code distance expanded so far: once the next candidate is no nearer, the
    // greedy descent has reached its local minimum.
    let mut nearest_expanded = f32::INFINITY;
    // A floor under a bounded walk that grows with the list, so a longer list still buys
    // recall.
    let least_hops = (search_list / 4) as u64;
    let prepared = index.codec.prepare(query, prepared);
    let bounded = prepared.has_bounds() && confidence.is_finite();
    list.reset(search_list);
    visited.reset(index.rows);
    let within = start == Start::WithinAdmitted;
    // The first round scores the walk's start: the medoid, or the seeds (the list keeps the
    // nearest of them).
    pending.clear();
    if let Start::MedoidAvoiding(row) = start {
        visited.insert(row);
    }
    if within {
        let fresh = |row: &u32| (*row as usize) < index.rows && visited.insert(*row);
        pending.extend(seeds.iter().copied().filter(fresh));
    } else {
        visited.insert(index.medoid);
        pending.push(index.medoid);
    }
    loop {
        distances.clear();
        distances.resize(pending.len(), 0.0);
        prepared.distances_of_rows(index.codes, pending, distances);
        stats.code_distances += pending.len() as u64;
        for (&next, &distance) in pending.iter().zip(distances.iter()) {
            if distance < list.bound() {
                list.insert(next, distance);
            }
        }
        beam.clear();
        while beam.len() < beam_width {
            match list.expand_next() {
                Some(candidate)
                    if candidate.distance > cutoff
                        && candidate.distance >= nearest_expanded
                        && stats.hops >= least_hops =>
                {
                    return Ok(true);
                }
                Some(candidate) => {
                    nearest_expanded = nearest_expanded.min(candidate.distance);
                    beam.push((candidate.row, candidate.distance));
                }
                None => break,
            }
        }
        if beam.is_empty() {
            return Ok(false);
        }
        pending.clear();
        // The next round most likely expands the list's next candidate: start loading its
        // node now, under this round's distance computations.
        if let Some(next) = list.peek_unexpanded() {
            index.nodes.prefetch_node(next);
        }
        for &(row, code_distance) in beam.iter() {
            let (vector, neighbors) = index.nodes.node(row)?;
            stats.hops += 1;
            stats.sectors_read += u64::from(index.nodes.sectors_per_node());
            if !admission.admits(row) {
                stats.walked_not_admitted += 1;
            } else if bounded
                && best.worst().is_some_and(|worst| {
                    let bound = prepared.error_bound(index.code(row)).unwrap_or(0.0);
                    code_distance - confidence * bound > worst
                })
            {
                // Its code rules it out of the top k: its vector is never read.
                stats.exact_skipped += 1;
            } else {
                best.push(u64::from(row), index.metric.distance(query, vector));
            }
            if !within {
                for &next in neighbors {
                    if visited.insert(next) {
                        strata_quantize::prefetch(index.code(next));
                        pending.push(next);
                    }
                }
                continue;
            }
            // Inside the admitted rows: where few neighbours are admitted, go two hops through
            // the others (ACORN-1's expansion), so a region's rows stay connected.
            let admitted = neighbors.iter().filter(|&&next| admission.admits(next)).count();
            let two_hop = admitted < TWO_HOP_BELOW;
            for &next in neighbors {
                if !visited.insert(next) {
                    continue;
                }
                if admission.admits(next) {
                    strata_quantize::prefetch(index.code(next));
                    pending.push(next);
                } else if two_hop {
                    let (_, second) = index.nodes.node(next)?;
                    stats.sectors_read += u64::from(index.nodes.sectors_per_node());
                    stats.walked_not_admitted += 1;
                    for &far in second {
                        if admission.admits(far) && visited.insert(far) {
                            strata_quantize::prefetch(index.code(far));
                            pending.push(far);
                        }
                    }
                }
            }
        }
    }
}
