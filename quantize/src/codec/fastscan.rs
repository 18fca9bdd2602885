//! 1-bit RaBitQ codes re-laid for scans: the FastScan layout (André, Kermarrec and Le Scouarnec,
//! VLDB 2015; faiss's `IndexRaBitQFastScan`).
//!
//! A 1-bit code's `Σ u_i w_i` is a sum over groups of four coordinates of `Σ_{i in group, u_i
//! set} w_i`, which depends only on the group's four bits: one of 16 values per group. A query
//! rounds those values to bytes (one 16-entry table per group, each from its own least entry
//! at a step shared by all), and a scan looks every row's nibbles up with byte shuffles: 16
//! rows of a group per 16-byte lane, against one instruction per coordinate-row pair of the
//! plane kernel ([`super::kernels::CodeSimd::plane_dots`]). Rows go in blocks of 32 so each
//! code byte holds one group of two rows.
//!
//! The byte tables add a rounding error of at most half a step per group (standard deviation
//! `step·sqrt(groups/12)`), which the error bound takes in, so a bounded rerank stays sound.
//! Built in memory from row-major codes; nothing on disk changes.

use super::kernels::{self, CodeOp, CodeSimd, FASTSCAN_BLOCK};
use super::rabitq::{TABLE, from_bf16, one_bit_factors};
use super::{Codec, CodecKind, Form, PreparedQuery};
use crate::Kernels;

/// Coordinates per group: one nibble of a 1-bit code.
const GROUP: usize = 4;

/// Bytes a block holds per group: 32 rows' nibbles.
const GROUP_BYTES: usize = FASTSCAN_BLOCK / 2;

/// The 1-bit RaBitQ codes of a run of rows in blocks of [`FASTSCAN_BLOCK`], with their
/// factors unpacked into columns.
#[derive(Debug, Clone)]
pub struct FastScanCodes {
    code_len: usize,
    /// Groups of four coordinates per code (the padded dimension over four).
    groups: usize,
    /// Block `b`, group `g`: 16 bytes at `(b·groups + g)·16`; byte `j` holds row `32b + j`'s
    /// nibble in its low half and row `32b + 16 + j`'s in its high half.
    blocks: Vec<u8>,
    centroid: Vec<u8>,
    /// The factors as the codes store them, bfloat16 bits (widened exactly when read).
    add: Vec<u16>,
    mul: Vec<u16>,
    err: Vec<u16>,
}

/// A query's byte tables for [`FastScanCodes`], reused across queries.
#[derive(Debug, Clone, Default)]
pub struct FastScanQuery {
    /// 16 entries per group.
    lut: Vec<u8>,
    /// The value of one table step.
    step: f32,
    /// `Σ_g (least entry of g) - bias`: added to `step·Σ entries` to give `Σ u_i w_i - bias`.
    offset: f32,
    /// The standard deviation of the tables' rounding over a whole code, in `Σ u_i w_i`.
    rounding: f32,
}

impl FastScanCodes {
    /// The codes of `codes` (row-major, the codec's code length each) in blocks, if the codec
    /// is 1-bit RaBitQ; `None` for any other codec.
    ///
    /// # Panics
    /// If `codes` is not a whole number of codes.
    pub fn build(codec: &Codec, codes: &[u8]) -> Option<FastScanCodes> {
        if codec.kind() != (CodecKind::RaBitQ { bits: 1 }) {
            return None;
        }
        let code_len = codec.code_len();
        assert!(codes.len().is_multiple_of(code_len), "fastscan: codes are not whole codes");
        let prefix = super::rabitq_prefix_len(1);
        let groups = (code_len - prefix) * 8 / GROUP;
        let rows = codes.len() / code_len;
        let blocks = rows.div_ceil(FASTSCAN_BLOCK);
        let mut out = FastScanCodes {
            code_len,
            groups,
            blocks: vec![0; blocks * groups * GROUP_BYTES],
            centroid: Vec::with_capacity(rows),
            add: Vec::with_capacity(rows),
            mul: Vec::with_capacity(rows),
            err: Vec::with_capacity(rows),
        };
        for (row, code) in codes.chunks_exact(code_len).enumerate() {
            let [add, mul, err] = one_bit_factors(code);
            out.centroid.push(code[0]);
            out.add.push(add);
            out.mul.push(mul);
            out.err.push(err);
            let (block, slot) = (row / FASTSCAN_BLOCK, row % FASTSCAN_BLOCK);
            let (byte, shift) = (slot % GROUP_BYTES, 4 * (slot / GROUP_BYTES));
            let base = block * groups * GROUP_BYTES + byte;
            for (g, nibble) in nibbles(&code[prefix..]).enumerate() {
                out.blocks[base + g * GROUP_BYTES] |= nibble << shift;
            }
        }
        Some(out)
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.centroid.len()
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.blocks.len() + self.centroid.len() + 2 * (self.add.len() * 3)
    }

    /// Fills `query`'s byte tables from a query prepared by the same codec.
    ///
    /// # Panics
    /// If `prepared` is not a 1-bit RaBitQ query of these codes' length.
    pub fn prepare(&self, prepared: &PreparedQuery<'_>, query: &mut FastScanQuery) {
        assert!(
            prepared.form == (Form::RaBitQ { bits: 1 }) && prepared.code_len == self.code_len,
            "fastscan: the query was prepared by another codec"
        );
        let rotated = &prepared.primary[..self.groups * GROUP];
        let mut least_sum = 0.0f64;
        let mut widest = 0.0f32;
        for group in rotated.chunks_exact(GROUP) {
            let least: f32 = group.iter().map(|&w| w.min(0.0)).sum();
            let most: f32 = group.iter().map(|&w| w.max(0.0)).sum();
            least_sum += f64::from(least);
            widest = widest.max(most - least);
        }
        let step = if widest > 0.0 && widest.is_finite() { widest / 255.0 } else { 1.0 };
        query.lut.clear();
        query.lut.reserve(self.groups * 16);
        let mut entries = [0.0f32; 16];
        for group in rotated.chunks_exact(GROUP) {
            let least: f32 = group.iter().map(|&w| w.min(0.0)).sum();
            for nibble in 1..16usize {
                entries[nibble] =
                    entries[nibble & (nibble - 1)] + group[nibble.trailing_zeros() as usize];
            }
            // Entries lie in [least, least + widest], so the rounded step counts fit a byte
            // (the clamp only catches the last float rounding).
            query.lut.extend(
                entries.iter().map(|&e| ((e - least) / step).round().clamp(0.0, 255.0) as u8),
            );
        }
        query.step = step;
        query.offset = (least_sum - f64::from(prepared.bias)) as f32;
        query.rounding = step * (self.groups as f32 / 12.0).sqrt();
    }

    /// The estimated distances of rows `first_row..first_row + out.len()` (the same estimate
    /// as [`PreparedQuery::distance`] up to the tables' rounding).
    ///
    /// # Panics
    /// If `first_row` is not a multiple of [`FASTSCAN_BLOCK`], the rows run past the codes,
    /// or `query` was not prepared ([`prepare`](Self::prepare)) from `prepared` for these codes.
    pub fn distances(
        &self,
        prepared: &PreparedQuery<'_>,
        query: &FastScanQuery,
        first_row: usize,
        out: &mut [f32],
    ) {
        self.distances_on(Kernels::detected(), prepared, query, first_row, out);
    }

    /// [`distances`](Self::distances) on a chosen instruction-set path.
    pub fn distances_on(
        &self,
        kernels: &Kernels,
        prepared: &PreparedQuery<'_>,
        query: &FastScanQuery,
        first_row: usize,
        out: &mut [f32],
    ) {
        assert!(first_row.is_multiple_of(FASTSCAN_BLOCK), "fastscan: rows start mid-block");
        assert!(first_row + out.len() <= self.rows(), "fastscan: rows past the codes");
        assert_eq!(query.lut.len(), self.groups * 16, "fastscan: query not prepared");
        kernels::dispatch(
            kernels,
            Scan { codes: self, secondary: prepared.secondary, query, first_row, out },
        );
    }

    /// The error bound of `row`'s estimate at confidence 1: the codec's
    /// ([`PreparedQuery::error_bound`]) plus the tables' rounding.
    pub fn error_bound(
        &self,
        prepared: &PreparedQuery<'_>,
        query: &FastScanQuery,
        row: usize,
    ) -> f32 {
        let norm = prepared.secondary[TABLE + usize::from(self.centroid[row])];
        norm * from_bf16(self.err[row]) + from_bf16(self.mul[row]).abs() * query.rounding
    }
}

/// The nibbles of a 1-bit code's bits, group by group (coordinate `4g + i` is bit `i` of
/// nibble `g`, as coordinate `8k + i` is bit `i` of byte `k`).
fn nibbles(bits: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bits.iter().flat_map(|&byte| [byte & 0x0f, byte >> 4])
}

/// Estimates of a run of rows, block by block, at one level.
struct Scan<'a, 'o> {
    codes: &'a FastScanCodes,
    secondary: &'a [f32],
    query: &'a FastScanQuery,
    first_row: usize,
    out: &'o mut [f32],
}

impl CodeOp for Scan<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: CodeSimd>(self, simd: S) {
        let Scan { codes, secondary, query, first_row, out } = self;
        let block_len = codes.groups * GROUP_BYTES;
        let first_block = first_row / FASTSCAN_BLOCK;
        for (i, out) in out.chunks_mut(FASTSCAN_BLOCK).enumerate() {
            let block = first_block + i;
            let bytes = &codes.blocks[block * block_len..(block + 1) * block_len];
            let sums = simd.fastscan_sums(bytes, &query.lut);
            let row = block * FASTSCAN_BLOCK;
            let rows = row..row + out.len();
            // The table lookups apart, so the arithmetic below runs as vectors.
            let mut base = [0.0f32; FASTSCAN_BLOCK];
            for (base, &centroid) in base.iter_mut().zip(&codes.centroid[rows.clone()]) {
                *base = secondary[usize::from(centroid)];
            }
            let (add, mul) = (&codes.add[rows.clone()], &codes.mul[rows]);
            for (j, out) in out.iter_mut().enumerate() {
                let dot = query.step * sums[j] as f32 + query.offset;
                *out = base[j] + from_bf16(add[j]) + from_bf16(mul[j]) * dot;
            }
        }
    }
}
