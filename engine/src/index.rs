//! The id map: which committed or frozen row holds each id's live record.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;

use crate::bitmap::AtomicBitmap;

/// Where a live record sits outside the active memtable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: u32,
    pub(crate) row: u32,
}

/// Ids of records in frozen memtables and segments, and each segment's deletion bitmap.
///
/// Invariant: an id is here exactly when its live record is in a pending tier or a segment; an
/// upsert or delete removes it and sets its row's deleted bit, under this map's lock.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    ids: HashMap<u64, Location, IdHasherBuilder>,
    bitmaps: HashMap<u32, Arc<AtomicBitmap>>,
}

impl IdIndex {
    pub(crate) fn with_capacity(n: usize) -> Self {
        IdIndex {
            ids: HashMap::with_capacity_and_hasher(n, IdHasherBuilder::default()),
            bitmaps: HashMap::new(),
        }
    }

    /// Registers segment `segment`'s bitmap and every live row's id. A later insert of the same
    /// id wins (segments are added oldest first).
    pub(crate) fn add_segment(
        &mut self,
        segment: u32,
        bitmap: Arc<AtomicBitmap>,
        ids: impl Iterator<Item = u64>,
    ) {
        for (row, id) in ids.enumerate() {
            let row = row as u32;
            if !bitmap.contains(row) {
                self.ids.insert(id, Location { segment, row });
            }
        }
        self.bitmaps.insert(segment, bitmap);
    }

    pub(crate) fn get(&self, id: u64) -> Option<Location> {
        self.ids.get(&id).copied()
    }

    /// Removes `id` and marks its row deleted; returns whether it was here.
    pub(crate) fn delete(&mut self, id: u64) -> bool {
        let Some(location) = self.ids.remove(&id) else { return false };
        if let Some(bitmap) = self.bitmaps.get(&location.segment) {
            bitmap.set(location.row);
        }
        true
    }

    /// Forgets the bitmap of a segment that no longer exists (every row deleted).
    pub(crate) fn drop_segment(&mut self, segment: u32) {
        self.bitmaps.remove(&segment);
    }

    /// Bytes of the hash tables (an estimate: capacity times entry size).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.ids.capacity() * (size_of::<(u64, Location)>() + 1)
            + self.bitmaps.capacity() * (size_of::<(u32, Arc<AtomicBitmap>)>() + 1)
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// A keyed multiply-xorshift hash for u64 ids: much faster than SipHash when an open inserts a
/// million ids, and keyed per process so chosen ids cannot force collisions predictably.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdHasherBuilder {
    key: u64,
}

impl Default for IdHasherBuilder {
    fn default() -> Self {
        IdHasherBuilder { key: RandomState::new().hash_one(0x5354_5241_5441u64) | 1 }
    }
}

impl BuildHasher for IdHasherBuilder {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { key: self.key, hash: 0 }
    }
}

#[derive(Debug)]
pub(crate) struct IdHasher {
    key: u64,
    hash: u64,
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // The murmur3 finalizer over the keyed id: every input bit reaches every output bit.
        let mut x = (id ^ self.hash).wrapping_add(self.key);
        x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        self.hash = x ^ (x >> 33);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}
