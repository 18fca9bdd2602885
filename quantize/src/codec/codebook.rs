//! The codebook's byte format: `docs/format/codebook.md`. All integers and floats little-endian.

use zerocopy::little_endian::{F32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{
    CENTROIDS, Codec, CodecKind, ProductQuantizer, RABITQ_CENTROID_STEP, RABITQ_CENTROIDS, RaBitQ,
    ResidualPq, Rotation, ScalarQuantizer, padded_dim,
};
use crate::{Metric, QuantizeError};

/// First eight bytes of every codebook.
pub const CODEBOOK_MAGIC: [u8; 8] = *b"STRACODE";

/// The major version this build reads and writes. A reader refuses any other major version;
/// a higher minor version only appends header fields, which `header_len` lets it skip.
pub const CODEBOOK_MAJOR: u16 = 1;
/// Minor 1 added codec kind 4 (residual PQ), minor 2 kind 5 (RaBitQ) and the `rounds` field;
/// an older reader refuses a newer kind as an unknown codec.
const MINOR: u16 = 2;

/// Most rotation rounds a reader accepts (a new codec uses 3).
const MAX_ROUNDS: u32 = 16;
const HEADER_LEN: usize = 64;

/// The fixed header at offset 0.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Header {
    magic: [u8; 8],
    major: U16,
    minor: U16,
    /// Bytes before the body; at least 64.
    header_len: U32,
    /// [`CodecKind::code`].
    kind: u8,
    /// [`Metric::code`].
    metric: u8,
    /// Bits per code element: 8 (SQ8, PQ), 4 (INT4), or per coordinate (RaBitQ, 1-8).
    bits: u8,
    reserved0: u8,
    dim: U32,
    /// Bytes per encoded vector.
    code_len: U32,
    /// PQ, residual PQ: sub-spaces; 0 otherwise.
    subspaces: U32,
    /// PQ, residual PQ: centroids per sub-space (256); RaBitQ: coarse centroids (64); 0
    /// otherwise.
    centroids: U32,
    body_len: U64,
    body_crc32: U32,
    /// RaBitQ: rounds of the rotation; 0 otherwise (minor 2; zero in older codebooks).
    rounds: U32,
    reserved1: [u8; 8],
    /// crc32 of the 60 bytes before this field.
    header_crc32: U32,
}

const _: () = assert!(size_of::<Header>() == HEADER_LEN);

impl Header {
    fn checksum(&self) -> u32 {
        crc32fast::hash(&self.as_bytes()[..HEADER_LEN - 4])
    }
}

pub(crate) fn encode(codec: &Codec) -> Vec<u8> {
    let kind = codec.kind();
    let floats: Vec<f32> = match codec {
        Codec::Sq8(sq) | Codec::Int4(sq) => [sq.lower(), sq.step()].concat(),
        Codec::Pq(pq) => pq.centroids().to_vec(),
        Codec::Rpq(rpq) => [rpq.coarse(), rpq.residual().centroids()].concat(),
        Codec::RaBitQ(rabitq) => rabitq.centroids().to_vec(),
    };
    let mut body = Vec::with_capacity(floats.len() * 4);
    for &x in &floats {
        body.extend_from_slice(F32::new(x).as_bytes());
    }
    let mut rounds = 0;
    if let Codec::RaBitQ(rabitq) = codec {
        body.extend_from_slice(rabitq.rotation().signs());
        rounds = rabitq.rotation().rounds() as u32;
    }
    let (subspaces, centroids) = match kind {
        CodecKind::Pq { subspaces } | CodecKind::Rpq { subspaces } => {
            (subspaces as u32, CENTROIDS as u32)
        }
        CodecKind::RaBitQ { .. } => {
            let Codec::RaBitQ(rabitq) = codec else { unreachable!("kind matches codec") };
            (0, rabitq.centroid_count() as u32)
        }
        _ => (0, 0),
    };
    let mut header = Header {
        magic: CODEBOOK_MAGIC,
        major: CODEBOOK_MAJOR.into(),
        minor: MINOR.into(),
        header_len: (HEADER_LEN as u32).into(),
        kind: kind.code(),
        metric: codec.metric().code(),
        bits: match kind {
            CodecKind::Int4 => 4,
            CodecKind::RaBitQ { bits } => bits,
            _ => 8,
        },
        reserved0: 0,
        dim: (codec.dim() as u32).into(),
        code_len: (codec.code_len() as u32).into(),
        subspaces: subspaces.into(),
        centroids: centroids.into(),
        body_len: (body.len() as u64).into(),
        body_crc32: crc32fast::hash(&body).into(),
        rounds: rounds.into(),
        reserved1: [0; 8],
        header_crc32: 0.into(),
    };
    header.header_crc32 = header.checksum().into();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(&body);
    bytes
}

fn corrupt(problem: impl Into<String>) -> QuantizeError {
    QuantizeError::CorruptCodebook { problem: problem.into() }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Codec, QuantizeError> {
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!("{} bytes is shorter than the 64-byte header", bytes.len())));
    }
    let header = Header::read_from_bytes(&bytes[..HEADER_LEN]).expect("64 bytes");
    if header.magic != CODEBOOK_MAGIC {
        return Err(corrupt("bad magic (not a codebook)"));
    }
    if header.header_crc32.get() != header.checksum() {
        return Err(corrupt("header checksum mismatch"));
    }
    if header.major.get() != CODEBOOK_MAJOR {
        return Err(QuantizeError::UnsupportedCodebookVersion {
            found: header.major.get(),
            supported: CODEBOOK_MAJOR,
        });
    }
    let header_len = header.header_len.get() as usize;
    if header_len < HEADER_LEN || header_len > bytes.len() {
        return Err(corrupt(format!("header length {header_len} out of range")));
    }
    let body = &bytes[header_len..];
    if header.body_len.get() != body.len() as u64 {
        return Err(corrupt(format!(
            "body is {} bytes, header says {} (truncated or extended)",
            body.len(),
            header.body_len.get()
        )));
    }
    if crc32fast::hash(body) != header.body_crc32.get() {
        return Err(corrupt("body checksum mismatch"));
    }
    let metric = Metric::from_code(header.metric)
        .ok_or_else(|| corrupt(format!("unknown metric code {}", header.metric)))?;
    let dim = header.dim.get() as usize;
    let subspaces = header.subspaces.get() as usize;
    let kind = match (header.kind, header.bits) {
        (1, 8) => CodecKind::Sq8,
        (2, 4) => CodecKind::Int4,
        (3, 8) => CodecKind::Pq { subspaces },
        (4, 8) => CodecKind::Rpq { subspaces },
        (5, bits @ 1..=8) => CodecKind::RaBitQ { bits },
        (kind, bits) => return Err(corrupt(format!("unknown codec {kind} with {bits}-bit codes"))),
    };
    if dim == 0 {
        return Err(corrupt("dimension 0"));
    }
    if header.code_len.get() as usize != kind.code_len(dim) {
        return Err(corrupt(format!(
            "code length {} does not match {kind} at dimension {dim}",
            header.code_len.get()
        )));
    }
    let product = matches!(kind, CodecKind::Pq { .. } | CodecKind::Rpq { .. });
    let rabitq = matches!(kind, CodecKind::RaBitQ { .. });
    let centroids = header.centroids.get() as usize;
    let centroids_ok = match kind {
        _ if product => centroids == CENTROIDS,
        _ if rabitq => {
            centroids.is_multiple_of(RABITQ_CENTROID_STEP)
                && (1..=RABITQ_CENTROIDS).contains(&centroids)
        }
        _ => centroids == 0,
    };
    if !centroids_ok || (!product && subspaces != 0) {
        return Err(corrupt("sub-space fields do not match the codec"));
    }
    let rounds = header.rounds.get();
    if rabitq != (rounds != 0) || rounds > MAX_ROUNDS {
        return Err(corrupt(format!("{rounds} rotation rounds for {kind}")));
    }
    let floats_expected = match kind {
        CodecKind::Pq { .. } => CENTROIDS * dim,
        CodecKind::Rpq { .. } => 2 * CENTROIDS * dim,
        CodecKind::RaBitQ { .. } => centroids * dim,
        _ => 2 * dim,
    };
    let sign_bytes =
        if rabitq { Rotation::sign_bytes(padded_dim(dim), rounds as usize) } else { 0 };
    let body_expected = floats_expected.checked_mul(4).and_then(|b| b.checked_add(sign_bytes));
    if body_expected != Some(body.len()) {
        return Err(corrupt(format!(
            "body is {} bytes, {kind} at dimension {dim} needs {}",
            body.len(),
            floats_expected.saturating_mul(4).saturating_add(sign_bytes)
        )));
    }
    let (body, signs) = body.split_at(floats_expected * 4);
    let floats: Vec<f32> =
        <[F32]>::ref_from_bytes(body).expect("whole floats").iter().map(|x| x.get()).collect();
    let invalid = |error: QuantizeError| corrupt(error.to_string());
    Ok(match kind {
        CodecKind::Sq8 | CodecKind::Int4 => {
            let (lower, step) = floats.split_at(dim);
            let bits = header.bits;
            let sq = ScalarQuantizer::from_parts(bits, metric, lower.to_vec(), step.to_vec())
                .map_err(invalid)?;
            if bits == 8 { Codec::Sq8(sq) } else { Codec::Int4(sq) }
        }
        CodecKind::Pq { subspaces } => Codec::Pq(
            ProductQuantizer::from_parts(metric, dim, subspaces, floats).map_err(invalid)?,
        ),
        CodecKind::Rpq { subspaces } => {
            let (coarse, residual) = floats.split_at(CENTROIDS * dim);
            let residual = ProductQuantizer::from_parts(
                Metric::InnerProduct,
                dim,
                subspaces,
                residual.to_vec(),
            )
            .map_err(invalid)?;
            Codec::Rpq(ResidualPq::from_parts(metric, coarse.to_vec(), residual).map_err(invalid)?)
        }
        CodecKind::RaBitQ { bits } => {
            let rotation = Rotation::from_parts(dim, rounds as usize, signs.to_vec())
                .ok_or_else(|| corrupt("rotation signs do not match the dimension"))?;
            Codec::RaBitQ(RaBitQ::from_parts(metric, bits, dim, rotation, floats).map_err(invalid)?)
        }
    })
}
