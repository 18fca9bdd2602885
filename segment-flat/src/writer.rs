//! Streaming a flat segment into storage.

use strata_quantize::{Codec, Metric};
use strata_storage::Storage;
use strata_storage::framing::FramedWriter;
use zerocopy::IntoBytes;

use crate::format::{
    FORMAT, Header, SECTION_CODEBOOK, SECTION_CODES, SECTION_IDS, SECTION_REQUIRED,
    SECTION_VECTORS, SectionEntry, Trailer, VECTOR_ALIGN,
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
///
/// [`with_codec`](Self::with_codec) also encodes each row with a trained [`Codec`] and adds the
/// codebook and a codes section, which [`FlatSegment::search_codes`](crate::FlatSegment)
/// scans before reranking with the vectors. The ids (and codes) are held in memory until
/// `finish`: `rows x (8 + code_len)` bytes.
pub struct FlatWriter<'a> {
    out: FramedWriter<'a>,
    object: String,
    dim: usize,
    announced: u64,
    ids: Vec<u64>,
    vectors_offset: u64,
    vectors_crc: crc32fast::Hasher,
    codec: Option<Codec>,
    codes: Vec<u8>,
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
            codec: None,
            codes: Vec::new(),
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
        if let Some(codec) = &self.codec {
            let start = self.codes.len();
            self.codes.resize(start + codec.code_len(), 0);
            codec.encode(vector, &mut self.codes[start..]);
        }
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

        if let Some(codec) = self.codec.take() {
            let codebook = codec.to_bytes();
            self.out.pad_to(8)?;
            let codebook_offset = self.out.position();
            self.out.write_all(&codebook)?;
            sections.push(SectionEntry {
                kind: SECTION_CODEBOOK.into(),
                flags: 0.into(),
                offset: codebook_offset.into(),
                len: (codebook.len() as u64).into(),
                crc32: crc32fast::hash(&codebook).into(),
                reserved: 0.into(),
            });
            self.out.pad_to(VECTOR_ALIGN)?;
            let codes_offset = self.out.position();
            self.out.write_all(&self.codes)?;
            sections.push(SectionEntry {
                kind: SECTION_CODES.into(),
                flags: 0.into(),
                offset: codes_offset.into(),
                len: (self.codes.len() as u64).into(),
                crc32: crc32fast::hash(&self.codes).into(),
                reserved: 0.into(),
            });
        }

        self.out.pad_to(8)?;
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
