//! [`Visited`]: the set of rows a graph search has seen, shared by every graph tier.

/// Which rows a search has seen, reset in O(1) by bumping an epoch of type `E`.
///
/// Every `E::MAX`th reset clears all marks, so the clears cost `rows / E::MAX` writes per
/// search. The default 16-bit epoch suits segment builds, which reset once per insert: an
/// 8-bit epoch there turns into `rows² / 255` writes (minutes at 10M rows, days at 1B). The
/// memtable, bounded by its flush budget, uses `Visited<u8>` and halves the marks' memory.
#[derive(Debug, Default)]
pub struct Visited<E: Epoch = u16> {
    marks: Vec<E>,
    epoch: E,
}

/// An unsigned integer usable as a [`Visited`] epoch.
pub trait Epoch: Copy + Default + Eq + std::fmt::Debug + private::Sealed {
    /// The epoch after `self`, wrapping to zero.
    fn next(self) -> Self;
    /// The first epoch after a clear.
    const ONE: Self;
}

impl Epoch for u8 {
    fn next(self) -> Self {
        self.wrapping_add(1)
    }
    const ONE: Self = 1;
}

impl Epoch for u16 {
    fn next(self) -> Self {
        self.wrapping_add(1)
    }
    const ONE: Self = 1;
}

mod private {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
}

impl<E: Epoch> Visited<E> {
    /// Starts a new search over at least `rows` rows.
    pub fn reset(&mut self, rows: usize) {
        if self.marks.len() < rows {
            // Grow with headroom: a growing index (the memtable) adds rows while it is searched.
            self.marks.resize(rows + rows / 4 + 64, E::default());
        }
        self.epoch = self.epoch.next();
        if self.epoch == E::default() {
            self.marks.fill(E::default());
            self.epoch = E::ONE;
        }
    }

    /// Marks `row`; true if it was not yet seen in this search.
    #[inline]
    pub fn insert(&mut self, row: u32) -> bool {
        let row = row as usize;
        if row >= self.marks.len() {
            // A row inserted after this search started.
            self.marks.resize(row + row / 4 + 64, E::default());
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

    /// `cycle`: resets until the epoch comes back to the same value.
    fn resets_by_epoch_and_survives_wraparound<E: Epoch>(cycle: u32) {
        let mut visited = Visited::<E>::default();
        for round in 0..2 * cycle + 10 {
            visited.reset(10);
            assert!(visited.insert(round % 10), "round {round}");
            assert!(!visited.insert(round % 10));
        }
        assert!(visited.insert(1_000), "rows past the initial size grow the set");
        assert!(!visited.insert(1_000));

        // Walk the epoch to the same value one full cycle later without touching row 2: a
        // stale mark must not read as seen.
        visited.reset(4);
        assert!(visited.insert(2));
        for _ in 0..cycle {
            visited.reset(4);
        }
        assert!(visited.insert(2), "a stale mark from {cycle} resets ago");
    }

    #[test]
    fn visited_resets_by_epoch_and_survives_wraparound() {
        resets_by_epoch_and_survives_wraparound::<u8>(u32::from(u8::MAX));
        resets_by_epoch_and_survives_wraparound::<u16>(u32::from(u16::MAX));
    }
}
