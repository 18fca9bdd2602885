//! An open committed segment of either kind, behind one type the tiers and the id index use.

use strata_manifest::{SegmentKind, SegmentRecord};
use strata_quantize::{Metric, TopK};
use strata_segment_diskann::{self as diskann, VamanaSegment};
use strata_segment_flat::{self as flat, FlatSegment};
use strata_storage::Storage;

use crate::Result;
use crate::options::VamanaEffort;

/// An open segment: a flat scan or a Vamana graph.
#[derive(Debug)]
pub(crate) enum Segment {
    Flat(FlatSegment),
    Vamana(VamanaSegment),
}

impl Segment {
    /// Opens the files of `record`, checking them against what the manifest says.
    pub(crate) fn open(
        storage: &dyn Storage,
        record: &SegmentRecord,
        dim: usize,
        metric: Metric,
    ) -> Result<Segment> {
        let key = record.file_key(0);
        let file = record.files[0];
        Ok(match record.kind {
            SegmentKind::Flat => {
                let expected = flat::Expected {
                    dim,
                    metric,
                    rows: record.rows,
                    size: file.size,
                    crc32: file.crc32,
                };
                Segment::Flat(FlatSegment::open_expected(storage, &key, &expected)?)
            }
            SegmentKind::Vamana => {
                let expected = diskann::Expected {
                    dim,
                    metric,
                    rows: record.rows,
                    size: file.size,
                    crc32: file.crc32,
                };
                Segment::Vamana(VamanaSegment::open_expected(storage, &key, &expected)?)
            }
        })
    }

    /// The object key of its file.
    pub(crate) fn object(&self) -> &str {
        match self {
            Segment::Flat(s) => s.object(),
            Segment::Vamana(s) => s.object(),
        }
    }

    /// Every row's id, in row order.
    pub(crate) fn ids(&self) -> Box<dyn ExactSizeIterator<Item = u64> + '_> {
        match self {
            Segment::Flat(s) => Box::new(s.ids()),
            Segment::Vamana(s) => Box::new(s.ids()),
        }
    }

    /// The name of the in-RAM codes (`"sq8"`, `"rpq32"`, ...), if the segment has codes.
    pub(crate) fn codes(&self) -> Option<String> {
        match self {
            Segment::Flat(s) => s.codec().map(|c| c.kind().to_string()),
            Segment::Vamana(s) => Some(s.codec().kind().to_string()),
        }
    }

    /// The size of its file.
    pub(crate) fn file_bytes(&self) -> u64 {
        match self {
            Segment::Flat(s) => s.size(),
            Segment::Vamana(s) => s.size(),
        }
    }

    /// The id of row `row` (`row < rows()`).
    pub(crate) fn id(&self, row: u32) -> u64 {
        match self {
            Segment::Flat(s) => s.id(row),
            Segment::Vamana(s) => s.id(row),
        }
    }

    pub(crate) fn rows(&self) -> u64 {
        match self {
            Segment::Flat(s) => s.rows(),
            Segment::Vamana(s) => s.rows(),
        }
    }

    /// Drops this process's resident copy of the mapped file (a compaction has read it).
    pub(crate) fn release_resident(&self) {
        match self {
            Segment::Flat(s) => s.release_resident(),
            Segment::Vamana(s) => s.release_resident(),
        }
    }

    pub(crate) fn vector(&self, row: u32) -> Result<&[f32]> {
        Ok(match self {
            Segment::Flat(s) => s.vector(row)?,
            Segment::Vamana(s) => s.vector(row)?,
        })
    }

    /// Bytes held in RAM (mapped files excluded): a Vamana segment's codes and tables; for a
    /// flat segment only its handle, unless it was read into memory rather than mapped.
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            Segment::Flat(s) if s.is_mapped() => size_of::<FlatSegment>(),
            Segment::Flat(s) => size_of::<FlatSegment>() + s.size() as usize,
            Segment::Vamana(s) if s.is_mapped() => s.memory_bytes(),
            Segment::Vamana(s) => s.memory_bytes() + s.size() as usize,
        }
    }

    /// Offers its best rows not rejected by `skip` to `top` as `(id, exact distance)`: every
    /// row for a flat segment, the graph search's `top.k()` best for a Vamana segment, which
    /// with `bounded` stops early once its candidates fall well behind what `top` holds
    /// already (see `VamanaSegment::search_within`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        params: &VamanaParams,
        bounded: bool,
        skip: impl Fn(u32) -> bool,
        top: &mut TopK,
        scratch: &mut SegmentScratch,
    ) -> Result<()> {
        match self {
            Segment::Flat(s) => s.search(query, skip, top, &mut scratch.distances)?,
            Segment::Vamana(s) => {
                let bound = if bounded && top.is_full() {
                    top.worst().unwrap_or(f32::INFINITY)
                } else {
                    f32::INFINITY
                };
                let params = diskann::SearchParams {
                    search_list: params.effort.search_list(s, k),
                    beam_width: params.beam_width,
                };
                s.search_within(query, &params, bound, skip, top, &mut scratch.vamana)?;
            }
        }
        Ok(())
    }
}

/// How hard a search works in each Vamana segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VamanaParams {
    pub(crate) effort: VamanaEffort,
    pub(crate) beam_width: usize,
}

/// Buffers one thread reuses across segment searches.
#[derive(Debug, Default)]
pub(crate) struct SegmentScratch {
    distances: Vec<f32>,
    vamana: diskann::SearchScratch,
    /// Segment indices in search order.
    pub(crate) order: Vec<usize>,
}
