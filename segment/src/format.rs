//! The byte layout every segment file shares: `docs/format/segment-file.md`. All integers
//! little-endian.

use strata_storage::framing::FormatId;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the fixed header at offset 0. Its last 4 bytes are the crc32 of the rest.
pub const HEADER_LEN: usize = 64;
pub const SECTION_ENTRY_LEN: usize = 32;
pub const TRAILER_LEN: usize = 16;

/// Section kind: the id column, one `u64` per row (every kind).
pub const SECTION_IDS: u32 = 2;
/// Section kind: the codebook of the codes section (`docs/format/codebook.md`).
pub const SECTION_CODEBOOK: u32 = 3;
/// Section kind: one code per row, `rows x code_len` bytes. Present exactly when the codebook is.
pub const SECTION_CODES: u32 = 4;

/// Section kind: the attribute columns (`docs/format/attributes.md`), one value per schema
/// column per row. Flagged required: a reader that predates attributes refuses the file rather
/// than drop them in a compaction.
pub const SECTION_ATTRIBUTES: u32 = 16;
/// Section kind: per-row opaque payloads: `rows + 1` u64 offsets, then the bytes. Required, as
/// the attribute section is.
pub const SECTION_PAYLOADS: u32 = 17;

/// Section flag: a reader that does not know the section's kind must refuse the file.
pub const SECTION_REQUIRED: u32 = 1;

/// The header fields every kind has, at the same offsets: bytes 0..21 and 24..32. A kind's own
/// fields follow in its own header struct; bytes 60..64 are the header checksum.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CommonHeader {
    pub magic: [u8; 8],
    pub major: U16,
    pub minor: U16,
    /// Size of the header; readers skip bytes they do not know up to here.
    pub header_len: U32,
    pub dim: U32,
    /// [`Metric::code`](strata_quantize::Metric::code).
    pub metric: u8,
    /// Kind-specific (the Vamana header keeps its codec code here).
    pub kind_bytes: [u8; 3],
    pub rows: U64,
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

const _: () = assert!(size_of::<CommonHeader>() == 32);
const _: () = assert!(size_of::<SectionEntry>() == SECTION_ENTRY_LEN);
const _: () = assert!(size_of::<Trailer>() == TRAILER_LEN);

impl CommonHeader {
    /// The common fields of a `format` file of `rows` rows of `dim` dimensions; `kind_bytes`
    /// are the kind's own (zero where unused).
    pub fn new(format: &FormatId, dim: u32, metric: u8, kind_bytes: [u8; 3], rows: u64) -> Self {
        CommonHeader {
            magic: format.magic,
            major: format.major.into(),
            minor: format.minor.into(),
            header_len: (HEADER_LEN as u32).into(),
            dim: dim.into(),
            metric,
            kind_bytes,
            rows: rows.into(),
        }
    }
}

/// The checksum a header stores in its last 4 bytes: crc32 of the 60 before them.
pub fn header_checksum(header: &[u8; HEADER_LEN]) -> u32 {
    crc32fast::hash(&header[..HEADER_LEN - 4])
}
