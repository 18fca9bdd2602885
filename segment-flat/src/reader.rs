//! Opening and searching a flat segment.

use std::ops::Range;
use std::sync::OnceLock;

use strata_quantize::{
    Admission, Codec, FASTSCAN_BLOCK, FastScanCodes, FastScanQuery, Neighbor, QueryScratch,
    RABITQ_CONFIDENCE, TopK,
};
use strata_segment::{FileSpec, LazyCheck, SectionSpec, SegmentFile};
use strata_storage::ObjectBytes;
use zerocopy::FromBytes;

pub use strata_segment::Expected;

use crate::format::{
    FORMAT, SECTION_CODEBOOK, SECTION_CODES, SECTION_IDS, SECTION_VECTORS, VECTOR_ALIGN,
};
use crate::{FileError, Problem, Result, SegmentError};

/// Rows scored per kernel call: enough to amortize dispatch, few enough that the distances stay
/// in L1.
const SCAN_BLOCK: usize = 256;
const _: () =
    assert!(SCAN_BLOCK.is_multiple_of(FASTSCAN_BLOCK), "scan blocks are whole FastScan blocks");

/// The flat segment's file: its magic and the sections it knows.
static SPEC: FileSpec = FileSpec {
    format: FORMAT,
    name: "flat",
    sections: &[
        SectionSpec { kind: SECTION_VECTORS, align: VECTOR_ALIGN },
        SectionSpec { kind: SECTION_IDS, align: 8 },
        SectionSpec { kind: SECTION_CODEBOOK, align: 8 },
        SectionSpec { kind: SECTION_CODES, align: VECTOR_ALIGN },
    ],
};

/// An open, immutable flat segment: rows of `(id, vector)` searched by an exact SIMD scan.
///
/// Opening reads the footer, header, section directory and id column and checks each; the vector
/// block is checked against its checksum the first time it is used (a search or a
/// [`vector`](Self::vector) read), so opening a large segment does not read its vectors.
#[derive(Debug)]
pub struct FlatSegment {
    file: SegmentFile,
    vectors: Range<usize>,
    vectors_crc32: u32,
    vectors_ok: LazyCheck,
    codes: Option<Codes>,
}

/// The optional codebook and codes sections.
#[derive(Debug)]
struct Codes {
    codec: Codec,
    range: Range<usize>,
    crc32: u32,
    ok: LazyCheck,
    /// 1-bit RaBitQ codes re-laid for scans, built on the first full scan (`None` inside for
    /// other codecs).
    blocked: OnceLock<Option<FastScanCodes>>,
}

/// Reusable buffers for [`FlatSegment::search_codes`], so a steady-state search allocates
/// nothing.
#[derive(Debug, Default)]
pub struct CodeScratch {
    distances: Vec<f32>,
    candidates: TopK,
    query: QueryScratch,
    blocked: FastScanQuery,
    rows: Vec<Neighbor>,
    /// Candidates as `(lower bound, row)`, for codecs with error bounds.
    bounded: Vec<(f32, u32)>,
    reranked: usize,
}

impl CodeScratch {
    /// Rows the last [`FlatSegment::search_codes`] read exact vectors for.
    pub fn reranked(&self) -> usize {
        self.reranked
    }
}

/// How far a code search goes past the codes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rerank {
    /// Candidates kept by code distance, as a multiple of `k` (at least 1).
    pub factor: usize,
    /// For codecs with error bounds (RaBitQ): a candidate is reranked only while its lower
    /// bound, `estimate - confidence * bound`, could still beat the k-th exact distance found.
    /// The bound is about one standard deviation of the estimate's error: 1.9 skips a
    /// candidate that had about a 3% chance of belonging; `f32::INFINITY` reranks them all.
    pub confidence: f32,
}

impl Rerank {
    /// Rerank the best `k * factor` by code, pruned by the bound at [`RABITQ_CONFIDENCE`].
    pub fn by(factor: usize) -> Self {
        Rerank { factor, confidence: RABITQ_CONFIDENCE }
    }

    /// The same at another confidence.
    pub fn with_confidence(self, confidence: f32) -> Self {
        Rerank { confidence, ..self }
    }
}

impl FlatSegment {
    /// Decodes a segment from the whole object's bytes; `object` names it in errors.
    pub fn from_bytes(object: &str, bytes: ObjectBytes) -> Result<Self> {
        let file = SegmentFile::parse(&SPEC, object, bytes)?;
        let vectors = file.require(SECTION_VECTORS)?.clone();
        file.check_len(&vectors, file.rows().saturating_mul(file.dim() as u64 * 4))?;
        let codes = file.codes()?.map(|(codec, section)| Codes {
            codec,
            range: section.range,
            crc32: section.crc32,
            ok: LazyCheck::default(),
            blocked: OnceLock::new(),
        });
        Ok(FlatSegment {
            vectors: vectors.range,
            vectors_crc32: vectors.crc32,
            vectors_ok: LazyCheck::default(),
            codes,
            file,
        })
    }

    strata_segment::segment_file_methods!();

    /// The vector of row `row`.
    ///
    /// # Panics
    /// If `row >= rows()`.
    pub fn vector(&self, row: u32) -> Result<&[f32]> {
        let all = self.vectors()?;
        let dim = self.dim();
        Ok(&all[row as usize * dim..][..dim])
    }

    /// The whole vector block, checked against its checksum on first use.
    pub fn vectors(&self) -> Result<&[f32]> {
        let block = &self.file.bytes()[self.vectors.clone()];
        if !self.vectors_ok.passes(block, self.vectors_crc32) {
            let problem = Problem::SectionChecksum { kind: SECTION_VECTORS };
            return Err(self.file.corrupt(problem).into());
        }
        // The section starts 64-byte aligned within an object that starts 64-byte aligned, and
        // its length is a multiple of 4 (checked at open).
        Ok(<[f32]>::ref_from_bytes(block).expect("aligned vector block"))
    }

    /// The codec of the segment's codes, if it carries any.
    pub fn codec(&self) -> Option<&Codec> {
        self.codes.as_ref().map(|codes| &codes.codec)
    }

    /// Every row's code, in row order (`rows x code_len` bytes), checked against its checksum
    /// on first use; `None` for a segment without codes.
    pub fn codes(&self) -> Result<Option<&[u8]>> {
        let Some(codes) = &self.codes else { return Ok(None) };
        let block = &self.file.bytes()[codes.range.clone()];
        if !codes.ok.passes(block, codes.crc32) {
            return Err(self.file.corrupt(Problem::SectionChecksum { kind: SECTION_CODES }).into());
        }
        Ok(Some(block))
    }

    /// Bytes a code search keeps hot: the codes and the codec's tables. Past the vector block's
    /// one-time checksum on first use (which reads it all once), the vectors are read only for
    /// the rows reranked. Once a full scan has built the FastScan copy of 1-bit codes, that
    /// copy is what scans read, and the mapped row-major codes only serve listed admissions.
    pub fn code_bytes(&self) -> usize {
        self.codes.as_ref().map_or(0, |codes| {
            let scanned = match codes.blocked.get().and_then(Option::as_ref) {
                Some(blocked) => blocked.memory_bytes(),
                None => codes.range.len(),
            };
            scanned + codes.codec.memory_bytes()
        })
    }

    /// Approximate search through the codes: scores every row `admission` admits (only its
    /// listed rows, when it lists them) by its code, keeps the best `top.k() * rerank.factor`
    /// (at least `top.k()`), computes their exact distances from the vectors, and offers those
    /// to `top` as `(id, distance)`. With a codec that bounds its error (RaBitQ), candidates
    /// are reranked in order of their lower bound, and the rest skipped once that bound exceeds
    /// the k-th distance in `top` ([`Rerank::confidence`]).
    ///
    /// Distances offered are exact, so results merge with other tiers' in one `top`. `query`
    /// must be prepared for the metric (normalized for cosine).
    ///
    /// # Errors
    /// [`SegmentError::NoCodes`] if the segment carries no codes; a corrupt error if the codes
    /// or the vectors fail their checksums.
    pub fn search_codes(
        &self,
        query: &[f32],
        rerank: Rerank,
        admission: &impl Admission,
        top: &mut TopK,
        scratch: &mut CodeScratch,
    ) -> Result<()> {
        let dim = self.dim();
        if query.len() != dim {
            return Err(FileError::DimensionMismatch { expected: dim, found: query.len() }.into());
        }
        let Some(codes) = self.codes()? else {
            return Err(SegmentError::NoCodes { object: self.object().to_owned() });
        };
        let meta = self.codes.as_ref().expect("codes present");
        let codec = &meta.codec;
        let code_len = codec.code_len();
        let CodeScratch {
            distances,
            candidates,
            query: query_scratch,
            blocked: query_blocked,
            rows,
            bounded,
            reranked,
        } = scratch;
        *reranked = 0;
        if distances.len() < SCAN_BLOCK {
            distances.resize(SCAN_BLOCK, 0.0);
        }
        candidates.reset(top.k().saturating_mul(rerank.factor.max(1)));
        let prepared = codec.prepare(query, query_scratch);
        // The FastScan copy, when the scan read it: its estimates carry its tables' rounding
        // in their bounds.
        let mut blocked = None;
        if let Some(listed) = admission.rows() {
            for &row in listed {
                if (row as u64) < self.rows() && admission.admits_listed(row) {
                    let code = &codes[row as usize * code_len..(row as usize + 1) * code_len];
                    candidates.push(u64::from(row), prepared.distance(code));
                }
            }
        } else {
            blocked = meta.blocked.get_or_init(|| FastScanCodes::build(codec, codes)).as_ref();
            if let Some(blocked) = blocked {
                blocked.prepare(&prepared, query_blocked);
            }
            for (block, block_codes) in codes.chunks(SCAN_BLOCK * code_len).enumerate() {
                let out = &mut distances[..block_codes.len() / code_len];
                let first_row = block * SCAN_BLOCK;
                match blocked {
                    Some(blocked) => blocked.distances(&prepared, query_blocked, first_row, out),
                    None => prepared.distances(block_codes, out),
                }
                // The bar to beat, re-read only when a candidate gets in.
                let mut worst = candidates.worst().unwrap_or(f32::INFINITY);
                for (i, &distance) in out.iter().enumerate() {
                    let row = (first_row + i) as u32;
                    if distance > worst || !admission.admits(row) {
                        continue;
                    }
                    if candidates.push(u64::from(row), distance) {
                        worst = candidates.worst().unwrap_or(f32::INFINITY);
                    }
                }
            }
        }
        candidates.sorted_into(rows);
        if rows.is_empty() {
            return Ok(());
        }
        let vectors = self.vectors()?;
        let metric = self.metric();
        let exact = |row: u32| {
            let vector = &vectors[row as usize * dim..(row as usize + 1) * dim];
            (self.id(row), metric.distance(query, vector))
        };
        if !prepared.has_bounds() {
            for candidate in rows.iter() {
                let (id, distance) = exact(candidate.id as u32);
                top.push(id, distance);
            }
            *reranked = rows.len();
            return Ok(());
        }
        bounded.clear();
        bounded.extend(rows.iter().map(|candidate| {
            let row = candidate.id as u32;
            let bound = match blocked {
                Some(blocked) => blocked.error_bound(&prepared, query_blocked, row as usize),
                None => {
                    let code = &codes[row as usize * code_len..(row as usize + 1) * code_len];
                    prepared.error_bound(code).expect("bounded codec")
                }
            };
            (candidate.distance - rerank.confidence * bound, row)
        }));
        bounded.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(lower, row) in bounded.iter() {
            if top.worst().is_some_and(|worst| lower > worst) {
                break;
            }
            let (id, distance) = exact(row);
            top.push(id, distance);
            *reranked += 1;
        }
        Ok(())
    }

    /// Checks every byte of the object against the footer's body checksum (a scrub; opening and
    /// searching check only the sections they use).
    pub fn verify(&self) -> Result<()> {
        self.file.verify_body()?;
        self.vectors()?;
        self.codes().map(drop)
    }

    /// Exact search: offers every row `admission` admits (only its listed rows, when it lists
    /// them) to `top` as `(id, distance)`.
    ///
    /// `query` must be prepared for the metric (normalized for cosine). `distances` is scratch
    /// space, grown once and reused, so a steady-state search allocates nothing.
    pub fn search(
        &self,
        query: &[f32],
        admission: &impl Admission,
        top: &mut TopK,
        distances: &mut Vec<f32>,
    ) -> Result<()> {
        let dim = self.dim();
        if query.len() != dim {
            return Err(FileError::DimensionMismatch { expected: dim, found: query.len() }.into());
        }
        let vectors = self.vectors()?;
        if distances.len() < SCAN_BLOCK {
            distances.resize(SCAN_BLOCK, 0.0);
        }
        let metric = self.metric();
        if let Some(listed) = admission.rows() {
            for &row in listed {
                if (row as u64) < self.rows() && admission.admits_listed(row) {
                    let vector = &vectors[row as usize * dim..(row as usize + 1) * dim];
                    top.push(self.file.id(row), metric.distance(query, vector));
                }
            }
            return Ok(());
        }
        for (block, rows) in vectors.chunks(SCAN_BLOCK * dim).enumerate() {
            let out = &mut distances[..rows.len() / dim];
            metric.distance_batch(query, rows, out);
            let first_row = block * SCAN_BLOCK;
            for (i, &distance) in out.iter().enumerate() {
                let row = (first_row + i) as u32;
                if top.worst().is_some_and(|worst| distance > worst) || !admission.admits(row) {
                    continue;
                }
                top.push(self.file.id(row), distance);
            }
        }
        Ok(())
    }
}
