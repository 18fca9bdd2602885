//! The Vamana segment's byte layout: `docs/format/segment-diskann.md`. All integers
//! little-endian.

use strata_storage::framing::FormatId;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Magic in both the header and the framing footer.
pub const MAGIC: [u8; 8] = *b"STRAVAMA";

/// What this build reads and writes. Major 1: the layout in the spec; minor 1 adds the
/// optional calibration section.
pub const FORMAT: FormatId = FormatId { magic: MAGIC, major: 1, minor: 1, known_features: 0 };

/// The unit a search reads: one node's sector(s) per hop.
pub const SECTOR_LEN: usize = 4096;

/// Section kind: the node sectors (vector, degree, neighbour ids), 4 KiB aligned.
pub const SECTION_NODES: u32 = 1;
/// Section kind: one crc32 per node sector, checked the first time a search reads the sector.
pub const SECTION_SECTOR_CRCS: u32 = 5;

/// Section kind (optional): the build's measured recall at a ladder of list sizes, a
/// [`CalibrationHead`] then its [`CalibrationPoint`]s. A segment without it (written before
/// minor 1) searches at the caller's list size.
pub const SECTION_CALIBRATION: u32 = 6;

// The header's common fields, the section kinds and directory shared with every segment kind
// (the id column, codebook and codes; `docs/format/segment-file.md`).
pub use strata_segment::format::*;

/// Neighbour ids are `u32` row numbers, so a segment holds fewer than 2^32 rows.
pub const MAX_ROWS: u64 = u32::MAX as u64;

/// The fixed 64-byte header at offset 0. The first of the common header's kind bytes is the
/// codes' [`CodecKind::code`](strata_quantize::CodecKind::code) (the codebook is
/// authoritative; this lets tools describe a segment from its header).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    pub common: CommonHeader,
    /// R: the neighbour slots every node has.
    pub max_degree: U32,
    /// The row every search starts from.
    pub medoid: U32,
    /// Bytes of one node: `4·dim + 4 + 4·max_degree`.
    pub node_len: U32,
    /// Nodes packed into one sector (1 when a node needs several sectors).
    pub nodes_per_sector: U32,
    /// Sectors one node occupies (1 unless the node is larger than a sector).
    pub sectors_per_node: U32,
    pub reserved: [u8; 8],
    /// crc32 of the 60 bytes before this field.
    pub header_crc32: U32,
}

/// The start of the calibration section.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CalibrationHead {
    /// The recall measured is recall@k.
    pub k: U32,
    /// Rows sampled as queries.
    pub queries: U32,
}

/// One measured point of the calibration section; points ascend by `search_list`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CalibrationPoint {
    pub search_list: U32,
    /// Recall in millionths (at most 1,000,000).
    pub recall_ppm: U32,
}

const _: () = assert!(size_of::<Header>() == HEADER_LEN);

impl Header {
    /// Writes the header's checksum.
    pub fn seal(&mut self) {
        self.header_crc32 = header_checksum(self.as_bytes().try_into().expect("64 bytes")).into();
    }
}

/// Where nodes sit in the node section. Derived from the dimension and R alone, so a reader
/// recomputes it and refuses a header that disagrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLayout {
    pub dim: usize,
    pub max_degree: usize,
    pub node_len: usize,
    pub nodes_per_sector: usize,
    pub sectors_per_node: usize,
}

impl NodeLayout {
    /// The layout for `dim`-dimensional vectors and `max_degree` neighbour slots; `None` if a
    /// node's size overflows.
    pub fn new(dim: usize, max_degree: usize) -> Option<Self> {
        let node_len =
            dim.checked_mul(4)?.checked_add(4)?.checked_add(max_degree.checked_mul(4)?)?;
        u32::try_from(node_len).ok()?;
        let (nodes_per_sector, sectors_per_node) = if node_len <= SECTOR_LEN {
            (SECTOR_LEN / node_len, 1)
        } else {
            (1, node_len.div_ceil(SECTOR_LEN))
        };
        Some(NodeLayout { dim, max_degree, node_len, nodes_per_sector, sectors_per_node })
    }

    /// Sectors holding `rows` nodes (saturating: a reader compares it with a section length,
    /// and a corrupt header must not overflow).
    pub fn sectors(&self, rows: u64) -> u64 {
        rows.div_ceil(self.nodes_per_sector as u64).saturating_mul(self.sectors_per_node as u64)
    }

    /// The first sector of `row`'s node, and the node's byte offset in the node section.
    #[inline]
    pub fn locate(&self, row: u32) -> (u64, usize) {
        let row = row as usize;
        let sector = row / self.nodes_per_sector * self.sectors_per_node;
        let offset = sector * SECTOR_LEN + row % self.nodes_per_sector * self.node_len;
        (sector as u64, offset)
    }

    /// Byte offset of the degree within a node.
    #[inline]
    pub fn degree_at(&self) -> usize {
        self.dim * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_never_straddle_a_sector() {
        for dim in [1, 3, 96, 128, 200, 768, 1000, 1536, 4096] {
            for max_degree in [1, 16, 32, 64, 128] {
                let layout = NodeLayout::new(dim, max_degree).unwrap();
                for row in 0..50u32 {
                    let (sector, offset) = layout.locate(row);
                    let start = sector as usize * SECTOR_LEN;
                    let end = start + layout.sectors_per_node * SECTOR_LEN;
                    assert!(offset >= start && offset + layout.node_len <= end, "{dim} {row}");
                    assert_eq!(offset % 4, 0, "vectors are read in place as f32");
                }
                assert_eq!(
                    layout.sectors(50),
                    layout.locate(49).0 + layout.sectors_per_node as u64,
                    "the last node ends the last sector"
                );
            }
        }
    }

    #[test]
    fn small_nodes_share_sectors() {
        let layout = NodeLayout::new(128, 64).unwrap();
        assert_eq!(layout.node_len, 772);
        assert_eq!(layout.nodes_per_sector, 5);
        let big = NodeLayout::new(1536, 64).unwrap();
        assert_eq!((big.nodes_per_sector, big.sectors_per_node), (1, 2));
    }
}
