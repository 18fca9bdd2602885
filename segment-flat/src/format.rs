//! The flat segment's byte layout: `docs/format/segment-flat.md`. All integers little-endian.

use strata_storage::framing::FormatId;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Magic in both the header and the framing footer.
pub const MAGIC: [u8; 8] = *b"STRAFLAT";

/// What this build reads and writes. Major 1: the layout in the spec.
/// Minor 1 added the optional codebook and codes sections, which minor-0 readers skip.
pub const FORMAT: FormatId = FormatId { magic: MAGIC, major: 1, minor: 1, known_features: 0 };

/// Vector sections start at a multiple of this, so a map of the object reads them in place.
pub const VECTOR_ALIGN: u64 = 64;

/// Section kind: the `rows x dim` vector block, row-major `f32`.
pub const SECTION_VECTORS: u32 = 1;
/// Section kind: the id column, one `u64` per row.
pub const SECTION_IDS: u32 = 2;

/// Section kind: the codebook of the codes section (`docs/format/codebook.md`). Optional: a
/// reader that does not know it still searches the vectors exactly.
pub const SECTION_CODEBOOK: u32 = 3;
/// Section kind: one code per row, `rows x code_len` bytes, 64-byte aligned. Present exactly when
/// the codebook is.
pub const SECTION_CODES: u32 = 4;

/// Section flag: a reader that does not know the section's kind must refuse the file.
pub const SECTION_REQUIRED: u32 = 1;

/// The fixed 64-byte header at offset 0.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub major: U16,
    pub minor: U16,
    /// Size of this header; readers skip bytes they do not know up to here.
    pub header_len: U32,
    pub dim: U32,
    /// [`Metric::code`](strata_quantize::Metric::code).
    pub metric: u8,
    pub reserved0: [u8; 3],
    pub rows: U64,
    pub reserved1: [u8; 28],
    /// crc32 of the 60 bytes before this field.
    pub header_crc32: U32,
}

/// One entry of the section directory.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SectionEntry {
    pub kind: U32,
    pub flags: U32,
    pub offset: U64,
    pub len: U64,
    /// crc32 of the section's `len` bytes.
    pub crc32: U32,
    pub reserved: U32,
}

/// The fixed 16 bytes between the section directory and the framing footer.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Trailer {
    pub directory_offset: U64,
    pub section_count: U32,
    /// crc32 of the directory entries.
    pub directory_crc32: U32,
}

pub const HEADER_LEN: usize = 64;
pub const SECTION_ENTRY_LEN: usize = 32;
pub const TRAILER_LEN: usize = 16;

const _: () = assert!(size_of::<Header>() == HEADER_LEN);
const _: () = assert!(size_of::<SectionEntry>() == SECTION_ENTRY_LEN);
const _: () = assert!(size_of::<Trailer>() == TRAILER_LEN);

impl Header {
    pub fn new(dim: u32, metric: u8, rows: u64) -> Self {
        let mut header = Header {
            magic: MAGIC,
            major: FORMAT.major.into(),
            minor: FORMAT.minor.into(),
            header_len: (HEADER_LEN as u32).into(),
            dim: dim.into(),
            metric,
            reserved0: [0; 3],
            rows: rows.into(),
            reserved1: [0; 28],
            header_crc32: 0.into(),
        };
        header.header_crc32 = header.checksum().into();
        header
    }

    pub fn checksum(&self) -> u32 {
        crc32fast::hash(&self.as_bytes()[..HEADER_LEN - 4])
    }
}
