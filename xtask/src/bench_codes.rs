//! The `flat-sq8`, `flat-int4`, `flat-pq` and `flat-rabitq` index kinds of `cargo xtask bench`:
//! a flat segment carrying quantized codes, written through the storage seam into a directory,
//! opened (mapped) and searched by a code scan plus an exact rerank of the best `k * rerank`
//! rows (for RaBitQ, those its error bounds do not rule out).

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use strata_quantize::AdmitAll;
use strata_quantize::{Codec, CodecKind, Metric, Neighbor, TopK, TrainOptions, normalize};
use strata_segment_flat::{CodeScratch, FlatSegment, FlatWriter, Rerank};
use strata_storage::LocalDir;

use crate::measure::BenchIndex;
use crate::vecs::Vectors;

/// The object the segment is written to, inside the benchmark directory.
const SEGMENT_KEY: &str = "bench.flat";

/// What building a coded segment took.
#[derive(Debug)]
pub struct Built {
    pub segment: CodedSegment,
    pub train_s: f64,
    pub write_s: f64,
}

/// A coded flat segment under measurement, searched at one rerank factor per sweep point.
#[derive(Debug)]
pub struct CodedSegment {
    segment: FlatSegment,
    metric: Metric,
    rerank: AtomicUsize,
    /// The bound's confidence multiplier, as f32 bits.
    confidence: AtomicU32,
}

/// Trains `kind` on `base` (normalized first for cosine), writes every row with its code into
/// `dir`, and opens the result through the storage seam.
pub fn build(
    kind: CodecKind,
    metric: Metric,
    base: &Vectors<f32>,
    dir: &Path,
    threads: usize,
) -> Result<Built, Box<dyn std::error::Error>> {
    let dim = base.dim;
    let mut rows = base.data.clone();
    if metric.needs_normalization() {
        for row in rows.chunks_exact_mut(dim) {
            normalize(row)?;
        }
    }
    let started = Instant::now();
    let codec = Codec::train(kind, metric, dim, &rows, &TrainOptions::default().threads(threads))?;
    let train_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let storage = LocalDir::open(dir)?;
    let mut writer =
        FlatWriter::with_codec(&storage, SEGMENT_KEY, dim, metric, base.rows() as u64, codec)?;
    for (id, row) in rows.chunks_exact(dim).enumerate() {
        writer.push(id as u64, row)?;
    }
    writer.finish()?;
    let write_s = started.elapsed().as_secs_f64();
    let segment = FlatSegment::open(&storage, SEGMENT_KEY)?;
    // Check both lazily verified blocks now, so the first query is not charged for it.
    segment.verify()?;
    Ok(Built {
        segment: CodedSegment {
            segment,
            metric,
            rerank: AtomicUsize::new(1),
            confidence: AtomicU32::new(strata_quantize::RABITQ_CONFIDENCE.to_bits()),
        },
        train_s,
        write_s,
    })
}

impl CodedSegment {
    /// Bytes per row the codes take.
    pub fn code_len(&self) -> usize {
        self.segment.codec().map_or(0, Codec::code_len)
    }

    /// The error-bound confidence of later searches (codecs with bounds only).
    pub fn set_confidence(&self, confidence: f32) {
        self.confidence.store(confidence.to_bits(), Ordering::Relaxed);
    }
}

/// Per-thread buffers: the code scan's and a normalized query's.
pub struct Scratch {
    codes: CodeScratch,
    query: Vec<f32>,
    top: TopK,
}

impl BenchIndex for CodedSegment {
    type Scratch = Scratch;

    fn scratch(&self) -> Scratch {
        Scratch { codes: CodeScratch::default(), query: Vec::new(), top: TopK::default() }
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
        let confidence = f32::from_bits(self.confidence.load(Ordering::Relaxed));
        let rerank = Rerank::by(self.rerank.load(Ordering::Relaxed)).with_confidence(confidence);
        self.segment
            .search_codes(query, rerank, &AdmitAll, &mut scratch.top, &mut scratch.codes)
            .expect("intact segment");
        scratch.top.sorted_into(out);
    }

    /// The codes and codec tables: what must stay in memory. The mapped vectors are read only
    /// for reranked rows (their one-time checksum ran in `build`).
    fn ram_bytes(&self) -> u64 {
        self.segment.code_bytes() as u64
    }

    fn disk_bytes(&self) -> u64 {
        self.segment.size()
    }

    fn set_sweep_point(&self, point: usize) {
        self.rerank.store(point, Ordering::Relaxed);
    }
}
