//! Row storage: vectors, level-0 neighbour lists, ids, flags and per-row locks in chunks that are
//! allocated as rows are reserved and never move, so readers hold plain references while other
//! threads append.
//!
//! All chunks hold [`CHUNK_ROWS`] rows, so finding a row is a shift and a mask on the hot path
//! of every distance computation. Vectors live in huge-page mappings ([`HugeArray`]), the rest
//! in `alloc_zeroed` memory, so the untouched tail of the last chunk is address space, not
//! resident memory (but for the rest of the huge page its last vector is on); an empty memtable
//! allocates no chunk and costs only the chunk table (about 100 KiB).

use std::cell::UnsafeCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;
use strata_attributes::Record;
use zerocopy::FromZeros;

use crate::pages::{HUGE_PAGE, HugeArray, huge_page_bytes};

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
const _: () = assert!(CHUNK_ROWS.is_multiple_of(16), "a chunk's vectors must fill whole lines");

/// Rows one memtable can address, superseded rows included. The engine flushes long before.
pub const MAX_ROWS: usize = 1 << 24;

/// Bits of a row's meta word holding its level (at most `MAX_LEVEL`, 16).
const LEVEL_MASK: u32 = (1 << 5) - 1;
/// Bit of a row's meta word: the row is fully written (stored last, with Release).
const PUBLISHED: u32 = 1 << 5;
/// Where a row's meta word keeps the index of its first upper-level list.
const UPPER_SHIFT: u32 = 6;
/// A row's meta word holds no upper-level links. Also one past the last list index the arena
/// hands out: 2^26 - 1 lists cover `MAX_ROWS` rows at any `M` (they need about
/// `2 · MAX_ROWS / (M - 1)`, 33.5M at `M = 2`).
pub const NO_UPPER: u32 = u32::MAX >> UPPER_SHIFT;

/// Index of the chunk holding `row`, and the row's offset in it.
#[inline(always)]
fn locate(row: usize) -> (usize, usize) {
    (row / CHUNK_ROWS, row % CHUNK_ROWS)
}

struct Chunk {
    /// `rows * dim` floats, as `rows * dim / 16` lines ([`CHUNK_ROWS`] is a multiple of 16).
    /// Each row is written once, by the thread that reserved it, before the row is published;
    /// see [`RowStore::vector`].
    vectors: HugeArray<Line>,
    /// `rows * (1 + m0)` words per row: the level-0 neighbour count, then the neighbours.
    links: Box<[AtomicU32]>,
    ids: Box<[AtomicU64]>,
    /// Level (bits 0-4), [`PUBLISHED`] (bit 5) and the index of the first upper-level list in
    /// the arena (bits 6-31): 4 bytes, not 8, per row.
    meta: Box<[AtomicU32]>,
    /// One bit per row: deleted or superseded. A bitmap rather than a flag beside each row, so
    /// that checking it while collecting results stays in cache.
    deleted: Box<[AtomicU64]>,
    /// Serializes writers of a row's neighbour lists (all levels).
    locks: Box<[Mutex<()>]>,
}

/// One chunk's attribute records: a slot per row, set before the row is published.
type RecordChunk = [OnceLock<Box<Record>>; CHUNK_ROWS];

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
    /// Per chunk, its rows' attribute records. The table is allocated with the first record
    /// and each chunk's slots with its first record, so a memtable without attributes pays
    /// nothing for them.
    records: OnceLock<Box<[OnceLock<Box<RecordChunk>>]>>,
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
        RowStore {
            dim,
            link_words: 1 + m0,
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            records: OnceLock::new(),
        }
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
            // The first chunk keeps small pages: a memtable that holds a few rows should not
            // cost a 2 MiB page. Past 16K rows the rest ask for huge ones.
            vectors: HugeArray::new(rows * self.dim / 16, index > 0),
            links: zeroed(rows * self.link_words),
            ids: zeroed(rows),
            meta: zeroed(rows),
            deleted: zeroed(rows / 64),
            locks: (0..rows).map(|_| Mutex::new(())).collect(),
        });
    }

    /// Fills a freshly reserved row. Only the thread that reserved `row` may call this, once,
    /// before publishing the row.
    pub fn init(
        &self,
        row: u32,
        id: u64,
        vector: &[f32],
        record: Option<Record>,
        level: u8,
        upper: u32,
    ) {
        let (chunk, offset) = self.chunk(row);
        if let Some(record) = record.filter(|r| !r.is_empty()) {
            let table = self.records.get_or_init(|| (0..CHUNKS).map(|_| OnceLock::new()).collect());
            let slots = table[locate(row as usize).0].get_or_init(|| {
                let slots: Box<[OnceLock<Box<Record>>]> =
                    (0..CHUNK_ROWS).map(|_| OnceLock::new()).collect();
                slots.try_into().expect("CHUNK_ROWS slots")
            });
            // The row was reserved by this thread and is set once: this cannot fail.
            let _ = slots[offset].set(Box::new(record));
        }
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
        debug_assert!(u32::from(level) <= LEVEL_MASK && upper <= NO_UPPER);
        let meta = u32::from(level) | PUBLISHED | (upper << UPPER_SHIFT);
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

    /// The attributes of a published row (`None`: it has none).
    #[inline]
    pub fn record(&self, row: u32) -> Option<&Record> {
        let (index, offset) = locate(row as usize);
        let slots = self.records.get()?[index].get()?;
        slots[offset].get().map(|r| &**r)
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

    fn meta(&self, row: u32) -> u32 {
        let (chunk, offset) = self.chunk(row);
        chunk.meta[offset].load(Ordering::Relaxed)
    }

    pub fn level(&self, row: u32) -> u8 {
        (self.meta(row) & LEVEL_MASK) as u8
    }

    /// Index of the row's first upper-level list in the upper arena, or [`NO_UPPER`].
    pub fn upper(&self, row: u32) -> u32 {
        self.meta(row) >> UPPER_SHIFT
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

    /// Bytes that `rows` rows occupy, plus the chunk table, each allocated chunk's lock array
    /// (which is written at allocation), and the rest of the huge page the last vector is on.
    /// The untouched rest of the last chunk is not counted: it is zeroed address space that
    /// was never paged in.
    pub fn used_bytes(&self, rows: usize) -> usize {
        let per_row = self.dim * 4 + self.link_words * 4 + 8 + 4;
        let chunks = self.chunks.iter().filter(|c| c.get().is_some()).count();
        let per_chunk = CHUNK_ROWS * size_of::<Mutex<()>>() + CHUNK_ROWS / 8;
        let record_slots = self.records.get().map_or(0, |table| {
            let chunks = table.iter().filter(|c| c.get().is_some()).count();
            table.len() * size_of::<OnceLock<Box<RecordChunk>>>()
                + chunks * size_of::<RecordChunk>()
        });
        record_slots
            + rows * per_row
            + self.huge_page_slack(rows)
            + chunks * per_chunk
            + CHUNKS * size_of::<OnceLock<Chunk>>()
    }

    /// Resident bytes past the last vector of `rows` rows: the rest of the huge page it is on,
    /// if that page is advised (not in the first chunk, nor in a chunk's short tail).
    fn huge_page_slack(&self, rows: usize) -> usize {
        let last_vectors = rows % CHUNK_ROWS * self.dim * 4;
        let advised = huge_page_bytes(CHUNK_ROWS * self.dim * 4);
        if rows > CHUNK_ROWS && last_vectors < advised {
            last_vectors.next_multiple_of(HUGE_PAGE) - last_vectors
        } else {
            0
        }
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
    /// Whole lists per chunk.
    lists_per_chunk: usize,
    chunks: Box<[OnceLock<Box<[AtomicU32]>>]>,
    /// Index of the next free list; allocation is rare (1 insert in M), so a mutex is cheap.
    next: Mutex<usize>,
}

/// Words per arena chunk, at most (a chunk holds whole lists).
const ARENA_CHUNK_WORDS: usize = 1 << 16;

impl std::fmt::Debug for UpperArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpperArena").field("lists_used", &*self.next.lock()).finish()
    }
}

impl UpperArena {
    pub fn new(m: usize) -> Self {
        let words_per_level = 1 + m;
        let lists_per_chunk = ARENA_CHUNK_WORDS / words_per_level;
        // Upper levels hold about 1/(M-1) level-lists per row; leave room for twice that.
        let max_lists = (MAX_ROWS / (m - 1).max(1) * 2).min(NO_UPPER as usize);
        UpperArena {
            words_per_level,
            lists_per_chunk,
            chunks: (0..max_lists.div_ceil(lists_per_chunk)).map(|_| OnceLock::new()).collect(),
            next: Mutex::new(0),
        }
    }

    /// Reserves zeroed lists for levels 1..=`levels`; returns the index of the first, or `None`
    /// when the arena is exhausted.
    pub fn allocate(&self, levels: usize) -> Option<u32> {
        let mut next = self.next.lock();
        // A node's lists never straddle a chunk.
        if *next % self.lists_per_chunk + levels > self.lists_per_chunk {
            *next = next.next_multiple_of(self.lists_per_chunk);
        }
        let first = *next;
        let chunk = first / self.lists_per_chunk;
        if chunk >= self.chunks.len() || first + levels > NO_UPPER as usize {
            return None;
        }
        self.chunks[chunk].get_or_init(|| zeroed(self.lists_per_chunk * self.words_per_level));
        *next += levels;
        Some(first as u32)
    }

    /// The list of level `level` (1 or more) of the node whose lists start at index `first`.
    #[inline]
    pub fn links(&self, first: u32, level: usize) -> &[AtomicU32] {
        let list = first as usize + level - 1;
        let chunk = self.chunks[list / self.lists_per_chunk].get().expect("allocated before use");
        let at = list % self.lists_per_chunk * self.words_per_level;
        &chunk[at..at + self.words_per_level]
    }

    /// Bytes of the lists handed out (the rest of an arena chunk is zeroed address space that
    /// was never touched), plus the chunk table.
    pub fn used_bytes(&self) -> usize {
        *self.next.lock() * self.words_per_level * 4
            + self.chunks.len() * size_of::<OnceLock<Box<[AtomicU32]>>>()
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
        // Miri checks every access to a chunk's whole mapping: the narrow dimensions there.
        let dims: &[usize] = if cfg!(miri) { &[3, 16] } else { &[3, 16, 128, 768] };
        for &dim in dims {
            let store = RowStore::new(dim, 32);
            for row in [0, 1, 2, CHUNK_ROWS as u32 - 1, CHUNK_ROWS as u32] {
                store.allocate(row);
                let vector: Vec<f32> = (0..dim).map(|i| (row as usize * dim + i) as f32).collect();
                store.init(row, u64::from(row), &vector, None, 0, NO_UPPER);
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
    fn only_advised_huge_pages_count_as_slack() {
        // 768 dims: a chunk is 24 whole huge pages; half a page of rows into the second chunk
        // leaves the rest of that page as slack.
        let wide = RowStore::new(768, 32);
        let half_page_rows = HUGE_PAGE / 2 / (768 * 4);
        assert_eq!(wide.huge_page_slack(half_page_rows), 0, "the first chunk has small pages");
        let slack = HUGE_PAGE - half_page_rows * 768 * 4;
        assert_eq!(wide.huge_page_slack(CHUNK_ROWS + half_page_rows), slack);
        assert_eq!(wide.huge_page_slack(2 * CHUNK_ROWS), 0);
        // 100 dims: a chunk is 6.25 MiB, three advised pages and a small-page tail.
        let narrow = RowStore::new(100, 32);
        let tail_row = CHUNK_ROWS + 3 * HUGE_PAGE / 400 + 1;
        assert_eq!(narrow.huge_page_slack(tail_row), 0, "the tail is not advised");
        assert!(narrow.huge_page_slack(CHUNK_ROWS + 1) > 0);
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
            let first = arena.allocate(5).unwrap() as usize;
            assert!(first >= last);
            let per_chunk = arena.lists_per_chunk;
            assert_eq!(first / per_chunk, (first + 4) / per_chunk);
            last = first + 5;
            for level in 1..=5 {
                let list = arena.links(first as u32, level);
                assert_eq!(list.len(), 17);
                // Lists of one node are distinct: writing one leaves the others alone.
                list[0].store(level as u32, Ordering::Relaxed);
            }
            for level in 1..=5 {
                assert_eq!(
                    arena.links(first as u32, level)[0].load(Ordering::Relaxed),
                    level as u32
                );
            }
        }
    }
}
