//! [`Visited`]: the set of rows a graph search has seen, shared by every graph tier.

/// Which rows a search has seen, reset in O(1) by bumping an epoch.
///
/// The epoch is 16 bits: every 65,535th reset clears all marks, so the clears cost
/// `rows / 65,535` writes per search. An 8-bit epoch cleared every 255th reset, which a build
/// (one reset per insert) turns into `rows² / 255` writes: minutes at 10M rows, days at 1B.
#[derive(Debug, Default)]
pub struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Starts a new search over at least `rows` rows.
    pub fn reset(&mut self, rows: usize) {
        if self.marks.len() < rows {
            // Grow with headroom: a growing index (the memtable) adds rows while it is searched.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visited_resets_by_epoch_and_survives_wraparound() {
        let mut visited = Visited::default();
        for round in 0..140_000u32 {
            visited.reset(10);
            assert!(visited.insert(round % 10), "round {round}");
            assert!(!visited.insert(round % 10));
        }
        assert!(visited.insert(1_000), "rows past the initial size grow the set");
        assert!(!visited.insert(1_000));
    }

    #[test]
    fn a_mark_from_the_epoch_before_a_wraparound_is_not_seen_after_it() {
        let mut visited = Visited::default();
        visited.reset(4);
        assert!(visited.insert(2));
        // Walk the epoch to the same value one full cycle later without touching row 2: a
        // stale mark must not read as seen.
        for _ in 0..u32::from(u16::MAX) {
            visited.reset(4);
        }
        assert!(visited.insert(2), "a stale mark from {} resets ago", u16::MAX);
    }
}
