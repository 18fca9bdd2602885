//! SIMD distance kernels over quantized codes, dispatched at run time.
//!
//! pulp's portable [`Simd`] trait has no byte-to-float widening and no gather, which is the whole
//! of these kernels, so each x86 level implements the three primitives of [`CodeSimd`] with its
//! own instructions, and the kernel bodies are written once over that trait. Dispatch matches on
//! [`Kernels`]' detected level and runs the body inside pulp's `#[target_feature]` trampoline
//! for it. NEON and the portable fallback use the one-lane [`pulp::Scalar`] implementation.
//!
//! Every kernel has a plain scalar twin in [`super::reference`]; tests hold each path to it.

use pulp::{Simd, WithSimd};

use crate::Kernels;

/// The primitives the code kernels need beyond pulp's portable ones.
pub(crate) trait CodeSimd: Simd {
    /// `f32` lanes per SIMD vector.
    const LANES: usize;

    /// The first [`LANES`](Self::LANES) bytes of `bytes` as `f32` lanes.
    fn widen_u8(self, bytes: &[u8]) -> Self::f32s;

    /// The low and the high nibbles of the first [`LANES`](Self::LANES) bytes, as `f32` lanes.
    fn widen_nibbles(self, bytes: &[u8]) -> (Self::f32s, Self::f32s);

    /// Lane `i` is `table[(first + i) * 256 + codes[i]]` for `i < LANES`: one lookup in each of
    /// `LANES` consecutive 256-entry tables.
    ///
    /// # Panics
    /// If `table` does not hold `(first + LANES) * 256` entries.
    fn lookup(self, table: &[f32], first: usize, codes: &[u8]) -> Self::f32s;

    /// For each of `R` codes' bit planes: the bits it sets, and `Σ_i bit_i(plane)·levels[i]`,
    /// the query's 8-bit levels summed over the coordinates the plane sets. `planes` holds the
    /// same levels as 8 bit planes (plane `j`, word `t`, bit `i`: bit `j` of `levels[64t + i]`),
    /// which the one-lane form reads as popcounts; AVX-512 masks the level bytes by the plane's
    /// bits and sums them with `vpsadbw` instead, `R` rows at once so their reductions overlap
    /// and each 64 levels are loaded once. Exact in integers on every level.
    ///
    /// # Panics
    /// If a plane is not whole 64-bit words, the planes differ in length, or `levels` and
    /// `planes` do not hold their bits.
    #[inline(always)]
    fn plane_dots<const R: usize>(
        self,
        code_planes: [&[u8]; R],
        levels: &[u8],
        planes: &[u64],
    ) -> [(u32, u32); R] {
        // A loop, not `array::map`: a closure may be compiled outside the caller's target
        // features, which would turn the popcounts into bit tricks.
        let mut out = [(0, 0); R];
        for (out, plane) in out.iter_mut().zip(code_planes) {
            *out = (plane_count(plane), plane_dot_popcount(plane, levels, planes));
        }
        out
    }

    /// The 32 rows' byte-table sums of one FastScan block ([`super::fastscan`]): row `j < 16`
    /// adds `lut[16g + (block[16g + j] & 15)]` over every group `g`, row `16 + j` the same
    /// with the high nibble. Exact in integers on every level; SIMD levels look the nibbles
    /// up with byte shuffles, one per 16 or 32 rows and group.
    ///
    /// # Panics
    /// If `block` and `lut` differ in length or are not whole groups of four tables.
    #[inline(always)]
    fn fastscan_sums(self, block: &[u8], lut: &[u8]) -> [u32; FASTSCAN_BLOCK] {
        fastscan_sums_scalar(block, lut)
    }
}

/// Rows in a FastScan block (two per code byte).
pub const FASTSCAN_BLOCK: usize = 32;

/// The scalar form of [`CodeSimd::fastscan_sums`].
#[inline(always)]
pub(crate) fn fastscan_sums_scalar(block: &[u8], lut: &[u8]) -> [u32; FASTSCAN_BLOCK] {
    assert!(block.len() == lut.len() && block.len().is_multiple_of(64), "fastscan: lengths");
    let mut sums = [0u32; FASTSCAN_BLOCK];
    for (codes, table) in block.chunks_exact(16).zip(lut.chunks_exact(16)) {
        for (j, &byte) in codes.iter().enumerate() {
            sums[j] += u32::from(table[usize::from(byte & 0x0f)]);
            sums[16 + j] += u32::from(table[usize::from(byte >> 4)]);
        }
    }
    sums
}

/// Adds a SIMD FastScan block's 16-bit accumulators to its 32 rows' sums. `acc` holds, for the
/// low nibbles (rows 0-15) and then the high ones (rows 16-31), the shuffled bytes summed as
/// 16-bit lanes (the even byte plus 256 times the odd) and the odd bytes alone, in `L` lanes of
/// 8 words that summed different groups for the same 16 rows (word `w`: rows `2w`, `2w + 1`).
/// The lanes are summed first, so together they must stay below 2^16 for each row: the
/// callers flush every 256 groups. Fixed-size loops the compiler turns into 16-bit vector adds.
#[inline(always)]
pub(crate) fn add_sums<const L: usize>(total: &mut [u32; FASTSCAN_BLOCK], acc: [[[u16; 8]; L]; 4]) {
    let mut folded = [[0u16; 8]; 4];
    for (folded, lanes) in folded.iter_mut().zip(&acc) {
        for lane in lanes {
            for (sum, &word) in folded.iter_mut().zip(lane) {
                *sum = sum.wrapping_add(word);
            }
        }
    }
    for (half, pair) in folded.chunks_exact(2).enumerate() {
        let (mixed, odd) = (&pair[0], &pair[1]);
        for (w, (&mixed, &odd)) in mixed.iter().zip(odd).enumerate() {
            // Wrapping arithmetic recovers the even sum exactly, as it is below 2^16.
            let even = mixed.wrapping_sub(odd << 8);
            total[16 * half + 2 * w] += u32::from(even);
            total[16 * half + 2 * w + 1] += u32::from(odd);
        }
    }
}

/// Bits set in a bit plane of whole 64-bit words.
#[inline(always)]
pub(crate) fn plane_count(plane: &[u8]) -> u32 {
    plane
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")).count_ones())
        .sum()
}

/// The popcount form of [`CodeSimd::plane_dots`]' level sum for one plane.
#[inline(always)]
pub(crate) fn plane_dot_popcount(plane: &[u8], levels: &[u8], planes: &[u64]) -> u32 {
    let words = plane.len() / 8;
    assert!(plane.len() == 8 * words && levels.len() == 64 * words, "plane_dot: lengths");
    assert_eq!(planes.len(), 8 * words, "plane_dot: eight query planes");
    let mut weighted = [0u32; 8];
    for (t, chunk) in plane.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        for (j, sum) in weighted.iter_mut().enumerate() {
            *sum += (x & planes[j * words + t]).count_ones();
        }
    }
    weighted.iter().enumerate().map(|(j, &sum)| sum << j).sum()
}

impl CodeSimd for pulp::Scalar {
    const LANES: usize = 1;

    #[inline(always)]
    fn widen_u8(self, bytes: &[u8]) -> f32 {
        f32::from(bytes[0])
    }

    #[inline(always)]
    fn widen_nibbles(self, bytes: &[u8]) -> (f32, f32) {
        (f32::from(bytes[0] & 0x0f), f32::from(bytes[0] >> 4))
    }

    #[inline(always)]
    fn lookup(self, table: &[f32], first: usize, codes: &[u8]) -> f32 {
        table[first * 256 + usize::from(codes[0])]
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod x86 {
    use pulp::x86::V3;
    use pulp::{Simd, cast};
    use pulp::{f32x8, i32x8, u8x16, u32x8};
    use std::arch::x86_64::__m256i;

    use super::{CodeSimd, FASTSCAN_BLOCK, add_sums};

    /// Loads 8 bytes into the low half of a 16-byte vector (the compiler emits one `movq`).
    #[inline(always)]
    fn load8(bytes: &[u8]) -> u8x16 {
        let low: [u8; 8] = bytes[..8].try_into().expect("8 bytes");
        cast(u128::from(u64::from_le_bytes(low)).to_le_bytes())
    }

    impl CodeSimd for V3 {
        const LANES: usize = 8;

        #[inline(always)]
        fn widen_u8(self, bytes: &[u8]) -> f32x8 {
            self.convert_i32x8_to_f32x8(self.convert_u8x16_to_i32x8(load8(bytes)))
        }

        #[inline(always)]
        fn widen_nibbles(self, bytes: &[u8]) -> (f32x8, f32x8) {
            let wide: u32x8 = self.convert_u8x16_to_u32x8(load8(bytes));
            let low = self.and_u32s(wide, self.splat_u32x8(0x0f));
            let high = self.shr_const_u32x8::<4>(wide);
            // Both are below 16, so reading them as signed is exact.
            (
                self.convert_i32x8_to_f32x8(cast::<u32x8, i32x8>(low)),
                self.convert_i32x8_to_f32x8(cast::<u32x8, i32x8>(high)),
            )
        }

        #[inline(always)]
        fn lookup(self, table: &[f32], first: usize, codes: &[u8]) -> f32x8 {
            const STRIDES: [i32; 8] = [0, 256, 512, 768, 1024, 1280, 1536, 1792];
            assert!(table.len() >= (first + 8) * 256, "lookup past the table");
            let index = self.add_i32s(self.convert_u8x16_to_i32x8(load8(codes)), cast(STRIDES));
            let base = table[first * 256..].as_ptr();
            // SAFETY: lane i reads base[i * 256 + codes[i]] < 8 * 256 floats past `base`, and
            // the assert above puts all of those inside `table`.
            cast(unsafe { self.avx2._mm256_i32gather_ps::<4>(base, cast(index)) })
        }

        #[inline(always)]
        fn fastscan_sums(self, block: &[u8], lut: &[u8]) -> [u32; FASTSCAN_BLOCK] {
            assert!(
                block.len() == lut.len() && block.len().is_multiple_of(64),
                "fastscan: lengths"
            );
            let avx2 = self.avx2;
            let nibble: __m256i = cast([0x0fu8; 32]);
            let mut total = [0u32; FASTSCAN_BLOCK];
            // Two groups per register, 16 bytes each; flushed to 32 bits every 256 groups, so
            // no row's sum over both lanes passes 2^16.
            for (block, lut) in block.chunks(16 * 256).zip(lut.chunks(16 * 256)) {
                let zero: __m256i = cast([0u8; 32]);
                let mut acc = [zero; 4];
                for (codes, table) in block.chunks_exact(32).zip(lut.chunks_exact(32)) {
                    let codes: __m256i = cast(<[u8; 32]>::try_from(codes).expect("32 bytes"));
                    let table: __m256i = cast(<[u8; 32]>::try_from(table).expect("32 bytes"));
                    let low = avx2._mm256_and_si256(codes, nibble);
                    let high = avx2._mm256_and_si256(avx2._mm256_srli_epi16::<4>(codes), nibble);
                    for (pair, index) in acc.chunks_exact_mut(2).zip([low, high]) {
                        let picked = avx2._mm256_shuffle_epi8(table, index);
                        // As 16-bit lanes: the even byte plus 256 times the odd one, and the
                        // odd byte alone; the even sums are recovered at the end.
                        pair[0] = avx2._mm256_add_epi16(pair[0], picked);
                        pair[1] =
                            avx2._mm256_add_epi16(pair[1], avx2._mm256_srli_epi16::<8>(picked));
                    }
                }
                add_sums(&mut total, acc.map(cast::<__m256i, [[u16; 8]; 2]>));
            }
            total
        }
    }

    #[cfg(feature = "x86-v4")]
    mod v4 {
        use pulp::x86::V4;
        use pulp::{Simd, cast};
        use pulp::{f32x16, i32x16, u8x16, u8x64, u32x16};

        use super::super::{CodeSimd, FASTSCAN_BLOCK};
        use std::arch::x86_64::__m512i;

        #[inline(always)]
        fn load16(bytes: &[u8]) -> u8x16 {
            let bytes: [u8; 16] = bytes[..16].try_into().expect("16 bytes");
            cast(bytes)
        }

        impl CodeSimd for V4 {
            const LANES: usize = 16;

            #[inline(always)]
            fn widen_u8(self, bytes: &[u8]) -> f32x16 {
                self.convert_i32x16_to_f32x16(self.convert_u8x16_to_i32x16(load16(bytes)))
            }

            #[inline(always)]
            fn widen_nibbles(self, bytes: &[u8]) -> (f32x16, f32x16) {
                let wide: u32x16 = self.convert_u8x16_to_u32x16(load16(bytes));
                let low = self.and_u32s(wide, self.splat_u32x16(0x0f));
                let high = self.shr_const_u32x16::<4>(wide);
                // Both are below 16, so reading them as signed is exact.
                (
                    self.convert_i32x16_to_f32x16(cast::<u32x16, i32x16>(low)),
                    self.convert_i32x16_to_f32x16(cast::<u32x16, i32x16>(high)),
                )
            }

            #[inline(always)]
            fn lookup(self, table: &[f32], first: usize, codes: &[u8]) -> f32x16 {
                const STRIDES: [i32; 16] = [
                    0, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 2560, 2816, 3072, 3328,
                    3584, 3840,
                ];
                assert!(table.len() >= (first + 16) * 256, "lookup past the table");
                let index =
                    self.add_i32s(self.convert_u8x16_to_i32x16(load16(codes)), cast(STRIDES));
                let base = table[first * 256..].as_ptr();
                // SAFETY: lane i reads base[i * 256 + codes[i]] < 16 * 256 floats past `base`,
                // and the assert above puts all of those inside `table`.
                cast(unsafe { self.avx512f._mm512_i32gather_ps::<4>(cast(index), base) })
            }

            #[inline(always)]
            fn fastscan_sums(self, block: &[u8], lut: &[u8]) -> [u32; FASTSCAN_BLOCK] {
                assert!(
                    block.len() == lut.len() && block.len().is_multiple_of(64),
                    "fastscan: lengths"
                );
                let (bw, f) = (self.avx512bw, self.avx512f);
                let nibble = f._mm512_set1_epi8(0x0f);
                let mut total = [0u32; FASTSCAN_BLOCK];
                // Four groups per register, 16 bytes each; flushed to 32 bits every 256
                // groups, so no row's sum over the four lanes passes 2^16.
                for (block, lut) in block.chunks(16 * 256).zip(lut.chunks(16 * 256)) {
                    let zero = f._mm512_setzero_si512();
                    let mut acc = [zero; 4];
                    for (codes, table) in block.chunks_exact(64).zip(lut.chunks_exact(64)) {
                        let codes: __m512i = cast(<[u8; 64]>::try_from(codes).expect("64 bytes"));
                        let table: __m512i = cast(<[u8; 64]>::try_from(table).expect("64 bytes"));
                        let low = f._mm512_and_si512(codes, nibble);
                        let high = f._mm512_and_si512(bw._mm512_srli_epi16::<4>(codes), nibble);
                        for (pair, index) in acc.chunks_exact_mut(2).zip([low, high]) {
                            let picked = bw._mm512_shuffle_epi8(table, index);
                            // As 16-bit lanes: the even byte plus 256 times the odd one, and
                            // the odd byte alone; the even sums are recovered at the end.
                            pair[0] = bw._mm512_add_epi16(pair[0], picked);
                            pair[1] =
                                bw._mm512_add_epi16(pair[1], bw._mm512_srli_epi16::<8>(picked));
                        }
                    }
                    super::super::add_sums(&mut total, acc.map(cast::<__m512i, [[u16; 8]; 4]>));
                }
                total
            }

            #[inline(always)]
            fn plane_dots<const R: usize>(
                self,
                code_planes: [&[u8]; R],
                levels: &[u8],
                _planes: &[u64],
            ) -> [(u32, u32); R] {
                let words = levels.len() / 64;
                assert!(
                    levels.len() == 64 * words
                        && code_planes.iter().all(|plane| plane.len() == 8 * words),
                    "plane_dots: lengths"
                );
                let (bw, f) = (self.avx512bw, self.avx512f);
                let zero = f._mm512_setzero_si512();
                let mut acc = [zero; R];
                let mut counts = [0u32; R];
                for (t, levels) in levels.chunks_exact(64).enumerate() {
                    let levels: u8x64 = cast(<[u8; 64]>::try_from(levels).expect("64 bytes"));
                    for ((acc, count), plane) in acc.iter_mut().zip(&mut counts).zip(code_planes) {
                        let word = &plane[8 * t..8 * t + 8];
                        let mask = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                        *count += mask.count_ones();
                        // The levels of the coordinates the plane sets, then each 8 bytes
                        // summed into a 64-bit lane.
                        let picked = bw._mm512_maskz_mov_epi8(mask, cast(levels));
                        *acc = f._mm512_add_epi64(*acc, bw._mm512_sad_epu8(picked, zero));
                    }
                }
                let mut out = [(0, 0); R];
                for ((out, acc), count) in out.iter_mut().zip(acc).zip(counts) {
                    let lanes: [u64; 8] = cast(acc);
                    *out = (count, lanes.iter().sum::<u64>() as u32);
                }
                out
            }
        }
    }
}

/// A kernel body, generic over the level it runs at.
pub(crate) trait CodeOp {
    type Output;
    fn run<S: CodeSimd>(self, simd: S) -> Self::Output;
}

/// Runs a [`CodeOp`] at a concrete level inside pulp's trampoline for that level; the generic
/// `S` pulp passes is the same level, but only the concrete type implements [`CodeSimd`].
struct AtLevel<L, Op> {
    level: L,
    op: Op,
}

impl<L: CodeSimd, Op: CodeOp> WithSimd for AtLevel<L, Op> {
    type Output = Op::Output;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _same_level: S) -> Op::Output {
        self.op.run(self.level)
    }
}

/// Runs `op` at the best level `kernels` stands for.
#[inline]
pub(crate) fn dispatch<Op: CodeOp>(kernels: &Kernels, op: Op) -> Op::Output {
    match kernels.arch() {
        #[cfg(all(feature = "x86-v4", any(target_arch = "x86", target_arch = "x86_64")))]
        pulp::Arch::V4(v4) => Simd::vectorize(v4, AtLevel { level: v4, op }),
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        pulp::Arch::V3(v3) => Simd::vectorize(v3, AtLevel { level: v3, op }),
        _ => op.run(pulp::Scalar::new()),
    }
}

/// Each accumulator's lane sum. A loop, not `acc.map(..)`: the closure `map` takes is compiled
/// without the level's target features, so the reduction's intrinsics would become calls.
#[inline(always)]
fn reduce<S: CodeSimd, const R: usize>(simd: S, acc: [S::f32s; R]) -> [f32; R] {
    let mut sums = [0.0; R];
    for (sum, acc) in sums.iter_mut().zip(acc) {
        *sum = simd.reduce_sum_f32s(acc);
    }
    sums
}

// The scalar-quantizer kernels score `R` rows at once: each query-side vector is loaded once for
// all of them, and the rows' accumulators form `R` independent FMA chains, so the loop runs at
// instruction throughput instead of waiting on one chain's latency. Batches use R = 4; a
// single distance is R = 1.

/// `Σ (offset[i] - scale[i]·code[i])²` over each of `R` rows of 8-bit codes.
#[inline(always)]
pub(crate) fn sq8_l2<S: CodeSimd, const R: usize>(
    simd: S,
    offset: &[f32],
    scale: &[f32],
    rows: [&[u8]; R],
) -> [f32; R] {
    let dim = rows[0].len();
    let whole = dim - dim % S::LANES;
    let (offsets, _) = S::as_simd_f32s(&offset[..whole]);
    let (scales, _) = S::as_simd_f32s(&scale[..whole]);
    let mut acc = [simd.splat_f32s(0.0); R];
    for (chunk, (&o, &s)) in offsets.iter().zip(scales).enumerate() {
        let at = chunk * S::LANES;
        for (acc, row) in acc.iter_mut().zip(rows) {
            let diff = simd.negate_mul_add_e_f32s(s, simd.widen_u8(&row[at..]), o);
            *acc = simd.mul_add_e_f32s(diff, diff, *acc);
        }
    }
    let mut sums = reduce(simd, acc);
    for (sum, row) in sums.iter_mut().zip(rows) {
        for i in whole..dim {
            let diff = offset[i] - scale[i] * f32::from(row[i]);
            *sum += diff * diff;
        }
    }
    sums
}

/// `Σ weight[i]·code[i]` over each of `R` rows of 8-bit codes.
#[inline(always)]
pub(crate) fn sq8_dot<S: CodeSimd, const R: usize>(
    simd: S,
    weight: &[f32],
    rows: [&[u8]; R],
) -> [f32; R] {
    let dim = rows[0].len();
    let whole = dim - dim % S::LANES;
    let (weights, _) = S::as_simd_f32s(&weight[..whole]);
    let mut acc = [simd.splat_f32s(0.0); R];
    for (chunk, &w) in weights.iter().enumerate() {
        let at = chunk * S::LANES;
        for (acc, row) in acc.iter_mut().zip(rows) {
            *acc = simd.mul_add_e_f32s(w, simd.widen_u8(&row[at..]), *acc);
        }
    }
    let mut sums = reduce(simd, acc);
    for (sum, row) in sums.iter_mut().zip(rows) {
        for i in whole..dim {
            *sum += weight[i] * f32::from(row[i]);
        }
    }
    sums
}

/// [`sq8_l2`] over rows of packed 4-bit codes: byte `j` holds dimension `j` in its low nibble
/// and dimension `j + row.len()` in its high one. `offset` and `scale` hold `2 * row.len()`
/// entries in dimension order, padded with zeros.
#[inline(always)]
pub(crate) fn int4_l2<S: CodeSimd, const R: usize>(
    simd: S,
    offset: &[f32],
    scale: &[f32],
    rows: [&[u8]; R],
) -> [f32; R] {
    let half = rows[0].len();
    let whole = half - half % S::LANES;
    let (offset_low, offset_high) = offset.split_at(half);
    let (scale_low, scale_high) = scale.split_at(half);
    let (ol, _) = S::as_simd_f32s(&offset_low[..whole]);
    let (oh, _) = S::as_simd_f32s(&offset_high[..whole]);
    let (sl, _) = S::as_simd_f32s(&scale_low[..whole]);
    let (sh, _) = S::as_simd_f32s(&scale_high[..whole]);
    let mut acc = [simd.splat_f32s(0.0); R];
    for (chunk, (((&ol, &oh), &sl), &sh)) in ol.iter().zip(oh).zip(sl).zip(sh).enumerate() {
        let at = chunk * S::LANES;
        for (acc, row) in acc.iter_mut().zip(rows) {
            let (low, high) = simd.widen_nibbles(&row[at..]);
            let diff_low = simd.negate_mul_add_e_f32s(sl, low, ol);
            let diff_high = simd.negate_mul_add_e_f32s(sh, high, oh);
            *acc = simd.mul_add_e_f32s(diff_low, diff_low, *acc);
            *acc = simd.mul_add_e_f32s(diff_high, diff_high, *acc);
        }
    }
    let mut sums = reduce(simd, acc);
    for (sum, row) in sums.iter_mut().zip(rows) {
        for j in whole..half {
            let low = offset_low[j] - scale_low[j] * f32::from(row[j] & 0x0f);
            let high = offset_high[j] - scale_high[j] * f32::from(row[j] >> 4);
            *sum += low * low + high * high;
        }
    }
    sums
}

/// [`sq8_dot`] over rows of packed 4-bit codes, laid out as in [`int4_l2`].
#[inline(always)]
pub(crate) fn int4_dot<S: CodeSimd, const R: usize>(
    simd: S,
    weight: &[f32],
    rows: [&[u8]; R],
) -> [f32; R] {
    let half = rows[0].len();
    let whole = half - half % S::LANES;
    let (weight_low, weight_high) = weight.split_at(half);
    let (wl, _) = S::as_simd_f32s(&weight_low[..whole]);
    let (wh, _) = S::as_simd_f32s(&weight_high[..whole]);
    let mut acc = [simd.splat_f32s(0.0); R];
    for (chunk, (&wl, &wh)) in wl.iter().zip(wh).enumerate() {
        let at = chunk * S::LANES;
        for (acc, row) in acc.iter_mut().zip(rows) {
            let (low, high) = simd.widen_nibbles(&row[at..]);
            *acc = simd.mul_add_e_f32s(wl, low, *acc);
            *acc = simd.mul_add_e_f32s(wh, high, *acc);
        }
    }
    let mut sums = reduce(simd, acc);
    for (sum, row) in sums.iter_mut().zip(rows) {
        for j in whole..half {
            *sum +=
                weight_low[j] * f32::from(row[j] & 0x0f) + weight_high[j] * f32::from(row[j] >> 4);
        }
    }
    sums
}

/// `Σ table[j·256 + code[j]]` over one row of 8-bit product-quantizer codes, one code per
/// sub-space.
#[inline(always)]
pub(crate) fn pq_sum<S: CodeSimd>(simd: S, table: &[f32], codes: &[u8]) -> f32 {
    let subspaces = codes.len();
    let whole = subspaces - subspaces % S::LANES;
    let mut acc = simd.splat_f32s(0.0);
    for first in (0..whole).step_by(S::LANES) {
        acc = simd.add_f32s(acc, simd.lookup(table, first, &codes[first..]));
    }
    let mut sum = simd.reduce_sum_f32s(acc);
    for (j, &code) in codes.iter().enumerate().skip(whole) {
        sum += table[j * 256 + usize::from(code)];
    }
    sum
}
