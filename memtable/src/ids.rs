//! The id map: user id -> row, as an open-addressing table of row numbers only.
//!
//! The rows already hold their ids, so the table stores 4-byte row numbers and compares through
//! the row's id: about 6-8 bytes per record at its load factor, where a `HashMap<u64, u32>`
//! costs 20-39 (16-byte padded entries plus control bytes, at load 7/16 to 7/8).

/// A slot never used: ends a probe.
const EMPTY: u32 = u32::MAX;
/// A slot whose record was removed: probes continue past it.
const REMOVED: u32 = u32::MAX - 1;
/// Grow when used slots (live and removed) pass this fraction of the table.
const MAX_LOAD_NUM: usize = 5;
const MAX_LOAD_DEN: usize = 8;

#[derive(Debug, Default)]
pub struct IdMap {
    slots: Vec<u32>,
    live: usize,
    removed: usize,
}

fn hash(id: u64) -> usize {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as usize
}

impl IdMap {
    /// The row of `id`; `id_of` reads a row's id.
    pub fn get(&self, id: u64, id_of: impl Fn(u32) -> u64) -> Option<u32> {
        self.find(id, &id_of).map(|slot| self.slots[slot])
    }

    /// Maps `id` to `row`; returns the row it replaced.
    pub fn insert(&mut self, id: u64, row: u32, id_of: impl Fn(u32) -> u64) -> Option<u32> {
        debug_assert!(row < REMOVED);
        if let Some(slot) = self.find(id, &id_of) {
            return Some(std::mem::replace(&mut self.slots[slot], row));
        }
        if (self.live + self.removed + 1) * MAX_LOAD_DEN > self.slots.len() * MAX_LOAD_NUM {
            self.grow(&id_of);
        }
        let mask = self.slots.len() - 1;
        let mut slot = hash(id) & mask;
        while self.slots[slot] != EMPTY && self.slots[slot] != REMOVED {
            slot = (slot + 1) & mask;
        }
        if self.slots[slot] == REMOVED {
            self.removed -= 1;
        }
        self.slots[slot] = row;
        self.live += 1;
        None
    }

    /// Unmaps `id`; returns its row.
    pub fn remove(&mut self, id: u64, id_of: impl Fn(u32) -> u64) -> Option<u32> {
        let slot = self.find(id, &id_of)?;
        self.live -= 1;
        self.removed += 1;
        Some(std::mem::replace(&mut self.slots[slot], REMOVED))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * size_of::<u32>()
    }

    fn find(&self, id: u64, id_of: &impl Fn(u32) -> u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = hash(id) & mask;
        loop {
            match self.slots[slot] {
                EMPTY => return None,
                REMOVED => {}
                row if id_of(row) == id => return Some(slot),
                _ => {}
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Rehashes the live rows into a table sized for twice as many (removed slots are dropped).
    fn grow(&mut self, id_of: &impl Fn(u32) -> u64) {
        let size = ((self.live + 1) * 2 * MAX_LOAD_DEN / MAX_LOAD_NUM).next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size]);
        let mask = size - 1;
        for row in old.into_iter().filter(|&r| r != EMPTY && r != REMOVED) {
            let mut slot = hash(id_of(row)) & mask;
            while self.slots[slot] != EMPTY {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = row;
        }
        self.removed = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in prop::collection::vec((0..64u64, any::<bool>()), 1..400)) {
            // Row r holds id ids[r]; every insert appends a row, as the memtable does.
            let mut ids: Vec<u64> = Vec::new();
            let mut map = IdMap::default();
            let mut model: HashMap<u64, u32> = HashMap::new();
            for (id, insert) in ops {
                if insert {
                    let row = ids.len() as u32;
                    ids.push(id);
                    let id_of = |r: u32| ids[r as usize];
                    prop_assert_eq!(map.insert(id, row, id_of), model.insert(id, row));
                } else {
                    let id_of = |r: u32| ids[r as usize];
                    prop_assert_eq!(map.remove(id, id_of), model.remove(&id));
                }
                let id_of = |r: u32| ids[r as usize];
                for probe in 0..64u64 {
                    prop_assert_eq!(map.get(probe, id_of), model.get(&probe).copied());
                }
            }
        }
    }

    #[test]
    fn stays_compact() {
        let ids: Vec<u64> = (0..100_000u64).map(|i| i * 7919).collect();
        let mut map = IdMap::default();
        for (row, &id) in ids.iter().enumerate() {
            map.insert(id, row as u32, |r| ids[r as usize]);
        }
        assert!(map.bytes() / ids.len() <= 12, "{} bytes per record", map.bytes() / ids.len());
    }
}
