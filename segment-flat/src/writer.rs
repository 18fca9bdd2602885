//! Streaming a flat segment into storage.

use strata_quantize::Metric;
use strata_storage::Storage;
use strata_storage::framing::FramedWriter;
use zerocopy::IntoBytes;

use crate::format::{
    FORMAT, Header, SECTION_IDS, SECTION_REQUIRED, SECTION_VECTORS, SectionEntry, Trailer,
    VECTOR_ALIGN,
};
use crate::{Result, SegmentError};

/// What a finished segment object is: the facts a manifest records about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenSegment {
    /// Rows written.
    pub rows: u64,
    /// Object size in bytes.
    pub size: u64,
    /// The body checksum in the object's footer; a manifest keeps it to detect a swapped file.
    pub crc32: u32,
}

/// Streams rows into a new flat segment object: the header first, then each vector as it
/// arrives, then the id column and the section directory.
///
/// The number of rows is announced up front (it goes into the header); nothing becomes visible
/// until [`finish`](Self::finish) succeeds. Vectors are written as given: the caller has already
/// validated them (finite, right dimension, normalized for cosine).
pub struct FlatWriter<'a> {
    out: FramedWriter<'a>,
    object: String,
    dim: usize,
    announced: u64,
    ids: Vec<u64>,
    vectors_offset: u64,
    vectors_crc: crc32fast::Hasher,
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
        let mut out = FramedWriter::new(storage.writer(key)?, FORMAT);
        out.write_all(Header::new(dim32, metric.code(), rows).as_bytes())?;
        out.pad_to(VECTOR_ALIGN)?;
        let vectors_offset = out.position();
        Ok(FlatWriter {
            out,
            object: key.to_owned(),
            dim,
            announced: rows,
            ids: Vec::with_capacity(usize::try_from(rows).unwrap_or(0).min(1 << 24)),
            vectors_offset,
            vectors_crc: crc32fast::Hasher::new(),
        })
    }

    /// Appends one row.
    pub fn push(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dim {
            return Err(SegmentError::DimensionMismatch {
                expected: self.dim,
                found: vector.len(),
            });
        }
        if self.ids.len() as u64 >= self.announced {
            return Err(self.row_count_error(self.ids.len() as u64 + 1));
        }
        let bytes = vector_bytes(vector);
        self.vectors_crc.update(bytes);
        self.out.write_all(bytes)?;
        self.ids.push(id);
        Ok(())
    }

    /// Writes the id column, the section directory and the footer, and publishes the object.
    pub fn finish(mut self) -> Result<WrittenSegment> {
        let rows = self.ids.len() as u64;
        if rows != self.announced {
            return Err(self.row_count_error(rows));
        }
        let vectors_len = self.out.position() - self.vectors_offset;
        let mut sections = vec![SectionEntry {
            kind: SECTION_VECTORS.into(),
            flags: SECTION_REQUIRED.into(),
            offset: self.vectors_offset.into(),
            len: vectors_len.into(),
            crc32: self.vectors_crc.clone().finalize().into(),
            reserved: 0.into(),
        }];

        self.out.pad_to(VECTOR_ALIGN)?;
        let ids_offset = self.out.position();
        let ids = ids_bytes(&self.ids);
        self.out.write_all(&ids)?;
        sections.push(SectionEntry {
            kind: SECTION_IDS.into(),
            flags: SECTION_REQUIRED.into(),
            offset: ids_offset.into(),
            len: (ids.len() as u64).into(),
            crc32: crc32fast::hash(&ids).into(),
            reserved: 0.into(),
        });

        let directory_offset = self.out.position();
        let directory = sections.as_bytes();
        self.out.write_all(directory)?;
        let trailer = Trailer {
            directory_offset: directory_offset.into(),
            section_count: (sections.len() as u32).into(),
            directory_crc32: crc32fast::hash(directory).into(),
        };
        self.out.write_all(trailer.as_bytes())?;
        let footer = self.out.finish(0)?;
        Ok(WrittenSegment {
            rows,
            size: footer.body_len.get() + strata_storage::framing::FOOTER_LEN as u64,
            crc32: footer.body_crc32.get(),
        })
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
