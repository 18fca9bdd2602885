//! [`Visited`]: the set of rows a graph search has seen, shared by every graph tier.

/// Which rows a search has seen, reset in O(1) by bumping an epoch.
#[derive(Debug, Default)]
pub struct Visited {
    marks: Vec<u8>,
    epoch: u8,
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
        for round in 0..70_000u32 {
            visited.reset(10);
            assert!(visited.insert(round % 10), "round {round}");
            assert!(!visited.insert(round % 10));
        }
        assert!(visited.insert(1_000), "rows past the initial size grow the set");
        assert!(!visited.insert(1_000));
    }
}
