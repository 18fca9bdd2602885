//! The HNSW algorithm over [`RowStore`]: greedy descent through the upper levels, best-first
//! search of a level, the diverse-neighbour heuristic, and insertion with back-link pruning.
//!
//! Every routine is generic over the SIMD level `S` and runs inside one
//! [`Kernels::dispatch`](strata_quantize::Kernels::dispatch), so its thousands of distance
//! computations are inlined kernels rather than dispatched calls. They are all
//! `#[inline(always)]` on purpose: a generic function that is not inlined into pulp's
//! `#[target_feature]` trampoline is compiled for the baseline ISA, and every SIMD operation in
//! it becomes a call (measured: build 3.7x slower than hnswlib before this).
//!
//! Concurrency: neighbour lists are arrays of atomics. A writer holds the row's lock, stores the
//! neighbours with Release and then the count with Release; readers load the count and the
//! neighbours with Acquire and take no lock. A reader racing a writer may see a mix of the old
//! and new list, but every id it can see is a published row, which is all a search needs.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicU32, Ordering};

use strata_quantize::{Metric, Simd, prefetch, prefetch_lines};

use crate::rows::{NO_UPPER, RowStore, UpperArena};
use crate::scratch::{Scored, Scratch};

/// The graph: rows, upper-level lists and parameters.
#[derive(Debug)]
pub struct Graph {
    pub metric: Metric,
    pub m: usize,
    pub m0: usize,
    pub ef_construction: usize,
    pub rows: RowStore,
    pub upper: UpperArena,
    pub prefetch: Prefetch,
}

/// How far a search reads ahead of the distances it computes: when it expands a row it first
/// drops the neighbours it has already visited, then keeps the first `lines` cache lines of the
/// next `ahead` remaining neighbours' vectors in flight. About 4 KiB in flight in all: at 128
/// dimensions that is whole vectors of 8 rows ahead, and at 768 the first 512 bytes of 8 rows,
/// which the hardware prefetcher then follows to the end of each vector. Measured on 100k
/// clustered rows against prefetching 256 bytes of the next neighbour, visited or not:
/// +27-35% q/s at 128-d, +4-6% at 768-d (see docs/BENCHMARKS.md).
#[derive(Debug, Clone, Copy)]
pub struct Prefetch {
    lines: usize,
    ahead: usize,
}

impl Prefetch {
    /// Cache lines kept in flight while a row's neighbours are scored.
    const LINES_IN_FLIGHT: usize = 64;
    /// Lines prefetched per vector; the hardware streams the rest of a longer one.
    const MAX_LINES_PER_ROW: usize = 8;

    pub fn for_dim(dim: usize) -> Self {
        let lines = (dim * size_of::<f32>()).div_ceil(64).clamp(1, Self::MAX_LINES_PER_ROW);
        Prefetch { lines, ahead: Self::LINES_IN_FLIGHT / lines }
    }
}

impl Graph {
    /// The neighbour list of `row` at `level`.
    #[inline]
    fn list(&self, row: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            self.rows.links(row)
        } else {
            let offset = self.rows.upper(row);
            debug_assert_ne!(offset, NO_UPPER, "row {row} has no level {level}");
            self.upper.links(offset, level)
        }
    }

    #[inline(always)]
    fn distance<S: Simd>(&self, simd: S, query: &[f32], row: u32) -> f32 {
        self.metric.distance_simd(simd, query, self.rows.vector(row))
    }

    /// Replaces the list of `row` at `level`. The caller holds the row's lock.
    fn write_list(&self, row: u32, level: usize, neighbours: impl ExactSizeIterator<Item = u32>) {
        let list = self.list(row, level);
        let count = neighbours.len().min(list.len() - 1);
        for (slot, id) in list[1..].iter().zip(neighbours) {
            slot.store(id, Ordering::Release);
        }
        list[0].store(count as u32, Ordering::Release);
    }

    /// Greedy walk at `level` from `current` towards `query`; returns the closest row found.
    #[inline(always)]
    pub fn greedy<S: Simd>(
        &self,
        simd: S,
        query: &[f32],
        mut current: Scored,
        level: usize,
    ) -> Scored {
        loop {
            let mut improved = false;
            let list = self.list(current.row, level);
            let count = (list[0].load(Ordering::Acquire) as usize).min(list.len() - 1);
            // Plain loops, not iterator adapters with closures, throughout this module: a
            // closure the compiler declines to inline leaves the target-feature context.
            for slot in &list[1..=count] {
                let next = slot.load(Ordering::Acquire);
                let distance = self.distance(simd, query, next);
                if distance < current.distance {
                    current = Scored { distance, row: next };
                    improved = true;
                }
            }
            if !improved {
                return current;
            }
        }
    }

    /// Best-first search of `level` from `entry`, keeping the `ef` nearest rows for which
    /// `returnable` holds in `scratch.results`. Rows that are not returnable (deleted, or
    /// filtered out) are still traversed, so the search goes on until it has `ef` returnable
    /// rows or has run out of reachable ones.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn search_level<S: Simd>(
        &self,
        simd: S,
        query: &[f32],
        entry: Scored,
        ef: usize,
        level: usize,
        scratch: &mut Scratch,
        returnable: &impl Fn(u32) -> bool,
    ) {
        let Scratch { visited, candidates, results, fresh, .. } = scratch;
        let Prefetch { lines, ahead } = self.prefetch;
        candidates.clear();
        results.clear();
        visited.insert(entry.row);
        candidates.push(Reverse(entry));
        let mut bound = f32::INFINITY;
        if returnable(entry.row) {
            results.push(entry);
            bound = entry.distance;
        }
        while let Some(Reverse(nearest)) = candidates.pop() {
            if nearest.distance > bound && results.len() >= ef {
                break;
            }
            let list = self.list(nearest.row, level);
            let count = (list[0].load(Ordering::Acquire) as usize).min(list.len() - 1);
            // Unvisited neighbours first, so that no prefetch is spent on a row already scored
            // (late in a search, most of them).
            fresh.clear();
            for slot in &list[1..=count] {
                let next = slot.load(Ordering::Acquire);
                if visited.insert(next) {
                    fresh.push(next);
                }
            }
            for &next in fresh.iter().take(ahead) {
                prefetch_lines(self.rows.vector(next), lines);
            }
            for (i, &next) in fresh.iter().enumerate() {
                if let Some(&later) = fresh.get(i + ahead) {
                    prefetch_lines(self.rows.vector(later), lines);
                }
                let distance = self.distance(simd, query, next);
                if results.len() < ef || distance < bound {
                    let scored = Scored { distance, row: next };
                    // It will likely be expanded soon: start loading its neighbour list, which
                    // lives apart from its vector (just read).
                    prefetch(self.list(next, level));
                    candidates.push(Reverse(scored));
                    if returnable(next) {
                        results.push(scored);
                        if results.len() > ef {
                            results.pop();
                        }
                        bound = results.peek().map_or(f32::INFINITY, |worst| worst.distance);
                    }
                }
            }
        }
    }

    /// The diverse-neighbour heuristic: walking `sorted` nearest first, keep a candidate only if
    /// it is closer to the base than to every candidate kept so far, up to `max` of them. Keeps
    /// links pointing in different directions, which keeps the graph navigable.
    #[inline(always)]
    fn select_diverse<S: Simd>(
        &self,
        simd: S,
        sorted: &[Scored],
        max: usize,
        selected: &mut Vec<Scored>,
    ) {
        selected.clear();
        if sorted.len() <= max {
            selected.extend_from_slice(sorted);
            return;
        }
        for &candidate in sorted {
            if selected.len() >= max {
                break;
            }
            let vector = self.rows.vector(candidate.row);
            let mut diverse = true;
            for kept in selected.iter() {
                if self.distance(simd, vector, kept.row) < candidate.distance {
                    diverse = false;
                    break;
                }
            }
            if diverse {
                selected.push(candidate);
            }
        }
    }

    /// Links the published-to-be `row` (vector and meta already written) into the graph.
    /// `entry` is the current entry point and its level; the caller holds the top-level lock when
    /// `row`'s level is above it.
    #[inline(always)]
    pub fn insert<S: Simd>(
        &self,
        simd: S,
        row: u32,
        entry: (u32, usize),
        scratch: &mut Scratch,
        rows_hint: usize,
    ) {
        let query = self.rows.vector(row);
        let level = self.rows.level(row) as usize;
        let (entry_row, top) = entry;
        let mut current =
            Scored { distance: self.distance(simd, query, entry_row), row: entry_row };
        for l in (level + 1..=top).rev() {
            current = self.greedy(simd, query, current, l);
        }
        for l in (0..=level.min(top)).rev() {
            scratch.visited.reset(rows_hint);
            scratch.visited.insert(row);
            self.search_level(simd, query, current, self.ef_construction, l, scratch, &|_| true);
            scratch.sort_results();
            // Another insert may already have linked to `row` at this level and led the search
            // to it; a row is never its own neighbour.
            scratch.sorted.retain(|s| s.row != row);
            let Some(&nearest) = scratch.sorted.first() else { continue };
            // Link live rows only, where enough of them were found. Deleted rows stay in the
            // graph so that walks can pass through them, but a slot spent on one is a slot no
            // walk returns, and under churn they crowd live rows out: an upsert leaves its old
            // row behind, often at distance 0 from the new one. Linking them cost 3-5 points
            // of recall at equal ef after five rounds of 50% churn (tests/recall.rs).
            let live = scratch.sorted.iter().filter(|s| !self.rows.is_deleted(s.row)).count();
            if live >= self.m {
                scratch.sorted.retain(|s| !self.rows.is_deleted(s.row));
            }
            let mut selected = std::mem::take(&mut scratch.selected);
            self.select_diverse(simd, &scratch.sorted, self.m, &mut selected);
            let max = if l == 0 { self.m0 } else { self.m };
            self.set_own_list(simd, row, l, &selected, max, scratch);
            for neighbour in &selected {
                self.link_back(simd, neighbour.row, row, neighbour.distance, l, max, scratch);
            }
            scratch.selected = selected;
            current = nearest;
        }
    }

    /// Sets the list of the row being inserted at `level` to `selected`, keeping links other
    /// inserts already added to it: a concurrent insert can reach the row through its links on a
    /// higher level and link back before this one has finished searching. Overwriting would drop
    /// those back-links and could leave that other row with no in-link at all.
    #[inline(always)]
    fn set_own_list<S: Simd>(
        &self,
        simd: S,
        row: u32,
        level: usize,
        selected: &[Scored],
        max: usize,
        scratch: &mut Scratch,
    ) {
        let _guard = self.rows.lock(row);
        let list = self.list(row, level);
        let count = list[0].load(Ordering::Relaxed) as usize;
        if count == 0 {
            self.write_list(row, level, selected.iter().map(|s| s.row));
            return;
        }
        let base = self.rows.vector(row);
        scratch.prune.clear();
        scratch.prune.extend_from_slice(selected);
        for slot in &list[1..=count] {
            let other = slot.load(Ordering::Relaxed);
            let fresh = other != row && selected.iter().all(|s| s.row != other);
            if fresh && !self.rows.is_deleted(other) {
                scratch
                    .prune
                    .push(Scored { distance: self.distance(simd, base, other), row: other });
            }
        }
        if scratch.prune.len() <= max {
            self.write_list(row, level, scratch.prune.iter().map(|s| s.row));
            return;
        }
        scratch.prune.sort_unstable();
        let mut kept = std::mem::take(&mut scratch.prune_selected);
        self.select_diverse(simd, &scratch.prune, max, &mut kept);
        self.write_list(row, level, kept.iter().map(|s| s.row));
        scratch.prune_selected = kept;
    }

    /// Adds `new` to the list of `neighbour` at `level`, pruning with the heuristic when full.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn link_back<S: Simd>(
        &self,
        simd: S,
        neighbour: u32,
        new: u32,
        distance: f32,
        level: usize,
        max: usize,
        scratch: &mut Scratch,
    ) {
        let _guard = self.rows.lock(neighbour);
        let list = self.list(neighbour, level);
        let count = list[0].load(Ordering::Relaxed) as usize;
        if list[1..=count].iter().any(|slot| slot.load(Ordering::Relaxed) == new) {
            return;
        }
        if count < max {
            list[1 + count].store(new, Ordering::Release);
            list[0].store(count as u32 + 1, Ordering::Release);
            return;
        }
        let base = self.rows.vector(neighbour);
        scratch.prune.clear();
        scratch.prune.push(Scored { distance, row: new });
        // A full list sheds its deleted rows (see `insert`), each replaced by candidates from
        // its own list, as FreshDiskANN's delete phase does: the walks that went through the
        // deleted row can still reach what lies beyond it. Then the usual prune.
        let mut deleted = 0;
        for slot in &list[1..=count] {
            let row = slot.load(Ordering::Relaxed);
            if self.rows.is_deleted(row) {
                deleted += 1;
            } else {
                scratch.prune.push(Scored { distance: self.distance(simd, base, row), row });
            }
        }
        if deleted > 0 {
            for slot in &list[1..=count] {
                let gone = slot.load(Ordering::Relaxed);
                if !self.rows.is_deleted(gone) {
                    continue;
                }
                let beyond = self.list(gone, level);
                let beyond_count =
                    (beyond[0].load(Ordering::Acquire) as usize).min(beyond.len() - 1);
                for next in &beyond[1..=beyond_count] {
                    let row = next.load(Ordering::Acquire);
                    let known = row == neighbour || scratch.prune.iter().any(|s| s.row == row);
                    if !known && !self.rows.is_deleted(row) && scratch.prune.len() < 4 * max {
                        scratch
                            .prune
                            .push(Scored { distance: self.distance(simd, base, row), row });
                    }
                }
            }
        }
        if scratch.prune.len() <= max {
            self.write_list(neighbour, level, scratch.prune.iter().map(|s| s.row));
            return;
        }
        scratch.prune.sort_unstable();
        let mut kept = std::mem::take(&mut scratch.prune_selected);
        self.select_diverse(simd, &scratch.prune, max, &mut kept);
        self.write_list(neighbour, level, kept.iter().map(|s| s.row));
        scratch.prune_selected = kept;
    }
}
