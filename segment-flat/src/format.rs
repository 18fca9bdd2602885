//! The flat segment's byte layout: `docs/format/segment-flat.md`. All integers little-endian.

use strata_storage::framing::FormatId;
use zerocopy::little_endian::U32;
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

// The header's common fields, the section kinds and directory shared with every segment kind
// (the id column, codebook and codes; `docs/format/segment-file.md`).
pub use strata_segment::format::*;

/// The fixed 64-byte header at offset 0: the common fields, then nothing of the flat kind's own.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    pub common: CommonHeader,
    pub reserved: [u8; 28],
    /// crc32 of the 60 bytes before this field.
    pub header_crc32: U32,
}

const _: () = assert!(size_of::<Header>() == HEADER_LEN);

impl Header {
    pub fn new(dim: u32, metric: u8, rows: u64) -> Self {
        let common = CommonHeader::new(&FORMAT, dim, metric, [0; 3], rows);
        let mut header = Header { common, reserved: [0; 28], header_crc32: 0.into() };
        header.header_crc32 =
            header_checksum(header.as_bytes().try_into().expect("64 bytes")).into();
        header
    }
}
