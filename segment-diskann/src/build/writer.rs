//! Streaming a built graph into a segment object (layout: `docs/format/segment-diskann.md`).

use strata_quantize::{Codec, Metric};
use strata_storage::Storage;
use strata_storage::framing::{FOOTER_LEN, FramedWriter};
use zerocopy::IntoBytes;

use super::WrittenSegment;
use super::calibrate::{self, Calibrated};
use super::vamana::Graph;
use crate::format::{
    CalibrationHead, CalibrationPoint, FORMAT, HEADER_LEN, Header, MAGIC, NodeLayout,
    SECTION_CALIBRATION, SECTION_CODEBOOK, SECTION_CODES, SECTION_IDS, SECTION_NODES,
    SECTION_REQUIRED, SECTION_SECTOR_CRCS, SECTOR_LEN, SectionEntry, Trailer,
};
use crate::{Result, VamanaError};

/// Everything a segment holds.
pub(crate) struct Contents<'a> {
    pub dim: usize,
    pub metric: Metric,
    pub max_degree: usize,
    pub medoid: u32,
    pub vectors: &'a [f32],
    pub ids: &'a [u64],
    pub graph: &'a Graph,
    pub codec: &'a Codec,
    pub codes: &'a [u8],
    pub calibration: &'a [Calibrated],
}

pub(crate) fn write(
    storage: &dyn Storage,
    key: &str,
    contents: &Contents<'_>,
) -> Result<WrittenSegment> {
    let Contents {
        dim,
        metric,
        max_degree,
        medoid,
        vectors,
        ids,
        graph,
        codec,
        codes,
        calibration,
    } = *contents;
    let layout = NodeLayout::new(dim, max_degree)
        .ok_or(VamanaError::InvalidParameter("a node must fit in 4 GiB"))?;
    let rows = ids.len() as u64;
    let mut out = FramedWriter::new(storage.writer(key)?, FORMAT);
    let mut header = Header {
        magic: MAGIC,
        major: FORMAT.major.into(),
        minor: FORMAT.minor.into(),
        header_len: (HEADER_LEN as u32).into(),
        dim: (dim as u32).into(),
        metric: metric.code(),
        codec: codec.kind().code(),
        reserved0: [0; 2],
        rows: rows.into(),
        max_degree: (max_degree as u32).into(),
        medoid: medoid.into(),
        node_len: (layout.node_len as u32).into(),
        nodes_per_sector: (layout.nodes_per_sector as u32).into(),
        sectors_per_node: (layout.sectors_per_node as u32).into(),
        reserved1: [0; 8],
        header_crc32: 0.into(),
    };
    header.header_crc32 = header.checksum().into();
    out.write_all(header.as_bytes())?;
    out.pad_to(SECTOR_LEN as u64)?;

    // Node sectors, a group of whole sectors at a time (one sector of several nodes, or the
    // several sectors of one large node).
    let nodes_offset = out.position();
    let group_len = layout.sectors_per_node * SECTOR_LEN;
    let mut group = vec![0u8; group_len];
    let mut nodes_crc = crc32fast::Hasher::new();
    let mut sector_crcs = Vec::with_capacity(layout.sectors(rows) as usize * 4);
    let dim_bytes = dim * 4;
    for first in (0..rows as usize).step_by(layout.nodes_per_sector) {
        group.fill(0);
        let last = (first + layout.nodes_per_sector).min(rows as usize);
        for (slot, row) in (first..last).enumerate() {
            let node = &mut group[slot * layout.node_len..(slot + 1) * layout.node_len];
            node[..dim_bytes].copy_from_slice(vectors[row * dim..(row + 1) * dim].as_bytes());
            let neighbors = graph.neighbors(row as u32);
            node[dim_bytes..dim_bytes + 4].copy_from_slice(&(neighbors.len() as u32).to_le_bytes());
            let list = &mut node[dim_bytes + 4..dim_bytes + 4 + neighbors.len() * 4];
            list.copy_from_slice(neighbors.as_bytes());
        }
        for sector in group.chunks_exact(SECTOR_LEN) {
            sector_crcs.extend_from_slice(&crc32fast::hash(sector).to_le_bytes());
        }
        nodes_crc.update(&group);
        out.write_all(&group)?;
    }
    let nodes_len = out.position() - nodes_offset;
    let mut sections = vec![SectionEntry {
        kind: SECTION_NODES.into(),
        flags: SECTION_REQUIRED.into(),
        offset: nodes_offset.into(),
        len: nodes_len.into(),
        crc32: nodes_crc.finalize().into(),
        reserved: 0.into(),
    }];

    let mut section = |out: &mut FramedWriter<'_>, kind: u32, align: u64, bytes: &[u8]| {
        out.pad_to(align)?;
        let flags = if kind == SECTION_CALIBRATION { 0 } else { SECTION_REQUIRED };
        sections.push(SectionEntry {
            kind: kind.into(),
            flags: flags.into(),
            offset: out.position().into(),
            len: (bytes.len() as u64).into(),
            crc32: crc32fast::hash(bytes).into(),
            reserved: 0.into(),
        });
        out.write_all(bytes)
    };
    section(&mut out, SECTION_IDS, 64, ids.as_bytes())?;
    section(&mut out, SECTION_SECTOR_CRCS, 8, &sector_crcs)?;
    section(&mut out, SECTION_CODEBOOK, 8, &codec.to_bytes())?;
    section(&mut out, SECTION_CODES, 64, codes)?;
    if !calibration.is_empty() {
        let head = CalibrationHead {
            k: (calibrate::K as u32).into(),
            queries: (calibrate::QUERIES.min(ids.len()) as u32).into(),
        };
        let mut bytes = head.as_bytes().to_vec();
        for point in calibration {
            let recall_ppm = (point.recall.clamp(0.0, 1.0) * 1e6).round() as u32;
            let point = CalibrationPoint {
                search_list: point.search_list.into(),
                recall_ppm: recall_ppm.into(),
            };
            bytes.extend_from_slice(point.as_bytes());
        }
        section(&mut out, SECTION_CALIBRATION, 8, &bytes)?;
    }

    out.pad_to(8)?;
    let directory_offset = out.position();
    let directory = sections.as_bytes();
    out.write_all(directory)?;
    let trailer = Trailer {
        directory_offset: directory_offset.into(),
        section_count: (sections.len() as u32).into(),
        directory_crc32: crc32fast::hash(directory).into(),
    };
    out.write_all(trailer.as_bytes())?;
    let footer = out.finish(0)?;
    Ok(WrittenSegment {
        rows,
        size: footer.body_len.get() + FOOTER_LEN as u64,
        crc32: footer.body_crc32.get(),
    })
}
