//! The in-memory HNSW memtable: one concurrent graph over full-precision vectors, with ids and
//! tombstones, that freezes into a read-only view a flush can stream. Does no I/O.
//!
//! Every write lands here first and is searchable as soon as [`Memtable::upsert`] returns, while
//! other threads insert and search. The design (see docs/ARCHITECTURE.md):
//!
//! - **One graph**, never shards: HNSW with `M` links per upper level, `2M` on level 0, levels
//!   drawn with `mL = 1 / ln M`, and the diverse-neighbour heuristic both when linking a new row
//!   and when pruning a full back-link list.
//! - **Fine-grained concurrency**: a lock per row for writers of its neighbour lists, lists as
//!   atomics that searches read without locks, an atomically swapped entry point. The only
//!   lock an insert holds throughout is a shared one that [`Memtable::freeze`] takes exclusively.
//! - **Memory**: rows (vector, level-0 list, id, flags) in chunks that never move and are
//!   allocated zeroed as rows are reserved; upper-level lists in an arena. An empty memtable
//!   costs about 100 KiB (the chunk tables), whatever its dimension.
//! - **Records**: user ids map to rows. An upsert tombstones the old row, then links the new one:
//!   a search that runs meanwhile may miss the id or meet either version, but returns each id at
//!   most once (the nearest version it met). Tombstoned
//!   rows stay in the graph (so it stays connected) and are never returned; a search returns
//!   `k` live results whenever `k` live rows are reachable.

mod error;
mod hnsw;
mod ids;
mod pages;
mod rows;
mod scratch;

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
pub use strata_attributes::Record;
use strata_quantize::{Admission, AdmitAll, Kernels, Metric, Neighbor, Simd, WithSimd, normalize};

pub use crate::error::MemtableError;
use crate::hnsw::{Graph, Prefetch};
use crate::ids::IdMap;
pub use crate::rows::MAX_ROWS;
use crate::rows::{NO_UPPER, RowStore, UpperArena};
use crate::scratch::{Scored, Scratch};

/// An internal row number, as passed to search filters.
pub type Row = u32;

/// Largest squared norm accepted (about 1e37, a norm of about 3e18): a quarter of `f32::MAX`
/// with room for rounding, so distances between any two accepted vectors stay finite.
const MAX_NORM_SQUARED: f64 = f32::MAX as f64 / 32.0;

/// Highest level a row may get; beyond any realistic size (16^16 rows).
const MAX_LEVEL: usize = 16;

/// Graph construction parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Links per node on levels above 0; level 0 keeps `2 * m`. Default 16.
    pub m: usize,
    /// Candidate list size while inserting: larger builds a better graph, slower. Default 200.
    pub ef_construction: usize,
    /// Seed of the level assignment (levels are a pure function of seed and row).
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params { m: 16, ef_construction: 200, seed: 0x5EED }
    }
}

impl Params {
    /// Sets `m`.
    #[must_use]
    pub fn m(self, m: usize) -> Self {
        Params { m, ..self }
    }

    /// Sets `ef_construction`.
    #[must_use]
    pub fn ef_construction(self, ef_construction: usize) -> Self {
        Params { ef_construction, ..self }
    }

    /// Sets the level seed.
    #[must_use]
    pub fn seed(self, seed: u64) -> Self {
        Params { seed, ..self }
    }

    fn validate(&self, dim: usize) -> Result<(), MemtableError> {
        let invalid =
            |name, value, reason| Err(MemtableError::InvalidParameter { name, value, reason });
        if dim == 0 || dim > 1 << 16 {
            return invalid("dim", dim, "must be between 1 and 65536");
        }
        if !(2..=256).contains(&self.m) {
            return invalid("m", self.m, "must be between 2 and 256");
        }
        if self.ef_construction == 0 {
            return invalid("ef_construction", self.ef_construction, "must be positive");
        }
        Ok(())
    }
}

/// The shared state behind a [`Memtable`] and its [`FrozenMemtable`].
#[derive(Debug)]
pub struct MemtableView {
    dim: usize,
    graph: Graph,
    seed: u64,
    level_scale: f64,
    kernels: &'static Kernels,
    /// Rows reserved so far (may pass [`MAX_ROWS`] by the number of refused inserts).
    next_row: AtomicU32,
    /// `(level + 1) << 32 | row` of the entry point; 0 while empty.
    entry: AtomicU64,
    /// Held by an insert that raises the top level, for its whole duration (rare: log_M n times).
    top_lock: Mutex<()>,
    ids: Mutex<IdMap>,
    live: AtomicUsize,
    /// Heap bytes of the attribute records stored (superseded rows' included).
    record_bytes: AtomicUsize,
    /// Set by the first delete or upsert that supersedes a row; until then searches skip the
    /// deletion check, as hnswlib does.
    has_deleted: std::sync::atomic::AtomicBool,
    /// `true` once frozen. Writers hold it shared for the whole write, so `freeze` waits for
    /// writes in flight.
    frozen: RwLock<bool>,
    scratch_pool: Mutex<Vec<Scratch>>,
}

/// A mutable memtable: upserts, deletes and searches from any number of threads.
#[derive(Debug)]
pub struct Memtable {
    view: Arc<MemtableView>,
}

/// A frozen memtable: read-only, still searchable, and iterable for a flush.
#[derive(Debug, Clone)]
pub struct FrozenMemtable {
    view: Arc<MemtableView>,
}

impl Deref for Memtable {
    type Target = MemtableView;

    fn deref(&self) -> &MemtableView {
        &self.view
    }
}

impl Deref for FrozenMemtable {
    type Target = MemtableView;

    fn deref(&self) -> &MemtableView {
        &self.view
    }
}

fn pack_entry(row: u32, level: usize) -> u64 {
    ((level as u64 + 1) << 32) | u64::from(row)
}

fn unpack_entry(entry: u64) -> Option<(u32, usize)> {
    (entry != 0).then(|| (entry as u32, (entry >> 32) as usize - 1))
}

impl Memtable {
    /// An empty memtable of `dim`-dimensional vectors compared by `metric`.
    pub fn new(dim: usize, metric: Metric, params: Params) -> Result<Self, MemtableError> {
        params.validate(dim)?;
        let m0 = 2 * params.m;
        let graph = Graph {
            metric,
            m: params.m,
            m0,
            ef_construction: params.ef_construction,
            rows: RowStore::new(dim, m0),
            upper: UpperArena::new(params.m),
            prefetch: Prefetch::for_dim(dim),
        };
        Ok(Memtable {
            view: Arc::new(MemtableView {
                dim,
                graph,
                seed: params.seed,
                level_scale: 1.0 / (params.m as f64).ln(),
                kernels: Kernels::detected(),
                next_row: AtomicU32::new(0),
                entry: AtomicU64::new(0),
                top_lock: Mutex::new(()),
                ids: Mutex::new(IdMap::default()),
                live: AtomicUsize::new(0),
                record_bytes: AtomicUsize::new(0),
                has_deleted: false.into(),
                frozen: RwLock::new(false),
                scratch_pool: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Inserts `vector` under `id`, replacing any record with that id. Searchable on return.
    ///
    /// Re-upserting a record's current vector (bit for bit, after normalization) changes
    /// nothing: an idempotent re-sync must not fill the graph with tombstoned copies, which would
    /// cut the live rows off from searches.
    pub fn upsert(&self, id: u64, vector: &[f32]) -> Result<(), MemtableError> {
        self.upsert_with(id, vector, None)
    }

    /// [`upsert`](Self::upsert) with the record's attributes (`None`: it has none). Re-upserting
    /// the current vector with other attributes stores a new row.
    pub fn upsert_with(
        &self,
        id: u64,
        vector: &[f32],
        record: Option<Record>,
    ) -> Result<(), MemtableError> {
        let record = record.filter(|r| !r.is_empty());
        let view = &*self.view;
        let mut scratch = view.take_scratch();
        let result = view.prepare(vector, &mut scratch).and_then(|()| {
            let frozen = view.frozen.read();
            if *frozen {
                return Err(MemtableError::Frozen);
            }
            let unchanged =
                view.ids.lock().get(id, |row| view.graph.rows.id(row)).is_some_and(|row| {
                    let stored = view.graph.rows.vector(row);
                    stored.iter().zip(&scratch.query).all(|(a, b)| a.to_bits() == b.to_bits())
                        && view.graph.rows.record(row) == record.as_ref()
                });
            if unchanged {
                return Ok(());
            }
            view.insert(id, record, &mut scratch)
        });
        view.put_scratch(scratch);
        result
    }

    /// Removes the record `id`; returns whether it existed.
    pub fn delete(&self, id: u64) -> Result<bool, MemtableError> {
        let view = &*self.view;
        let frozen = view.frozen.read();
        if *frozen {
            return Err(MemtableError::Frozen);
        }
        let removed = view.ids.lock().remove(id, |row| view.graph.rows.id(row));
        if let Some(row) = removed {
            view.has_deleted.store(true, Ordering::Relaxed);
            view.graph.rows.delete(row);
            view.live.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed.is_some())
    }

    /// Stops all writes (waiting for those in flight) and returns the read-only view.
    pub fn freeze(&self) -> FrozenMemtable {
        *self.view.frozen.write() = true;
        FrozenMemtable { view: Arc::clone(&self.view) }
    }
}

impl MemtableView {
    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.graph.metric
    }

    /// Live records.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// True when no record is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows used so far, superseded and deleted ones included: what the graph holds.
    pub fn rows(&self) -> usize {
        (self.next_row.load(Ordering::Acquire) as usize).min(MAX_ROWS)
    }

    /// The vector of record `id` (normalized, for cosine), if live.
    pub fn get(&self, id: u64) -> Option<&[f32]> {
        let row = self.ids.lock().get(id, |row| self.graph.rows.id(row))?;
        Some(self.graph.rows.vector(row))
    }

    /// The vector of record `id` and its attributes, if live.
    pub fn get_with_record(&self, id: u64) -> Option<(&[f32], Option<&Record>)> {
        let row = self.ids.lock().get(id, |row| self.graph.rows.id(row))?;
        Some((self.graph.rows.vector(row), self.graph.rows.record(row)))
    }

    /// The attributes of row `row` (`None`: none). Rows a search or [`live_rows`] hands out
    /// are published, which this requires.
    ///
    /// [`live_rows`]: FrozenMemtable::live_rows
    #[inline]
    pub fn record(&self, row: Row) -> Option<&Record> {
        self.graph.rows.record(row)
    }

    /// Bytes this memtable holds (allocated chunks, upper-level lists, the id map, attribute
    /// records and search buffers), so the engine can decide when to flush.
    pub fn memory_bytes(&self) -> usize {
        let ids = self.ids.lock().bytes();
        // A pooled scratch holds a visited mark (1 byte) per row, with headroom, and heaps.
        let scratch = self.scratch_pool.lock().len() * (self.rows() * 5 / 4 + 64 * 1024);
        let records = self.record_bytes.load(Ordering::Relaxed);
        self.graph.rows.used_bytes(self.rows())
            + self.graph.upper.used_bytes()
            + ids
            + scratch
            + records
    }

    /// The `k` live records nearest to `query`, nearest first, exploring `ef` candidates
    /// (at least `k`; higher is more accurate and slower). With `ef` at least [`rows`](Self::rows),
    /// every row is scanned and the result is exact.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
    ) -> Result<Vec<Neighbor>, MemtableError> {
        let mut out = Vec::with_capacity(k.min(self.rows()));
        self.search_filtered(query, k, ef, &AdmitAll, &mut out)?;
        Ok(out)
    }

    /// [`search`](Self::search) into `out` (cleared first), returning only rows `admission`
    /// admits (the engine's deletes of a frozen memtable's rows, attribute filters). Rows it
    /// does not admit are walked through. Allocates nothing in steady state.
    pub fn search_filtered<A: Admission>(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        admission: &A,
        out: &mut Vec<Neighbor>,
    ) -> Result<(), MemtableError> {
        out.clear();
        // More results than rows cannot exist; clamping keeps buffers and arithmetic bounded.
        // (Not to the rows present now: a scan also takes rows inserted while it runs.)
        let k = k.min(MAX_ROWS);
        let mut scratch = self.take_scratch();
        let result = self.prepare(query, &mut scratch).map(|()| {
            let Some(entry) = unpack_entry(self.entry.load(Ordering::Acquire)) else { return };
            if k == 0 {
                return;
            }
            if ef >= self.rows() {
                // A candidate list covering every row gains nothing from the graph; a scan is
                // exact by construction, even for a row whose in-links were all pruned away
                // (which inner product makes likely for rows of small norm).
                self.kernels.dispatch(ScanOp {
                    view: self,
                    k,
                    admission,
                    scratch: &mut scratch,
                    out,
                });
                return;
            }
            self.kernels.dispatch(SearchOp {
                view: self,
                entry,
                k,
                ef: ef.max(k),
                admission,
                scratch: &mut scratch,
                out,
            });
        });
        self.put_scratch(scratch);
        result
    }

    /// Checks `vector` and copies it (normalized for cosine) into `scratch.query`.
    fn prepare(&self, vector: &[f32], scratch: &mut Scratch) -> Result<(), MemtableError> {
        validate_vector(self.dim, self.graph.metric, vector)?;
        scratch.query.clear();
        scratch.query.extend_from_slice(vector);
        if self.graph.metric.needs_normalization() {
            normalize(&mut scratch.query).map_err(|_| MemtableError::ZeroVector)?;
        }
        Ok(())
    }

    /// The level of `row`: `floor(-ln(u) * mL)` for a uniform `u` hashed from seed and row.
    fn level_for(&self, row: u32) -> usize {
        let mut z = self.seed ^ (u64::from(row)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let uniform = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        ((-uniform.ln() * self.level_scale) as usize).min(MAX_LEVEL)
    }

    /// Reserves a row for `scratch.query`, publishes `id` on it and links it into the graph.
    fn insert(
        &self,
        id: u64,
        record: Option<Record>,
        scratch: &mut Scratch,
    ) -> Result<(), MemtableError> {
        // Never past MAX_ROWS: a counter that kept counting refused inserts would wrap and hand
        // out a published row again.
        let row = self
            .next_row
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                ((r as usize) < MAX_ROWS).then_some(r + 1)
            })
            .map_err(|_| MemtableError::Full { capacity: MAX_ROWS })?;
        let rows = &self.graph.rows;
        rows.allocate(row);
        let mut level = self.level_for(row);
        let upper = if level > 0 { self.graph.upper.allocate(level) } else { None };
        if upper.is_none() {
            level = 0; // an exhausted arena only costs this row its upper levels
        }
        if let Some(record) = &record {
            let bytes = size_of::<Record>() + record.heap_bytes();
            self.record_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        rows.init(row, id, &scratch.query, record, level as u8, upper.unwrap_or(NO_UPPER));
        {
            let mut ids = self.ids.lock();
            match ids.insert(id, row, |r| rows.id(r)) {
                Some(old) => {
                    self.has_deleted.store(true, Ordering::Relaxed);
                    rows.delete(old);
                }
                None => {
                    self.live.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.link(row, level, scratch);
        Ok(())
    }

    fn link(&self, row: u32, level: usize, scratch: &mut Scratch) {
        let current = unpack_entry(self.entry.load(Ordering::Acquire));
        let entry = match current {
            Some((_, top)) if level <= top => current.expect("matched Some"),
            _ => {
                let _top = self.top_lock.lock();
                match unpack_entry(self.entry.load(Ordering::Acquire)) {
                    None => {
                        self.entry.store(pack_entry(row, level), Ordering::Release);
                        return;
                    }
                    Some(entry) if level > entry.1 => {
                        self.run_insert(row, entry, scratch);
                        self.entry.store(pack_entry(row, level), Ordering::Release);
                        return;
                    }
                    Some(entry) => entry,
                }
            }
        };
        self.run_insert(row, entry, scratch);
    }

    fn run_insert(&self, row: u32, entry: (u32, usize), scratch: &mut Scratch) {
        let rows_hint = self.rows();
        self.kernels.dispatch(InsertOp { graph: &self.graph, row, entry, scratch, rows_hint });
    }

    fn take_scratch(&self) -> Scratch {
        self.scratch_pool.lock().pop().unwrap_or_default()
    }

    fn put_scratch(&self, scratch: Scratch) {
        self.scratch_pool.lock().push(scratch);
    }
}

impl FrozenMemtable {
    /// Every live record as `(id, vector)`, in row order: stable for a given frozen memtable.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[f32])> + '_ {
        let rows = &self.graph.rows;
        // Frozen: no write is in flight, so a row below `rows()` that is not published belongs to
        // an insert that failed (panicked) after reserving it; skip it.
        (0..self.rows() as u32)
            .filter(|&row| rows.is_published(row) && !rows.is_deleted(row))
            .map(|row| (rows.id(row), rows.vector(row)))
    }

    /// [`iter`](Self::iter) with each record's row number: `(row, id, vector)`.
    pub fn live_rows(&self) -> impl Iterator<Item = (Row, u64, &[f32])> + '_ {
        let rows = &self.graph.rows;
        (0..self.rows() as u32)
            .filter(|&row| rows.is_published(row) && !rows.is_deleted(row))
            .map(|row| (row, rows.id(row), rows.vector(row)))
    }

    /// The vector of row `row` (as stored: normalized for cosine), live or not.
    ///
    /// # Panics
    /// If `row >= rows()`.
    pub fn row_vector(&self, row: Row) -> &[f32] {
        assert!((row as usize) < self.rows(), "row {row} beyond {} rows", self.rows());
        self.graph.rows.vector(row)
    }
}

/// Checks that `vector` can be stored (or searched for) in a memtable of `dim`-dimensional
/// vectors under `metric`: the right length, finite components, a norm small enough that every
/// distance stays finite, and not zero under cosine.
pub fn validate_vector(dim: usize, metric: Metric, vector: &[f32]) -> Result<(), MemtableError> {
    if vector.len() != dim {
        return Err(MemtableError::DimensionMismatch { expected: dim, found: vector.len() });
    }
    if let Some((index, &value)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MemtableError::NonFinite { index, value });
    }
    // Bounded norms keep every distance finite: |a·b| <= |a||b| and |a-b|^2 <= 4 max(|a|^2,
    // |b|^2), so no sum can reach infinity, nor infinity minus infinity (NaN).
    let norm_squared: f64 = vector.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if norm_squared > MAX_NORM_SQUARED {
        return Err(MemtableError::TooLarge { norm: norm_squared.sqrt() });
    }
    if metric.needs_normalization() && norm_squared == 0.0 {
        return Err(MemtableError::ZeroVector);
    }
    Ok(())
}

struct InsertOp<'a> {
    graph: &'a Graph,
    row: u32,
    entry: (u32, usize),
    scratch: &'a mut Scratch,
    rows_hint: usize,
}

impl WithSimd for InsertOp<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        self.graph.insert(simd, self.row, self.entry, self.scratch, self.rows_hint);
    }
}

/// Appends up to `k` results to `out` from `(row, distance)` pairs given nearest first, at most
/// one per user id (the nearest), so a row superseded during the search never doubles an id.
fn collect_unique_ids(
    rows: &RowStore,
    nearest_first: impl Iterator<Item = (u32, f32)>,
    k: usize,
    out: &mut Vec<Neighbor>,
) {
    for (row, distance) in nearest_first {
        if out.len() == k {
            break;
        }
        let id = rows.id(row);
        if out.iter().all(|n| n.id != id) {
            out.push(Neighbor { id, distance });
        }
    }
}

struct SearchOp<'a, A> {
    view: &'a MemtableView,
    entry: (u32, usize),
    k: usize,
    ef: usize,
    admission: &'a A,
    scratch: &'a mut Scratch,
    out: &'a mut Vec<Neighbor>,
}

impl<A: Admission> WithSimd for SearchOp<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let SearchOp { view, entry: (entry_row, top), k, ef, admission, scratch, out } = self;
        let graph = &view.graph;
        let query = std::mem::take(&mut scratch.query);
        let mut current = Scored {
            distance: graph.metric.distance_simd(simd, &query, graph.rows.vector(entry_row)),
            row: entry_row,
        };
        for level in (1..=top).rev() {
            current = graph.greedy(simd, &query, current, level);
        }
        scratch.visited.reset(view.rows());
        if view.has_deleted.load(Ordering::Relaxed) {
            let returnable = |row: u32| !graph.rows.is_deleted(row) && admission.admits(row);
            graph.search_level(simd, &query, current, ef, 0, scratch, &returnable);
        } else {
            let returnable = |row: u32| admission.admits(row);
            graph.search_level(simd, &query, current, ef, 0, scratch, &returnable);
        }
        scratch.sort_results();
        // A search racing an upsert can meet the old row while it is still live and the new one
        // once it is linked; keep only the nearest row of each id.
        let nearest_first = scratch.sorted.iter().map(|s| (s.row, s.distance));
        collect_unique_ids(&graph.rows, nearest_first, k, out);
        scratch.query = query;
    }
}

/// Every published, live, passing row: the exact answer.
struct ScanOp<'a, A> {
    view: &'a MemtableView,
    k: usize,
    admission: &'a A,
    scratch: &'a mut Scratch,
    out: &'a mut Vec<Neighbor>,
}

impl<A: Admission> WithSimd for ScanOp<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let ScanOp { view, k, admission, scratch, out } = self;
        let rows = &view.graph.rows;
        // Candidates by id, not row: the scan may take many versions of one record (each live
        // when visited, then superseded by a row a later pass takes), as many as upserts of it
        // run meanwhile, and a bounded collector of rows would let them crowd other records
        // out. When 2k are held, they are cut to the k nearest distinct ids; a row farther than
        // the k-th of those (`bound`) cannot make the result.
        let candidates = &mut scratch.exact_sorted;
        candidates.clear();
        let mut bound = f32::INFINITY;
        // Rows reserved during the scan are scanned too, until no more arrive: an upsert
        // publishes its new row before it deletes the old one, so a scan that found the old row
        // deleted reads a row count that covers the new one, and never misses the record.
        let mut start = 0;
        loop {
            let end = view.rows() as u32;
            for row in start..end {
                if !rows.is_published(row) || rows.is_deleted(row) || !admission.admits(row) {
                    continue;
                }
                let distance =
                    view.graph.metric.distance_simd(simd, &scratch.query, rows.vector(row));
                if distance > bound {
                    continue;
                }
                if candidates.len() >= 2 * k {
                    bound = keep_nearest_ids(candidates, k);
                    if distance > bound {
                        continue;
                    }
                }
                candidates.push(Neighbor { id: rows.id(row), distance });
            }
            if view.rows() as u32 == end {
                break;
            }
            start = end;
        }
        keep_nearest_ids(candidates, k);
        candidates.sort_unstable_by(Neighbor::rank_cmp);
        out.extend_from_slice(candidates);
    }
}

/// Cuts `candidates` to the `k` nearest distinct ids, each at its nearest distance (ties by the
/// smaller id, as `TopK`); returns the farthest kept distance once `k` are kept, else infinity.
fn keep_nearest_ids(candidates: &mut Vec<Neighbor>, k: usize) -> f32 {
    candidates.sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.distance.total_cmp(&b.distance)));
    candidates.dedup_by_key(|n| n.id);
    if candidates.len() > k {
        candidates.select_nth_unstable_by(k - 1, Neighbor::rank_cmp);
        candidates.truncate(k);
    }
    if candidates.len() < k {
        return f32::INFINITY;
    }
    candidates.iter().map(|n| n.distance).fold(f32::NEG_INFINITY, f32::max)
}
