//! Opening a segment file: framing, the common header, the section directory, the id column
//! and the codes, each checked, and the check against what a manifest expects.

use std::ops::Range;
use std::sync::OnceLock;

use strata_quantize::{Codec, Metric};
use strata_storage::framing::{FOOTER_LEN, Footer, FormatId};
use strata_storage::{Corruption, ObjectBytes};
use zerocopy::FromBytes;

use crate::format::{
    CommonHeader, HEADER_LEN, SECTION_ATTRIBUTES, SECTION_CODEBOOK, SECTION_CODES,
    SECTION_ENTRY_LEN, SECTION_IDS, SECTION_PAYLOADS, SECTION_REQUIRED, SectionEntry, TRAILER_LEN,
    Trailer, header_checksum,
};
use crate::{FileError, Problem};

/// What a segment kind declares about its files.
#[derive(Debug)]
pub struct FileSpec {
    /// Magic and version, checked by the framing and in the header.
    pub format: FormatId,
    /// The kind's name in errors ("flat", "vamana").
    pub name: &'static str,
    /// The section kinds this build knows, with the alignment each must have. Unknown kinds
    /// are skipped unless flagged required; every section is at least 8-byte aligned.
    pub sections: &'static [SectionSpec],
}

/// A section kind a reader knows, and the alignment of its offset.
#[derive(Debug, Clone, Copy)]
pub struct SectionSpec {
    pub kind: u32,
    pub align: u64,
}

/// One section found in the directory: where its bytes are and their checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: u32,
    pub range: Range<usize>,
    pub crc32: u32,
}

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

/// A section checked against its checksum once, the first time it is used, so opening a large
/// segment does not read it.
#[derive(Debug, Default)]
pub struct LazyCheck(OnceLock<bool>);

impl LazyCheck {
    /// Whether `bytes` match `crc32`; computed on the first call only.
    pub fn passes(&self, bytes: &[u8], crc32: u32) -> bool {
        *self.0.get_or_init(|| crc32fast::hash(bytes) == crc32)
    }
}

/// An open segment file of any kind, its common parts checked: the framing, the header's magic,
/// checksum, dimension and metric, the section directory (bounds, alignment, duplicates,
/// unknown required sections) and the id column.
#[derive(Debug)]
pub struct SegmentFile {
    name: &'static str,
    object: String,
    bytes: ObjectBytes,
    dim: usize,
    metric: Metric,
    rows: u64,
    footer_crc32: u32,
    sections: Vec<Section>,
    ids: Range<usize>,
    /// The payload section's checksum, checked on the first payload read.
    payloads_ok: LazyCheck,
}

/// Sections every kind knows: the attribute sections.
const SHARED_SECTIONS: &[SectionSpec] = &[
    SectionSpec { kind: SECTION_ATTRIBUTES, align: 8 },
    SectionSpec { kind: SECTION_PAYLOADS, align: 8 },
];

impl SegmentFile {
    /// Checks the common parts of the object `object`, whose whole bytes are `bytes`.
    pub fn parse(spec: &FileSpec, object: &str, bytes: ObjectBytes) -> Result<Self, FileError> {
        let corrupt =
            |problem| FileError::Corrupt { format: spec.name, object: object.to_owned(), problem };
        let len = bytes.len() as u64;
        if bytes.len() < FOOTER_LEN {
            // Let the framing produce its standard "truncated" error.
            Footer::decode(object, &spec.format, len, &bytes)?;
        }
        let footer = Footer::decode(object, &spec.format, len, &bytes[bytes.len() - FOOTER_LEN..])?;
        let body_len = footer.body_len.get() as usize;
        let body = &bytes[..body_len];

        if body.len() < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt(Problem::DirectoryBounds));
        }
        let header: &[u8; HEADER_LEN] = body[..HEADER_LEN].try_into().expect("64 bytes");
        let common = CommonHeader::read_from_prefix(header).expect("32 bytes").0;
        if common.magic != spec.format.magic {
            return Err(corrupt(Problem::HeaderMagic));
        }
        let recorded = u32::from_le_bytes(header[HEADER_LEN - 4..].try_into().expect("4 bytes"));
        if recorded != header_checksum(header) {
            return Err(corrupt(Problem::HeaderChecksum));
        }
        let field = |field, value: u64| corrupt(Problem::HeaderField { field, value });
        let dim = common.dim.get() as usize;
        if dim == 0 {
            return Err(field("dim", 0));
        }
        let header_end = u64::from(common.header_len.get());
        if header_end < HEADER_LEN as u64 {
            return Err(field("header_len", header_end));
        }
        let metric = Metric::from_code(common.metric)
            .ok_or_else(|| field("metric", common.metric.into()))?;
        let rows = common.rows.get();

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
        let mut sections: Vec<Section> = Vec::with_capacity(spec.sections.len());
        for entry in entries {
            let (kind, offset, len) = (entry.kind.get(), entry.offset.get(), entry.len.get());
            let known = spec.sections.iter().chain(SHARED_SECTIONS).find(|s| s.kind == kind);
            let align = known.map_or(8, |s| s.align.max(8));
            let in_bounds = offset >= header_end
                && offset.checked_add(len).is_some_and(|end| end <= dir_start)
                && offset.is_multiple_of(align);
            if !in_bounds {
                return Err(corrupt(Problem::SectionBounds { kind, offset, len }));
            }
            if known.is_none() {
                if entry.flags.get() & SECTION_REQUIRED != 0 {
                    let object = object.to_owned();
                    return Err(FileError::UnknownSection { format: spec.name, object, kind });
                }
                continue;
            }
            if sections.iter().any(|s| s.kind == kind) {
                return Err(corrupt(Problem::SectionCount { kind }));
            }
            let start = offset as usize;
            let range = start..start + len as usize;
            sections.push(Section { kind, range, crc32: entry.crc32.get() });
        }
        let mut file = SegmentFile {
            name: spec.name,
            object: object.to_owned(),
            footer_crc32: footer.body_crc32.get(),
            bytes,
            dim,
            metric,
            rows,
            sections,
            ids: 0..0,
            payloads_ok: LazyCheck::default(),
        };
        let ids = file.require(SECTION_IDS)?.clone();
        file.check_len(&ids, rows.saturating_mul(8))?;
        file.check_crc(&ids)?;
        file.ids = ids.range;
        if let Some(payloads) = file.section(SECTION_PAYLOADS) {
            let offsets = (rows.saturating_add(1)).saturating_mul(8);
            if (payloads.range.len() as u64) < offsets {
                let (kind, found) = (SECTION_PAYLOADS, payloads.range.len() as u64);
                return Err(file.corrupt(Problem::SectionLength {
                    kind,
                    expected: offsets,
                    found,
                }));
            }
        }
        Ok(file)
    }

    /// The attribute section's bytes, checksum-checked, if the file has one (the caller
    /// decodes them against its schema).
    pub fn attribute_bytes(&self) -> Result<Option<&[u8]>, FileError> {
        let Some(section) = self.section(SECTION_ATTRIBUTES) else { return Ok(None) };
        self.check_crc(section)?;
        Ok(Some(self.bytes_of(section)))
    }

    /// Whether the file carries payloads.
    pub fn has_payloads(&self) -> bool {
        self.section(SECTION_PAYLOADS).is_some()
    }

    /// The payload of row `row` (`None`: the file or the row has none). The payload
    /// section's checksum is checked on the first call.
    pub fn payload(&self, row: u32) -> Result<Option<&[u8]>, FileError> {
        let Some(section) = self.section(SECTION_PAYLOADS) else { return Ok(None) };
        if u64::from(row) >= self.rows {
            return Ok(None);
        }
        let bytes = self.bytes_of(section);
        if !self.payloads_ok.passes(bytes, section.crc32) {
            return Err(self.corrupt(Problem::SectionChecksum { kind: SECTION_PAYLOADS }));
        }
        let offsets_len = (self.rows as usize + 1) * 8;
        let offset =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let (start, end) = (offset(row as usize), offset(row as usize + 1));
        let data = (bytes.len() - offsets_len) as u64;
        if start > end || end > data {
            return Err(self.corrupt(Problem::Payload { row }));
        }
        let range = offsets_len + start as usize..offsets_len + end as usize;
        Ok((!range.is_empty()).then(|| &bytes[range]))
    }

    /// The header's 64 bytes, for the kind to read its own fields from.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        self.bytes[..HEADER_LEN].try_into().expect("checked at parse")
    }

    /// A [`FileError::Corrupt`] naming this object.
    pub fn corrupt(&self, problem: Problem) -> FileError {
        FileError::Corrupt { format: self.name, object: self.object.clone(), problem }
    }

    /// The section of `kind`, if the file has it (only kinds the spec knows are kept).
    pub fn section(&self, kind: u32) -> Option<&Section> {
        self.sections.iter().find(|s| s.kind == kind)
    }

    /// The section of `kind`, or `SectionCount` if it is missing.
    pub fn require(&self, kind: u32) -> Result<&Section, FileError> {
        self.section(kind).ok_or_else(|| self.corrupt(Problem::SectionCount { kind }))
    }

    /// `SectionLength` unless `section` holds `expected` bytes.
    pub fn check_len(&self, section: &Section, expected: u64) -> Result<(), FileError> {
        let found = section.range.len() as u64;
        if found != expected {
            let kind = section.kind;
            return Err(self.corrupt(Problem::SectionLength { kind, expected, found }));
        }
        Ok(())
    }

    /// `SectionChecksum` unless `section`'s bytes match its checksum (reads them all).
    pub fn check_crc(&self, section: &Section) -> Result<(), FileError> {
        if crc32fast::hash(self.bytes_of(section)) != section.crc32 {
            return Err(self.corrupt(Problem::SectionChecksum { kind: section.kind }));
        }
        Ok(())
    }

    /// The bytes of `section`.
    #[inline]
    pub fn bytes_of(&self, section: &Section) -> &[u8] {
        &self.bytes[section.range.clone()]
    }

    /// The codebook and codes sections, decoded and checked against the header, if the file
    /// has them (both or neither; the codes' checksum is left to the caller, who may check it
    /// lazily).
    pub fn codes(&self) -> Result<Option<(Codec, Section)>, FileError> {
        let (codebook, codes) = match (self.section(SECTION_CODEBOOK), self.section(SECTION_CODES))
        {
            (None, None) => return Ok(None),
            (Some(codebook), Some(codes)) => (codebook, codes),
            (Some(_), None) => {
                return Err(self.corrupt(Problem::SectionCount { kind: SECTION_CODES }));
            }
            (None, Some(_)) => {
                return Err(self.corrupt(Problem::SectionCount { kind: SECTION_CODEBOOK }));
            }
        };
        self.check_crc(codebook)?;
        let codec = Codec::from_bytes(self.bytes_of(codebook))
            .map_err(|error| self.corrupt(Problem::Codebook(error.to_string())))?;
        if codec.dim() != self.dim || codec.metric() != self.metric {
            let problem = format!(
                "trained for {} dimensions and {}, segment holds {} and {}",
                codec.dim(),
                codec.metric(),
                self.dim,
                self.metric
            );
            return Err(self.corrupt(Problem::Codebook(problem)));
        }
        self.check_len(codes, self.rows.saturating_mul(codec.code_len() as u64))?;
        Ok(Some((codec, codes.clone())))
    }

    /// Checks the file against what the manifest recorded for it.
    pub fn check(&self, expected: &Expected) -> Result<(), FileError> {
        let mismatch = |field, expected: u64, found: u64| {
            (expected != found).then(|| FileError::Mismatch {
                format: self.name,
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

    /// Checks the footer's checksum over the whole body (reads every byte).
    pub fn verify_body(&self) -> Result<(), FileError> {
        let body = &self.bytes[..self.bytes.len() - FOOTER_LEN];
        let actual = crc32fast::hash(body);
        if actual != self.footer_crc32 {
            let recorded = self.footer_crc32;
            return Err(FileError::Storage(strata_storage::Error::Corrupt {
                object: self.object.clone(),
                corruption: Corruption::BodyChecksum { recorded, actual },
            }));
        }
        Ok(())
    }

    /// The object's key.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The whole object.
    #[inline]
    pub fn bytes(&self) -> &ObjectBytes {
        &self.bytes
    }

    /// Dimension of the vectors.
    #[inline]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the vectors were written for.
    #[inline]
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Number of rows.
    #[inline]
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Object size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The id of row `row`.
    ///
    /// # Panics
    /// If `row >= rows()`.
    #[inline]
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
}

/// The methods every segment kind exposes: opening (through the kind's `from_bytes`), the
/// check against the manifest, and accessors delegating to its `file: SegmentFile` field.
/// Expands inside the kind's `impl` block; `Result` is the kind's, and the kind's crate depends on
/// `strata_storage` and `strata_quantize` under those names (every segment kind does).
#[macro_export]
macro_rules! segment_file_methods {
    () => {
        /// Maps the object `key` and opens it (see `from_bytes` for what is checked).
        pub fn open(storage: &dyn strata_storage::Storage, key: &str) -> Result<Self> {
            Self::from_bytes(key, storage.map(key)?)
        }

        /// [`open`](Self::open), then checks the segment is the one the manifest describes.
        pub fn open_expected(
            storage: &dyn strata_storage::Storage,
            key: &str,
            expected: &$crate::Expected,
        ) -> Result<Self> {
            let segment = Self::open(storage, key)?;
            segment.check(expected)?;
            Ok(segment)
        }

        /// Checks the segment against what the manifest recorded for it.
        pub fn check(&self, expected: &$crate::Expected) -> Result<()> {
            Ok(self.file.check(expected)?)
        }

        /// The object's key.
        pub fn object(&self) -> &str {
            self.file.object()
        }

        /// Dimension of the vectors.
        pub fn dim(&self) -> usize {
            self.file.dim()
        }

        /// The metric the vectors were written for.
        pub fn metric(&self) -> strata_quantize::Metric {
            self.file.metric()
        }

        /// Number of rows.
        pub fn rows(&self) -> u64 {
            self.file.rows()
        }

        /// Object size in bytes.
        pub fn size(&self) -> u64 {
            self.file.size()
        }

        /// Whether the object is memory-mapped (a local file) rather than read into memory.
        pub fn is_mapped(&self) -> bool {
            self.file.bytes().is_mapped()
        }

        /// Drops this process's resident copy of the mapped object (see
        /// [`ObjectBytes::release_resident`](strata_storage::ObjectBytes::release_resident)):
        /// a compaction that has streamed this segment's rows calls it, and later reads fault
        /// the pages back in from the page cache.
        pub fn release_resident(&self) {
            self.file.bytes().release_resident();
        }

        /// The id of row `row`.
        ///
        /// # Panics
        /// If `row >= rows()`.
        pub fn id(&self, row: u32) -> u64 {
            self.file.id(row)
        }

        /// Every row's id, in row order. Reads only the id column.
        pub fn ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
            self.file.ids()
        }

        /// The attribute section's bytes, checksum-checked, if the segment has attributes.
        pub fn attribute_bytes(&self) -> Result<Option<&[u8]>> {
            Ok(self.file.attribute_bytes()?)
        }

        /// The payload of row `row`, if it has one.
        pub fn payload(&self, row: u32) -> Result<Option<&[u8]>> {
            Ok(self.file.payload(row)?)
        }

        /// Whether the segment carries payloads.
        pub fn has_payloads(&self) -> bool {
            self.file.has_payloads()
        }
    };
}
