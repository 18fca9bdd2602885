//! The bounded, sorted candidate list behind both the build's greedy search and the query's beam
//! search: DiskANN's search list of size L.

/// A row with its distance to the query, and whether the search has expanded it yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub distance: f32,
    pub row: u32,
    pub expanded: bool,
}

/// At most `capacity` candidates, nearest first (ties by row, so searches are deterministic),
/// with a cursor at the nearest one not yet expanded. Inserting ahead of the cursor moves it
/// back, so the search always expands the nearest unexpanded candidate.
#[derive(Debug, Default)]
pub(crate) struct CandidateList {
    items: Vec<Candidate>,
    capacity: usize,
    cursor: usize,
}

impl CandidateList {
    /// Empties the list and bounds it to `capacity` (at least 1) candidates.
    pub fn reset(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.items.clear();
        self.items.reserve(self.capacity + 1);
        self.cursor = 0;
    }

    /// Offers a candidate; false if the list is full and it is no nearer than the last.
    /// The caller offers each row at most once (a visited set sees to it).
    #[inline]
    pub fn insert(&mut self, row: u32, distance: f32) -> bool {
        let full = self.items.len() >= self.capacity;
        if full {
            let last = self.items[self.items.len() - 1];
            if (distance, row) >= (last.distance, last.row) {
                return false;
            }
        }
        if full {
            self.items.pop();
        }
        // Insertion from the end: lists are short (L), and new candidates usually land near
        // the end, so a plain shifting loop beats a binary search plus a memmove call.
        let candidate = Candidate { distance, row, expanded: false };
        self.items.push(candidate);
        let mut at = self.items.len() - 1;
        while at > 0 {
            let before = self.items[at - 1];
            if (before.distance, before.row) < (distance, row) {
                break;
            }
            self.items[at] = before;
            at -= 1;
        }
        self.items[at] = candidate;
        self.cursor = self.cursor.min(at);
        true
    }

    /// Marks the nearest unexpanded candidate expanded and returns it.
    #[inline]
    pub fn expand_next(&mut self) -> Option<Candidate> {
        while let Some(candidate) = self.items.get_mut(self.cursor) {
            self.cursor += 1;
            if !candidate.expanded {
                candidate.expanded = true;
                return Some(*candidate);
            }
        }
        None
    }

    /// The nearest unexpanded candidate, without expanding it.
    #[inline]
    pub fn peek_unexpanded(&self) -> Option<u32> {
        self.items[self.cursor.min(self.items.len())..].iter().find(|c| !c.expanded).map(|c| c.row)
    }

    /// The distance a new candidate must beat to enter, once the list is full.
    #[inline]
    pub fn bound(&self) -> f32 {
        if self.items.len() >= self.capacity {
            self.items[self.items.len() - 1].distance
        } else {
            f32::INFINITY
        }
    }

    /// The candidates, nearest first.
    pub fn items(&self) -> &[Candidate] {
        &self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_nearest_and_expands_in_order() {
        let mut list = CandidateList::default();
        list.reset(3);
        for (row, distance) in [(0, 5.0), (1, 1.0), (2, 3.0), (3, 4.0), (4, 2.0)] {
            list.insert(row, distance);
        }
        let rows: Vec<u32> = list.items().iter().map(|c| c.row).collect();
        assert_eq!(rows, [1, 4, 2]);
        assert_eq!(list.bound(), 3.0);
        assert!(!list.insert(9, 3.0), "a tie with the last loses to the smaller row");
        assert_eq!(list.expand_next().map(|c| c.row), Some(1));
        assert_eq!(list.expand_next().map(|c| c.row), Some(4));
        // A nearer candidate arriving behind the cursor is expanded next; the farthest
        // (row 2, never expanded) falls off the full list.
        assert!(list.insert(7, 0.5));
        assert_eq!(list.expand_next().map(|c| c.row), Some(7));
        assert_eq!(list.expand_next(), None);
        let rows: Vec<u32> = list.items().iter().map(|c| c.row).collect();
        assert_eq!(rows, [7, 1, 4]);
        assert!(list.items().iter().all(|c| c.expanded));
    }
}
