//! What a search reads: the active memtable, frozen memtables waiting for a commit, and
//! committed segments, each with the deletion bitmap that hides superseded and deleted rows.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use strata_attributes::{Predicate, Record, SegmentPredicate};
use strata_manifest::{DeletionVector, Manifest, SegmentRecord};
use strata_memtable::{FrozenMemtable, Memtable, MemtableError, MemtableView};
use strata_quantize::{Admission, AdmitAll, AdmitIf, Admitted, Metric, Neighbor, TopK, normalize};

use crate::bitmap::AtomicBitmap;
use crate::compaction::SegmentInfo;
use crate::search_params::FilterPlan;
use crate::segment::{Segment, SegmentData, SegmentScratch, VamanaParams};
use crate::{Result, SearchParams};

/// A segment with at most `1 / TAIL_RATIO` of the largest segment's rows is searched with the
/// larger segments' k-th distance as a bound (`VamanaSegment::search_within`).
const TAIL_RATIO: u64 = 8;

/// Neighbours a range search asks for first (then twice as many each round).
const RANGE_FIRST_K: usize = 32;

/// Marks a memtable row that was not live when the memtable froze.
pub(crate) const NOT_LIVE: u32 = u32::MAX;

/// Rows that a commit will write as segment `segment_id`: a frozen memtable, or a batch that
/// [`Db::ingest`](crate::Db::ingest) hands over whole. Rows are numbered as the future segment
/// numbers them, so deletes can be recorded against them before the segment exists.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) segment_id: u64,
    pub(crate) rows: PendingRows,
    /// Segment row -> id.
    pub(crate) ids: Vec<u64>,
    pub(crate) deleted: Arc<AtomicBitmap>,
}

/// Where a pending tier's vectors are.
#[derive(Debug)]
pub(crate) enum PendingRows {
    /// A frozen memtable, searched through its graph. Its live rows were numbered (in the
    /// memtable's stable order) when it froze.
    Memtable {
        memtable: FrozenMemtable,
        /// Segment row -> memtable row.
        rows: Vec<u32>,
        /// Memtable row -> segment row, or [`NOT_LIVE`].
        segment_rows: Vec<u32>,
    },
    /// An ingested batch (validated, normalized for cosine, one row per id), scanned exactly:
    /// it lives only for the commit that writes it.
    Batch {
        dim: usize,
        metric: Metric,
        vectors: Vec<f32>,
        /// Each row's attributes (empty: no row has any).
        records: Vec<Option<Record>>,
    },
}

impl Pending {
    /// Freezes `memtable` as the future segment `segment_id`.
    pub(crate) fn freeze(memtable: &Memtable, segment_id: u64) -> Self {
        let frozen = memtable.freeze();
        let mut rows = Vec::with_capacity(frozen.len());
        let mut ids = Vec::with_capacity(frozen.len());
        let mut segment_rows = vec![NOT_LIVE; frozen.rows()];
        for (row, id, _) in frozen.live_rows() {
            segment_rows[row as usize] = rows.len() as u32;
            rows.push(row);
            ids.push(id);
        }
        let deleted = Arc::new(AtomicBitmap::new(rows.len() as u64));
        let rows = PendingRows::Memtable { memtable: frozen, rows, segment_rows };
        Pending { segment_id, rows, ids, deleted }
    }

    /// A batch of distinct ids and their prepared vectors as the future segment `segment_id`.
    pub(crate) fn batch(
        segment_id: u64,
        dim: usize,
        metric: Metric,
        ids: Vec<u64>,
        vectors: Vec<f32>,
        records: Vec<Option<Record>>,
    ) -> Self {
        debug_assert_eq!(ids.len() * dim, vectors.len());
        debug_assert!(records.is_empty() || records.len() == ids.len());
        let deleted = Arc::new(AtomicBitmap::new(ids.len() as u64));
        let rows = PendingRows::Batch { dim, metric, vectors, records };
        Pending { segment_id, rows, ids, deleted }
    }

    /// Whether any row may have attributes.
    pub(crate) fn has_records(&self) -> bool {
        match &self.rows {
            PendingRows::Memtable { memtable, rows, .. } => {
                rows.iter().any(|&row| memtable.record(row).is_some())
            }
            PendingRows::Batch { records, .. } => records.iter().any(Option::is_some),
        }
    }

    /// The attributes of row `row`, if it has any.
    pub(crate) fn record(&self, row: u32) -> Option<&Record> {
        match &self.rows {
            PendingRows::Memtable { memtable, rows, .. } => memtable.record(rows[row as usize]),
            PendingRows::Batch { records, .. } => records.get(row as usize)?.as_ref(),
        }
    }

    /// Rows of the future segment.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn vector(&self, row: u32) -> &[f32] {
        match &self.rows {
            PendingRows::Memtable { memtable, rows, .. } => memtable.row_vector(rows[row as usize]),
            PendingRows::Batch { dim, vectors, .. } => {
                &vectors[row as usize * dim..(row as usize + 1) * dim]
            }
        }
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        let rows = match &self.rows {
            PendingRows::Memtable { memtable, rows, segment_rows } => {
                memtable.memory_bytes() + (rows.capacity() + segment_rows.capacity()) * 4
            }
            PendingRows::Batch { vectors, records, .. } => {
                vectors.capacity() * 4
                    + records.capacity() * size_of::<Option<Record>>()
                    + records.iter().flatten().map(Record::heap_bytes).sum::<usize>()
            }
        };
        rows + self.ids.capacity() * 8
    }

    /// The best `k` live rows for `query` that match `predicate` into `out` (nearest first).
    fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        predicate: Option<&Predicate>,
        top: &mut TopK,
        out: &mut Vec<Neighbor>,
    ) -> Result<()> {
        match &self.rows {
            PendingRows::Memtable { memtable, segment_rows, .. } => {
                let keep = AdmitIf(|row: u32| {
                    let segment_row = segment_rows[row as usize];
                    segment_row != NOT_LIVE
                        && !self.deleted.contains(segment_row)
                        && record_matches(predicate, memtable.record(row))
                });
                let live = self.ids.len() - self.deleted.count() as usize;
                search_graph(memtable, query, k, ef, live, &keep, out)
            }
            PendingRows::Batch { dim, metric, vectors, records } => {
                top.reset(k);
                for (row, vector) in vectors.chunks_exact(*dim).enumerate() {
                    let record = records.get(row).and_then(Option::as_ref);
                    if !self.deleted.contains(row as u32) && record_matches(predicate, record) {
                        top.push(self.ids[row], metric.distance(query, vector));
                    }
                }
                top.sorted_into(out);
                Ok(())
            }
        }
    }
}

/// Whether a memtable or batch row with attributes `record` matches `predicate` (no
/// predicate: every row; no attributes: as a record without any).
#[inline]
fn record_matches(predicate: Option<&Predicate>, record: Option<&Record>) -> bool {
    // An empty record allocates nothing.
    predicate.is_none_or(|p| record.map_or_else(|| p.matches(&Record::empty()), |r| p.matches(r)))
}

/// A segment's admission under a filter: rows not deleted that match the filter, and, when the
/// planner listed them, the matching rows (deleted ones included; `admits` drops those).
struct Filtered<'a> {
    deleted: &'a AtomicBitmap,
    filter: &'a SegmentPredicate<'a>,
    /// The matching rows: listed by the planner for a scan, or on first use by a walk that
    /// gives up and scans them.
    listed: OnceLock<Vec<u32>>,
    estimate: u64,
}

impl Admission for Filtered<'_> {
    #[inline]
    fn admits(&self, row: u32) -> bool {
        !self.deleted.contains(row) && self.filter.matches(row)
    }

    /// A listed row matches by construction: only the delete is checked.
    #[inline]
    fn admits_listed(&self, row: u32) -> bool {
        !self.deleted.contains(row)
    }

    fn admitted(&self) -> Admitted {
        match self.listed.get() {
            Some(rows) => Admitted::AtMost(rows.len() as u64),
            None => Admitted::AtMost(self.estimate),
        }
    }

    fn rows(&self) -> Option<&[u32]> {
        Some(self.listed.get_or_init(|| self.filter.rows()))
    }
}

/// A tier's live rows: those its deletion bitmap does not mark.
struct NotDeleted<'a>(&'a AtomicBitmap);

impl Admission for NotDeleted<'_> {
    #[inline]
    fn admits(&self, row: u32) -> bool {
        !self.0.contains(row)
    }

    fn admitted(&self) -> Admitted {
        Admitted::Exact(self.0.rows().saturating_sub(self.0.count()))
    }
}

/// How a segment is searched under a filter.
enum Strategy {
    /// An exact scan of the listed matching rows.
    Scan,
    /// A graph walk through non-matching rows, its list scaled by `list_scale`.
    Walk { list_scale: f32 },
}

struct Plan {
    strategy: Strategy,
    listed: Option<Vec<u32>>,
    estimate: u64,
}

/// The scan-or-walk decision for one segment (ADR 0004). A scan of `n` matching rows costs
/// `n` code distances (then a short exact rerank); a walk that must expand `L / s` nodes to
/// meet `L` matching ones (at selectivity `s = n / N`) costs about [`WALK_COST`] scanned rows
/// per node (its neighbours' code distances and its node read). They break even at
/// `n = sqrt(WALK_COST * L * N)`. Below it, and always for a flat segment (which scans
/// anyway), the matching rows are listed and scanned.
fn plan_filtered(
    segment: &Segment,
    filter: &SegmentPredicate<'_>,
    k: usize,
    vamana: &VamanaParams,
    forced: FilterPlan,
) -> Plan {
    let rows = segment.rows().max(1);
    let estimate = filter.estimate();
    let list = segment.search_list(k, vamana) as f64;
    let scan_up_to = match (&segment.data, forced) {
        (SegmentData::Flat(_), _) | (_, FilterPlan::Scan) => rows,
        (_, FilterPlan::Walk) => 0,
        (SegmentData::Vamana(_), FilterPlan::Auto) => {
            ((WALK_COST * list * rows as f64).sqrt() as u64).max(k as u64)
        }
    };
    // Listing costs about the rows listed: worth it when the estimate says a scan is near.
    if estimate <= scan_up_to.saturating_mul(LIST_SLACK) {
        let listed = filter.rows();
        let matching = listed.len() as u64;
        if matching <= scan_up_to {
            return Plan { strategy: Strategy::Scan, listed: Some(listed), estimate: matching };
        }
        let list_scale = walk_scale(matching, rows);
        // Kept for a walk that gives up: its scan then reads only these.
        let strategy = Strategy::Walk { list_scale };
        return Plan { strategy, listed: Some(listed), estimate: matching };
    }
    Plan {
        strategy: Strategy::Walk { list_scale: walk_scale(estimate, rows) },
        listed: None,
        estimate,
    }
}

/// Scanned rows one walked node costs. Measured with forced plans (`bench --filter-plan`) at
/// 1-20% selectivity on 100k x 128: docs/BENCHMARKS.md, "Attributes and filtered search".
const WALK_COST: f64 = 16.0;
/// A filter is listed when its estimate is within this factor of the scan threshold (listing
/// costs a copy per matching row: at 4x, listing 20k rows for a walk cost more than the walk).
const LIST_SLACK: u64 = 2;
/// The largest factor a walk's list grows by under a selective filter.
const MAX_LIST_SCALE: f32 = 64.0;

/// How much longer a walk's list is at selectivity `matching / rows`: `1 / s`, capped.
fn walk_scale(matching: u64, rows: u64) -> f32 {
    let selectivity = (matching.max(1) as f64 / rows.max(1) as f64).min(1.0);
    ((1.0 / selectivity) as f32).clamp(1.0, MAX_LIST_SCALE)
}

/// A committed segment, open.
#[derive(Debug)]
pub(crate) struct LiveSegment {
    /// What the current version records about it (its committed deletion vector included).
    pub(crate) record: SegmentRecord,
    pub(crate) segment: Arc<Segment>,
    pub(crate) deleted: Arc<AtomicBitmap>,
    /// The deleted rows as of the current version (what `record.deletes` names): what a
    /// [`crate::Snapshot`] of that version reads while `deleted` takes new deletes.
    pub(crate) committed: Arc<DeletionVector>,
}

impl LiveSegment {
    /// Whether deletes happened since the committed deletion vector.
    pub(crate) fn is_dirty(&self) -> bool {
        self.deleted.count() != self.record.deletes.map_or(0, |d| d.deleted)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.segment.memory_bytes() + self.deleted.memory_bytes()
    }
}

/// An immutable view of every tier, swapped as a whole by commits and memtable rotations.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) active: Arc<Memtable>,
    /// Oldest first.
    pub(crate) pending: Vec<Arc<Pending>>,
    /// Oldest first (by id).
    pub(crate) segments: Vec<Arc<LiveSegment>>,
}

/// Buffers reused by every search on a thread, so a steady-state search allocates only its
/// result.
#[derive(Default)]
struct Scratch {
    /// The query, normalized under cosine.
    query: Vec<f32>,
    top: TopK,
    tier: Vec<Neighbor>,
    merged: Vec<Neighbor>,
    segment: SegmentScratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Searches a graph tier holding about `live` live records; if the graph walk comes back with
/// fewer than `min(k, live)` results (a graph cut up by many deletions can strand live rows),
/// scans the tier exactly instead.
fn search_graph(
    memtable: &MemtableView,
    query: &[f32],
    k: usize,
    ef: usize,
    live: usize,
    keep: &impl Admission,
    out: &mut Vec<Neighbor>,
) -> Result<()> {
    memtable.search_filtered(query, k, ef, keep, out)?;
    if out.len() < k.min(live) && ef < memtable.rows() {
        memtable.search_filtered(query, k, usize::MAX, keep, out)?;
    }
    Ok(())
}

impl Snapshot {
    /// The `params.k` nearest live records to `query` (already validated) that match
    /// `predicate` (the bound `params.filter`).
    pub(crate) fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        predicate: Option<&Predicate>,
    ) -> Result<Vec<Neighbor>> {
        let k = params.k;
        let ef = params.ef.max(k);
        let vamana = VamanaParams {
            effort: params.effort,
            beam_width: params.beam_width.max(1),
            list_scale: 1.0,
            rerank_confidence: params.rerank_confidence,
            filter_plan: params.filter_plan,
        };
        let predicate = predicate.filter(|p| !p.is_all());
        if predicate.is_some_and(Predicate::is_none) {
            return Ok(Vec::new());
        }
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            let mut prepared = std::mem::take(&mut scratch.query);
            prepared.clear();
            prepared.extend_from_slice(query);
            if self.active.metric().needs_normalization() {
                normalize(&mut prepared).map_err(|_| MemtableError::ZeroVector)?;
            }
            let result = match params.radius {
                None => self.search_prepared(&prepared, k, ef, &vamana, predicate, scratch),
                Some(radius) => {
                    self.search_range(&prepared, radius, params, &vamana, predicate, scratch)
                }
            };
            scratch.query = prepared;
            result
        })
    }

    /// Every record within `radius` (at most `params.k`): k-nearest searches for a doubling
    /// number of neighbours until the farthest found is beyond the radius or fewer come back
    /// than asked for (every tier returns `min(k, admitted)`, so fewer means all were seen).
    fn search_range(
        &self,
        query: &[f32],
        radius: f32,
        params: &SearchParams,
        vamana: &VamanaParams,
        predicate: Option<&Predicate>,
        scratch: &mut Scratch,
    ) -> Result<Vec<Neighbor>> {
        let cap = params.k;
        let mut k = cap.min(RANGE_FIRST_K);
        loop {
            let ef = params.ef.max(k);
            let mut hits = self.search_prepared(query, k, ef, vamana, predicate, scratch)?;
            let more = hits.len() == k && hits.last().is_some_and(|n| n.distance <= radius);
            if !more || k == cap {
                // `<=` is false for NaN: a NaN radius keeps nothing.
                hits.retain(|n| n.distance <= radius);
                return Ok(hits);
            }
            k = k.saturating_mul(2).min(cap);
        }
    }

    fn search_prepared(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        vamana: &VamanaParams,
        predicate: Option<&Predicate>,
        scratch: &mut Scratch,
    ) -> Result<Vec<Neighbor>> {
        scratch.merged.clear();
        // Oldest tier first. An upsert inserts the new version into the active memtable
        // before it marks the old row deleted, so a search that finds the old row already
        // deleted is sure to find the new version in a tier it reads later.
        scratch.top.reset(k);
        // Largest first: its results bound the searches of the smaller segments.
        let mut order = std::mem::take(&mut scratch.segment.order);
        order.clear();
        order.extend(0..self.segments.len());
        order.sort_by_key(|&i| std::cmp::Reverse(self.segments[i].segment.rows()));
        let largest = order.first().map_or(0, |&i| self.segments[i].segment.rows());
        for &i in &order {
            let live = &self.segments[i];
            let deleted = &*live.deleted;
            // Only a tail segment's walk is bounded by what the larger ones found. Segments of
            // comparable size each hold a share of the top k, and a bounded walk there stopped
            // on the plateaus of its descent: at 10M rows in five graphs of 1.2-2.2M, recall
            // at L 16 was 0.71 bounded and 0.98 unbounded.
            let bounded = live.segment.rows().saturating_mul(TAIL_RATIO) <= largest;
            let segment = &live.segment;
            let Some(predicate) = predicate else {
                let admission = NotDeleted(deleted);
                segment.search(
                    query,
                    k,
                    vamana,
                    bounded,
                    &admission,
                    &mut scratch.top,
                    &mut scratch.segment,
                )?;
                continue;
            };
            let filter = segment.columns.bind(predicate);
            let plan = plan_filtered(segment, &filter, k, vamana, vamana.filter_plan);
            let listed = OnceLock::new();
            if let Some(rows) = plan.listed {
                let _ = listed.set(rows);
            }
            let admission = Filtered { deleted, filter: &filter, listed, estimate: plan.estimate };
            match plan.strategy {
                Strategy::Scan => {
                    segment.scan(query, &admission, &mut scratch.top, &mut scratch.segment)?
                }
                Strategy::Walk { list_scale } => {
                    let params = VamanaParams { list_scale, ..*vamana };
                    segment.search(
                        query,
                        k,
                        &params,
                        bounded,
                        &admission,
                        &mut scratch.top,
                        &mut scratch.segment,
                    )?;
                }
            }
        }
        scratch.segment.order = order;
        // Segments offer exact distances (a Vamana search reranks with full vectors): one
        // collector across all of them prunes the most.
        scratch.top.sorted_into(&mut scratch.tier);
        scratch.merged.extend_from_slice(&scratch.tier);
        for pending in &self.pending {
            pending.search(query, k, ef, predicate, &mut scratch.top, &mut scratch.tier)?;
            scratch.merged.extend_from_slice(&scratch.tier);
        }
        let live = self.active.len();
        match predicate {
            None => search_graph(&self.active, query, k, ef, live, &AdmitAll, &mut scratch.tier)?,
            Some(_) => {
                let active = &self.active;
                let matching = AdmitIf(|row| record_matches(predicate, active.record(row)));
                search_graph(active, query, k, ef, live, &matching, &mut scratch.tier)?;
            }
        }
        scratch.merged.extend_from_slice(&scratch.tier);

        // An upsert racing this search may leave an id in two tiers for a moment: keep the
        // nearer one.
        scratch.merged.sort_unstable_by(Neighbor::rank_cmp);
        let mut out: Vec<Neighbor> = Vec::with_capacity(k.min(scratch.merged.len()));
        for candidate in &scratch.merged {
            if out.len() == k {
                break;
            }
            if !out.iter().any(|kept| kept.id == candidate.id) {
                out.push(*candidate);
            }
        }
        Ok(out)
    }

    /// The pending tier or segment with id `segment_id`.
    pub(crate) fn vector_of(&self, segment_id: u64, row: u32) -> Result<Option<Vec<f32>>> {
        if let Some(pending) = self.pending.iter().find(|p| p.segment_id == segment_id) {
            return Ok((!pending.deleted.contains(row)).then(|| pending.vector(row).to_vec()));
        }
        match self.segments.iter().find(|s| s.record.id == segment_id) {
            Some(live) if !live.deleted.contains(row) => {
                Ok(Some(live.segment.vector(row)?.to_vec()))
            }
            _ => Ok(None),
        }
    }

    /// The attributes of row `row` of the pending tier or segment `segment_id`, if the row is
    /// live (a row without attributes: an empty record).
    pub(crate) fn record_of(&self, segment_id: u64, row: u32) -> Result<Option<Record>> {
        if let Some(pending) = self.pending.iter().find(|p| p.segment_id == segment_id) {
            let record = || pending.record(row).cloned().unwrap_or_default();
            return Ok((!pending.deleted.contains(row)).then(record));
        }
        match self.segments.iter().find(|s| s.record.id == segment_id) {
            Some(live) if !live.deleted.contains(row) => Ok(Some(live.segment.record(row)?)),
            _ => Ok(None),
        }
    }

    /// The committed segments as the compaction policy sees them.
    pub(crate) fn segment_infos(&self) -> Vec<SegmentInfo> {
        self.manifest
            .segments
            .iter()
            .map(|r| SegmentInfo { id: r.id, kind: r.kind, rows: r.rows, live_rows: r.live_rows() })
            .collect()
    }
}
