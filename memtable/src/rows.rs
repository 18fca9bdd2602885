//! Row storage: vectors, level-0 neighbour lists, ids, flags and per-row locks in chunks that are
//! allocated as rows are reserved and never move, so readers hold plain references while other
//! threads append.
//!
//! All chunks hold [`CHUNK_ROWS`] rows, so finding a row is a shift and a mask on the hot path
//! of every distance computation. Chunk memory comes from `alloc_zeroed`, so the untouched tail of
//! the last chunk is address space, not resident memory; an empty memtable allocates no chunk and
//! costs only the chunk table (about 100 KiB).

use std::cell::UnsafeCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;
use zerocopy::FromZeros;

/// Sixteen floats of vector storage on one cache line. Chunks store vectors as lines so that
/// the storage starts on a 64-byte boundary: when a row's bytes are a multiple of 64 (any
/// dimension divisible by 16), every row starts on a line too, so a distance reads exactly
/// `dim / 16` lines and no SIMD load straddles two. A plain `f32` allocation starts 16 bytes
/// into a page, which made every 64-byte load a split load and every row one line longer.
#[derive(FromZeros)]
#[repr(C, align(64))]
struct Line(UnsafeCell<[f32; 16]>);

/// Rows per chunk (a power of two).
const CHUNK_ROWS: usize = 1 << 14;
/// Chunk table size: enough for [`MAX_ROWS`].
const CHUNKS: usize = MAX_ROWS / CHUNK_ROWS;
const _: () = assert!(CHUNK_ROWS % 16 == 0, "a chunk's vectors must fill whole lines");

/// Rows one memtable can address, superseded rows included. The engine flushes long before.
pub const MAX_ROWS: usize = 1 << 24;

/// Bit of a row's meta word: the row is fully written (stored last, with Release).
const PUBLISHED: u64 = 1 << 8;
/// A row's meta word holds no upper-level links.
pub const NO_UPPER: u32 = u32::MAX;

/// Index of the chunk holding `row`, and the row's offset in it.
#[inline(always)]
fn locate(row: usize) -> (usize, usize) {
    (row / CHUNK_ROWS, row % CHUNK_ROWS)
}

struct Chunk {
    /// `rows * dim` floats, as `rows * dim / 16` lines ([`CHUNK_ROWS`] is a multiple of 16).
    /// Each row is written once, by the thread that reserved it, before the row is published;
    /// see [`RowStore::vector`].
    vectors: Box<[Line]>,
    /// `rows * (1 + m0)` words per row: the level-0 neighbour count, then the neighbours.
    links: Box<[AtomicU32]>,
    ids: Box<[AtomicU64]>,
    /// Level (bits 0-7), [`PUBLISHED`] (bit 8) and offset of the upper-level links (bits 32-63).
    meta: Box<[AtomicU64]>,
    /// One bit per row: deleted or superseded. A bitmap rather than a flag beside each row, so
    /// that checking it while collecting results stays in cache.
    deleted: Box<[AtomicU64]>,
    /// Serializes writers of a row's neighbour lists (all levels).
    locks: Box<[Mutex<()>]>,
}

// SAFETY: every field but `vectors` is `Sync`. A row of `vectors` is written only by the thread
// that reserved the row, before any other thread can learn the row exists (publication is a
// Release store that readers Acquire), and never again; readers only read published rows. So
// no row is ever read and written concurrently.
unsafe impl Sync for Chunk {}

/// All per-row data of a memtable.
pub struct RowStore {
    dim: usize,
    /// Words per row of level-0 links: 1 + m0.
    link_words: usize,
    chunks: Box<[OnceLock<Chunk>]>,
}

impl std::fmt::Debug for RowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStore")
            .field("dim", &self.dim)
            .field("link_words", &self.link_words)
            .finish()
    }
}

impl RowStore {
    pub fn new(dim: usize, m0: usize) -> Self {
        RowStore { dim, link_words: 1 + m0, chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect() }
    }

    #[inline(always)]
    fn chunk(&self, row: u32) -> (&Chunk, usize) {
        let (index, offset) = locate(row as usize);
        let chunk = self.chunks[index].get().expect("a row is reached only after its chunk exists");
        (chunk, offset)
    }

    /// Makes sure the chunk for `row` exists (called by the thread that reserved `row`).
    pub fn allocate(&self, row: u32) {
        let (index, _) = locate(row as usize);
        let rows = CHUNK_ROWS;
        self.chunks[index].get_or_init(|| Chunk {
            vectors: zeroed(rows * self.dim / 16),
            links: zeroed(rows * self.link_words),
            ids: zeroed(rows),
            meta: zeroed(rows),
            deleted: zeroed(rows / 64),
            locks: (0..rows).map(|_| Mutex::new(())).collect(),
        });
    }

    /// Fills a freshly reserved row. Only the thread that reserved `row` may call this, once,
    /// before publishing the row.
    pub fn init(&self, row: u32, id: u64, vector: &[f32], level: u8, upper: u32) {
        let (chunk, offset) = self.chunk(row);
        assert_eq!(vector.len(), self.dim, "a row holds exactly `dim` floats");
        // Every byte of `vectors` is inside an `UnsafeCell`, so writing through a pointer
        // derived from the shared slice is allowed.
        let start = chunk.vectors.as_ptr().cast::<f32>().cast_mut().wrapping_add(offset * self.dim);
        // SAFETY: the chunk holds `CHUNK_ROWS * dim` floats and `offset < CHUNK_ROWS`, so the
        // `dim` floats from `start` are in bounds, and `vector` (a caller's slice) cannot overlap
        // them. `row` was reserved by the caller and is not yet published, so no other thread
        // reads or writes them (see the `Sync` impl of `Chunk`).
        unsafe { std::ptr::copy_nonoverlapping(vector.as_ptr(), start, self.dim) };
        chunk.ids[offset].store(id, Ordering::Relaxed);
        let meta = u64::from(level) | PUBLISHED | (u64::from(upper) << 32);
        chunk.meta[offset].store(meta, Ordering::Release);
    }

    /// Whether `row` (any reserved row, published or not) is fully written, so that a scan
    /// over row numbers may read it. Acquire pairs with the Release in [`Self::init`].
    pub fn is_published(&self, row: u32) -> bool {
        let (index, offset) = locate(row as usize);
        self.chunks[index]
            .get()
            .is_some_and(|chunk| chunk.meta[offset].load(Ordering::Acquire) & PUBLISHED != 0)
    }

    /// The vector of a published row.
    #[inline]
    pub fn vector(&self, row: u32) -> &[f32] {
        let (chunk, offset) = self.chunk(row);
        let start = chunk.vectors.as_ptr().cast::<f32>().wrapping_add(offset * self.dim);
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with no padding, so the lines are
        // `CHUNK_ROWS * dim` contiguous floats and the `dim` from `start` are in bounds
        // (`offset < CHUNK_ROWS`). The row is published, so they were written before the
        // Release store that published it, which the caller's Acquire load observed, and they
        // are never written again.
        unsafe { std::slice::from_raw_parts(start, self.dim) }
    }

    /// The level-0 neighbour list of a row: a count word, then `m0` slots.
    #[inline]
    pub fn links(&self, row: u32) -> &[AtomicU32] {
        let (chunk, offset) = self.chunk(row);
        &chunk.links[offset * self.link_words..(offset + 1) * self.link_words]
    }

    pub fn id(&self, row: u32) -> u64 {
        let (chunk, offset) = self.chunk(row);
        chunk.ids[offset].load(Ordering::Relaxed)
    }

    fn meta(&self, row: u32) -> u64 {
        let (chunk, offset) = self.chunk(row);
        chunk.meta[offset].load(Ordering::Relaxed)
    }

    pub fn level(&self, row: u32) -> u8 {
        self.meta(row) as u8
    }

    /// Offset of the row's upper-level links in the upper arena, or [`NO_UPPER`].
    pub fn upper(&self, row: u32) -> u32 {
        (self.meta(row) >> 32) as u32
    }

    #[inline]
    pub fn is_deleted(&self, row: u32) -> bool {
        let (chunk, offset) = self.chunk(row);
        // Acquire pairs with the Release in `delete`: whoever sees a row deleted also sees the
        // row the deleting upsert reserved and published before it (see `ScanOp`).
        chunk.deleted[offset / 64].load(Ordering::Acquire) & (1 << (offset % 64)) != 0
    }

    /// Marks a row deleted; returns whether it was live.
    pub fn delete(&self, row: u32) -> bool {
        let (chunk, offset) = self.chunk(row);
        let bit = 1 << (offset % 64);
        chunk.deleted[offset / 64].fetch_or(bit, Ordering::Release) & bit == 0
    }

    pub fn lock(&self, row: u32) -> parking_lot::MutexGuard<'_, ()> {
        let (chunk, offset) = self.chunk(row);
        chunk.locks[offset].lock()
    }

    /// Bytes that `rows` rows occupy, plus the chunk table and each allocated chunk's lock
    /// array (which is written at allocation). The untouched rest of the last chunk is not
    /// counted: it is zeroed address space that was never paged in.
    pub fn used_bytes(&self, rows: usize) -> usize {
        let per_row = self.dim * 4 + self.link_words * 4 + 8 + 8;
        let chunks = self.chunks.iter().filter(|c| c.get().is_some()).count();
        let per_chunk = CHUNK_ROWS * size_of::<Mutex<()>>() + CHUNK_ROWS / 8;
        rows * per_row + chunks * per_chunk + CHUNKS * size_of::<OnceLock<Chunk>>()
    }
}

fn zeroed<T: FromZeros>(len: usize) -> Box<[T]> {
    <[T]>::new_box_zeroed_with_elems(len)
        .unwrap_or_else(|_| panic!("out of memory allocating {len} elements"))
}

/// Upper-level neighbour lists (levels 1 and above): only about 1 row in M has any, so they live
/// in an arena of fixed-size chunks instead of in every row.
pub struct UpperArena {
    /// Words per level: a count, then `m` slots.
    words_per_level: usize,
    chunks: Box<[OnceLock<Box<[AtomicU32]>>]>,
    /// Next free word; allocation is rare (1 insert in M), so a mutex is cheap.
    next: Mutex<usize>,
}

/// Words per arena chunk.
const ARENA_CHUNK_WORDS: usize = 1 << 16;

impl std::fmt::Debug for UpperArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpperArena").field("words_used", &*self.next.lock()).finish()
    }
}

impl UpperArena {
    pub fn new(m: usize) -> Self {
        let words_per_level = 1 + m;
        // Upper levels hold about 1/(M-1) level-lists per row; leave room for twice that.
        let max_words = MAX_ROWS / (m - 1).max(1) * 2 * words_per_level;
        let chunks = max_words.div_ceil(ARENA_CHUNK_WORDS);
        UpperArena {
            words_per_level,
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
            next: Mutex::new(0),
        }
    }

    /// Reserves zeroed lists for levels 1..=`levels`; returns their offset, or `None` when the
    /// arena is exhausted.
    pub fn allocate(&self, levels: usize) -> Option<u32> {
        let words = levels * self.words_per_level;
        let mut next = self.next.lock();
        // A node's lists never straddle a chunk.
        if *next % ARENA_CHUNK_WORDS + words > ARENA_CHUNK_WORDS {
            *next = next.next_multiple_of(ARENA_CHUNK_WORDS);
        }
        let offset = *next;
        let chunk = offset / ARENA_CHUNK_WORDS;
        if chunk >= self.chunks.len() || offset >= NO_UPPER as usize {
            return None;
        }
        self.chunks[chunk].get_or_init(|| zeroed(ARENA_CHUNK_WORDS));
        *next += words;
        Some(offset as u32)
    }

    /// The list of level `level` (1 or more) of the node whose lists start at `offset`.
    #[inline]
    pub fn links(&self, offset: u32, level: usize) -> &[AtomicU32] {
        let start = offset as usize + (level - 1) * self.words_per_level;
        let chunk = self.chunks[start / ARENA_CHUNK_WORDS].get().expect("allocated before use");
        let at = start % ARENA_CHUNK_WORDS;
        &chunk[at..at + self.words_per_level]
    }

    /// Bytes of the lists handed out (the rest of an arena chunk is zeroed address space that
    /// was never touched), plus the chunk table.
    pub fn used_bytes(&self) -> usize {
        *self.next.lock() * 4 + self.chunks.len() * size_of::<OnceLock<Box<[AtomicU32]>>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_map_to_chunks_without_gaps_or_overlaps() {
        let mut expected = (0, 0);
        for row in 0..3 * CHUNK_ROWS + 5 {
            assert_eq!(locate(row), expected, "row {row}");
            expected = if expected.1 + 1 == CHUNK_ROWS {
                (expected.0 + 1, 0)
            } else {
                (expected.0, expected.1 + 1)
            };
        }
        assert_eq!(locate(MAX_ROWS - 1).0, CHUNKS - 1);
    }

    #[test]
    fn vectors_round_trip_and_start_on_cache_lines() {
        for dim in [3, 16, 128, 768] {
            let store = RowStore::new(dim, 32);
            for row in [0, 1, 2, CHUNK_ROWS as u32 - 1, CHUNK_ROWS as u32] {
                store.allocate(row);
                let vector: Vec<f32> = (0..dim).map(|i| (row as usize * dim + i) as f32).collect();
                store.init(row, u64::from(row), &vector, 0, NO_UPPER);
                assert_eq!(store.vector(row), vector, "dim {dim} row {row}");
                if dim % 16 == 0 {
                    assert_eq!(store.vector(row).as_ptr() as usize % 64, 0, "dim {dim} row {row}");
                }
            }
            // Neighbouring rows were not overwritten.
            assert_eq!(store.vector(0)[dim - 1], (dim - 1) as f32);
        }
    }

    #[test]
    fn an_empty_store_costs_kilobytes() {
        let store = RowStore::new(128, 32);
        let arena = UpperArena::new(16);
        // The two chunk tables: about 100 KiB, whatever the dimension.
        assert!(store.used_bytes(0) + arena.used_bytes() < 128 * 1024);
    }

    #[test]
    fn arena_lists_never_straddle_chunks() {
        let arena = UpperArena::new(16);
        let mut last = 0;
        for _ in 0..10_000 {
            let offset = arena.allocate(5).unwrap() as usize;
            assert!(offset >= last);
            assert_eq!(offset / ARENA_CHUNK_WORDS, (offset + 5 * 17 - 1) / ARENA_CHUNK_WORDS);
            last = offset + 5 * 17;
            assert_eq!(arena.links(offset as u32, 5).len(), 17);
        }
    }
}
