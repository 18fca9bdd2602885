//! The `diskann` index kind of `cargo xtask bench`: a Vamana segment built into a directory,
//! opened through the storage seam (mapped) and searched at one candidate list size L per sweep
//! point. Rows report the sectors each query read.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde_json::{Map, Value, json};
use strata_quantize::AdmitAll;
use strata_quantize::{Metric, Neighbor, TopK, normalize};
use strata_segment_diskann::{
    BuildOptions, BuildReport, SearchParams, SearchScratch, VamanaBuilder, VamanaSegment,
};
use strata_storage::LocalDir;

use crate::measure::BenchIndex;
use crate::vecs::Vectors;

/// The object the segment is written to, inside the benchmark directory.
const SEGMENT_KEY: &str = "bench.vamana";

/// A Vamana segment under measurement.
#[derive(Debug)]
pub struct DiskannIndex {
    segment: VamanaSegment,
    metric: Metric,
    search_list: AtomicUsize,
    beam_width: usize,
    rerank_confidence: f32,
    searches: AtomicU64,
    sectors: AtomicU64,
    hops: AtomicU64,
}

/// Builds a segment of `base` (normalized first for cosine) with `options` into `dir` and opens
/// it through the storage seam.
pub fn build(
    options: BuildOptions,
    metric: Metric,
    base: &Vectors<f32>,
    dir: &Path,
    beam_width: usize,
    rerank_confidence: f32,
) -> Result<(DiskannIndex, BuildReport), Box<dyn std::error::Error>> {
    let dim = base.dim;
    let storage = LocalDir::open(dir)?;
    let mut builder = VamanaBuilder::new(dim, metric, options)?;
    builder.reserve(base.rows() as u64)?;
    let mut row = Vec::with_capacity(dim);
    for (id, vector) in base.data.chunks_exact(dim).enumerate() {
        row.clear();
        row.extend_from_slice(vector);
        if metric.needs_normalization() {
            normalize(&mut row)?;
        }
        builder.push(id as u64, &row)?;
    }
    let report = builder.finish(&storage, SEGMENT_KEY)?;
    Ok((open(metric, dir, beam_width, rerank_confidence)?, report))
}

/// Opens the segment a build left in `dir`.
pub fn open(
    metric: Metric,
    dir: &Path,
    beam_width: usize,
    rerank_confidence: f32,
) -> Result<DiskannIndex, Box<dyn std::error::Error>> {
    let storage = LocalDir::open(dir)?;
    let segment = VamanaSegment::open(&storage, SEGMENT_KEY)?;
    if segment.metric() != metric {
        return Err(format!("{SEGMENT_KEY} holds {} rows, not {metric}", segment.metric()).into());
    }
    // Reads the whole file once, which also puts it in the page cache for the measurement.
    segment.verify()?;
    let index = DiskannIndex {
        segment,
        metric,
        search_list: AtomicUsize::new(SearchParams::default().search_list),
        beam_width,
        rerank_confidence,
        searches: AtomicU64::new(0),
        sectors: AtomicU64::new(0),
        hops: AtomicU64::new(0),
    };
    Ok(index)
}

impl DiskannIndex {
    pub fn segment(&self) -> &VamanaSegment {
        &self.segment
    }
}

/// Per-thread buffers.
pub struct Scratch {
    search: SearchScratch,
    query: Vec<f32>,
    top: TopK,
}

impl BenchIndex for DiskannIndex {
    type Scratch = Scratch;

    fn scratch(&self) -> Scratch {
        Scratch { search: SearchScratch::default(), query: Vec::new(), top: TopK::default() }
    }

    fn search(&self, query: &[f32], k: usize, scratch: &mut Scratch, out: &mut Vec<Neighbor>) {
        let query = if self.metric.needs_normalization() {
            scratch.query.clear();
            scratch.query.extend_from_slice(query);
            normalize(&mut scratch.query).expect("nonzero query");
            &scratch.query[..]
        } else {
            query
        };
        scratch.top.reset(k);
        let params = SearchParams {
            search_list: self.search_list.load(Ordering::Relaxed),
            beam_width: self.beam_width,
            rerank_confidence: self.rerank_confidence,
        };
        let stats = self
            .segment
            .search(query, &params, &AdmitAll, &mut scratch.top, &mut scratch.search)
            .expect("intact segment");
        scratch.top.sorted_into(out);
        self.searches.fetch_add(1, Ordering::Relaxed);
        self.sectors.fetch_add(stats.sectors_read, Ordering::Relaxed);
        self.hops.fetch_add(stats.hops, Ordering::Relaxed);
    }

    /// The codes, the codec's tables and the sector-check bits: what the segment keeps in RAM.
    /// The mapped node sectors and id column are the page cache's.
    fn ram_bytes(&self) -> u64 {
        self.segment.memory_bytes() as u64
    }

    fn disk_bytes(&self) -> u64 {
        self.segment.size()
    }

    fn set_sweep_point(&self, point: usize) {
        self.search_list.store(point, Ordering::Relaxed);
        self.searches.store(0, Ordering::Relaxed);
        self.sectors.store(0, Ordering::Relaxed);
        self.hops.store(0, Ordering::Relaxed);
    }

    fn sweep_stats(&self) -> Map<String, Value> {
        let searches = self.searches.load(Ordering::Relaxed).max(1) as f64;
        let per_query = |total: &AtomicU64| {
            (total.load(Ordering::Relaxed) as f64 / searches * 10.0).round() / 10.0
        };
        let stats = json!({
            "sectors_per_query": per_query(&self.sectors),
            "hops_per_query": per_query(&self.hops),
        });
        stats.as_object().expect("object").clone()
    }
}
