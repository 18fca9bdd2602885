//! Writing a segment file: sections streamed in order, then the directory and the trailer.

use strata_storage::Storage;
use strata_storage::framing::{FOOTER_LEN, FormatId, FramedWriter};
use zerocopy::IntoBytes;

use crate::FileError;
use crate::format::{
    SECTION_ATTRIBUTES, SECTION_PAYLOADS, SECTION_REQUIRED, SectionEntry, Trailer,
};

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

/// Streams a segment file: the kind writes its header with [`write`](Self::write), then each
/// section, either whole ([`section`](Self::section)) or streamed between
/// [`begin`](Self::begin) and [`end`](Self::end); [`finish`](Self::finish) appends the
/// directory of every section and the trailer, and publishes the object.
pub struct SectionWriter<'a> {
    out: FramedWriter<'a>,
    sections: Vec<SectionEntry>,
}

impl std::fmt::Debug for SectionWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SectionWriter")
            .field("position", &self.out.position())
            .field("sections", &self.sections.len())
            .finish()
    }
}

/// A section being streamed: where it starts and the checksum of what was written so far.
#[derive(Debug)]
pub struct OpenSection {
    offset: u64,
    crc: crc32fast::Hasher,
}

impl OpenSection {
    /// Where the section starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// A segment's attribute sections, encoded by the caller: the attribute columns
/// (`strata_attributes::ColumnSet::encode`) and the payloads ([`encode_payloads`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeSections {
    pub columns: Option<Vec<u8>>,
    pub payloads: Option<Vec<u8>>,
}

impl AttributeSections {
    pub fn is_empty(&self) -> bool {
        self.columns.is_none() && self.payloads.is_none()
    }
}

/// The payload section of rows whose payloads are `payloads` (in row order; `None` or empty:
/// no payload): `rows + 1` little-endian u64 offsets into the bytes that follow. `None` when
/// no row has one.
pub fn encode_payloads<'p>(
    payloads: impl ExactSizeIterator<Item = Option<&'p [u8]>> + Clone,
) -> Option<Vec<u8>> {
    if payloads.clone().all(|p| p.is_none_or(<[u8]>::is_empty)) {
        return None;
    }
    let rows = payloads.len();
    let total: usize = payloads.clone().map(|p| p.map_or(0, <[u8]>::len)).sum();
    let mut out = Vec::with_capacity((rows + 1) * 8 + total);
    let mut at = 0u64;
    out.extend_from_slice(&at.to_le_bytes());
    for payload in payloads.clone() {
        at += payload.map_or(0, <[u8]>::len) as u64;
        out.extend_from_slice(&at.to_le_bytes());
    }
    for payload in payloads.flatten() {
        out.extend_from_slice(payload);
    }
    Some(out)
}

impl<'a> SectionWriter<'a> {
    /// Starts the object `key` in `storage`, framed as `format`.
    pub fn new(storage: &'a dyn Storage, key: &str, format: FormatId) -> Result<Self, FileError> {
        Ok(SectionWriter {
            out: FramedWriter::new(storage.writer(key)?, format),
            sections: Vec::new(),
        })
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.out.position()
    }

    /// Writes `bytes` outside any section (the header).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        Ok(self.out.write_all(bytes)?)
    }

    /// Pads to `align` and starts a section there.
    pub fn begin(&mut self, align: u64) -> Result<OpenSection, FileError> {
        self.out.pad_to(align)?;
        Ok(OpenSection { offset: self.out.position(), crc: crc32fast::Hasher::new() })
    }

    /// Appends `bytes` to the open section.
    pub fn append(&mut self, section: &mut OpenSection, bytes: &[u8]) -> Result<(), FileError> {
        section.crc.update(bytes);
        Ok(self.out.write_all(bytes)?)
    }

    /// Ends the open section and records it in the directory as `kind` with `flags`.
    pub fn end(&mut self, section: OpenSection, kind: u32, flags: u32) {
        self.sections.push(SectionEntry {
            kind: kind.into(),
            flags: flags.into(),
            offset: section.offset.into(),
            len: (self.out.position() - section.offset).into(),
            crc32: section.crc.finalize().into(),
            reserved: 0.into(),
        });
    }

    /// Writes a whole section of `kind` with `flags` at the next multiple of `align`.
    pub fn section(
        &mut self,
        kind: u32,
        flags: u32,
        align: u64,
        bytes: &[u8],
    ) -> Result<(), FileError> {
        let mut section = self.begin(align)?;
        self.append(&mut section, bytes)?;
        self.end(section, kind, flags);
        Ok(())
    }

    /// Writes the attribute sections a segment carries, if any (both are required-flagged).
    pub fn attribute_sections(&mut self, sections: &AttributeSections) -> Result<(), FileError> {
        if let Some(columns) = &sections.columns {
            self.section(SECTION_ATTRIBUTES, SECTION_REQUIRED, 8, columns)?;
        }
        if let Some(payloads) = &sections.payloads {
            self.section(SECTION_PAYLOADS, SECTION_REQUIRED, 8, payloads)?;
        }
        Ok(())
    }

    /// Writes the section directory and the trailer, then the framing footer, and publishes
    /// the object; `rows` is reported back.
    pub fn finish(mut self, rows: u64) -> Result<WrittenSegment, FileError> {
        self.out.pad_to(8)?;
        let directory_offset = self.out.position();
        let directory = self.sections.as_bytes();
        self.out.write_all(directory)?;
        let trailer = Trailer {
            directory_offset: directory_offset.into(),
            section_count: (self.sections.len() as u32).into(),
            directory_crc32: crc32fast::hash(directory).into(),
        };
        self.out.write_all(trailer.as_bytes())?;
        let footer = self.out.finish(0)?;
        Ok(WrittenSegment {
            rows,
            size: footer.body_len.get() + FOOTER_LEN as u64,
            crc32: footer.body_crc32.get(),
        })
    }
}
