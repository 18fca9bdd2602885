//! Opening and searching a flat segment.

use std::ops::Range;
use std::sync::OnceLock;

use strata_quantize::{Codec, Metric, Neighbor, QueryScratch, TopK};
use strata_storage::framing::{FOOTER_LEN, Footer};
use strata_storage::{ObjectBytes, Storage};
use zerocopy::FromBytes;

use crate::format::{
    FORMAT, HEADER_LEN, Header, MAGIC, SECTION_CODEBOOK, SECTION_CODES, SECTION_ENTRY_LEN,
    SECTION_IDS, SECTION_REQUIRED, SECTION_VECTORS, SectionEntry, TRAILER_LEN, Trailer,
    VECTOR_ALIGN,
};
use crate::{Problem, Result, SegmentError};

/// Rows scored per kernel call: enough to amortize dispatch, few enough that the distances stay
/// in L1.
const SCAN_BLOCK: usize = 256;

/// What the manifest records about a segment, checked against the object at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub dim: usize,
    pub metric: Metric,
    pub rows: u64,
    /// Object size in bytes.
    pub size: u64,
    /// The body checksum in the object's footer.
    pub crc32: u32,
}

/// An open, immutable flat segment: rows of `(id, vector)` searched by an exact SIMD scan.
///
/// Opening reads the footer, header, section directory and id column and checks each; the vector
/// block is checked against its checksum the first time it is used (a search or a
/// [`vector`](Self::vector) read), so opening a large segment does not read its vectors.
#[derive(Debug)]
pub struct FlatSegment {
    object: String,
    bytes: ObjectBytes,
    dim: usize,
    metric: Metric,
    rows: u64,
    footer_crc32: u32,
    vectors: Range<usize>,
    vectors_crc32: u32,
    ids: Range<usize>,
    /// Whether the vector block matched its checksum; computed once, on first use.
    vectors_ok: OnceLock<bool>,
    codes: Option<Codes>,
}

/// The optional codebook and codes sections.
#[derive(Debug)]
struct Codes {
    codec: Codec,
    range: Range<usize>,
    crc32: u32,
    /// Whether the codes matched their checksum; computed once, on first use.
    ok: OnceLock<bool>,
}

/// Reusable buffers for [`FlatSegment::search_codes`], so a steady-state search allocates
/// nothing.
#[derive(Debug, Default)]
pub struct CodeScratch {
    distances: Vec<f32>,
    candidates: TopK,
    query: QueryScratch,
    rows: Vec<Neighbor>,
}

impl FlatSegment {
    /// Maps the object `key` and checks everything but the vector block.
    pub fn open(storage: &dyn Storage, key: &str) -> Result<Self> {
        Self::from_bytes(key, storage.map(key)?)
    }

    /// [`open`](Self::open), then checks the segment is the one the manifest describes.
    pub fn open_expected(storage: &dyn Storage, key: &str, expected: &Expected) -> Result<Self> {
        let segment = Self::open(storage, key)?;
        segment.check(expected)?;
        Ok(segment)
    }

    /// Decodes a segment from the whole object's bytes; `object` names it in errors.
    pub fn from_bytes(object: &str, bytes: ObjectBytes) -> Result<Self> {
        let corrupt = |problem| SegmentError::Corrupt { object: object.to_owned(), problem };
        let len = bytes.len() as u64;
        if bytes.len() < FOOTER_LEN {
            // Let the framing produce its standard "truncated" error.
            Footer::decode(object, &FORMAT, len, &bytes)?;
        }
        let footer = Footer::decode(object, &FORMAT, len, &bytes[bytes.len() - FOOTER_LEN..])?;
        let body_len = footer.body_len.get() as usize;
        let body = &bytes[..body_len];

        // Header.
        if body.len() < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt(Problem::DirectoryBounds));
        }
        let header = Header::read_from_bytes(&body[..HEADER_LEN]).expect("64 bytes");
        if header.magic != MAGIC {
            return Err(corrupt(Problem::HeaderMagic));
        }
        if header.header_crc32.get() != header.checksum() {
            return Err(corrupt(Problem::HeaderChecksum));
        }
        let dim = header.dim.get() as usize;
        if dim == 0 {
            return Err(corrupt(Problem::HeaderField { field: "dim", value: 0 }));
        }
        if (header.header_len.get() as usize) < HEADER_LEN {
            let value = header.header_len.get().into();
            return Err(corrupt(Problem::HeaderField { field: "header_len", value }));
        }
        let metric = Metric::from_code(header.metric).ok_or_else(|| {
            corrupt(Problem::HeaderField { field: "metric", value: header.metric.into() })
        })?;
        let rows = header.rows.get();

        // Trailer and section directory.
        let trailer_at = body_len - TRAILER_LEN;
        let trailer = Trailer::read_from_bytes(&body[trailer_at..]).expect("16 bytes");
        let count = trailer.section_count.get() as usize;
        let dir_start = trailer.directory_offset.get();
        let dir_end = (count as u64)
            .checked_mul(SECTION_ENTRY_LEN as u64)
            .and_then(|n| n.checked_add(dir_start));
        if dir_end != Some(trailer_at as u64) || dir_start < HEADER_LEN as u64 {
            return Err(corrupt(Problem::DirectoryBounds));
        }
        let directory = &body[dir_start as usize..trailer_at];
        if crc32fast::hash(directory) != trailer.directory_crc32.get() {
            return Err(corrupt(Problem::DirectoryChecksum));
        }
        let entries = <[SectionEntry]>::ref_from_bytes(directory).expect("whole entries");

        let mut vectors = None;
        let mut ids = None;
        let mut codebook = None;
        let mut codes = None;
        let header_end = u64::from(header.header_len.get());
        for entry in entries {
            let (kind, offset, len) = (entry.kind.get(), entry.offset.get(), entry.len.get());
            let in_bounds = offset >= header_end
                && offset.checked_add(len).is_some_and(|end| end <= dir_start)
                && offset % 8 == 0;
            if !in_bounds {
                return Err(corrupt(Problem::SectionBounds { kind, offset, len }));
            }
            let slot = match kind {
                SECTION_VECTORS => &mut vectors,
                SECTION_IDS => &mut ids,
                SECTION_CODEBOOK => &mut codebook,
                SECTION_CODES => &mut codes,
                _ if entry.flags.get() & SECTION_REQUIRED != 0 => {
                    return Err(SegmentError::UnknownSection { object: object.to_owned(), kind });
                }
                _ => continue,
            };
            if slot.replace(*entry).is_some() {
                return Err(corrupt(Problem::SectionCount { kind }));
            }
        }
        let vectors =
            vectors.ok_or_else(|| corrupt(Problem::SectionCount { kind: SECTION_VECTORS }))?;
        let ids = ids.ok_or_else(|| corrupt(Problem::SectionCount { kind: SECTION_IDS }))?;
        if vectors.offset.get() % VECTOR_ALIGN != 0 {
            let (offset, len) = (vectors.offset.get(), vectors.len.get());
            return Err(corrupt(Problem::SectionBounds { kind: SECTION_VECTORS, offset, len }));
        }
        let expected_len = |kind, per_row: u64| -> Result<()> {
            let entry = if kind == SECTION_VECTORS { &vectors } else { &ids };
            let expected = rows.saturating_mul(per_row);
            let found = entry.len.get();
            if found != expected {
                return Err(corrupt(Problem::SectionLength { kind, expected, found }));
            }
            Ok(())
        };
        expected_len(SECTION_VECTORS, dim as u64 * 4)?;
        expected_len(SECTION_IDS, 8)?;

        let range = |entry: &SectionEntry| {
            let start = entry.offset.get() as usize;
            start..start + entry.len.get() as usize
        };
        let ids_range = range(&ids);
        if crc32fast::hash(&bytes[ids_range.clone()]) != ids.crc32.get() {
            return Err(corrupt(Problem::SectionChecksum { kind: SECTION_IDS }));
        }
        let codes = match (codebook, codes) {
            (None, None) => None,
            (Some(codebook), Some(codes)) => {
                let codebook_bytes = &bytes[range(&codebook)];
                if crc32fast::hash(codebook_bytes) != codebook.crc32.get() {
                    return Err(corrupt(Problem::SectionChecksum { kind: SECTION_CODEBOOK }));
                }
                let codec = Codec::from_bytes(codebook_bytes)
                    .map_err(|error| corrupt(Problem::Codebook(error.to_string())))?;
                if codec.dim() != dim || codec.metric() != metric {
                    let problem = format!(
                        "trained for {} dimensions and {}, segment holds {dim} and {metric}",
                        codec.dim(),
                        codec.metric()
                    );
                    return Err(corrupt(Problem::Codebook(problem)));
                }
                if codes.offset.get() % VECTOR_ALIGN != 0 {
                    let (offset, len) = (codes.offset.get(), codes.len.get());
                    return Err(corrupt(Problem::SectionBounds {
                        kind: SECTION_CODES,
                        offset,
                        len,
                    }));
                }
                let expected = rows.saturating_mul(codec.code_len() as u64);
                if codes.len.get() != expected {
                    let found = codes.len.get();
                    return Err(corrupt(Problem::SectionLength {
                        kind: SECTION_CODES,
                        expected,
                        found,
                    }));
                }
                Some(Codes {
                    codec,
                    range: range(&codes),
                    crc32: codes.crc32.get(),
                    ok: OnceLock::new(),
                })
            }
            (Some(_), None) => return Err(corrupt(Problem::SectionCount { kind: SECTION_CODES })),
            (None, Some(_)) => {
                return Err(corrupt(Problem::SectionCount { kind: SECTION_CODEBOOK }));
            }
        };
        Ok(FlatSegment {
            object: object.to_owned(),
            bytes,
            dim,
            metric,
            rows,
            footer_crc32: footer.body_crc32.get(),
            vectors: range(&vectors),
            vectors_crc32: vectors.crc32.get(),
            ids: ids_range,
            vectors_ok: OnceLock::new(),
            codes,
        })
    }

    /// Checks the segment against what the manifest recorded for it.
    pub fn check(&self, expected: &Expected) -> Result<()> {
        let mismatch = |field, expected: u64, found: u64| {
            (expected != found).then(|| SegmentError::Mismatch {
                object: self.object.clone(),
                field,
                expected,
                found,
            })
        };
        let first = mismatch("size", expected.size, self.bytes.len() as u64)
            .or_else(|| mismatch("checksum", expected.crc32.into(), self.footer_crc32.into()))
            .or_else(|| mismatch("dimension", expected.dim as u64, self.dim as u64))
            .or_else(|| {
                mismatch("metric", expected.metric.code().into(), self.metric.code().into())
            })
            .or_else(|| mismatch("row count", expected.rows, self.rows));
        first.map_or(Ok(()), Err)
    }

    /// The object's key.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the vectors were written for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Number of rows.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Object size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the object is memory-mapped (a local file) rather than read into memory.
    pub fn is_mapped(&self) -> bool {
        self.bytes.is_mapped()
    }

    /// Drops this process's resident copy of the mapped object (see
    /// [`ObjectBytes::release_resident`](strata_storage::ObjectBytes::release_resident)): a
    /// compaction that has streamed this segment's rows calls it, and later reads fault the
    /// pages back in from the page cache.
    pub fn release_resident(&self) {
        self.bytes.release_resident();
    }

    /// The id of row `row`.
    ///
    /// # Panics
    /// If `row >= rows()`.
    pub fn id(&self, row: u32) -> u64 {
        let at = self.ids.start + row as usize * 8;
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    /// Every row's id, in row order. Reads only the id column.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.bytes[self.ids.clone()]
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// The vector of row `row`.
    ///
    /// # Panics
    /// If `row >= rows()`.
    pub fn vector(&self, row: u32) -> Result<&[f32]> {
        let all = self.vectors()?;
        let start = row as usize * self.dim;
        Ok(&all[start..start + self.dim])
    }

    /// The whole vector block, checked against its checksum on first use.
    pub fn vectors(&self) -> Result<&[f32]> {
        let block = &self.bytes[self.vectors.clone()];
        let ok = *self.vectors_ok.get_or_init(|| crc32fast::hash(block) == self.vectors_crc32);
        if !ok {
            return Err(SegmentError::Corrupt {
                object: self.object.clone(),
                problem: Problem::SectionChecksum { kind: SECTION_VECTORS },
            });
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
        let block = &self.bytes[codes.range.clone()];
        if !*codes.ok.get_or_init(|| crc32fast::hash(block) == codes.crc32) {
            return Err(SegmentError::Corrupt {
                object: self.object.clone(),
                problem: Problem::SectionChecksum { kind: SECTION_CODES },
            });
        }
        Ok(Some(block))
    }

    /// Bytes a code search keeps hot: the codes and the codec's tables. Past the vector block's
    /// one-time checksum on first use (which reads it all once), the vectors are read only for
    /// the rows reranked.
    pub fn code_bytes(&self) -> usize {
        self.codes.as_ref().map_or(0, |codes| codes.range.len() + codes.codec.memory_bytes())
    }

    /// Approximate search through the codes: scores every row not rejected by `skip` by its
    /// code, keeps the best `top.k() * rerank` (at least `top.k()`), computes their exact
    /// distances from the vectors, and offers those to `top` as `(id, distance)`.
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
        rerank: usize,
        skip: impl Fn(u32) -> bool,
        top: &mut TopK,
        scratch: &mut CodeScratch,
    ) -> Result<()> {
        if query.len() != self.dim {
            return Err(SegmentError::DimensionMismatch { expected: self.dim, found: query.len() });
        }
        let Some(codes) = self.codes()? else {
            return Err(SegmentError::NoCodes { object: self.object.clone() });
        };
        let codec = &self.codes.as_ref().expect("codes present").codec;
        let code_len = codec.code_len();
        let CodeScratch { distances, candidates, query: query_scratch, rows } = scratch;
        if distances.len() < SCAN_BLOCK {
            distances.resize(SCAN_BLOCK, 0.0);
        }
        candidates.reset(top.k().saturating_mul(rerank.max(1)));
        let prepared = codec.prepare(query, query_scratch);
        for (block, block_codes) in codes.chunks(SCAN_BLOCK * code_len).enumerate() {
            let out = &mut distances[..block_codes.len() / code_len];
            prepared.distances(block_codes, out);
            let first_row = block * SCAN_BLOCK;
            for (i, &distance) in out.iter().enumerate() {
                let row = (first_row + i) as u32;
                if candidates.worst().is_some_and(|worst| distance > worst) || skip(row) {
                    continue;
                }
                candidates.push(u64::from(row), distance);
            }
        }
        candidates.sorted_into(rows);
        if rows.is_empty() {
            return Ok(());
        }
        let vectors = self.vectors()?;
        for candidate in rows.iter() {
            let row = candidate.id as usize;
            let vector = &vectors[row * self.dim..(row + 1) * self.dim];
            top.push(self.id(row as u32), self.metric.distance(query, vector));
        }
        Ok(())
    }

    /// Checks every byte of the object against the footer's body checksum (a scrub; opening and
    /// searching check only the sections they use).
    pub fn verify(&self) -> Result<()> {
        let body = &self.bytes[..self.bytes.len() - FOOTER_LEN];
        if crc32fast::hash(body) != self.footer_crc32 {
            return Err(SegmentError::Storage(strata_storage::Error::Corrupt {
                object: self.object.clone(),
                corruption: strata_storage::Corruption::BodyChecksum {
                    recorded: self.footer_crc32,
                    actual: crc32fast::hash(body),
                },
            }));
        }
        self.vectors()?;
        self.codes().map(drop)
    }

    /// Exact search: offers every row not rejected by `skip` to `top` as `(id, distance)`.
    ///
    /// `query` must be prepared for the metric (normalized for cosine). `distances` is scratch
    /// space, grown once and reused, so a steady-state search allocates nothing.
    pub fn search(
        &self,
        query: &[f32],
        skip: impl Fn(u32) -> bool,
        top: &mut TopK,
        distances: &mut Vec<f32>,
    ) -> Result<()> {
        if query.len() != self.dim {
            return Err(SegmentError::DimensionMismatch { expected: self.dim, found: query.len() });
        }
        let vectors = self.vectors()?;
        if distances.len() < SCAN_BLOCK {
            distances.resize(SCAN_BLOCK, 0.0);
        }
        let ids = &self.bytes[self.ids.clone()];
        for (block, rows) in vectors.chunks(SCAN_BLOCK * self.dim).enumerate() {
            let out = &mut distances[..rows.len() / self.dim];
            self.metric.distance_batch(query, rows, out);
            let first_row = block * SCAN_BLOCK;
            for (i, &distance) in out.iter().enumerate() {
                let row = (first_row + i) as u32;
                if top.worst().is_some_and(|worst| distance > worst) || skip(row) {
                    continue;
                }
                let at = row as usize * 8;
                let id = u64::from_le_bytes(ids[at..at + 8].try_into().expect("8 bytes"));
                top.push(id, distance);
            }
        }
        Ok(())
    }
}
