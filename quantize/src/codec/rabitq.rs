//! RaBitQ (Gao and Long, SIGMOD'24) and its extension to 2-8 bits per dimension (SIGMOD'25):
//! codes of a randomly rotated residual with an unbiased distance estimator and an error bound.
//!
//! A vector `x` is assigned its nearest of up to 256 coarse centroids `c`; its residual is rotated,
//! `r = R(x - c)` (a structured random rotation, [`Rotation`]), and quantized to `B` bits per
//! coordinate on the centred grid `ȳ_i = u_i - h`, `u_i ∈ [0, 2^B)`, `h = (2^B - 1)/2`, at the
//! scale that maximizes the cosine between `ȳ` and `r` (for `B = 1`, `ȳ = sign(r)/2`). For any
//! vector `v`, `⟨r, v⟩ ≈ f·⟨ȳ, v⟩` with `f = ‖r‖²/⟨ȳ, r⟩`, unbiased over the rotation, with an
//! error below `ε·‖r‖·‖v‖·sqrt((1 - α²)/α²)/sqrt(D - 1)` with high probability, where `α` is the
//! cosine between `ȳ` and `r` and `ε` a confidence multiplier (1.9 in the paper).
//!
//! With `v = R(q - c)`, `‖q - x‖² = ‖q - c‖² + ‖r‖² - 2⟨R(q - c), r⟩`, and
//! `⟨R(q - c), ȳ⟩ = ⟨Rq, ȳ⟩ - ⟨Rc, ȳ⟩`, whose second term is known at encode time. So a code
//! stores its centroid and three floats, and a query needs `w = Rq`, a per-centroid table of
//! `‖q - c‖²` and `Σ w`:
//!
//! `estimate = table[c] + add + mul·(Σ u_i w_i - h·Σ w_i)`, `bound = ‖q - c‖·err`
//!
//! (inner product: `-⟨q, x⟩ = -⟨q, c⟩ - ⟨c, x - c⟩ - ⟨q - c, x - c⟩`, the same form; cosine:
//! half the L2 form, as every codec here scores it). Each code's `Σ u_i w_i` is one pass of the
//! SQ8 kernel (8 bits) or the INT4 kernel (the low 4 of 4-7 bits) against `w`, plus per bit
//! plane a sum of the query's 8-bit levels the plane selects (1-3 bits, [`QUERY_BITS`]) or one
//! byte-table lookup per 8 coordinates of `w` (the planes above a nibble).

use std::sync::OnceLock;

use super::kernels::{self, CodeSimd};
use super::kmeans::{self, CoarseTable, Nearest, Score};
use super::rotation::{Rotation, padded_dim};
use super::sample::sample_rows;
use super::{Form, QueryScratch, TrainOptions};
use crate::{Kernels, Metric, QuantizeError};

/// Most coarse centroids a RaBitQ codec assigns residuals to, and the default. A codec keeps
/// a multiple of [`RABITQ_CENTROID_STEP`] up to this ([`TrainOptions::coarse_centroids`]):
/// on clustered 256-d cosine data 256 centroids gave 4-bit codes 2 points more recall@10 than
/// 64, and a 768-d Vamana walk over 1-bit codes reached 0.947 at L 16 with 256 against 0.750
/// with 64, although each query scores every centroid (`centroids x dim` multiply-adds).
pub const RABITQ_CENTROIDS: usize = 256;

/// A codec's coarse centroids are a multiple of this (the width the centroid kernels need).
pub const RABITQ_CENTROID_STEP: usize = 64;

/// Bytes before the bits of a code of `bits` bits per coordinate: the centroid (byte 0), zero
/// padding and the three factors `add`, `mul`, `err`: as f32 (16 bytes), or for 1-bit codes as
/// bfloat16 (8 bytes). A 1-bit estimate's own error is about 3% of the distances it separates
/// (at 768-d), against bfloat16's 0.4% rounding; at 768-d the 8 bytes saved are 7% of the code.
pub const fn rabitq_prefix_len(bits: u8) -> usize {
    if bits == 1 { 8 } else { 16 }
}

/// Rounds to bfloat16 (the high half of an f32), to nearest even.
fn to_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

#[inline(always)]
pub(crate) fn from_bf16(half: u16) -> f32 {
    f32::from_bits(u32::from(half) << 16)
}

/// The confidence multiplier of the error bound the RaBitQ paper uses: a true distance lies
/// within `estimate ± 1.9·bound` with high probability.
pub const RABITQ_CONFIDENCE: f32 = 1.9;

/// Bits the query is quantized to for 1-3-bit codes' planes, one byte per coordinate: a
/// plane's sum is then the level bytes its bits select (AVX-512: a masked move and `vpsadbw`
/// per 64 coordinates), or popcounts of the code's words ANDed with the query's 8 bit planes.
/// At 6 bits the rounding cost 1-bit codes 3 points of code-only recall@10 on 128-d data and
/// left 2-bit estimates outside 3 bounds 1.3% of the time instead of 0.6%; at 8 bits recall
/// was within a point of a float query's and the bounds held as well. The kernels read bytes:
/// this is not a tuning knob.
pub(crate) const QUERY_BITS: usize = 8;
const _: () = assert!(QUERY_BITS == 8, "plane kernels read one level byte per coordinate");

/// Where the quantized query's offset and step sit in the secondary buffer.
const QUERY_GRID: usize = 2 * TABLE;

/// Rounds of sign flips and Hadamard transforms in a new codec's rotation.
const ROUNDS: usize = 3;

/// Training rows per coarse centroid.
const ROWS_PER_CENTROID: usize = 64;

/// Entries of each per-query centroid table: one per possible centroid byte, so a damaged
/// code cannot index past it (entries past the trained centroids score `+inf`).
pub(crate) const TABLE: usize = 256;

/// How a code's bit planes are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Planes {
    /// 8 bits and 4 bits: no planes.
    None,
    /// 1-3 bits: against the query rounded to [`QUERY_BITS`]-bit levels
    /// ([`CodeSimd::plane_dots`]).
    Levels,
    /// 5-7 bits: the planes above the nibbles weigh 16-64 times more than a level step, which
    /// would magnify the query's rounding, so each is scored by a byte table of the float
    /// query (one lookup per 8 coordinates).
    Tables,
}

/// How a code's bits are laid out after the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Coordinates (the dimension padded to a multiple of 64).
    pub(crate) padded: usize,
    /// Bits per coordinate, 1-8.
    pub(crate) bits: u8,
}

impl Layout {
    /// Bytes of the byte (8 bits) or nibble (the low 4 of 4-7 bits) part; 0 if neither.
    pub(crate) fn wide_len(self) -> usize {
        match self.bits {
            8 => self.padded,
            4..=7 => self.padded / 2,
            _ => 0,
        }
    }

    /// The bits stored as planes: bit `b` of every coordinate in its own `padded / 8` bytes.
    pub(crate) fn plane_bits(self) -> std::ops::Range<u8> {
        match self.bits {
            8 => 8..8,
            4..=7 => 4..self.bits,
            bits => 0..bits,
        }
    }

    /// How the planes are scored.
    pub(crate) fn scoring(self) -> Planes {
        match self.bits {
            4 | 8 => Planes::None,
            1..=3 => Planes::Levels,
            _ => Planes::Tables,
        }
    }

    /// The bits of a level the byte or nibble part holds.
    pub(crate) fn wide_mask(self) -> u8 {
        match self.bits {
            8 => 0xff,
            4..=7 => 0x0f,
            _ => 0,
        }
    }

    pub(crate) fn plane_len(self) -> usize {
        self.padded / 8
    }

    pub(crate) fn body_len(self) -> usize {
        self.padded * usize::from(self.bits) / 8
    }

    /// `h`: half the grid's span, so `ȳ = u - h`.
    pub(crate) fn half_span(self) -> f32 {
        ((1u32 << self.bits) - 1) as f32 / 2.0
    }

    /// Writes the levels `u` (one per coordinate) into `body`.
    fn pack(self, levels: &[u8], body: &mut [u8]) {
        debug_assert_eq!(body.len(), self.body_len());
        body.fill(0);
        let (wide, planes) = body.split_at_mut(self.wide_len());
        match self.bits {
            8 => wide.copy_from_slice(levels),
            4..=7 => {
                let half = self.padded / 2;
                for (j, byte) in wide.iter_mut().enumerate() {
                    *byte = (levels[j] & 0x0f) | ((levels[j + half] & 0x0f) << 4);
                }
            }
            _ => {}
        }
        for (plane, bit) in planes.chunks_exact_mut(self.plane_len()).zip(self.plane_bits()) {
            for (i, &level) in levels.iter().enumerate() {
                plane[i / 8] |= ((level >> bit) & 1) << (i % 8);
            }
        }
    }

    /// The levels `u` stored in `body`.
    pub(crate) fn unpack(self, body: &[u8], levels: &mut [u8]) {
        let (wide, planes) = body.split_at(self.wide_len());
        match self.bits {
            8 => levels.copy_from_slice(wide),
            4..=7 => {
                let half = self.padded / 2;
                for (j, &byte) in wide.iter().enumerate() {
                    levels[j] = byte & 0x0f;
                    levels[j + half] = byte >> 4;
                }
            }
            _ => levels.fill(0),
        }
        for (plane, bit) in planes.chunks_exact(self.plane_len()).zip(self.plane_bits()) {
            for (i, level) in levels.iter_mut().enumerate() {
                *level |= ((plane[i / 8] >> (i % 8)) & 1) << bit;
            }
        }
    }
}

/// A trained RaBitQ codec.
///
/// A search needs only the transposed centroids; the row-major ones and the rotated ones
/// serve encoding (and decoding) and are built on first use, so a segment opened to be
/// searched holds one copy (at 768-d and 256 centroids, 0.8 MB instead of 2.4 MB: 8 B a
/// vector on 100k rows).
#[derive(Debug, Clone)]
pub struct RaBitQ {
    metric: Metric,
    dim: usize,
    bits: u8,
    rotation: Rotation,
    /// Coarse centroids: a multiple of 64, at most 256.
    k: usize,
    /// The coarse centroids, transposed (`dim x k`), for the nearest-centroid and table
    /// kernels.
    centroids_t: Vec<f32>,
    /// The same, row-major (`k x dim`).
    centroids: OnceLock<Vec<f32>>,
    /// Each centroid rotated (`k x padded`), for the encode-time term `⟨Rc, ȳ⟩`.
    rotated: OnceLock<Vec<f32>>,
}

impl PartialEq for RaBitQ {
    fn eq(&self, other: &Self) -> bool {
        (self.metric, self.dim, self.bits, self.k) == (other.metric, other.dim, other.bits, other.k)
            && self.rotation == other.rotation
            && self.centroids_t == other.centroids_t
    }
}

/// A 1-bit code's `add`, `mul` and `err` as stored: bfloat16 bits.
#[inline(always)]
pub(crate) fn one_bit_factors(code: &[u8]) -> [u16; 3] {
    [2, 4, 6].map(|at| u16::from_le_bytes([code[at], code[at + 1]]))
}

/// Per-code factors, as stored in the prefix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factors {
    /// The coarse centroid.
    pub centroid: u8,
    /// Added to the centroid's table entry.
    pub add: f32,
    /// Multiplies `⟨Rq, ȳ⟩`.
    pub mul: f32,
    /// Multiplies `‖q - c‖` to give the error bound at confidence 1.
    pub err: f32,
}

impl Factors {
    /// Reads the prefix of a code of `bits` bits per coordinate.
    #[inline(always)]
    pub fn read(code: &[u8], bits: u8) -> Factors {
        if bits == 1 {
            let [add, mul, err] = one_bit_factors(code).map(from_bf16);
            return Factors { centroid: code[0], add, mul, err };
        }
        let float =
            |at: usize| f32::from_le_bytes([code[at], code[at + 1], code[at + 2], code[at + 3]]);
        Factors { centroid: code[0], add: float(4), mul: float(8), err: float(12) }
    }

    fn write(self, code: &mut [u8], bits: u8) {
        if bits == 1 {
            code[..2].copy_from_slice(&[self.centroid, 0]);
            code[2..4].copy_from_slice(&to_bf16(self.add).to_le_bytes());
            code[4..6].copy_from_slice(&to_bf16(self.mul).to_le_bytes());
            code[6..8].copy_from_slice(&to_bf16(self.err).to_le_bytes());
            return;
        }
        code[..4].copy_from_slice(&[self.centroid, 0, 0, 0]);
        code[4..8].copy_from_slice(&self.add.to_le_bytes());
        code[8..12].copy_from_slice(&self.mul.to_le_bytes());
        code[12..16].copy_from_slice(&self.err.to_le_bytes());
    }
}

impl RaBitQ {
    pub(crate) fn train(
        metric: Metric,
        dim: usize,
        bits: u8,
        rows: &[f32],
        options: &TrainOptions,
    ) -> Result<Self, QuantizeError> {
        if !(1..=8).contains(&bits) {
            return Err(super::invalid("bits", format!("{bits}: RaBitQ codes take 1 to 8 bits")));
        }
        let n = rows.len() / dim;
        if n == 0 {
            return Err(QuantizeError::TooFewRows { codec: "rabitq", needed: 1, found: 0 });
        }
        let k = options.coarse_centroid_count();
        let seed = options.seed_value();
        let most = ROWS_PER_CENTROID * k;
        let sample = sample_rows(n, options.sample_or(most).min(most), seed);
        let mut points = Vec::with_capacity(sample.len() * dim);
        for &row in &sample {
            points.extend_from_slice(&rows[row * dim..(row + 1) * dim]);
        }
        // The centroid kernels take multiples of 64 centroids: train as many as the sample
        // allows, or take the rows themselves when there are fewer than 64, and fill up with
        // copies of the first (the nearest search takes the lowest index among equals, so
        // copies are never chosen).
        let trained = k.min(sample.len()) / RABITQ_CENTROID_STEP * RABITQ_CENTROID_STEP;
        let mut centroids = if trained == 0 {
            points
        } else {
            let (iterations, threads) = (options.iteration_count(), options.thread_count());
            kmeans::train(&points, dim, trained, iterations, seed ^ 0x2AB1_7C0A, threads)
        };
        let first = centroids[..dim].to_vec();
        while centroids.len() < k * dim {
            centroids.extend_from_slice(&first);
        }
        let rotation = Rotation::random(dim, ROUNDS, seed ^ 0x0807_A7E5);
        Self::from_parts(metric, bits, dim, rotation, centroids)
    }

    /// A codec from its parameters, as a codebook stores them.
    pub(crate) fn from_parts(
        metric: Metric,
        bits: u8,
        dim: usize,
        rotation: Rotation,
        centroids: Vec<f32>,
    ) -> Result<Self, QuantizeError> {
        let k = centroids.len().checked_div(dim).unwrap_or(0);
        if !valid_centroid_count(k)
            || centroids.len() != k * dim
            || padded_dim(dim) != rotation.padded()
        {
            let problem = format!(
                "{} centroid floats at dimension {dim} for a {}-coordinate rotation",
                centroids.len(),
                rotation.padded()
            );
            return Err(super::invalid("centroids", problem));
        }
        if !(1..=8).contains(&bits) {
            return Err(super::invalid("bits", format!("{bits}: RaBitQ codes take 1 to 8 bits")));
        }
        if let Some(at) = centroids.iter().position(|c| !c.is_finite()) {
            return Err(super::invalid("centroids", format!("float {at} is {}", centroids[at])));
        }
        let mut centroids_t = vec![0.0; centroids.len()];
        kmeans::transpose(&centroids, dim, k, &mut centroids_t);
        let (centroids, rotated) = (OnceLock::new(), OnceLock::new());
        Ok(RaBitQ { metric, dim, bits, rotation, k, centroids_t, centroids, rotated })
    }

    /// The metric distances are estimated for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bits per coordinate.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The rotation.
    pub fn rotation(&self) -> &Rotation {
        &self.rotation
    }

    /// How many coarse centroids the codec keeps.
    pub fn centroid_count(&self) -> usize {
        self.k
    }

    /// The coarse centroids, row-major.
    pub fn centroids(&self) -> &[f32] {
        self.centroids.get_or_init(|| {
            let (dim, k) = (self.dim, self.k);
            let mut rows = vec![0.0; k * dim];
            kmeans::transpose(&self.centroids_t, k, dim, &mut rows);
            rows
        })
    }

    /// Each centroid rotated, row-major (`k x padded`).
    fn rotated_centroids(&self) -> &[f32] {
        self.rotated.get_or_init(|| {
            let padded = self.rotation.padded();
            let mut rotated = vec![0.0; self.k * padded];
            for (centroid, out) in
                self.centroids().chunks_exact(self.dim).zip(rotated.chunks_exact_mut(padded))
            {
                self.rotation.apply(centroid, out);
            }
            rotated
        })
    }

    pub(crate) fn layout(&self) -> Layout {
        Layout { padded: self.rotation.padded(), bits: self.bits }
    }

    /// Bytes per code of `bits` bits at dimension `dim`.
    pub(crate) const fn code_len(dim: usize, bits: u8) -> usize {
        rabitq_prefix_len(bits) + padded_dim(dim) * bits as usize / 8
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        let lazy = |table: &OnceLock<Vec<f32>>| table.get().map_or(0, Vec::len);
        (self.centroids_t.len() + lazy(&self.centroids) + lazy(&self.rotated)) * size_of::<f32>()
            + self.rotation.memory_bytes()
    }

    /// How many times `⟨R(q - c), r⟩` enters the metric's distance: 2 for L2, 1 for cosine
    /// (half the L2 form) and inner product.
    fn metric_weight(&self) -> f64 {
        match self.metric {
            Metric::L2 => 2.0,
            Metric::Cosine | Metric::InnerProduct => 1.0,
        }
    }

    pub(crate) fn encode(&self, vector: &[f32], code: &mut [u8]) {
        let (dim, layout) = (self.dim, self.layout());
        let padded = layout.padded;
        let mut distances = [0.0f32; RABITQ_CENTROIDS];
        let (nearest, _) = Kernels::detected().dispatch(Nearest {
            x: vector,
            centroids_t: &self.centroids_t,
            distances: &mut distances[..self.k],
        });
        let nearest = nearest as usize;
        let centroid = &self.centroids()[nearest * dim..(nearest + 1) * dim];
        let residual: Vec<f32> = vector.iter().zip(centroid).map(|(x, c)| x - c).collect();
        let mut rotated = vec![0.0; padded];
        self.rotation.apply(&residual, &mut rotated);
        let mut levels = vec![0u8; padded];
        quantize(&rotated, layout, &mut levels);
        // Factors in f64: they are sums over every coordinate.
        let h = f64::from(layout.half_span());
        let grid = |u: u8| f64::from(u) - h;
        let norm2: f64 = rotated.iter().map(|&r| f64::from(r) * f64::from(r)).sum();
        let ip: f64 = rotated.iter().zip(&levels).map(|(&r, &u)| f64::from(r) * grid(u)).sum();
        let grid2: f64 = levels.iter().map(|&u| grid(u) * grid(u)).sum();
        let centroid_rotated = &self.rotated_centroids()[nearest * padded..(nearest + 1) * padded];
        let ip_centroid: f64 =
            centroid_rotated.iter().zip(&levels).map(|(&c, &u)| f64::from(c) * grid(u)).sum();
        let (scale, err) = if norm2 > 0.0 && ip > 0.0 {
            let cosine = (ip / (grid2 * norm2).sqrt()).min(1.0);
            let err = norm2.sqrt() * (1.0 - cosine * cosine).max(0.0).sqrt()
                / cosine
                / ((padded - 1).max(1) as f64).sqrt();
            (norm2 / ip, err)
        } else {
            (0.0, 0.0)
        };
        let g = self.metric_weight();
        let add = match self.metric {
            Metric::L2 => norm2 + 2.0 * scale * ip_centroid,
            Metric::Cosine => 0.5 * norm2 + scale * ip_centroid,
            Metric::InnerProduct => {
                let exact: f64 = centroid
                    .iter()
                    .zip(&residual)
                    .map(|(&c, &r)| f64::from(c) * f64::from(r))
                    .sum();
                scale * ip_centroid - exact
            }
        };
        let factors = Factors {
            centroid: nearest as u8,
            add: add as f32,
            mul: (-g * scale) as f32,
            err: (g * err) as f32,
        };
        factors.write(code, self.bits);
        layout.pack(&levels, &mut code[rabitq_prefix_len(self.bits)..]);
    }

    /// The vector the estimator treats a code as: `c + Rᵀ(f·ȳ)` (its L2 and inner-product
    /// estimates differ from this vector's distances by a per-code constant, `‖r‖² - ‖f·ȳ‖²`).
    pub(crate) fn decode(&self, code: &[u8], out: &mut [f32]) {
        let layout = self.layout();
        let factors = Factors::read(code, self.bits);
        let centroid = usize::from(factors.centroid).min(self.k - 1);
        let scale = -factors.mul / self.metric_weight() as f32;
        let mut levels = vec![0u8; layout.padded];
        layout.unpack(&code[rabitq_prefix_len(self.bits)..], &mut levels);
        let h = layout.half_span();
        let scaled: Vec<f32> = levels.iter().map(|&u| scale * (f32::from(u) - h)).collect();
        self.rotation.apply_inverse(&scaled, out);
        let c = &self.centroids()[centroid * self.dim..(centroid + 1) * self.dim];
        out.iter_mut().zip(c).for_each(|(x, c)| *x += c);
    }

    /// Fills the query's buffers: `primary` is `w = Rq` (`padded` floats), then for 5-7 bits a
    /// 256-entry table per 8 coordinates of `w`'s partial sums; `secondary` the centroid table,
    /// then `‖q - c‖` per centroid, then the quantized query's offset and step; `bits`, for 1-3
    /// bits, `w` quantized to [`QUERY_BITS`] bits in planes. The bias returned is `h·Σ w`.
    pub(crate) fn prepare(&self, query: &[f32], scratch: &mut QueryScratch) -> (Form, f32) {
        let layout = self.layout();
        let padded = layout.padded;
        let (words, tables) = match layout.scoring() {
            Planes::None => (0, 0),
            Planes::Levels => (QUERY_BITS * padded / 64, 0),
            Planes::Tables => (0, layout.plane_len() * 256),
        };
        let levels = if words > 0 { padded } else { 0 };
        let (primary, secondary, bits, levels) =
            scratch.all_buffers(padded + tables, QUERY_GRID + 2, words, levels);
        let (rotated, tables) = primary.split_at_mut(padded);
        self.rotation.apply(query, rotated);
        if words > 0 {
            let (lower, step) = quantize_query(rotated, bits, levels);
            secondary[QUERY_GRID] = lower;
            secondary[QUERY_GRID + 1] = step;
        }
        for (table, chunk) in tables.chunks_exact_mut(256).zip(rotated.chunks_exact(8)) {
            // Entry b = Σ of the coordinates whose bit is set in b: each entry is a smaller one
            // plus one coordinate.
            for b in 1..256usize {
                table[b] = table[b & (b - 1)] + chunk[b.trailing_zeros() as usize];
            }
        }
        let sum: f64 = rotated.iter().map(|&w| f64::from(w)).sum();
        let (table, norms) = secondary.split_at_mut(TABLE);
        let k = self.k;
        Kernels::detected().dispatch(CoarseTable {
            score: Score::L2,
            query,
            centroids_t: &self.centroids_t,
            out: &mut norms[..k],
        });
        match self.metric {
            Metric::L2 => table[..k].copy_from_slice(&norms[..k]),
            Metric::Cosine => table.iter_mut().zip(&norms[..k]).for_each(|(t, &n)| *t = 0.5 * n),
            Metric::InnerProduct => {
                Kernels::detected().dispatch(CoarseTable {
                    score: Score::Dot,
                    query,
                    centroids_t: &self.centroids_t,
                    out: &mut table[..k],
                });
                table[..k].iter_mut().for_each(|t| *t = -*t);
            }
        }
        table[k..].fill(f32::INFINITY);
        norms[..k].iter_mut().for_each(|n| *n = n.max(0.0).sqrt());
        (Form::RaBitQ { bits: self.bits }, (f64::from(layout.half_span()) * sum) as f32)
    }
}

/// The query's grid for the bit planes: [`QUERY_BITS`] bits per coordinate, evenly from its
/// least to its largest coordinate. Returns the offset, the step and a rounding function.
pub(crate) fn query_grid(rotated: &[f32]) -> (f32, f32, impl Fn(f32) -> u32) {
    let lower = rotated.iter().fold(f32::INFINITY, |m, &w| m.min(w));
    let upper = rotated.iter().fold(f32::NEG_INFINITY, |m, &w| m.max(w));
    let top = ((1u32 << QUERY_BITS) - 1) as f32;
    let step = (upper - lower) / top;
    let inverse = if step > 0.0 { 1.0 / step } else { 0.0 };
    (lower, step, move |w: f32| ((w - lower) * inverse + 0.5).clamp(0.0, top) as u32)
}

/// Quantizes the rotated query on [`query_grid`] into `levels` (a byte per coordinate) and bit
/// planes (plane `j`, word `t`, bit `i` is bit `j` of coordinate `64t + i`'s level). Returns the
/// grid's offset and step.
fn quantize_query(rotated: &[f32], planes: &mut [u64], levels: &mut [u8]) -> (f32, f32) {
    let (lower, step, level_of) = query_grid(rotated);
    let words = rotated.len() / 64;
    for (i, &w) in rotated.iter().enumerate() {
        let level = level_of(w);
        levels[i] = level as u8;
        for (j, plane) in planes.chunks_exact_mut(words).enumerate() {
            plane[i / 64] |= u64::from((level >> j) & 1) << (i % 64);
        }
    }
    (lower, step)
}

/// The quantized query the bit planes are scored against, coordinate by coordinate, read back
/// from a prepared query's planes (for the folded reference).
pub(crate) fn quantized_query(padded: usize, bits: &[u64], secondary: &[f32]) -> Vec<f32> {
    if bits.is_empty() {
        return vec![0.0; padded];
    }
    let (lower, step) = (secondary[QUERY_GRID], secondary[QUERY_GRID + 1]);
    let words = padded / 64;
    (0..padded)
        .map(|i| {
            let level = (0..QUERY_BITS)
                .map(|j| ((bits[j * words + i / 64] >> (i % 64)) & 1) << j)
                .sum::<u64>();
            lower + step * level as f32
        })
        .collect()
}

/// Whether a codec may keep `k` coarse centroids.
pub(crate) fn valid_centroid_count(k: usize) -> bool {
    k > 0 && k <= RABITQ_CENTROIDS && k.is_multiple_of(RABITQ_CENTROID_STEP)
}

/// Chooses each coordinate's level: for one bit the sign; for more, the grid scale that
/// maximizes the cosine between `ȳ` and `r`, found on a coarse geometric ladder of scales and
/// refined around the best.
fn quantize(rotated: &[f32], layout: Layout, levels: &mut [u8]) {
    if layout.bits == 1 {
        for (u, &r) in levels.iter_mut().zip(rotated) {
            *u = u8::from(r > 0.0);
        }
        return;
    }
    let h = layout.half_span();
    let largest = rotated.iter().fold(0.0f32, |m, r| m.max(r.abs()));
    if largest == 0.0 {
        levels.fill((h + 0.5) as u8);
        return;
    }
    // At scale t the top coordinate reaches the grid's edge when t·largest = h + 0.5.
    let edge = (h + 0.5) / largest;
    let cosine = |t: f32| -> f32 {
        let (mut ip, mut norm) = (0.0f32, 0.0f32);
        for &r in rotated {
            let y = level_at(t * r, h);
            ip += y * r;
            norm += y * y;
        }
        ip / norm.sqrt()
    };
    const COARSE: usize = 12;
    let ratio = 6f32.powf(1.0 / (COARSE - 1) as f32);
    let mut best = (f32::MIN, 0.25 * edge);
    let mut t = 0.25 * edge;
    for _ in 0..COARSE {
        let c = cosine(t);
        if c > best.0 {
            best = (c, t);
        }
        t *= ratio;
    }
    let fine = ratio.powf(1.0 / 4.0);
    let centre = best.1;
    for step in [-3i32, -2, -1, 1, 2, 3] {
        let t = centre * fine.powi(step);
        let c = cosine(t);
        if c > best.0 {
            best = (c, t);
        }
    }
    for (u, &r) in levels.iter_mut().zip(rotated) {
        *u = (level_at(best.1 * r, h) + h) as u8;
    }
}

/// The grid point `ȳ` nearest `x`: `floor(x) + 0.5`, clamped to `[-h, h]`.
#[inline]
fn level_at(x: f32, h: f32) -> f32 {
    // `as i32` truncates toward zero and vectorizes; correct it to a floor.
    let truncated = x as i32 as f32;
    let floor = if truncated > x { truncated - 1.0 } else { truncated };
    (floor + 0.5).clamp(-h, h)
}

/// A prepared query's buffers, as the RaBitQ kernels read them.
#[derive(Clone, Copy)]
pub(crate) struct Query<'a> {
    pub(crate) bias: f32,
    pub(crate) primary: &'a [f32],
    pub(crate) secondary: &'a [f32],
    pub(crate) bits: &'a [u64],
    pub(crate) levels: &'a [u8],
}

/// `Σ u_i w_i` over `R` codes' bodies: the byte or nibble part against the rotated query in
/// `primary`, bit planes against the query's 8-bit levels (1-3 bits) or byte tables of the
/// float query (5-7 bits).
#[inline(always)]
pub(crate) fn code_dots<S: CodeSimd, const R: usize>(
    simd: S,
    layout: Layout,
    query: Query<'_>,
    bodies: [&[u8]; R],
) -> [f32; R] {
    let Query { primary, secondary, bits, levels, .. } = query;
    let wide = layout.wide_len();
    let weights = &primary[..layout.padded];
    let mut sums = match layout.bits {
        8 => kernels::sq8_dot(simd, weights, bodies),
        4..=7 => kernels::int4_dot(simd, weights, std::array::from_fn(|i| &bodies[i][..wide])),
        _ => [0.0; R],
    };
    let scoring = layout.scoring();
    if scoring == Planes::None {
        return sums;
    }
    let (lower, step) = (secondary[QUERY_GRID], secondary[QUERY_GRID + 1]);
    let plane_len = layout.plane_len();
    let tables = &primary[layout.padded..];
    let mut at = wide;
    for bit in layout.plane_bits() {
        let weight = (1u32 << bit) as f32;
        let planes: [&[u8]; R] = std::array::from_fn(|i| &bodies[i][at..at + plane_len]);
        if scoring == Planes::Levels {
            // Each set coordinate's level on the query's grid: `lower + step * level`.
            let dots = simd.plane_dots(planes, levels, bits);
            for (sum, (count, dot)) in sums.iter_mut().zip(dots) {
                *sum += weight * (lower * count as f32 + step * dot as f32);
            }
        } else {
            for (sum, plane) in sums.iter_mut().zip(planes) {
                *sum += weight * kernels::pq_sum(simd, tables, plane);
            }
        }
        at += plane_len;
    }
    sums
}

/// The estimates of `R` codes.
#[inline(always)]
pub(crate) fn score_codes<S: CodeSimd, const R: usize>(
    simd: S,
    layout: Layout,
    query: Query<'_>,
    codes: [&[u8]; R],
) -> [f32; R] {
    let prefix = rabitq_prefix_len(layout.bits);
    let bodies: [&[u8]; R] = std::array::from_fn(|i| &codes[i][prefix..]);
    let dots = code_dots(simd, layout, query, bodies);
    let mut out = [0.0; R];
    for ((out, code), dot) in out.iter_mut().zip(codes).zip(dots) {
        *out = estimate(code, layout.bits, dot, query.bias, query.secondary);
    }
    out
}

/// The layout of codes `code_len` bytes long at `bits` bits.
#[inline(always)]
pub(crate) fn layout_of(code_len: usize, bits: u8) -> Layout {
    Layout { padded: (code_len - rabitq_prefix_len(bits)) * 8 / usize::from(bits), bits }
}

/// The estimate of one code from its `Σ u_i w_i`.
#[inline(always)]
pub(crate) fn estimate(code: &[u8], bits: u8, dot: f32, bias: f32, secondary: &[f32]) -> f32 {
    let factors = Factors::read(code, bits);
    secondary[usize::from(factors.centroid)] + factors.add + factors.mul * (dot - bias)
}

/// The error bound of one code at confidence 1.
#[inline]
pub(crate) fn bound(code: &[u8], bits: u8, secondary: &[f32]) -> f32 {
    let factors = Factors::read(code, bits);
    secondary[TABLE + usize::from(factors.centroid)] * factors.err
}
