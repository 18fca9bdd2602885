//! Streaming a flat segment into storage.

use strata_quantize::{Codec, Metric};
use strata_segment::{AttributeSections, OpenSection, SectionWriter};
use strata_storage::Storage;
use zerocopy::IntoBytes;

pub use strata_segment::WrittenSegment;

use crate::format::{
    FORMAT, Header, SECTION_CODEBOOK, SECTION_CODES, SECTION_IDS, SECTION_REQUIRED,
    SECTION_VECTORS, VECTOR_ALIGN,
};
use crate::{FileError, Result, SegmentError};

/// Streams rows into a new flat segment object: the header first, then each vector as it
/// arrives, then the id column and the section directory.
///
/// The number of rows is announced up front (it goes into the header); nothing becomes visible
/// until [`finish`](Self::finish) succeeds. Vectors are written as given: the caller has already
/// validated them (finite, right dimension, normalized for cosine).
///
/// [`with_codec`](Self::with_codec) also encodes each row with a trained [`Codec`] and adds the
/// codebook and a codes section, which [`FlatSegment::search_codes`](crate::FlatSegment)
/// scans before reranking with the vectors. The ids (and codes) are held in memory until
/// `finish`: `rows x (8 + code_len)` bytes.
pub struct FlatWriter<'a> {
    out: SectionWriter<'a>,
    object: String,
    dim: usize,
    announced: u64,
    ids: Vec<u64>,
    vectors: Option<OpenSection>,
    codec: Option<Codec>,
    codes: Vec<u8>,
    attributes: AttributeSections,
}

impl std::fmt::Debug for FlatWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatWriter")
            .field("object", &self.object)
            .field("dim", &self.dim)
            .field("announced", &self.announced)
            .field("written", &self.ids.len())
            .finish()
    }
}

impl<'a> FlatWriter<'a> {
    /// Starts the object `key` in `storage` for `rows` rows of `dim`-dimensional vectors.
    pub fn new(
        storage: &'a dyn Storage,
        key: &str,
        dim: usize,
        metric: Metric,
        rows: u64,
    ) -> Result<Self> {
        let dim32 = u32::try_from(dim)
            .ok()
            .filter(|&d| d > 0)
            .ok_or(SegmentError::InvalidParameter("dimension must be between 1 and 2^32 - 1"))?;
        rows.checked_mul(dim as u64 * 4)
            .ok_or(SegmentError::InvalidParameter("rows x dim overflows"))?;
        let mut out = SectionWriter::new(storage, key, FORMAT)?;
        out.write(Header::new(dim32, metric.code(), rows).as_bytes())?;
        let vectors = Some(out.begin(VECTOR_ALIGN)?);
        Ok(FlatWriter {
            out,
            object: key.to_owned(),
            dim,
            announced: rows,
            ids: Vec::with_capacity(usize::try_from(rows).unwrap_or(0).min(1 << 24)),
            vectors,
            codec: None,
            codes: Vec::new(),
            attributes: AttributeSections::default(),
        })
    }

    /// [`new`](Self::new), for a segment that also carries `codec`'s codes of every row.
    pub fn with_codec(
        storage: &'a dyn Storage,
        key: &str,
        dim: usize,
        metric: Metric,
        rows: u64,
        codec: Codec,
    ) -> Result<Self> {
        if codec.dim() != dim || codec.metric() != metric {
            return Err(SegmentError::InvalidParameter(
                "the codec was trained for another dimension or metric",
            ));
        }
        let code_bytes = rows
            .checked_mul(codec.code_len() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(SegmentError::InvalidParameter("rows x code length overflows"))?;
        let mut writer = Self::new(storage, key, dim, metric, rows)?;
        writer.codes.reserve_exact(code_bytes.min(1 << 30));
        writer.codec = Some(codec);
        Ok(writer)
    }

    /// Appends one row.
    pub fn push(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dim {
            let (expected, found) = (self.dim, vector.len());
            return Err(FileError::DimensionMismatch { expected, found }.into());
        }
        if self.ids.len() as u64 >= self.announced {
            return Err(self.row_count_error(self.ids.len() as u64 + 1));
        }
        let vectors = self.vectors.as_mut().expect("open until finish");
        self.out.append(vectors, vector_bytes(vector))?;
        self.ids.push(id);
        if let Some(codec) = &self.codec {
            let start = self.codes.len();
            self.codes.resize(start + codec.code_len(), 0);
            codec.encode(vector, &mut self.codes[start..]);
        }
        Ok(())
    }

    /// Adds the rows' attribute sections (columns and payloads, in push order), written by
    /// [`finish`](Self::finish).
    pub fn set_attributes(&mut self, sections: AttributeSections) {
        self.attributes = sections;
    }

    /// Writes the id column, the section directory and the footer, and publishes the object.
    pub fn finish(mut self) -> Result<WrittenSegment> {
        let rows = self.ids.len() as u64;
        if rows != self.announced {
            return Err(self.row_count_error(rows));
        }
        let vectors = self.vectors.take().expect("open until finish");
        self.out.end(vectors, SECTION_VECTORS, SECTION_REQUIRED);
        let ids = ids_bytes(&self.ids);
        self.out.section(SECTION_IDS, SECTION_REQUIRED, VECTOR_ALIGN, &ids)?;
        if let Some(codec) = self.codec.take() {
            // Optional: a reader that does not know codes still searches the vectors exactly.
            self.out.section(SECTION_CODEBOOK, 0, 8, &codec.to_bytes())?;
            self.out.section(SECTION_CODES, 0, VECTOR_ALIGN, &self.codes)?;
        }
        self.out.attribute_sections(&self.attributes)?;
        Ok(self.out.finish(rows)?)
    }

    fn row_count_error(&self, written: u64) -> SegmentError {
        SegmentError::RowCount { object: self.object.clone(), announced: self.announced, written }
    }
}

/// The little-endian bytes of `vector`: on the little-endian targets we build for, its memory.
fn vector_bytes(vector: &[f32]) -> &[u8] {
    vector.as_bytes()
}

fn ids_bytes(ids: &[u64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}
