//! Streaming a built graph into a segment object (layout: `docs/format/segment-diskann.md`).

use strata_quantize::{Codec, Metric};
use strata_segment::{AttributeSections, SectionWriter};
use strata_storage::Storage;
use zerocopy::IntoBytes;

use super::WrittenSegment;
use super::calibrate::{self, Calibrated};
use super::vamana::Graph;
use crate::format::{
    CalibrationHead, CalibrationPoint, CommonHeader, FORMAT, Header, NodeLayout,
    SECTION_CALIBRATION, SECTION_CODEBOOK, SECTION_CODES, SECTION_IDS, SECTION_NODES,
    SECTION_REQUIRED, SECTION_SECTOR_CRCS, SECTOR_LEN,
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
    pub attributes: &'a AttributeSections,
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
        attributes,
    } = *contents;
    let layout = NodeLayout::new(dim, max_degree)
        .ok_or(VamanaError::InvalidParameter("a node must fit in 4 GiB"))?;
    let rows = ids.len() as u64;
    let mut out = SectionWriter::new(storage, key, FORMAT)?;
    let kind_bytes = [codec.kind().code(), 0, 0];
    let common = CommonHeader::new(&FORMAT, dim as u32, metric.code(), kind_bytes, rows);
    let mut header = Header {
        common,
        max_degree: (max_degree as u32).into(),
        medoid: medoid.into(),
        node_len: (layout.node_len as u32).into(),
        nodes_per_sector: (layout.nodes_per_sector as u32).into(),
        sectors_per_node: (layout.sectors_per_node as u32).into(),
        reserved: [0; 8],
        header_crc32: 0.into(),
    };
    header.seal();
    out.write(header.as_bytes())?;

    // Node sectors, a group of whole sectors at a time (one sector of several nodes, or the
    // several sectors of one large node).
    let mut nodes = out.begin(SECTOR_LEN as u64)?;
    let group_len = layout.sectors_per_node * SECTOR_LEN;
    let mut group = vec![0u8; group_len];
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
        out.append(&mut nodes, &group)?;
    }
    out.end(nodes, SECTION_NODES, SECTION_REQUIRED);
    let mut section = |kind: u32, align: u64, bytes: &[u8]| {
        let flags = if kind == SECTION_CALIBRATION { 0 } else { SECTION_REQUIRED };
        out.section(kind, flags, align, bytes)
    };
    section(SECTION_IDS, 64, ids.as_bytes())?;
    section(SECTION_SECTOR_CRCS, 8, &sector_crcs)?;
    section(SECTION_CODEBOOK, 8, &codec.to_bytes())?;
    section(SECTION_CODES, 64, codes)?;
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
        section(SECTION_CALIBRATION, 8, &bytes)?;
    }
    out.attribute_sections(attributes)?;
    Ok(out.finish(rows)?)
}
