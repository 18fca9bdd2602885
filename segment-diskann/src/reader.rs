//! Opening and searching a Vamana segment.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_quantize::{Admission, Admitted, Codec, Metric, Neighbor, QueryScratch, TopK, Visited};
use strata_segment::{FileSpec, SectionSpec, SegmentFile};
use strata_storage::ObjectBytes;
use zerocopy::FromBytes;

pub use strata_segment::Expected;

use crate::Calibrated;
use crate::format::{
    CalibrationHead, CalibrationPoint, FORMAT, HEADER_LEN, Header, MAX_ROWS, NodeLayout,
    SECTION_CALIBRATION, SECTION_CODEBOOK, SECTION_CODES, SECTION_IDS, SECTION_NODES,
    SECTION_SECTOR_CRCS, SECTOR_LEN,
};
use crate::list::CandidateList;
use crate::walk::{Nodes, Start, Walk, WalkIndex, beam_search};
use crate::{FileError, Problem, Result, VamanaError};

/// The Vamana segment's file: its magic and the sections it knows.
static SPEC: FileSpec = FileSpec {
    format: FORMAT,
    name: "vamana",
    sections: &[
        SectionSpec { kind: SECTION_NODES, align: SECTOR_LEN as u64 },
        SectionSpec { kind: SECTION_IDS, align: 64 },
        SectionSpec { kind: SECTION_CODEBOOK, align: 8 },
        SectionSpec { kind: SECTION_CODES, align: 64 },
        SectionSpec { kind: SECTION_SECTOR_CRCS, align: 8 },
        SectionSpec { kind: SECTION_CALIBRATION, align: 8 },
    ],
};

/// How hard a search works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchParams {
    /// L: candidates kept while walking the graph, at least k. The bound that trades recall for
    /// speed: every one of them is expanded (its sector read, its exact distance computed).
    pub search_list: usize,
    /// W: candidates expanded per round. Wider rounds suit storage with high latency and
    /// parallel reads (DiskANN uses 4 on SSDs); from the page cache one node at a time is
    /// fastest (measured: W 4 costs 12-20% more hops for the same recall).
    pub beam_width: usize,
    /// For codes with error bounds (RaBitQ): an expanded node's exact distance is computed
    /// only while `code distance - rerank_confidence * bound` could still beat the k-th exact
    /// distance found; the others are walked through without reading their vectors. The bound
    /// is about one standard deviation of the code's error; `f32::INFINITY` scores every
    /// expanded node. Ignored for other codecs. Default [`DEFAULT_RERANK_CONFIDENCE`].
    pub rerank_confidence: f32,
}

/// The default [`SearchParams::rerank_confidence`]: a node is left unscored only when its
/// code puts it three standard deviations beyond the k-th best (a 0.13% chance, one-sided,
/// that it belonged).
pub const DEFAULT_RERANK_CONFIDENCE: f32 = 3.0;

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            search_list: 64,
            beam_width: 1,
            rerank_confidence: DEFAULT_RERANK_CONFIDENCE,
        }
    }
}

/// What one search did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Nodes expanded (each read from its sector and scored exactly).
    pub hops: u64,
    /// 4 KiB sectors read: `hops` times the sectors a node occupies.
    pub sectors_read: u64,
    /// Rows scored by their codes.
    pub code_distances: u64,
    /// Nodes expanded that the admission did not admit (deleted or filtered out): dead
    /// weight under churn, wasted expansion under a filter (ADR 0004).
    pub walked_not_admitted: u64,
    /// Nodes expanded whose exact distance was not computed: their code's error bound put them
    /// beyond the k-th best ([`SearchParams::rerank_confidence`]).
    pub exact_skipped: u64,
}

/// Reusable buffers for [`VamanaSegment::search`], so a steady-state search allocates nothing.
#[derive(Debug, Default)]
pub struct SearchScratch {
    pub(crate) list: CandidateList,
    pub(crate) visited: Visited,
    pub(crate) query: QueryScratch,
    /// The round's nodes to expand, with their code distances.
    pub(crate) beam: Vec<(u32, f32)>,
    pub(crate) pending: Vec<u32>,
    pub(crate) distances: Vec<f32>,
    pub(crate) best: TopK,
    pub(crate) sorted: Vec<Neighbor>,
    /// Where a walk inside the admitted rows starts.
    pub(crate) seeds: Vec<u32>,
}

/// An open, immutable Vamana segment.
///
/// Opening reads the header, the section directory, the id column and the sector checksums,
/// and loads the codebook and the codes into RAM; the node sectors stay in the mapped object.
/// Each node sector is checked against its checksum, and its neighbour lists against the row
/// count, the first time a search reads it, so opening never reads the vectors and a damaged
/// sector is reported, not searched.
#[derive(Debug)]
pub struct VamanaSegment {
    file: SegmentFile,
    layout: NodeLayout,
    medoid: u32,
    nodes: Range<usize>,
    nodes_crc32: u32,
    sector_crcs: Range<usize>,
    /// One bit per node group (a sector, or a large node's sectors): checked already.
    checked: Box<[AtomicU64]>,
    codec: Codec,
    codes: Vec<u8>,
    /// Measured recall@10 by list size, ascending; empty if the segment has none.
    calibration: Vec<Calibrated>,
}

impl VamanaSegment {
    /// Decodes a segment from the whole object's bytes; `object` names it in errors.
    pub fn from_bytes(object: &str, bytes: ObjectBytes) -> Result<Self> {
        let file = SegmentFile::parse(&SPEC, object, bytes)?;
        let corrupt = |problem| VamanaError::from(file.corrupt(problem));
        let header = Header::read_from_bytes(&file.header()[..HEADER_LEN]).expect("64 bytes");
        let field = |field, value: u64| corrupt(Problem::HeaderField { field, value });
        let (dim, rows) = (file.dim(), file.rows());
        let max_degree = header.max_degree.get() as usize;
        let layout =
            NodeLayout::new(dim, max_degree).filter(|_| max_degree > 0).ok_or_else(|| {
                match max_degree {
                    0 => field("max_degree", 0),
                    _ => field("dim", dim as u64),
                }
            })?;
        if rows == 0 || rows > MAX_ROWS {
            return Err(field("rows", rows));
        }
        if u64::from(header.medoid.get()) >= rows {
            return Err(field("medoid", header.medoid.get().into()));
        }
        for (name, recorded, derived) in [
            ("node_len", header.node_len.get(), layout.node_len),
            ("nodes_per_sector", header.nodes_per_sector.get(), layout.nodes_per_sector),
            ("sectors_per_node", header.sectors_per_node.get(), layout.sectors_per_node),
        ] {
            if recorded as usize != derived {
                return Err(field(name, recorded.into()));
            }
        }

        let sectors = layout.sectors(rows);
        let nodes = file.require(SECTION_NODES)?.clone();
        file.check_len(&nodes, sectors.saturating_mul(SECTOR_LEN as u64))?;
        let sector_crcs = file.require(SECTION_SECTOR_CRCS)?.clone();
        file.check_len(&sector_crcs, sectors * 4)?;
        file.check_crc(&sector_crcs)?;
        let (codec, codes) = file
            .codes()?
            .ok_or_else(|| corrupt(Problem::SectionCount { kind: SECTION_CODEBOOK }))?;
        file.check_crc(&codes)?;
        let calibration = match file.section(SECTION_CALIBRATION) {
            Some(section) => {
                file.check_crc(section)?;
                decode_calibration(file.bytes_of(section))
                    .ok_or_else(|| corrupt(Problem::Calibration))?
            }
            None => Vec::new(),
        };
        let groups = rows.div_ceil(layout.nodes_per_sector as u64) as usize;
        Ok(VamanaSegment {
            layout,
            medoid: header.medoid.get(),
            nodes: nodes.range,
            nodes_crc32: nodes.crc32,
            sector_crcs: sector_crcs.range,
            checked: (0..groups.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            codes: file.bytes_of(&codes).to_vec(),
            codec,
            calibration,
            file,
        })
    }

    strata_segment::segment_file_methods!();

    /// R: the most neighbours a node has.
    pub fn max_degree(&self) -> usize {
        self.layout.max_degree
    }

    /// The row every search starts from.
    pub fn medoid(&self) -> u32 {
        self.medoid
    }

    /// The codec of the codes held in RAM.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Bytes this segment holds in RAM: the codes, the codec's tables and the sector-check
    /// bits. The mapped object is not counted: the page cache holds what searches touch.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.object().len()
            + self.codes.capacity()
            + self.codec.memory_bytes()
            + self.checked.len() * 8
    }

    /// The build's measured recall@10 by list size, ascending (empty for a segment written
    /// without it).
    pub fn calibration(&self) -> &[Calibrated] {
        &self.calibration
    }

    /// The smallest list size at which the build measured at least `recall`, or the largest
    /// it measured if none reached it; `None` without a calibration.
    pub fn search_list_for(&self, recall: f32) -> Option<usize> {
        let point = self.calibration.iter().find(|p| p.recall >= recall);
        point.or(self.calibration.last()).map(|p| p.search_list as usize)
    }

    /// The vector of row `row`, read from its node.
    ///
    /// # Panics
    /// If `row >= rows()`.
    pub fn vector(&self, row: u32) -> Result<&[f32]> {
        self.node(row).map(|(vector, _)| vector)
    }

    /// The neighbours of row `row`.
    ///
    /// # Panics
    /// If `row >= rows()`.
    pub fn neighbors(&self, row: u32) -> Result<&[u32]> {
        self.node(row).map(|(_, neighbors)| neighbors)
    }

    /// Row `row`'s vector and neighbours, after checking its sector on first use.
    #[inline]
    fn node(&self, row: u32) -> Result<(&[f32], &[u32])> {
        assert!(u64::from(row) < self.rows(), "row {row} of {}", self.rows());
        let group = row as usize / self.layout.nodes_per_sector;
        let bit = 1u64 << (group % 64);
        // Relaxed: the bit caches a pure function of immutable bytes; a thread that misses
        // another's store merely checks the sector again.
        if self.checked[group / 64].load(Ordering::Relaxed) & bit == 0 {
            self.check_group(group)?;
            self.checked[group / 64].fetch_or(bit, Ordering::Relaxed);
        }
        let (_, offset) = self.layout.locate(row);
        Ok(self.node_unchecked(offset))
    }

    /// Starts loading `row`'s vector head and neighbour list (a hint; never faults).
    #[inline]
    fn prefetch_node(&self, row: u32) {
        let (_, offset) = self.layout.locate(row);
        let start = self.nodes.start + offset;
        let node = &self.file.bytes()[start..start + self.layout.node_len];
        strata_quantize::prefetch(node);
        let degree_at = self.layout.degree_at();
        strata_quantize::prefetch(&node[degree_at..]);
    }

    #[inline]
    fn node_unchecked(&self, offset: usize) -> (&[f32], &[u32]) {
        let start = self.nodes.start + offset;
        let node = &self.file.bytes()[start..start + self.layout.node_len];
        let (vector, rest) = node.split_at(self.layout.degree_at());
        let degree = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        // Sectors are 4 KiB aligned in an object mapped 64-byte aligned, and nodes sit at
        // multiples of 4 bytes in them: both casts are aligned. The degree was checked with
        // the sector.
        let vector = <[f32]>::ref_from_bytes(vector).expect("aligned vector");
        let neighbors = <[u32]>::ref_from_bytes(&rest[4..4 + degree * 4]).expect("aligned list");
        (vector, neighbors)
    }

    /// Checks node group `group` (a sector of nodes, or one large node's sectors) against its
    /// checksums, then each of its nodes' degree and neighbour ids.
    fn check_group(&self, group: usize) -> Result<()> {
        let spn = self.layout.sectors_per_node;
        for sector in group * spn..(group + 1) * spn {
            let at = self.sector_crcs.start + sector * 4;
            let recorded =
                u32::from_le_bytes(self.file.bytes()[at..at + 4].try_into().expect("4 bytes"));
            let start = self.nodes.start + sector * SECTOR_LEN;
            if crc32fast::hash(&self.file.bytes()[start..start + SECTOR_LEN]) != recorded {
                return Err(self.corrupt(Problem::SectorChecksum { sector: sector as u64 }));
            }
        }
        let first = group * self.layout.nodes_per_sector;
        let last = (first + self.layout.nodes_per_sector).min(self.rows() as usize);
        for row in first..last {
            let (_, offset) = self.layout.locate(row as u32);
            let at = self.nodes.start + offset + self.layout.degree_at();
            let degree =
                u32::from_le_bytes(self.file.bytes()[at..at + 4].try_into().expect("4 bytes"));
            if degree as usize > self.layout.max_degree {
                return Err(self.corrupt(Problem::Node { row: row as u32 }));
            }
            let (_, neighbors) = self.node_unchecked(offset);
            if neighbors.iter().any(|&next| u64::from(next) >= self.rows()) {
                return Err(self.corrupt(Problem::Node { row: row as u32 }));
            }
        }
        Ok(())
    }

    fn corrupt(&self, problem: Problem) -> VamanaError {
        self.file.corrupt(problem).into()
    }

    /// Checks every byte of the object: the footer's body checksum, the node section's
    /// checksum, and every sector's checksum and neighbour lists (a scrub; searches check only
    /// the sectors they read).
    pub fn verify(&self) -> Result<()> {
        self.file.verify_body()?;
        if crc32fast::hash(&self.file.bytes()[self.nodes.clone()]) != self.nodes_crc32 {
            return Err(self.corrupt(Problem::SectionChecksum { kind: SECTION_NODES }));
        }
        let groups = self.rows().div_ceil(self.layout.nodes_per_sector as u64) as usize;
        (0..groups).try_for_each(|group| self.check_group(group))
    }

    /// Approximate search: a beam search over the codes from the medoid, keeping the
    /// `search_list` nearest candidates by code distance and expanding them nearest first, `beam_width`
    /// at a time. Expanding a row reads its node, which holds the full vector: its exact
    /// distance is computed there, and the `top.k()` nearest expanded rows that `admission`
    /// admits are offered to `top` as `(id, exact distance)`.
    ///
    /// Rows it does not admit (deleted, filtered out) are still walked through, so the graph
    /// stays connected. If fewer than k rows survive, the search repeats with a doubled list,
    /// and finally scans every admitted row, so k results come back whenever k rows are
    /// admitted. A walk that met admitted rows far more rarely than their count predicts
    /// (they lie away from the query) stops doubling at once: many listed rows are walked
    /// within (`walk_within_admitted`), fewer are scanned by their codes.
    ///
    /// `query` must be prepared for the metric (normalized for cosine).
    pub fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        admission: &impl Admission,
        top: &mut TopK,
        scratch: &mut SearchScratch,
    ) -> Result<SearchStats> {
        self.search_within(query, params, f32::INFINITY, admission, top, scratch)
    }

    /// [`search`](Self::search) for a query whose k-th best distance elsewhere is already
    /// `bound` (another segment's result, as a multi-segment search collects them): once the
    /// greedy descent has reached its local minimum (the next candidate is no nearer than one
    /// already expanded) and at least a quarter of the list was expanded, the walk stops at the
    /// first candidate whose code distance exceeds
    /// `bound` by more than the codes' error margin, since nothing beyond it is likely to enter
    /// the top k. Under inner product the bound is ignored: best-first expansion there stops
    /// at once (each candidate is no nearer than the last), which measured 2-4 points of lost
    /// recall. Like Lucene's shared collector across segments, this cuts a segment that
    /// holds few of the query's neighbours to little more than the walk from the medoid. If
    /// the walk stops this way, fewer than k results are not retried.
    pub fn search_within(
        &self,
        query: &[f32],
        params: &SearchParams,
        bound: f32,
        admission: &impl Admission,
        top: &mut TopK,
        scratch: &mut SearchScratch,
    ) -> Result<SearchStats> {
        if query.len() != self.dim() {
            let (expected, found) = (self.dim(), query.len());
            return Err(FileError::DimensionMismatch { expected, found }.into());
        }
        if params.search_list == 0 || params.beam_width == 0 {
            return Err(VamanaError::InvalidParameter("search_list and beam_width must be >= 1"));
        }
        let k = top.k();
        let bound = if self.metric() == Metric::InnerProduct { f32::INFINITY } else { bound };
        let mut stats = SearchStats::default();
        if k == 0 {
            return Ok(stats);
        }
        let rows = self.rows() as usize;
        let mut search_list = params.search_list.max(k);
        let mut retries = 0;
        loop {
            scratch.best.reset(k);
            if search_list >= rows {
                // A list as long as the segment asks for an exact answer.
                self.scan(query, admission, scratch, &mut stats)?;
                break;
            }
            let hostile = retries > 0 && met_too_few_admitted(rows, &stats, admission);
            if hostile || (retries > 0 && scan_instead(search_list, rows, retries)) {
                let walk = Walk {
                    search_list,
                    beam_width: params.beam_width,
                    cutoff: f32::INFINITY,
                    start: Start::WithinAdmitted,
                    confidence: params.rerank_confidence,
                };
                if !(hostile
                    && self.walk_within_admitted(query, walk, admission, scratch, &mut stats)?)
                {
                    self.scan_codes(query, admission, scratch, &mut stats)?;
                }
                break;
            }
            let cutoff = bound_cutoff(bound);
            let walk = Walk {
                search_list,
                beam_width: params.beam_width,
                cutoff,
                start: Start::Medoid,
                confidence: params.rerank_confidence,
            };
            let stopped =
                beam_search(&self.walk_index(), query, walk, admission, scratch, &mut stats)?;
            if stopped || scratch.best.len() >= k {
                break;
            }
            search_list = search_list.saturating_mul(2);
            retries += 1;
        }
        scratch.best.sorted_into(&mut scratch.sorted);
        for found in &scratch.sorted {
            top.push(self.id(found.id as u32), found.distance);
        }
        Ok(stats)
    }

    /// Every admitted row scored exactly: for a list as long as the segment, or when the graph
    /// search found fewer than k admitted rows.
    fn scan(
        &self,
        query: &[f32],
        admission: &impl Admission,
        scratch: &mut SearchScratch,
        stats: &mut SearchStats,
    ) -> Result<()> {
        if let Some(listed) = admission.rows() {
            for &row in listed {
                if u64::from(row) < self.rows() && admission.admits_listed(row) {
                    let (vector, _) = self.node(row)?;
                    stats.hops += 1;
                    stats.sectors_read += self.layout.sectors_per_node as u64;
                    scratch.best.push(u64::from(row), self.metric().distance(query, vector));
                }
            }
            return Ok(());
        }
        for row in 0..self.rows() as u32 {
            if !admission.admits(row) {
                continue;
            }
            let (vector, _) = self.node(row)?;
            stats.hops += 1;
            scratch.best.push(u64::from(row), self.metric().distance(query, vector));
        }
        stats.sectors_read += self.layout.sectors(self.rows());
        Ok(())
    }

    /// The admitted rows (only the listed ones, when the admission lists them) scored by their
    /// codes, in RAM, then the best `k * RERANK` reranked with their full vectors: a scan that
    /// reads a node from disk only for the few rows that can make the top k.
    fn scan_codes(
        &self,
        query: &[f32],
        admission: &impl Admission,
        scratch: &mut SearchScratch,
        stats: &mut SearchStats,
    ) -> Result<()> {
        let k = scratch.best.k();
        let SearchScratch { query: prepared_scratch, pending, distances, sorted, best, .. } =
            scratch;
        let prepared = self.codec.prepare(query, prepared_scratch);
        // The codes rank a large set less surely than a walk's few candidates: the shortlist
        // grows with the rows scanned (at 768-d, reranking 160 of 50k matching rows gave
        // recall 0.92), up to a bound: each shortlisted row is a node read.
        let scanning = match (admission.rows(), admission.admitted()) {
            (Some(listed), _) => listed.len() as u64,
            (None, Admitted::Exact(n) | Admitted::AtMost(n)) => n.min(self.rows()),
            (None, Admitted::Unknown) => self.rows(),
        };
        let share = usize::try_from(scanning / RERANK_SHARE as u64).unwrap_or(usize::MAX);
        let shortlist_len = k.saturating_mul(RERANK).max(RERANK_MIN).max(share.min(RERANK_MAX));
        let mut shortlist = TopK::new(shortlist_len);
        let mut score = |rows: &[u32], distances: &mut Vec<f32>| {
            distances.clear();
            distances.resize(rows.len(), 0.0);
            prepared.distances_of_rows(&self.codes, rows, distances);
            for (&row, &distance) in rows.iter().zip(distances.iter()) {
                shortlist.push(u64::from(row), distance);
            }
        };
        pending.clear();
        let total = self.rows() as u32;
        let mut scored = 0u64;
        let mut take = |row: u32, pending: &mut Vec<u32>, distances: &mut Vec<f32>| {
            pending.push(row);
            if pending.len() == SCAN_BATCH {
                score(pending, distances);
                scored += pending.len() as u64;
                pending.clear();
            }
        };
        match admission.rows() {
            Some(listed) => listed
                .iter()
                .filter(|&&row| row < total && admission.admits_listed(row))
                .for_each(|&row| take(row, pending, distances)),
            None => (0..total)
                .filter(|&row| admission.admits(row))
                .for_each(|row| take(row, pending, distances)),
        }
        score(pending, distances);
        scored += pending.len() as u64;
        stats.code_distances += scored;
        shortlist.sorted_into(sorted);
        for candidate in sorted.iter() {
            let row = candidate.id as u32;
            let (vector, _) = self.node(row)?;
            stats.hops += 1;
            stats.sectors_read += self.layout.sectors_per_node as u64;
            best.push(u64::from(row), self.metric().distance(query, vector));
        }
        Ok(())
    }

    /// For a walk that met almost no admitted row (a filter whose matches lie away from the
    /// query): a walk through admitted rows only, seeded by an even sample of them and by the
    /// admitted rows near the failed walk's nearest. Returns whether it found k rows; if not,
    /// the caller scans, as it does for an admission that lists no rows, for at most
    /// [`WITHIN_WALK_MIN_ROWS`] listed rows, or for under [`WITHIN_WALK_MIN_SHARE`] of the
    /// segment.
    fn walk_within_admitted(
        &self,
        query: &[f32],
        walk: Walk,
        admission: &impl Admission,
        scratch: &mut SearchScratch,
        stats: &mut SearchStats,
    ) -> Result<bool> {
        let selectivity = match admission.admitted() {
            Admitted::Exact(n) | Admitted::AtMost(n) => n as f64 / self.rows().max(1) as f64,
            Admitted::Unknown => 1.0,
        };
        let Some(listed) = admission.rows() else { return Ok(false) };
        if listed.len() <= WITHIN_WALK_MIN_ROWS || selectivity < WITHIN_WALK_MIN_SHARE {
            return Ok(false);
        }
        let step = listed.len().div_ceil(SEED_SAMPLE);
        scratch.seeds.clear();
        scratch.seeds.extend(
            listed.iter().step_by(step).copied().filter(|&row| admission.admits_listed(row)),
        );
        // The failed walk's nearest rows lie by the query: their admitted neighbours, within
        // two hops, are where the matching rows nearest the query are likely reached from.
        for candidate in scratch.list.items().iter().take(NEAR_SEEDS) {
            let (_, neighbors) = self.node(candidate.row)?;
            for &next in neighbors {
                if admission.admits(next) {
                    scratch.seeds.push(next);
                    continue;
                }
                let (_, second) = self.node(next)?;
                scratch.seeds.extend(second.iter().copied().filter(|&far| admission.admits(far)));
            }
        }
        let k = scratch.best.k();
        scratch.best.reset(k);
        // Every row expanded is admitted, so the caller's 1/selectivity scale (to meet enough
        // admitted rows among the others) is taken back, and a list three times the plain
        // walk's kept (its rows have fewer usable links): the retried list (4L at 50% of rows)
        // becomes 12L, 24L at a quarter. Measured at 50%: 4L gave recall 0.978 (128-d), 8L
        // 0.984 / 0.946 (128-d / 768-d), 12L 0.986 / 0.953 at about 0.6x the rate of 8L.
        let search_list =
            ((walk.search_list as f64 * (12.0 * selectivity).min(3.0)) as usize).max(k);
        let walk = Walk { search_list, ..walk };
        beam_search(&self.walk_index(), query, walk, admission, scratch, stats)?;
        Ok(scratch.best.len() >= k)
    }

    /// A scan of the rows `admission` admits (only its listed rows, when it lists them), by
    /// their codes and then an exact rerank of the best (`scan_codes`): what the planner runs
    /// for a small admitted set, where a walk would expand mostly rows it cannot return.
    pub fn search_admitted(
        &self,
        query: &[f32],
        admission: &impl Admission,
        top: &mut TopK,
        scratch: &mut SearchScratch,
    ) -> Result<SearchStats> {
        if query.len() != self.dim() {
            let (expected, found) = (self.dim(), query.len());
            return Err(FileError::DimensionMismatch { expected, found }.into());
        }
        let mut stats = SearchStats::default();
        scratch.best.reset(top.k());
        // A few listed rows are cheaper to read whole than to prepare the query's code tables.
        match admission.rows() {
            Some(listed) if listed.len() <= EXACT_SCAN_ROWS => {
                self.scan(query, admission, scratch, &mut stats)?;
            }
            _ => self.scan_codes(query, admission, scratch, &mut stats)?,
        }
        scratch.best.sorted_into(&mut scratch.sorted);
        for found in &scratch.sorted {
            top.push(self.id(found.id as u32), found.distance);
        }
        Ok(stats)
    }

    fn walk_index(&self) -> WalkIndex<'_, Self> {
        WalkIndex {
            nodes: self,
            codec: &self.codec,
            codes: &self.codes,
            medoid: self.medoid,
            rows: self.rows() as usize,
            metric: self.metric(),
        }
    }
}

/// Most retries with a doubled list before a search that keeps finding fewer than k rows
/// scans instead.
const MAX_RETRIES: usize = 3;

/// A code scan keeps `k * RERANK` rows (at least `RERANK_MIN`) by code distance for the exact
/// rerank (4 was enough at 128-d; at 768-d cosine a 1% scan needed 16 for recall 0.999)...
const RERANK: usize = 16;
const RERANK_MIN: usize = 64;
/// ...and at least one scanned row in `RERANK_SHARE`, up to `RERANK_MAX` (a fallback scan of a
/// mostly deleted 10M-row segment would otherwise read 78k nodes).
const RERANK_SHARE: usize = 128;
const RERANK_MAX: usize = 4096;
/// Listed sets up to this size are scanned with full vectors, skipping the code tables.
const EXACT_SCAN_ROWS: usize = 256;
/// Listed sets up to this size are scanned, not walked within, when a walk gives up. The
/// walk-within costs about the same at any size and loses recall where the matching rows are
/// few and scattered; the scan costs a code distance per row. Measured on 100k x 128 regions:
/// at 10% (10k rows) the walk ran 2x the scan's rate at recall 0.951 against 0.9997; at 50%,
/// 23x at 0.978 against 0.995.
const WITHIN_WALK_MIN_ROWS: usize = 16_384;
/// ...and so are sets under this share of the segment: a thin region's rows are poorly
/// linked among themselves. At 1M x 128 a 10% region walked within gave recall 0.90 (0.92
/// with 1,024 seeds), a 50% region 0.968.
const WITHIN_WALK_MIN_SHARE: f64 = 0.25;
/// A walk-within is also seeded near the query: from the admitted rows within two hops of
/// this many of the failed walk's nearest rows.
const NEAR_SEEDS: usize = 32;
/// Listed rows sampled (evenly) as a walk-within's seeds; the nearest by code fill its list.
const SEED_SAMPLE: usize = 256;
/// Rows scored by their codes per kernel call in a code scan.
const SCAN_BATCH: usize = 1024;

/// Whether a retry should stop walking with `search_list` (and scan the admitted rows'
/// codes): after [`MAX_RETRIES`] doublings, or once the list reaches a sixteenth of the rows.
/// A walk costs about `R` code distances per expanded row, so a doubling ladder run up to
/// `rows` (as it was) did about `2R` times a code scan's work.
fn scan_instead(search_list: usize, rows: usize, retries: usize) -> bool {
    retries > MAX_RETRIES || search_list.saturating_mul(16) >= rows
}

/// Whether the walk met admitted rows at under a quarter of the rate the admission's count
/// predicts: a filter whose matching rows lie away from the query, or a mostly deleted
/// region. Doubling the walk there only walks more rows it cannot return.
fn met_too_few_admitted(rows: usize, stats: &SearchStats, admission: &impl Admission) -> bool {
    let expected = match admission.admitted() {
        Admitted::Exact(n) | Admitted::AtMost(n) => n as f64 / rows.max(1) as f64,
        Admitted::Unknown => 1.0,
    };
    let met = stats.hops.saturating_sub(stats.walked_not_admitted) as f64;
    stats.hops > 0 && met < 0.25 * expected * stats.hops as f64
}

/// The code distance past which a bounded search stops: `bound` plus a margin for the codes'
/// error (a fraction of the bound's magnitude, so it scales with every metric's distances,
/// negative inner products included).
fn bound_cutoff(bound: f32) -> f32 {
    if bound.is_finite() {
        bound + BOUND_MARGIN * bound.abs().max(f32::MIN_POSITIVE)
    } else {
        f32::INFINITY
    }
}

/// The calibration section's points, if they are well formed: a head with k >= 1, then
/// points with rising list sizes and recalls of at most one.
fn decode_calibration(bytes: &[u8]) -> Option<Vec<Calibrated>> {
    let (head, rest) = CalibrationHead::read_from_prefix(bytes).ok()?;
    let points = <[CalibrationPoint]>::ref_from_bytes(rest).ok()?;
    if head.k.get() == 0 {
        return None;
    }
    let mut previous = 0;
    let mut out = Vec::with_capacity(points.len());
    for point in points {
        let (search_list, ppm) = (point.search_list.get(), point.recall_ppm.get());
        if search_list <= previous || ppm > 1_000_000 {
            return None;
        }
        previous = search_list;
        out.push(Calibrated { search_list, recall: ppm as f32 / 1e6 });
    }
    Some(out)
}

/// Relative slack of [`bound_cutoff`].
const BOUND_MARGIN: f32 = 0.2;

impl Nodes for VamanaSegment {
    #[inline]
    fn node(&self, row: u32) -> Result<(&[f32], &[u32])> {
        VamanaSegment::node(self, row)
    }

    #[inline]
    fn prefetch_node(&self, row: u32) {
        VamanaSegment::prefetch_node(self, row)
    }

    fn sectors_per_node(&self) -> u32 {
        self.layout.sectors_per_node as u32
    }
}
