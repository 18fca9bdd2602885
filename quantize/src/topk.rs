//! Bounded top-k collection of the nearest candidates.
//!
//! Every index tier (memtable, flat segments, DiskANN) funnels candidates through [`TopK`], so
//! ranking, tie-breaking and NaN handling are identical everywhere and results are
//! deterministic: order is by distance ascending, then by id ascending.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Upper bound on the capacity [`TopK::new`] reserves up front, so a huge `k` on a small
/// collection does not allocate memory it never fills. The heap still grows to `k` if needed
/// and keeps that capacity across [`TopK::clear`] / [`TopK::reset`].
const MAX_PREALLOCATED: usize = 4096;

/// A search result: a vector id and its distance to the query (smaller is nearer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// The vector's id.
    pub id: u64,
    /// Its distance to the query under the search metric.
    pub distance: f32,
}

impl Neighbor {
    /// Ranking order: distance ascending, then id ascending.
    ///
    /// `-0.0` and `0.0` compare equal (so the id decides). NaN distances (which
    /// [`TopK::push`] rejects) compare equal to everything.
    #[inline]
    pub fn rank_cmp(&self, other: &Self) -> Ordering {
        self.distance
            .partial_cmp(&other.distance)
            .unwrap_or(Ordering::Equal)
            .then(self.id.cmp(&other.id))
    }
}

/// Heap entry ordered by [`Neighbor::rank_cmp`]; the max-heap top is the current worst.
#[derive(Debug, Clone, Copy)]
struct Ranked(Neighbor);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.rank_cmp(&other.0)
    }
}

/// Keeps the `k` nearest `(id, distance)` pairs seen so far.
///
/// A max-heap of at most `k` entries: once full, a candidate costs one comparison against the
/// current worst unless it displaces it. Reuse one `TopK` per search thread with
/// [`reset`](TopK::reset) and drain it with [`sorted_into`](TopK::sorted_into) into a reused
/// `Vec`; in that steady state nothing allocates.
///
/// Each id should be pushed at most once per search; duplicates are not merged.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Ranked>,
}

impl Default for TopK {
    /// A collector for `k = 0`; [`TopK::reset`] gives it a real `k` without reallocating.
    fn default() -> Self {
        TopK::new(0)
    }
}

impl TopK {
    /// An empty collector for the `k` nearest. `k = 0` is allowed and keeps nothing.
    pub fn new(k: usize) -> Self {
        Self { k, heap: BinaryHeap::with_capacity(k.min(MAX_PREALLOCATED)) }
    }

    /// How many results this collector keeps.
    #[inline]
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of results currently held (at most `k`).
    #[inline]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no result is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Whether `k` results are held, so new candidates must beat [`worst`](TopK::worst).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.heap.len() >= self.k
    }

    /// Drops all results, keeping `k` and the allocation.
    #[inline]
    pub fn clear(&mut self) {
        self.heap.clear();
    }

    /// Drops all results and switches to keeping `new_k`, reusing the allocation.
    #[inline]
    pub fn reset(&mut self, new_k: usize) {
        self.heap.clear();
        self.k = new_k;
    }

    /// The distance a candidate must beat to get in, once the collector is full; `None` while
    /// it still accepts anything. Index tiers prune whole candidates / partitions with it.
    ///
    /// A candidate with exactly this distance still gets in if its id is smaller than the
    /// current worst's.
    #[inline]
    pub fn worst(&self) -> Option<f32> {
        if self.is_full() { self.heap.peek().map(|worst| worst.0.distance) } else { None }
    }

    /// Offers a candidate; returns whether it was kept.
    ///
    /// NaN distances are rejected: they have no rank, and a NaN usually means a corrupt
    /// vector that should not surface in results.
    #[inline]
    pub fn push(&mut self, id: u64, distance: f32) -> bool {
        if distance.is_nan() || self.k == 0 {
            return false;
        }
        let candidate = Ranked(Neighbor { id, distance });
        if self.heap.len() < self.k {
            self.heap.push(candidate);
            return true;
        }
        match self.heap.peek_mut() {
            Some(mut worst) if candidate < *worst => {
                // Replacing the top sifts it down when `worst` drops: one O(log k) pass.
                *worst = candidate;
                true
            }
            _ => false,
        }
    }

    /// Moves the results into `out`, nearest first, and leaves `self` empty (same `k`).
    ///
    /// `out` is cleared first. Does not allocate when `out` already has capacity for
    /// [`len`](TopK::len) entries.
    pub fn sorted_into(&mut self, out: &mut Vec<Neighbor>) {
        out.clear();
        out.extend(self.heap.drain().map(|ranked| ranked.0));
        out.sort_unstable_by(Neighbor::rank_cmp);
    }

    /// The results, nearest first. Allocates; prefer [`sorted_into`](TopK::sorted_into) on hot
    /// paths.
    pub fn into_sorted_vec(mut self) -> Vec<Neighbor> {
        let mut out = Vec::with_capacity(self.heap.len());
        self.sorted_into(&mut out);
        out
    }
}
