//! An open committed segment of either kind, behind one type the tiers and the id index use.

use std::sync::OnceLock;

use strata_attributes::{ColumnSet, Record, Schema};
use strata_manifest::{SegmentKind, SegmentRecord};
use strata_quantize::{Admission, Metric, TopK};
use strata_segment_diskann::{self as diskann, VamanaSegment};
use strata_segment_flat::{self as flat, FlatSegment};
use strata_segment_flat::{AttributeSections, FileError, Problem, encode_payloads};
use strata_storage::Storage;

use crate::search_params::{FilterPlan, VamanaEffort};
use crate::{Error, Result};

/// An open segment: a flat scan or a Vamana graph, and its attribute columns.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) data: SegmentData,
    /// Decoded at open (empty for a segment without attributes).
    pub(crate) columns: ColumnSet,
    /// Rows ordered by id, built on the first point read of a pinned snapshot (the handle's
    /// own reads go through its id index): 4 bytes a row.
    by_id: OnceLock<Box<[u32]>>,
}

/// The file of a segment, by kind.
#[derive(Debug)]
pub(crate) enum SegmentData {
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
        schema: &Schema,
    ) -> Result<Segment> {
        let data = Self::open_file(storage, record, dim, metric)?;
        let bytes = match &data {
            SegmentData::Flat(s) => s.attribute_bytes()?,
            SegmentData::Vamana(s) => s.attribute_bytes()?,
        };
        let rows = record.rows;
        let columns = match bytes {
            None => ColumnSet::empty(rows.min(u64::from(u32::MAX)) as u32),
            Some(bytes) => ColumnSet::decode(bytes, rows, schema).map_err(|e| {
                let (format, object) = match &data {
                    SegmentData::Flat(s) => ("flat", s.object()),
                    SegmentData::Vamana(s) => ("vamana", s.object()),
                };
                let problem = Problem::Attributes(e.to_string());
                let file = FileError::Corrupt { format, object: object.to_owned(), problem };
                match &data {
                    SegmentData::Flat(_) => Error::Segment(file.into()),
                    SegmentData::Vamana(_) => Error::Vamana(file.into()),
                }
            })?,
        };
        Ok(Segment { data, columns, by_id: OnceLock::new() })
    }

    fn open_file(
        storage: &dyn Storage,
        record: &SegmentRecord,
        dim: usize,
        metric: Metric,
    ) -> Result<SegmentData> {
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
                SegmentData::Flat(FlatSegment::open_expected(storage, &key, &expected)?)
            }
            SegmentKind::Vamana => {
                let expected = diskann::Expected {
                    dim,
                    metric,
                    rows: record.rows,
                    size: file.size,
                    crc32: file.crc32,
                };
                SegmentData::Vamana(VamanaSegment::open_expected(storage, &key, &expected)?)
            }
        })
    }

    /// The object key of its file.
    pub(crate) fn object(&self) -> &str {
        match &self.data {
            SegmentData::Flat(s) => s.object(),
            SegmentData::Vamana(s) => s.object(),
        }
    }

    /// Every row's id, in row order.
    pub(crate) fn ids(&self) -> Box<dyn ExactSizeIterator<Item = u64> + '_> {
        match &self.data {
            SegmentData::Flat(s) => Box::new(s.ids()),
            SegmentData::Vamana(s) => Box::new(s.ids()),
        }
    }

    /// The rows holding `id` (a segment written by a commit or a compaction holds each id at
    /// most once; the caller still checks each row against its deletes).
    pub(crate) fn rows_with_id(&self, id: u64) -> impl Iterator<Item = u32> + '_ {
        let by_id = self.by_id.get_or_init(|| {
            // Row numbers are u32 in every segment format.
            let rows = self.rows().min(u64::from(u32::MAX)) as u32;
            let mut order: Box<[u32]> = (0..rows).collect();
            order.sort_unstable_by_key(|&row| self.id(row));
            order
        });
        let first = by_id.partition_point(|&row| self.id(row) < id);
        by_id[first..].iter().copied().take_while(move |&row| self.id(row) == id)
    }

    /// The name of the in-RAM codes (`"sq8"`, `"rpq32"`, ...), if the segment has codes.
    pub(crate) fn codes(&self) -> Option<String> {
        match &self.data {
            SegmentData::Flat(s) => s.codec().map(|c| c.kind().to_string()),
            SegmentData::Vamana(s) => Some(s.codec().kind().to_string()),
        }
    }

    /// The size of its file.
    pub(crate) fn file_bytes(&self) -> u64 {
        match &self.data {
            SegmentData::Flat(s) => s.size(),
            SegmentData::Vamana(s) => s.size(),
        }
    }

    /// The id of row `row` (`row < rows()`).
    pub(crate) fn id(&self, row: u32) -> u64 {
        match &self.data {
            SegmentData::Flat(s) => s.id(row),
            SegmentData::Vamana(s) => s.id(row),
        }
    }

    pub(crate) fn rows(&self) -> u64 {
        match &self.data {
            SegmentData::Flat(s) => s.rows(),
            SegmentData::Vamana(s) => s.rows(),
        }
    }

    /// Drops this process's resident copy of the mapped file (a compaction has read it).
    pub(crate) fn release_resident(&self) {
        match &self.data {
            SegmentData::Flat(s) => s.release_resident(),
            SegmentData::Vamana(s) => s.release_resident(),
        }
    }

    pub(crate) fn vector(&self, row: u32) -> Result<&[f32]> {
        Ok(match &self.data {
            SegmentData::Flat(s) => s.vector(row)?,
            SegmentData::Vamana(s) => s.vector(row)?,
        })
    }

    /// Bytes held in RAM (mapped files excluded): the attribute columns and their indexes, a
    /// Vamana segment's codes and tables; for a flat segment only its handle, unless it was
    /// read into memory rather than mapped.
    pub(crate) fn memory_bytes(&self) -> usize {
        let by_id = self.by_id.get().map_or(0, |rows| rows.len() * 4);
        self.columns.memory_bytes() + self.file_memory_bytes() + by_id
    }

    fn file_memory_bytes(&self) -> usize {
        match &self.data {
            SegmentData::Flat(s) if s.is_mapped() => size_of::<FlatSegment>(),
            SegmentData::Flat(s) => size_of::<FlatSegment>() + s.size() as usize,
            SegmentData::Vamana(s) if s.is_mapped() => s.memory_bytes(),
            SegmentData::Vamana(s) => s.memory_bytes() + s.size() as usize,
        }
    }

    /// The attribute record of row `row` (its payload included).
    pub(crate) fn record(&self, row: u32) -> Result<Record> {
        let payload = match &self.data {
            SegmentData::Flat(s) => s.payload(row)?,
            SegmentData::Vamana(s) => s.payload(row)?,
        };
        let record = self.columns.record(row);
        Ok(match payload {
            None => record,
            Some(payload) => Record::from_fields(record.fields().to_vec(), Some(payload.to_vec())),
        })
    }

    /// Whether any row may have attributes or a payload.
    pub(crate) fn has_attributes(&self) -> bool {
        !self.columns.is_empty()
            || match &self.data {
                SegmentData::Flat(s) => s.has_payloads(),
                SegmentData::Vamana(s) => s.has_payloads(),
            }
    }

    /// The list a Vamana walk would use for `k` results (a flat segment: its rows).
    pub(crate) fn search_list(&self, k: usize, params: &VamanaParams) -> usize {
        match &self.data {
            SegmentData::Flat(s) => s.rows() as usize,
            SegmentData::Vamana(s) => params.effort.search_list(s, k),
        }
    }

    /// An exact scan of the rows `admission` admits (its listed rows, when it lists them),
    /// offered to `top`.
    pub(crate) fn scan(
        &self,
        query: &[f32],
        admission: &impl Admission,
        top: &mut TopK,
        scratch: &mut SegmentScratch,
    ) -> Result<()> {
        match &self.data {
            SegmentData::Flat(s) => s.search(query, admission, top, &mut scratch.distances)?,
            SegmentData::Vamana(s) => {
                s.search_admitted(query, admission, top, &mut scratch.vamana)?;
            }
        }
        Ok(())
    }

    /// Offers its best rows that `admission` admits to `top` as `(id, exact distance)`: every
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
        admission: &impl Admission,
        top: &mut TopK,
        scratch: &mut SegmentScratch,
    ) -> Result<()> {
        match &self.data {
            SegmentData::Flat(s) => s.search(query, admission, top, &mut scratch.distances)?,
            SegmentData::Vamana(s) => {
                let bound = if bounded && top.is_full() {
                    top.worst().unwrap_or(f32::INFINITY)
                } else {
                    f32::INFINITY
                };
                let params = diskann::SearchParams {
                    search_list: scaled_list(params.effort.search_list(s, k), params.list_scale),
                    beam_width: params.beam_width,
                    rerank_confidence: params.rerank_confidence,
                };
                s.search_within(query, &params, bound, admission, top, &mut scratch.vamana)?;
            }
        }
        Ok(())
    }
}

/// The attribute sections of a segment whose rows (in order) carry `records`, under `schema`:
/// none when no row has attributes or a payload, so such segments stay byte-identical to
/// segments written before attributes existed.
pub(crate) fn attribute_sections(schema: &Schema, records: &[Record]) -> AttributeSections {
    if records.iter().all(Record::is_empty) {
        return AttributeSections::default();
    }
    let columns = ColumnSet::build(schema, records.iter());
    AttributeSections {
        columns: (!columns.is_empty()).then(|| columns.encode(schema)),
        payloads: encode_payloads(records.iter().map(Record::payload)),
    }
}

/// How hard a search works in each Vamana segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VamanaParams {
    pub(crate) effort: VamanaEffort,
    pub(crate) beam_width: usize,
    /// The list grows by this factor under a filter (1: no filter).
    pub(crate) list_scale: f32,
    pub(crate) filter_plan: FilterPlan,
    /// Bounded codes: how sure a code must be that a node is out of the top k before its
    /// exact distance is skipped (`SearchParams::rerank_confidence`).
    pub(crate) rerank_confidence: f32,
}

/// `list` times `scale`, saturating.
fn scaled_list(list: usize, scale: f32) -> usize {
    if scale <= 1.0 {
        list
    } else {
        (list as f64 * f64::from(scale)).min(usize::MAX as f64 / 2.0) as usize
    }
}

/// Buffers one thread reuses across segment searches.
#[derive(Debug, Default)]
pub(crate) struct SegmentScratch {
    distances: Vec<f32>,
    vamana: diskann::SearchScratch,
    /// Segment indices in search order.
    pub(crate) order: Vec<usize>,
}
